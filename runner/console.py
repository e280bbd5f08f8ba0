"""What a person (or a log collector) sees: events rendered through structlog.

Two renderings of the same key-value events. JSON lines are the default when
stdout is not a TTY (a KFP pod parses them, so their keys, order and the final
``summary`` record never change). The console rendering prints one line per
event through rich; on a terminal it also pins a live status table under the
scrolling lines, because with dozens of jobs the log lines alone no longer say
which jobs are still running, waiting or already failed. The run ends with a
summary table a person can read, the outputs one per line (so a value is never
wrapped inside a table cell) and a count.

A matrix (one job template expanded into items ``NAME[i]``) is named to the
console as a :class:`Fold`; unless the console was made with ``expand=True``
the live table and the summary show each matrix as one row of counts (a run
of a thousand items is not a thousand rows), and the summary names its best
item by a final metric and its slowest one. The JSON ``summary`` record keeps
every item in ``jobs`` and adds a ``matrices`` list when folds were named.

Both renderings go through one structlog chain that starts with
:func:`redact_processor`, and the live table and the summary are built from
what that chain hands on, so a secret is redacted wherever it would show.

Log lines are held until :meth:`Console.flush`, which the log follower calls
once per read round *before* it saves its read positions: after ``flush()``
returns every line received so far has been written, so a saved position never
runs ahead of what was shown. Other events are written at once.
"""

from __future__ import annotations

import atexit
import json
import math
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import structlog
from rich import box
from rich.console import Console as RichConsole
from rich.console import ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from smrun.events import Event, Finished, LogLine, Notice, StatusChanged, Submitted, to_record
from smrun.types import JobResult

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


# ------------------------------------------------------------------ matrices


@dataclass(frozen=True)
class Fold:
    """One matrix of the run: its key, its items' keys in order, and the final
    metric (``details["metrics"]``) that names its best item, the lowest
    (``direction="min"``) or highest (``"max"``) among the items that
    succeeded; with ``metric=None`` no item is named best."""

    key: str
    items: tuple[str, ...]
    metric: str | None = None
    direction: str = "min"

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(f"direction is 'min' or 'max', not {self.direction!r}")
        object.__setattr__(self, "items", tuple(self.items))


# ------------------------------------------------------------------ constants

_JOB_STYLES = ("cyan", "magenta", "yellow", "green", "blue", "bright_red", "bright_cyan")
_MARKS = {"submitted": "▶", "status": "◆", "log": "│", "notice": "!", "finished": "■"}
# how a finished job is counted in the live header, in this order
_OUTCOME_WORDS = {
    "Succeeded": "succeeded", "Failed": "failed", "StoppedByUs": "stopped",
    "NotStarted": "not started", "Unknown": "unknown", "Detached": "detached",
}
_OUTCOME_STYLES = {"Succeeded": "green", "NotStarted": "dim", "Detached": "yellow"}
_PROGRESS_FROM = 10  # jobs from which the live view shows a progress bar
_BAR_WIDTH = 40
_PLAIN_WIDTH = 4096  # off a terminal nothing is wrapped: a line is a line
_JOB_COLUMN_MAX = 40  # the widest job column plan() sets, and the live table allows


def _clock_text(seconds: float) -> str:
    """12s, 5m07s, 2h05m: an elapsed time in a narrow column."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 60 else _clock_text(seconds)


def _value_text(value: Any) -> str:
    """An output value on one line: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _outcome_style(outcome: str) -> str:
    return _OUTCOME_STYLES.get(outcome, "red")


# ------------------------------------------------------------------ the board


@dataclass(eq=False)
class _Row:
    """Where one job stands, as the live table shows it."""

    key: str
    index: int
    kind: str = ""
    submitted: float | None = None  # event time of Submitted
    status: str | None = None
    secondary: str | None = None
    finished: float | None = None  # event time of Finished
    outcome: str | None = None
    last_log: float | None = None  # the last line's own timestamp, epoch seconds

    @property
    def running(self) -> bool:
        return self.outcome is None and self.submitted is not None

    @property
    def rank(self) -> int:
        """Which rows stay when they do not all fit: failed, running, waiting, done."""
        if self.outcome is None:
            return 1 if self.running else 2
        return 3 if self.outcome in ("Succeeded", "NotStarted", "Detached") else 0

    @property
    def label(self) -> str:
        """The row's status as one word, for the table and the folded counts."""
        if self.outcome is not None:
            return self.outcome
        if self.submitted is None:
            return "waiting"
        return self.status or "Submitted"

    @property
    def state(self) -> str:
        """The word the live header counts the row under: running, waiting, failed, ..."""
        if self.outcome is not None:
            return _OUTCOME_WORDS.get(self.outcome, self.outcome.lower())
        return "running" if self.running else "waiting"


