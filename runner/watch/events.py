"""The ``events`` status source: SageMaker's EventBridge state changes, read from SQS.

Polling costs calls while nothing happens; SageMaker already tells EventBridge
of every state change, and a rule (made by :mod:`smrun.watch.setup`) puts
those events in an SQS queue. :class:`EventQueue` long-polls that queue and
hands each change to the engine as an :class:`~smrun.watch.Update`, so a
change reaches its job within a second or so, for one ReceiveMessage every
20 s while nothing changes.

Delivery is at least once and unordered (SageMaker itself may send several
events for one change, and EventBridge retries): nothing here drops a
duplicate. :func:`newer` is the rule the dispatcher applies per resource. And
since an event can also be lost, the engine keeps a slow reconciling poll.

What happens to a message:

- an event of one of our kinds becomes an Update, is delivered, then deleted;
- a well-formed event that is not ours (another source, a detail-type none of
  the kinds has) is deleted and counted as ``ignored``: nobody else reads this
  queue for it, and it must not crowd the dead-letter queue;
- a message that can't be read (not JSON, not an EventBridge event, one of
  our detail-types without a name or a status) is counted as ``unparsed`` and
  left alone: after the queue's ``maxReceiveCount`` receives SQS moves it to
  the dead-letter queue, where a person can see what was actually sent. That
  is the case where our reading of AWS's event shape (below) was wrong.

The event shape is partly guessed. SageMaker's EventBridge page gives samples,
not a schema; from them:

- the detail holds the resource's Describe* members under their API names
  (name, status, secondary status, LastModifiedTime). Only training's detail is
  documented to mirror the whole Describe* response, and even its sample lacks
  ModelArtifacts, so an update is ``complete`` only when the kind's outputs
  can be read from it (and only for the kinds in ``MIRRORS_DESCRIBE``);
- times are epoch milliseconds (numbers, or digits in a string, ``.0`` at
  times) or ISO 8601 strings, in the detail and even in the envelope's
  ``time``; a number below 1e11 is read as epoch seconds (guessed: no sample
  has one);
- statuses may be spelled UPPER_SNAKE ("IN_SERVICE" in the endpoint sample)
  where the API says "InService": they are spelled back the API's way, in the
  update and in its facts, since every SageMaker status is CamelCase words;
- members named ``...Time`` or ``Timestamp`` are times (true of every member of
  these kinds' Describe* responses, a test checks it against botocore's model);
- the transform sample, like DescribeTransformJob, has no LastModifiedTime:
  such an update is ordered by the envelope's ``time``.

Being wrong about any of this costs the reconciling poll's delay, never a
wrong outcome: a job's outcome is read from facts, which a describe completes.

Error handling: :func:`parse_event` and :func:`newer` never raise.
:meth:`EventQueue.run` relies on ``call`` (:meth:`smrun.aws.Aws.call`) to retry
throttling and transient faults; any other AWS error of ReceiveMessage or
DeleteMessageBatch (access denied, no such queue, rejected credentials, a KMS
key it may not use) is raised as an :class:`EventQueueError`, an
:class:`~smrun.aws.EnvironmentProblem` naming the queue and the usual fix.
An entry that DeleteMessageBatch could not delete is counted, not raised: the
message comes back after its visibility timeout, as a duplicate.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import anyio

from smrun.aws import LONG_POLL_SECONDS, EnvironmentProblem
from smrun.budget import Priority
from smrun.errors import ErrorClass, classify, describe, is_aws_error
from smrun.kind import Kind
from smrun.watch import Update, as_utc

SOURCE = "aws.sagemaker"
# the kinds whose event detail is documented to mirror their Describe* response
MIRRORS_DESCRIBE: frozenset[str] = frozenset({"training"})
# what reading the queue needs (DeleteMessageBatch is authorized as DeleteMessage)
CONSUME_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
MAX_BATCH = 10  # ReceiveMessage's MaxNumberOfMessages, and DeleteMessageBatch's entries

# ``await call("sqs", "ReceiveMessage", priority=..., **params)``: one AWS call
# through the process's budgets and retries (:meth:`smrun.aws.Aws.call`)
Call = Callable[..., Awaitable[Any]]

_UPPER_SNAKE = re.compile(r"[A-Z]+(?:_[A-Z]+)*")
_NUMBER = re.compile(r"-?\d+(?:\.\d*)?")
_FRACTION = re.compile(r"(T\d{2}:\d{2}:\d{2})\.(\d+)")
_SECONDS_BELOW = 1e11  # 1e11 ms is March 1973; 1e11 s is the year 5138


# ---------------------------------------------------------------- decisions


def api_spelling(status: str) -> str:
    """A status as the API spells it: ``IN_SERVICE`` becomes ``InService``;
    anything not UPPER_SNAKE is returned unchanged."""
    if _UPPER_SNAKE.fullmatch(status):
        return "".join(word.capitalize() for word in status.split("_"))
    return status


def event_time(value: object) -> datetime | None:
    """An event's time as an aware UTC datetime: from epoch milliseconds (a
    number or its digits), epoch seconds (below 1e11), an ISO 8601 string or a
    datetime (naive ones are taken as UTC); None for anything else."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            return _iso_time(text)
        number = float(text)
    else:
        return None
    if not math.isfinite(number):
        return None
    seconds = number / 1000.0 if abs(number) >= _SECONDS_BELOW else number
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _iso_time(text: str) -> datetime | None:
    # Python 3.10's fromisoformat takes neither "Z" nor more than 6 digits of a
    # second (the model card sample has 9)
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: f"{m[1]}.{(m[2] + '000000')[:6]}", text, count=1)
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def is_time_member(name: str) -> bool:
    """Whether a detail member holds a time (by its name, as in the API)."""
    return name.endswith(("Time", "Timestamp"))


