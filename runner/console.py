"""What a person (or a log collector) sees: events rendered through structlog.

Two renderings of the same key-value events: a compact, coloured one for a
terminal and JSON lines (the default when stdout is not a TTY, as in a KFP
pod). Secrets are redacted in the processor chain, whatever the rendering.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from runner.events import Event, Finished, LogLine, Notice, StatusChanged, Submitted
from runner.job import JobResult

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|credential|private[_-]?key|api[_-]?key|access[_-]?key)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"((?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[A-Z0-9]{16})"  # access key ids
    # secret access keys: 40 base64 characters of mixed case (so hex digests are kept)
    r"|(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+=]{0,39}[A-Z])(?=[A-Za-z0-9/+=]{0,39}[a-z])"
    r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
    r"|(?:FwoGZXIvYXdzE|IQoJb3JpZ2luX2Vj)[A-Za-z0-9/+=]{20,}"  # session tokens
)


# "parameter Environment.DB_PASSWORD, value: hunter2, type: ..." (validation messages)
_SECRET_IN_MESSAGE = re.compile(
    r"(?P<head>[\w.\-\[\]]*" + _SECRET_KEY.pattern + r"[\w.\-\[\]]*'?,? value: )"
    r"(?P<value>.*?)(?=, type: |$)",
    re.IGNORECASE | re.MULTILINE,
)


def redact_text(text: str) -> str:
    text = _SECRET_IN_MESSAGE.sub(lambda m: m.group("head") + REDACTED, text)
    return _SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any, key: str = "") -> Any:
    """Copy of ``value`` with anything that looks like a secret replaced."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) and not isinstance(v, Mapping)
                    else redact(v, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_processor(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return {k: redact(v, k) for k, v in event_dict.items()}


_COLOURS = ("\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m", "\x1b[34m", "\x1b[91m", "\x1b[96m")
_RESET, _DIM, _BOLD, _RED, _GREEN = "\x1b[0m", "\x1b[2m", "\x1b[1m", "\x1b[31m", "\x1b[32m"
_MARKS = {"submitted": "▶", "status": "◆", "log": "│", "notice": "!", "finished": "■"}


class HumanRenderer:
    """Renders one event per line: time, job (coloured per job), a mark, the text."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self._job_colours: dict[str, str] = {}
        self._width = 12

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour else text

    def __call__(self, logger: Any, method: str, ev: MutableMapping[str, Any]) -> str:
        kind = str(ev.pop("event", ""))
        job = str(ev.pop("job", ""))
        stamp = time.strftime("%H:%M:%S", time.localtime(float(ev.pop("time", time.time()))))
        self._width = max(self._width, len(job))
        colour = self._job_colours.setdefault(
            job, _COLOURS[len(self._job_colours) % len(_COLOURS)]
        )
        head = f"{self._paint(_DIM, stamp)} {self._paint(colour, job.ljust(self._width))}"
        mark = _MARKS.get(kind, "·")
        if kind == "notice" and ev.get("level") == "info":
            mark = "·"
        if kind == "log":
            return f"{head} {mark} {self._paint(_DIM, str(ev.get('instance', '')))} " \
                   f"{ev.get('message', '')}"
        text = str(ev.pop("text", ""))
        if kind == "finished":
            ok = ev.get("outcome") == "Succeeded"
            text = self._paint(_GREEN if ok else _RED, text)
        elif kind == "notice" and ev.get("level") in ("warning", "error"):
            text = self._paint(_RED, text)
        return f"{head} {mark} {text}"


class _BufferedLogger:
    """Writes rendered events without flushing; :meth:`flush` writes them out.
    Log lines are flushed once per read round, everything else at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []

    def msg(self, message: str) -> None:
        # held here, not in the stream's own buffer, which would write a large
        # round out in pieces before its positions are saved
        self._pending.append(message + "\n")

    info = msg

    def flush(self) -> None:
        if self._pending:
            text, self._pending = "".join(self._pending), []
            self._stream.write(text)
        self._stream.flush()


class Console:
    """A bus sink that renders every event."""

    def __init__(self, stream: TextIO | None = None, *, fmt: str | None = None) -> None:
        self.stream: TextIO = stream or sys.stdout
        if fmt is None:
            fmt = "console" if self.stream.isatty() else "json"
        renderer: Any
        if fmt == "json":
            renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)
        else:
            renderer = HumanRenderer(colour=self.stream.isatty())
        self.fmt = fmt
        self._out = _BufferedLogger(self.stream)
        self.log = structlog.wrap_logger(self._out, processors=[redact_processor, renderer])

    def flush(self) -> None:
        self._out.flush()

    def __call__(self, event: Event) -> None:
        log = self.log
        if isinstance(event, LogLine):
            log.info("log", job=event.job, time=event.time, instance=event.instance,
                     timestamp=event.timestamp, message=event.message, stream=event.stream)
            return  # flushed by the log follower, once per read round
        elif isinstance(event, Submitted):
            how = "attached to" if event.attached else "created"
            log.info("submitted", job=event.job, time=event.time, kind=event.kind,
                     name=event.name, attached=event.attached,
                     text=f"{how} {event.kind} {event.name}")
        elif isinstance(event, StatusChanged):
            text = event.status + (f" · {event.secondary}" if event.secondary else "")
            if event.message:
                text += f" — {event.message}"
            log.info("status", job=event.job, time=event.time, status=event.status,
                     secondary=event.secondary, message=event.message, text=text)
        elif isinstance(event, Notice):
            log.info("notice", job=event.job, time=event.time, level=event.level,
                     text=event.message, **event.fields)
        elif isinstance(event, Finished):
            r = event.result
            log.info("finished", job=event.job, time=event.time, outcome=r.outcome.value,
                     text=describe_result(r), result=r.to_dict())
        self.flush()

    def summary(self, results: Mapping[str, JobResult]) -> None:
        if self.fmt == "json":
            self.log.info("summary", jobs=[r.to_dict() for r in results.values()],
                          ok=all(r.ok for r in results.values()), time=time.time(), job="")
            self.flush()
            return
        print(summary_table(results), file=self.stream, flush=True)


def describe_result(r: JobResult) -> str:
    parts = [r.outcome.value]
    if r.duration_seconds is not None:
        parts.append(f"in {r.duration_seconds:.1f}s")
    if "billable_seconds" in r.details:
        parts.append(f"billable {r.details['billable_seconds']}s")
    if r.failure_reason:
        parts.append(f"reason: {r.failure_reason}")
    return " · ".join(parts)


def summary_table(results: Mapping[str, JobResult]) -> str:
    rows = [("JOB", "KIND", "OUTCOME", "DURATION", "BILLABLE", "DETAIL")]
    for r in results.values():
        duration = f"{r.duration_seconds:.1f}s" if r.duration_seconds is not None else "-"
        billable = (f"{r.details['billable_seconds']}s" if "billable_seconds" in r.details
                    else "-")
        detail = r.failure_reason or json.dumps(r.outputs, default=str)
        rows.append((r.key, r.kind, r.outcome.value, duration, billable, detail))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["", "Summary"]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:5], widths, strict=True))
                     + "  " + row[5])
    ok = sum(r.ok for r in results.values())
    lines.append(f"{ok}/{len(results)} jobs succeeded")
    return "\n".join(lines)
