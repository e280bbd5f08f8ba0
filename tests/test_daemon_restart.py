"""Runs that outlive a daemon: SSE resumed with Last-Event-ID, a SIGKILL and a
restart, SIGTERM detaching (or stopping), and two daemons sharing one
PostgreSQL database under leases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from smrun.daemon.service import DaemonSettings
from smrun.emulator import Emulator
from tests.daemon_helpers import (
    DaemonHandle,
    DaemonProcess,
    daemon_on,
    free_port,
    get,
    read_sse,
    submit,
)

LINE = re.compile(r"\[(?P<instance>[\w-]+)\] line (?P<n>\d+)/(?P<total>\d+):")


def training_job(name: str, *, duration: float, lines: int, instances: int = 1) -> str:
    return f"""
  - name: {name}
    kind: training
    request:
      AlgorithmSpecification:
        TrainingImage: 382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1
        TrainingInputMode: File
      OutputDataConfig: {{S3OutputPath: "s3://bucket/out"}}
      ResourceConfig: {{InstanceType: ml.m5.large, InstanceCount: {instances},
                        VolumeSizeInGB: 10}}
      StoppingCondition: {{MaxRuntimeInSeconds: 3600}}
      Tags:
        - {{Key: "smrun:emulator:duration", Value: "{duration}"}}
        - {{Key: "smrun:emulator:log-lines", Value: "{lines}"}}
"""


def manifest(*jobs: str) -> str:
    return ("defaults:\n  region: us-east-1\n"
            "  role: arn:aws:iam::123456789012:role/SageMakerExecution\njobs:" + "".join(jobs))


def assert_every_line_once(records: list[dict[str, Any]], *, lines: int, instances: int) -> None:
    """Each instance's lines 1..lines, each exactly once."""
    seen = Counter()
    for record in records:
        found = LINE.search(record["message"])
        assert found, record
        seen[(found["instance"], int(found["n"]))] += 1
        assert int(found["total"]) == lines
    expected = {(f"algo-{i}", n) for i in range(1, instances + 1) for n in range(1, lines + 1)}
    assert set(seen) == expected, sorted(expected - set(seen))
    assert max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]


def training_jobs(emulator: Emulator) -> int:
    """The training jobs SageMaker holds (a resumed job's create is answered
    "already exists", so Create* calls are no count of resources)."""
    return len(emulator.sagemaker.kinds["training"].jobs)  # type: ignore[attr-defined]