@dataclass(eq=False)
class _Group:
    """The rows of one matrix's items, shown as one row of the live table."""

    fold: Fold
    rows: list[_Row]

    @property
    def index(self) -> int:
        return min(r.index for r in self.rows)

    @property
    def rank(self) -> int:
        return min(r.rank for r in self.rows)


class _Board:
    """The state of every job, fed by the structlog chain (after redaction)
    on the event loop thread and read by the live display's refresh thread."""

    def __init__(self, clock: Callable[[], float], expand: bool = False) -> None:
        self._clock = clock
        self._expand = expand
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._styles: dict[str, str] = {}
        self._fold_of: dict[str, Fold] = {}  # item key -> its matrix

    def style(self, job: str) -> str:
        """The job's colour, the same in the scrolling lines and the table."""
        style = self._styles.get(job)
        if style is None:
            style = self._styles[job] = _JOB_STYLES[len(self._styles) % len(_JOB_STYLES)]
        return style

    def _row(self, job: str) -> _Row:
        row = self._rows.get(job)
        if row is None:
            row = self._rows[job] = _Row(job, len(self._rows))
            self.style(job)
        return row

    def plan(self, jobs: Mapping[str, str]) -> None:
        with self._lock:
            for job, kind in jobs.items():
                self._row(job).kind = kind

    def fold(self, folds: Sequence[Fold]) -> None:
        """The run's matrices: each is shown as one row (unless expanded). Their
        items are rows from now on (waiting until submitted), so the header
        counts them even before they are planned."""
        with self._lock:
            self._fold_of = {item: fold for fold in folds for item in fold.items}
            for fold in folds:
                self.style(fold.key)
                for item in fold.items:
                    self._row(item)

    def track(
        self, logger: Any, method: str, ev: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor: notes what the event says about its job."""
        name, job = ev.get("event"), str(ev.get("job", ""))
        if not job or name not in ("submitted", "status", "log", "finished"):
            return ev
        with self._lock:
            row = self._row(job)
            if name == "submitted":
                row.kind = str(ev.get("kind") or row.kind)
                row.submitted = float(ev.get("time") or self._clock())
            elif name == "status":
                row.status, row.secondary = ev.get("status"), ev.get("secondary")
            elif name == "log":
                row.last_log = float(ev.get("timestamp") or 0) / 1000
            else:
                row.outcome = str(ev.get("outcome"))
                row.finished = float(ev.get("time") or self._clock())
                result = ev.get("result")
                if isinstance(result, Mapping) and not row.kind:
                    row.kind = str(result.get("kind") or "")
        return ev

    def view(self, width: int, height: int) -> RenderableType:
        """The live view for a terminal ``height`` lines high: a header of
        counts, a progress bar with many jobs, a row per job that fits and the
        rest folded into counts. Every part is one line, so the height is exact."""
        with self._lock:  # rows are only read while the event loop cannot change them
            return self._view(list(self._rows.values()), self._clock(), width, height)

    def _view(self, rows: list[_Row], now: float, width: int, height: int) -> RenderableType:
        # at most two thirds of the terminal, so that log lines still scroll above
        budget = max(4, min(height - 2, height * 2 // 3))
        fixed = 2  # the header and the table's column names
        progress = len(rows) >= _PROGRESS_FROM  # counted in jobs, folded or not
        entries = self._entries(rows)
        shown, hidden = entries, []
        if fixed + progress + len(entries) > budget:
            progress = True
            room = max(0, budget - fixed - 2)  # less the progress bar and the fold line
            keep = set(sorted(entries, key=lambda e: (e.rank, e.index))[:room])
            shown = [e for e in entries if e in keep]
            hidden = [e for e in entries if e not in keep]
        parts: list[RenderableType] = [
            Rule(_header(rows), align="left", style="dim", characters="─")
        ]
        if progress:
            parts.append(_progress(rows))
        parts += self._table(shown, now, width)
        if hidden:
            parts.append(_folded([r for e in hidden
                                  for r in (e.rows if isinstance(e, _Group) else [e])]))
        return Group(*parts)

    def _entries(self, rows: Sequence[_Row]) -> list[_Row | _Group]:
        """The table's rows: a job's own, or one per matrix where its first item is."""
        if self._expand or not self._fold_of:
            return list(rows)
        entries: list[_Row | _Group] = []
        groups: dict[str, _Group] = {}
        for row in rows:
            fold = self._fold_of.get(row.key)
            if fold is None:
                entries.append(row)
                continue
            group = groups.get(fold.key)
            if group is None:
                group = groups[fold.key] = _Group(fold, [])
                entries.append(group)
            group.rows.append(row)
        return entries

    def _table(self, rows: Iterable[_Row | _Group], now: float, width: int) -> list[Text]:
        cells: list[list[Text]] = []
        for row in rows:
            if isinstance(row, _Group):
                cells.append(self._group_cells(row, now))
                continue
            status = Text(row.label)
            if row.outcome is not None:
                status.stylize(_outcome_style(row.outcome))
            elif row.submitted is None:
                status.stylize("dim")
            elif row.secondary and row.secondary != row.status:
                status.append(f" · {row.secondary}")
            elapsed = ""
            if row.submitted is not None:
                elapsed = _clock_text((row.finished or now) - row.submitted)
            last = (time.strftime("%H:%M:%S", time.localtime(row.last_log))
                    if row.last_log is not None else "")
            cells.append([Text(row.key, style=self.style(row.key)), Text(row.kind, style="dim"),
                          status, Text(elapsed), Text(last, style="dim")])
        return _grid(cells, width)

    def _group_cells(self, group: _Group, now: float) -> list[Text]:
        """``sweep (200 items)  training  150/200 · 5 failed · 40 running (Training) · …``:
        elapsed from the first item's start to the last one's end (or now)."""
        rows, fold = group.rows, group.fold
        kinds = ", ".join(sorted({r.kind for r in rows if r.kind}))
        started = [r.submitted for r in rows if r.submitted is not None]
        elapsed = ""
        if started:
            ends = [r.finished for r in rows if r.finished is not None]
            end = max(ends) if all(r.outcome is not None for r in rows) and ends else now
            elapsed = _clock_text(end - min(started))
        logs = [r.last_log for r in rows if r.last_log is not None]
        last = time.strftime("%H:%M:%S", time.localtime(max(logs))) if logs else ""
        return [Text(f"{fold.key} ({_items_text(len(rows))})", style=self.style(fold.key)),
                Text(kinds, style="dim"), _group_status(rows), Text(elapsed),
                Text(last, style="dim")]


# the live table's columns; rich's Table would do, but costs ~20 ms a redraw
_COLUMNS = ("JOB", "KIND", "STATUS", "ELAPSED", "LAST LOG")
_RIGHT = (False, False, False, True, True)
# (column, narrowest width): what gives way, in this order, on a narrow terminal
_NARROWEST = ((0, 16), (2, 12), (0, 8), (1, 4))
_DROPPED = (4, 1, 3)  # then these columns go, in this order
_GAP = "  "


def _grid(rows: Sequence[Sequence[Text]], width: int) -> list[Text]:
    """The rows under a header of column names, aligned, one line each: on a
    narrow terminal cells end in an ellipsis, then the least useful columns go."""
    lines = [[Text(name, style="bold dim") for name in _COLUMNS], *rows]
    widths = [max(line[i].cell_len for line in lines) for i in range(len(_COLUMNS))]
    widths[0] = min(widths[0], _JOB_COLUMN_MAX)
    excess = sum(widths) + len(_GAP) * (len(widths) - 1) - width
    for column, narrowest in _NARROWEST:
        cut = max(0, min(excess, widths[column] - narrowest))
        widths[column] -= cut
        excess -= cut
    columns = list(range(len(_COLUMNS)))
    for column in _DROPPED:
        if excess <= 0:
            break
        columns.remove(column)
        excess -= widths[column] + len(_GAP)
    out: list[Text] = []
    for line in lines:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i in columns:
            cell = line[i].copy()
            cell.overflow = "ellipsis"
            if i != columns[0]:
                text.append(_GAP)
            if i == columns[-1] and not _RIGHT[i]:
                cell.truncate(widths[i])
            else:
                cell.align("right" if _RIGHT[i] else "left", widths[i])
            text.append_text(cell)
        out.append(text)
    return out


def _state_style(word: str) -> str:
    return ("bold" if word == "running" else "green" if word == "succeeded"
            else "dim" if word in ("waiting", "not started") else "red")


def _ordered(words: Iterable[str], order: Sequence[str]) -> list[str]:
    return sorted(words, key=lambda w: order.index(w) if w in order else len(order))


def _header(rows: Sequence[_Row]) -> Text:
    """"3 running · 1 waiting · 2 succeeded · 1 failed"."""
    counts = Counter(r.state for r in rows)
    words = _ordered(counts, ["running", "waiting", *_OUTCOME_WORDS.values()])
    text = Text()
    for i, word in enumerate(words):
        if i:
            text.append(" · ", style="dim")
        text.append(f"{counts[word]} {word}", style=_state_style(word))
    if not words:
        text.append("no jobs yet", style="dim")
    return text


# a matrix's counts: what went wrong first, as a narrow terminal cuts the end off
_GROUP_ORDER = ("failed", "stopped", "unknown", "running", "succeeded", "detached",
                "not started", "waiting")


def _group_status(rows: Sequence[_Row]) -> Text:
    """"150/200 · 5 failed · 40 running (Training) · 145 succeeded · 10 waiting": how
    many items finished, then the items by state; the running ones' status is
    named when they all have the same one."""
    done = sum(r.outcome is not None for r in rows)
    text = Text(f"{done}/{len(rows)}", style="bold")
    counts = Counter(r.state for r in rows)
    running = {r.secondary or r.status or "Submitted" for r in rows if r.state == "running"}
    for word in _ordered(counts, _GROUP_ORDER):
        text.append(" · ", style="dim")
        part = f"{counts[word]} {word}"
        if word == "running" and len(running) == 1:
            part += f" ({next(iter(running))})"
        text.append(part, style=_state_style(word))
    return text


def _items_text(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _progress(rows: Sequence[_Row]) -> Text:
    done, total = sum(r.outcome is not None for r in rows), len(rows)
    filled = round(_BAR_WIDTH * done / total) if total else 0
    text = Text()
    text.append("━" * filled, style="green")
    text.append("─" * (_BAR_WIDTH - filled), style="dim")
    text.append(f" {done}/{total} finished")
    return text


def _folded(rows: Sequence[_Row]) -> Text:
    """"… and 940 more: 900 InProgress, 40 waiting"."""
    counts = Counter(r.label for r in rows)
    parts = [f"{n} {label}" for label, n in counts.most_common()]
    return Text(f"… and {len(rows)} more: " + ", ".join(parts), style="dim")


class _LiveView:
    """What ``Live`` draws. Rendering a table costs milliseconds and log lines
    are printed many times a second (each print redraws the live region), so
    the rendered lines are reused for ``interval`` seconds."""

    def __init__(self, board: _Board, interval: float) -> None:
        self._board = board
        self._interval = interval
        self._lock = threading.Lock()
        self._cached: list[Segment] = []
        self._key: tuple[int, int] | None = None
        self._at = 0.0

    def invalidate(self) -> None:
        """Draw afresh next time (a job's status changed: show it with its line)."""
        with self._lock:
            self._key = None

    def __rich_console__(self, console: RichConsole, options: ConsoleOptions) -> RenderResult:
        key = (options.max_width, options.size.height)
        with self._lock:
            now = time.monotonic()
            if key != self._key or now - self._at >= self._interval or self._interval <= 0:
                view = self._board.view(options.max_width, options.size.height)
                self._cached = list(console.render(view, options.update(height=None)))
                self._key, self._at = key, now
            cached = self._cached
        yield from cached


# ------------------------------------------------------------------ rendering


# outcomes in a matrix's counts, in this order (others after them)
_OUTCOME_ORDER = ("Succeeded", "Failed", "StoppedByUs", "NotStarted", "Unknown", "Detached")


def _matrices(folds: Sequence[Fold], jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``matrices`` of the JSON summary, from ``JobResult.to_dict()`` records
    (already redacted): per matrix that has results, its items (as named in
    the fold), how many items ended how, its best item by the fold's metric
    (among the items that succeeded; ties go to the first) and its slowest."""
    by_key = {str(job.get("job", "")): job for job in jobs}
    out: list[dict[str, Any]] = []
    for fold in folds:
        members = [by_key[item] for item in fold.items if item in by_key]
        if not members:
            continue
        counts = Counter(str(job.get("outcome", "")) for job in members)
        best, best_value = _best(fold, members)
        slowest, slowest_seconds = None, None
        for job in members:
            seconds = job.get("duration_seconds")
            if seconds is not None and (slowest_seconds is None or seconds > slowest_seconds):
                slowest, slowest_seconds = str(job.get("job", "")), seconds
        out.append({
            "matrix": fold.key,
            "items": list(fold.items),
            "counts": {o: counts[o] for o in _ordered(counts, _OUTCOME_ORDER)},
            "best": best,
            "best_value": best_value,
            "metric": fold.metric,
            "slowest": slowest,
            "slowest_seconds": slowest_seconds,
        })
    return out


def _best(fold: Fold, members: Sequence[Mapping[str, Any]]) -> tuple[str | None, float | None]:
    if fold.metric is None:
        return None, None
    best: tuple[str, float] | None = None
    for job in members:
        if job.get("outcome") != "Succeeded":
            continue
        metrics = (job.get("details") or {}).get("metrics")
        value = metrics.get(fold.metric) if isinstance(metrics, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            continue  # missing, redacted or not a number
        if best is None or (value < best[1] if fold.direction == "min" else value > best[1]):
            best = (str(job.get("job", "")), value)
    return best if best is not None else (None, None)


def _billable_text(seconds: Any) -> str:
    return "-" if seconds is None else f"{seconds}s"


def _job_row(table: Table, job: Mapping[str, Any], outputs: list[Text]) -> None:
    details = job.get("details") or {}
    outcome = str(job.get("outcome", ""))
    table.add_row(
        str(job.get("job", "")), str(job.get("kind", "")),
        Text(outcome, style=_outcome_style(outcome)),
        _duration_text(job.get("duration_seconds")),
        _billable_text(details.get("billable_seconds")),
        str(job.get("failure_reason") or ""),
    )
    for name, value in (job.get("outputs") or {}).items():
        outputs.append(Text.assemble((f"{job.get('job', '')}.{name}", "bold"), ": ",
                                     _value_text(value)))


def _matrix_row(table: Table, matrix: Mapping[str, Any], members: Sequence[Mapping[str, Any]],
                outputs: list[Text], expand: bool) -> None:
    """One row for a matrix: ``sweep (12 items)``, its counts by outcome, the
    slowest item's duration, the billable seconds of all, and in REASON its
    best and slowest items and (folded) its first failure. Folded, only the
    best item's outputs are listed, as ``sweep.best.<output>``."""
    key = str(matrix.get("matrix", ""))
    counts: Mapping[str, int] = matrix.get("counts") or {}
    outcome = Text(" · ".join(f"{n} {o}" for o, n in counts.items()),
                   style="green" if set(counts) == {"Succeeded"} else "red")
    billables = [b for job in members
                 if (b := (job.get("details") or {}).get("billable_seconds")) is not None]
    reason: list[str] = []
    best, metric = matrix.get("best"), matrix.get("metric")
    if best is not None:
        reason.append(f"best {best} ({metric} {matrix.get('best_value'):g})")
    elif metric is not None and counts.get("Succeeded"):
        reason.append(f"no item reported {metric}")
    if matrix.get("slowest") is not None and len(members) > 1:
        reason.append(f"slowest {matrix['slowest']}")
    failed = [job for job in members
              if job.get("outcome") != "Succeeded" and job.get("failure_reason")]
    failed.sort(key=lambda job: job.get("outcome") != "Failed")  # a failure before its echoes
    if failed and not expand:  # expanded, each item's row has its own
        first = failed[0]
        word = _OUTCOME_WORDS.get(str(first.get("outcome")), str(first.get("outcome")))
        reason.append(f"{first.get('job')} {word}: {first.get('failure_reason')}")
    kinds = sorted({str(job.get("kind", "")) for job in members})
    table.add_row(
        Text(f"{key} ({_items_text(len(members))})", style="bold" if expand else ""),
        ", ".join(kinds), outcome, _duration_text(matrix.get("slowest_seconds")),
        _billable_text(sum(billables) if billables else None), "; ".join(reason),
    )
    if expand or best is None:
        return
    for job in members:
        if job.get("job") == best:
            for name, value in (job.get("outputs") or {}).items():
                outputs.append(Text.assemble((f"{key}.best.{name}", "bold"), ": ",
                                             _value_text(value)))


def _summary(jobs: Sequence[Mapping[str, Any]], matrices: Sequence[Mapping[str, Any]] = (),
             expand: bool = False) -> Group:
    """The summary of ``JobResult.to_dict()`` records (already redacted): a
    table, the outputs one per line, and how many jobs succeeded. Each of
    ``matrices`` (see :func:`_matrices`) is one row where its first item was,
    instead of its items' rows; with ``expand`` that row heads its items'."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  header_style="bold", expand=False)
    for name in ("JOB", "KIND", "OUTCOME"):
        table.add_column(name, no_wrap=True)
    for name in ("DURATION", "BILLABLE"):
        table.add_column(name, no_wrap=True, justify="right")
    table.add_column("REASON", overflow="fold")
    matrix_of = {str(item): m for m in matrices for item in m.get("items") or ()}
    members: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs:
        matrix = matrix_of.get(str(job.get("job", "")))
        if matrix is not None:
            members.setdefault(str(matrix.get("matrix", "")), []).append(job)
    outputs: list[Text] = []
    shown: set[str] = set()
    for job in jobs:
        matrix = matrix_of.get(str(job.get("job", "")))
        if matrix is None:
            _job_row(table, job, outputs)
            continue
        key = str(matrix.get("matrix", ""))
        if key not in shown:
            shown.add(key)
            _matrix_row(table, matrix, members[key], outputs, expand)
        if expand:
            _job_row(table, job, outputs)
    ok = sum(job.get("outcome") == "Succeeded" for job in jobs)
    parts: list[RenderableType] = [Text(), Text("Summary", style="bold"), table, Text()]
    if outputs:
        parts += [*outputs, Text()]
    parts.append(Text(f"{ok}/{len(jobs)} jobs succeeded",
                      style="green" if ok == len(jobs) else "red"))
    return Group(*parts)


def _message_text(message: str) -> Text:
    message = message.rstrip("\r\n")
    return Text.from_ansi(message) if "\x1b" in message else Text(message)


class HumanRenderer:
    """Renders one event as one rich ``Text`` line: time, job (coloured per
    job), a mark, the text; the ``summary`` event as the summary table. The
    last processor of the console chain: it hands the renderable to
    :class:`_BufferedLogger` as the logger's positional argument."""

    def __init__(self, board: _Board, expand: bool = False) -> None:
        self._board = board
        self.width = 12
        self.expand = expand  # the summary shows every matrix item as a row

    def __call__(
        self, logger: Any, method: str, ev: MutableMapping[str, Any]
    ) -> tuple[tuple[RenderableType], dict[str, Any]]:
        return (self.render(ev),), {}

    def render(self, ev: MutableMapping[str, Any]) -> RenderableType:
        kind = str(ev.pop("event", ""))
        if kind == "summary":
            return _summary(ev.get("jobs") or [], ev.get("matrices") or [], self.expand)
        job = str(ev.pop("job", ""))
        stamp = time.strftime("%H:%M:%S", time.localtime(float(ev.pop("time", time.time()))))
        self.width = max(self.width, len(job))
        line = Text.assemble((stamp, "dim"), " ", (job.ljust(self.width), self._board.style(job)))
        mark = _MARKS.get(kind, "·")
        if kind == "notice" and ev.get("level") == "info":
            mark = "·"
        line.append(f" {mark} ")
        if kind == "log":
            line.append(str(ev.get("instance", "")), style="dim")
            line.append(" ")
            line.append_text(_message_text(str(ev.get("message", ""))))
            return line
        text = str(ev.pop("text", ""))
        style = ""
        if kind == "finished":
            style = "green" if ev.get("outcome") == "Succeeded" else "red"
        elif kind == "notice" and ev.get("level") in ("warning", "error"):
            style = "red"
        line.append(text, style=style)
        return line


class _BufferedLogger:
    """Holds rendered events; :meth:`flush` writes them out. Log lines are
    flushed once per read round, everything else at once."""

    def __init__(self, write: Callable[[list[Any]], None]) -> None:
        self._write = write
        self._pending: list[Any] = []

    def msg(self, message: Any) -> None:
        # held here, not in the stream's own buffer, which would write a large
        # round out in pieces before its positions are saved
        self._pending.append(message)

    info = msg

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        self._write(pending)



def _event_text(event: Event) -> str:
    """The line a person reads for a submission or a status change."""
    if isinstance(event, Submitted):
        return f"{'attached to' if event.attached else 'created'} {event.kind} {event.name}"
    if isinstance(event, StatusChanged):
        text = event.status + (f" · {event.secondary}" if event.secondary else "")
        return text + (f" — {event.message}" if event.message else "")
    return ""


class Console:
    """A bus sink that renders every event.

    ``fmt`` is "json" or "console" (default: console on a TTY, JSON otherwise).
    With "console" on a terminal a live status table is drawn under the
    scrolling lines from the first event (or :meth:`plan`) until :meth:`close`
    (or :meth:`summary`). The keyword arguments after ``fmt`` are for tests and
    embedding: ``live``/``colour`` force the live table and colours on or off,
    ``width``/``height`` fix the terminal's size, ``clock`` gives elapsed
    times, ``refresh_per_second=None`` redraws the live table only when
    something is written (no refresh thread). ``expand`` shows every item of
    a matrix named to :meth:`fold` as its own row (in the live table and the
    summary) instead of one row per matrix.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        fmt: str | None = None,
        live: bool | None = None,
        colour: bool | None = None,
        width: int | None = None,
        height: int | None = None,
        clock: Callable[[], float] | None = None,
        refresh_per_second: float | None = 4.0,
        expand: bool = False,
    ) -> None:
        self.stream: TextIO = stream or sys.stdout
        tty = _isatty(self.stream)
        if fmt is None:
            fmt = "console" if tty else "json"
        self.fmt = fmt
        self._clock = clock or _now
        self._board = _Board(self._clock, expand)
        self._expand = expand
        self._folds: tuple[Fold, ...] = ()
        self._closed = False
        self._live: Live | None = None
        self._live_wanted = fmt != "json" and (tty if live is None else live)
        terminal = tty or self._live_wanted
        self.rich = RichConsole(
            file=self.stream, force_terminal=terminal, force_interactive=terminal,
            color_system=("auto" if (tty if colour is None else colour) else None),
            width=width if width is not None or terminal else _PLAIN_WIDTH, height=height,
            highlight=False, markup=False, emoji=False, legacy_windows=False,
            soft_wrap=True,
        )
        self._refresh = refresh_per_second
        self._view = _LiveView(self._board, 1 / refresh_per_second if refresh_per_second else 0)
        processors: list[Any] = [redact_processor]
        if fmt == "json":
            processors.append(structlog.processors.JSONRenderer(sort_keys=False, default=str))
            self._out = _BufferedLogger(self._write_json)
        else:
            self.renderer = HumanRenderer(self._board, expand)
            processors += [self._board.track, self.renderer]
            self._out = _BufferedLogger(self._write_rich)
        self.log = structlog.wrap_logger(self._out, processors=processors)

    # -------------------------------------------------------------- the API

    def plan(self, jobs: Mapping[str, str]) -> None:
        """The jobs of the run (key → kind), before it starts: the live table
        shows the ones still waiting for their dependencies."""
        self._board.plan(jobs)
        if jobs and self.fmt != "json":
            longest = max(len(job) for job in jobs)
            self.renderer.width = max(self.renderer.width, min(longest, _JOB_COLUMN_MAX))
        self._start_live()

    def fold(self, folds: Sequence[Fold]) -> None:
        """The run's matrices, before it starts: each is one row of the live
        table and of the summary (unless ``expand``), and the JSON summary gets
        a ``matrices`` record per matrix. An empty list names none."""
        self._folds = tuple(folds)
        self._board.fold(self._folds)
        self._view.invalidate()
        live = self._live
        if live is not None:
            live.refresh()

    def flush(self) -> None:
        """Write every event received so far; when it returns they are out."""
        self._out.flush()

    def __call__(self, event: Event) -> None:
        self._start_live()
        record = to_record(event)
        kind = record.pop("type")
        if isinstance(event, LogLine):
            self.log.info(kind, **record)
            return  # flushed by the log follower, once per read round
        if isinstance(event, Notice):  # its fields beside the others, its message as the text
            del record["fields"]
            record.update(event.fields, text=record.pop("message"))
        elif isinstance(event, Finished):
            record.update(outcome=event.result.outcome.value, text=describe_result(event.result))
        else:
            record["text"] = _event_text(event)
        self.log.info(kind, **record)
        self._view.invalidate()
        self.flush()

    def status_view(self) -> RenderableType:
        """The live table as it stands (what a terminal shows under the lines)."""
        return self._board.view(self.rich.size.width, self.rich.size.height)

    def close(self) -> None:
        """Write what is held and take the live table away; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.flush()
        live, self._live = self._live, None
        if live is not None:
            atexit.unregister(self.close)
            live.stop()

    def summary(self, results: Mapping[str, JobResult]) -> None:
        """The end of the run: the live table goes, the summary is written."""
        self.close()
        jobs = [r.to_dict() for r in results.values()]
        fields: dict[str, Any] = {"jobs": jobs}
        if self._folds:  # without, the record is as it always was
            # from redacted records: a value redacted in ``jobs`` is not shown here either
            fields["matrices"] = _matrices(self._folds, redact(jobs))
        self.log.info("summary", **fields, ok=all(r.ok for r in results.values()),
                      time=self._clock(), job="")
        self.flush()

    # -------------------------------------------------------------- writing

    def _start_live(self) -> None:
        if self._live is not None or self._closed or not self._live_wanted:
            return
        redirect = _isatty(self.stream)
        self._live = Live(
            self._view, console=self.rich, transient=True,
            auto_refresh=self._refresh is not None, refresh_per_second=self._refresh or 4.0,
            redirect_stdout=redirect and self.stream is sys.stdout,
            redirect_stderr=redirect and _isatty(sys.stderr),
        )
        atexit.register(self.close)  # a crashed run still gets its cursor back
        self._live.start(refresh=True)

    def _write_json(self, lines: list[Any]) -> None:
        if lines:
            self.stream.write("".join(f"{line}\n" for line in lines))
        self.stream.flush()

    def _write_rich(self, renderables: list[Any]) -> None:
        if renderables and self.rich.is_terminal:
            # one print: the live region is redrawn once per round, not per line
            self.rich.print(Group(*_joined(renderables)))
        elif renderables:  # a file: the lines as they are, without styles or padding
            self.stream.write("".join(_plain(self.rich, r) for r in renderables))
        self.stream.flush()


def _joined(renderables: Iterable[RenderableType]) -> list[RenderableType]:
    """Runs of lines as one ``Text`` each: rich renders one text of a hundred
    lines much faster than a hundred texts."""
    out: list[RenderableType] = []
    run: list[Text] = []
    for item in renderables:
        if isinstance(item, Text):
            run.append(item)
            continue
        if run:
            out.append(Text("\n").join(run))
            run = []
        out.append(item)
    if run:
        out.append(Text("\n").join(run))
    return out


def _plain(console: RichConsole, renderable: RenderableType) -> str:
    """What ``renderable`` looks like in a file: a line (or lines) of text."""
    if isinstance(renderable, Text):
        return renderable.plain + "\n"
    with console.capture() as captured:
        console.print(renderable)
    return "".join(line.rstrip() + "\n" for line in captured.get().splitlines())


def _now() -> float:
    return time.time()


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def describe_result(r: JobResult) -> str:
    parts = [r.outcome.value]
    if r.duration_seconds is not None:
        parts.append(f"in {r.duration_seconds:.1f}s")
    if "billable_seconds" in r.details:
        parts.append(f"billable {r.details['billable_seconds']}s")
    if r.failure_reason:
        parts.append(f"reason: {r.failure_reason}")
    return " · ".join(parts)


def summary_table(results: Mapping[str, JobResult], *, folds: Sequence[Fold] = (),
                  expand: bool = False) -> str:
    """The console summary as plain text (redacted, no colours, not wrapped),
    with ``folds`` as :meth:`Console.fold` has them."""
    jobs = redact([r.to_dict() for r in results.values()])
    plain = RichConsole(width=_PLAIN_WIDTH, color_system=None, force_terminal=False,
                        highlight=False, markup=False, emoji=False, soft_wrap=True)
    return _plain(plain, _summary(jobs, _matrices(folds, jobs), expand)).rstrip("\n")
