"""The emulator's EventBridge: event patterns, rules and targets, PutEvents'
checks, delivery to the emulator's queues, and when the emulator's own
SageMaker publishes to it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from smrun.emulator import Emulator, FakeClock
from smrun.emulator.patterns import PatternError, matches, parse_pattern
from smrun.handlers import KINDS
from smrun.watch.setup import event_pattern
from tests.helpers import error_of
from tests.test_runner import training_request

TRAINING = "SageMaker Training Job State Change"
EVENT: dict[str, Any] = {
    "version": "0",
    "source": "aws.sagemaker",
    "detail-type": TRAINING,
    "account": "123456789012",
    "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:123456789012:training-job/xgb-7"],
    "detail": {
        "TrainingJobName": "xgb-7",
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Training",
        "ResourceConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.xlarge"},
        "Tags": {"team": "ml"},
        "Spot": False,
        "Note": None,
    },
}


# -- patterns ----------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "matched"), [
    ({"source": ["aws.sagemaker"]}, True),
    ({"source": ["aws.s3", "aws.sagemaker"]}, True),
    ({"source": ["aws.s3"]}, False),
    ({"source": ["aws.sagemaker"], "detail-type": ["SageMaker Endpoint State Change"]}, False),
    ({"detail": {"TrainingJobStatus": ["InProgress"], "ResourceConfig": {
        "InstanceCount": [2]}}}, True),
    ({"detail": {"ResourceConfig": {"InstanceCount": [2.0]}}}, True),  # numbers as numbers
    ({"detail": {"ResourceConfig": {"InstanceCount": ["2"]}}}, False),  # not as text
    ({"detail": {"Spot": [False]}}, True),
    ({"detail": {"Spot": [0]}}, False),
    ({"detail": {"Note": [None]}}, True),
    ({"resources": [{"prefix": "arn:aws:sagemaker:us-east-1:"}]}, True),  # any array element
    ({"detail": {"TrainingJobName": [{"prefix": "xgb-"}]}}, True),
    ({"detail": {"TrainingJobName": [{"prefix": {"equals-ignore-case": "XGB-"}}]}}, True),
    ({"detail": {"TrainingJobName": [{"suffix": "-7"}]}}, True),
    ({"detail": {"TrainingJobName": [{"suffix": "-8"}]}}, False),
    ({"detail": {"TrainingJobName": [{"equals-ignore-case": "XGB-7"}]}}, True),
    ({"detail": {"TrainingJobName": [{"wildcard": "x*-?"}]}}, False),
    ({"detail": {"TrainingJobName": [{"wildcard": "x*7"}]}}, True),
    ({"detail": {"TrainingJobStatus": [{"anything-but": "Completed"}]}}, True),
    ({"detail": {"TrainingJobStatus": [{"anything-but": ["InProgress", "Failed"]}]}}, False),
    ({"detail": {"TrainingJobStatus": [{"anything-but": {"prefix": "In"}}]}}, False),
    ({"detail": {"FailureReason": [{"anything-but": "x"}]}}, False),  # absent: nothing matches
    ({"detail": {"FailureReason": [{"exists": False}]}}, True),
    ({"detail": {"FailureReason": [{"exists": True}]}}, False),
    ({"detail": {"Tags": {"team": [{"exists": True}]}}}, True),
    ({"missing": {"deeper": [{"exists": False}]}}, True),  # a field of a missing object
    ({"missing": {"deeper": [{"exists": True}]}}, False),
    ({"detail": {"ResourceConfig": {"InstanceCount": [{"numeric": [">", 1, "<=", 2]}]}}}, True),
    ({"detail": {"ResourceConfig": {"InstanceCount": [{"numeric": ["<", 2]}]}}}, False),
    ({"detail": {"TrainingJobName": [{"numeric": [">", 0]}]}}, False),  # numbers only
    ({"$or": [{"source": ["aws.s3"]}, {"detail": {"SecondaryStatus": ["Training"]}}]}, True),
    ({"$or": [{"source": ["aws.s3"]}, {"detail": {"SecondaryStatus": ["Starting"]}}]}, False),
])
def test_a_pattern_matches_as_eventbridge_documents(pattern: dict[str, Any], matched: bool) -> None:
    assert matches(parse_pattern(json.dumps(pattern)), EVENT) is matched


def test_the_pattern_of_the_events_setup_matches_sagemakers_events_only() -> None:
    pattern = parse_pattern(json.dumps(event_pattern(KINDS)))
    assert matches(pattern, EVENT)
    assert not matches(pattern, {**EVENT, "source": "aws.s3"})
    assert not matches(pattern, {**EVENT, "detail-type": "EC2 Instance State-change"})
    for kind in KINDS.values():
        if kind.event_type:
            assert matches(pattern, {**EVENT, "detail-type": kind.event_type})


@pytest.mark.parametrize(("text", "reason"), [
    ("not json", "not JSON"),
    ("[1]", "Filter is not an object"),
    ('{"source": "aws.sagemaker"}', '"source" must be an object or an array'),
    ('{"source": []}', "Empty arrays are not allowed"),
    ('{"detail": {"x": [{"regex": "a+"}]}}', "Unrecognized match type regex"),
    ('{"x": [{"prefix": 1}]}', "prefix match pattern must be a string"),
    ('{"x": [{"exists": "yes"}]}', "exists match pattern must be either true or false"),
    ('{"x": [{"numeric": [">", "1"]}]}', "Value of > must be numeric"),
    ('{"x": [{"numeric": ["~", 1]}]}', "Unrecognized numeric range operator"),
    ('{"x": [{"prefix": "a", "suffix": "b"}]}', "one-member object"),
    ('{"$or": [{"source": ["a"]}]}', "$or must be an array of at least two patterns"),
])
def test_a_bad_pattern_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(PatternError) as raised:
        parse_pattern(text)
    assert reason in str(raised.value)


# -- rules and targets -------------------------------------------------------------


@pytest.fixture
async def events(emulator: Emulator, aws_client: Any) -> Any:
    return await aws_client("events", emulator)


@pytest.fixture
async def sqs(emulator: Emulator, aws_client: Any) -> Any:
    return await aws_client("sqs", emulator)


async def make_queue(sqs: Any, name: str) -> tuple[str, str]:
    url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
    found = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(url), str(found["Attributes"]["QueueArn"])


async def bodies(sqs: Any, url: str) -> list[Any]:
    """Every message in the queue now, its body read as JSON."""
    page = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                     MessageAttributeNames=["All"])
    return [json.loads(m["Body"]) for m in page.get("Messages", [])]


async def test_rules_are_put_described_listed_and_deleted_as_aws_does(events: Any) -> None:
    arn = (await events.put_rule(Name="one", EventPattern='{"source": ["my.app"]}',
                                 Description="first"))["RuleArn"]
    assert arn == "arn:aws:events:us-east-1:123456789012:rule/one"
    described = await events.describe_rule(Name="one")
    assert {k: described[k] for k in ("Name", "Arn", "EventPattern", "State", "Description",
                                      "EventBusName")} == {
        "Name": "one", "Arn": arn, "EventPattern": '{"source": ["my.app"]}',
        "State": "ENABLED", "Description": "first", "EventBusName": "default"}
    await events.put_rule(Name="two", EventPattern='{"source": ["b"]}', State="DISABLED")
    first = await events.list_rules(Limit=1)
    assert [r["Name"] for r in first["Rules"]] == ["one"]
    rest = await events.list_rules(Limit=1, NextToken=first["NextToken"])
    assert [(r["Name"], r["State"]) for r in rest["Rules"]] == [("two", "DISABLED")]
    assert "NextToken" not in rest
    await events.delete_rule(Name="two")
    with pytest.raises(events.exceptions.ResourceNotFoundException) as raised:
        await events.describe_rule(Name="two")
    message = raised.value.response["Error"]["Message"]
    assert message == "Rule two does not exist on EventBus default."
    await events.delete_rule(Name="never-was")  # succeeds


async def test_a_bad_pattern_or_a_missing_one_is_refused(events: Any) -> None:
    code, message = await error_of(events.put_rule, Name="r", EventPattern='{"source": "x"}')
    assert code == "InvalidEventPatternException"
    assert message.startswith("Event pattern is not valid. Reason: ")
    assert (await error_of(events.put_rule, Name="r"))[0] == "ValidationException"
    assert (await error_of(events.put_rule, Name="r", ScheduleExpression="rate(1 minute)"))[0] \
        == "ValidationException"
    assert (await error_of(events.put_rule, Name="r", EventPattern='{"a": [1]}',
                           EventBusName="custom"))[0] == "ResourceNotFoundException"


async def test_a_rule_with_targets_cannot_be_deleted(events: Any) -> None:
    await events.put_rule(Name="r", EventPattern='{"source": ["a"]}')
    queue = "arn:aws:sqs:us-east-1:123456789012:q"
    await events.put_targets(Rule="r", Targets=[{"Id": "t1", "Arn": queue},
                                                {"Id": "t2", "Arn": queue, "InputPath": "$"}])
    listed = await events.list_targets_by_rule(Rule="r", Limit=1)
    assert [t["Id"] for t in listed["Targets"]] == ["t1"] and "NextToken" in listed
    code, message = await error_of(events.delete_rule, Name="r")
    assert (code, message) == ("ValidationException", "Rule can't be deleted since it has targets.")
    await events.remove_targets(Rule="r", Ids=["t1", "t2"])
    await events.delete_rule(Name="r")
    assert (await error_of(events.put_targets, Rule="r", Targets=[{"Id": "t", "Arn": queue}]))[0] \
        == "ResourceNotFoundException"


@pytest.mark.parametrize(("target", "code"), [
    ({"Arn": "not-an-arn"}, "ValidationException"),
    ({"Arn": "arn:aws:sqs:us-east-1:1:q", "InputTransformer": {"InputTemplate": "<x>"}},
     "ValidationException"),
    ({"Arn": "arn:aws:sqs:us-east-1:1:q", "Input": "{}", "InputPath": "$.detail"},
     "ValidationException"),
    ({"Arn": "arn:aws:sqs:us-east-1:1:q", "InputPath": "$.detail[0]"}, "ValidationException"),
    ({"Arn": "arn:aws:sqs:us-east-1:1:q", "Input": "not json"}, "ValidationException"),
])
async def test_targets_the_emulator_cannot_honour_are_refused(
    events: Any, target: dict[str, Any], code: str
) -> None:
    await events.put_rule(Name="r", EventPattern='{"source": ["a"]}')
    assert (await error_of(events.put_targets, Rule="r", Targets=[{"Id": "t", **target}]))[0] \
        == code
    assert (await events.list_targets_by_rule(Rule="r"))["Targets"] == []


async def test_a_rule_takes_five_targets_at_most(events: Any) -> None:
    await events.put_rule(Name="r", EventPattern='{"source": ["a"]}')
    targets = [{"Id": f"t{n}", "Arn": f"arn:aws:sqs:us-east-1:1:q{n}"} for n in range(6)]
    await events.put_targets(Rule="r", Targets=targets[:5])
    await events.put_targets(Rule="r", Targets=targets[:1])  # replacing one: still five
    assert (await error_of(events.put_targets, Rule="r", Targets=targets[5:]))[0] == \
        "LimitExceededException"


# -- events ------------------------------------------------------------------------


async def test_put_events_checks_each_entry_as_aws_does(events: Any) -> None:
    answer = await events.put_events(Entries=[
        {"Source": "my.app", "DetailType": "ping", "Detail": '{"n": 1}'},
        {"DetailType": "ping", "Detail": "{}"},
        {"Source": "my.app", "Detail": "{}"},
        {"Source": "my.app", "DetailType": "ping"},
        {"Source": "my.app", "DetailType": "ping", "Detail": "[1, 2]"},
        {"Source": "aws.sagemaker", "DetailType": TRAINING, "Detail": "{}"},
        {"Source": "my.app", "DetailType": "ping", "Detail": "{}", "EventBusName": "other"},
    ])
    results = answer["Entries"]
    assert answer["FailedEntryCount"] == 6 and "EventId" in results[0]
    assert [r.get("ErrorCode") for r in results[1:]] == [
        "InvalidArgument", "InvalidArgument", "InvalidArgument", "MalformedDetail",
        "NotAuthorizedForSourceException", "ResourceNotFoundException"]
    assert results[1]["ErrorMessage"] == \
        "Parameter Source is not valid. Reason: Source is a required argument."


async def test_put_events_refuses_more_than_ten_entries_or_256_kib(
    emulator: Emulator, aws_client: Any
) -> None:
    events = await aws_client("events", emulator, validate=False)
    entry = {"Source": "my.app", "DetailType": "ping", "Detail": "{}"}
    code, message = await error_of(events.put_events, Entries=[entry] * 11)
    assert code == "ValidationException" and "length less than or equal to 10" in message
    big = {**entry, "Detail": json.dumps({"x": "y" * 140_000})}
    code, message = await error_of(events.put_events, Entries=[big, big])
    assert (code, message) == ("ValidationException",
                               "Total size of the entries in the request is over the limit.")


async def test_a_matching_event_reaches_the_queue_as_eventbridge_delivers_it(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    events, sqs = await aws_client("events", fake_emulator), await aws_client("sqs", fake_emulator)
    url, arn = await make_queue(sqs, "inbox")
    await events.put_rule(Name="mine", EventPattern=json.dumps(
        {"source": ["my.app"], "detail": {"level": [{"numeric": [">=", 3]}]}}))
    await events.put_targets(Rule="mine", Targets=[
        {"Id": "whole", "Arn": arn},
        {"Id": "part", "Arn": arn, "InputPath": "$.detail"},
        {"Id": "fixed", "Arn": arn, "Input": '{"constant": true}'}])
    answer = await events.put_events(Entries=[
        {"Source": "my.app", "DetailType": "alarm", "Detail": '{"level": 5}',
         "Resources": ["arn:x"]},
        {"Source": "my.app", "DetailType": "alarm", "Detail": '{"level": 1}'},  # no match
        {"Source": "other.app", "DetailType": "alarm", "Detail": '{"level": 5}'},  # no match
    ])
    received = await bodies(sqs, url)
    whole = next(b for b in received if "version" in b)
    assert whole == {
        "version": "0", "id": answer["Entries"][0]["EventId"], "detail-type": "alarm",
        "source": "my.app", "account": "123456789012", "region": "us-east-1",
        "time": "2023-11-14T22:13:20Z",  # the fake clock's start
        "resources": ["arn:x"], "detail": {"level": 5}}
    assert sorted(map(json.dumps, received)) == sorted(
        map(json.dumps, [whole, {"level": 5}, {"constant": True}]))
    assert fake_emulator.bus.counters.to_json() == {
        "events": 3, "matched": 1, "delivered": 3, "failed": 0, "dead_lettered": 0}
    await events.disable_rule(Name="mine")
    await events.put_events(Entries=[
        {"Source": "my.app", "DetailType": "alarm", "Detail": '{"level": 5}'}])
    assert await bodies(sqs, url) == []


async def test_a_target_that_is_no_queue_here_fails_into_its_dead_letter_queue(
    events: Any, sqs: Any, emulator: Emulator
) -> None:
    dlq_url, dlq_arn = await make_queue(sqs, "dead")
    await events.put_rule(Name="r", EventPattern='{"source": ["my.app"]}')
    elsewhere = "arn:aws:sqs:eu-west-1:123456789012:inbox"
    await events.put_targets(Rule="r", Targets=[
        {"Id": "lost", "Arn": elsewhere, "DeadLetterConfig": {"Arn": dlq_arn}},
        {"Id": "lambda", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}])
    answer = await events.put_events(Entries=[
        {"Source": "my.app", "DetailType": "ping", "Detail": "{}"}])
    assert answer["FailedEntryCount"] == 0  # a failed invocation is no failed entry
    page = await sqs.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])
    [message] = page["Messages"]
    assert json.loads(message["Body"])["id"] == answer["Entries"][0]["EventId"]
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RULE_ARN"].endswith(":rule/r") and attributes["TARGET_ARN"] == elsewhere
    assert attributes["ERROR_CODE"] == "RESOURCE_NOT_FOUND"
    counters = emulator.bus.counters
    assert (counters.failed, counters.dead_lettered, counters.delivered) == (2, 1, 0)


# -- the emulator's own SageMaker publishing to its own bus ---------------------------


async def events_report(emulator: Emulator) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"{emulator.url}/_emulator/events") as response:
        report: dict[str, Any] = await response.json()
        return report


async def test_the_emulator_publishes_to_its_bus_only_while_a_rule_has_a_target(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    emulator = fake_emulator
    events, sqs = await aws_client("events", emulator), await aws_client("sqs", emulator)
    sagemaker = await aws_client("sagemaker", emulator)
    url, arn = await make_queue(sqs, "inbox")
    await events.put_rule(Name="sm", EventPattern='{"source": ["aws.sagemaker"]}')
    assert not emulator.events.local and not emulator._publishing.is_set()  # no target yet
    await sagemaker.create_training_job(TrainingJobName="before", **training_request())
    await events.put_targets(Rule="sm", Targets=[{"Id": "q", "Arn": arn}])
    report = await events_report(emulator)
    assert report["url"] is None and report["local"] is True and "bus" in report
    assert emulator._publishing.is_set()  # the world now advances in the background
    await sagemaker.create_training_job(TrainingJobName="after", **training_request())
    fake_clock.advance(60)
    emulator.advance()
    await emulator.events.drain()
    received = [body for _ in range(2) for body in await bodies(sqs, url)]
    steps = {job: [b["detail"]["SecondaryStatus"] for b in received
                   if b["detail"]["TrainingJobName"] == job] for job in ("before", "after")}
    # "before" started while nobody listened: its first change went nowhere
    assert steps == {"before": ["Downloading", "Training", "Uploading", "Completed"],
                     "after": ["Starting", "Downloading", "Training", "Uploading", "Completed"]}
    assert {b["detail-type"] for b in received} == {TRAINING}
    await events.disable_rule(Name="sm")
    assert (await events_report(emulator))["local"] is False
    assert not emulator._publishing.is_set()  # the background ticks stop with it
