"""Plain shared types: what a job is asked for, where it stands, how it ended.

A leaf module: it imports nothing of the runner, so every layer (handlers, the
job, events, the console, the journal) can use these without a cycle.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Description = Mapping[str, Any]  # a Describe* response (the resource's own member)
Request = dict[str, Any]  # a Create* request, in the API's own shape


class Outcome(str, enum.Enum):
    """How a job ended, from the step's point of view."""

    SUCCEEDED = "Succeeded"
    """Reached the kind's success state."""
    FAILED = "Failed"
    """Reached a failure state, was stopped by someone else, or timed out."""
    STOPPED_BY_US = "StoppedByUs"
    """Stopped because this runner asked (cancel or Job.stop())."""
    NOT_STARTED = "NotStarted"
    """Never created: a dependency failed or the run was cancelled."""
    UNKNOWN = "Unknown"
    """The runner could not learn the state before its deadline."""
    DETACHED = "Detached"
    """Left running on purpose (--on-cancel detach)."""

    @property
    def ok(self) -> bool:
        return self is Outcome.SUCCEEDED


class Phase(str, enum.Enum):
    """Where a status stands in a kind's terminal-state table."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


class JobError(Exception):
    """A job could not be started, attached or followed; the message says why
    and becomes the job's failure reason."""


@dataclass(frozen=True)
class LogSource:
    """A set of CloudWatch streams to follow: every stream of ``group`` whose
    name starts with ``prefix``. ``label`` is shown in front of each line
    (with the stream's instance) when a job has more than one source."""

    group: str
    prefix: str
    label: str = ""


@dataclass
class JobResult:
    """What one job came to: its outcome, outputs (v1 names) and facts."""

    key: str
    """The job's key in the run."""
    kind: str
    """The job's kind: ``training``, ``endpoint``, ..."""
    name: str | None
    """The SageMaker resource's name (None when it was never named)."""
    outcome: Outcome
    """How it ended."""
    status: str | None = None
    """SageMaker's last status of it."""
    failure_reason: str | None = None
    """Why it failed, was stopped or never started, in words."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """Its outputs under the v1 components' names (``model_artifact_url``, ...)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Facts of the kind: billable seconds, final metrics, a tuning job's best trial, ..."""
    arn: str | None = None
    """The resource's ARN."""
    created: datetime | None = None
    """When SageMaker created it."""
    ended: datetime | None = None
    """When it reached its terminal status."""
    attached: bool = False
    """True when this run found it existing (a restart) rather than created it."""

    @property
    def ok(self) -> bool:
        """Whether it succeeded."""
        return self.outcome.ok

    @property
    def duration_seconds(self) -> float | None:
        """From creation to the end, where both are known."""
        if self.created and self.ended:
            return (self.ended - self.created).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.key,
            "kind": self.kind,
            "name": self.name,
            "outcome": self.outcome.value,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "duration_seconds": self.duration_seconds,
            "outputs": self.outputs,
            "details": self.details,
            "arn": self.arn,
            "attached": self.attached,
            "created": self.created.isoformat() if self.created else None,
            "ended": self.ended.isoformat() if self.ended else None,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> JobResult:
        """The result :meth:`to_dict` wrote (a stored or streamed record)."""
        def when(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        return cls(
            key=record["job"], kind=record["kind"], name=record.get("name"),
            outcome=Outcome(record["outcome"]), status=record.get("status"),
            failure_reason=record.get("failure_reason"),
            outputs=dict(record.get("outputs") or {}),
            details=dict(record.get("details") or {}), arn=record.get("arn"),
            created=when(record.get("created")), ended=when(record.get("ended")),
            attached=bool(record.get("attached")),
        )
