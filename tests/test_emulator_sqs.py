"""The emulator's SQS through aiobotocore: queues, messages, visibility,
redrive and long polls, and errors exactly as botocore reports real SQS's."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from smrun.emulator import Emulator, FakeClock, FaultConfig
from tests.helpers import error_of

ACCOUNT = "123456789012"


@pytest.fixture
async def sqs(emulator: Emulator, aws_client: Any) -> Any:
    return await aws_client("sqs", emulator)


@pytest.fixture
async def fake_sqs(fake_emulator: Emulator, aws_client: Any) -> Any:
    return await aws_client("sqs", fake_emulator)


async def make_queue(sqs: Any, name: str = "work", **attributes: str) -> str:
    return str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])


async def counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue at ``url``."""
    found = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    return (int(found["ApproximateNumberOfMessages"]),
            int(found["ApproximateNumberOfMessagesNotVisible"]))


async def receive(sqs: Any, url: str, **params: Any) -> list[dict[str, Any]]:
    return list((await sqs.receive_message(QueueUrl=url, **params)).get("Messages", []))


def caught(error: ClientError) -> dict[str, Any]:
    return dict(error.response["Error"])


# -- errors ------------------------------------------------------------------------


async def test_a_missing_queue_comes_out_of_botocore_as_real_sqs_sends_it(
    sqs: Any, emulator: Emulator
) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as raised:
        await sqs.get_queue_attributes(QueueUrl=f"{emulator.url}/{ACCOUNT}/nope",
                                       AttributeNames=["All"])
    assert caught(raised.value) == {
        "Code": "AWS.SimpleQueueService.NonExistentQueue",
        "QueryErrorCode": "QueueDoesNotExist",
        "Type": "Sender",
        "Message": "The specified queue does not exist.",
    }
    headers = raised.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    assert headers["content-type"] == "application/x-amz-json-1.0"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        await sqs.get_queue_url(QueueName="nope")


async def test_an_error_without_a_legacy_code_keeps_its_own(sqs: Any) -> None:
    url = await make_queue(sqs)
    code, message = await error_of(sqs.receive_message, QueueUrl=url, MaxNumberOfMessages=11)
    assert code == "InvalidParameterValue"
    assert message == ("Value 11 for parameter MaxNumberOfMessages is invalid. "
                       "Reason: Must be between 1 and 10, if provided.")
    for params in ({"MaxNumberOfMessages": 0}, {"WaitTimeSeconds": 21},
                   {"VisibilityTimeout": 43_201}):
        assert (await error_of(sqs.receive_message, QueueUrl=url, **params))[0] == \
            "InvalidParameterValue"


async def test_a_url_that_is_no_queue_url_is_an_invalid_address(sqs: Any) -> None:
    code, message = await error_of(sqs.send_message, QueueUrl="work", MessageBody="x")
    assert (code, message) == ("InvalidAddress", "The address work is not valid for this endpoint.")


# -- queues -------------------------------------------------------------------------


async def test_create_queue_answers_with_the_same_queue_for_the_same_attributes(
    sqs: Any, emulator: Emulator
) -> None:
    url = await make_queue(sqs, VisibilityTimeout="45")
    assert url == f"{emulator.url}/{ACCOUNT}/work"
    assert await make_queue(sqs, VisibilityTimeout="45") == url
    assert await make_queue(sqs) == url  # attributes not given are not compared
    with pytest.raises(sqs.exceptions.QueueNameExists) as raised:
        await make_queue(sqs, VisibilityTimeout="46")
    assert caught(raised.value)["Code"] == "QueueAlreadyExists"
    assert caught(raised.value)["QueryErrorCode"] == "QueueNameExists"
    assert "VisibilityTimeout" in caught(raised.value)["Message"]


