"""The events strategy with the emulator alone: ``setup_events`` makes the rule
and queues on the emulator's own EventBridge and SQS, the emulator's SageMaker
publishes its state changes to its own bus, and the runner's EventQueue reads
them from its own queue. No moto, no network."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from smrun import Outcome, Settings
from smrun.aws import Aws, AwsConfig
from smrun.emulator import Emulator, EventFaults, FaultConfig
from smrun.emulator.jobs import LATE_INGESTION
from smrun.events import Event, StatusChanged
from smrun.handlers import KINDS
from smrun.watch import Update, newer
from smrun.watch.events import EventQueue, EventQueueError
from smrun.watch.setup import DLQ, QUEUE, RULE, TARGET, EventsSetup, setup_events, teardown_events
from tests.conftest import ENV, SMRUN
from tests.helpers import emulator_config, local_runner
from tests.test_restart import admin
from tests.test_runner import training_request

EVERYTHING = (RULE, DLQ, QUEUE, TARGET)
# a training job's statuses, as each event carries them
SUCCEEDS = [("InProgress", "Starting"), ("InProgress", "Downloading"),
            ("InProgress", "Training"), ("InProgress", "Uploading"), ("Completed", "Completed")]
FAILS = [("InProgress", "Starting"), ("InProgress", "Downloading"),
         ("InProgress", "Training"), ("Failed", "Failed")]
JOBS = {"ok": None, "bad": "Failed", "also-ok": None}  # name -> the emulator's outcome tag
_names = itertools.count()


def on_emulator(emulator: Emulator) -> AwsConfig:
    """Every service, SQS and EventBridge included, at the emulator."""
    return dataclasses.replace(emulator_config(emulator), sqs_endpoint_url=emulator.url,
                               events_endpoint_url=emulator.url)


@pytest.fixture
async def aws(emulator: Emulator) -> AsyncIterator[Aws]:
    async with Aws(on_emulator(emulator)) as aws:
        yield aws


async def set_up(aws: Aws) -> EventsSetup:
    return await setup_events(aws, name=f"smrun-local-{next(_names)}", kinds=KINDS)


async def start_jobs(aws: Aws, prefix: str) -> dict[str, str]:
    """The jobs of JOBS, started; their names by key."""
    names = {key: f"{prefix}-{key}" for key in JOBS}
    for key, outcome in JOBS.items():
        request = training_request(duration=1.0, outcome=outcome)
        await aws.call("sagemaker", "CreateTrainingJob", TrainingJobName=names[key], **request)
    return names


async def read_until(queue: EventQueue, done: Callable[[], bool], timeout: float = 30) -> None:
    """Poll ``queue`` until ``done()`` (or fail after ``timeout`` seconds)."""
    async def rounds() -> None:
        while not done():
            await queue.poll_once()
    await asyncio.wait_for(rounds(), timeout)


def by_job(updates: list[Update]) -> dict[str, list[tuple[str, str | None]]]:
    seen: dict[str, list[tuple[str, str | None]]] = {}
    for update in updates:
        seen.setdefault(update.name, []).append((update.status, update.secondary))
    return seen


def expected(names: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    return {names[key]: FAILS if outcome else SUCCEEDS for key, outcome in JOBS.items()}


async def test_setup_on_the_emulator_is_idempotent_and_teardown_removes_it(
    emulator: Emulator, aws: Aws
) -> None:
    first = await set_up(aws)
    assert sorted(first.created) == sorted(EVERYTHING)
    assert first.queue_url == f"{emulator.url}/{emulator.account}/{first.name}"
    assert emulator.events.local  # a rule with a target: the own bus listens
    again = await setup_events(aws, name=first.name, kinds=KINDS)
    assert not again.changed and sorted(again.found) == sorted(EVERYTHING)
    attributes = emulator.sqs.queues[first.name].settings
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": first.dlq_arn, "maxReceiveCount": 5}
    assert attributes["VisibilityTimeout"] == "60"
    gone = await teardown_events(aws, name=first.name)
    assert sorted(gone.removed) == sorted(EVERYTHING)
    assert not emulator.events.local and emulator.sqs.queues == {} and emulator.bus.rules == {}


async def test_every_state_change_reaches_the_queue_in_order(emulator: Emulator, aws: Aws) -> None:
    made = await set_up(aws)
    updates: list[Update] = []
    queue = EventQueue(aws.call, made.queue_url, KINDS, updates.append, wait_seconds=1, batch=10)
    names = await start_jobs(aws, "in-order")
    await read_until(queue, lambda: len(updates) == len(SUCCEEDS) * 2 + len(FAILS))

    assert by_job(updates) == expected(names)
    assert queue.stats.deleted == len(updates) and queue.stats.unparsed == 0
    assert emulator.events.counters.sent == len(updates)
    assert emulator.bus.counters.delivered == len(updates)
    attributes = await aws.call("sqs", "GetQueueAttributes", QueueUrl=made.queue_url,
                                AttributeNames=["ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible"])
    assert set(attributes["Attributes"].values()) == {"0"}  # every message was deleted


async def test_duplicated_and_reordered_events_all_arrive() -> None:
    faults = EventFaults(duplicate=1.0, reorder=0.5, seed=7)
    async with Emulator(event_faults=faults) as emulator, Aws(on_emulator(emulator)) as aws:
        made = await set_up(aws)
        updates: list[Update] = []
        queue = EventQueue(aws.call, made.queue_url, KINDS, updates.append, wait_seconds=1)
        names = await start_jobs(aws, "faulty")
        total = 2 * (len(SUCCEEDS) * 2 + len(FAILS))
        await read_until(queue, lambda: len(updates) == total)
        counters = emulator.events.counters

    assert counters.duplicated == total // 2 and counters.reordered > 0
    seen = by_job(updates)
    for job, steps in expected(names).items():
        assert Counter(seen[job]) == Counter(steps * 2)  # every change, twice
    # the reorder fault held some back: at least one job saw a change after a later one
    assert any(seen[job] != sorted(seen[job], key=steps.index)
               for job, steps in expected(names).items())
    latest: dict[str, Update] = {}
    for update in updates:  # as the dispatcher applies them
        if newer(latest.get(update.name), update):
            latest[update.name] = update
    assert {job: latest[job].status for job in names.values()} == {
        names["ok"]: "Completed", names["bad"]: "Failed", names["also-ok"]: "Completed"}


async def test_the_runner_follows_its_jobs_by_the_emulators_own_events(emulator: Emulator) -> None:
    async with Aws(on_emulator(emulator)) as aws:
        made = await set_up(aws)
    events: list[Event] = []
    runner = local_runner(emulator, watch="events", events_queue_url=made.queue_url,
                          sinks=[events.append],
                          settings=Settings.fast(drain_grace=LATE_INGESTION + 0.2,
                                                 events_reconcile=60))
    runner.engine._aws_config = on_emulator(emulator)
    async with runner:
        jobs = {key: await runner.submit(key, "training", training_request(
            duration=1.0, outcome=outcome, reason="bad data" if outcome else None))
            for key, outcome in JOBS.items()}
        results = {key: await job.wait() for key, job in jobs.items()}

    assert {key: r.outcome for key, r in results.items()} == {
        "ok": Outcome.SUCCEEDED, "bad": Outcome.FAILED, "also-ok": Outcome.SUCCEEDED}
    assert results["bad"].failure_reason == "bad data"
    # each change came as an event: nothing was described, listed once (the first reconcile)
    assert emulator.count("DescribeTrainingJob") == 0
    assert emulator.count("ListTrainingJobs") == 1
    assert emulator.count("ReceiveMessage") > 0
    seen = [e.secondary or e.status for e in events
            if isinstance(e, StatusChanged) and e.job == "ok"]
    assert seen[-1] == "Completed"


async def test_a_message_nobody_can_read_moves_to_the_dead_letter_queue(
    emulator: Emulator, aws: Aws
) -> None:
    made = await set_up(aws)
    # one of our detail-types without a job name: the EventQueue leaves it alone
    body = json.dumps({"source": "aws.sagemaker", "detail-type": KINDS["training"].event_type,
                       "detail": {"TrainingJobStatus": "Completed"}})
    await aws.call("sqs", "SendMessage", QueueUrl=made.queue_url, MessageBody=body)
    updates: list[Update] = []
    # visible again at once after each receive, so that the redrive needs no waiting
    queue = EventQueue(aws.call, made.queue_url, KINDS, updates.append, wait_seconds=0,
                       visibility_timeout=0)
    received = [await queue.poll_once() for _ in range(6)]

    assert received == [1, 1, 1, 1, 1, 0]  # maxReceiveCount 5: the sixth receive moved it
    assert queue.stats.unparsed == 5 and updates == []
    dead = await aws.call("sqs", "ReceiveMessage", QueueUrl=made.dlq_url,
                          MessageSystemAttributeNames=["All"])
    [message] = dead["Messages"]
    assert message["Body"] == body
    assert message["Attributes"]["DeadLetterQueueSourceArn"] == made.queue_arn
    assert message["Attributes"]["ApproximateReceiveCount"] == "6"


def manifest(tmp_path: Path) -> Path:
    request = training_request(duration=1.0)
    request.pop("RoleArn")
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({
        "defaults": {"region": "us-east-1", "role": "arn:aws:iam::123456789012:role/R"},
        "jobs": [{"name": f"train-{n}", "kind": "training", "request": request}
                 for n in range(2)],
    }))
    return path


def test_setup_and_run_from_the_cli_against_the_emulator_alone(
    emulator_url: str, tmp_path: Path
) -> None:
    endpoints = ["--region", "us-east-1"] + [
        arg for flag in ("--endpoint-url", "--logs-endpoint-url", "--sts-endpoint-url",
                         "--sqs-endpoint-url", "--events-endpoint-url")
        for arg in (flag, emulator_url)]
    setup = subprocess.run([*SMRUN, "events", "setup", *endpoints], capture_output=True,
                           text=True, env=ENV, timeout=60)
    assert setup.returncode == 0, setup.stderr
    queue_url = setup.stdout.rsplit("--events-queue-url ", 1)[1].strip()
    assert queue_url == f"{emulator_url}/123456789012/smrun-events"

    run = subprocess.run(
        [*SMRUN, "run", str(manifest(tmp_path)), *endpoints, "--watch", "events",
         "--events-queue-url", queue_url, "--timing", "fast",
         "--state-dir", str(tmp_path / "state"), "--output-json", str(tmp_path / "out.json")],
        capture_output=True, text=True, env=ENV, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["ok"] is True and sorted(results["jobs"]) == ["train-0", "train-1"]
    report = admin(emulator_url, "events")
    assert report["url"] is None and report["local"] is True
    assert report["counters"]["sent"] >= 2 * len(SUCCEEDS)
    assert report["bus"]["delivered"] == report["counters"]["sent"]
    calls = Counter(r["operation"] for r in admin(emulator_url, "requests"))
    # the runner read its events and deleted each (a describe may still come when
    # the one-second reconciling list of --timing fast sees an end first)
    assert calls["ReceiveMessage"] > 0
    assert calls["DeleteMessageBatch"] + calls["DeleteMessage"] > 0
    assert calls["DescribeTrainingJob"] <= 2


async def test_a_reader_denied_the_queue_is_told_what_to_allow(
    emulator: Emulator, aws: Aws
) -> None:
    made = await set_up(aws)
    emulator.faults = FaultConfig(deny=frozenset({"sqs:ReceiveMessage"}))
    queue = EventQueue(aws.call, made.queue_url, KINDS, lambda update: None, wait_seconds=0)
    with pytest.raises(EventQueueError) as raised:
        await queue.poll_once()
    assert "access denied" in raised.value.problem and "sqs:ReceiveMessage" in raised.value.fix
