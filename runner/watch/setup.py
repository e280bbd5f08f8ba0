"""The AWS side of the ``events`` status source: one rule, two queues, made once.

SageMaker sends its state changes to EventBridge's default bus whether or not
anyone listens; :func:`setup_events` makes the path from there to a queue the
runner reads (:class:`smrun.watch.events.EventQueue`), and
:func:`teardown_events` removes it. They are account-level and run rarely
(``smrun events setup|teardown``), by someone allowed to; the runner itself
only needs :data:`smrun.watch.events.CONSUME_ACTIONS`.

What is made, every name derived from ``name`` (default ``smrun-events``):

- the dead-letter queue ``{name}-dlq``, keeping messages 14 days;
- the queue ``{name}``: messages kept 4 days, 60 s visibility (a message is
  handled in well under a second; after a crash it comes back within a
  minute), 20 s long polls by default, and a redrive policy that moves a
  message received 5 times without being deleted to the dead-letter queue;
- the rule ``{name}`` on the default bus: source ``aws.sagemaker``, detail-type
  any of the kinds' ``event_type``;
- its target ``smrun-queue``: the queue, with the dead-letter queue as its
  DeadLetterConfig, for events EventBridge gives up delivering (it retries a
  failing target for 24 hours). An SQS target has no RoleArn: each queue's
  policy lets ``events.amazonaws.com`` SendMessage, only for this rule
  (``aws:SourceArn``); other statements in those policies are kept.

Idempotent: each piece is looked up first; a missing one is created, one that
differs from the above is corrected (``updated``), the rest is ``found``. A
second setup changes nothing, a second teardown finds nothing to remove.

Guessed about AWS (moto does not check these): SQS refuses to create a queue
under a name deleted less than 60 seconds before, so a setup right after a
teardown can fail; ListQueues may lag a queue just created (setup then tries
CreateQueue again, which answers with the same queue when its attributes
match). moto does not enforce queue policies either: that the policy admits
the rule is taken from AWS's documentation, not tested.

Error handling: any AWS error is raised as an :class:`EventsSetupError` (an
:class:`~smrun.aws.EnvironmentProblem`) naming the call that failed; access
denied points at :data:`SETUP_ACTIONS` / :data:`TEARDOWN_ACTIONS`. Throttling
and transient faults are retried by :meth:`smrun.aws.Aws.call`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from smrun.aws import LONG_POLL_SECONDS, Aws, EnvironmentProblem
from smrun.errors import describe, is_aws_error, is_denied, is_not_found
from smrun.kind import Kind
from smrun.watch.events import SOURCE

DEFAULT_NAME = "smrun-events"
TARGET_ID = "smrun-queue"
DAY = 86_400
MAX_RECEIVE_COUNT = 5
QUEUE_ATTRIBUTES: Mapping[str, str] = MappingProxyType({
    "MessageRetentionPeriod": str(4 * DAY),
    "VisibilityTimeout": "60",
    "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_SECONDS),
})
DLQ_ATTRIBUTES: Mapping[str, str] = MappingProxyType({"MessageRetentionPeriod": str(14 * DAY)})
EVENTS_SERVICE = "events.amazonaws.com"
POLICY_SID = "smrun-events-rule"

SETUP_ACTIONS = (
    "events:DescribeRule",
    "events:PutRule",
    "events:ListTargetsByRule",
    "events:PutTargets",
    "sqs:ListQueues",
    "sqs:CreateQueue",
    "sqs:GetQueueAttributes",
    "sqs:SetQueueAttributes",
)
TEARDOWN_ACTIONS = (
    "events:DescribeRule",
    "events:ListTargetsByRule",
    "events:RemoveTargets",
    "events:DeleteRule",
    "sqs:ListQueues",
    "sqs:DeleteQueue",
)

# what a report names
RULE, TARGET, QUEUE, DLQ = "rule", "target", "queue", "dead-letter queue"

# queue names: 80 characters of these; rule names: 64 of these and dots
_NAME = re.compile(r"[A-Za-z0-9_-]{1,60}")


class EventsSetupError(EnvironmentProblem):
    """An AWS call of the events setup or teardown failed."""


@dataclass(frozen=True)
class EventsSetup:
    """Where the events go, and what this setup did."""

    name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    rule_arn: str
    created: tuple[str, ...] = ()  # made by this setup
    updated: tuple[str, ...] = ()  # existed, and were corrected
    found: tuple[str, ...] = ()  # existed as they should be

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def describe(self) -> str:
        done = "; ".join(f"{verb} {', '.join(what)}" for verb, what in (
            ("created", self.created), ("updated", self.updated), ("found", self.found)) if what)
        return f"{done} · queue {self.queue_url} · rule {self.rule_arn}"


@dataclass(frozen=True)
class EventsTeardown:
    """What a teardown removed, and what it did not find."""

    name: str
    removed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"removed {', '.join(self.removed)}" if self.removed else "",
                 f"not found {', '.join(self.missing)}" if self.missing else ""]
        return "; ".join(p for p in parts if p)


@dataclass
class _Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)

    def add(self, what: str, *, created: bool, changed: bool) -> None:
        (self.created if created else self.updated if changed else self.found).append(what)


# ---------------------------------------------------------------- decisions


def event_pattern(kinds: Mapping[str, Kind]) -> dict[str, list[str]]:
    """The rule's pattern: SageMaker's events of every kind that sends some."""
    types = sorted({kind.event_type for kind in kinds.values() if kind.event_type})
    if not types:
        raise ValueError("none of these kinds sends EventBridge events")
    return {"source": [SOURCE], "detail-type": types}


def same_pattern(found: str | None, wanted: Mapping[str, list[str]]) -> bool:
    """Whether a rule's EventPattern (JSON text) matches the same events as ``wanted``."""
    try:
        pattern = json.loads(found or "")
    except ValueError:
        return False
    if not isinstance(pattern, dict):
        return False
    return {k: sorted(v) if isinstance(v, list) else v for k, v in pattern.items()} == {
        k: sorted(v) for k, v in wanted.items()
    }


