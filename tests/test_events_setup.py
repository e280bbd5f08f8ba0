"""The events source's AWS side on moto's server: setup and teardown are
idempotent and make what the EventQueue needs (rule, queue, dead-letter queue,
policies, target), and an aws.sagemaker event put to EventBridge reaches the
queue and is delivered as an Update, then deleted.

moto does not enforce SQS queue policies: that the policy admits the rule is
checked as data here, not by delivery.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from smrun.aws import Aws, AwsConfig
from smrun.handlers import KINDS
from smrun.watch import Update, newer
from smrun.watch.events import CONSUME_ACTIONS, EventQueue, EventQueueError
from smrun.watch.setup import (
    DLQ,
    MAX_RECEIVE_COUNT,
    QUEUE,
    RULE,
    SETUP_ACTIONS,
    TARGET,
    TARGET_ID,
    TEARDOWN_ACTIONS,
    EventsSetup,
    event_pattern,
    rule_statement,
    same_pattern,
    setup_events,
    teardown_events,
    with_statement,
)
from tests.helpers import training_event_detail

REGION = "us-east-1"
EVERYTHING = (RULE, DLQ, QUEUE, TARGET)
_names = itertools.count()


def moto_config(url: str, **kwargs: Any) -> AwsConfig:
    return AwsConfig(region=REGION, endpoint_url=url, logs_endpoint_url=url,
                     sqs_endpoint_url=url, events_endpoint_url=url,
                     static_credentials=("testing", "testing"), **kwargs)


@pytest.fixture
async def aws(moto_url: str) -> AsyncIterator[Aws]:
    async with Aws(moto_config(moto_url)) as aws:
        yield aws


@pytest.fixture
def name() -> str:
    # one moto server serves the module: each test has its own rule and queues
    return f"smrun-events-t{next(_names)}"


async def attributes(aws: Aws, url: str) -> dict[str, str]:
    response = await aws.call("sqs", "GetQueueAttributes", QueueUrl=url, AttributeNames=["All"])
    return dict(response["Attributes"])


async def queue_names(aws: Aws) -> set[str]:
    response = await aws.call("sqs", "ListQueues")
    return {url.rsplit("/", 1)[-1] for url in response.get("QueueUrls", [])}


async def put_events(aws: Aws, *entries: dict[str, Any]) -> None:
    response = await aws.call("events", "PutEvents", Entries=list(entries))
    assert response["FailedEntryCount"] == 0, response


def sagemaker_entry(detail_type: str, detail: dict[str, Any], *,
                    source: str = "aws.sagemaker") -> dict[str, Any]:
    return {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
            "Resources": [detail.get("TrainingJobArn", "arn:aws:sagemaker:::x")]}


TRAINING = "SageMaker Training Job State Change"


async def drain(queue: EventQueue, expected: int, rounds: int = 10) -> None:
    """Poll until ``expected`` messages came (moto's EventBridge delivers to SQS
    before PutEvents answers: the first round normally brings them all)."""
    for _ in range(rounds):
        if queue.stats.received >= expected:
            return
        await queue.poll_once()
    assert queue.stats.received >= expected


# ---------------------------------------------------------------- decisions

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:smrun-events"
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/smrun-events"


def test_the_rules_statement_is_added_once_and_other_statements_are_kept() -> None:
    ours = rule_statement(QUEUE_ARN, RULE_ARN)
    fresh = with_statement(None, ours)
    assert fresh is not None and json.loads(fresh)["Statement"] == [ours]
    assert with_statement(fresh, ours) is None  # already there: nothing to write
    theirs = {"Sid": "ops", "Effect": "Allow", "Principal": {"AWS": "*"},
              "Action": "sqs:GetQueueAttributes", "Resource": QUEUE_ARN}
    stale = {**ours, "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN + "-old"}}}
    mixed = json.dumps({"Version": "2012-10-17", "Id": "kept", "Statement": [theirs, stale]})
    fixed = with_statement(mixed, ours)
    assert fixed is not None
    assert json.loads(fixed) == {"Version": "2012-10-17", "Id": "kept",
                                 "Statement": [theirs, ours]}
    # a policy with one statement as an object, or not JSON at all
    single = with_statement(json.dumps({"Statement": theirs}), ours)
    assert single is not None and json.loads(single)["Statement"] == [theirs, ours]
    assert json.loads(with_statement("{not json", ours) or "")["Statement"] == [ours]


def test_patterns_are_the_same_whatever_the_order_of_their_lists() -> None:
    wanted = event_pattern(KINDS)
    shuffled = {"detail-type": list(reversed(wanted["detail-type"])), "source": wanted["source"]}
    assert same_pattern(json.dumps(shuffled), wanted)
    assert not same_pattern(json.dumps({**wanted, "detail-type": [TRAINING]}), wanted)
    assert not same_pattern(json.dumps({**wanted, "account": ["1"]}), wanted)
    assert not same_pattern(None, wanted) and not same_pattern("[", wanted)


# ---------------------------------------------------------------- setup and teardown


async def test_setup_makes_the_rule_queues_policies_and_target(aws: Aws, name: str) -> None:
    made = await setup_events(aws, name=name, kinds=KINDS)
    assert made.created == EVERYTHING and made.found == () and made.updated == ()
    assert made.changed

    # the rule: SageMaker's events of every kind that sends some, on the default bus
    rule = await aws.call("events", "DescribeRule", Name=name)
    assert rule["Arn"] == made.rule_arn and rule["State"] == "ENABLED"
    pattern = json.loads(rule["EventPattern"])
    assert pattern == event_pattern(KINDS)
    assert set(pattern["detail-type"]) == {k.event_type for k in KINDS.values() if k.event_type}

    # the queue: redriven to the dead-letter queue after a few receives
    queue = await attributes(aws, made.queue_url)
    assert queue["QueueArn"] == made.queue_arn
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == made.dlq_arn
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    assert queue["MessageRetentionPeriod"] == str(4 * 86_400)
    assert queue["ReceiveMessageWaitTimeSeconds"] == "20"
    dlq = await attributes(aws, made.dlq_url)
    assert dlq["QueueArn"] == made.dlq_arn
    assert int(dlq["MessageRetentionPeriod"]) > int(queue["MessageRetentionPeriod"])

    # both policies let EventBridge send, for this rule only
    for url, arn in ((made.queue_url, made.queue_arn), (made.dlq_url, made.dlq_arn)):
        (statement,) = json.loads((await attributes(aws, url))["Policy"])["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == arn
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": made.rule_arn}}

    # the target: the queue, no role, the dead-letter queue for undeliverable events
    (target,) = (await aws.call("events", "ListTargetsByRule", Rule=name))["Targets"]
    assert target["Id"] == TARGET_ID and target["Arn"] == made.queue_arn
    assert "RoleArn" not in target
    assert target["DeadLetterConfig"] == {"Arn": made.dlq_arn}
    await teardown_events(aws, name=name)


async def test_a_second_setup_changes_nothing_and_reports_what_it_found(
    aws: Aws, name: str
) -> None:
    first = await setup_events(aws, name=name, kinds=KINDS)
    before = {url: await attributes(aws, url) for url in (first.queue_url, first.dlq_url)}
    calls = dict(aws.stats.calls)
    second = await setup_events(aws, name=name, kinds=KINDS)
    assert second.found == EVERYTHING and second.created == () and second.updated == ()
    assert not second.changed
    assert (second.queue_url, second.queue_arn, second.dlq_url, second.rule_arn) == (
        first.queue_url, first.queue_arn, first.dlq_url, first.rule_arn)
    # nothing was written the second time
    writes = {"CreateQueue", "SetQueueAttributes", "PutRule", "PutTargets"}
    assert all(aws.stats.calls[op] == calls.get(op, 0) for op in writes)
    assert {url: await attributes(aws, url) for url in before} == before
    await teardown_events(aws, name=name)


async def test_setup_corrects_what_drifted_and_keeps_others_policy_statements(
    aws: Aws, name: str
) -> None:
    made = await setup_events(aws, name=name, kinds=KINDS)
    theirs = {"Sid": "someone-else", "Effect": "Allow", "Principal": {"AWS": "*"},
              "Action": "sqs:GetQueueAttributes", "Resource": made.queue_arn}
    await aws.call("sqs", "SetQueueAttributes", QueueUrl=made.queue_url, Attributes={
        "VisibilityTimeout": "5",
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": [theirs]}),
    })
    await aws.call("events", "PutRule", Name=name, State="ENABLED", EventPattern=json.dumps(
        {"source": ["aws.sagemaker"], "detail-type": [TRAINING]}))
    await aws.call("events", "PutTargets", Rule=name,
                   Targets=[{"Id": TARGET_ID, "Arn": made.dlq_arn}])

    fixed = await setup_events(aws, name=name, kinds=KINDS)
    assert fixed.updated == (RULE, QUEUE, TARGET) and fixed.found == (DLQ,)
    queue = await attributes(aws, made.queue_url)
    assert queue["VisibilityTimeout"] == "60"
    sids = [s["Sid"] for s in json.loads(queue["Policy"])["Statement"]]
    assert sids == ["someone-else", "smrun-events-rule"]
    rule = await aws.call("events", "DescribeRule", Name=name)
    assert json.loads(rule["EventPattern"]) == event_pattern(KINDS)
    (target,) = (await aws.call("events", "ListTargetsByRule", Rule=name))["Targets"]
    assert target["Arn"] == made.queue_arn

    again = await setup_events(aws, name=name, kinds=KINDS)
    assert again.found == EVERYTHING
    await teardown_events(aws, name=name)


async def test_teardown_removes_everything_and_a_second_teardown_is_fine(
    aws: Aws, name: str
) -> None:
    await setup_events(aws, name=name, kinds=KINDS)
    assert {name, f"{name}-dlq"} <= await queue_names(aws)
    gone = await teardown_events(aws, name=name)
    assert gone.removed == (TARGET, RULE, QUEUE, DLQ) and gone.missing == ()
    assert not {name, f"{name}-dlq"} & await queue_names(aws)
    rules = await aws.call("events", "ListRules", NamePrefix=name)
    assert rules["Rules"] == []

    again = await teardown_events(aws, name=name)
    assert again.removed == () and set(again.missing) == set(EVERYTHING)
    # and setup works again afterwards
    made = await setup_events(aws, name=name, kinds=KINDS)
    assert made.created == EVERYTHING
    await teardown_events(aws, name=name)


async def test_teardown_leaves_queues_of_a_longer_name_alone(aws: Aws, name: str) -> None:
    await setup_events(aws, name=name, kinds=KINDS)
    await setup_events(aws, name=f"{name}-2", kinds=KINDS)
    await teardown_events(aws, name=name)
    names = await queue_names(aws)
    assert {f"{name}-2", f"{name}-2-dlq"} <= names and name not in names
    await teardown_events(aws, name=f"{name}-2")


@pytest.mark.parametrize("bad", ["", "has space", "x" * 61, "dots.are.not.queue.names"])
async def test_a_name_that_cant_be_a_queue_name_is_refused_before_any_call(
    aws: Aws, bad: str
) -> None:
    with pytest.raises(ValueError):
        await setup_events(aws, name=bad, kinds=KINDS)
    with pytest.raises(ValueError):
        await teardown_events(aws, name=bad)
    assert sum(aws.stats.calls.values()) == 0


async def test_setup_needs_a_kind_that_sends_events(aws: Aws, name: str) -> None:
    with pytest.raises(ValueError, match="sends"):
        await setup_events(aws, name=name, kinds={"model": KINDS["model"]})


# ---------------------------------------------------------------- end to end in moto


async def test_an_event_put_to_eventbridge_is_delivered_from_the_queue(
    aws: Aws, name: str
) -> None:
    made = await setup_events(aws, name=name, kinds=KINDS)
    await put_events(aws, sagemaker_entry(TRAINING, training_event_detail()))

    delivered: list[Update] = []
    queue = EventQueue(aws.call, made.queue_url, KINDS, delivered.append, wait_seconds=1)
    await drain(queue, 1)
    (update,) = delivered
    assert (update.kind, update.name, update.status, update.secondary, update.source) == (
        "training", "xgb-churn-7", "Completed", "Completed", "events")
    assert update.complete
    assert update.facts["ModelArtifacts"]["S3ModelArtifacts"].endswith("model.tar.gz")
    assert (queue.stats.received, queue.stats.delivered, queue.stats.deleted) == (1, 1, 1)

    # deleted: nothing comes back, even once its visibility timeout is over
    assert await queue.poll_once() == 0
    left = await attributes(aws, made.queue_url)
    assert (left["ApproximateNumberOfMessages"], left["ApproximateNumberOfMessagesNotVisible"]
            ) == ("0", "0")
    await teardown_events(aws, name=name)


async def test_a_duplicate_event_is_delivered_twice_and_each_copy_deleted_once(
    aws: Aws, name: str
) -> None:
    made = await setup_events(aws, name=name, kinds=KINDS)
    entry = sagemaker_entry(TRAINING, training_event_detail("InProgress", "Training",
                                                      artifacts=False))
    await put_events(aws, entry, entry)

    delivered: list[Update] = []
    queue = EventQueue(aws.call, made.queue_url, KINDS, delivered.append, wait_seconds=1)
    await drain(queue, 2)
    assert len(delivered) == 2 and delivered[0] == delivered[1]
    assert not newer(delivered[0], delivered[1])  # the dispatcher drops the second
    assert (queue.stats.received, queue.stats.delivered, queue.stats.deleted) == (2, 2, 2)
    assert queue.stats.delete_failures == 0
    assert await queue.poll_once() == 0
    await teardown_events(aws, name=name)


async def test_the_rule_lets_only_sagemakers_events_of_our_kinds_through(
    aws: Aws, name: str
) -> None:
    made = await setup_events(aws, name=name, kinds=KINDS)
    await put_events(
        aws,
        sagemaker_entry(TRAINING, training_event_detail(), source="aws.ec2"),
        sagemaker_entry("SageMaker Endpoint Deployment State Change", {"EndpointName": "e"}),
        sagemaker_entry(TRAINING, training_event_detail("Failed", "Failed", artifacts=False)),
    )
    delivered: list[Update] = []
    queue = EventQueue(aws.call, made.queue_url, KINDS, delivered.append, wait_seconds=1)
    await drain(queue, 1)
    assert await queue.poll_once() == 0
    assert [(u.name, u.status) for u in delivered] == [("xgb-churn-7", "Failed")]
    assert queue.stats.received == 1
    await teardown_events(aws, name=name)


async def test_events_of_kinds_this_queue_does_not_follow_are_deleted_as_ignored(
    aws: Aws, name: str
) -> None:
    made = await setup_events(aws, name=name, kinds=KINDS)
    endpoint = {"EndpointName": "churn-live", "EndpointStatus": "IN_SERVICE",
                "LastModifiedTime": 1_717_000_000_000}
    await put_events(aws, sagemaker_entry("SageMaker Endpoint State Change", endpoint))
    delivered: list[Update] = []
    queue = EventQueue(aws.call, made.queue_url, {"training": KINDS["training"]},
                       delivered.append, wait_seconds=1)
    await drain(queue, 1)
    assert delivered == []
    assert (queue.stats.ignored, queue.stats.deleted, queue.stats.unparsed) == (1, 1, 0)
    await teardown_events(aws, name=name)


async def test_an_unreadable_message_is_left_for_the_dead_letter_queue(
    aws: Aws, name: str
) -> None:
    made = await setup_events(aws, name=name, kinds=KINDS)
    await aws.call("sqs", "SendMessage", QueueUrl=made.queue_url, MessageBody="not an event")
    # visible again at once, so that every round receives it
    queue = EventQueue(aws.call, made.queue_url, KINDS, lambda u: None, wait_seconds=0,
                       visibility_timeout=0)
    for _ in range(MAX_RECEIVE_COUNT):
        assert await queue.poll_once() == 1
    assert (queue.stats.unparsed, queue.stats.deleted) == (MAX_RECEIVE_COUNT, 0)
    # one receive more and SQS moves it to the dead-letter queue, body intact
    assert await queue.poll_once() == 0
    dead = await aws.call("sqs", "ReceiveMessage", QueueUrl=made.dlq_url, WaitTimeSeconds=0)
    assert [m["Body"] for m in dead["Messages"]] == ["not an event"]
    await teardown_events(aws, name=name)


async def test_a_queue_that_does_not_exist_is_an_event_queue_error(
    aws: Aws, moto_url: str
) -> None:
    url = f"{moto_url}/123456789012/no-such-queue"
    queue = EventQueue(aws.call, url, KINDS, lambda u: None, wait_seconds=0)
    with pytest.raises(EventQueueError) as caught:
        await queue.run()
    assert url in caught.value.problem and "NonExistentQueue" in caught.value.problem
    assert "smrun events setup" in caught.value.fix


async def test_a_long_poll_outlasts_a_short_read_timeout(moto_url: str, name: str) -> None:
    # were the SQS client's read timeout the configured 1 s, the 2 s poll would
    # time out, and Aws.call would retry that forever
    async with Aws(moto_config(moto_url, read_timeout=1.0)) as aws:
        made = await setup_events(aws, name=name, kinds=KINDS)
        queue = EventQueue(aws.call, made.queue_url, KINDS, lambda u: None, wait_seconds=2)
        with anyio.fail_after(15):
            assert await queue.poll_once() == 0
        assert aws.stats.retries["ReceiveMessage"] == 0
        await teardown_events(aws, name=name)


# ---------------------------------------------------------------- permissions and endpoints


def _actions(calls: dict[str, int], service_of: dict[str, str]) -> set[str]:
    batch = {"DeleteMessageBatch": "DeleteMessage"}
    return {f"{service_of[op]}:{batch.get(op, op)}" for op, n in calls.items() if n}


async def test_the_iam_actions_cover_every_call_made(aws: Aws, name: str) -> None:
    service_of = {"ReceiveMessage": "sqs", "DeleteMessageBatch": "sqs", "ListQueues": "sqs",
                  "CreateQueue": "sqs", "GetQueueAttributes": "sqs", "SetQueueAttributes": "sqs",
                  "DeleteQueue": "sqs", "PutEvents": "events", "DescribeRule": "events",
                  "PutRule": "events", "ListTargetsByRule": "events", "PutTargets": "events",
                  "RemoveTargets": "events", "DeleteRule": "events"}

    def since(before: dict[str, int]) -> dict[str, int]:
        return {op: n - before.get(op, 0) for op, n in aws.stats.calls.items()}

    made: EventsSetup = await setup_events(aws, name=name, kinds=KINDS)
    after_setup = dict(aws.stats.calls)
    await put_events(aws, sagemaker_entry(TRAINING, training_event_detail()))
    after_put = dict(aws.stats.calls)
    queue = EventQueue(aws.call, made.queue_url, KINDS, lambda u: None, wait_seconds=1)
    await queue.check()  # the engine's pre-flight of the queue
    await drain(queue, 1)
    after_consume = dict(aws.stats.calls)
    await teardown_events(aws, name=name)

    assert _actions(after_setup, service_of) <= set(SETUP_ACTIONS)
    consumed = {op: n - after_put.get(op, 0) for op, n in after_consume.items()}
    assert _actions(consumed, service_of) == set(CONSUME_ACTIONS)
    assert _actions(since(after_consume), service_of) <= set(TEARDOWN_ACTIONS)


async def test_the_event_clients_honour_botocores_endpoint_variables(
    monkeypatch: pytest.MonkeyPatch, moto_url: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", moto_url)
    config = AwsConfig(region=REGION, static_credentials=("testing", "testing"))
    async with Aws(config) as aws:
        assert aws.endpoint("sqs") == moto_url
        assert aws.endpoint("events") == moto_url
        assert "amazonaws.com" in aws.endpoint("sagemaker")
    # the config's own endpoints win over the variables
    explicit = AwsConfig(region=REGION, sqs_endpoint_url="http://127.0.0.1:9",
                         events_endpoint_url="http://127.0.0.1:9",
                         static_credentials=("testing", "testing"))
    async with Aws(explicit) as aws:
        assert aws.endpoint("sqs") == aws.endpoint("events") == "http://127.0.0.1:9"