async def wait_status(session: aiohttp.ClientSession, url: str, run_id: str,
                      statuses: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    handle = DaemonHandle(url)
    with anyio.fail_after(timeout):
        while True:
            try:
                status, run = await get(session, handle, f"/v1/runs/{run_id}")
            except aiohttp.ClientConnectionError:
                status, run = 0, None
            if status == 200 and run["status"] in statuses:
                return dict(run)
            await anyio.sleep(0.1)


async def wait_for_line(session: aiohttp.ClientSession, url: str, run_id: str, job: str) -> int:
    """The id of the first log line of ``job`` recorded (polling the stream)."""
    with anyio.fail_after(60):
        while True:
            events = await read_sse(session, f"{url}/v1/runs/{run_id}/jobs/{job}/logs?follow=0",
                                    headers={})
            if events:
                return events[0][0] or 0
            await anyio.sleep(0.1)


async def test_an_sse_client_that_reconnects_with_last_event_id_misses_nothing_and_repeats_nothing(
    emulator: Emulator, tmp_path: Path,
) -> None:
    text = manifest(training_job("a", duration=2, lines=12, instances=2),
                    training_job("b", duration=2, lines=8))
    async with daemon_on(emulator, tmp_path) as daemon, aiohttp.ClientSession() as session:
        status, run = await submit(session, daemon, text)
        assert status == 201
        events_url = f"{daemon.url}/v1/runs/{run['run_id']}/events?logs=1"
        first = await read_sse(session, events_url, headers={}, stop_after=5)
        resumed: list[Any] = []
        last = first[-1][0]
        while True:  # reconnect three events at a time, each time from the last id seen
            part = await read_sse(session, events_url, headers={}, last_event_id=last,
                                  stop_after=3)
            resumed += part
            if len(part) < 3:
                break
            last = part[-1][0]
        whole = await read_sse(session, events_url, headers={})
    ids = [e[0] for e in first + resumed]
    assert ids == [e[0] for e in whole]  # the same events, in the same order
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    logs = [e[2] for e in whole if e[1] == "log"]
    assert_every_line_once([r for r in logs if r["job"] == "a"], lines=12, instances=2)
    assert_every_line_once([r for r in logs if r["job"] == "b"], lines=8, instances=1)
    assert whole[-1][1] == "run" and whole[-1][2]["status"] == "succeeded"


async def test_a_daemon_killed_mid_run_resumes_with_one_resource_per_job_and_every_line_once(
    emulator: Emulator, tmp_path: Path,
) -> None:
    text = manifest(training_job("long", duration=6, lines=30, instances=2),
                    training_job("short", duration=2, lines=5))
    first = DaemonProcess(emulator, tmp_path / "state")
    url = await first.start()
    async with aiohttp.ClientSession() as session:
        handle = DaemonHandle(url)
        status, run = await submit(session, handle, text)
        assert status == 201, run
        run_id = run["run_id"]
        logs_url = "/v1/runs/{}/jobs/long/logs"
        # a client follows the long job's lines, until the daemon dies under it
        await wait_for_line(session, url, run_id, "long")
        before = await read_sse(session, url + logs_url.format(run_id) + "?follow=0",
                                headers={})
        await first.kill()
        assert emulator.count("StopTrainingJob") == 0
        second = DaemonProcess(emulator, tmp_path / "state")
        url = await second.start()
        try:
            after = await read_sse(session, url + logs_url.format(run_id), headers={},
                                   last_event_id=before[-1][0])
            done = await wait_status(session, url, run_id, ("succeeded", "failed", "stopped"))
        finally:
            assert await second.terminate() == 0
    assert done["status"] == "succeeded", done
    assert training_jobs(emulator) == 2  # one resource per job, none twice
    lines = [e[2] for e in before + after]
    assert_every_line_once(lines, lines=30, instances=2)
    assert {j["job"]: j["state"] for j in done["jobs"]} == {"long": "Succeeded",
                                                            "short": "Succeeded"}


async def test_sigterm_detaches_the_jobs_and_the_next_daemon_finishes_them(
    emulator: Emulator, tmp_path: Path,
) -> None:
    text = manifest(training_job("slow", duration=4, lines=10))
    first = DaemonProcess(emulator, tmp_path / "state")
    url = await first.start()
    async with aiohttp.ClientSession() as session:
        handle = DaemonHandle(url)
        _, run = await submit(session, handle, text)
        await wait_for_line(session, url, run["run_id"], "slow")
        assert await first.terminate() == 0
        assert emulator.count("StopTrainingJob") == 0  # detached, still running in SageMaker
        assert "detached" in "".join(first.stderr)
        second = DaemonProcess(emulator, tmp_path / "state")
        url = await second.start()
        try:
            done = await wait_status(session, url, run["run_id"], ("succeeded", "failed"))
            lines = await read_sse(session, f"{url}/v1/runs/{run['run_id']}/jobs/slow/logs",
                                   headers={})
        finally:
            await second.terminate()
    assert done["status"] == "succeeded"
    assert training_jobs(emulator) == 1
    assert_every_line_once([e[2] for e in lines], lines=10, instances=1)


async def test_on_shutdown_stop_stops_the_jobs_and_the_run_ends_stopped(
    emulator: Emulator, tmp_path: Path,
) -> None:
    text = manifest(training_job("slow", duration=60, lines=10))
    daemon = DaemonProcess(emulator, tmp_path / "state", extra=("--on-shutdown", "stop"))
    url = await daemon.start()
    async with aiohttp.ClientSession() as session:
        handle = DaemonHandle(url)
        _, run = await submit(session, handle, text)
        await wait_for_line(session, url, run["run_id"], "slow")
        assert await daemon.terminate() == 0
        assert emulator.count("StopTrainingJob") == 1
        again = DaemonProcess(emulator, tmp_path / "state")
        url = await again.start()
        try:
            status, stopped = await get(session, DaemonHandle(url),
                                        f"/v1/runs/{run['run_id']}")
        finally:
            await again.terminate()
    assert status == 200 and stopped["status"] == "stopped"
    assert stopped["jobs"][0]["state"] == "StoppedByUs"
    assert training_jobs(emulator) == 1


async def test_two_daemons_on_one_postgresql_share_ten_runs_and_finish_a_killed_ones(
    emulator: Emulator, postgres_url: str,
) -> None:
    lease = ("--lease-ttl", "3", "--heartbeat", "0.3")
    a = DaemonProcess(emulator, postgres_url, extra=(*lease, "--owner", "daemon-a"))
    b = DaemonProcess(emulator, postgres_url, extra=(*lease, "--owner", "daemon-b"))
    url_a, url_b = await a.start(), await b.start()
    run_ids = []
    async with aiohttp.ClientSession() as session:
        for i in range(10):  # submitted through either daemon
            handle = DaemonHandle(url_a if i % 2 else url_b)
            status, run = await submit(session, handle, manifest(
                training_job(f"train-{i}", duration=5, lines=6)), run_id=f"shared-{i}")
            assert status == 201, run
            run_ids.append(run["run_id"])
        # both daemons hold some of the runs, then one of them dies
        with anyio.fail_after(60):
            while True:
                _, listed = await get(session, DaemonHandle(url_b),
                                      "/v1/runs?status=running&limit=50")
                owners = {r["owner"] for r in listed["runs"]}
                if {"daemon-a", "daemon-b"} <= owners:
                    break
                await anyio.sleep(0.1)
        await a.kill()
        try:
            finished = [await wait_status(session, url_b, run_id, ("succeeded", "failed"),
                                          timeout=120) for run_id in run_ids]
            streams = [await read_sse(session, f"{url_b}/v1/runs/{run_id}/events?logs=1",
                                      headers={}) for run_id in run_ids]
        finally:
            await b.terminate()
    assert [r["status"] for r in finished] == ["succeeded"] * 10
    assert training_jobs(emulator) == 10  # none run twice
    for run_id, events in zip(run_ids, streams, strict=True):
        holders = [e[2]["owner"] for e in events if e[1] == "run" and e[2]["status"] == "running"]
        assert holders and set(holders) <= {"daemon-a", "daemon-b"}, (run_id, holders)
        assert_every_line_once([e[2] for e in events if e[1] == "log"], lines=6, instances=1)
    taken_over = [e for events in streams for e in events
                  if e[1] == "run" and e[2]["status"] == "running"]
    # a killed daemon's runs were taken up again by the other one
    assert any(r[2]["owner"] == "daemon-b" for r in taken_over)
    assert len(taken_over) > 10


async def test_a_daemon_streams_a_run_that_another_drives_as_its_events_commit(
    emulator: Emulator, postgres_url: str,
) -> None:
    """The stream is served by the daemon that does not hold the run, and its
    poll of the store is made a minute long: the lines and the end arrive
    anyway, each as it commits, because PostgreSQL tells it (LISTEN/NOTIFY)."""
    slow_poll = replace(DaemonSettings.fast(), remote_poll=60.0)
    async with daemon_on(emulator, postgres_url, owner="daemon-a", settings=slow_poll) as a, \
            daemon_on(emulator, postgres_url, owner="daemon-b", settings=slow_poll) as b, \
            aiohttp.ClientSession() as session:
        status, run = await submit(session, a, manifest(
            training_job("train", duration=2, lines=5)), run_id="pushed")
        assert status == 201, run
        with anyio.fail_after(30):
            while run.get("owner") is None:
                await anyio.sleep(0.05)
                run = (await get(session, a, "/v1/runs/pushed"))[1]
        other = b if run["owner"] == "daemon-a" else a
        # told of nothing, the stream would look again after 60 s (the poll)
        # or 15 s (the keepalive, when the store says it pushes)
        with anyio.fail_after(12):
            events = await read_sse(session, f"{other.url}/v1/runs/pushed/events?logs=1",
                                    headers=other.headers())
        async with session.get(f"{other.url}/metrics", headers=other.headers()) as response:
            assert "\nsmrun_store_listening 1.0\n" in await response.text()
    assert [e[2]["status"] for e in events if e[1] == "run"][-1] == "succeeded"
    assert_every_line_once([e[2] for e in events if e[1] == "log"], lines=5, instances=1)


async def test_smrun_logs_follow_resumes_across_a_daemon_restart_without_a_gap(
    emulator: Emulator, tmp_path: Path,
) -> None:
    port = free_port()
    text = manifest(training_job("long", duration=6, lines=24, instances=2))
    first = DaemonProcess(emulator, tmp_path / "state", listen=f"127.0.0.1:{port}")
    url = await first.start()
    async with aiohttp.ClientSession() as session:
        _, run = await submit(session, DaemonHandle(url), text)
        await wait_for_line(session, url, run["run_id"], "long")
    env = {**os.environ, "SMRUN_DAEMON_URL": url}
    env.pop("SMRUN_TOKEN", None)
    follower = subprocess.Popen(
        [sys.executable, "-m", "smrun.cli", "logs", run["run_id"], "long", "--follow",
         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).resolve().parent.parent)
    assert follower.stdout is not None
    stream = follower.stdout
    printed: list[str] = []
    with anyio.fail_after(60):  # it is following: a line came through
        printed.append(await anyio.to_thread.run_sync(stream.readline))
    await first.kill()  # the connection drops under the client, which keeps trying
    second = DaemonProcess(emulator, tmp_path / "state", listen=f"127.0.0.1:{port}")
    await second.start()
    try:
        with anyio.fail_after(90):  # the rest, from the same buffered stream
            rest = await anyio.to_thread.run_sync(stream.read)
        assert follower.stderr is not None
        errors = follower.stderr.read()
        follower.wait(timeout=30)
    finally:
        await second.terminate()
    assert follower.returncode == 0, errors
    assert "Traceback" not in errors
    records = [json.loads(line) for line in [*printed, *rest.splitlines()] if line.strip()]
    assert_every_line_once(records, lines=24, instances=2)
