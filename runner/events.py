"""Typed events and the bus that fans them out to sinks.

Everything a run produces (a job submitted, a status change, a log line, a
result) is one of these events. Sinks (console, outputs writer, journal,
``Job.events()`` subscribers) receive every event in publication order. The
bus never blocks the engine: subscribers get unbounded streams.

Error handling: a sink that raises is removed, and reported once (an error
``Notice`` with its traceback, to the other sinks); the event that raised and
every later one still reach the others, so no job loses its result.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from smrun.types import JobResult


@dataclass(frozen=True)
class Event:
    """What every event has: the job it is about, and when it was published."""

    job: str
    """The job's key in the run (its name in the manifest); empty for a
    notice of the engine itself."""
    time: float = field(default=0.0, kw_only=True)
    """When it was published: wall clock, seconds since the epoch."""


@dataclass(frozen=True)
class Submitted(Event):
    """A job's resource was created, or found and followed."""

    kind: str
    """The job's kind: ``training``, ``endpoint``, ..."""
    name: str
    """The SageMaker resource's name."""
    attached: bool
    """True when the resource existed already (a restart) and is followed, not created."""


@dataclass(frozen=True)
class StatusChanged(Event):
    """A job's resource changed status (or secondary status)."""

    status: str
    """SageMaker's status: ``InProgress``, ``Completed``, ``InService``, ..."""
    secondary: str | None = None
    """A training job's secondary status (``Downloading``, ``Training``, ...)."""
    message: str | None = None
    """SageMaker's message for it, where it gives one."""
    changed: float | None = None
    """When SageMaker says it changed (epoch seconds): ``time - changed`` is
    how late the change was seen."""


@dataclass(frozen=True)
class LogLine(Event):
    """One CloudWatch Logs event of a job: each is published once."""

    stream: str
    """The full CloudWatch stream name."""
    instance: str
    """A short label: the stream's instance part (and its source's label)."""
    timestamp: int
    """The event's timestamp, milliseconds since the epoch."""
    message: str
    """The line itself."""


@dataclass(frozen=True)
class Notice(Event):
    """Something a person should read that is not a status or a log line
    (a retry, a dependency failure, an endpoint left behind...)."""

    level: str
    """``"info"``, ``"warning"`` or ``"error"``."""
    message: str
    """What happened, and what to do about it where there is something to do."""
    fields: dict[str, Any] = field(default_factory=dict)
    """Structured details, for machine readers."""


@dataclass(frozen=True)
class Finished(Event):
    """A job ended; the last event of a job."""

    result: JobResult
    """How it ended, and its outputs."""


# --- the one serializer: an event as a plain record and back -------------------
# The console (JSON lines), the journal and store, the daemon's SSE streams and
# its clients all read and write these records; nothing else maps events.

EVENT_TYPES: dict[str, type[Event]] = {
    "submitted": Submitted,
    "status": StatusChanged,
    "log": LogLine,
    "notice": Notice,
    "finished": Finished,
}
_TYPE_NAMES = {cls: name for name, cls in EVENT_TYPES.items()}


def event_type(event: Event) -> str:
    """The record type of an event: ``"status"`` for a StatusChanged, ..."""
    return _TYPE_NAMES[type(event)]


def to_record(event: Event) -> dict[str, Any]:
    """``{"type": ..., "job": ..., "time": ..., <the event's own fields>}``, JSON-ready
    but for values a job's outputs carry (datetimes); a result is its ``to_dict()``."""
    record: dict[str, Any] = {"type": event_type(event), "job": event.job, "time": event.time}
    for member in fields(event):
        if member.name not in record:
            value = getattr(event, member.name)
            record[member.name] = value.to_dict() if isinstance(value, JobResult) else value
    return record


def from_record(record: dict[str, Any]) -> Event:
    """The event a :func:`to_record` record stands for.

    Error handling: an unknown ``type`` or a missing field raises ValueError."""
    cls = EVENT_TYPES.get(str(record.get("type")))
    if cls is None:
        raise ValueError(f"not an event record: type {record.get('type')!r}")
    values = {k: v for k, v in record.items() if k != "type"}
    if cls is Finished:
        values["result"] = JobResult.from_dict(values["result"])
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"not a {record['type']} record: {error}") from None


Sink = Callable[[Event], None]


class Bus:
    """Fans every published event out to the sinks and subscribers."""

    def __init__(self) -> None:
        self._sinks: list[Sink] = []
        self._subscribers: list[
            tuple[Callable[[Event], bool], MemoryObjectSendStream[Event]]
        ] = []

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def publish(self, event: Event) -> None:
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception as error:
                self._remove(sink, error, event)
        for accept, stream in list(self._subscribers):
            if accept(event):
                try:
                    stream.send_nowait(event)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._subscribers.remove((accept, stream))

    def flush(self) -> None:
        """Ask sinks that buffer (a console) to write out what they hold. Log
        followers call it before saving positions, so that a saved position
        never runs ahead of what was written."""
        for sink in list(self._sinks):
            flush = getattr(sink, "flush", None)
            if callable(flush):
                try:
                    flush()
                except Exception as error:
                    self._remove(sink, error, None)

    def _remove(self, sink: Sink, error: Exception, event: Event | None) -> None:
        if sink not in self._sinks:
            return
        self._sinks.remove(sink)
        name = getattr(sink, "__qualname__", None) or type(sink).__name__
        during = f" on {type(event).__name__} of job {event.job!r}" if event else " on flush"
        self.publish(Notice(
            event.job if event else "", "error",
            f"event sink {name} raised {type(error).__name__}: {error}{during}; "
            "it is removed and gets no more events",
            {"traceback": "".join(traceback.format_exception(error))},
            time=time.time(),
        ))

    def subscribe(
        self, accept: Callable[[Event], bool] = lambda e: True
    ) -> MemoryObjectReceiveStream[Event]:
        """A stream of every later event that ``accept`` takes."""
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        self._subscribers.append((accept, send))
        return receive

    def close(self) -> None:
        """End every subscription (subscribers see end of iteration)."""
        for _, stream in self._subscribers:
            stream.close()
        self._subscribers.clear()