def redrive_policy(dlq_arn: str) -> dict[str, Any]:
    return {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}


def rule_statement(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """The queue policy statement that lets the rule send to the queue."""
    return {
        "Sid": POLICY_SID,
        "Effect": "Allow",
        "Principal": {"Service": EVENTS_SERVICE},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }


def with_statement(policy_text: str | None, statement: Mapping[str, Any]) -> str | None:
    """The queue policy with ``statement`` in it (replacing one of the same Sid,
    keeping the others), or None when it is already there as is."""
    try:
        policy = json.loads(policy_text) if policy_text else {}
    except ValueError:
        policy = {}
    if not isinstance(policy, dict):
        policy = {}
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        statements = []
    if dict(statement) in statements:
        return None
    others = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == POLICY_SID)]
    return json.dumps({**policy, "Version": policy.get("Version", "2012-10-17"),
                       "Statement": [*others, dict(statement)]})


def _same_attribute(name: str, found: str | None, wanted: str) -> bool:
    if found is None:
        return False
    if name == "RedrivePolicy":  # SQS may give maxReceiveCount back as a number or text
        try:
            mine, theirs = json.loads(wanted), json.loads(found)
        except ValueError:
            return False
        return isinstance(theirs, dict) and {k: str(v) for k, v in theirs.items()} == {
            k: str(v) for k, v in mine.items()
        }
    return found == wanted


def target_of(queue_arn: str, dlq_arn: str) -> dict[str, Any]:
    return {"Id": TARGET_ID, "Arn": queue_arn, "DeadLetterConfig": {"Arn": dlq_arn}}


# target members that would change what reaches the queue (or, RoleArn, how)
_ALTERING = ("Input", "InputPath", "InputTransformer", "RoleArn")


