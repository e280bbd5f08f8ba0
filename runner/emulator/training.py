"""Training jobs: Create, Describe, List and Stop on the emulator's clock.

A job follows a timeline fixed at creation: TrainingJobStatus InProgress then
its outcome; SecondaryStatus Starting, Downloading, Training, Uploading,
Completed over about 10%, 15%, 60% and 15% of its duration. Each instance
writes numbered lines to its own stream ``{job}/algo-{n}-{epoch}`` in the
group ``/aws/sagemaker/TrainingJobs``, created when its first line is due.
Every line is unique (``[algo-2] line 7/20: epoch=5 train_loss=0.6224``) so a
reader can check it saw each exactly once; the last line of each stream is
stamped at the end time but reaches CloudWatch 0.5 s after the job turned
terminal, as real logs can.

Behaviour tags (in the request's ``Tags``; all optional):

``smrun:emulator:duration``
    seconds from creation to the terminal status (float, default 6).
``smrun:emulator:outcome``
    ``Completed`` (default), ``Failed``, or ``MaxRuntimeExceeded`` (status
    Stopped, secondary status MaxRuntimeExceeded, FailureReason set). A job
    whose StoppingCondition.MaxRuntimeInSeconds is shorter than its duration
    ends MaxRuntimeExceeded at that limit anyway.
``smrun:emulator:failure-reason``
    FailureReason of a Failed job (default ``AlgorithmError: ...``).
``smrun:emulator:log-lines``
    lines per instance (default 20; 0 writes no logs at all).
``smrun:emulator:log-text``
    the lines each instance writes instead of the numbered ones, verbatim,
    separated by newlines (the log-lines are then as many).
``smrun:emulator:stream-delay``
    seconds after creation before the last instance's stream first appears
    (its lines are held back until then; may exceed the duration).
``smrun:emulator:stop-delay``
    seconds from StopTrainingJob to Stopped (default 1).

A request without one of these tags takes it from the emulator's scripts for
jobs of its name, if any (:meth:`~smrun.emulator.resources.SageMaker.behaviour`).

A job holds its ``ResourceConfig`` instances (or its ``InstanceGroups``') until
it is terminal; a create over one of the account's quotas is refused
(:mod:`smrun.emulator.quotas`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from smrun.emulator.jobs import (
    LATE_INGESTION,
    TERMINAL,
    EmulatedJob,
    JobTable,
    PlannedLine,
    Timeline,
    Transition,
)
from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.quotas import Demand
from smrun.emulator.resources import Result, SageMaker, stable_fraction

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
DEFAULT_DURATION = 6.0
DEFAULT_LOG_LINES = 20
DEFAULT_STOP_DELAY = 1.0
DEFAULT_FAILURE_REASON = (
    'AlgorithmError: ExecuteUserScriptError: Command "/usr/local/bin/python3 train.py" '
    "exited with code 1"
)
MAX_RUNTIME_REASON = (
    "MaxRuntimeExceeded: Training job runtime exceeded MaxRuntimeInSeconds provided"
)
SPOT_SAVINGS = 0.3
DEFAULT_MAX_RUNTIME = 86400
OUTCOMES = ("Completed", "Failed", "MaxRuntimeExceeded")

# Where each phase starts, as a fraction of the duration.
PHASES = (
    (0.0, "Starting", "Preparing the instances for training"),
    (0.10, "Downloading", "Downloading input data"),
    (0.25, "Training", "Training image download completed. Training in progress."),
    (0.85, "Uploading", "Uploading generated training model"),
)


@dataclass(frozen=True)
class TrainingTransition(Transition):
    """A TrainingJobStatus with the SecondaryStatus and its message."""

    secondary: str = ""
    message: str = ""


class TrainingTimeline(Timeline):
    def stopping(self, now: float, delay: float) -> list[Transition]:
        return [
            TrainingTransition("Stopping", now, "Stopping", "Stopping the training job"),
            TrainingTransition("Stopped", now + delay, "Stopped", "Training job stopped"),
        ]

    def steps(self, now: float) -> list[TrainingTransition]:
        # every transition of a training job's timeline is a TrainingTransition
        return cast(list[TrainingTransition], self.history(now))


class TrainingJob(EmulatedJob):
    resource_type = "training-job"
    timeline: TrainingTimeline

    def __init__(self, sagemaker: SageMaker, params: Params, created: float) -> None:
        super().__init__(sagemaker, params["TrainingJobName"], params, created)
        tags = sagemaker.behaviour("training", self.name, params.get("Tags"))
        self.duration = tags.number("duration", DEFAULT_DURATION, minimum=0.001)
        self.outcome = tags.choice("outcome", "Completed", OUTCOMES)
        self.failure_reason_text = tags.text("failure-reason", DEFAULT_FAILURE_REASON)
        self.log_text = tags.lines("log-text")  # written verbatim instead of numbered lines
        self.lines_per_instance = (
            tags.integer("log-lines", DEFAULT_LOG_LINES, minimum=0)
            if self.log_text is None
            else len(self.log_text)
        )
        self.stream_delay = tags.number("stream-delay", 0.0)
        self.stop_delay = tags.number("stop-delay", DEFAULT_STOP_DELAY)
        self.spot = bool(params.get("EnableManagedSpotTraining", False))
        self.instance_count = instance_count(params.get("ResourceConfig", {}))
        stopping = params.get("StoppingCondition") or {}
        self.max_runtime = stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
        if self.outcome == "Completed" and self.max_runtime < self.duration:
            self.outcome = "MaxRuntimeExceeded"
            self.end = created + self.max_runtime
        else:
            self.end = created + self.duration
        self.timeline = TrainingTimeline(self._plan())
        # final metric values fixed by whoever runs the job (a tuning job's
        # objective); other metrics get a stable made-up value
        self.final_metrics: dict[str, float] = {}

    def _plan(self) -> list[TrainingTransition]:
        timeline = [
            TrainingTransition(
                "InProgress", self.created + fraction * self.duration, secondary, message
            )
            for fraction, secondary, message in PHASES
            if self.created + fraction * self.duration < self.end
        ]
        if self.outcome != "Completed":
            timeline = [t for t in timeline if t.secondary != "Uploading"]
        final = {
            "Completed": TrainingTransition(
                "Completed", self.end, "Completed", "Training job completed"
            ),
            "Failed": TrainingTransition(
                "Failed", self.end, "Failed", f"Training job failed. {self.failure_reason_text}"
            ),
            "MaxRuntimeExceeded": TrainingTransition(
                "Stopped",
                self.end,
                "MaxRuntimeExceeded",
                "Job stopped because max runtime exceeded",
            ),
        }[self.outcome]
        return [*timeline, final]

    def log_lines(self) -> list[PlannedLine]:
        total = self.lines_per_instance
        if total >= 4:
            middle = [0.25 + 0.60 * (k + 1) / (total - 3) for k in range(total - 4)]
            fractions = [0.10, 0.25, *middle, 0.85, 1.0]
        else:
            fractions = [0.10 + 0.90 * (k + 1) / total for k in range(total)]
        lines: list[PlannedLine] = []
        for n in range(1, self.instance_count + 1):
            for i, fraction in enumerate(fractions, start=1):
                # Instances write a millisecond apart so a merge by timestamp is unambiguous.
                at = self.created + fraction * self.duration + (n - 1) / 1000
                if at > self.end + self.instance_count / 1000:
                    break  # cut short by MaxRuntimeInSeconds
                ingested = self.end + LATE_INGESTION if i == total else at
                if n == self.instance_count and self.stream_delay:
                    ingested = max(ingested, self.created + self.stream_delay)
                if self.log_text is not None:
                    message = self.log_text[i - 1]
                else:
                    message = f"[algo-{n}] line {i}/{total}: {self._line_text(n, i, total)}"
                lines.append(PlannedLine(self.stream_name(n), at, ingested, message))
        return lines

    def _line_text(self, instance: int, i: int, total: int) -> str:
        if i == total:
            return {
                "Completed": "training complete",
                "Failed": f"ERROR {self.failure_reason_text}",
                "MaxRuntimeExceeded": "still training when MaxRuntimeInSeconds ran out",
            }[self.outcome]
        if i == 1:
            return "downloading input data"
        if i == 2 and total >= 4:
            return "training started"
        if i == total - 1 and total >= 4 and self.outcome == "Completed":
            return "uploading model artifacts"
        epoch = i - 2
        loss = 0.9 * 0.93**epoch + 0.01 * instance
        return f"epoch={epoch} train_loss={loss:.4f}"

    def stream_name(self, instance: int) -> str:
        return f"{self.name}/algo-{instance}-{self.epoch}"

    # -- state at a time ---------------------------------------------------

    def current(self, now: float) -> TrainingTransition:
        return self.timeline.steps(now)[-1]

    def stop(self, now: float) -> None:
        self.timeline.stop(now, self.stop_delay, "training job")

    def describe(self, now: float, echo: Callable[[Params], Result]) -> Result:
        transitions = self.timeline.steps(now)
        state = transitions[-1]
        result = echo(self.request)
        result.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME})
        for flag in (
            "EnableNetworkIsolation",
            "EnableInterContainerTrafficEncryption",
            "EnableManagedSpotTraining",
        ):
            result.setdefault(flag, False)
        output_path = self.request["OutputDataConfig"].get("S3OutputPath", "").rstrip("/")
        result.update(
            TrainingJobName=self.name,
            TrainingJobArn=self.arn,
            ModelArtifacts={"S3ModelArtifacts": f"{output_path}/{self.name}/output/model.tar.gz"},
            TrainingJobStatus=state.status,
            SecondaryStatus=state.secondary,
            CreationTime=self.created,
            LastModifiedTime=state.start,
            SecondaryStatusTransitions=[
                {
                    "Status": t.secondary,
                    "StartTime": t.start,
                    # A terminal status has zero length, as SageMaker reports it.
                    "EndTime": nxt.start if nxt is not None else t.start,
                    "StatusMessage": t.message,
                }
                if nxt is not None or t.status in TERMINAL
                else {"Status": t.secondary, "StartTime": t.start, "StatusMessage": t.message}
                for t, nxt in zip(transitions, [*transitions[1:], None], strict=True)
            ],
        )
        started = next((t.start for t in transitions if t.secondary == "Downloading"), None)
        if started is not None:
            result["TrainingStartTime"] = started
        if state.secondary == "Failed":
            result["FailureReason"] = self.failure_reason_text
        elif state.secondary == "MaxRuntimeExceeded":
            result["FailureReason"] = MAX_RUNTIME_REASON
        if state.status in TERMINAL:
            result["TrainingEndTime"] = state.start
            trained = max(
                1, round(state.start - (started if started is not None else self.created))
            )
            billable = max(1, round(trained * (1 - SPOT_SAVINGS))) if self.spot else trained
            result["TrainingTimeInSeconds"] = trained
            result["BillableTimeInSeconds"] = billable
        if state.status == "Completed":
            metrics = self.request.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
            names = dict.fromkeys([*(m["Name"] for m in metrics), *self.final_metrics])
            result["FinalMetricDataList"] = [
                {
                    "MetricName": name,
                    "Value": self.final_metrics.get(
                        name, round(stable_fraction(self.name, name), 4)
                    ),
                    "Timestamp": state.start,
                }
                for name in names
            ]
        return result

    def summary(self, now: float) -> Result:
        state = self.current(now)
        summary: Result = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "CreationTime": self.created,
            "LastModifiedTime": state.start,
            "TrainingJobStatus": state.status,
            "SecondaryStatus": state.secondary,
        }
        if state.status in TERMINAL:
            summary["TrainingEndTime"] = state.start
        plan = self.training_plan
        if plan is not None:
            summary["TrainingPlanArn"] = plan
        return summary

    @property
    def training_plan(self) -> str | None:
        plan = (self.request.get("ResourceConfig") or {}).get("TrainingPlanArn")
        return str(plan) if plan else None


def instances(resource_config: Params) -> list[tuple[str, int]]:
    """(instance type, count) of a ResourceConfig: its own, or its InstanceGroups'."""
    groups = resource_config.get("InstanceGroups")
    if groups:
        return [(g["InstanceType"], int(g.get("InstanceCount", 1))) for g in groups]
    if "InstanceType" not in resource_config:
        return []
    count = max(1, int(resource_config.get("InstanceCount", 1)))
    return [(resource_config["InstanceType"], count)]


