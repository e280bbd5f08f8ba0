"""Submissions from SQS: ``smrun daemon --queue SQS_URL``.

:func:`consume` long-polls the queue and turns each message into a run of the
daemon (:meth:`~smrun.daemon.service.Daemon.submit`). A message body is one of:

- a manifest, YAML or JSON text;
- an S3 URI, ``s3://bucket/key``: the manifest is that object (UTF-8 text);
- a JSON envelope ``{"manifest": <text or object>, "run_id": ..., "on_cancel":
  "stop"|"detach"}``, or the same with ``"manifest_uri": "s3://bucket/key"`` in
  place of ``"manifest"`` (``run_id`` and ``on_cancel`` are optional; any other
  field is an error).

A body that starts with ``{`` is read as JSON: an object with ``manifest`` or
``manifest_uri`` is an envelope, any other object is the manifest itself.

The run id, unless the envelope names one, comes from the SQS MessageId
(:func:`run_id_for`), which SQS keeps across redeliveries: a message received
again (its delete was lost, its visibility timed out, another daemon received
it as well) is the same run, which :meth:`Daemon.submit` does not record twice.

What happens to a message:

- it is deleted only once its run is recorded (``submit`` returned), new or not;
- while it is handled (the S3 read, the validation, the recording) its
  visibility is extended every ``extend_every`` seconds by
  ``visibility_timeout``, so that no other daemon receives it meanwhile;
- a message that can never become a run (a poison message: a body that is not
  what is said above, an S3 object that can't be read, a manifest that does
  not validate, a run id already used by another manifest) is moved to the
  queue's dead-letter queue, the one its ``RedrivePolicy`` names: sent there
  unchanged, with message attributes saying why (``smrun-error``: the messages
  of the validation, truncated to fit SQS's limits; ``smrun-error-type``;
  ``smrun-message-id``: the original MessageId; and, as room allows, the
  original message's own attributes), then deleted from the queue;
- with no dead-letter queue (no redrive policy, or one naming a queue that
  does not exist), a poison message is left in the queue and an error is
  logged once per message id: it is received again after every visibility
  timeout, until the queue's retention period ends and SQS drops it;
- any other failure while handling it (the store is down, an S3 read broke
  off, credentials expired) leaves it in the queue: it is received again
  after its visibility timeout, a natural backoff. With a redrive policy, SQS
  itself moves a message received ``maxReceiveCount`` times to the dead-letter
  queue, without our attributes.

When :func:`consume` is cancelled (the daemon shuts down), the messages it was
still handling are made visible again at once, for another daemon to take.

Error handling: :func:`consume` never raises but for its cancellation (and a
``ValueError`` for bad arguments, at once). Throttling and transient faults
are retried by ``call`` (:meth:`smrun.aws.Aws.call`); any other error of
ReceiveMessage (access denied, no such queue, rejected credentials) is logged
through ``log`` and the queue is polled again after a pause that doubles up to
``retry_pause_max``. Errors of the other calls are logged, and the message
stays in the queue, as above.

Permissions: on the queue sqs:ReceiveMessage, sqs:ChangeMessageVisibility,
sqs:DeleteMessage and sqs:GetQueueAttributes; on the dead-letter queue
sqs:SendMessage and sqs:GetQueueUrl (without the latter, its URL is made
from the queue's, as SQS keeps both in one account and region); s3:GetObject
on the manifests' objects.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from botocore.exceptions import ClientError, ParamValidationError

from smrun.aws import LONG_POLL_SECONDS
from smrun.budget import Priority
from smrun.daemon.service import Daemon
from smrun.errors import ErrorClass, classify, describe, is_aws_error
from smrun.manifest import ManifestError
from smrun.store import RunConflict

MAX_BATCH = 10  # ReceiveMessage's MaxNumberOfMessages, ChangeMessageVisibilityBatch's entries
VISIBILITY_TIMEOUT = 60  # seconds a received message stays hidden, renewed while handled
EXTEND_EVERY = 20.0
MAX_VISIBILITY_TIMEOUT = 43_200  # SQS's longest: 12 hours
MAX_MANIFEST_BYTES = 5 * 1024 * 1024  # as the HTTP API takes (runner.daemon.api.MAX_BODY)
# The most SQS takes in one message, body and attributes: 1 MiB since 2025, but a queue
# keeps its MaximumMessageSize, 256 KiB by default before then; a dead-letter message is
# sized for the older limit unless its body alone is over it.
MESSAGE_LIMIT = 262_144
LARGE_MESSAGE_LIMIT = 1_048_576
MAX_ATTRIBUTES = 10  # message attributes per message
MAX_ERROR_BYTES = 8_192  # the error attribute, at most (its messages truncated)
ERROR_ATTRIBUTE = "smrun-error"
ERROR_TYPE_ATTRIBUTE = "smrun-error-type"
MESSAGE_ID_ATTRIBUTE = "smrun-message-id"
RUN_ID_PREFIX = "sqs-"
ENVELOPE_FIELDS = ("manifest", "manifest_uri", "run_id", "on_cancel")
ON_CANCEL = ("stop", "detach")
# how many message ids the "no dead-letter queue" error remembers having told
_TOLD_MAX = 10_000
_TRUNCATED = " … (truncated)"

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
# the characters SQS allows in a message body and in a string attribute
_NOT_SQS_TEXT = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# S3 answers that say the object can't be read as named: never worth another try
_UNREADABLE = frozenset({ErrorClass.NOT_FOUND, ErrorClass.DENIED, ErrorClass.INVALID})

Log = Callable[[str, str], None]  # (level, message)


class Call(Protocol):
    """:meth:`smrun.aws.Aws.call`: one AWS call through the budgets and retries."""

    def __call__(
        self, service: str, operation: str, *, priority: Priority = ..., **params: Any
    ) -> Awaitable[dict[str, Any]]: ...


class Rejected(Exception):
    """A message that can never become a run (a poison message): ``kind`` says
    which way (``invalid-message``, ``unreadable-manifest``, ``invalid-manifest``,
    ``run-conflict``), ``errors`` the details."""

    def __init__(self, kind: str, errors: Sequence[str]) -> None:
        self.kind = kind
        self.errors = list(errors) or [kind]
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class Submission:
    """What a message asks: a manifest (its text, or an S3 URI to read it from)."""

    manifest: str | None = None  # the text; None when it is at ``uri``
    uri: str | None = None  # s3://bucket/key
    run_id: str | None = None
    on_cancel: str | None = None

    def options(self) -> dict[str, Any]:
        return {} if self.on_cancel is None else {"on_cancel": self.on_cancel}


# ---------------------------------------------------------------- decisions


def valid_run_id(run_id: str) -> bool:
    """1 to 40 ASCII letters, digits and hyphens, starting with a letter or digit."""
    return _RUN_ID.fullmatch(run_id) is not None


def run_id_for(message_id: str) -> str:
    """The run id of a message without one: ``sqs-`` and the first 32 hex
    digits of its MessageId (a UUID) without hyphens, or of the MessageId's
    SHA-256 when it is not hex. The same for every delivery of the message."""
    digits = message_id.replace("-", "").lower()
    if len(digits) < 32 or re.fullmatch(r"[0-9a-f]+", digits) is None:
        digits = hashlib.sha256(message_id.encode("utf-8")).hexdigest()
    return RUN_ID_PREFIX + digits[:32]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; :class:`Rejected` for anything else."""
    if not uri.startswith("s3://"):
        raise Rejected("invalid-message", [f"not an S3 URI (s3://bucket/key): {uri!r}"])
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not _BUCKET.fullmatch(bucket) or not key:
        raise Rejected("invalid-message", [f"not an S3 URI of an object (s3://bucket/key): "
                                           f"{uri!r}"])
    return bucket, key


