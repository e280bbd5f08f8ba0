"""Ground Truth labeling jobs: Create, Describe, List and Stop on the emulator's clock.

A job follows a timeline fixed at creation: LabelingJobStatus Initializing for
the first 10% of its duration, InProgress until the end, then Completed (or
Failed). While InProgress its LabelCounters move steadily: human workers
label their share of the objects over the whole run; with auto-labeling
(``LabelingJobAlgorithmsConfig``) a model labels the rest, from halfway on.
At the end every object is labeled or failed, so ``Unlabeled`` is 0. A Failed
job fails at the end having labeled half of what it would have.

A Completed or Stopped job has ``LabelingJobOutput.OutputDatasetS3Uri``
``{OutputConfig.S3OutputPath}/{job}/manifests/output/output.manifest``; a
Completed auto-labeling job also has ``FinalActiveLearningModelArn``.

Logs go to the group ``/aws/sagemaker/LabelingJobs``: numbered lines in
``{job}/human-annotation`` and, with auto-labeling, ``{job}/active-learning``,
each reporting the counters of that moment. The last line of each stream is
stamped at the end but reaches CloudWatch 0.5 s after the job turned
terminal. A stopped job writes nothing after the stop.

``HumanTaskConfig.WorkteamArn`` naming a private team
(``:workteam/private-crowd/``) must name a team of
:mod:`smrun.emulator.workteam`, or CreateLabelingJob fails with a
ValidationException, as SageMaker's does; public and vendor teams are taken
as given.

Behaviour tags (in the request's ``Tags``; all optional):

``smrun:emulator:duration``
    seconds from creation to the terminal status (float, default 6).
``smrun:emulator:outcome``
    ``Completed`` (default) or ``Failed`` (FailureReason set).
``smrun:emulator:failure-reason``
    FailureReason of a Failed job (default ``ClientError: ...``).
``smrun:emulator:objects``
    data objects in the input manifest (default 100).
``smrun:emulator:failed-objects``
    objects that fail with a non-retryable error (default 0).
``smrun:emulator:log-lines``
    lines per stream (default 10; 0 writes no logs at all).
``smrun:emulator:stop-delay``
    seconds from StopLabelingJob to Stopped (default 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from smrun.emulator.jobs import (
    LATE_INGESTION,
    EmulatedJob,
    JobTable,
    PlannedLine,
    Timeline,
    Transition,
)
from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.resources import Result, SageMaker
from smrun.emulator.workteam import Workteams

LOG_GROUP = "/aws/sagemaker/LabelingJobs"
DEFAULT_DURATION = 6.0
DEFAULT_OBJECTS = 100
DEFAULT_LOG_LINES = 10
DEFAULT_STOP_DELAY = 1.0
DEFAULT_FAILURE_REASON = (
    "ClientError: The input manifest contains no valid data objects. "
    "Check that each line is a JSON object with a source or source-ref key."
)
INITIALIZING_SHARE = 0.1  # of the duration, before any task reaches a worker
MACHINE_SHARE = 0.6  # of the labelable objects, labeled by the model when auto-labeling
FAILED_REACH = 0.5  # of the labeling a Failed job gets done before it fails
OUTCOMES = ("Completed", "Failed")
PRIVATE_TEAM = ":workteam/private-crowd/"
HUMAN_STREAM = "human-annotation"
MACHINE_STREAM = "active-learning"


@dataclass(frozen=True)
class Counters:
    human: int
    machine: int
    failed: int
    unlabeled: int

    def to_api(self) -> Result:
        return {
            "TotalLabeled": self.human + self.machine,
            "HumanLabeled": self.human,
            "MachineLabeled": self.machine,
            "FailedNonRetryableError": self.failed,
            "Unlabeled": self.unlabeled,
        }


class LabelingJob(EmulatedJob):
    resource_type = "labeling-job"

    def __init__(self, sagemaker: SageMaker, params: Params, created: float) -> None:
        super().__init__(sagemaker, params["LabelingJobName"], params, created)
        tags = sagemaker.behaviour("labeling", self.name, params.get("Tags"))
        self.duration = tags.number("duration", DEFAULT_DURATION, minimum=0.001)
        self.outcome = tags.choice("outcome", "Completed", OUTCOMES)
        self.failure_reason = tags.text("failure-reason", DEFAULT_FAILURE_REASON)
        self.objects = tags.integer("objects", DEFAULT_OBJECTS)
        self.failed_objects = tags.integer("failed-objects", 0)
        if self.failed_objects > self.objects:
            raise ApiError(
                "ValidationException",
                "Tag smrun:emulator:failed-objects can't exceed smrun:emulator:objects.",
            )
        self.lines_per_stream = tags.integer("log-lines", DEFAULT_LOG_LINES)
        self.stop_delay = tags.number("stop-delay", DEFAULT_STOP_DELAY)
        self.auto_labeling = "LabelingJobAlgorithmsConfig" in params
        self.end = created + self.duration
        self.labeling_start = created + INITIALIZING_SHARE * self.duration
        self.timeline = Timeline(
            [
                Transition("Initializing", created),
                Transition("InProgress", self.labeling_start),
                Transition(self.outcome, self.end),
            ]
        )
        digest = hashlib.sha256(f"{self.arn}\0{created}".encode()).hexdigest()
        self.reference_code = f"{sagemaker.account}{digest[:16].upper()}"
        self.final_model_arn = sagemaker.arn("model", f"{self.name}-final-model")

    # -- the plan ------------------------------------------------------------

    def progress(self, at: float) -> float:
        """How far labeling has got at ``at``, from 0 to 1 (a Failed job's stops short)."""
        stopped = self.timeline.stopped_at
        frozen = min(at, self.end if stopped is None else stopped)
        span = self.end - self.labeling_start
        done = min(1.0, max(0.0, (frozen - self.labeling_start) / span)) if span > 0 else 1.0
        return done * (FAILED_REACH if self.outcome == "Failed" else 1.0)

    def counters(self, at: float) -> Counters:
        p = self.progress(at)
        labelable = self.objects - self.failed_objects
        machine_total = round(labelable * MACHINE_SHARE) if self.auto_labeling else 0
        human = int(p * (labelable - machine_total))
        # the model labels only once humans have given it enough to learn from
        machine = int(max(0.0, 2 * p - 1) * machine_total)
        failed = int(p * self.failed_objects)
        return Counters(human, machine, failed, self.objects - human - machine - failed)

    def log_lines(self) -> list[PlannedLine]:
        total = self.lines_per_stream
        streams = [(HUMAN_STREAM, self.labeling_start, 0.0)]
        if self.auto_labeling:
            halfway = (self.labeling_start + self.end) / 2
            # a millisecond later, so that a merge by timestamp is unambiguous
            streams.append((MACHINE_STREAM, halfway, 0.001))
        lines: list[PlannedLine] = []
        for stream, start, offset in streams:
            for i in range(1, total + 1):
                at = start + (self.end - start) * i / total + offset
                ingested = self.end + LATE_INGESTION if i == total else at
                text = self._line_text(stream, i == total, self.counters(at))
                message = f"[{stream}] line {i}/{total}: {text}"
                lines.append(PlannedLine(self.stream_name(stream), at, ingested, message))
        return lines

    def _line_text(self, stream: str, last: bool, c: Counters) -> str:
        if last and self.outcome == "Failed":
            return f"ERROR {self.failure_reason}"
        if last and stream == HUMAN_STREAM:
            return (
                f"labeling complete: {c.human + c.machine} of {self.objects} objects labeled "
                f"({c.human} by workers, {c.machine} by the model), {c.failed} failed"
            )
        if last:
            return f"final active learning model ready: {self.final_model_arn}"
        if stream == HUMAN_STREAM:
            return f"workers labeled {c.human} objects, {c.failed} failed, {c.unlabeled} to go"
        return f"model labeled {c.machine} objects"

    def stream_name(self, stream: str) -> str:
        return f"{self.name}/{stream}"

    def output(self, now: float) -> Result | None:
        status = self.timeline.current(now).status
        if status not in ("Completed", "Stopped"):
            return None
        path = self.request["OutputConfig"]["S3OutputPath"].rstrip("/")
        output: Result = {
            "OutputDatasetS3Uri": f"{path}/{self.name}/manifests/output/output.manifest"
        }
        if self.auto_labeling and status == "Completed":
            output["FinalActiveLearningModelArn"] = self.final_model_arn
        return output

    def describe(self, now: float, echo: Callable[[Params], Result]) -> Result:
        state = self.timeline.current(now)
        result = echo(self.request)
        result.update(
            LabelingJobName=self.name,
            LabelingJobArn=self.arn,
            LabelingJobStatus=state.status,
            LabelCounters=self.counters(now).to_api(),
            CreationTime=self.created,
            LastModifiedTime=state.start,
            JobReferenceCode=self.reference_code,
        )
        if state.status == "Failed":
            result["FailureReason"] = self.failure_reason
        output = self.output(now)
        if output is not None:
            result["LabelingJobOutput"] = output
        return result

    def summary(self, now: float) -> Result:
        state = self.timeline.current(now)
        task = self.request["HumanTaskConfig"]
        summary: Result = {
            "LabelingJobName": self.name,
            "LabelingJobArn": self.arn,
            "CreationTime": self.created,
            "LastModifiedTime": state.start,
            "LabelingJobStatus": state.status,
            "LabelCounters": self.counters(now).to_api(),
            "WorkteamArn": task["WorkteamArn"],
            "PreHumanTaskLambdaArn": task.get("PreHumanTaskLambdaArn"),
            "AnnotationConsolidationLambdaArn": task.get("AnnotationConsolidationConfig", {}).get(
                "AnnotationConsolidationLambdaArn"
            ),
            "InputConfig": self.request["InputConfig"],
            "LabelingJobOutput": self.output(now),
        }
        if state.status == "Failed":
            summary["FailureReason"] = self.failure_reason
        return summary


class LabelingJobs(JobTable[LabelingJob]):
    noun = "LabelingJob"
    what = "labeling job"
    log_group = LOG_GROUP
    detail_type = "SageMaker Ground Truth Labeling Job State Change"
    not_found_code = "ResourceNotFound"
    status_after_page = False
    summaries_member = "LabelingJobSummaryList"

    def new_job(self, params: Params, now: float) -> LabelingJob:
        return LabelingJob(self.sagemaker, params, now)

    async def check(self, params: Params) -> None:
        if params["LabelAttributeName"].lower().endswith("-metadata"):
            raise ApiError(
                "ValidationException",
                "LabelAttributeName must not end with '-metadata': Ground Truth writes "
                "that attribute itself.",
            )
        self._check_workteam(params["HumanTaskConfig"]["WorkteamArn"])

    def _check_workteam(self, arn: str) -> None:
        if PRIVATE_TEAM not in arn:
            return
        teams = self.sagemaker.kinds.get("workteam")
        if not isinstance(teams, Workteams) or teams.by_arn(arn) is None:
            raise ApiError(
                "ValidationException",
                f"The specified Workteam '{arn}' does not exist or you do not have access to it.",
            )


def install_kind(sagemaker: SageMaker) -> None:
    jobs = LabelingJobs(sagemaker)
    jobs.install()
    sagemaker.kinds["labeling"] = jobs