def instance_count(resource_config: Params) -> int:
    groups = resource_config.get("InstanceGroups")
    if groups:
        return max(1, sum(int(g.get("InstanceCount", 1)) for g in groups))
    return max(1, int(resource_config.get("InstanceCount", 1)))


def check_spot(params: Params) -> None:
    """A managed spot job must wait at least as long as it may run."""
    if params.get("EnableManagedSpotTraining"):
        stopping = params.get("StoppingCondition") or {}
        max_wait = stopping.get("MaxWaitTimeInSeconds")
        if max_wait is None or max_wait < stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME):
            raise ApiError(
                "ValidationException",
                "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or "
                "equal to MaxRuntimeInSeconds",
            )


class TrainingJobs(JobTable[TrainingJob]):
    noun = "TrainingJob"
    what = "training job"
    log_group = LOG_GROUP
    detail_type = "SageMaker Training Job State Change"

    def new_job(self, params: Params, now: float) -> TrainingJob:
        return TrainingJob(self.sagemaker, params, now)

    def list_filters(self) -> Mapping[str, Callable[[TrainingJob, Any], bool]]:
        return {
            "TrainingPlanArnEquals": lambda job, arn: job.training_plan == arn,
            # no emulated job keeps a warm pool
            "WarmPoolStatusEquals": lambda job, status: False,
        }

    async def check(self, params: Params) -> None:
        check_spot(params)

    def demand(self, job: TrainingJob) -> Demand:
        family = "spot training" if job.spot else "training"
        return Demand.of(family, instances(job.request.get("ResourceConfig") or {}))

    def create_child(self, params: Params, created: float) -> TrainingJob:
        """CreateTrainingJob backdated to ``created``, a time the world has
        already passed (a tuning job starting a child when an earlier one ended);
        refused, as CreateTrainingJob is, over a quota."""
        self.refuse_existing(params[self.name_member])
        check_spot(params)
        return self.start(params, created)


def install_kind(sagemaker: SageMaker) -> None:
    jobs = TrainingJobs(sagemaker)
    jobs.install()
    sagemaker.kinds["training"] = jobs
