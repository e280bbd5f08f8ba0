"""Processing jobs: Create, Describe, List and Stop on the emulator's clock.

A job is InProgress from its creation; its instances are ready (its
ProcessingStartTime) after 10% of its duration, and it ends Completed or
Failed when the duration is over. StopProcessingJob moves it to Stopping, then
Stopped. Each instance writes numbered lines to its own stream
``{job}/algo-{n}-{epoch}`` in ``/aws/sagemaker/ProcessingJobs``, created when
its first line is due; every line is unique
(``[algo-2] line 3/20: processed shard 1 of 17``), and the last line of each
stream is stamped at the end but reaches CloudWatch 0.5 s after the job
turned terminal. StoppingCondition is echoed, not enforced.

Behaviour tags (in the request's ``Tags``; all optional):

``smrun:emulator:duration``
    seconds from creation to the terminal status (float, default 6).
``smrun:emulator:outcome``
    ``Completed`` (default) or ``Failed``.
``smrun:emulator:failure-reason``
    FailureReason of a Failed job (default ``AlgorithmError: See job logs for
    more information``, as SageMaker words it).
``smrun:emulator:exit-message``
    ExitMessage once the job is Completed or Failed (default: none when
    Completed; a Python error when Failed). The container's last line repeats it.
``smrun:emulator:log-lines``
    lines per instance (default 20; 0 writes no logs at all).
``smrun:emulator:stop-delay``
    seconds from StopProcessingJob to Stopped (default 1).

A job holds its ``ProcessingResources.ClusterConfig`` instances until it is
terminal; a create over one of the account's quotas is refused
(:mod:`smrun.emulator.quotas`).
"""

from __future__ import annotations

from collections.abc import Callable

from smrun.emulator.jobs import (
    LATE_INGESTION,
    EmulatedJob,
    JobTable,
    PlannedLine,
    Transition,
    spread,
)
from smrun.emulator.protocol import Params
from smrun.emulator.quotas import Demand
from smrun.emulator.resources import Result, SageMaker

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
DEFAULT_DURATION = 6.0
DEFAULT_LOG_LINES = 20
DEFAULT_FAILURE_REASON = "AlgorithmError: See job logs for more information"
DEFAULT_EXIT_MESSAGE = "ValueError: could not convert string to float: 'n/a'"
OUTCOMES = ("Completed", "Failed")
STARTED_AT = 0.10  # fraction of the duration spent provisioning instances


class ProcessingJob(EmulatedJob):
    resource_type = "processing-job"

    def __init__(self, sagemaker: SageMaker, params: Params, created: float) -> None:
        super().__init__(sagemaker, params["ProcessingJobName"], params, created)
        tags = sagemaker.behaviour("processing", self.name, params.get("Tags"))
        self.duration = tags.number("duration", DEFAULT_DURATION, minimum=0.001)
        self.outcome = tags.choice("outcome", "Completed", OUTCOMES)
        self.failure_reason = tags.text("failure-reason", DEFAULT_FAILURE_REASON)
        default_exit = DEFAULT_EXIT_MESSAGE if self.outcome == "Failed" else ""
        self.exit_message = tags.text("exit-message", default_exit)
        self.lines_per_instance = tags.integer("log-lines", DEFAULT_LOG_LINES)
        self.stop_delay = tags.number("stop-delay", 1.0)
        cluster = params["ProcessingResources"]["ClusterConfig"]
        self.instance_count = max(1, int(cluster.get("InstanceCount", 1)))
        self.instance_type: str = cluster["InstanceType"]
        self.started = created + STARTED_AT * self.duration
        self.end = created + self.duration
        self.timeline.transitions.append(Transition(self.outcome, self.end))

    def stream_name(self, instance: int) -> str:
        return f"{self.name}/algo-{instance}-{self.epoch}"

    def log_lines(self) -> list[PlannedLine]:
        total = self.lines_per_instance
        lines: list[PlannedLine] = []
        for n in range(1, self.instance_count + 1):
            # Instances write a millisecond apart so a merge by timestamp is unambiguous.
            times = spread(total, self.started, self.end)
            for i, at in enumerate(times, start=1):
                at += (n - 1) / 1000
                ingested = self.end + LATE_INGESTION if i == total else at
                text = f"[algo-{n}] line {i}/{total}: {self._line_text(i, total)}"
                lines.append(PlannedLine(self.stream_name(n), at, ingested, text))
        return lines

    def _line_text(self, i: int, total: int) -> str:
        if i == total:
            if self.outcome == "Failed":
                return f"ERROR {self.exit_message}"
            return "processing complete, uploading outputs"
        if i == 1:
            return "reading inputs from /opt/ml/processing/input"
        return f"processed shard {i - 1} of {total - 2}"

    def _describe_times(self, now: float) -> Result:
        state = self.timeline.current(now)
        return {
            "CreationTime": self.created,
            "LastModifiedTime": state.start,
            **self.run_times(
                now, self.started, start="ProcessingStartTime", end="ProcessingEndTime"
            ),
        }

    def _outcome_members(self, now: float) -> Result:
        status = self.timeline.current(now).status
        members: Result = {}
        if status == "Failed":
            members["FailureReason"] = self.failure_reason
        if status in OUTCOMES and self.exit_message:
            members["ExitMessage"] = self.exit_message
        return members

    def describe(self, now: float, echo: Callable[[Params], Result]) -> Result:
        result = echo(self.request)
        result.update(
            ProcessingJobName=self.name,
            ProcessingJobArn=self.arn,
            ProcessingJobStatus=self.timeline.current(now).status,
            **self._describe_times(now),
            **self._outcome_members(now),
        )
        return result

    def summary(self, now: float) -> Result:
        times = self._describe_times(now)
        times.pop("ProcessingStartTime", None)
        return {
            "ProcessingJobName": self.name,
            "ProcessingJobArn": self.arn,
            "ProcessingJobStatus": self.timeline.current(now).status,
            **times,
            **self._outcome_members(now),
        }


class ProcessingJobs(JobTable[ProcessingJob]):
    noun = "ProcessingJob"
    what = "processing job"
    log_group = LOG_GROUP
    detail_type = "SageMaker Processing Job State Change"

    def new_job(self, params: Params, now: float) -> ProcessingJob:
        return ProcessingJob(self.sagemaker, params, now)

    def demand(self, job: ProcessingJob) -> Demand:
        return Demand.of("processing", [(job.instance_type, job.instance_count)])


def install_kind(sagemaker: SageMaker) -> None:
    jobs = ProcessingJobs(sagemaker)
    jobs.install()
    sagemaker.kinds["processing"] = jobs
