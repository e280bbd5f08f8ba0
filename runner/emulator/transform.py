"""Batch transform jobs: Create, Describe, List and Stop on the emulator's clock.

CreateTransformJob refuses a ModelName that the emulated DescribeModel does not
know, as SageMaker does (ValidationException ``Could not find model "<arn>".``).
A job is InProgress from its creation; its instances are ready (its
TransformStartTime) after 10% of its duration, and it ends Completed or Failed
when the duration is over. StopTransformJob moves it to Stopping, then Stopped.

Each instance writes to two streams of ``/aws/sagemaker/TransformJobs``: the
container's, ``{job}/{instance-id}-{epoch}``
(``[i-0a1b...] line 2/10: POST /invocations 200 (batch 1)``), and the data log,
``{job}/{instance-id}-{epoch}/data-log``, one line per record
(``[sagemaker logs] i-0a1b... record 3/10: s3://bucket/in/part-1-00003 200``).
Instance ids are derived from the job name, so they repeat between runs. The
last line of each stream is stamped at the end but reaches CloudWatch 0.5 s
after the job turned terminal.

Behaviour tags (in the request's ``Tags``; all optional):

``smrun:emulator:duration``
    seconds from creation to the terminal status (float, default 6).
``smrun:emulator:outcome``
    ``Completed`` (default) or ``Failed``.
``smrun:emulator:failure-reason``
    FailureReason of a Failed job (default ``ClientError: See job logs for more
    information``); the last record of each data log fails with it.
``smrun:emulator:log-lines``
    container lines per instance (default 10; 0: no container stream).
``smrun:emulator:records``
    data-log lines per instance (default 10; 0: no data log).
``smrun:emulator:stop-delay``
    seconds from StopTransformJob to Stopped (default 1).

A job holds its ``TransformResources`` instances until it is terminal; a create
over one of the account's quotas is refused (:mod:`smrun.emulator.quotas`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from smrun.emulator.jobs import (
    LATE_INGESTION,
    EmulatedJob,
    JobTable,
    PlannedLine,
    Transition,
    spread,
)
from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.quotas import Demand
from smrun.emulator.resources import Result, SageMaker, call_handler

LOG_GROUP = "/aws/sagemaker/TransformJobs"
DEFAULT_DURATION = 6.0
DEFAULT_LOG_LINES = 10
DEFAULT_RECORDS = 10
DEFAULT_FAILURE_REASON = "ClientError: See job logs for more information"
OUTCOMES = ("Completed", "Failed")
STARTED_AT = 0.10  # fraction of the duration spent provisioning instances


def instance_id(job: str, instance: int) -> str:
    """An EC2-looking instance id (``i-`` and 17 hex digits), stable for a job name."""
    return "i-" + hashlib.sha256(f"{job.lower()}\x00{instance}".encode()).hexdigest()[:17]


class TransformJob(EmulatedJob):
    resource_type = "transform-job"

    def __init__(self, sagemaker: SageMaker, params: Params, created: float) -> None:
        super().__init__(sagemaker, params["TransformJobName"], params, created)
        tags = sagemaker.behaviour("transform", self.name, params.get("Tags"))
        self.duration = tags.number("duration", DEFAULT_DURATION, minimum=0.001)
        self.outcome = tags.choice("outcome", "Completed", OUTCOMES)
        self.failure_reason = tags.text("failure-reason", DEFAULT_FAILURE_REASON)
        self.lines_per_instance = tags.integer("log-lines", DEFAULT_LOG_LINES)
        self.records_per_instance = tags.integer("records", DEFAULT_RECORDS)
        self.stop_delay = tags.number("stop-delay", 1.0)
        resources = params["TransformResources"]
        self.instance_count = max(1, int(resources["InstanceCount"]))
        self.instance_type: str = resources["InstanceType"]
        self.started = created + STARTED_AT * self.duration
        self.end = created + self.duration
        self.timeline.transitions.append(Transition(self.outcome, self.end))

    def stream_name(self, instance: int, *, data_log: bool = False) -> str:
        stream = f"{self.name}/{instance_id(self.name, instance)}-{self.epoch}"
        return f"{stream}/data-log" if data_log else stream

    def log_lines(self) -> list[PlannedLine]:
        lines: list[PlannedLine] = []
        for n in range(1, self.instance_count + 1):
            lines += self._stream_lines(n, self.lines_per_instance, self._container_line, False)
            lines += self._stream_lines(n, self.records_per_instance, self._record_line, True)
        return lines

    def _stream_lines(
        self, n: int, total: int, text: Callable[[int, int, int], str], data_log: bool
    ) -> list[PlannedLine]:
        stream = self.stream_name(n, data_log=data_log)
        planned = []
        for i, at in enumerate(spread(total, self.started, self.end), start=1):
            # Instances write a millisecond apart so a merge by timestamp is unambiguous.
            at += (n - 1) / 1000
            ingested = self.end + LATE_INGESTION if i == total else at
            planned.append(PlannedLine(stream, at, ingested, text(n, i, total)))
        return planned

    def _container_line(self, n: int, i: int, total: int) -> str:
        if i == total:
            failed = self.outcome == "Failed"
            body = f"ERROR {self.failure_reason}" if failed else "all batches served"
        elif i == 1:
            body = "Starting the inference server"
        else:
            body = f"POST /invocations 200 (batch {i - 1})"
        return f"[{instance_id(self.name, n)}] line {i}/{total}: {body}"

    def _record_line(self, n: int, i: int, total: int) -> str:
        source = self.request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        result = self.failure_reason if i == total and self.outcome == "Failed" else "200"
        record = f"{source.rstrip('/')}/part-{n}-{i:05d}"
        return f"[sagemaker logs] {instance_id(self.name, n)} record {i}/{total}: {record} {result}"

    def _times(self, now: float) -> Result:
        times: Result = {
            "CreationTime": self.created,
            **self.run_times(now, self.started, start="TransformStartTime", end="TransformEndTime"),
        }
        if self.timeline.current(now).status == "Failed":
            times["FailureReason"] = self.failure_reason
        return times

    def describe(self, now: float, echo: Callable[[Params], Result]) -> Result:
        result = echo(self.request)
        result.update(
            TransformJobName=self.name,
            TransformJobArn=self.arn,
            TransformJobStatus=self.timeline.current(now).status,
            **self._times(now),
        )
        return result

    def summary(self, now: float) -> Result:
        members = self._times(now)
        members.pop("TransformStartTime", None)
        return {
            "TransformJobName": self.name,
            "TransformJobArn": self.arn,
            "TransformJobStatus": self.timeline.current(now).status,
            "LastModifiedTime": self.timeline.current(now).start,
            **members,
        }


class TransformJobs(JobTable[TransformJob]):
    noun = "TransformJob"
    what = "transform job"
    log_group = LOG_GROUP
    detail_type = "SageMaker Transform Job State Change"
    default_order = "Descending"  # as ListTransformJobs documents it

    def new_job(self, params: Params, now: float) -> TransformJob:
        return TransformJob(self.sagemaker, params, now)

    def demand(self, job: TransformJob) -> Demand:
        return Demand.of("transform", [(job.instance_type, job.instance_count)])

    async def check(self, params: Params) -> None:
        """The model must exist when the job is created (later deletes don't matter)."""
        model = params["ModelName"]
        describe = self.sagemaker.operations.get("DescribeModel")
        if describe is not None:
            try:
                await call_handler(describe, {"ModelName": model})
                return
            except ApiError:
                pass
        arn = self.sagemaker.arn("model", model)
        raise ApiError("ValidationException", f'Could not find model "{arn}".')


def install_kind(sagemaker: SageMaker) -> None:
    jobs = TransformJobs(sagemaker)
    jobs.install()
    sagemaker.kinds["transform"] = jobs
