"""EventBridge: the default event bus, its rules and targets, delivering to SQS.

Rules match events by pattern (:mod:`smrun.emulator.patterns`); each event a
rule matches is delivered to every target of the rule at once, in process,
when the target is one of the emulator's SQS queues. The message body is the
event as EventBridge delivers it: a compact JSON object of ``version`` ("0"),
``id``, ``detail-type``, ``source``, ``account``, ``time`` (ISO 8601 to the
second, ``Z``), ``region``, ``resources`` and ``detail`` (the object the
entry's Detail text holds). A target's ``Input`` (constant JSON) replaces the
event; its ``InputPath`` (``$`` or ``$.a.b``, the only forms taken here) picks
a part of it. ``InputTransformer`` is refused, as are scheduled rules.

A target that is not a queue of this emulator (another service, another
account or region, a deleted queue) is a failed invocation: counted, and, when
the target has a DeadLetterConfig naming one of the emulator's queues, the
event goes there at once, with the message attributes ``RULE_ARN``,
``TARGET_ARN``, ``ERROR_CODE`` and ``ERROR_MESSAGE`` AWS documents. (AWS
first retries for up to 24 hours; that it gives up at once on a missing
resource, and the ``RESOURCE_NOT_FOUND`` code, are guesses.) Queue policies
are not evaluated: a queue whose policy would not admit the rule still gets
its events.

PutEvents checks each entry as AWS does (Source, DetailType and Detail
required, Detail a JSON object, a 256 KiB request at most) and answers per
entry, with an EventId or an ErrorCode. Like AWS, it refuses ``aws.*``
sources from callers: those events come only from AWS's services, which here
means from the emulator's own SageMaker, through :meth:`EventBus.put_events`
with ``trusted=True`` (:mod:`smrun.emulator.eventbridge`).

Only the default bus exists; another is ResourceNotFoundException. Guessed:
DeleteRule of a rule that does not exist succeeds; the wording of the
messages this module writes itself.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from smrun.emulator.patterns import Pattern, PatternError, matches, parse_pattern
from smrun.emulator.protocol import ApiError, Params, ServiceProtocol
from smrun.emulator.queues import SqsService

DEFAULT_BUS = "default"
MAX_TARGETS = 5  # per rule
MAX_REQUEST_BYTES = 256 * 1024  # of one PutEvents call's entries
ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")

_INPUT_PATH = re.compile(r"\$(\.[A-Za-z0-9_-]+)*")

Entry = Mapping[str, Any]


@dataclass
class BusCounters:
    events: int = 0  # entries accepted by PutEvents
    matched: int = 0  # (event, rule) matches
    delivered: int = 0  # messages put in a target queue
    failed: int = 0  # invocations of a target that is not one of the emulator's queues
    dead_lettered: int = 0  # of those, sent to the target's dead-letter queue

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Rule:
    name: str
    arn: str
    pattern_text: str
    pattern: Pattern
    state: str = "ENABLED"
    description: str | None = None
    role_arn: str | None = None
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Id, as put

    @property
    def enabled(self) -> bool:
        return self.state in ENABLED_STATES

    def describe(self, account: str) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Arn": self.arn,
            "EventPattern": self.pattern_text,
            "State": self.state,
            "Description": self.description,
            "RoleArn": self.role_arn,
            "EventBusName": DEFAULT_BUS,
            "CreatedBy": account,
        }


class EventBus:
    """The default event bus of ``account`` in ``region``, delivering to ``queues``.

    ``on_change`` is called after every change of the rules or their targets
    (the emulator then checks whether anyone listens: :attr:`listening`)."""

    def __init__(
        self,
        *,
        region: str,
        account: str,
        clock: Callable[[], float],
        queues: SqsService,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.region = region
        self.account = account
        self.clock = clock
        self.queues = queues
        self.on_change = on_change
        self.protocol = ServiceProtocol.for_service("events")
        self.rules: dict[str, Rule] = {}
        self.counters = BusCounters()
        self.listening = False  # some enabled rule has a target
        self.operations: dict[str, Callable[[Params], dict[str, Any]]] = {
            "PutRule": self.put_rule,
            "DescribeRule": self.describe_rule,
            "ListRules": self.list_rules,
            "DeleteRule": self.delete_rule,
            "EnableRule": self.enable_rule,
            "DisableRule": self.disable_rule,
            "PutTargets": self.put_targets,
            "ListTargetsByRule": self.list_targets_by_rule,
            "RemoveTargets": self.remove_targets,
            "PutEvents": self.put_events_call,
        }

    @property
    def arn(self) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:event-bus/{DEFAULT_BUS}"

    # -- events ------------------------------------------------------------------

    def put_events(
        self, entries: Sequence[Entry], *, trusted: bool = False
    ) -> list[dict[str, Any]]:
        """Take each entry in and deliver it; a result per entry (an EventId,
        or an ErrorCode and ErrorMessage). ``trusted``: from an AWS service,
        which may use an ``aws.*`` source."""
        results = []
        for entry in entries:
            try:
                event = self._event(entry, trusted=trusted)
            except _EntryError as error:
                results.append({"ErrorCode": error.code, "ErrorMessage": error.message})
                continue
            self.counters.events += 1
            self._route(event)
            results.append({"EventId": event["id"]})
        return results

    def put_events_call(self, params: Params) -> dict[str, Any]:
        entries: list[Entry] = params["Entries"]
        if sum(_entry_size(entry) for entry in entries) > MAX_REQUEST_BYTES:
            raise ApiError(
                "ValidationException", "Total size of the entries in the request is over the limit."
            )
        results = self.put_events(entries)
        return {
            "FailedEntryCount": sum(1 for r in results if "ErrorCode" in r),
            "Entries": results,
        }

    def _event(self, entry: Entry, *, trusted: bool) -> dict[str, Any]:
        """The event of a PutEvents entry, as a rule matches and a target gets it."""
        for member in ("Source", "DetailType", "Detail"):
            if not entry.get(member):
                raise _EntryError(
                    "InvalidArgument",
                    f"Parameter {member} is not valid. Reason: {member} is a required argument.",
                )
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            detail = None
        if not isinstance(detail, dict):
            raise _EntryError("MalformedDetail", "Detail is malformed.")
        source = str(entry["Source"])
        if source.startswith("aws.") and not trusted:
            raise _EntryError("NotAuthorizedForSourceException", "Not authorized for the source.")
        bus = entry.get("EventBusName")
        if bus not in (None, DEFAULT_BUS, self.arn):
            raise _EntryError("ResourceNotFoundException", f"Event bus {bus} does not exist.")
        moment = entry.get("Time") or dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": source,
            "account": self.account,
            "time": moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": list(entry.get("Resources") or []),
            "detail": detail,
        }

    def _route(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"))
        for rule in self.rules.values():
            if rule.enabled and matches(rule.pattern, event):
                self.counters.matched += 1
                for target in rule.targets.values():
                    self._invoke(rule, target, _input(target, event, text))

    def _invoke(self, rule: Rule, target: Mapping[str, Any], body: str) -> None:
        queue = self.queues.queue_at(target["Arn"])
        if queue is not None:
            self.queues.send(queue, body)
            self.counters.delivered += 1
            return
        self.counters.failed += 1
        dead_letter = self.queues.queue_at((target.get("DeadLetterConfig") or {}).get("Arn", ""))
        if dead_letter is None:
            return
        reasons = {
            "RULE_ARN": rule.arn,
            "TARGET_ARN": target["Arn"],
            "ERROR_CODE": "RESOURCE_NOT_FOUND",
            "ERROR_MESSAGE": f"{target['Arn']} is not a queue of this emulator",
        }
        self.queues.send(dead_letter, body, {
            name: {"DataType": "String", "StringValue": value} for name, value in reasons.items()
        })
        self.counters.dead_lettered += 1

    # -- rules -------------------------------------------------------------------

    def put_rule(self, params: Params) -> dict[str, Any]:
        self._check_bus(params)
        if params.get("ScheduleExpression"):
            raise ApiError("ValidationException",
                           "This emulator does not run scheduled rules (ScheduleExpression).")
        text = params.get("EventPattern")
        if text is None:
            raise ApiError("ValidationException",
                           "Parameter(s) EventPattern or ScheduleExpression must be specified.")
        try:
            pattern = parse_pattern(text)
        except PatternError as error:
            raise ApiError("InvalidEventPatternException",
                           f"Event pattern is not valid. Reason: {error}") from None
        name = params["Name"]
        existing = self.rules.get(name)
        self.rules[name] = Rule(
            name=name,
            arn=f"arn:aws:events:{self.region}:{self.account}:rule/{name}",
            pattern_text=text,
            pattern=pattern,
            state=params.get("State", "ENABLED"),
            description=params.get("Description"),
            role_arn=params.get("RoleArn"),
            targets=existing.targets if existing else {},
        )
        self._changed()
        return {"RuleArn": self.rules[name].arn}

    def describe_rule(self, params: Params) -> dict[str, Any]:
        return self._rule(params, "Name").describe(self.account)

    def list_rules(self, params: Params) -> dict[str, Any]:
        self._check_bus(params)
        prefix = params.get("NamePrefix", "")
        rules = [self.rules[name].describe(self.account)
                 for name in sorted(self.rules) if name.startswith(prefix)]
        page, token = _page(rules, params)
        return {"Rules": page, "NextToken": token}

    def delete_rule(self, params: Params) -> dict[str, Any]:
        self._check_bus(params)
        rule = self.rules.get(params["Name"])
        if rule is None:
            return {}
        if rule.targets:
            raise ApiError("ValidationException", "Rule can't be deleted since it has targets.")
        del self.rules[rule.name]
        self._changed()
        return {}

    def enable_rule(self, params: Params) -> dict[str, Any]:
        self._rule(params, "Name").state = "ENABLED"
        self._changed()
        return {}

    def disable_rule(self, params: Params) -> dict[str, Any]:
        self._rule(params, "Name").state = "DISABLED"
        self._changed()
        return {}

    # -- targets -----------------------------------------------------------------

    def put_targets(self, params: Params) -> dict[str, Any]:
        rule = self._rule(params, "Rule")
        targets: list[dict[str, Any]] = params["Targets"]
        for target in targets:
            _check_target(target)
        ids = set(rule.targets) | {target["Id"] for target in targets}
        if len(ids) > MAX_TARGETS:
            raise ApiError("LimitExceededException",
                           f"The requested resource exceeds the maximum number allowed "
                           f"({MAX_TARGETS} targets a rule).")
        for target in targets:
            rule.targets[target["Id"]] = dict(target)
        self._changed()
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def list_targets_by_rule(self, params: Params) -> dict[str, Any]:
        rule = self._rule(params, "Rule")
        page, token = _page(list(rule.targets.values()), params)
        return {"Targets": page, "NextToken": token}

    def remove_targets(self, params: Params) -> dict[str, Any]:
        rule = self._rule(params, "Rule")
        for target_id in params["Ids"]:
            rule.targets.pop(target_id, None)
        self._changed()
        return {"FailedEntryCount": 0, "FailedEntries": []}

    # -- internals -----------------------------------------------------------------

    def _check_bus(self, params: Params) -> None:
        bus = params.get("EventBusName")
        if bus not in (None, DEFAULT_BUS, self.arn):
            raise ApiError("ResourceNotFoundException", f"Event bus {bus} does not exist.")

    def _rule(self, params: Params, member: str) -> Rule:
        self._check_bus(params)
        rule = self.rules.get(params[member])
        if rule is None:
            raise ApiError("ResourceNotFoundException",
                           f"Rule {params[member]} does not exist on EventBus {DEFAULT_BUS}.")
        return rule

    def _changed(self) -> None:
        self.listening = any(rule.enabled and rule.targets for rule in self.rules.values())
        self.on_change()


class _EntryError(Exception):
    """Why PutEvents refuses one entry (the others go on)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _entry_size(entry: Entry) -> int:
    """A PutEvents entry's size, as AWS counts it: its text members and 14
    bytes for a Time."""
    texts = [entry.get(m) or "" for m in ("Source", "DetailType", "Detail")]
    texts += list(entry.get("Resources") or [])
    return sum(len(str(t).encode()) for t in texts) + (14 if entry.get("Time") else 0)


