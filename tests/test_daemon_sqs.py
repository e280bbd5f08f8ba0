"""Submissions from SQS (runner.daemon.submissions): moto serves SQS and S3, the
emulator SageMaker, and a daemon runs in this process with ``consume`` beside it,
put together as ``run_daemon`` does (without the HTTP server)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from botocore.exceptions import ClientError

from smrun.aws import Aws, AwsConfig
from smrun.budget import Priority
from smrun.daemon.service import Daemon, DaemonSettings
from smrun.daemon.submissions import (
    ERROR_ATTRIBUTE,
    ERROR_TYPE_ATTRIBUTE,
    MAX_ERROR_BYTES,
    MESSAGE_ID_ATTRIBUTE,
    MESSAGE_LIMIT,
    Rejected,
    Submission,
    consume,
    dead_letter_attributes,
    dead_letter_target,
    parse_body,
    run_id_for,
    sibling_queue_url,
    sqs_text,
    valid_run_id,
)
from smrun.emulator import Emulator
from smrun.engine import Engine
from smrun.handlers import KINDS
from smrun.manifest import ManifestError
from smrun.store import RunRecord, RunStatus, Store
from smrun.store.open import open_store
from tests.daemon_helpers import daemon_settings
from tests.helpers import emulator_config

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "smrun-manifests"
_names = itertools.count()
Hook = Callable[[dict[str, Any]], Awaitable[None]]


def manifest(name: str = "train", duration: str = "0.5") -> dict[str, Any]:
    return {
        "defaults": {"role": ROLE},
        "jobs": [{
            "name": name,
            "kind": "training",
            "request": {
                "AlgorithmSpecification": {
                    "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1",
                    "TrainingInputMode": "File",
                },
                "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
                "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                   "VolumeSizeInGB": 10},
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                "Tags": [{"Key": "smrun:emulator:duration", "Value": duration},
                         {"Key": "smrun:emulator:log-lines", "Value": "1"}],
            },
        }],
    }


def yaml_manifest(name: str = "train") -> str:
    return yaml.safe_dump(manifest(name), sort_keys=False)


INVALID = yaml.safe_dump({"defaults": {"role": ROLE},
                          "jobs": [{"name": "bad", "kind": "no-such-kind", "request": {}}]})


class Calls:
    """``Aws.call`` with a count per operation, the message ids each
    ReceiveMessage brought, and hooks run before an operation's call (a hook
    may wait, or raise as AWS would)."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.counts: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.hooks: dict[str, Hook] = {}

    async def __call__(self, service: str, operation: str, *,
                       priority: Priority = Priority.LIVE, **params: Any) -> dict[str, Any]:
        self.counts[operation] += 1
        hook = self.hooks.get(operation)
        if hook is not None:
            await hook(params)
        result = await self.aws.call(service, operation, priority=priority, **params)
        if operation == "ReceiveMessage":
            self.received.update(str(m["MessageId"]) for m in result.get("Messages") or [])
        return result


def aws_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "refused by the test"},
                        "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)


