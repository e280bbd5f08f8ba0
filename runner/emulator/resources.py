"""What every emulated SageMaker resource kind shares.

A kind lives in its own module, ``runner/emulator/<kind>.py``, that defines
``install_kind(sagemaker: SageMaker) -> None`` and registers its operations
there. :func:`install_kinds` finds such modules by that function, so adding a
kind touches no other file.

Time is lazy: nothing runs in the background. Before every request the server
calls :meth:`Scheduler.advance` with the clock's now, which runs, in order,
every action that fell due (a job's log line reaching CloudWatch, ...). A
resource's status is a function of its timeline and that same now. So what the
emulator answers is a deterministic function of the clock, and a test with a
:class:`FakeClock` decides exactly when things happen. (While it publishes
events, the server also advances the world in the background when something
falls due; advancing is idempotent, so that changes nothing of the above.)

A kind reads a create request's behaviour (``smrun:emulator:*`` tags) with
:meth:`SageMaker.behaviour`: the request's tags, and for each
one it lacks, the value of the last of :attr:`SageMaker.scripts` whose glob
matches the resource's name (how a test scripts jobs it does not create itself).

Kinds announce each change of a resource's status as a :class:`StateChange`
to :attr:`SageMaker.listeners`, from the scheduler, at the moment it happens.
Kinds whose resources run on instances admit each create through
:attr:`SageMaker.concurrency` (the account's quotas, :mod:`smrun.emulator.quotas`)
before anything exists, and tell it when the instances are let go.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import importlib
import inspect
import itertools
import json
import pkgutil
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from smrun.emulator.logs import LogStore
from smrun.emulator.protocol import ApiError, Params, ServiceProtocol
from smrun.emulator.quotas import Concurrency

Result = dict[str, Any]
Handler = Callable[[Params], "Result | Awaitable[Result]"]

BEHAVIOUR_TAG_PREFIX = "smrun:emulator:"
NOT_FOUND = "Requested resource not found."

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when told to; pass it as ``clock=``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def set(self, now: float) -> None:
        self.now = now


class Scheduler:
    """Actions due at given times, run when the world is advanced past them."""

    def __init__(self) -> None:
        self.now = float("-inf")
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.running = False  # inside advance(): an action due now joins this run

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), action))

    def at_or_now(self, when: float, action: Callable[[], None]) -> None:
        """Like :meth:`at`, but an action already due outside an advance runs
        at once: a request's own changes (a job created, a job stopped) are
        seen by that request."""
        if when <= self.now and not self.running:
            action()
        else:
            self.at(when, action)

    def advance(self, now: float) -> float:
        """Run every action due by ``now``, oldest first. Time never goes back."""
        self.now = max(self.now, now)
        if self.running:
            return self.now  # an action's own look at the time: the loop below goes on
        self.running = True
        try:
            while self._queue and self._queue[0][0] <= self.now:
                _when, _seq, action = heapq.heappop(self._queue)
                action()
        finally:
            self.running = False
        return self.now

    def pending(self) -> int:
        return len(self._queue)

    def next_due(self) -> float | None:
        """When the earliest queued action is due, if any is queued."""
        return self._queue[0][0] if self._queue else None


@dataclass(frozen=True)
class StateChange:
    """A resource moved to a new status (or secondary status), at ``at`` on the
    world's clock. ``detail`` describes it as of that moment; call it then,
    while the world is still there (it is built only if someone listens)."""

    detail_type: str  # the EventBridge detail-type, e.g. "SageMaker Training Job State Change"
    arn: str
    at: float
    describe: str  # the Describe* operation whose output shape ``detail`` has
    detail: Callable[[], Result]
    # a status the resource may stay in for good (a terminal one): an event
    # held back to be delivered out of order is never one of these
    settled: bool


@dataclass(frozen=True)
class Script:
    """Behaviour for the resources of ``kind`` (``"training"``, ``"processing"``,
    ``"transform"``, ``"labeling"``, ``"endpoint"``) whose names match
    ``pattern`` (a glob, as :mod:`fnmatch` reads it, case-insensitive as
    SageMaker names are): the values of ``smrun:emulator:*`` tags, by name
    without the prefix (``{"outcome": "Failed"}``), for a request that lacks them."""

    pattern: str
    values: Mapping[str, str]
    kind: str = "training"

    def matches(self, kind: str, name: str) -> bool:
        return kind == self.kind and fnmatch.fnmatchcase(name.lower(), self.pattern.lower())


class SageMaker:
    """The SageMaker side of the emulator: operations, ARNs, tags, time.

    Kind modules register handlers with :meth:`register`; a handler takes the
    validated request parameters and returns the response members (a dict,
    or an awaitable of one), raising :class:`ApiError` to fail.
    """

    def __init__(
        self,
        *,
        region: str,
        account: str,
        clock: Callable[[], float],
        logs: LogStore,
        scheduler: Scheduler,
    ) -> None:
        self.region = region
        self.account = account
        self.clock = clock
        self.logs = logs
        self.scheduler = scheduler
        self.protocol = ServiceProtocol.for_service("sagemaker")
        self.operations: dict[str, Handler] = {}
        self.tags: dict[str, list[dict[str, str]]] = {}  # by resource ARN
        self.kinds: dict[str, object] = {}  # kind module name -> its state, for tests
        # behaviour for requests without its tags, by name (behaviour()); later ones win
        self.scripts: list[Script] = []
        # told of every StateChange as it happens (the EventBridge publisher)
        self.listeners: list[Callable[[StateChange], None]] = []
        # the account's quotas and what its resources hold of them; kinds admit
        # each create through it (runner.emulator.quotas)
        self.concurrency = Concurrency(self.advance)
        self.register("AddTags", self._add_tags)
        self.register("ListTags", self._list_tags)
        self.register("DeleteTags", self._delete_tags)

    @property
    def now(self) -> float:
        """The world's time: the clock as of the last advance."""
        if self.scheduler.now == float("-inf"):
            return self.scheduler.advance(self.clock())
        return self.scheduler.now

    def advance(self) -> float:
        """Bring the world up to the clock; the world's time."""
        return self.scheduler.advance(self.clock())

    def behaviour(
        self, kind: str, name: str, tags: Iterable[dict[str, str]] | None
    ) -> TagReader:
        """The behaviour tags of a request for the ``kind`` resource ``name``:
        its own, and for each it lacks, the value of the last of
        :attr:`scripts` that matches the kind and name and has it."""
        scripted: dict[str, str] = {}
        for script in self.scripts:
            if script.matches(kind, name):
                scripted.update(script.values)
        return TagReader(tags, defaults=scripted)

    def state_changed(self, change: StateChange) -> None:
        for listener in self.listeners:
            listener(change)

    def register(self, operation: str, handler: Handler) -> None:
        if self.protocol.operation(operation) is None:
            raise ValueError(f"SageMaker has no operation {operation}")
        if operation in self.operations:
            raise ValueError(f"{operation} is already registered")
        self.operations[operation] = handler

    def arn(self, resource_type: str, name: str) -> str:
        # SageMaker names are case-insensitive; their ARNs are lower-cased.
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{resource_type}/{name.lower()}"

    def add_resource(self, arn: str, tags: Iterable[dict[str, str]] | None) -> None:
        self.tags[arn] = []
        self._merge_tags(arn, tags or ())

    def _merge_tags(self, arn: str, tags: Iterable[dict[str, str]]) -> None:
        current = {t["Key"]: t for t in self.tags[arn]}
        for tag in tags:
            current[tag["Key"]] = {"Key": tag["Key"], "Value": tag.get("Value", "")}
        if len(current) > 50:
            raise ApiError("ValidationException", f"Resource {arn} would have more than 50 tags.")
        self.tags[arn] = list(current.values())

    def _tagged(self, arn: str) -> str:
        if arn not in self.tags:
            raise ApiError("ValidationException", NOT_FOUND)
        return arn

    def _add_tags(self, params: Params) -> Result:
        arn = self._tagged(params["ResourceArn"])
        self._merge_tags(arn, params["Tags"])
        return {"Tags": params["Tags"]}

    def _list_tags(self, params: Params) -> Result:
        arn = self._tagged(params["ResourceArn"])
        page, token = paginate(
            self.tags[arn],
            key=lambda t: t["Key"],
            max_results=params.get("MaxResults", 50),
            next_token=params.get("NextToken"),
        )
        result: Result = {"Tags": page}
        if token:
            result["NextToken"] = token
        return result

    def _delete_tags(self, params: Params) -> Result:
        arn = self._tagged(params["ResourceArn"])
        drop = set(params["TagKeys"])
        self.tags[arn] = [t for t in self.tags[arn] if t["Key"] not in drop]
        return {}