def _check_target(target: Mapping[str, Any]) -> None:
    arn = str(target["Arn"])
    if not arn.startswith("arn:") or arn.count(":") < 5:
        raise ApiError("ValidationException",
                       f"Parameter {arn} is not valid. Reason: Provided Arn is not in correct "
                       "format.")
    given = [m for m in ("Input", "InputPath", "InputTransformer") if target.get(m) is not None]
    if len(given) > 1:
        raise ApiError("ValidationException",
                       "Only one of Input, InputPath, or InputTransformer must be provided.")
    if "InputTransformer" in given:
        raise ApiError("ValidationException",
                       "This emulator does not apply an InputTransformer: use Input or InputPath.")
    if "Input" in given:
        try:
            json.loads(target["Input"])
        except ValueError:
            raise ApiError("ValidationException",
                           "Parameter Input is not valid. Reason: it is not JSON.") from None
    if "InputPath" in given and not _INPUT_PATH.fullmatch(target["InputPath"]):
        raise ApiError("ValidationException",
                       f"This emulator takes an InputPath of $ or $.member.member..., not "
                       f"{target['InputPath']}.")


def _input(target: Mapping[str, Any], event: Mapping[str, Any], text: str) -> str:
    """What ``target`` gets for ``event`` (whose JSON is ``text``). A path to a
    member the event lacks gives ``null`` (guessed)."""
    if target.get("Input") is not None:
        return str(target["Input"])
    path = target.get("InputPath")
    if path is None or path == "$":
        return text
    value: Any = event
    for member in path[2:].split("."):
        value = value.get(member) if isinstance(value, dict) else None
    return json.dumps(value, separators=(",", ":"))


def _page(items: list[dict[str, Any]], params: Params) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items`` after ``NextToken``, ``Limit`` long (100 by
    default), and the token of the next page, if there is one."""
    start = 0
    token = params.get("NextToken")
    if token is not None:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise ApiError("ValidationException", "The nextToken provided is invalid.") from None
    end = start + (params.get("Limit") or 100)
    following = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], following
