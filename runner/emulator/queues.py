"""SQS: standard queues in memory, every message operation O(1) or O(log n).

A queue keeps each message in exactly one of two places: a deque of visible
messages, in the order they became visible, or a heap of hidden ones (in
flight after a receive, or delayed after a send) keyed by the moment they
become visible again. An entry carries the message's ``epoch`` at the time it
was made; every move bumps the epoch, so an entry left behind by a delete, a
visibility change or a purge is recognised as stale when it comes up and is
skipped. A receive first releases what fell due from the heap, then takes
from the deque's head: no operation scans the queue, however many messages
it holds. (PurgeQueue, which forgets them all, is O(n).)

As AWS documents it:

- queue URLs are ``{endpoint}/{account}/{name}`` (the endpoint being the
  emulator as the client reached it, from the request's Host header), ARNs
  ``arn:aws:sqs:{region}:{account}:{name}``;
- CreateQueue answers with the existing queue when the attributes it is given
  are the queue's, else QueueNameExists (``QueueAlreadyExists`` to botocore);
  a name deleted less than 60 seconds before can't be used again yet
  (QueueDeletedRecently); PurgeQueue may run once every 60 seconds;
- attribute defaults: VisibilityTimeout 30 s, MessageRetentionPeriod 4 days,
  ReceiveMessageWaitTimeSeconds 0, DelaySeconds 0, MaximumMessageSize
  256 KiB, SqsManagedSseEnabled true; an unknown or read-only attribute is
  InvalidAttributeName, a value out of range InvalidAttributeValue;
- ReceiveMessage takes 1 to 10 messages, long-polls up to 20 seconds (the
  queue's ReceiveMessageWaitTimeSeconds by default), hides what it returns for
  the visibility timeout, and gives each receive a new receipt handle;
- a RedrivePolicy (``deadLetterTargetArn``, ``maxReceiveCount`` 1 to 1000,
  the target an existing queue) moves a message to the dead-letter queue
  instead of receiving it once more than ``maxReceiveCount`` times; it keeps
  its id, body, attributes and sent time there, and gains the
  ``DeadLetterQueueSourceArn`` attribute;
- DeleteMessage with a handle that is not one (malformed, or another queue's)
  is ReceiptHandleIsInvalid; with the handle of a message already deleted it
  succeeds; with an older handle of a message received again since, "the
  request succeeds, but the message might not be deleted": here it never is;
- errors carry SQS's legacy query codes in ``x-amzn-query-error``
  (:mod:`smrun.emulator.protocol`), so that botocore reports
  ``AWS.SimpleQueueService.NonExistentQueue`` for a missing queue.

Guessed, or left out:

- FIFO queues are refused (UnsupportedOperation), and FIFO-only attributes are
  unknown to a standard queue; tags, KMS and permissions are not served;
  a Policy is kept (as compact JSON) and returned, never enforced;
- the wording of most error messages follows what SQS is seen to send;
  ``SenderId`` is the account id; a moved message keeps its receive count;
- long polls wait in real seconds (the event loop's time), while visibility,
  delays and retention follow the emulator's clock: with a clock moved by
  hand, a hidden message comes back at the first call after its time;
- retention is applied when an expired message comes up for a receive or is
  released, so the approximate counts may include it until then.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import heapq
import itertools
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from smrun.emulator.protocol import ApiError, Params, ServiceProtocol

MAX_BATCH = 10  # entries of a *Batch call, and messages of a ReceiveMessage
MAX_RECEIVE_WAIT = 20  # seconds of a long poll
MAX_VISIBILITY_TIMEOUT = 43_200
MAX_DELAY = 900
MAX_ATTRIBUTES = 10  # message attributes of one message
REUSE_AFTER = 60.0  # seconds before a deleted queue's name can be used again
PURGE_EVERY = 60.0  # seconds between two purges of one queue
# a long poll that waits for a hidden message's return rechecks no sooner than
# this: with a clock moved by hand, nothing is due until the clock moves
RECHECK_FLOOR = 0.02

# attribute -> (lowest, highest, default), all in whole numbers
NUMERIC_ATTRIBUTES: Mapping[str, tuple[int, int, int]] = {
    "DelaySeconds": (0, MAX_DELAY, 0),
    "MaximumMessageSize": (1024, 1_048_576, 262_144),
    "MessageRetentionPeriod": (60, 1_209_600, 345_600),
    "ReceiveMessageWaitTimeSeconds": (0, MAX_RECEIVE_WAIT, 0),
    "VisibilityTimeout": (0, MAX_VISIBILITY_TIMEOUT, 30),
}
JSON_ATTRIBUTES = ("Policy", "RedrivePolicy", "RedriveAllowPolicy")
TEXT_ATTRIBUTES = ("KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled")
DEFAULTS: Mapping[str, str] = {
    **{name: str(default) for name, (_low, _high, default) in NUMERIC_ATTRIBUTES.items()},
    "SqsManagedSseEnabled": "true",
}

# SQS's errors: the shape name (the body's __type) -> the code of the query
# protocol, which botocore reports (the shape name becomes QueryErrorCode)
QUERY_CODES: Mapping[str, str] = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "QueueDeletedRecently": "AWS.SimpleQueueService.QueueDeletedRecently",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "PurgeQueueInProgress": "AWS.SimpleQueueService.PurgeQueueInProgress",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
    "BatchRequestTooLong": "AWS.SimpleQueueService.BatchRequestTooLong",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
}

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
# what a message body may hold: XML's characters
_INVALID_BODY = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_error(shape: str, message: str, status: int = 400) -> ApiError:
    """One of SQS's modeled errors, with its legacy code where it has one."""
    return ApiError(shape, message, status, query_code=QUERY_CODES.get(shape))