def parse_body(body: str) -> Submission:
    """What a message body asks (see the module); :class:`Rejected` when it
    can't be a submission. A manifest is not validated here."""
    text = body.strip()
    if not text:
        raise Rejected("invalid-message", ["the message is empty"])
    if text.startswith("s3://") and "\n" not in text:  # a key may hold spaces
        parse_s3_uri(text)
        return Submission(uri=text)
    if not text.startswith("{"):
        return Submission(manifest=body)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise Rejected("invalid-message", [f"the message is not valid JSON: {error}"]) from None
    if not isinstance(data, dict) or not ({"manifest", "manifest_uri"} & data.keys()):
        return Submission(manifest=body)  # a JSON manifest
    return _envelope(data)


def _envelope(data: Mapping[str, Any]) -> Submission:
    errors: list[str] = []
    unknown = sorted(set(data) - set(ENVELOPE_FIELDS))
    if unknown:
        errors.append(f"unknown field(s) {', '.join(map(repr, unknown))}; a submission has "
                      + ", ".join(ENVELOPE_FIELDS))
    manifest, uri = data.get("manifest"), data.get("manifest_uri")
    text: str | None = None
    if "manifest" in data and "manifest_uri" in data:
        errors.append("give either manifest or manifest_uri, not both")
    elif "manifest" in data:
        if isinstance(manifest, str) and manifest.strip():
            text = manifest
        elif isinstance(manifest, dict) and manifest:
            text = json.dumps(manifest, indent=2)
        else:
            errors.append("manifest: the manifest's text (YAML or JSON) or a JSON object")
    elif not isinstance(uri, str):
        errors.append("manifest_uri: an S3 URI, s3://bucket/key")
    else:
        try:
            parse_s3_uri(uri)
        except Rejected as bad:
            errors.extend(f"manifest_uri: {e}" for e in bad.errors)
    run_id, on_cancel = data.get("run_id"), data.get("on_cancel")
    if run_id is not None and not (isinstance(run_id, str) and valid_run_id(run_id)):
        errors.append(f"run_id: 1 to 40 letters, digits and hyphens, not {run_id!r}")
    if on_cancel is not None and on_cancel not in ON_CANCEL:
        errors.append(f"on_cancel: 'stop' or 'detach', not {on_cancel!r}")
    if errors:
        raise Rejected("invalid-message", errors)
    return Submission(manifest=text, uri=None if text is not None else str(uri),
                      run_id=run_id, on_cancel=on_cancel)


