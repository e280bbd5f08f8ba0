"""Daemon benchmark: one ``smrun daemon`` driving R runs of J training jobs
each, while C clients follow the runs' event streams and an API client asks
for runs.

    python -m bench.daemon --runs 20 --jobs 10 --clients 50 --duration 240

The emulator and the daemon each run in their own process; the daemon works
with **production timings** (``Settings()``, the budgets it would use in
us-east-1: 2 creates a second, so 200 jobs are all running about 100 s in).
Measured: the daemon's peak RSS and its CPU (from /proc); the latency of the
API under that load (``GET /v1/runs`` and ``GET /v1/runs/{id}``, p50/p95);
the SSE fan-out: every client gets every event of its run exactly once
(log lines included), and how late (the event's publication → the client
read it); and that every run succeeded. The last line printed is one JSON
object; above it, a readable summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from bench.fanout import IMAGE, ROLE, ROOT, child, percentiles
from smrun.daemon.client import SseParser

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs submitted (default 20)")
    parser.add_argument("--jobs", type=int, default=10, help="training jobs a run (default 10)")
    parser.add_argument("--instances", type=int, default=2, help="instances a job (default 2)")
    parser.add_argument("--duration", type=float, default=240.0,
                        help="seconds each job runs (default 240)")
    parser.add_argument("--lines", type=int, default=60,
                        help="log lines an instance writes (default 60)")
    parser.add_argument("--clients", type=int, default=50,
                        help="SSE clients, spread over the runs (default 50)")
    parser.add_argument("--api-rate", type=float, default=10.0,
                        help="API requests a second while the runs go (default 10)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser


def manifest(run: int, args: argparse.Namespace) -> str:
    jobs = []
    for j in range(args.jobs):
        jobs.append(f"""
  - name: train-{j}
    kind: training
    request:
      AlgorithmSpecification: {{TrainingImage: "{IMAGE}", TrainingInputMode: File}}
      HyperParameters: {{k: "{10 + j}", run: "{run}"}}
      OutputDataConfig: {{S3OutputPath: "s3://bench/daemon/{run}"}}
      ResourceConfig: {{InstanceType: ml.m5.large, InstanceCount: {args.instances},
                        VolumeSizeInGB: 10}}
      StoppingCondition: {{MaxRuntimeInSeconds: 3600}}
      Tags:
        - {{Key: "smrun:emulator:duration", Value: "{args.duration}"}}
        - {{Key: "smrun:emulator:log-lines", Value: "{args.lines}"}}""")
    return f"defaults:\n  region: us-east-1\n  role: {ROLE}\njobs:" + "".join(jobs) + "\n"


@contextmanager
def daemon_process(emulator: str, state: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smrun.cli", "daemon", "--listen", "127.0.0.1:0",
         "--state-dir", state, "--region", "us-east-1", "--timing", "default",
         "--endpoint-url", emulator, "--logs-endpoint-url", emulator,
         "--sts-endpoint-url", emulator],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on" in line:
                url = line.split("listening on ", 1)[1].split()[0]
                break
        else:
            raise RuntimeError("the daemon did not start")
        stream = proc.stderr  # read on, or a full pipe would block the daemon
        threading.Thread(target=lambda: [sys.stderr.write(line) for line in stream],
                         daemon=True).start()
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=120)


@dataclass
class Sampler:
    """The daemon's RSS and CPU, read from /proc once a second."""

    pid: int
    peak_rss: int = 0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, cpu s, rss)

    def read(self) -> tuple[float, int]:
        with open(f"/proc/{self.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        rss = int(fields[21]) * PAGE
        return cpu, rss

    async def run(self) -> None:
        while True:
            cpu, rss = self.read()
            self.peak_rss = max(self.peak_rss, rss)
            self.samples.append((time.time(), cpu, rss))
            await anyio.sleep(1.0)


@dataclass
class Follower:
    """One SSE client of one run: what it received, and how late."""

    run_id: str
    ids: list[int] = field(default_factory=list)
    lines: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)
    lag: list[float] = field(default_factory=list)
    reconnects: int = 0

    async def follow(self, session: aiohttp.ClientSession, url: str) -> None:
        last = 0
        while True:
            headers = {"Last-Event-ID": str(last)} if last else {}
            try:
                async with session.get(f"{url}/v1/runs/{self.run_id}/events",
                                       params={"logs": "1"}, headers=headers) as response:
                    parser = SseParser()
                    async for chunk in response.content.iter_any():
                        now = time.time()
                        for event_id, kind, data in parser.feed(chunk):
                            if kind == "end":
                                return
                            last = int(event_id or last)
                            self.ids.append(last)
                            record = json.loads(data)
                            self.lag.append(now - record["time"])
                            if kind == "log":
                                self.lines[(record["job"], record["stream"],
                                            record["timestamp"], record["message"])] += 1
            except (aiohttp.ClientError, ConnectionError):
                self.reconnects += 1
                await anyio.sleep(0.5)