class TagReader:
    """The ``smrun:emulator:*`` behaviour tags of one request (over
    ``defaults``, by name without the prefix: a :class:`Script`'s)."""

    def __init__(
        self, tags: Iterable[dict[str, str]] | None, defaults: Mapping[str, str] | None = None
    ) -> None:
        self.values = {
            **(defaults or {}),
            **{
                t["Key"][len(BEHAVIOUR_TAG_PREFIX) :]: t.get("Value", "")
                for t in tags or ()
                if t["Key"].startswith(BEHAVIOUR_TAG_PREFIX)
            },
        }

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.values.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not value >= minimum or value == float("inf"):
            raise ApiError(
                "ValidationException",
                f"Tag {BEHAVIOUR_TAG_PREFIX}{name} must be a number >= {minimum}, got '{raw}'.",
            )
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.number(name, default, minimum=minimum)
        if value != int(value):
            raise ApiError(
                "ValidationException",
                f"Tag {BEHAVIOUR_TAG_PREFIX}{name} must be a whole number, got '{value}'.",
            )
        return int(value)

    def choice(self, name: str, default: str, allowed: Sequence[str]) -> str:
        value = self.values.get(name, default)
        if value not in allowed:
            raise ApiError(
                "ValidationException",
                f"Tag {BEHAVIOUR_TAG_PREFIX}{name} must be one of {', '.join(allowed)}, "
                f"got '{value}'.",
            )
        return value

    def text(self, name: str, default: str) -> str:
        return self.values.get(name, default)

    def lines(self, name: str) -> list[str] | None:
        """A value of lines separated by newlines (none: no line); None if not given."""
        raw = self.values.get(name)
        if raw is None:
            return None
        return raw.split("\n") if raw else []