def decode_manifest(data: bytes, uri: str) -> str:
    """An S3 object's bytes as a manifest's text (UTF-8, a BOM allowed)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise Rejected("unreadable-manifest", [_too_large(uri, len(data))])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Rejected("unreadable-manifest", [f"{uri}: not UTF-8 text ({error})"]) from None
    if not text.strip():
        raise Rejected("unreadable-manifest", [f"{uri}: the object is empty"])
    return text


def _why(error: BaseException) -> str:
    """An error in one line: AWS's code and message, or the exception's type and text."""
    return describe(error) if is_aws_error(error) else f"{type(error).__name__}: {error}"


def _too_large(uri: str, size: int) -> str:
    return f"{uri}: {size} bytes, more than a manifest may have ({MAX_MANIFEST_BYTES})"


def dead_letter_target(redrive_policy: str | None) -> tuple[str, str] | None:
    """``(account, queue name)`` of the dead-letter queue a ``RedrivePolicy``
    attribute (JSON with ``deadLetterTargetArn``) names; None without one."""
    if not redrive_policy:
        return None
    try:
        policy = json.loads(redrive_policy)
    except ValueError:
        return None
    arn = policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None
    parts = arn.split(":", 5) if isinstance(arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        return None
    return parts[4], parts[5]


def sibling_queue_url(queue_url: str, name: str) -> str:
    """The URL of queue ``name`` in the account and region of ``queue_url``
    (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``: the name is the last part)."""
    return queue_url.rstrip("/").rsplit("/", 1)[0] + "/" + name


def sqs_text(text: str, limit: int) -> str:
    """``text`` as SQS takes it in a string attribute: characters it refuses
    replaced, cut (marked so) to at most ``limit`` bytes of UTF-8."""
    text = _NOT_SQS_TEXT.sub("\ufffd", text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(_TRUNCATED.encode("utf-8"))
    if room <= 0:
        return data[:max(0, limit)].decode("utf-8", errors="ignore")
    return data[:room].decode("utf-8", errors="ignore") + _TRUNCATED


def _attribute_size(name: str, value: Mapping[str, Any]) -> int:
    """What SQS counts of an attribute against the message size: name, type and value."""
    raw = value.get("StringValue", value.get("BinaryValue", b""))
    size = len(raw) if isinstance(raw, bytes) else len(str(raw).encode("utf-8"))
    return len(name.encode("utf-8")) + len(str(value.get("DataType", "")).encode("utf-8")) + size


def dead_letter_attributes(message: Mapping[str, Any], rejected: Rejected) -> dict[str, Any]:
    """The message attributes of a poison message sent to the dead-letter
    queue: why (the error, truncated to fit), its MessageId, then its own
    attributes as far as SQS's limits (10 attributes, the message size) allow."""
    body = str(message.get("Body", "")).encode("utf-8")
    limit = MESSAGE_LIMIT if len(body) < MESSAGE_LIMIT else LARGE_MESSAGE_LIMIT
    ours: dict[str, Any] = {
        MESSAGE_ID_ATTRIBUTE: {"DataType": "String",
                               "StringValue": str(message.get("MessageId", ""))},
        ERROR_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": rejected.kind},
    }
    room = limit - len(body) - sum(_attribute_size(k, v) for k, v in ours.items())
    room -= len(ERROR_ATTRIBUTE) + len("String")
    error = sqs_text("\n".join(rejected.errors), min(MAX_ERROR_BYTES, room))
    if error:
        ours[ERROR_ATTRIBUTE] = {"DataType": "String", "StringValue": error}
        room -= len(error.encode("utf-8"))
    attributes = dict(ours)
    for name, value in (message.get("MessageAttributes") or {}).items():
        if len(attributes) >= MAX_ATTRIBUTES or name in attributes:
            continue
        kept = {k: value[k] for k in ("DataType", "StringValue", "BinaryValue") if k in value}
        size = _attribute_size(name, kept)
        if "DataType" in kept and size <= room:
            attributes[name] = kept
            room -= size
    return attributes