async def test_queue_attributes_have_aws_defaults_and_computed_values(
    fake_sqs: Any, fake_clock: FakeClock
) -> None:
    url = await make_queue(fake_sqs)
    found = (await fake_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))[
        "Attributes"]
    assert found == {
        "QueueArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:work",
        "VisibilityTimeout": "30",
        "MessageRetentionPeriod": "345600",
        "ReceiveMessageWaitTimeSeconds": "0",
        "DelaySeconds": "0",
        "MaximumMessageSize": "262144",
        "SqsManagedSseEnabled": "true",
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
        "ApproximateNumberOfMessagesDelayed": "0",
        "CreatedTimestamp": str(int(fake_clock.now)),
        "LastModifiedTimestamp": str(int(fake_clock.now)),
    }
    fake_clock.advance(10)
    policy = {"Version": "2012-10-17", "Statement": []}
    await fake_sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "VisibilityTimeout": "60", "Policy": json.dumps(policy, indent=2)})
    found = (await fake_sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["VisibilityTimeout", "Policy", "LastModifiedTimestamp"]))
    assert found["Attributes"] == {"VisibilityTimeout": "60", "Policy": json.dumps(
        policy, separators=(",", ":")), "LastModifiedTimestamp": str(int(fake_clock.now))}
    assert "Attributes" not in await fake_sqs.get_queue_attributes(QueueUrl=url)


@pytest.mark.parametrize(("attributes", "code"), [
    ({"Colour": "blue"}, "InvalidAttributeName"),
    ({"QueueArn": "arn:aws:sqs:us-east-1:123456789012:x"}, "InvalidAttributeName"),
    ({"ContentBasedDeduplication": "true"}, "InvalidAttributeName"),
    ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue"),
    ({"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"),
    ({"Policy": "[1]"}, "InvalidAttributeValue"),
    ({"FifoQueue": "true"}, "AWS.SimpleQueueService.UnsupportedOperation"),
    ({"RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:none",
                                   "maxReceiveCount": 3})}, "InvalidParameterValue"),
])
async def test_bad_attributes_are_refused_as_sqs_refuses_them(
    sqs: Any, attributes: dict[str, str], code: str
) -> None:
    assert (await error_of(sqs.create_queue, QueueName="bad", Attributes=attributes))[0] == code
    assert "QueueUrls" not in await sqs.list_queues()


async def test_a_fifo_name_and_a_bad_name_are_refused(sqs: Any) -> None:
    assert (await error_of(sqs.create_queue, QueueName="jobs.fifo"))[0] == \
        "AWS.SimpleQueueService.UnsupportedOperation"
    code, message = await error_of(sqs.create_queue, QueueName="has space")
    assert code == "InvalidParameterValue" and "QueueName" in message


async def test_list_queues_by_prefix_and_page(sqs: Any, emulator: Emulator) -> None:
    for name in ("b-1", "a-1", "a-2", "a-3"):
        await make_queue(sqs, name)
    everything = await sqs.list_queues(QueueNamePrefix="a-")
    assert everything["QueueUrls"] == [f"{emulator.url}/{ACCOUNT}/a-{n}" for n in (1, 2, 3)]
    assert "NextToken" not in everything
    first = await sqs.list_queues(QueueNamePrefix="a-", MaxResults=2)
    assert [u.rsplit("/", 1)[1] for u in first["QueueUrls"]] == ["a-1", "a-2"]
    rest = await sqs.list_queues(QueueNamePrefix="a-", MaxResults=2, NextToken=first["NextToken"])
    assert [u.rsplit("/", 1)[1] for u in rest["QueueUrls"]] == ["a-3"]
    assert "NextToken" not in rest


async def test_a_deleted_name_can_be_used_again_after_60_seconds(
    fake_sqs: Any, fake_clock: FakeClock
) -> None:
    url = await make_queue(fake_sqs)
    await fake_sqs.delete_queue(QueueUrl=url)
    assert (await error_of(fake_sqs.create_queue, QueueName="work"))[0] == \
        "AWS.SimpleQueueService.QueueDeletedRecently"
    fake_clock.advance(60)
    assert await make_queue(fake_sqs) == url