def paginate(
    items: Iterable[T],
    *,
    key: Callable[[T], Any],
    max_results: int,
    next_token: str | None,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """One page of ``items`` sorted by ``key`` (which must be unique).

    Tokens name the last item's key rather than an offset, so items created
    between two pages shift nothing.
    """
    ordered = sorted(items, key=key, reverse=descending)
    if next_token is not None:
        after = read_page_token(next_token)
        if descending:
            ordered = [i for i in ordered if _json_key(key(i)) < after]
        else:
            ordered = [i for i in ordered if _json_key(key(i)) > after]
    page = ordered[:max_results]
    token = make_page_token(key(page[-1])) if len(ordered) > max_results else None
    return page, token


SortKey = Callable[[Result], Any]


@dataclass(frozen=True)
class Listing:
    """How a small List* answers (a tuning job's children): NameContains,
    StatusEquals, CreationTime*/LastModifiedTime*, SortBy (Name, CreationTime,
    Status), SortOrder, MaxResults and NextToken over the summaries of every
    resource. The List* of a whole kind is answered from its index instead
    (:mod:`smrun.emulator.listing`).
    """

    name: str  # the summary member naming a resource, e.g. "TrainingJobName"
    status: str  # e.g. "TrainingJobStatus"
    summaries: str  # the response member of the page, e.g. "TrainingJobSummaries"
    default_sort: str = "CreationTime"
    # ListTrainingJobs as documented (and the kinds that copy it): MaxResults
    # resources are picked first, then filtered by StatusEquals, so a page can
    # come back short (or empty) while more match.
    status_after_page: bool = False
    more_sort_keys: Mapping[str, SortKey] = field(default_factory=dict)

    def sort_key(self, sort_by: str) -> SortKey:
        name, status = self.name, self.status
        keys: dict[str, SortKey] = {
            "Name": lambda s: s[name],
            "CreationTime": lambda s: (s["CreationTime"], s[name]),
            "Status": lambda s: (s[status], s["CreationTime"], s[name]),
            **self.more_sort_keys,
        }
        return keys[sort_by]

    def answer(self, summaries: Iterable[Result], params: Params) -> Result:
        contains = params.get("NameContains", "").lower()
        wanted = params.get("StatusEquals")
        # (summary member, bound, whether the value must be after the bound)
        bounds = [
            (member, _seconds(params[f"{member}{side}"]), side == "After")
            for member in ("CreationTime", "LastModifiedTime")
            for side in ("After", "Before")
            if f"{member}{side}" in params
        ]
        selected = [
            s
            for s in summaries
            if contains in s[self.name].lower()
            and (wanted is None or self.status_after_page or s[self.status] == wanted)
            and all(
                s[member] > bound if after else s[member] < bound for member, bound, after in bounds
            )
        ]
        page, token = paginate(
            selected,
            key=self.sort_key(params.get("SortBy", self.default_sort)),
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            descending=params.get("SortOrder", "Ascending") == "Descending",
        )
        if wanted is not None and self.status_after_page:
            page = [s for s in page if s[self.status] == wanted]
        result: Result = {self.summaries: page}
        if token is not None:
            result["NextToken"] = token
        return result


def _seconds(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _json_key(value: Any) -> Any:
    # Compare in the form a token carries: JSON turns tuples into lists.
    return list(value) if isinstance(value, tuple) else value


def make_page_token(key: Any) -> str:
    return json.dumps(key, separators=(",", ":")).encode().hex()


def read_page_token(token: str) -> Any:
    try:
        return json.loads(bytes.fromhex(token))
    except ValueError:
        raise ApiError("ValidationException", "Invalid pagination token.") from None


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) that depends only on ``parts`` (not on the process)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def install_kinds(sagemaker: SageMaker) -> list[str]:
    """Install every sibling module that defines ``install_kind``."""
    package = __name__.rpartition(".")[0]
    installed: list[str] = []
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__)):
        module = importlib.import_module(f"{package}.{info.name}")
        install = getattr(module, "install_kind", None)
        if callable(install):
            install(sagemaker)
            installed.append(info.name)
    return installed


async def call_handler(handler: Handler, params: Params) -> Result:
    result = handler(params)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, dict)
    return result