# ---------------------------------------------------------------- the consumer


async def consume(
    daemon: Daemon,
    queue_url: str,
    *,
    call: Call,
    log: Log | None = None,
    wait_seconds: int = LONG_POLL_SECONDS,
    batch: int = MAX_BATCH,
    visibility_timeout: int = VISIBILITY_TIMEOUT,
    extend_every: float = EXTEND_EVERY,
    retry_pause: float = 1.0,
    retry_pause_max: float = 60.0,
    redrive_refresh: float = 60.0,
    grace: float = 5.0,
) -> None:
    """Take submissions from the SQS queue at ``queue_url`` until cancelled
    (see the module for what becomes of each message).

    ``call`` is :meth:`smrun.aws.Aws.call` (``engine.require_aws().call``);
    ``log`` gets ``(level, message)``, as the daemon's own log. A message is
    hidden ``visibility_timeout`` seconds when received, and that again every
    ``extend_every`` seconds while it is handled. The queue's redrive policy
    is read again after ``redrive_refresh`` seconds. Deleting a recorded
    message, and releasing unhandled ones on cancellation, may take ``grace``
    seconds more.

    Error handling: never raises but ``ValueError`` for bad arguments and
    the cancellation; every error is logged and the loop goes on."""
    if not 1 <= wait_seconds <= LONG_POLL_SECONDS:
        raise ValueError(f"wait_seconds must be 1 to {LONG_POLL_SECONDS}, not {wait_seconds}")
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be 1 to {MAX_BATCH}, not {batch}")
    if not 1 <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT:
        raise ValueError(f"visibility_timeout must be 1 to {MAX_VISIBILITY_TIMEOUT} seconds, "
                         f"not {visibility_timeout}")
    if not 0 < extend_every < visibility_timeout:
        raise ValueError("extend_every must be above 0 and below visibility_timeout")
    consumer = _Consumer(
        daemon, queue_url, call, log or (lambda level, message: None),
        wait_seconds=wait_seconds, batch=batch, visibility_timeout=visibility_timeout,
        extend_every=extend_every, retry_pause=retry_pause, retry_pause_max=retry_pause_max,
        redrive_refresh=redrive_refresh, grace=grace,
    )
    await consumer.run()