async def test_purge_empties_the_queue_once_a_minute(fake_sqs: Any, fake_clock: FakeClock) -> None:
    url = await make_queue(fake_sqs)
    await fake_sqs.send_message(QueueUrl=url, MessageBody="a")
    await fake_sqs.purge_queue(QueueUrl=url)
    assert await counts(fake_sqs, url) == (0, 0)
    with pytest.raises(ClientError) as raised:
        await fake_sqs.purge_queue(QueueUrl=url)
    assert caught(raised.value)["Code"] == "AWS.SimpleQueueService.PurgeQueueInProgress"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    fake_clock.advance(60)
    await fake_sqs.purge_queue(QueueUrl=url)


# -- messages -------------------------------------------------------------------------


def md5_of_attributes(name: str, data_type: str, value: str) -> str:
    """SQS's documented digest of one String attribute, written out by hand."""
    def field(raw: bytes) -> bytes:
        return len(raw).to_bytes(4, "big") + raw
    encoded = field(name.encode()) + field(data_type.encode()) + b"\x01" + field(value.encode())
    return hashlib.md5(encoded).hexdigest()


async def test_a_message_comes_back_with_its_digests_and_the_attributes_asked_for(
    fake_sqs: Any, fake_clock: FakeClock
) -> None:
    url = await make_queue(fake_sqs)
    sent = await fake_sqs.send_message(
        QueueUrl=url, MessageBody="héllo",
        MessageAttributes={"colour": {"DataType": "String", "StringValue": "blue"},
                           "size": {"DataType": "Number", "StringValue": "3"}})
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo".encode()).hexdigest()
    fake_clock.advance(2)
    [message] = await receive(fake_sqs, url, MessageAttributeNames=["colour"],
                              MessageSystemAttributeNames=["ApproximateReceiveCount",
                                                           "SentTimestamp"])
    assert message["MessageId"] == sent["MessageId"] and message["Body"] == "héllo"
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["Attributes"] == {"ApproximateReceiveCount": "1",
                                     "SentTimestamp": str(round((fake_clock.now - 2) * 1000))}
    assert message["MessageAttributes"] == {"colour": {"DataType": "String",
                                                       "StringValue": "blue"}}
    assert message["MD5OfMessageAttributes"] == md5_of_attributes("colour", "String", "blue")


async def test_a_received_message_is_hidden_for_the_visibility_timeout(
    fake_sqs: Any, fake_clock: FakeClock
) -> None:
    url = await make_queue(fake_sqs)
    await fake_sqs.send_message(QueueUrl=url, MessageBody="once")
    [first] = await receive(fake_sqs, url, AttributeNames=["All"])
    assert await receive(fake_sqs, url) == []
    assert await counts(fake_sqs, url) == (0, 1)
    fake_clock.advance(29.9)
    assert await receive(fake_sqs, url) == []
    fake_clock.advance(0.1)
    [again] = await receive(fake_sqs, url, AttributeNames=["All"])
    assert again["MessageId"] == first["MessageId"]
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again["Attributes"]["ApproximateFirstReceiveTimestamp"] == \
        first["Attributes"]["ApproximateFirstReceiveTimestamp"]


async def test_only_the_latest_receipt_handle_deletes(fake_sqs: Any, fake_clock: FakeClock) -> None:
    url = await make_queue(fake_sqs)
    await fake_sqs.send_message(QueueUrl=url, MessageBody="m")
    [first] = await receive(fake_sqs, url, VisibilityTimeout=0)
    [second] = await receive(fake_sqs, url)
    await fake_sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert await counts(fake_sqs, url) == (0, 1)  # succeeded, deleted nothing
    await fake_sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    assert await counts(fake_sqs, url) == (0, 0)
    await fake_sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])  # again: ok
    fake_clock.advance(60)
    assert await receive(fake_sqs, url) == []


