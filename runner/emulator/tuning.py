"""Hyperparameter tuning jobs: Create, Describe, List, Stop, and their children.

A tuning job starts real emulated training jobs (through the training kind's
``CreateTrainingJob``), named ``{tuning-job}-{NNN}-{8 hex}``: up to
``MaxParallelTrainingJobs`` at once, a new one each time an earlier one ends,
``MaxNumberOfTrainingJobs`` in all (default 10; for the Grid strategy, the
size of the grid at most). All of it happens on the emulator's lazy clock: a
child started when another ended is dated at that end, however late the next
request comes.

Each child's tuned hyperparameters are drawn from the ranges, deterministically
(from the tuning job's name, or from ``RandomSeed`` when given, and the
child's number); the Grid strategy walks the grid of the categorical ranges in
order. The child's ``HyperParameters`` are the static ones, the tuned ones and
``_tuning_objective_metric``. Its objective metric value is a stable function
of its tuned hyperparameters, reported in its ``FinalMetricDataList`` and as
``FinalHyperParameterTuningJobObjectiveMetric``; ``BestTrainingJob`` is the
completed child with the lowest (Minimize) or highest (Maximize) value, the
first one on a tie.

The tuning job is Completed when every child has ended and at least one
completed, Failed when none did. StopHyperParameterTuningJob stops the running
children; the tuning job is Stopping until they are all Stopped, then Stopped.
``WarmStartConfig`` is checked (its parents must exist) and echoed, and with it
``OverallBestTrainingJob`` covers the parents' best jobs too.

Each change of the tuning job's status (InProgress at creation, Stopping,
and its end) moves it in the ListHyperParameterTuningJobs index and is
announced (EventBridge); its children's changes are those of training jobs.

A tuning job counts against ``Number of concurrent hyperparameter tuning
jobs`` until it ends, and its children against the training quotas; a child a
quota refuses fails the tuning job with that refusal as its FailureReason
(``ClientError: The account-level service limit ...``), see
:mod:`smrun.emulator.quotas`.

Not emulated: early stopping, ``TuningJobCompletionCriteria``,
``ResourceLimits.MaxRuntimeInSeconds``, retries of children, Autotune (echoed).

Behaviour tags (in the request's ``Tags``; all optional):

``smrun:emulator:child-duration``
    seconds each child runs (default 6); a comma-separated list gives the
    children their durations in turn, repeated (``"2,8"``: 2, 8, 2, 8, ...).
``smrun:emulator:child-outcome``
    ``Completed`` or ``Failed`` for each child, a comma-separated list used
    the same way (default: every child ``Completed``, or ``Failed`` with the
    ``outcome`` tag below).
``smrun:emulator:outcome``
    ``Completed`` (default) or ``Failed``: every child fails, so the tuning
    job does.
``smrun:emulator:failure-reason``, ``log-lines``, ``stop-delay``, ``stream-delay``
    passed to every child as they are (see :mod:`smrun.emulator.training`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from smrun.emulator.jobs import TERMINAL
from smrun.emulator.listing import ListIndex
from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.quotas import Demand
from smrun.emulator.resources import (
    BEHAVIOUR_TAG_PREFIX,
    Listing,
    Result,
    SageMaker,
    StateChange,
    TagReader,
    stable_fraction,
)
from smrun.emulator.training import TrainingJob, TrainingJobs

DEFAULT_MAX_JOBS = 10
DETAIL_TYPE = "SageMaker HyperParameter Tuning Job State Change"
DEFAULT_CHILD_DURATION = 6.0
OBJECTIVE_KEY = "_tuning_objective_metric"
CHILD_OUTCOMES = ("Completed", "Failed")
# behaviour tags a child inherits from its tuning job
INHERITED_TAGS = ("failure-reason", "log-lines", "stop-delay", "stream-delay")
# members of a training job definition a CreateTrainingJob request takes as they are
COPIED_MEMBERS = (
    "RoleArn",
    "InputDataConfig",
    "VpcConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "RetryStrategy",
    "Environment",
)


def _invalid(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def _tag_list(tags: TagReader, name: str, parse: Callable[[str], Any]) -> list[Any] | None:
    raw = tags.values.get(name)
    if raw is None:
        return None
    try:
        values = [parse(part.strip()) for part in raw.split(",")]
    except ValueError:
        raise _invalid(f"Tag {BEHAVIOUR_TAG_PREFIX}{name} has an invalid value '{raw}'.") from None
    return values


def _duration(text: str) -> float:
    value = float(text)
    if not 0.001 <= value < math.inf:
        raise ValueError(text)
    return value


def _outcome(text: str) -> str:
    if text not in CHILD_OUTCOMES:
        raise ValueError(text)
    return text


# -- hyperparameters ---------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """One tunable hyperparameter: draws a value from a number in [0, 1)."""

    name: str
    kind: str  # Integer, Continuous or Categorical
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Auto"
    values: tuple[str, ...] = ()

    def draw(self, fraction: float) -> str:
        if self.kind == "Categorical":
            return self.values[min(int(fraction * len(self.values)), len(self.values) - 1)]
        low, high = self.low, self.high
        if self.scaling == "Logarithmic":
            value = math.exp(math.log(low) + fraction * (math.log(high) - math.log(low)))
        elif self.scaling == "ReverseLogarithmic":
            value = 1 - math.exp(
                math.log(1 - high) + (1 - fraction) * (math.log(1 - low) - math.log(1 - high))
            )
        elif self.kind == "Integer":
            value = math.floor(low + fraction * (high - low + 1))
        else:
            value = low + fraction * (high - low)
        value = min(max(value, low), high)
        return str(round(value)) if self.kind == "Integer" else repr(value)


def parse_ranges(ranges: Params) -> list[Range]:
    parsed: list[Range] = []
    for kind, number in (("Integer", int), ("Continuous", float)):
        for item in ranges.get(f"{kind}ParameterRanges", []):
            name, scaling = item["Name"], item.get("ScalingType", "Auto")
            try:
                low, high = number(item["MinValue"]), number(item["MaxValue"])
            except ValueError:
                raise _invalid(
                    f"The {kind.lower()} hyperparameter range {name} has an invalid "
                    f"MinValue or MaxValue."
                ) from None
            if not low <= high:
                raise _invalid(f"MinValue of hyperparameter {name} must not exceed its MaxValue.")
            if scaling == "Logarithmic" and low <= 0:
                raise _invalid(
                    f"Logarithmic scaling of hyperparameter {name} needs a range above 0."
                )
            if scaling == "ReverseLogarithmic" and (kind == "Integer" or low < 0 or high >= 1):
                raise _invalid(
                    f"Reverse logarithmic scaling of hyperparameter {name} needs a continuous "
                    "range within 0 <= x < 1."
                )
            parsed.append(Range(name, kind, float(low), float(high), scaling))
    for item in ranges.get("CategoricalParameterRanges", []):
        parsed.append(Range(item["Name"], "Categorical", values=tuple(item["Values"])))
    names = [r.name for r in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _invalid(f"Hyperparameters {', '.join(repeated)} are given more than one range.")
    return parsed


def objective_value(metric: str, tuned: dict[str, str]) -> float:
    """The objective a child reports: a stable function of its hyperparameters."""
    return round(stable_fraction(metric, json.dumps(tuned, sort_keys=True)), 6)


# -- one tuning job ------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """A training job definition, with the objective and ranges it is tuned by."""

    spec: Params
    metric: str
    objective_type: str
    ranges: tuple[Range, ...]
    static: dict[str, str]

    def child_request(self, name: str, tuned: dict[str, str], tags: list[dict[str, str]]) -> Params:
        algorithm = self.spec["AlgorithmSpecification"]
        request: Params = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                k: v
                for k, v in algorithm.items()
                if k in ("TrainingImage", "AlgorithmName", "TrainingInputMode", "MetricDefinitions")
            },
            "HyperParameters": {**self.static, **tuned, OBJECTIVE_KEY: self.metric},
            "Tags": tags,
        }
        request.update({k: self.spec[k] for k in COPIED_MEMBERS if k in self.spec})
        pooled = self.spec.get("HyperParameterTuningResourceConfig")
        if "ResourceConfig" not in request and pooled:
            config = {**(pooled.get("InstanceConfigs") or [{}])[0]}
            for key in ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId"):
                if key in pooled:
                    config.setdefault(key, pooled[key])
            request["ResourceConfig"] = config
        return request


@dataclass
class Child:
    name: str
    index: int  # 1-based
    definition: Definition
    tuned: dict[str, str]
    objective: float
    job: TrainingJob


class TuningJob:
    def __init__(self, sagemaker: SageMaker, params: Params, created: float) -> None:
        self.sagemaker = sagemaker
        self.name: str = params["HyperParameterTuningJobName"]
        self.arn = sagemaker.arn("hyper-parameter-tuning-job", self.name)
        self.request = params
        self.created = created
        config = params["HyperParameterTuningJobConfig"]
        self.strategy: str = config["Strategy"]
        self.seed: int | None = config.get("RandomSeed")
        self.definitions = self._definitions(params)
        self.objective_type = self.definitions[0].objective_type
        limits = config["ResourceLimits"]
        self.max_parallel: int = limits["MaxParallelTrainingJobs"]
        self.max_jobs: int = limits.get("MaxNumberOfTrainingJobs", DEFAULT_MAX_JOBS)
        self.grid: list[dict[str, str]] | None = None
        if self.strategy == "Grid":
            self.grid = self._grid()
            self.max_jobs = min(
                limits.get("MaxNumberOfTrainingJobs", len(self.grid)), len(self.grid)
            )
        if self.max_parallel > self.max_jobs and "MaxNumberOfTrainingJobs" in limits:
            raise _invalid(
                "MaxParallelTrainingJobs must be less than or equal to MaxNumberOfTrainingJobs."
            )
        tags = sagemaker.behaviour("tuning", self.name, params.get("Tags"))
        durations = _tag_list(tags, "child-duration", _duration)
        self.durations = durations or [DEFAULT_CHILD_DURATION]
        default_outcome = tags.choice("outcome", "Completed", CHILD_OUTCOMES)
        self.outcomes = _tag_list(tags, "child-outcome", _outcome) or [default_outcome]
        # refuse a bad value now, not when a child starts
        tags.integer("log-lines", 0)
        tags.number("stop-delay", 0.0)
        tags.number("stream-delay", 0.0)
        self.inherited = [
            {"Key": f"{BEHAVIOUR_TAG_PREFIX}{name}", "Value": tags.values[name]}
            for name in INHERITED_TAGS
            if name in tags.values
        ]
        self.children: list[Child] = []
        self.status = "InProgress"
        self.last_modified = created
        self.ended: float | None = None
        self.failure_reason: str | None = None
        self._wakeup = 0  # only the latest scheduled check acts
        # told of each change of status (the job's table indexes and announces it)
        self.changed: Callable[[TuningJob], None] = lambda job: None

    @staticmethod
    def _definitions(params: Params) -> list[Definition]:
        single, several = params.get("TrainingJobDefinition"), params.get("TrainingJobDefinitions")
        if (single is None) == (several is None):
            raise _invalid(
                "Exactly one of TrainingJobDefinition and TrainingJobDefinitions is required."
            )
        config = params["HyperParameterTuningJobConfig"]
        definitions = []
        specs: list[Params] = [single] if single is not None else list(several or [])
        for spec in specs:
            objective = spec.get("TuningObjective") or config.get(
                "HyperParameterTuningJobObjective"
            )
            if objective is None:
                raise _invalid("A HyperParameterTuningJobObjective is required.")
            algorithm = spec["AlgorithmSpecification"]
            if not algorithm.get("TrainingImage") and not algorithm.get("AlgorithmName"):
                raise _invalid("Either TrainingImage or AlgorithmName is required.")
            if "ResourceConfig" not in spec and "HyperParameterTuningResourceConfig" not in spec:
                raise _invalid(
                    "Either ResourceConfig or HyperParameterTuningResourceConfig is required."
                )
            ranges = parse_ranges(
                spec.get("HyperParameterRanges") or config.get("ParameterRanges") or {}
            )
            static = dict(spec.get("StaticHyperParameters") or {})
            both = sorted(set(static) & {r.name for r in ranges})
            if both:
                raise _invalid(f"Hyperparameters {', '.join(both)} are both static and tunable.")
            definitions.append(
                Definition(spec, objective["MetricName"], objective["Type"], tuple(ranges), static)
            )
        return definitions

    def _grid(self) -> list[dict[str, str]]:
        ranges = self.definitions[0].ranges
        if any(r.kind != "Categorical" for r in ranges) or len(self.definitions) > 1:
            raise _invalid(
                "The Grid strategy takes categorical parameter ranges only, "
                "and one training job definition."
            )
        names = [r.name for r in ranges]
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(r.values for r in ranges))
        ]

    # -- the children --------------------------------------------------------

    def _tuned(self, index: int, definition: Definition) -> dict[str, str]:
        if self.grid is not None:
            return dict(self.grid[index - 1])
        seed = self.name if self.seed is None else f"seed:{self.seed}"
        return {
            r.name: r.draw(stable_fraction(seed, str(index), r.name)) for r in definition.ranges
        }

    def _launch(self, trainings: TrainingJobs, when: float) -> None:
        index = len(self.children) + 1
        definition = self.definitions[(index - 1) % len(self.definitions)]
        suffix = f"{int(stable_fraction(self.name, 'child', str(index)) * 16**8):08x}"
        name = f"{self.name}-{index:03d}-{suffix}"
        tuned = self._tuned(index, definition)
        tags = [
            {
                "Key": f"{BEHAVIOUR_TAG_PREFIX}duration",
                "Value": str(self.durations[(index - 1) % len(self.durations)]),
            },
            {
                "Key": f"{BEHAVIOUR_TAG_PREFIX}outcome",
                "Value": self.outcomes[(index - 1) % len(self.outcomes)],
            },
            *self.inherited,
        ]
        request = definition.child_request(name, tuned, tags)
        # Not a CreateTrainingJob member: the training job echoes it in its
        # description, as SageMaker does for a tuning job's children.
        request["TuningJobArn"] = self.arn
        job = trainings.create_child(request, when)
        value = objective_value(definition.metric, tuned)
        job.final_metrics[definition.metric] = value
        self.children.append(Child(name, index, definition, tuned, value, job))

    def check(self, trainings: TrainingJobs, when: float) -> None:
        """Bring the job up to ``when``: start children while there is room,
        end the tuning job once every child has ended."""
        if self.status in TERMINAL:
            return
        running = [c for c in self.children if c.job.current(when).status not in TERMINAL]
        while (
            self.status == "InProgress"
            and len(running) < self.max_parallel
            and len(self.children) < self.max_jobs
        ):
            try:
                self._launch(trainings, when)
            except ApiError as error:
                self._end(when, "Failed", f"ClientError: {error.message}")
                for child in running:
                    child.job.stop(when)
                return
            running.append(self.children[-1])
        if running:
            last = min(c.job.timeline.transitions[-1].start for c in running)
            self.schedule(trainings, last, when)
            return
        if self.status == "Stopping":
            self._end(when, "Stopped")
        elif any(c.job.current(when).status == "Completed" for c in self.children):
            self._end(when, "Completed")
        else:
            self._end(
                when,
                "Failed",
                f"No training job succeeded after {len(self.children)} attempts. For "
                "additional details, please take a look at the training job failures by "
                "listing training jobs for the hyperparameter tuning job.",
            )

    def schedule(self, trainings: TrainingJobs, at: float, now: float) -> None:
        self._wakeup += 1
        wakeup = self._wakeup
        when = max(at, now)

        def wake() -> None:
            if wakeup == self._wakeup:
                self.check(trainings, when)

        self.sagemaker.scheduler.at(when, wake)

    def _end(self, when: float, status: str, reason: str | None = None) -> None:
        self.status = status
        self.ended = self.last_modified = when
        self.failure_reason = reason
        self.changed(self)

    def stop(self, trainings: TrainingJobs, now: float) -> None:
        if self.status in TERMINAL:
            raise _invalid(
                "The request was rejected because the hyperparameter tuning job is in "
                f"status {self.status}."
            )
        if self.status == "Stopping":
            return
        self.status = "Stopping"
        self.last_modified = now
        self.changed(self)
        for child in self.children:
            if child.job.current(now).status == "InProgress":
                child.job.stop(now)
        self.schedule(trainings, now, now)

    # -- what it reports -----------------------------------------------------

    def child_summary(self, child: Child, now: float) -> Result:
        described = child.job.describe(now, lambda _request: {})
        status = described["TrainingJobStatus"]
        summary: Result = {
            "TrainingJobName": child.name,
            "TrainingJobArn": child.job.arn,
            "TuningJobName": self.name,
            "CreationTime": child.job.created,
            "TrainingJobStatus": status,
            "TunedHyperParameters": dict(child.tuned),
            "ObjectiveStatus": {
                "Completed": "Succeeded",
                "InProgress": "Pending",
                "Stopping": "Pending",
            }.get(status, "Failed"),
        }
        if "DefinitionName" in child.definition.spec:
            summary["TrainingJobDefinitionName"] = child.definition.spec["DefinitionName"]
        for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
            if key in described:
                summary[key] = described[key]
        if status == "Completed":
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": child.definition.objective_type,
                "MetricName": child.definition.metric,
                "Value": child.objective,
            }
        return summary

    def counters(self, now: float) -> tuple[Result, Result]:
        statuses = [c.job.current(now).status for c in self.children]
        training = {
            "Completed": statuses.count("Completed"),
            "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
            "RetryableError": 0,
            "NonRetryableError": statuses.count("Failed"),
            "Stopped": statuses.count("Stopped"),
        }
        objective = {
            "Succeeded": training["Completed"],
            "Pending": training["InProgress"],
            "Failed": training["NonRetryableError"] + training["Stopped"],
        }
        return training, objective

    def best(self, now: float) -> Result | None:
        done = [c for c in self.children if c.job.current(now).status == "Completed"]
        if not done:
            return None
        return self.child_summary(pick_best(done, self.objective_type), now)

    def describe(
        self, now: float, echo: Callable[[Params], Result], parents: Iterable[TuningJob]
    ) -> Result:
        training, objective = self.counters(now)
        result = echo(self.request)
        result.update(
            HyperParameterTuningJobName=self.name,
            HyperParameterTuningJobArn=self.arn,
            HyperParameterTuningJobStatus=self.status,
            CreationTime=self.created,
            LastModifiedTime=self.last_modified,
            TrainingJobStatusCounters=training,
            ObjectiveStatusCounters=objective,
            ConsumedResources={
                "RuntimeInSeconds": int(
                    (self.ended if self.ended is not None else now) - self.created
                )
            },
        )
        if self.ended is not None:
            result["HyperParameterTuningEndTime"] = self.ended
        if self.failure_reason is not None:
            result["FailureReason"] = self.failure_reason
        best = self.best(now)
        if best is not None:
            result["BestTrainingJob"] = best
        if "WarmStartConfig" in self.request:
            candidates = [b for b in (best, *(p.best(now) for p in parents)) if b is not None]
            if candidates:
                result["OverallBestTrainingJob"] = pick_best_summary(
                    candidates, self.objective_type
                )
        return result

    def summary(self, now: float) -> Result:
        training, objective = self.counters(now)
        summary: Result = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": self.arn,
            "HyperParameterTuningJobStatus": self.status,
            "Strategy": self.strategy,
            "CreationTime": self.created,
            "LastModifiedTime": self.last_modified,
            "TrainingJobStatusCounters": training,
            "ObjectiveStatusCounters": objective,
            "ResourceLimits": self.request["HyperParameterTuningJobConfig"]["ResourceLimits"],
        }
        if self.ended is not None:
            summary["HyperParameterTuningEndTime"] = self.ended
        return summary


def pick_best(children: list[Child], objective_type: str) -> Child:
    """The best completed child; the earliest one on a tie."""
    sign = 1 if objective_type == "Minimize" else -1
    return min(children, key=lambda c: (sign * c.objective, c.index))


def pick_best_summary(summaries: list[Result], objective_type: str) -> Result:
    sign = 1 if objective_type == "Minimize" else -1
    return min(
        summaries,
        key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
    )


# -- the operations ------------------------------------------------------------

CHILDREN = Listing(
    name="TrainingJobName",
    status="TrainingJobStatus",
    summaries="TrainingJobSummaries",
    default_sort="Name",
    more_sort_keys={
        "FinalObjectiveMetricValue": lambda s: (
            s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
            s["TrainingJobName"],
        )
    },
)


class TuningJobs:
    """The tuning-job operations and the jobs they act on."""

    def __init__(self, sagemaker: SageMaker) -> None:
        self.sagemaker = sagemaker
        self.jobs: dict[str, TuningJob] = {}  # by lower-cased name
        shape = sagemaker.protocol.model.operation_model(
            "DescribeHyperParameterTuningJob"
        ).output_shape
        self._echoed = frozenset(shape.members)
        self.index: ListIndex[TuningJob] = ListIndex(
            summaries="HyperParameterTuningJobSummaries",
            summary=lambda job, now: job.summary(now),
            default_sort="Name",
        )

    def install(self) -> None:
        for operation, handler in (
            ("CreateHyperParameterTuningJob", self.create),
            ("DescribeHyperParameterTuningJob", self.describe),
            ("ListHyperParameterTuningJobs", self.list),
            ("StopHyperParameterTuningJob", self.stop),
            ("ListTrainingJobsForHyperParameterTuningJob", self.list_training_jobs),
        ):
            self.sagemaker.register(operation, handler)

    @property
    def trainings(self) -> TrainingJobs:
        trainings = self.sagemaker.kinds.get("training")
        if not isinstance(trainings, TrainingJobs):
            raise ApiError("InternalFailure", "training jobs are not emulated", 500)
        return trainings

    def job(self, name: str) -> TuningJob:
        try:
            return self.jobs[name.lower()]
        except KeyError:
            raise ApiError(
                "ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}"
            ) from None

    def _echo(self, request: Params) -> Result:
        return {k: v for k, v in request.items() if k in self._echoed}

    def _parents(self, job: TuningJob) -> list[TuningJob]:
        warm = job.request.get("WarmStartConfig") or {}
        return [
            self.jobs[p["HyperParameterTuningJobName"].lower()]
            for p in warm.get("ParentHyperParameterTuningJobs", [])
            if p.get("HyperParameterTuningJobName", "").lower() in self.jobs
        ]

    def create(self, params: Params) -> Result:
        name = params["HyperParameterTuningJobName"]
        existing = self.jobs.get(name.lower())
        if existing is not None:
            raise ApiError(
                "ResourceInUse",
                f"Hyperparameter tuning job names must be unique within an AWS account and "
                f"region, and a job with this name already exists ({existing.arn})",
            )
        warm = params.get("WarmStartConfig") or {}
        for parent in warm.get("ParentHyperParameterTuningJobs", []):
            parent_name = parent.get("HyperParameterTuningJobName", "")
            if parent_name.lower() not in self.jobs:
                raise _invalid(f"Parent hyperparameter tuning job {parent_name} does not exist.")
        now = self.sagemaker.now
        job = TuningJob(self.sagemaker, params, now)
        demand = Demand.of("hyperparameter tuning")
        self.sagemaker.concurrency.admit(demand)
        self.jobs[name.lower()] = job
        self.sagemaker.add_resource(job.arn, params.get("Tags"))
        self.sagemaker.concurrency.hold(job.arn, job.arn, demand)
        self.index.add(job, job.name, job.created, job.status, job.last_modified)
        job.changed = self._changed
        self._changed(job)
        job.check(self.trainings, now)
        return {"HyperParameterTuningJobArn": job.arn}

    def _changed(self, job: TuningJob) -> None:
        at = job.last_modified
        if job.status in TERMINAL:
            self.sagemaker.concurrency.release(job.arn)
        self.index.move(job.name, job.status, at)
        self.sagemaker.state_changed(
            StateChange(
                detail_type=DETAIL_TYPE,
                arn=job.arn,
                at=at,
                describe="DescribeHyperParameterTuningJob",
                detail=lambda: job.describe(at, self._echo, self._parents(job)),
                settled=job.status in TERMINAL,
            )
        )

    def describe(self, params: Params) -> Result:
        job = self.job(params["HyperParameterTuningJobName"])
        return job.describe(self.sagemaker.now, self._echo, self._parents(job))

    def stop(self, params: Params) -> Result:
        self.job(params["HyperParameterTuningJobName"]).stop(self.trainings, self.sagemaker.now)
        return {}

    def list(self, params: Params) -> Result:
        return self.index.answer(params, self.sagemaker.now)

    def list_training_jobs(self, params: Params) -> Result:
        job = self.job(params["HyperParameterTuningJobName"])
        now = self.sagemaker.now
        summaries = [job.child_summary(c, now) for c in job.children]
        if params.get("SortBy", CHILDREN.default_sort) == "FinalObjectiveMetricValue":
            # as documented: jobs without an objective value are left out
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        return CHILDREN.answer(summaries, params)


def install_kind(sagemaker: SageMaker) -> None:
    jobs = TuningJobs(sagemaker)
    jobs.install()
    sagemaker.kinds["tuning"] = jobs
