"""The events strategy end to end, with no shortcut: the emulator publishes its
state changes to moto's EventBridge, moto's rule delivers them to moto's SQS
queue (made by ``setup_events``), and the runner reads the queue."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from smrun import JobResult, Outcome, Settings
from smrun.aws import Aws, AwsConfig
from smrun.emulator import Emulator, EventFaults
from smrun.emulator.jobs import LATE_INGESTION
from smrun.events import Event, StatusChanged
from smrun.handlers import KINDS
from smrun.watch.setup import setup_events
from tests.helpers import local_runner
from tests.test_runner import training_request

_names = itertools.count()
ORDER = ["Starting", "Downloading", "Training", "Uploading", "Completed", "Failed"]


def with_moto(config: AwsConfig, moto: str) -> AwsConfig:
    return dataclasses.replace(config, sqs_endpoint_url=moto, events_endpoint_url=moto)


@pytest.fixture
async def queue(moto_url: str) -> AsyncIterator[str]:
    config = AwsConfig(region="us-east-1", endpoint_url=moto_url, sqs_endpoint_url=moto_url,
                       events_endpoint_url=moto_url, static_credentials=("testing", "testing"))
    async with Aws(config) as aws:
        made = await setup_events(aws, name=f"smrun-e2e-{next(_names)}", kinds=KINDS)
    yield made.queue_url


def settings(**overrides: float) -> Settings:
    return Settings.fast(drain_grace=LATE_INGESTION + 0.2, **overrides)


async def run_jobs(emulator: Emulator, moto: str, queue: str, settings: Settings,
                   events: list[Event]) -> dict[str, JobResult]:
    outcomes = {"ok": None, "bad": "Failed", "also-ok": None}
    runner = local_runner(emulator, settings=settings, watch="events", events_queue_url=queue,
                          sinks=[events.append])
    runner.engine._aws_config = with_moto(runner.engine._aws_config, moto)
    async with runner:
        jobs = {key: await runner.submit(key, "training", training_request(
            duration=1.0, outcome=outcome, reason="bad data" if outcome else None))
            for key, outcome in outcomes.items()}
        return {key: await job.wait() for key, job in jobs.items()}


def outcomes_of(results: dict[str, JobResult]) -> dict[str, Outcome]:
    return {key: result.outcome for key, result in results.items()}


def statuses(events: list[Event], job: str) -> list[str]:
    return [e.secondary or e.status for e in events
            if isinstance(e, StatusChanged) and e.job == job]


async def test_state_changes_come_from_the_queue(moto_url: str, queue: str) -> None:
    async with Emulator(events_url=moto_url) as emulator:
        events: list[Event] = []
        # the reconciling list would take a minute: every change seen came as an event
        results = await run_jobs(emulator, moto_url, queue, settings(events_reconcile=60),
                                 events)
        listed = emulator.count("ListTrainingJobs")
        described = emulator.count("DescribeTrainingJob")
    assert outcomes_of(results) == {"ok": Outcome.SUCCEEDED, "bad": Outcome.FAILED,
                                    "also-ok": Outcome.SUCCEEDED}
    assert results["bad"].failure_reason == "bad data"
    assert results["ok"].outputs["model_artifact_url"].startswith("s3://bucket/out/")
    assert listed == 1  # the first reconciling pass, at the first subscription
    # a training event mirrors the describe, outputs included: the events told all
    assert described == 0
    assert statuses(events, "ok")[-1] == "Completed"


async def test_duplicated_and_reordered_events_never_move_a_job_back(
    moto_url: str, queue: str
) -> None:
    faults = EventFaults(duplicate=1.0, reorder=0.5, seed=7)
    async with Emulator(events_url=moto_url, event_faults=faults) as emulator:
        events: list[Event] = []
        outcomes = outcomes_of(await run_jobs(emulator, moto_url, queue,
                                              settings(events_reconcile=60), events))
        assert emulator.events is not None
        report = emulator.events.report()
    assert report["counters"]["duplicated"] > 0 and report["counters"]["reordered"] > 0
    assert outcomes["bad"] is Outcome.FAILED and outcomes["ok"] is Outcome.SUCCEEDED
    for job in ("ok", "bad", "also-ok"):
        seen = statuses(events, job)
        assert len(seen) == len(set(seen)), seen  # each change once
        assert seen == sorted(seen, key=ORDER.index), seen  # never backwards


async def test_the_reconcile_poll_catches_lost_events(moto_url: str, queue: str) -> None:
    async with Emulator(events_url=moto_url, event_faults=EventFaults(drop=1.0, seed=1)) as emu:
        events: list[Event] = []
        outcomes = outcomes_of(await run_jobs(emu, moto_url, queue,
                                              settings(events_reconcile=0.5), events))
        listed = emu.count("ListTrainingJobs")
    assert outcomes == {"ok": Outcome.SUCCEEDED, "bad": Outcome.FAILED,
                        "also-ok": Outcome.SUCCEEDED}
    assert listed > 1


def test_the_cli_refuses_events_without_a_queue() -> None:
    done = subprocess.run([sys.executable, "-m", "smrun.cli", "run", "--local", "--watch",
                           "events", "examples/quickstart.yaml"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--watch events needs --events-queue-url" in done.stderr


def test_events_setup_and_teardown_from_the_cli(moto_url: str) -> None:
    name = f"smrun-cli-{next(_names)}"
    args = ["--region", "us-east-1", "--endpoint-url", moto_url, "--sts-endpoint-url", moto_url,
            "--logs-endpoint-url", moto_url,
            "--sqs-endpoint-url", moto_url, "--events-endpoint-url", moto_url, "--name", name]
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PATH": ""}
    cli = [sys.executable, "-m", "smrun.cli", "events"]
    first = subprocess.run([*cli, "setup", *args], capture_output=True, text=True, timeout=60,
                           env=env)
    assert first.returncode == 0, first.stderr
    assert "--events-queue-url http" in first.stdout
    again = subprocess.run([*cli, "setup", *args], capture_output=True, text=True, timeout=60,
                           env=env)
    assert again.returncode == 0 and again.stdout != first.stdout  # found, not created
    gone = subprocess.run([*cli, "teardown", *args], capture_output=True, text=True, timeout=60,
                          env=env)
    assert gone.returncode == 0, gone.stderr