def _with_times(value: Any, name: str = "") -> Any:
    """``value`` (JSON) with every time member turned into a datetime; a value
    that can't be read as a time is kept as it came."""
    if isinstance(value, Mapping):
        return {str(k): _with_times(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_times(item) for item in value]
    if is_time_member(name):
        moment = event_time(value)
        return value if moment is None else moment
    return value


def _has_value(value: Any) -> bool:
    return value not in (None, "", {}, [])


class _Skip(enum.Enum):
    """Why a message is no update."""

    FOREIGN = "not one of our kinds' events"  # deleted
    UNREADABLE = "not an event of the shape we expect"  # left for the dead-letter queue


def by_event_type(kinds: Mapping[str, Kind]) -> dict[str, Kind]:
    """The kinds that send events, by their EventBridge detail-type."""
    return {kind.event_type: kind for kind in kinds.values() if kind.event_type}


def _read(
    body: str | bytes | Mapping[str, Any],
    kinds: Mapping[str, Kind],
    mirrors_describe: Collection[str],
) -> Update | _Skip:
    """``body`` (an SQS message body: the EventBridge event) as an Update of
    one of ``kinds`` (keyed by detail-type), or why it is none."""
    event: Any = body
    if isinstance(body, str | bytes):
        try:
            event = json.loads(body)
        except (ValueError, RecursionError):
            return _Skip.UNREADABLE
    if not isinstance(event, Mapping):
        return _Skip.UNREADABLE
    source, detail_type = event.get("source"), event.get("detail-type")
    if not isinstance(source, str) or not isinstance(detail_type, str):
        return _Skip.UNREADABLE
    kind = kinds.get(detail_type) if source == SOURCE else None
    if kind is None:
        return _Skip.FOREIGN
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return _Skip.UNREADABLE
    name, status = detail.get(kind.name_field), detail.get(kind.status_field)
    if not isinstance(name, str) or not name or not isinstance(status, str) or not status:
        return _Skip.UNREADABLE
    try:
        facts: dict[str, Any] = _with_times(detail)
    except RecursionError:  # nested deeper than any Describe* response
        return _Skip.UNREADABLE
    status = facts[kind.status_field] = api_spelling(status)
    secondary: str | None = None
    if kind.secondary_status_field:
        found = facts.get(kind.secondary_status_field)
        if isinstance(found, str) and found:
            secondary = facts[kind.secondary_status_field] = api_spelling(found)
    modified = event_time(facts.get("LastModifiedTime")) or event_time(event.get("time"))
    complete = False
    if kind.name in mirrors_describe:
        try:
            complete = all(_has_value(v) for v in kind.outputs(facts).values())
        except Exception:  # a handler's outputs() meeting a detail it didn't expect
            complete = False
    return Update(
        kind=kind.name,
        name=name,
        status=status,
        secondary=secondary,
        modified=modified,
        facts=facts,
        complete=complete,
        source="events",
    )


def parse_event(
    body: str | bytes | Mapping[str, Any],
    kinds: Mapping[str, Kind],
    *,
    mirrors_describe: Collection[str] = MIRRORS_DESCRIBE,
) -> Update | None:
    """The Update an SQS message body (an EventBridge event of SageMaker's)
    reports, for the kind whose ``event_type`` is its detail-type; None for
    anything else (another source, an unknown detail-type, malformed JSON, no
    name or status). Never raises.

    ``facts`` is the event's detail with its times as datetimes and its status
    spelled the API's way; ``complete`` is true only for the kinds in
    ``mirrors_describe`` and only when the kind's outputs are all there. Events
    of other accounts' resources are not filtered: the dispatcher ignores names
    it doesn't watch."""
    result = _read(body, by_event_type(kinds), mirrors_describe)
    return result if isinstance(result, Update) else None


# ---------------------------------------------------------------- the queue


class EventQueueError(EnvironmentProblem):
    """The events queue can't be read, or its messages can't be deleted: the
    engine's event source can't work until the environment is fixed (the
    reconciling poll still can)."""


@dataclass
class QueueStats:
    receives: int = 0  # ReceiveMessage calls answered
    received: int = 0  # messages
    delivered: int = 0  # updates handed to ``deliver``
    ignored: int = 0  # well-formed events not of our kinds: deleted
    unparsed: int = 0  # unreadable messages: left for the dead-letter queue
    deleted: int = 0
    delete_failures: int = 0  # entries DeleteMessageBatch refused: they come back


class EventQueue:
    """Reads SageMaker's state-change events from an SQS queue and delivers
    them as Updates.

    ``deliver`` is called once per event message received (duplicates
    included), synchronously; a message is deleted only after ``deliver``
    returned. ``run()`` loops until cancelled; ``poll_once()`` is one round.
    A cancelled round still deletes what it delivered, for up to
    ``delete_grace`` seconds, so that a restart does not see it again."""

    def __init__(
        self,
        call: Call,
        queue_url: str,
        kinds: Mapping[str, Kind],
        deliver: Callable[[Update], object],
        *,
        wait_seconds: int = LONG_POLL_SECONDS,
        batch: int = MAX_BATCH,
        visibility_timeout: int | None = None,  # None: the queue's own
        mirrors_describe: Collection[str] = MIRRORS_DESCRIBE,
        delete_grace: float = 5.0,
        idle_pause: float = 1.0,  # between short polls (wait_seconds=0) of an empty queue
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ) -> None:
        if not 0 <= wait_seconds <= LONG_POLL_SECONDS:
            raise ValueError(f"wait_seconds must be 0 to {LONG_POLL_SECONDS}, not {wait_seconds}")
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be 1 to {MAX_BATCH}, not {batch}")
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.batch = batch
        self.visibility_timeout = visibility_timeout
        self.stats = QueueStats()
        self._call = call
        self._by_type = by_event_type(kinds)
        if not self._by_type:
            raise ValueError("none of these kinds sends EventBridge events")
        self._deliver = deliver
        self._mirrors = frozenset(mirrors_describe)
        self._delete_grace = delete_grace
        self._idle_pause = idle_pause
        self._sleep = sleep

    async def run(self, readers: int = 4) -> None:
        """Receive, deliver and delete until cancelled, with ``readers`` long
        polls at once: one call brings at most 10 messages, and a thousand jobs
        changing state send tens a second (idle, each reader costs one call per
        ``wait_seconds``).

        Error handling: raises :class:`EventQueueError` (see the module)."""
        if readers < 1:
            raise ValueError(f"readers must be at least 1, not {readers}")

        if readers == 1:
            await self._read()
            return
        failed: list[EventQueueError] = []

        async def read(scope: anyio.CancelScope) -> None:
            try:
                await self._read()
            except EventQueueError as problem:  # one reader's problem is every reader's
                failed.append(problem)
                scope.cancel()

        async with anyio.create_task_group() as tg:
            for _ in range(readers):
                tg.start_soon(read, tg.cancel_scope)
        if failed:
            raise failed[0]

    async def _read(self) -> None:
        while True:
            if not await self.poll_once() and self.wait_seconds == 0:
                await self._sleep(self._idle_pause)

    async def poll_once(self) -> int:
        """One ReceiveMessage: deliver what it brought, delete what was handled;
        returns how many messages it brought."""
        messages = await self._receive()
        handled: list[Mapping[str, Any]] = []
        try:
            for message in messages:
                self.stats.received += 1
                if self._handle(message) and message.get("ReceiptHandle"):
                    handled.append(message)
        finally:
            # also when deliver() raised: what it applied before is not seen again
            if handled:
                with anyio.move_on_after(self._delete_grace, shield=True):
                    await self._delete(handled)
        return len(messages)

    def _handle(self, message: Mapping[str, Any]) -> bool:
        """Whether the message is done with (delivered, or not ours)."""
        result = _read(message.get("Body", ""), self._by_type, self._mirrors)
        if isinstance(result, Update):
            self._deliver(result)
            self.stats.delivered += 1
            return True
        if result is _Skip.FOREIGN:
            self.stats.ignored += 1
            return True
        self.stats.unparsed += 1
        return False

    async def check(self) -> None:
        """Raise :class:`EventQueueError` now if the queue can't be read (for a
        pre-flight: a wrong URL is an environment problem, not a slow run)."""
        try:
            await self._call("sqs", "GetQueueAttributes", priority=Priority.FINISH,
                             QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except Exception as error:
            if not is_aws_error(error):
                raise
            raise self._problem("reading", error) from error

    async def _receive(self) -> list[Mapping[str, Any]]:
        params: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": self.batch,
            "WaitTimeSeconds": self.wait_seconds,
        }
        if self.visibility_timeout is not None:
            params["VisibilityTimeout"] = self.visibility_timeout
        try:
            response = await self._call("sqs", "ReceiveMessage", priority=Priority.LIVE, **params)
        except Exception as error:
            if not is_aws_error(error):
                raise
            raise self._problem("reading", error) from error
        self.stats.receives += 1
        return list(response.get("Messages") or [])

    async def _delete(self, messages: list[Mapping[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": str(m["ReceiptHandle"])}
                   for i, m in enumerate(messages)]
        try:
            response = await self._call("sqs", "DeleteMessageBatch", priority=Priority.LIVE,
                                        QueueUrl=self.queue_url, Entries=entries)
        except Exception as error:
            if not is_aws_error(error):
                raise
            raise self._problem("deleting from", error) from error
        self.stats.deleted += len(response.get("Successful") or [])
        self.stats.delete_failures += len(response.get("Failed") or [])

    def _problem(self, doing: str, error: BaseException) -> EventQueueError:
        what = classify(error)
        if what is ErrorClass.DENIED:
            return EventQueueError(
                f"access denied {doing} the events queue {self.queue_url} ({describe(error)})",
                "allow " + " and ".join(CONSUME_ACTIONS) + " on the queue (`smrun iam-policy`), "
                "and kms:Decrypt if it is encrypted with a customer managed key",
            )
        if what is ErrorClass.CREDENTIALS:
            return EventQueueError(
                f"AWS rejected the credentials {doing} the events queue ({describe(error)})",
                "check the credentials (profile, keys, IRSA); expired ones need refreshing",
            )
        return EventQueueError(
            f"{doing} the events queue {self.queue_url} failed ({describe(error)})",
            "check the queue URL and the region (`smrun events setup` creates the queue "
            "and prints its URL)",
        )
