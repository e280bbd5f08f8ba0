"""Daemon benchmark: one ``smrun daemon`` driving R runs of J training jobs
each, while C clients follow the runs' event streams and an API client asks
for runs.

    python -m bench.daemon --runs 20 --jobs 10 --clients 50 --duration 240
    python -m bench.daemon --daemons 2 --database auto ...   # two daemons, one PostgreSQL

The emulator and the daemon each run in their own process; the daemon works
with **production timings** (``Settings()``, the budgets it would use in
us-east-1: 2 creates a second, so 200 jobs are all running about 100 s in).
Measured: the daemon's peak RSS and its CPU (from /proc); the latency of the
API under that load (``GET /v1/runs`` and ``GET /v1/runs/{id}``, p50/p95);
the SSE fan-out: every client gets every event of its run exactly once
(log lines included), and how late (the event's publication → the client
read it); and that every run succeeded. The last line printed is one JSON
object; above it, a readable summary.

With ``--daemons N`` they share a PostgreSQL (``--database URL``, or ``auto``
for a throwaway server started as the tests start theirs): runs are submitted
to each in turn, a run's clients read it from each daemon in turn, and the SSE
lag is also given apart for the clients served by the daemon that drives
their run and those served by another one (told of its writes by NOTIFY).
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
    parser.add_argument("--daemons", type=int, default=1,
                        help="daemons sharing the runs (default 1; more need --database)")
    parser.add_argument("--database", help="a PostgreSQL URL for the daemons' store, or "
                        "'auto' for a throwaway server (default: SQLite in a state dir)")
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
def daemon_process(emulator: str, state: str,
                   owner: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    where = ["--database", state] if state.startswith("postgresql://") else ["--state-dir", state]
    proc = subprocess.Popen(
        [sys.executable, "-m", "smrun.cli", "daemon", "--listen", "127.0.0.1:0",
         *where, "--owner", owner, "--region", "us-east-1", "--timing", "default",
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


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL server in a temporary directory, as the tests start theirs
    (tests/postgres.py); a database on it, by URL."""
    from tests.postgres import SERVER_USER, Server, find_binaries

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit("--database auto needs the PostgreSQL server binaries (initdb, pg_ctl)")
    root = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="smrun-bench-pg-", dir="/tmp" if root else None) as d:
        if root:
            import pwd

            user = pwd.getpwnam(SERVER_USER)
            os.chown(d, user.pw_uid, user.pw_gid)
        server = Server(binaries, Path(d))
        server.init()
        server.start()
        try:
            yield server.url + server.create_database()
        finally:
            server.finish_background()
            server.stop()


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
    daemon: int = 0  # which daemon it reads from
    driver: str | None = None  # the daemon that drove the run (its run records say)
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
                            if kind == "run" and record.get("owner"):
                                self.driver = record["owner"]
                            if kind == "log":
                                self.lines[(record["job"], record["stream"],
                                            record["timestamp"], record["message"])] += 1
            except (aiohttp.ClientError, ConnectionError):
                self.reconnects += 1
                await anyio.sleep(0.5)


async def api_load(session: aiohttp.ClientSession, urls: list[str], run_ids: list[str],
                   rate: float, latencies: dict[str, list[float]], done: anyio.Event) -> None:
    rng = random.Random(7)
    while not done.is_set():
        if rng.random() < 0.5:
            what, path = "list", "/v1/runs?limit=50"
        else:
            what, path = "run", f"/v1/runs/{rng.choice(run_ids)}"
        started = time.perf_counter()
        async with session.get(rng.choice(urls) + path) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies[what].append(time.perf_counter() - started)
        await anyio.sleep(1 / rate)