def _same_target(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    # a RetryPolicy is not compared: we set none, and AWS may report its defaults
    return (
        found.get("Arn") == wanted["Arn"]
        and (found.get("DeadLetterConfig") or {}).get("Arn") == wanted["DeadLetterConfig"]["Arn"]
        and not any(found.get(member) for member in _ALTERING)
    )


def _check(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"an events setup name is 1-60 letters, digits, - and _, not {name!r}")


# ---------------------------------------------------------------- the calls


class _Calls:
    """``aws.call`` that names the failed call in an EventsSetupError."""

    def __init__(self, aws: Aws, actions: tuple[str, ...]) -> None:
        self._aws = aws
        self._actions = actions

    async def __call__(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        found = await self.unless_missing(service, operation, **params)
        if found is None:
            raise EventsSetupError(f"{service} {operation}: what it names does not exist",
                                   "something else changed it meanwhile: run the command again")
        return found

    async def unless_missing(
        self, service: str, operation: str, **params: Any
    ) -> dict[str, Any] | None:
        """The call's answer, or None when what it names does not exist."""
        try:
            return await self._aws.call(service, operation, **params)
        except Exception as error:
            if not is_aws_error(error):
                raise
            if is_not_found(error):
                return None
            if is_denied(error):
                raise EventsSetupError(
                    f"access denied to {service}:{operation} ({describe(error)})",
                    "the events setup and teardown need " + ", ".join(self._actions),
                ) from error
            raise EventsSetupError(
                f"{service} {operation} failed ({describe(error)})",
                f"check the region and the {service} endpoint",
            ) from error


async def _find_queue(call: _Calls, name: str) -> str | None:
    # ListQueues answers for a prefix (up to 1000 URLs): "smrun-events" also
    # finds "smrun-events-dlq"
    response = await call("sqs", "ListQueues", QueueNamePrefix=name)
    for url in response.get("QueueUrls") or []:
        if str(url).rstrip("/").rsplit("/", 1)[-1] == name:
            return str(url)
    return None


async def _queue(
    call: _Calls, name: str, attributes: Mapping[str, str], rule_arn: str,
    what: str, report: _Report,
) -> tuple[str, str]:
    """The queue ``name`` with ``attributes`` and the rule's policy statement,
    created or corrected; its URL and ARN."""
    url = await _find_queue(call, name)
    created = url is None
    if url is None:
        response = await call("sqs", "CreateQueue", QueueName=name, Attributes=dict(attributes))
        url = str(response["QueueUrl"])
    found = (await call("sqs", "GetQueueAttributes", QueueUrl=url,
                        AttributeNames=["All"])).get("Attributes", {})
    arn = str(found["QueueArn"])
    stale = {k: v for k, v in attributes.items() if not _same_attribute(k, found.get(k), v)}
    policy = with_statement(found.get("Policy"), rule_statement(arn, rule_arn))
    if policy is not None:
        stale["Policy"] = policy
    if stale:
        await call("sqs", "SetQueueAttributes", QueueUrl=url, Attributes=stale)
    report.add(what, created=created, changed=bool(stale))
    return url, arn


async def _rule(call: _Calls, name: str, pattern: Mapping[str, list[str]],
                report: _Report) -> str:
    rule = await call.unless_missing("events", "DescribeRule", Name=name)
    if rule is not None and same_pattern(rule.get("EventPattern"), pattern) \
            and rule.get("State") == "ENABLED":
        report.add(RULE, created=False, changed=False)
        return str(rule["Arn"])
    response = await call(
        "events", "PutRule", Name=name, EventPattern=json.dumps(pattern), State="ENABLED",
        Description="SageMaker state changes for smrun (smrun events setup)",
    )
    report.add(RULE, created=rule is None, changed=True)
    return str(response["RuleArn"])


async def _targets(call: _Calls, rule: str) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"Rule": rule}
        if token:
            params["NextToken"] = token
        response = await call("events", "ListTargetsByRule", **params)
        targets.extend(response.get("Targets") or [])
        token = response.get("NextToken")
        if not token:
            return targets


async def _target(call: _Calls, rule: str, wanted: dict[str, Any], report: _Report) -> None:
    existing = next((t for t in await _targets(call, rule) if t.get("Id") == TARGET_ID), None)
    if existing is not None and _same_target(existing, wanted):
        report.add(TARGET, created=False, changed=False)
        return
    response = await call("events", "PutTargets", Rule=rule, Targets=[wanted])
    if response.get("FailedEntryCount"):
        failed = response.get("FailedEntries") or [{}]
        raise EventsSetupError(
            f"EventBridge refused the queue as the rule's target: "
            f"{failed[0].get('ErrorCode', '')} {failed[0].get('ErrorMessage', '')}".strip(),
            "check the queue's ARN and region",
        )
    report.add(TARGET, created=existing is None, changed=True)


# ---------------------------------------------------------------- entry points


async def setup_events(
    aws: Aws, *, name: str = DEFAULT_NAME, kinds: Mapping[str, Kind]
) -> EventsSetup:
    """Make (or find, or correct) the rule, queues and target that bring
    SageMaker's state changes of ``kinds`` to the queue ``name``.

    Error handling: :class:`EventsSetupError` for any AWS error; ValueError for
    a bad ``name`` or kinds that send no events (before any call)."""
    _check(name)
    pattern = event_pattern(kinds)
    call, report = _Calls(aws, SETUP_ACTIONS), _Report()
    rule_arn = await _rule(call, name, pattern, report)
    dlq_url, dlq_arn = await _queue(call, f"{name}-dlq", DLQ_ATTRIBUTES, rule_arn, DLQ, report)
    attributes = {**QUEUE_ATTRIBUTES, "RedrivePolicy": json.dumps(redrive_policy(dlq_arn))}
    queue_url, queue_arn = await _queue(call, name, attributes, rule_arn, QUEUE, report)
    await _target(call, name, target_of(queue_arn, dlq_arn), report)
    return EventsSetup(
        name=name, queue_url=queue_url, queue_arn=queue_arn, dlq_url=dlq_url, dlq_arn=dlq_arn,
        rule_arn=rule_arn, created=tuple(report.created), updated=tuple(report.updated),
        found=tuple(report.found),
    )


async def teardown_events(aws: Aws, *, name: str = DEFAULT_NAME) -> EventsTeardown:
    """Remove the rule ``name`` (and every target on it), the queue and its
    dead-letter queue, with the messages in them. Missing pieces are fine.

    Error handling: :class:`EventsSetupError` for any AWS error; ValueError for
    a bad ``name``."""
    _check(name)
    call = _Calls(aws, TEARDOWN_ACTIONS)
    removed: list[str] = []
    missing: list[str] = []
    if await call.unless_missing("events", "DescribeRule", Name=name) is not None:
        # a rule with targets can't be deleted: ours go with it, and so do any
        # someone added to it
        ids = [str(t["Id"]) for t in await _targets(call, name)]
        if ids:
            await call("events", "RemoveTargets", Rule=name, Ids=ids)
        (removed if TARGET_ID in ids else missing).append(TARGET)
        await call("events", "DeleteRule", Name=name)
        removed.append(RULE)
    else:
        missing.extend((TARGET, RULE))
    for queue, what in ((name, QUEUE), (f"{name}-dlq", DLQ)):
        url = await _find_queue(call, queue)
        if url is None:
            missing.append(what)
        else:
            await call("sqs", "DeleteQueue", QueueUrl=url)
            removed.append(what)
    return EventsTeardown(name=name, removed=tuple(removed), missing=tuple(missing))