async def api_load(session: aiohttp.ClientSession, url: str, run_ids: list[str],
                   rate: float, latencies: dict[str, list[float]], done: anyio.Event) -> None:
    rng = random.Random(7)
    while not done.is_set():
        if rng.random() < 0.5:
            what, path = "list", "/v1/runs?limit=50"
        else:
            what, path = "run", f"/v1/runs/{rng.choice(run_ids)}"
        started = time.perf_counter()
        async with session.get(url + path) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies[what].append(time.perf_counter() - started)
        await anyio.sleep(1 / rate)


async def drive(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    sampler = Sampler(pid)
    latencies: dict[str, list[float]] = {"list": [], "run": [], "submit": []}
    timeout = aiohttp.ClientTimeout(total=None)
    connector = aiohttp.TCPConnector(limit=args.clients + 20)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler.run)
            started = time.time()
            run_ids = []
            for run in range(args.runs):
                begun = time.perf_counter()
                async with session.post(f"{url}/v1/runs", json={
                    "manifest": manifest(run, args), "run_id": f"bench-{run}"}) as response:
                    body = await response.json()
                    assert response.status in (200, 201), body
                latencies["submit"].append(time.perf_counter() - begun)
                run_ids.append(body["run_id"])
            followers = [Follower(run_ids[i % len(run_ids)]) for i in range(args.clients)]
            done = anyio.Event()
            tg.start_soon(api_load, session, url, run_ids, args.api_rate, latencies, done)
            async with anyio.create_task_group() as clients:
                for follower in followers:
                    clients.start_soon(follower.follow, session, url)
            wall = time.time() - started
            done.set()
            statuses = {}
            for run_id in run_ids:
                async with session.get(f"{url}/v1/runs/{run_id}") as response:
                    statuses[run_id] = (await response.json())["status"]
            tg.cancel_scope.cancel()
    expected_lines = args.jobs * args.instances * args.lines
    per_client = [sum(f.lines.values()) for f in followers]
    duplicated = sum(sum(c - 1 for c in f.lines.values() if c > 1) for f in followers)
    ordered = all(f.ids == sorted(set(f.ids)) for f in followers)
    busy = [s for s in sampler.samples if s[0] >= started]
    cpu = busy[-1][1] - busy[0][1] if len(busy) > 1 else 0.0
    span = busy[-1][0] - busy[0][0] if len(busy) > 1 else 1.0
    return {
        "runs": args.runs, "jobs": args.runs * args.jobs, "clients": args.clients,
        "duration": args.duration, "lines_per_run": expected_lines,
        "statuses": dict(Counter(statuses.values())),
        "wall_seconds": round(wall, 1),
        "daemon": {"peak_rss_mib": round(sampler.peak_rss / 2**20, 1),
                   "cpu_seconds": round(cpu, 1), "cpu_percent": round(100 * cpu / span, 1)},
        "api_latency_ms": {k: percentiles([v * 1000 for v in vals])
                           for k, vals in latencies.items()},
        "api_requests": {k: len(v) for k, v in latencies.items()},
        "sse": {
            "every_line_once": all(n == expected_lines for n in per_client) and duplicated == 0,
            "lines_min": min(per_client), "lines_max": max(per_client),
            "duplicated": duplicated, "ids_increasing": ordered,
            "events_received": sum(len(f.ids) for f in followers),
            "reconnects": sum(f.reconnects for f in followers),
            "lag_seconds": percentiles([x for f in followers for x in f.lag]),
        },
        "ok": set(statuses.values()) == {"succeeded"},
    }


def render(report: dict[str, Any]) -> str:
    d, sse, api = report["daemon"], report["sse"], report["api_latency_ms"]
    return "\n".join([
        f"{report['runs']} runs, {report['jobs']} jobs, {report['clients']} SSE clients: "
        f"{report['statuses']} in {report['wall_seconds']} s",
        f"daemon: peak RSS {d['peak_rss_mib']} MiB, CPU {d['cpu_seconds']} s "
        f"({d['cpu_percent']}% of one core)",
        "API latency ms: " + ", ".join(f"{k} p50 {v.get('p50')} p95 {v.get('p95')}"
                                       for k, v in api.items()),
        f"SSE: every line once {sse['every_line_once']} ({sse['lines_min']}..{sse['lines_max']}"
        f" lines a client, {sse['duplicated']} duplicated), lag {sse['lag_seconds']}",
    ])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with ExitStack() as stack:
        emulator, _ = stack.enter_context(child(
            [sys.executable, "-m", "smrun.cli", "emulator", "--port", "0"], "the emulator"))
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="smrun-bench-"))
        url, proc = stack.enter_context(daemon_process(emulator, state))
        report = anyio.run(drive, args, url, proc.pid)
    print(render(report), file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0 if report["ok"] and report["sse"]["every_line_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