def invalid_parameter(name: str, value: Any, reason: str) -> ApiError:
    return ApiError(
        "InvalidParameterValue", f"Value {value} for parameter {name} is invalid. Reason: {reason}"
    )


def no_such_queue() -> ApiError:
    return sqs_error("QueueDoesNotExist", "The specified queue does not exist.")


def epoch_ms(moment: float) -> str:
    return str(round(moment * 1000))


def attributes_md5(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """SQS's MD5 of message attributes: per name in order, the name, the data
    type and the value, each prefixed by its length (4 bytes, big-endian), with
    a byte 1 (string) or 2 (binary) before the value."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        data_type = str(value["DataType"])
        binary = data_type.startswith("Binary")
        raw = bytes(value["BinaryValue"]) if binary else str(value["StringValue"]).encode()
        for part in (name.encode(), data_type.encode()):
            digest.update(len(part).to_bytes(4, "big") + part)
        digest.update(b"\x02" if binary else b"\x01")
        digest.update(len(raw).to_bytes(4, "big") + raw)
    return digest.hexdigest()


class State(enum.Enum):
    OUTSIDE = "outside"  # in no queue: not yet sent, or deleted, expired, purged or moved on
    DELAYED = "delayed"  # sent with a delay not yet over
    VISIBLE = "visible"
    IN_FLIGHT = "in flight"  # received; its visibility timeout not yet over


@dataclass(eq=False)
class Message:
    id: str
    body: str
    sent_at: float
    attributes: dict[str, Any]  # the MessageAttributes it was sent with
    fixed: dict[str, str]  # system attributes set at sending or moving: SenderId, AWSTraceHeader...
    body_md5: str = ""
    state: State = State.OUTSIDE
    epoch: int = 0  # bumped at every move: entries of an older epoch are stale
    receives: int = 0
    first_received_at: float | None = None
    receipt: int = 0  # the number of its latest receipt handle

    def __post_init__(self) -> None:
        self.body_md5 = hashlib.md5(self.body.encode(), usedforsecurity=False).hexdigest()

    def system_attributes(self) -> dict[str, str]:
        """Every system attribute it has now, as ReceiveMessage names them."""
        found = {
            **self.fixed,
            "SentTimestamp": epoch_ms(self.sent_at),
            "ApproximateReceiveCount": str(self.receives),
        }
        if self.first_received_at is not None:
            found["ApproximateFirstReceiveTimestamp"] = epoch_ms(self.first_received_at)
        return found


@dataclass(frozen=True)
class Redrive:
    target_arn: str
    max_receives: int


@dataclass(eq=False)
class Queue:
    """One standard queue: its settings and its messages."""

    name: str
    arn: str
    created_at: float
    settings: dict[str, str] = field(default_factory=lambda: dict(DEFAULTS))
    redrive: Redrive | None = None
    modified_at: float = 0.0
    purged_at: float = float("-inf")
    deleted: bool = False
    _messages: dict[str, Message] = field(default_factory=dict, init=False, repr=False)
    # (epoch, message), in the order they became visible
    _visible: deque[tuple[int, Message]] = field(default_factory=deque, init=False, repr=False)
    # (when visible, order, epoch, message)
    _hidden: list[tuple[float, int, int, Message]] = field(
        default_factory=list, init=False, repr=False)
    _order: itertools.count[int] = field(default_factory=itertools.count, init=False, repr=False)
    _counts: dict[State, int] = field(
        default_factory=lambda: dict.fromkeys(State, 0), init=False, repr=False)
    _wakeup: asyncio.Event | None = field(default=None, init=False, repr=False)

    def number(self, name: str) -> int:
        return int(self.settings[name])

    def count(self, state: State) -> int:
        return self._counts[state]

    def attributes(self, now: float) -> dict[str, str]:
        """Every attribute GetQueueAttributes can name, as of ``now``."""
        self.release(now)
        return {
            **self.settings,
            "QueueArn": self.arn,
            "ApproximateNumberOfMessages": str(self.count(State.VISIBLE)),
            "ApproximateNumberOfMessagesNotVisible": str(self.count(State.IN_FLIGHT)),
            "ApproximateNumberOfMessagesDelayed": str(self.count(State.DELAYED)),
            "CreatedTimestamp": str(int(self.created_at)),
            "LastModifiedTimestamp": str(int(self.modified_at or self.created_at)),
        }

    # -- receipt handles -------------------------------------------------------

    def receipt_handle(self, message: Message) -> str:
        raw = f"{self.arn} {message.id} {message.receipt}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def holder_of(self, handle: str) -> Message | None:
        """The message ``handle`` is the latest receipt of; None when it is
        gone or was received again since. ReceiptHandleIsInvalid when the
        handle is not one of this queue's."""
        try:
            arn, message_id, receipt = base64.urlsafe_b64decode(handle.encode()).decode().split(" ")
        except ValueError:  # not base64, not UTF-8, not three words
            arn, message_id, receipt = "", "", ""
        if arn != self.arn or not receipt.isdigit():
            raise sqs_error(
                "ReceiptHandleIsInvalid",
                f'The input receipt handle "{handle}" is not a valid receipt handle.',
            )
        message = self._messages.get(message_id)
        return message if message is not None and message.receipt == int(receipt) else None

    # -- moving messages ---------------------------------------------------------

    def add(self, message: Message, now: float, delay: int) -> None:
        self._messages[message.id] = message
        if delay > 0:
            self._hide(message, now + delay, State.DELAYED)
        else:
            self._show(message)

    def take(
        self, count: int, now: float, visibility: int, dead_letter: Queue | None
    ) -> list[Message]:
        """Up to ``count`` visible messages, received: hidden for ``visibility``
        seconds, their receive count and receipt number up by one. A message
        received ``maxReceiveCount`` times already goes to ``dead_letter``."""
        self.release(now)
        taken: list[Message] = []
        while self._visible and len(taken) < count:
            epoch, message = self._visible.popleft()
            if epoch != message.epoch:
                continue
            if self._expired(message, now):
                self.remove(message)
            elif (
                self.redrive is not None
                and dead_letter is not None
                and message.receives >= self.redrive.max_receives
            ):
                self.remove(message)
                dead_letter.adopt(message, self.arn)
            else:
                message.receives += 1
                message.receipt += 1
                if message.first_received_at is None:
                    message.first_received_at = now
                self._hide(message, now + visibility, State.IN_FLIGHT)
                taken.append(message)
        return taken

    def adopt(self, message: Message, source_arn: str) -> None:
        """Take ``message`` in from the queue whose dead-letter queue this is."""
        message.fixed["DeadLetterQueueSourceArn"] = source_arn
        self._messages[message.id] = message
        self._show(message)

    def change_visibility(self, message: Message, now: float, timeout: int) -> None:
        if message.state is not State.IN_FLIGHT:
            raise sqs_error(
                "MessageNotInflight",
                "Message does not exist or is not available for visibility timeout change.",
            )
        if timeout == 0:
            self._show(message)
        else:
            self._hide(message, now + timeout, State.IN_FLIGHT)

    def remove(self, message: Message) -> None:
        self._messages.pop(message.id, None)
        self._move(message, State.OUTSIDE)

    def purge(self) -> None:
        for message in list(self._messages.values()):
            self.remove(message)
        self._visible.clear()
        self._hidden.clear()

    def release(self, now: float) -> None:
        """Show every hidden message whose time has come (or forget it, expired)."""
        self._drop_stale_hidden()
        while self._hidden and self._hidden[0][0] <= now:
            message = heapq.heappop(self._hidden)[3]
            if self._expired(message, now):
                self.remove(message)
            else:
                self._show(message)
            self._drop_stale_hidden()

    def next_due(self) -> float | None:
        """When the earliest hidden message becomes visible, if one is hidden."""
        self._drop_stale_hidden()
        return self._hidden[0][0] if self._hidden else None

    # -- waiting for messages ----------------------------------------------------

    async def wait(self, timeout: float) -> None:
        """Until a message becomes visible, :meth:`wake` is called or ``timeout`` passes."""
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    def wake(self) -> None:
        """End every wait now (a message came, or the queue or emulator is going away)."""
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    # -- internals -----------------------------------------------------------------

    def _expired(self, message: Message, now: float) -> bool:
        return now >= message.sent_at + self.number("MessageRetentionPeriod")

    def _move(self, message: Message, state: State) -> None:
        if message.state is not State.OUTSIDE:
            self._counts[message.state] -= 1
        if state is not State.OUTSIDE:
            self._counts[state] += 1
        message.state = state
        message.epoch += 1

    def _show(self, message: Message) -> None:
        self._move(message, State.VISIBLE)
        self._visible.append((message.epoch, message))
        self.wake()

    def _hide(self, message: Message, until: float, state: State) -> None:
        self._move(message, state)
        heapq.heappush(self._hidden, (until, next(self._order), message.epoch, message))

    def _drop_stale_hidden(self) -> None:
        while self._hidden and self._hidden[0][2] != self._hidden[0][3].epoch:
            heapq.heappop(self._hidden)



class SqsService:
    """The SQS operations over the emulator's queues.

    ``origin`` gives the URL the current request reached the emulator at (the
    start of every queue URL); ``clock`` is the emulator's clock.
    :meth:`queue_at` and :meth:`send` are the way in for EventBridge's
    deliveries (:mod:`smrun.emulator.bus`)."""

    def __init__(
        self, *, region: str, account: str, clock: Callable[[], float], origin: Callable[[], str]
    ) -> None:
        self.region = region
        self.account = account
        self.clock = clock
        self.origin = origin
        # AWS's own words for a bad value: InvalidParameterValue; attribute
        # names are checked by the handlers (InvalidAttributeName)
        self.protocol = ServiceProtocol.for_service(
            "sqs", validation_code="InvalidParameterValue", check_enums=False
        )
        model = self.protocol.model
        self._system_names = frozenset(model.shape_for("MessageSystemAttributeName").enum)
        self._queue_names = frozenset(model.shape_for("QueueAttributeName").enum)
        self.queues: dict[str, Queue] = {}
        self._deleted_at: dict[str, float] = {}  # queue name -> when it was deleted
        self._closed = False
        self.operations: dict[str, Callable[[Params], Any]] = {
            "CreateQueue": self.create_queue,
            "GetQueueUrl": self.get_queue_url,
            "GetQueueAttributes": self.get_queue_attributes,
            "SetQueueAttributes": self.set_queue_attributes,
            "DeleteQueue": self.delete_queue,
            "ListQueues": self.list_queues,
            "PurgeQueue": self.purge_queue,
            "SendMessage": self.send_message,
            "SendMessageBatch": self.send_message_batch,
            "ReceiveMessage": self.receive_message,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
        }

    # -- for the rest of the emulator ------------------------------------------------

    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def queue_at(self, arn: str) -> Queue | None:
        """The queue of ``arn``, if it is one of this emulator's."""
        prefix = self.arn("")
        return self.queues.get(arn[len(prefix):]) if arn.startswith(prefix) else None

    def send(
        self,
        queue: Queue,
        body: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        delay: int = 0,
        fixed: Mapping[str, str] | None = None,
    ) -> Message:
        """Put a message in ``queue`` (checked already)."""
        message = Message(
            id=str(uuid.uuid4()),
            body=body,
            sent_at=self.clock(),
            attributes=dict(attributes or {}),
            fixed={"SenderId": self.account, **(fixed or {})},
        )
        queue.add(message, message.sent_at, delay)
        return message

    def close(self) -> None:
        """End every long poll now, with what it has, and have new ones end at
        once (the emulator is stopping) until :meth:`open`."""
        self._closed = True
        for queue in self.queues.values():
            queue.wake()

    def open(self) -> None:
        self._closed = False

    # -- queues -------------------------------------------------------------------

    def create_queue(self, params: Params) -> dict[str, Any]:
        name = params["QueueName"]
        attributes: dict[str, str] = params.get("Attributes") or {}
        if name.endswith(".fifo") or attributes.get("FifoQueue", "false").lower() != "false":
            raise sqs_error("UnsupportedOperation", "This emulator serves standard queues only.")
        if not _QUEUE_NAME.fullmatch(name):
            raise invalid_parameter(
                "QueueName", name,
                "Can only include alphanumeric characters, hyphens, or underscores. "
                "1 to 80 in length",
            )
        attributes = {k: v for k, v in attributes.items() if k != "FifoQueue"}
        existing = self.queues.get(name)
        if existing is not None:
            self._check_same(existing, attributes)
            return {"QueueUrl": self._url(name)}
        now = self.clock()
        if now < self._deleted_at.get(name, float("-inf")) + REUSE_AFTER:
            raise sqs_error(
                "QueueDeletedRecently",
                "You must wait 60 seconds after deleting a queue before you can create "
                "another with the same name.",
            )
        queue = Queue(name=name, arn=self.arn(name), created_at=now)
        self._configure(queue, attributes)
        self.queues[name] = queue
        return {"QueueUrl": self._url(name)}

    def get_queue_url(self, params: Params) -> dict[str, Any]:
        owner = params.get("QueueOwnerAWSAccountId", self.account)
        if owner != self.account or params["QueueName"] not in self.queues:
            raise no_such_queue()
        return {"QueueUrl": self._url(params["QueueName"])}

    def get_queue_attributes(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        names: list[str] = params.get("AttributeNames") or []
        for name in names:
            if name not in self._queue_names:
                raise _unknown_attribute(name)
        found = queue.attributes(self.clock())
        if "All" not in names:
            found = {name: found[name] for name in names if name in found}
        return {"Attributes": found} if found else {}

    def set_queue_attributes(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        self._configure(queue, params["Attributes"])
        queue.modified_at = self.clock()
        return {}

    def delete_queue(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        del self.queues[queue.name]
        self._deleted_at[queue.name] = self.clock()
        queue.deleted = True
        queue.wake()
        return {}

    def list_queues(self, params: Params) -> dict[str, Any]:
        prefix = params.get("QueueNamePrefix", "")
        limit = params.get("MaxResults")
        if limit is not None and not 1 <= limit <= 1000:
            raise invalid_parameter("MaxResults", limit, "MaxResults must be between 1 and 1000.")
        names = sorted(name for name in self.queues if name.startswith(prefix))
        token = params.get("NextToken")
        if token is not None:
            after = _decode_token(token)
            names = [name for name in names if name > after]
        page = names[: limit or 1000]
        result: dict[str, Any] = {}
        if page:
            result["QueueUrls"] = [self._url(name) for name in page]
        if limit is not None and len(names) > limit:
            result["NextToken"] = base64.urlsafe_b64encode(page[-1].encode()).decode("ascii")
        return result

    def purge_queue(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        now = self.clock()
        if now < queue.purged_at + PURGE_EVERY:
            raise sqs_error(
                "PurgeQueueInProgress",
                f"Only one PurgeQueue operation on {queue.name} is allowed every 60 seconds.",
                403,
            )
        queue.purge()
        queue.purged_at = now
        return {}

    # -- sending ------------------------------------------------------------------

    def send_message(self, params: Params) -> dict[str, Any]:
        return self._send_entry(self._queue(params), params)

    def send_message_batch(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        entries: list[Params] = params["Entries"]
        _check_batch(entries, "SendMessageBatchRequestEntry")
        size = sum(_message_size(e["MessageBody"], e.get("MessageAttributes") or {})
                   for e in entries)
        if size > queue.number("MaximumMessageSize"):
            raise sqs_error(
                "BatchRequestTooLong",
                f"Batch requests cannot be longer than {queue.number('MaximumMessageSize')} "
                f"bytes. You have sent {size} bytes.",
            )
        return _each_entry(entries, lambda entry: self._send_entry(queue, entry))

    def _send_entry(self, queue: Queue, entry: Params) -> dict[str, Any]:
        """SendMessage, or one entry of SendMessageBatch."""
        body: str = entry["MessageBody"]
        attributes: dict[str, Any] = entry.get("MessageAttributes") or {}
        system: dict[str, Any] = entry.get("MessageSystemAttributes") or {}
        _check_body(body, attributes, queue.number("MaximumMessageSize"))
        _check_attributes(attributes)
        _check_attributes(system)
        delay = _bounded(entry, "DelaySeconds", 0, MAX_DELAY, queue.number("DelaySeconds"))
        fixed = {name: str(value["StringValue"]) for name, value in system.items()}
        message = self.send(queue, body, attributes, delay=delay, fixed=fixed)
        result = {"MessageId": message.id, "MD5OfMessageBody": message.body_md5}
        if attributes:
            result["MD5OfMessageAttributes"] = attributes_md5(attributes)
        if system:
            result["MD5OfMessageSystemAttributes"] = attributes_md5(system)
        return result

    # -- receiving ------------------------------------------------------------------

    async def receive_message(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        count = _bounded(params, "MaxNumberOfMessages", 1, MAX_BATCH, 1)
        wait = _bounded(params, "WaitTimeSeconds", 0, MAX_RECEIVE_WAIT,
                        queue.number("ReceiveMessageWaitTimeSeconds"))
        visibility = _bounded(params, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT,
                              queue.number("VisibilityTimeout"))
        names = self._requested_system_attributes(params)
        wanted: list[str] = params.get("MessageAttributeNames") or []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if queue.deleted:  # while this poll waited
                raise no_such_queue()
            dead_letter = self.queue_at(queue.redrive.target_arn) if queue.redrive else None
            taken = queue.take(count, self.clock(), visibility, dead_letter)
            if taken:
                return {"Messages": [_received(queue, m, names, wanted) for m in taken]}
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closed:
                return {}
            # no await between the checks above and the wait: no wake-up is missed
            await queue.wait(self._recheck_in(queue, remaining))

    def _recheck_in(self, queue: Queue, remaining: float) -> float:
        """How long a long poll may sleep: until its end, or until the next
        hidden message is due back."""
        due = queue.next_due()
        if due is None:
            return remaining
        return min(remaining, max(due - self.clock(), RECHECK_FLOOR))

    def _requested_system_attributes(self, params: Params) -> frozenset[str]:
        """The system attributes asked for, by ``MessageSystemAttributeNames``
        or the older ``AttributeNames`` (which also takes queue attribute names,
        and ignores them)."""
        names = [*(params.get("AttributeNames") or []),
                 *(params.get("MessageSystemAttributeNames") or [])]
        for name in names:
            if name not in self._system_names and name not in self._queue_names:
                raise _unknown_attribute(name)
        return frozenset(names)

    def delete_message(self, params: Params) -> dict[str, Any]:
        return self._delete(self._queue(params), params)

    def delete_message_batch(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        entries: list[Params] = params["Entries"]
        _check_batch(entries, "DeleteMessageBatchRequestEntry")
        return _each_entry(entries, lambda entry: self._delete(queue, entry))

    def change_message_visibility(self, params: Params) -> dict[str, Any]:
        return self._change_visibility(self._queue(params), params)

    def change_message_visibility_batch(self, params: Params) -> dict[str, Any]:
        queue = self._queue(params)
        entries: list[Params] = params["Entries"]
        _check_batch(entries, "ChangeMessageVisibilityBatchRequestEntry")
        return _each_entry(entries, lambda entry: self._change_visibility(queue, entry))

    @staticmethod
    def _delete(queue: Queue, entry: Params) -> dict[str, Any]:
        """DeleteMessage, or one entry of DeleteMessageBatch."""
        message = queue.holder_of(entry["ReceiptHandle"])
        if message is not None:
            queue.remove(message)
        return {}

    def _change_visibility(self, queue: Queue, entry: Params) -> dict[str, Any]:
        """ChangeMessageVisibility, or one entry of ChangeMessageVisibilityBatch."""
        if entry.get("VisibilityTimeout") is None:
            raise ApiError("MissingParameter",
                           "The request must contain the parameter VisibilityTimeout.")
        timeout = _bounded(entry, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT, 0)
        handle: str = entry["ReceiptHandle"]
        message = queue.holder_of(handle)
        if message is None:
            raise invalid_parameter(
                "ReceiptHandle", handle,
                "Message does not exist or is not available for visibility timeout change.",
            )
        queue.change_visibility(message, self.clock(), timeout)
        return {}

    # -- queue settings -------------------------------------------------------------

    def _configure(self, queue: Queue, changes: Mapping[str, str]) -> None:
        """Apply attribute ``changes`` to ``queue``, all or none."""
        settings = dict(queue.settings)
        for name, value in changes.items():
            normal = self._normal(name, value)
            if normal is None:
                settings.pop(name, None)
            else:
                settings[name] = normal
        queue.settings = settings
        queue.redrive = _redrive(settings.get("RedrivePolicy"))

    def _check_same(self, queue: Queue, attributes: Mapping[str, str]) -> None:
        differ = [name for name, value in attributes.items()
                  if self._normal(name, value) != queue.settings.get(name)]
        if differ:
            raise sqs_error(
                "QueueNameExists",
                "A queue already exists with the same name and a different value for "
                f"attribute(s) {', '.join(differ)}",
            )

    def _normal(self, name: str, value: str) -> str | None:
        """The value of attribute ``name`` as the queue keeps it (None: unset),
        or AWS's error for it."""
        if name in NUMERIC_ATTRIBUTES:
            low, high, _default = NUMERIC_ATTRIBUTES[name]
            if not (value.isdigit() and low <= int(value) <= high):
                raise ApiError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            return str(int(value))
        if name in JSON_ATTRIBUTES:
            if value == "":
                return None  # an empty policy removes it
            if name == "RedrivePolicy":
                return self._normal_redrive(value)
            try:
                policy = json.loads(value)
            except ValueError:
                policy = None
            if not isinstance(policy, dict):
                raise ApiError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            return json.dumps(policy, separators=(",", ":"))
        if name in TEXT_ATTRIBUTES:
            return value
        raise _unknown_attribute(name)

    def _normal_redrive(self, text: str) -> str:
        try:
            policy = json.loads(text)
        except ValueError:
            policy = None
        if not isinstance(policy, dict) or set(policy) != {"deadLetterTargetArn",
                                                           "maxReceiveCount"}:
            raise invalid_parameter(
                "RedrivePolicy", text,
                "Redrive policy is not a JSON object of deadLetterTargetArn and maxReceiveCount.",
            )
        count = str(policy["maxReceiveCount"])
        if not count.isdigit() or not 1 <= int(count) <= 1000:
            raise invalid_parameter(
                "RedrivePolicy", text,
                f"Invalid value for maxReceiveCount: {count}, valid values are from 1 to 1000 "
                "both inclusive.",
            )
        if self.queue_at(str(policy["deadLetterTargetArn"])) is None:
            raise invalid_parameter("RedrivePolicy", text, "Dead letter target does not exist.")
        return json.dumps(
            {"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": int(count)},
            separators=(",", ":"),
        )

    # -- finding queues ---------------------------------------------------------------

    def _url(self, name: str) -> str:
        return f"{self.origin()}/{self.account}/{name}"

    def _queue(self, params: Params) -> Queue:
        url: str = params["QueueUrl"]
        parts = urlsplit(url).path.strip("/").split("/")
        if len(parts) != 2 or not all(parts):
            raise sqs_error("InvalidAddress", f"The address {url} is not valid for this endpoint.")
        account, name = parts
        queue = self.queues.get(name) if account == self.account else None
        if queue is None:
            raise no_such_queue()
        return queue


# -- checks and shapes ---------------------------------------------------------------


def _unknown_attribute(name: str) -> ApiError:
    return ApiError("InvalidAttributeName", f"Unknown Attribute {name}.")


def _redrive(text: str | None) -> Redrive | None:
    if text is None:
        return None
    policy = json.loads(text)
    return Redrive(str(policy["deadLetterTargetArn"]), int(policy["maxReceiveCount"]))


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise ApiError("InvalidParameterValue", "Invalid NextToken value.") from None


def _bounded(params: Params, name: str, low: int, high: int, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not low <= value <= high:
        raise invalid_parameter(name, value, f"Must be between {low} and {high}, if provided.")
    return int(value)


def _check_batch(entries: list[Params], entry_name: str) -> None:
    if not entries:
        raise sqs_error("EmptyBatchRequest", f"There should be at least one {entry_name} in the "
                        "request.")
    if len(entries) > MAX_BATCH:
        raise sqs_error(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH}. "
            f"You have sent {len(entries)}.",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry["Id"]
        if not _BATCH_ID.fullmatch(entry_id):
            raise sqs_error(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                "underscores. It can be at most 80 letters long.",
            )
        if entry_id in seen:
            raise sqs_error("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)


def _each_entry(
    entries: list[Params], act: Callable[[Params], dict[str, Any]]
) -> dict[str, Any]:
    """A *Batch call's answer: ``act`` on each entry, its error kept for that entry."""
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for entry in entries:
        try:
            successful.append({**act(entry), "Id": entry["Id"]})
        except ApiError as error:
            failed.append({"Id": entry["Id"], "SenderFault": error.status < 500,
                           "Code": error.code, "Message": error.message})
    return {"Successful": successful, "Failed": failed}


def _message_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """What SQS counts against MaximumMessageSize: the body and each attribute's
    name, type and value."""
    size = len(body.encode())
    for name, value in attributes.items():
        raw = value.get("BinaryValue") or str(value.get("StringValue") or "").encode()
        size += len(name.encode()) + len(str(value["DataType"]).encode()) + len(raw)
    return size


def _check_body(body: str, attributes: Mapping[str, Any], limit: int) -> None:
    if not body:
        raise ApiError("MissingParameter", "The request must contain the parameter MessageBody.")
    if _INVALID_BODY.search(body):
        raise sqs_error(
            "InvalidMessageContents",
            "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | "
            "#x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
        )
    if _message_size(body, attributes) > limit:
        raise ApiError(
            "InvalidParameterValue",
            f"One or more parameters are invalid. Reason: Message must be shorter than "
            f"{limit} bytes.",
        )


def _check_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise ApiError(
            "InvalidParameterValue",
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
            f"[{MAX_ATTRIBUTES}].",
        )
    for name, value in attributes.items():
        kind = str(value["DataType"]).split(".", 1)[0]
        if kind not in ("String", "Number", "Binary"):
            raise ApiError(
                "InvalidParameterValue",
                f"The type of message (user) attribute '{name}' is invalid. You must use only "
                "the following supported type prefixes: Binary, Number, String.",
            )
        if not value.get("BinaryValue" if kind == "Binary" else "StringValue"):
            raise ApiError(
                "InvalidParameterValue",
                f"The message attribute '{name}' must contain non-empty message attribute "
                f"value for message attribute type '{kind}'.",
            )


def _received(
    queue: Queue, message: Message, names: frozenset[str], wanted: list[str]
) -> dict[str, Any]:
    """``message`` as ReceiveMessage returns it, with the system attributes
    ``names`` and the message attributes ``wanted`` (names, ``All``, ``.*`` or
    ``prefix.*``)."""
    out: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": queue.receipt_handle(message),
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    system = message.system_attributes()
    if "All" not in names:
        system = {name: value for name, value in system.items() if name in names}
    if system:
        out["Attributes"] = system
    chosen = {name: value for name, value in message.attributes.items()
              if _wanted(name, wanted)}
    if chosen:
        out["MessageAttributes"] = chosen
        out["MD5OfMessageAttributes"] = attributes_md5(chosen)
    return out


def _wanted(name: str, wanted: list[str]) -> bool:
    for pattern in wanted:
        if pattern in ("All", ".*") or pattern == name:
            return True
        if pattern.endswith(".*") and name.startswith(pattern[:-1]):
            return True
    return False