async def drive(args: argparse.Namespace, urls: list[str], pids: list[int]) -> dict[str, Any]:
    samplers = [Sampler(pid) for pid in pids]
    latencies: dict[str, list[float]] = {"list": [], "run": [], "submit": []}
    timeout = aiohttp.ClientTimeout(total=None)
    connector = aiohttp.TCPConnector(limit=args.clients + 20)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        async with anyio.create_task_group() as tg:
            for sampler in samplers:
                tg.start_soon(sampler.run)
            started = time.time()
            run_ids = []
            for run in range(args.runs):
                begun = time.perf_counter()
                async with session.post(f"{urls[run % len(urls)]}/v1/runs", json={
                    "manifest": manifest(run, args), "run_id": f"bench-{run}"}) as response:
                    body = await response.json()
                    assert response.status in (200, 201), body
                latencies["submit"].append(time.perf_counter() - begun)
                run_ids.append(body["run_id"])
            # a run's followers take the daemons in turn: some read it from its
            # driver, some from another daemon
            followers = [Follower(run_ids[i % len(run_ids)], (i // len(run_ids)) % len(urls))
                         for i in range(args.clients)]
            done = anyio.Event()
            tg.start_soon(api_load, session, urls, run_ids, args.api_rate, latencies, done)
            async with anyio.create_task_group() as clients:
                for follower in followers:
                    clients.start_soon(follower.follow, session, urls[follower.daemon])
            wall = time.time() - started
            done.set()
            statuses = {}
            for run_id in run_ids:
                async with session.get(f"{urls[0]}/v1/runs/{run_id}") as response:
                    statuses[run_id] = (await response.json())["status"]
            tg.cancel_scope.cancel()
    expected_lines = args.jobs * args.instances * args.lines
    per_client = [sum(f.lines.values()) for f in followers]
    duplicated = sum(sum(c - 1 for c in f.lines.values() if c > 1) for f in followers)
    ordered = all(f.ids == sorted(set(f.ids)) for f in followers)
    daemons = [usage(sampler, started) for sampler in samplers]
    # a follower is served by its run's driver when it reads from the daemon
    # that drove the run (owners are named bench-<index>)
    by_driver = [x for f in followers if f.driver == f"bench-{f.daemon}" for x in f.lag]
    elsewhere = [x for f in followers if f.driver != f"bench-{f.daemon}" for x in f.lag]
    return {
        "runs": args.runs, "jobs": args.runs * args.jobs, "clients": args.clients,
        "duration": args.duration, "lines_per_run": expected_lines,
        "store": "postgresql" if args.database else "sqlite",
        "statuses": dict(Counter(statuses.values())),
        "wall_seconds": round(wall, 1),
        "daemon": daemons[0] if len(daemons) == 1 else {
            "peak_rss_mib": max(d["peak_rss_mib"] for d in daemons),
            "cpu_seconds": round(sum(d["cpu_seconds"] for d in daemons), 1),
            "cpu_percent": round(sum(d["cpu_percent"] for d in daemons), 1)},
        "daemons": daemons,
        "runs_driven": dict(Counter(str(d) for d in {f.run_id: f.driver
                                                     for f in followers}.values())),
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
            "lag_seconds_by_driver": percentiles(by_driver) if by_driver else None,
            "lag_seconds_by_another": percentiles(elsewhere) if elsewhere else None,
        },
        "ok": set(statuses.values()) == {"succeeded"},
    }


def usage(sampler: Sampler, started: float) -> dict[str, float]:
    """One daemon's peak RSS, and its CPU while the runs went."""
    busy = [s for s in sampler.samples if s[0] >= started]
    cpu = busy[-1][1] - busy[0][1] if len(busy) > 1 else 0.0
    span = busy[-1][0] - busy[0][0] if len(busy) > 1 else 1.0
    return {"peak_rss_mib": round(sampler.peak_rss / 2**20, 1),
            "cpu_seconds": round(cpu, 1), "cpu_percent": round(100 * cpu / span, 1)}


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
        *([f"SSE lag served by the run's driver {sse['lag_seconds_by_driver']}, "
           f"by another daemon {sse['lag_seconds_by_another']}"]
          if len(report["daemons"]) > 1 else []),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.daemons < 1 or (args.daemons > 1 and not args.database):
        parser.error("--daemons above 1 needs --database (they share a PostgreSQL)")
    with ExitStack() as stack:
        emulator, _ = stack.enter_context(child(
            [sys.executable, "-m", "smrun.cli", "emulator", "--port", "0"], "the emulator"))
        if args.database == "auto":
            state = stack.enter_context(throwaway_postgres())
        elif args.database:
            state = args.database
        else:
            state = stack.enter_context(tempfile.TemporaryDirectory(prefix="smrun-bench-"))
        daemons = [stack.enter_context(daemon_process(emulator, state, f"bench-{i}"))
                   for i in range(args.daemons)]
        report = anyio.run(drive, args, [url for url, _ in daemons],
                           [proc.pid for _, proc in daemons])
    print(render(report), file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0 if report["ok"] and report["sse"]["every_line_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