async def test_a_handle_that_is_not_one_is_refused(sqs: Any) -> None:
    url, other = await make_queue(sqs, "one"), await make_queue(sqs, "two")
    await sqs.send_message(QueueUrl=other, MessageBody="m")
    [message] = await receive(sqs, other)
    for handle in ("garbage", message["ReceiptHandle"]):  # the second: another queue's
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as raised:
            await sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        assert caught(raised.value)["Code"] == "ReceiptHandleIsInvalid"
        assert handle in caught(raised.value)["Message"]


async def test_change_visibility_shows_hides_and_refuses(
    fake_sqs: Any, fake_clock: FakeClock
) -> None:
    url = await make_queue(fake_sqs)
    await fake_sqs.send_message(QueueUrl=url, MessageBody="m")
    [message] = await receive(fake_sqs, url)
    handle = message["ReceiptHandle"]
    await fake_sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle,
                                             VisibilityTimeout=0)
    assert await counts(fake_sqs, url) == (1, 0)
    with pytest.raises(ClientError) as raised:  # visible: not in flight
        await fake_sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle,
                                                 VisibilityTimeout=10)
    assert caught(raised.value)["Code"] == "AWS.SimpleQueueService.MessageNotInflight"
    [message] = await receive(fake_sqs, url)
    handle = message["ReceiptHandle"]
    await fake_sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle,
                                             VisibilityTimeout=100)
    fake_clock.advance(99)
    assert await receive(fake_sqs, url) == []  # the 30 s of the receive no longer count
    answer = await fake_sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "ok", "ReceiptHandle": handle, "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "garbage", "VisibilityTimeout": 0}])
    assert [e["Id"] for e in answer["Successful"]] == ["ok"]
    assert [(e["Id"], e["Code"], e["SenderFault"]) for e in answer["Failed"]] == [
        ("bad", "ReceiptHandleIsInvalid", True)]
    assert await counts(fake_sqs, url) == (1, 0)


async def test_delay_and_retention_follow_the_clock(fake_sqs: Any, fake_clock: FakeClock) -> None:
    url = await make_queue(fake_sqs, MessageRetentionPeriod="60")
    await fake_sqs.send_message(QueueUrl=url, MessageBody="late", DelaySeconds=5)
    found = (await fake_sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]))["Attributes"]
    assert found == {"ApproximateNumberOfMessagesDelayed": "1"}
    assert await receive(fake_sqs, url) == []
    fake_clock.advance(5)
    assert [m["Body"] for m in await receive(fake_sqs, url, VisibilityTimeout=0)] == ["late"]
    fake_clock.advance(55)  # 60 s after it was sent: gone
    assert await receive(fake_sqs, url) == []
    assert await counts(fake_sqs, url) == (0, 0)