@dataclass
class Harness:
    emulator: Emulator
    aws: Aws
    daemon: Daemon
    store: Store
    calls: Calls
    queue_url: str
    dead_letter_url: str | None
    logged: list[tuple[str, str]] = field(default_factory=list)

    async def sqs(self, operation: str, **params: Any) -> dict[str, Any]:
        return await self.aws.call("sqs", operation, **params)

    async def send(self, body: str, **params: Any) -> str:
        sent = await self.sqs("SendMessage", QueueUrl=self.queue_url, MessageBody=body,
                              **params)
        return str(sent["MessageId"])

    async def put(self, key: str, data: str | bytes) -> str:
        await self.aws.call("s3", "PutObject", Bucket=BUCKET, Key=key,
                            Body=data.encode() if isinstance(data, str) else data)
        return f"s3://{BUCKET}/{key}"

    async def run(self, run_id: str, statuses: tuple[RunStatus, ...] = (),
                  timeout: float = 30) -> RunRecord:
        """The run once it is recorded (and has one of ``statuses``, if given)."""
        with anyio.fail_after(timeout):
            while True:
                run = await self.store.get_run(run_id)
                if run is not None and (not statuses or run.status in statuses):
                    return run
                await anyio.sleep(0.05)

    async def counts(self, queue_url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue."""
        answer = await self.sqs("GetQueueAttributes", QueueUrl=queue_url or self.queue_url,
                                AttributeNames=["ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible"])
        attributes = answer["Attributes"]
        return (int(attributes["ApproximateNumberOfMessages"]),
                int(attributes["ApproximateNumberOfMessagesNotVisible"]))

    async def drained(self, timeout: float = 15) -> None:
        """Until the queue holds no message, visible or not (all deleted)."""
        with anyio.fail_after(timeout):
            while await self.counts() != (0, 0):
                await anyio.sleep(0.05)

    async def dead_letters(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        assert self.dead_letter_url is not None
        found: list[dict[str, Any]] = []
        with anyio.fail_after(timeout):
            while len(found) < count:
                answer = await self.sqs("ReceiveMessage", QueueUrl=self.dead_letter_url,
                                        MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                        MessageAttributeNames=["All"],
                                        MessageSystemAttributeNames=["All"])
                found.extend(answer.get("Messages") or [])
        return found

    def logs(self, level: str, text: str = "") -> list[str]:
        return [m for lv, m in self.logged if lv == level and text in m]

    async def until_logged(self, level: str, text: str, timeout: float = 15) -> None:
        with anyio.fail_after(timeout):
            while not self.logs(level, text):
                await anyio.sleep(0.05)


def with_moto(config: AwsConfig, moto_url: str) -> AwsConfig:
    return dataclasses.replace(config, sqs_endpoint_url=moto_url, s3_endpoint_url=moto_url)


async def make_queue(aws: Aws, name: str, *, dead_letter: bool,
                     fifo: bool = False) -> tuple[str, str | None]:
    attributes: dict[str, str] = {"FifoQueue": "true"} if fifo else {}
    suffix = ".fifo" if fifo else ""
    dlq_url: str | None = None
    if dead_letter:
        made = await aws.call("sqs", "CreateQueue", QueueName=f"{name}-dlq{suffix}",
                              Attributes=dict(attributes))
        dlq_url = str(made["QueueUrl"])
        arn = (await aws.call("sqs", "GetQueueAttributes", QueueUrl=dlq_url,
                              AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn,
                                                  "maxReceiveCount": "50"})
    made = await aws.call("sqs", "CreateQueue", QueueName=name + suffix, Attributes=attributes)
    return str(made["QueueUrl"]), dlq_url


@asynccontextmanager
async def harness(emulator: Emulator, moto_url: str, tmp_path: Path, *, dead_letter: bool = True,
                  fifo: bool = False, hooks: dict[str, Hook] | None = None,
                  **options: Any) -> AsyncIterator[Harness]:
    """A daemon on ``emulator`` with ``consume`` reading a new queue of moto's
    (with a dead-letter queue, unless told otherwise), as ``run_daemon`` puts
    them together; ``options`` go to ``consume``."""
    logged: list[tuple[str, str]] = []

    def log(level: str, message: str) -> None:
        logged.append((level, message))

    async with AsyncExitStack() as stack:
        store = open_store(str(tmp_path / "state"))
        await store.open()
        stack.push_async_callback(store.close)
        engine = await stack.enter_async_context(Engine(
            with_moto(emulator_config(emulator), moto_url), kinds=KINDS,
            settings=daemon_settings()))
        aws = engine.require_aws()
        daemon = Daemon(engine, store, owner="sqs-test", settings=DaemonSettings.fast(), log=log)
        await aws.call("s3", "CreateBucket", Bucket=BUCKET)
        queue_url, dlq_url = await make_queue(aws, f"smrun-submissions-{next(_names)}",
                                              dead_letter=dead_letter, fifo=fifo)
        calls = Calls(aws)
        calls.hooks.update(hooks or {})
        options = {"wait_seconds": 1, "visibility_timeout": 5, "extend_every": 1.0,
                   "retry_pause": 0.05, **options}
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.serve)
            tg.start_soon(partial(consume, daemon, queue_url, call=calls, log=log, **options))
            try:
                yield Harness(emulator, aws, daemon, store, calls, queue_url, dlq_url, logged)
            finally:
                tg.cancel_scope.cancel()


def creates(emulator: Emulator) -> int:
    operations = emulator.rates_report()["operations"]
    return sum(emulator.count(op) for op in operations if op.startswith("Create"))


# ---------------------------------------------------------------- end to end


async def test_a_manifest_message_becomes_a_run_that_succeeds_and_is_deleted(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    async with harness(emulator, moto_url, tmp_path) as h:
        message_id = await h.send(yaml_manifest())
        run = await h.run(run_id_for(message_id), (RunStatus.SUCCEEDED, RunStatus.FAILED))
        await h.drained()
        assert run.status is RunStatus.SUCCEEDED, run.summary
        assert run.source == f"sqs:{message_id}" and run.manifest == yaml_manifest()
        assert emulator.count("CreateTrainingJob") == 1
        assert h.calls.counts["DeleteMessage"] == 1
        assert h.logs("info", f"submitted by SQS message {message_id}")
        assert not h.logs("error") and not h.logs("warning")


async def test_an_s3_uri_message_runs_the_manifest_in_that_object(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    async with harness(emulator, moto_url, tmp_path) as h:
        uri = await h.put("team/nightly.yaml", yaml_manifest("from-s3"))
        message_id = await h.send(uri)
        run = await h.run(run_id_for(message_id), (RunStatus.SUCCEEDED, RunStatus.FAILED))
        await h.drained()
        assert run.status is RunStatus.SUCCEEDED, run.summary
        assert run.source == uri and run.manifest == yaml_manifest("from-s3")
        assert h.calls.counts["GetObject"] == 1


async def test_the_json_form_names_the_run_and_its_on_cancel(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    async with harness(emulator, moto_url, tmp_path) as h:
        uri = await h.put("by-uri.json", json.dumps(manifest("by-uri")))
        await h.send(json.dumps({"manifest": manifest("inline"), "run_id": "nightly-1",
                                 "on_cancel": "detach"}))
        await h.send(json.dumps({"manifest_uri": uri, "run_id": "nightly-2"}))
        await h.send(json.dumps({"manifest": yaml_manifest("text"), "run_id": "nightly-3"}))
        done = (RunStatus.SUCCEEDED, RunStatus.FAILED)
        first, second, third = [await h.run(f"nightly-{n}", done) for n in (1, 2, 3)]
        await h.drained()
        assert {first.status, second.status, third.status} == {RunStatus.SUCCEEDED}
        assert first.options == {"on_cancel": "detach"} and second.options == {}
        assert json.loads(first.manifest) == manifest("inline")
        assert second.source == uri and json.loads(second.manifest) == manifest("by-uri")
        assert third.manifest == yaml_manifest("text")
        assert emulator.count("CreateTrainingJob") == 3


async def test_a_redelivered_message_is_the_same_run_and_is_then_deleted(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    deletes = 0

    async def lose_the_first_delete(params: dict[str, Any]) -> None:
        nonlocal deletes
        deletes += 1
        if deletes == 1:  # as if the daemon died between recording and deleting
            raise aws_error("AccessDenied", "DeleteMessage")

    async with harness(emulator, moto_url, tmp_path, visibility_timeout=2, extend_every=0.5,
                       hooks={"DeleteMessage": lose_the_first_delete}) as h:
        message_id = await h.send(yaml_manifest())
        run_id = run_id_for(message_id)
        await h.until_logged("warning", "could not be deleted")
        # it comes back after its visibility timeout: the same run, not a second one
        await h.until_logged("info", f"run {run_id} was recorded already")
        await h.drained()
        assert h.calls.received[message_id] == 2 and deletes == 2
        run = await h.run(run_id, (RunStatus.SUCCEEDED, RunStatus.FAILED))
        assert run.status is RunStatus.SUCCEEDED
        assert [r.run_id for r in await h.store.list_runs()] == [run_id]
        assert emulator.count("CreateTrainingJob") == 1


async def test_poison_messages_go_to_the_dead_letter_queue_with_their_error(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    async with harness(emulator, moto_url, tmp_path) as h:
        await h.daemon.submit(yaml_manifest("first"), run_id="taken")
        expected = {
            await h.send(INVALID, MessageAttributes={
                "team": {"DataType": "String", "StringValue": "ml"}}): "invalid-manifest",
            await h.send("{not json"): "invalid-message",
            await h.send(f"s3://{BUCKET}/no/such/key.yaml"): "unreadable-manifest",
            await h.send(json.dumps({"manifest": yaml_manifest("other"),
                                     "run_id": "taken"})): "run-conflict",
        }
        dead = {m["MessageAttributes"][MESSAGE_ID_ATTRIBUTE]["StringValue"]: m
                for m in await h.dead_letters(len(expected))}
        await h.drained()
        assert set(dead) == set(expected)
        for message_id, kind in expected.items():
            attributes = dead[message_id]["MessageAttributes"]
            assert attributes[ERROR_TYPE_ATTRIBUTE]["StringValue"] == kind
            assert attributes[ERROR_ATTRIBUTE]["StringValue"]
        invalid = next(m for m, kind in expected.items() if kind == "invalid-manifest")
        with pytest.raises(ManifestError) as caught:
            h.daemon.validate(INVALID, f"sqs:{invalid}")
        error = dead[invalid]["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"]
        assert error == "\n".join(caught.value.errors)
        assert dead[invalid]["Body"] == INVALID  # the original, unchanged
        assert dead[invalid]["MessageAttributes"]["team"]["StringValue"] == "ml"
        missing = next(m for m, kind in expected.items() if kind == "unreadable-manifest")
        assert "NoSuchKey" in dead[missing]["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"]
        # nothing was recorded for them, and nothing reached SageMaker
        assert [r.run_id for r in await h.store.list_runs()] == ["taken"]
        await h.run("taken", (RunStatus.SUCCEEDED,))
        assert emulator.count("CreateTrainingJob") == 1  # the run "taken" only
        assert all(h.calls.received[m] == 1 for m in expected)
        assert len(h.logs("warning", "moved to the dead-letter queue")) == 4


async def test_a_poison_message_creates_nothing_in_sagemaker(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    async with harness(emulator, moto_url, tmp_path) as h:
        message_id = await h.send(INVALID)
        [dead] = await h.dead_letters(1)
        await h.drained()
        assert dead["MessageAttributes"][MESSAGE_ID_ATTRIBUTE]["StringValue"] == message_id
        assert "no-such-kind" in dead["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"]
        assert await h.store.list_runs() == []
    assert creates(emulator) == 0


async def test_a_dead_letter_queue_found_without_get_queue_url_and_a_fifo_one(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    async def denied(params: dict[str, Any]) -> None:
        raise aws_error("AccessDenied", "GetQueueUrl")

    # no sqs:GetQueueUrl: the dead-letter queue's URL is the queue's with its name
    async with harness(emulator, moto_url, tmp_path, fifo=True,
                       hooks={"GetQueueUrl": denied}) as h:
        message_id = await h.send("{not json", MessageGroupId="team-a",
                                  MessageDeduplicationId="first")
        [dead] = await h.dead_letters(1)
        await h.drained()
        assert h.calls.counts["GetQueueUrl"] == 1
        assert dead["MessageAttributes"][MESSAGE_ID_ATTRIBUTE]["StringValue"] == message_id
        assert dead["Attributes"]["MessageGroupId"] == "team-a"  # its group is kept
        assert "not valid JSON" in dead["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"]


async def test_without_a_dead_letter_queue_a_poison_message_stays_and_is_logged_once(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    async with harness(emulator, moto_url, tmp_path, dead_letter=False, visibility_timeout=1,
                       extend_every=0.5) as h:
        message_id = await h.send(INVALID)
        with anyio.fail_after(15):  # received again after each visibility timeout
            while h.calls.received[message_id] < 3:
                await anyio.sleep(0.05)
        told = h.logs("error", message_id)
        assert len(told) == 1 and "no dead-letter queue" in told[0], h.logged
        assert "no-such-kind" in told[0]
        assert sum(await h.counts()) == 1  # still there
        assert h.calls.counts["DeleteMessage"] == 0 and h.calls.counts["SendMessage"] == 0
        assert await h.store.list_runs() == []
    assert creates(emulator) == 0


async def test_a_message_is_kept_hidden_while_it_is_handled(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    fetching, slow_s3 = anyio.Event(), anyio.Event()

    async def wait_for_the_test(params: dict[str, Any]) -> None:
        fetching.set()
        await slow_s3.wait()

    async with harness(emulator, moto_url, tmp_path, visibility_timeout=2, extend_every=0.5,
                       hooks={"GetObject": wait_for_the_test}) as h:
        uri = await h.put("slow.yaml", yaml_manifest())
        message_id = await h.send(uri)
        with anyio.fail_after(10):
            await fetching.wait()
        # a second consumer polls for more than twice the visibility timeout: the
        # message would be visible again by then if it were not extended
        with anyio.fail_after(20):
            for _ in range(5):
                other = await h.sqs("ReceiveMessage", QueueUrl=h.queue_url,
                                    WaitTimeSeconds=1, VisibilityTimeout=30)
                assert not other.get("Messages"), "another consumer received the message"
        assert h.calls.counts["ChangeMessageVisibilityBatch"] >= 4
        assert await h.store.get_run(run_id_for(message_id)) is None
        slow_s3.set()
        await h.run(run_id_for(message_id))
        await h.drained()
        extensions = h.calls.counts["ChangeMessageVisibilityBatch"]
        await anyio.sleep(1.5)  # three extension periods: none once it is handled
        assert h.calls.counts["ChangeMessageVisibilityBatch"] == extensions
        assert h.calls.received[message_id] == 1
        assert not h.logs("warning") and not h.logs("error")


async def test_a_message_is_never_deleted_while_its_visibility_is_being_changed(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    """A change of visibility that reached SQS after the message's delete would
    fail on the spent receipt handle (ReceiptHandleIsInvalid, logged as a
    warning). Extensions here are slow and nearly back to back, so a delete
    would often fall inside one; it never does, and none is sent after it."""
    extending, started = False, anyio.Event()
    crossed: list[str] = []

    async def slow_extension(params: dict[str, Any]) -> None:
        nonlocal extending
        extending = True
        started.set()
        try:
            await anyio.sleep(0.2)
        finally:
            extending = False

    async def fetch_once_extending(params: dict[str, Any]) -> None:
        with anyio.fail_after(10):  # the handling goes on during an extension
            await started.wait()

    async def delete(params: dict[str, Any]) -> None:
        if extending:
            crossed.append(params["ReceiptHandle"])

    async with harness(emulator, moto_url, tmp_path, visibility_timeout=2, extend_every=0.02,
                       hooks={"ChangeMessageVisibilityBatch": slow_extension,
                              "GetObject": fetch_once_extending, "DeleteMessage": delete}) as h:
        uri = await h.put("slow.yaml", yaml_manifest())
        message_ids = [await h.send(uri) for _ in range(3)]
        for message_id in message_ids:
            await h.run(run_id_for(message_id), (RunStatus.SUCCEEDED, RunStatus.FAILED))
        await h.drained()
        extensions = h.calls.counts["ChangeMessageVisibilityBatch"]
        assert extensions >= 1 and h.calls.counts["DeleteMessage"] == 3
        await anyio.sleep(0.3)  # many extension periods: none once they are deleted
        assert h.calls.counts["ChangeMessageVisibilityBatch"] == extensions
    assert crossed == []
    assert not h.logs("warning") and not h.logs("error")


async def test_sqs_errors_are_logged_and_the_loop_goes_on(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    refusals = 0

    async def refuse_twice(params: dict[str, Any]) -> None:
        nonlocal refusals
        if refusals < 2:
            refusals += 1
            raise aws_error("AccessDenied", "ReceiveMessage")

    async with harness(emulator, moto_url, tmp_path,
                       hooks={"ReceiveMessage": refuse_twice}) as h:
        message_id = await h.send(yaml_manifest())
        await h.run(run_id_for(message_id), (RunStatus.SUCCEEDED,))
        await h.drained()
        failures = h.logs("error", "receiving submissions from")
        assert len(failures) == 2 and "AccessDenied" in failures[0]
        assert h.logs("info", "answers again")


async def test_cancelling_the_consumer_makes_the_messages_it_held_visible_again(
    emulator: Emulator, moto_url: str, tmp_path: Path,
) -> None:
    fetching = anyio.Event()

    async def hang(params: dict[str, Any]) -> None:
        fetching.set()
        await anyio.sleep_forever()

    async with harness(emulator, moto_url, tmp_path, visibility_timeout=30, extend_every=10,
                       hooks={"GetObject": hang}) as h:
        message_id = await h.send(await h.put("held.yaml", yaml_manifest()))
        with anyio.fail_after(10):
            await fetching.wait()
        assert await h.counts() == (0, 1)
    # the daemon is gone: the message is visible at once, not after 30 s
    async with Aws(with_moto(emulator_config(emulator), moto_url)) as aws:
        answer = await aws.call("sqs", "ReceiveMessage", QueueUrl=h.queue_url,
                                WaitTimeSeconds=1)
    assert [m["MessageId"] for m in answer.get("Messages") or []] == [message_id]


# ---------------------------------------------------------------- decisions


def test_run_ids_come_from_the_message_id() -> None:
    message_id = "5fea7756-0ea4-451a-a703-a558b933e274"
    assert run_id_for(message_id) == "sqs-5fea77560ea4451aa703a558b933e274"
    assert run_id_for(message_id) == run_id_for(message_id)
    odd = run_id_for("not a uuid/at all")
    assert odd.startswith("sqs-") and len(odd) == 36 and valid_run_id(odd)
    assert valid_run_id(run_id_for(message_id))
    assert not valid_run_id("-x") and not valid_run_id("a" * 41) and not valid_run_id("été")


def test_message_bodies() -> None:
    text = yaml_manifest()
    assert parse_body(text) == Submission(manifest=text)
    as_json = json.dumps(manifest())
    assert parse_body(as_json) == Submission(manifest=as_json)
    assert parse_body(" s3://b-1/a/b.yaml\n") == Submission(uri="s3://b-1/a/b.yaml")
    assert parse_body(json.dumps({"manifest_uri": "s3://b-1/k", "on_cancel": "stop"})) == \
        Submission(uri="s3://b-1/k", on_cancel="stop")
    envelope = parse_body(json.dumps({"manifest": {"jobs": []}, "run_id": "r-1"}))
    assert envelope.run_id == "r-1" and json.loads(envelope.manifest or "") == {"jobs": []}
    bad = {
        "": "empty",
        "{oops": "not valid JSON",
        "s3://": "not an S3 URI",
        "s3://bucket": "not an S3 URI",
        json.dumps({"manifest": "", "run_id": "x"}): "manifest:",
        json.dumps({"manifest": "a", "manifest_uri": "s3://b-1/k"}): "not both",
        json.dumps({"manifest_uri": "https://example.com/m.yaml"}): "manifest_uri:",
        json.dumps({"manifest": "jobs: []", "run_id": "no spaces"}): "run_id:",
        json.dumps({"manifest": "jobs: []", "on_cancel": "later"}): "on_cancel:",
        json.dumps({"manifest": "jobs: []", "runid": "x"}): "unknown field",
    }
    for body, why in bad.items():
        with pytest.raises(Rejected) as caught:
            parse_body(body)
        assert caught.value.kind == "invalid-message"
        assert why in str(caught.value), (body, str(caught.value))


def test_dead_letter_queue_from_the_redrive_policy() -> None:
    policy = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:111122223333:subs-dlq",
                         "maxReceiveCount": 5})
    assert dead_letter_target(policy) == ("111122223333", "subs-dlq")
    assert dead_letter_target(None) is None and dead_letter_target("") is None
    assert dead_letter_target("{") is None
    assert dead_letter_target(json.dumps({"deadLetterTargetArn": "arn:aws:sns:x"})) is None
    assert sibling_queue_url("https://sqs.eu-west-1.amazonaws.com/111122223333/subs",
                             "subs-dlq") == "https://sqs.eu-west-1.amazonaws.com/111122223333/subs-dlq"


def test_the_error_attribute_fits_sqs_limits() -> None:
    rejected = Rejected("invalid-manifest", [f"jobs[{i}]: bad \x00 value" for i in range(5000)])
    big_body = "x" * (MESSAGE_LIMIT - 1000)
    message = {"MessageId": "m-1", "Body": big_body, "MessageAttributes": {
        f"a{i}": {"DataType": "String", "StringValue": "v" * 50, "StringListValues": []}
        for i in range(12)}}
    attributes = dead_letter_attributes(message, rejected)
    error = attributes[ERROR_ATTRIBUTE]["StringValue"]
    assert error.endswith("(truncated)") and "\x00" not in error
    size = len(big_body) + sum(len(k) + len(v["DataType"]) + len(v["StringValue"].encode())
                               for k, v in attributes.items())
    assert size <= MESSAGE_LIMIT and len(attributes) <= 10
    assert all(set(v) <= {"DataType", "StringValue", "BinaryValue"} for v in attributes.values())
    small = dead_letter_attributes({"MessageId": "m-2", "Body": "b"}, rejected)
    assert len(small[ERROR_ATTRIBUTE]["StringValue"].encode()) <= MAX_ERROR_BYTES
    assert sqs_text("é" * 10, 7) == "é" * 3  # no room for the mark: cut, never split
