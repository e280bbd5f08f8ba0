"""State changes published to EventBridge: checked end to end through moto's
EventBridge, a rule on ``aws.sagemaker`` and an SQS queue as its target."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from smrun.emulator import Emulator, EventFaults, FakeClock
from tests.test_emulator_lists import (
    IMAGE,
    ROLE,
    labeling_request,
    processing_request,
    training_request,
    transform_request,
    tuning_request,
)

START = FakeClock().now
TRAINING = "SageMaker Training Job State Change"
# a training job of 10 s: its statuses and when each began
TRAINING_STEPS = [
    ("InProgress", "Starting", 0.0),
    ("InProgress", "Downloading", 1.0),
    ("InProgress", "Training", 2.5),
    ("InProgress", "Uploading", 8.5),
    ("Completed", "Completed", 10.0),
]


class Inbox:
    """An SQS queue that a rule on source aws.sagemaker delivers to."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = sqs
        self.url = url

    async def take(self, wait: float = 0) -> list[dict[str, Any]]:
        """Every event in the queue now (or, with ``wait``, the first to come)."""
        taken: list[dict[str, Any]] = []
        while True:
            page = await self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=int(wait)
            )
            messages = page.get("Messages", [])
            if not messages:
                return taken
            taken += [json.loads(m["Body"]) for m in messages]
            await self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            wait = 0

    async def until(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        """Events as they come, until ``count`` came (or the timeout passed)."""
        taken: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(taken) < count and loop.time() < deadline:
            taken += await self.take(wait=1)
        return taken


@pytest.fixture
async def inbox(moto_url: str, aio_session: Any) -> AsyncIterator[Inbox]:
    async with aiohttp.ClientSession() as http, http.post(f"{moto_url}/moto-api/reset") as reset:
        assert reset.status == 200
    clients = {
        name: aio_session.create_client(
            name,
            region_name="us-east-1",
            endpoint_url=moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for name in ("sqs", "events")
    }
    async with clients["sqs"] as sqs, clients["events"] as events:
        queue = (await sqs.create_queue(QueueName="sagemaker-events"))["QueueUrl"]
        arn = (await sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        await events.put_rule(
            Name="sagemaker", EventPattern=json.dumps({"source": ["aws.sagemaker"]})
        )
        await events.put_targets(Rule="sagemaker", Targets=[{"Id": "queue", "Arn": arn}])
        yield Inbox(sqs, queue)


def statuses(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["detail"]["TrainingJobStatus"], e["detail"]["SecondaryStatus"]) for e in events]


async def run_to_the_end(emulator: Emulator, clock: FakeClock, seconds: float = 60) -> None:
    clock.advance(seconds)
    emulator.advance()
    await emulator.events.drain()


async def test_a_training_job_publishes_each_change_in_order_as_describe_shows_it(
    moto_url: str, inbox: Inbox, fake_clock: FakeClock, aws_client: Any
) -> None:
    async with Emulator(clock=fake_clock, events_url=moto_url) as emulator:
        sagemaker = await aws_client("sagemaker", emulator)
        request = training_request("job-1", duration="10")
        request["HyperParameters"] = {"epochs": "3"}
        request["Tags"].append({"Key": "team", "Value": "ml"})
        arn = (await sagemaker.create_training_job(**request))["TrainingJobArn"]
        await run_to_the_end(emulator, fake_clock)
        described = await sagemaker.describe_training_job(TrainingJobName="job-1")
        counters = emulator.events.counters
    events = await inbox.take()

    assert statuses(events) == [(s, secondary) for s, secondary, _at in TRAINING_STEPS]
    for event, (_s, _secondary, at) in zip(events, TRAINING_STEPS, strict=True):
        assert event["source"] == "aws.sagemaker"
        assert event["detail-type"] == TRAINING
        assert event["resources"] == [arn]
        assert event["region"] == "us-east-1"  # (moto leaves "account" out of what it delivers)
        when = datetime.fromtimestamp(int(START + at), timezone.utc)
        assert event["time"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
        detail = event["detail"]
        assert detail["TrainingJobName"] == "job-1" and detail["TrainingJobArn"] == arn
        # times in epoch milliseconds, as SageMaker's events carry them
        assert detail["CreationTime"] == round(START * 1000)
        assert detail["LastModifiedTime"] == round((START + at) * 1000)
        assert detail["HyperParameters"] == {"epochs": "3"}
        assert detail["Tags"]["team"] == "ml"
    transitions = [len(e["detail"]["SecondaryStatusTransitions"]) for e in events]
    assert transitions == [1, 2, 3, 4, 5]
    assert "TrainingEndTime" not in events[3]["detail"]

    final = events[-1]["detail"]  # the job as DescribeTrainingJob shows it at its end
    assert final["TrainingEndTime"] == round(described["TrainingEndTime"].timestamp() * 1000)
    for member in ("TrainingTimeInSeconds", "BillableTimeInSeconds", "ModelArtifacts"):
        assert final[member] == described[member]
    assert [t["Status"] for t in final["SecondaryStatusTransitions"]] == [
        t["Status"] for t in described["SecondaryStatusTransitions"]
    ]
    assert (counters.changes, counters.sent, counters.failed) == (5, 5, 0)
    assert 1 <= counters.calls <= 5


async def test_events_go_out_as_changes_happen_with_no_request_coming_in(
    moto_url: str, inbox: Inbox, aws_client: Any
) -> None:
    # the real clock: after the create, nothing but the emulator's own ticks
    async with Emulator(events_url=moto_url) as emulator:
        sagemaker = await aws_client("sagemaker", emulator)
        await sagemaker.create_training_job(**training_request("quick", duration="0.5"))
        events = await inbox.until(5)
        assert emulator.tick_error is None
    assert statuses(events) == [(s, secondary) for s, secondary, _at in TRAINING_STEPS]


async def test_every_kind_publishes_its_own_detail_type(
    moto_url: str, inbox: Inbox, fake_clock: FakeClock, aws_client: Any
) -> None:
    async with Emulator(clock=fake_clock, events_url=moto_url) as emulator:
        sagemaker = await aws_client("sagemaker", emulator)
        await sagemaker.create_model(
            ModelName="model-1", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE
        )
        await sagemaker.create_processing_job(
            **processing_request("prep", duration="4", outcome="Failed")
        )
        await sagemaker.create_transform_job(**transform_request("batch", duration="4"))
        await sagemaker.create_labeling_job(**labeling_request("label", duration="4"))
        await sagemaker.create_hyper_parameter_tuning_job(**tuning_request("tune", duration="4"))
        await sagemaker.create_endpoint_config(
            EndpointConfigName="config",
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "model-1",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        await sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="config")
        await run_to_the_end(emulator, fake_clock)
        await sagemaker.delete_endpoint(EndpointName="ep")
        await run_to_the_end(emulator, fake_clock)
    events = await inbox.take()

    def sequence(detail_type: str, status: str) -> list[str]:
        return [e["detail"][status] for e in events if e["detail-type"] == detail_type]

    assert sequence("SageMaker Processing Job State Change", "ProcessingJobStatus") == [
        "InProgress",
        "Failed",
    ]
    assert sequence("SageMaker Transform Job State Change", "TransformJobStatus") == [
        "InProgress",
        "Completed",
    ]
    assert sequence("SageMaker Ground Truth Labeling Job State Change", "LabelingJobStatus") == [
        "Initializing",
        "InProgress",
        "Completed",
    ]
    assert sequence(
        "SageMaker HyperParameter Tuning Job State Change", "HyperParameterTuningJobStatus"
    ) == ["InProgress", "Completed"]
    assert sequence("SageMaker Endpoint State Change", "EndpointStatus") == [
        "Creating",
        "InService",
        "Deleting",
    ]
    # the tuning job's child is a training job like any other
    child = [e for e in events if e["detail-type"] == TRAINING]
    assert child[-1]["detail"]["TuningJobArn"].endswith(":hyper-parameter-tuning-job/tune")
    assert len(child) == 5

    for event in events:
        detail = event["detail"]
        noun = {
            "SageMaker Processing Job State Change": "ProcessingJob",
            "SageMaker Transform Job State Change": "TransformJob",
            "SageMaker Ground Truth Labeling Job State Change": "LabelingJob",
            "SageMaker HyperParameter Tuning Job State Change": "HyperParameterTuningJob",
            "SageMaker Endpoint State Change": "Endpoint",
            TRAINING: "TrainingJob",
        }[event["detail-type"]]
        assert detail[f"{noun}Arn"] == event["resources"][0]
        assert detail[f"{noun}Name"] and detail[f"{noun}Status"]
        assert isinstance(detail["CreationTime"], int)
        assert isinstance(detail["LastModifiedTime"], int)
        assert detail["CreationTime"] <= detail["LastModifiedTime"]
        failed = detail[f"{noun}Status"] == "Failed"
        assert ("FailureReason" in detail) == failed


async def scenario(
    moto_url: str, inbox: Inbox, faults: EventFaults, aws_client: Any
) -> tuple[list[tuple[str, str]], Any]:
    clock = FakeClock()
    async with Emulator(clock=clock, events_url=moto_url, event_faults=faults) as emulator:
        sagemaker = await aws_client("sagemaker", emulator)
        await sagemaker.create_training_job(**training_request("job-1", duration="10"))
        await run_to_the_end(emulator, clock)
        counters = emulator.events.counters
    return statuses(await inbox.take()), counters


async def test_fault_knobs_duplicate_drop_and_reorder_repeatably(
    moto_url: str, inbox: Inbox, aws_client: Any
) -> None:
    steps = [(s, secondary) for s, secondary, _at in TRAINING_STEPS]

    twice, counters = await scenario(moto_url, inbox, EventFaults(duplicate=1.0), aws_client)
    assert twice == [step for step in steps for _ in range(2)]
    assert (counters.duplicated, counters.sent) == (5, 10)

    none, counters = await scenario(moto_url, inbox, EventFaults(drop=1.0), aws_client)
    assert none == [] and counters.dropped == 5 and counters.calls == 0

    # each event held back goes out after the next; a terminal one is never held
    swapped, counters = await scenario(moto_url, inbox, EventFaults(reorder=1.0), aws_client)
    assert swapped == [steps[1], steps[0], steps[3], steps[2], steps[4]]
    assert counters.reordered == 2

    # seeded: the same events dropped and doubled on every run (with seed 2,
    # Downloading and Completed are lost and Training comes twice)
    seeded = EventFaults(drop=0.5, duplicate=0.5, seed=2)
    first, counters = await scenario(moto_url, inbox, seeded, aws_client)
    assert first == [steps[0], steps[2], steps[2], steps[3]]
    assert (counters.dropped, counters.duplicated) == (2, 1)
    again, _ = await scenario(moto_url, inbox, seeded, aws_client)
    assert again == first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_failed_calls_and_entries_are_retried_then_counted(
    fake_clock: FakeClock, aws_client: Any
) -> None:
    # an EventBridge that fails its first call, then one entry of its second
    calls: list[list[dict[str, Any]]] = []

    async def put_events(request: web.Request) -> web.Response:
        assert request.headers["X-Amz-Target"] == "AWSEvents.PutEvents"
        assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
        entries = (await request.json())["Entries"]
        calls.append(entries)
        if len(calls) == 1:
            return web.json_response({"__type": "InternalException"}, status=500)
        results: list[dict[str, str]] = [{"EventId": f"e{i}"} for i in range(len(entries))]
        if len(calls) == 2:
            results[0] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
        body = {"FailedEntryCount": int(len(calls) == 2), "Entries": results}
        return web.json_response(body, content_type="application/x-amz-json-1.1")

    app = web.Application()
    app.router.add_post("/", put_events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with Emulator(clock=fake_clock, events_url=url) as emulator:
            sagemaker = await aws_client("sagemaker", emulator)
            await sagemaker.create_training_job(**training_request("job-1", duration="10"))
            await emulator.events.drain()
            counters = emulator.events.counters
            assert (counters.sent, counters.retried, counters.failed) == (1, 2, 0)
            assert [len(c) for c in calls] == [1, 1, 1]  # the same one event, three times
            assert json.loads(calls[2][0]["Detail"])["SecondaryStatus"] == "Starting"

            emulator.events_url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
            await run_to_the_end(emulator, fake_clock)
            assert counters.failed == 4  # the other four changes, each tried MAX_ATTEMPTS times
            assert counters.sent == 1
    finally:
        await runner.cleanup()


async def test_the_admin_api_and_the_cli_flag_set_the_endpoint(
    moto_url: str,
    inbox: Inbox,
    fake_emulator: Emulator,
    fake_clock: FakeClock,
    aws_client: Any,
    aio_session: Any,
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**training_request("before", duration="10"))
    async with aiohttp.ClientSession() as http:
        admin = f"{fake_emulator.url}/_emulator/events"
        async with http.get(admin) as response:
            report = await response.json()
        assert report["url"] is None and report["counters"]["changes"] == 0
        body = {"url": moto_url, "faults": {"duplicate": 1.0}}
        async with http.post(admin, json=body) as response:
            assert response.status == 200
            report = await response.json()
        assert report["url"] == moto_url and report["faults"]["duplicate"] == 1.0
        async with http.post(admin, json={"faults": {"sometimes": 1}}) as response:
            assert response.status == 400
        async with http.post(admin, json={"url": 7}) as response:
            assert response.status == 400
        await run_to_the_end(fake_emulator, fake_clock, 5)
        async with http.get(admin) as response:
            report = await response.json()
    # "before" was created before publishing began: its later changes only, twice each
    events = await inbox.take()
    assert statuses(events) == [
        (s, secondary) for s, secondary, at in TRAINING_STEPS if 0 < at <= 5 for _ in range(2)
    ]
    assert report["counters"]["sent"] == len(events) and report["pending"] == 0

    # smrun emulator --events-endpoint-url, in its own process, on the real clock
    proc, url = emulator_process("--events-endpoint-url", moto_url)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/_emulator/events") as response:
                assert (await response.json())["url"] == moto_url
        async with aio_session.create_client(
            "sagemaker",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ) as child:
            await child.create_training_job(**training_request("child", duration="0.5"))
        events = await inbox.until(5)
        assert [e["detail"]["TrainingJobName"] for e in events] == ["child"] * 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def emulator_process(*flags: str) -> tuple[subprocess.Popen[str], str]:
    """``smrun emulator --port 0 FLAGS...`` in a child process, and its URL."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smrun.cli", "emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    return proc, url