async def test_batches_check_their_entries_and_answer_per_entry(sqs: Any) -> None:
    url = await make_queue(sqs)
    sent = await sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": f"m{n}", "MessageBody": f"body {n}"} for n in range(9)] + [
        {"Id": "bad", "MessageBody": "nul \x00 inside"}])
    assert len(sent["Successful"]) == 9
    assert [(f["Id"], f["Code"]) for f in sent["Failed"]] == [("bad", "InvalidMessageContents")]
    taken = await receive(sqs, url, MaxNumberOfMessages=10)
    assert sorted(m["Body"] for m in taken) == [f"body {n}" for n in range(9)]
    deleted = await sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(taken)])
    assert len(deleted["Successful"]) == 9 and deleted["Failed"] == []
    assert await counts(sqs, url) == (0, 0)
    for entries, code in (
        ([{"Id": str(n), "MessageBody": "x"} for n in range(11)],
         "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
        ([{"Id": "same", "MessageBody": "x"}] * 2,
         "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
        ([{"Id": "no spaces", "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
        ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
    ):
        assert (await error_of(sqs.send_message_batch, QueueUrl=url, Entries=entries))[0] == code


async def test_redrive_moves_a_message_received_too_often_to_the_dead_letter_queue(
    fake_sqs: Any
) -> None:
    dlq = await make_queue(fake_sqs, "dead")
    dlq_arn = (await fake_sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
        "Attributes"]["QueueArn"]
    url = await make_queue(fake_sqs, RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}))
    policy = (await fake_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]))
    assert json.loads(policy["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}
    sent = await fake_sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        assert len(await receive(fake_sqs, url, VisibilityTimeout=0)) == 1
    assert await receive(fake_sqs, url, VisibilityTimeout=0) == []  # the third: moved
    assert await counts(fake_sqs, url) == (0, 0)
    [moved] = await receive(fake_sqs, dlq, MessageSystemAttributeNames=["All"])
    assert moved["MessageId"] == sent["MessageId"] and moved["Body"] == "poison"
    assert moved["Attributes"]["DeadLetterQueueSourceArn"].endswith(":work")


async def test_a_long_poll_returns_as_soon_as_a_message_is_sent(sqs: Any) -> None:
    url = await make_queue(sqs)
    loop = asyncio.get_running_loop()
    started = loop.time()
    polling = asyncio.create_task(receive(sqs, url, WaitTimeSeconds=20))
    await sqs.send_message(QueueUrl=url, MessageBody="wake up")
    taken = await asyncio.wait_for(polling, 10)
    assert [m["Body"] for m in taken] == ["wake up"]
    assert loop.time() - started < 10  # well before the poll's 20 s


async def test_a_long_poll_sees_a_message_whose_visibility_ran_out(sqs: Any) -> None:
    url = await make_queue(sqs)
    await sqs.send_message(QueueUrl=url, MessageBody="back")
    assert len(await receive(sqs, url, VisibilityTimeout=1)) == 1
    [message] = await receive(sqs, url, WaitTimeSeconds=10, AttributeNames=["All"])
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"


async def test_a_long_poll_of_a_deleted_queue_ends_with_no_such_queue(sqs: Any) -> None:
    url = await make_queue(sqs)
    polling = asyncio.create_task(receive(sqs, url, WaitTimeSeconds=20))
    await asyncio.sleep(0)  # let the poll start (if it comes after the delete, same error)
    await sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as raised:
        await asyncio.wait_for(polling, 10)
    assert caught(raised.value)["Code"] == "AWS.SimpleQueueService.NonExistentQueue"


async def test_stopping_the_emulator_ends_its_long_polls(aws_client: Any) -> None:
    emulator = Emulator()
    await emulator.start()
    sqs = await aws_client("sqs", emulator)
    url = await make_queue(sqs)
    loop = asyncio.get_running_loop()
    polling = asyncio.create_task(receive(sqs, url, WaitTimeSeconds=20))
    while emulator.count("ReceiveMessage") == 0:  # the poll reached the emulator
        await asyncio.sleep(0.01)
    started = loop.time()
    await emulator.stop()
    assert loop.time() - started < 10
    assert await asyncio.wait_for(polling, 10) == []


async def test_a_denied_call_is_access_denied_as_sqs_names_it(
    sqs: Any, emulator: Emulator
) -> None:
    url = await make_queue(sqs)
    emulator.faults = FaultConfig(deny=frozenset({"sqs:ReceiveMessage"}))
    with pytest.raises(ClientError) as raised:
        await sqs.receive_message(QueueUrl=url)
    error = caught(raised.value)
    assert (error["Code"], error["QueryErrorCode"]) == ("AccessDenied", "AccessDeniedException")
    assert f"sqs:ReceiveMessage on resource: arn:aws:sqs:us-east-1:{ACCOUNT}:work" in \
        error["Message"]
    await sqs.send_message(QueueUrl=url, MessageBody="still allowed")