class _Consumer:
    def __init__(
        self, daemon: Daemon, queue_url: str, call: Call, log: Log, *, wait_seconds: int,
        batch: int, visibility_timeout: int, extend_every: float, retry_pause: float,
        retry_pause_max: float, redrive_refresh: float, grace: float,
    ) -> None:
        self.daemon = daemon
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")
        self._call = call
        self._log = log
        self.wait_seconds = wait_seconds
        self.batch = batch
        self.visibility_timeout = visibility_timeout
        self.extend_every = extend_every
        self.retry_pause = retry_pause
        self.retry_pause_max = retry_pause_max
        self.redrive_refresh = redrive_refresh
        self.grace = grace
        # the dead-letter queue's URL (None: there is none, for the reason given),
        # and when it was looked up
        self._dead_letter: tuple[str | None, str] = (None, "")
        self._looked_up: float | None = None
        self._told: dict[str, None] = {}  # message ids whose "no dead-letter queue" was logged
        # a delete and a change of visibility never cross: a change sent while
        # the message is being deleted would fail on its spent receipt handle
        self._receipts = anyio.Lock()
        self._deleted: set[str] = set()  # message ids deleted while still held

    async def run(self) -> None:
        pause = 0.0
        while True:
            try:
                messages = await self._receive()
            except Exception as error:
                pause = min(self.retry_pause_max, pause * 2) if pause else self.retry_pause
                self._log("error", f"receiving submissions from {self.queue_url} failed "
                          f"({_why(error)}); trying again in {pause:g}s")
                await anyio.sleep(pause)
                continue
            if pause:
                self._log("info", f"the submissions queue {self.queue_url} answers again")
                pause = 0.0
            try:
                await self._handle_all(messages)
            except Exception as error:  # a bug of ours: say so, keep the daemon
                self._log("error", f"handling submissions failed: {type(error).__name__}: "
                          f"{error}")

    async def _receive(self) -> list[dict[str, Any]]:
        response = await self._call(
            "sqs", "ReceiveMessage", priority=Priority.LIVE, QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch, WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility_timeout, MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    async def _handle_all(self, messages: list[dict[str, Any]]) -> None:
        """Handle one receive's messages at once, keeping them hidden meanwhile."""
        held: dict[str, str] = {}  # message id -> receipt handle, while being handled
        for message in messages:
            if message.get("MessageId") and message.get("ReceiptHandle"):
                held[str(message["MessageId"])] = str(message["ReceiptHandle"])
        if not held:
            return
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_hidden, held, name="submissions:visibility")
                async with anyio.create_task_group() as handlers:
                    for message in messages:
                        if str(message.get("MessageId")) in held:
                            handlers.start_soon(self._handle, message, held)
                tg.cancel_scope.cancel()
        finally:
            if held:  # cancelled: what was not handled goes back to the queue at once
                with anyio.move_on_after(self.grace, shield=True):
                    await self._change_visibility(held, 0)

    async def _keep_hidden(self, held: dict[str, str]) -> None:
        while True:
            await anyio.sleep(self.extend_every)
            if held:
                await self._change_visibility(held, self.visibility_timeout)

    async def _change_visibility(self, held: Mapping[str, str], seconds: int) -> None:
        async with self._receipts:
            ids = [message_id for message_id in held if message_id not in self._deleted]
            if ids:
                await self._send_visibility(held, ids, seconds)

    async def _send_visibility(self, held: Mapping[str, str], ids: list[str],
                               seconds: int) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": held[message_id], "VisibilityTimeout": seconds}
                   for i, message_id in enumerate(ids)]
        doing = "extend the visibility of" if seconds else "release"
        try:
            response = await self._call("sqs", "ChangeMessageVisibilityBatch",
                                        priority=Priority.FINISH, QueueUrl=self.queue_url,
                                        Entries=entries)
        except Exception as error:
            self._log("warning", f"could not {doing} SQS messages {', '.join(ids)} "
                      f"({_why(error)})")
            return
        for failed in response.get("Failed") or []:
            index = int(failed.get("Id", -1))
            message_id = ids[index] if 0 <= index < len(ids) else "?"
            self._log("warning", f"could not {doing} SQS message {message_id} "
                      f"({failed.get('Code')}: {failed.get('Message', '')})")

    async def _handle(self, message: dict[str, Any], held: dict[str, str]) -> None:
        message_id = str(message["MessageId"])
        try:
            await self._take(message, message_id)
        except Exception as error:  # a bug of ours: the message stays in the queue
            self._log("error", f"SQS message {message_id}: {type(error).__name__}: {error}")
        held.pop(message_id, None)
        self._deleted.discard(message_id)

    async def _take(self, message: dict[str, Any], message_id: str) -> None:
        try:
            submission = parse_body(str(message.get("Body") or ""))
            run_id = submission.run_id or run_id_for(message_id)
            if submission.uri is not None:
                text, source = await self._fetch(submission.uri), submission.uri
            else:
                text, source = submission.manifest or "", f"sqs:{message_id}"
            try:
                run, created = await self.daemon.submit(
                    text, run_id=run_id, source=source, options=submission.options())
            except ManifestError as invalid:
                raise Rejected("invalid-manifest", invalid.errors) from None
            except RunConflict as conflict:
                raise Rejected("run-conflict", [str(conflict)]) from None
        except Rejected as rejected:
            await self._reject(message, message_id, rejected)
            return
        except Exception as error:
            self._log("warning", f"SQS message {message_id}: {_why(error)}; it stays in "
                      "the queue and is received again after its visibility timeout")
            return
        if created:
            self._log("info", f"run {run.run_id} submitted by SQS message {message_id}")
        else:
            self._log("info", f"SQS message {message_id}: run {run.run_id} was recorded "
                      "already; deleting the message")
        await self._delete(message, message_id, f"run {run.run_id} is recorded")

    async def _fetch(self, uri: str) -> str:
        bucket, key = parse_s3_uri(uri)
        try:
            response = await self._call("s3", "GetObject", priority=Priority.LIVE,
                                        Bucket=bucket, Key=key)
        except ParamValidationError as error:
            raise Rejected("unreadable-manifest", [f"{uri}: {error}"]) from None
        except ClientError as error:
            if classify(error) in _UNREADABLE:
                raise Rejected("unreadable-manifest", [f"{uri}: {describe(error)}"]) from None
            raise
        length = response.get("ContentLength")
        async with response["Body"] as stream:  # closed unread when too large
            if isinstance(length, int) and length > MAX_MANIFEST_BYTES:
                raise Rejected("unreadable-manifest", [_too_large(uri, length)])
            data = await stream.read()
        return decode_manifest(data, uri)

    async def _reject(self, message: dict[str, Any], message_id: str, rejected: Rejected) -> None:
        why = "; ".join(rejected.errors)
        try:
            dead_letter, missing = await self._dead_letter_queue()
        except Exception as error:
            self._log("warning", f"SQS message {message_id} can't become a run ({why}), and "
                      f"the queue's dead-letter queue can't be found ({_why(error)}); it "
                      "stays in the queue")
            return
        if dead_letter is None:
            if message_id not in self._told:
                self._told[message_id] = None
                if len(self._told) > _TOLD_MAX:
                    del self._told[next(iter(self._told))]
                self._log("error", f"SQS message {message_id} can't become a run ({why}); "
                          f"{missing}, so it stays in the queue, received again after every "
                          "visibility timeout until the queue's retention period ends")
            return
        params: dict[str, Any] = {
            "QueueUrl": dead_letter,
            "MessageBody": str(message.get("Body") or ""),
            "MessageAttributes": dead_letter_attributes(message, rejected),
        }
        if self.fifo:
            system = message.get("Attributes") or {}
            params["MessageGroupId"] = str(system.get("MessageGroupId") or "smrun")
            params["MessageDeduplicationId"] = message_id[:128]
        try:
            await self._call("sqs", "SendMessage", priority=Priority.FINISH, **params)
        except Exception as error:
            self._log("warning", f"SQS message {message_id} can't become a run ({why}), and "
                      f"could not be moved to the dead-letter queue {dead_letter} "
                      f"({_why(error)}); it stays in the queue")
            return
        self._log("warning", f"SQS message {message_id} can't become a run ({why}); moved "
                  f"to the dead-letter queue {dead_letter}")
        await self._delete(message, message_id, f"it is in the dead-letter queue {dead_letter}")

    async def _dead_letter_queue(self) -> tuple[str | None, str]:
        """The dead-letter queue's URL, or None and why there is none (cached
        for ``redrive_refresh`` seconds)."""
        now = time.monotonic()
        if self._looked_up is not None and now - self._looked_up < self.redrive_refresh:
            return self._dead_letter
        response = await self._call("sqs", "GetQueueAttributes", priority=Priority.FINISH,
                                    QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])
        policy = (response.get("Attributes") or {}).get("RedrivePolicy")
        target = dead_letter_target(policy)
        found: tuple[str | None, str]
        if target is None:
            found = (None, "the queue has no dead-letter queue (no RedrivePolicy)")
        else:
            account, name = target
            try:
                answer = await self._call("sqs", "GetQueueUrl", priority=Priority.FINISH,
                                          QueueName=name, QueueOwnerAWSAccountId=account)
                found = (str(answer["QueueUrl"]), "")
            except ClientError as error:
                what = classify(error)
                if what is ErrorClass.DENIED:  # no sqs:GetQueueUrl: it is next to the queue
                    found = (sibling_queue_url(self.queue_url, name), "")
                elif what in (ErrorClass.CREDENTIALS, ErrorClass.THROTTLED,
                              ErrorClass.TRANSIENT):
                    raise
                else:
                    found = (None, f"its dead-letter queue {name} can't be found "
                             f"({describe(error)})")
        self._dead_letter, self._looked_up = found, now
        return found

    async def _delete(self, message: Mapping[str, Any], message_id: str, why: str) -> None:
        try:
            with anyio.move_on_after(self.grace, shield=True) as scope:
                async with self._receipts:
                    self._deleted.add(message_id)
                    await self._call("sqs", "DeleteMessage", priority=Priority.FINISH,
                                     QueueUrl=self.queue_url,
                                     ReceiptHandle=str(message["ReceiptHandle"]))
            if scope.cancelled_caught:
                raise TimeoutError(f"no answer within {self.grace:g}s")
        except Exception as error:
            self._log("warning", f"SQS message {message_id}: {why}, but the message could not "
                      f"be deleted ({_why(error)}); it comes back, and is deleted then")


__all__ = [
    "Call",
    "Rejected",
    "Submission",
    "consume",
    "dead_letter_attributes",
    "dead_letter_target",
    "parse_body",
    "parse_s3_uri",
    "run_id_for",
    "sibling_queue_url",
    "valid_run_id",
]
