"""Fan-out benchmark: one process, one Runner, N concurrent training jobs.

    python bench/fanout.py                      # 100 jobs, AWS-sized budgets
    python bench/fanout.py -n 300 --rates sagemaker.create=20
    python bench/fanout.py -n 1000 --rates sagemaker=inf,logs=inf --json out.json

Starts the emulator (in this process by default, or as a child process with
``--emulator process`` so that the figures are the runner's alone), submits N
training jobs through one :class:`runner.Runner` with ``Settings.fast()``
timings, waits for all of them and reports: wall time, jobs completed per
second, AWS calls by operation and per job, log lines delivered against the
lines written, peak RSS, CPU time, how long calls waited for budget tokens,
how late the runner saw each job end, and how late the event loop woke up.

Budgets default to the runner's own (sized under AWS quotas). The emulator is
not AWS, so ``--rates`` and ``--bursts`` override them per family
(``family=value,...``; a family is ``sagemaker.describe``, ``logs.get``, ...,
a service name alone sets all its families, ``inf`` lifts the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from runner import (
    AwsConfig,
    Event,
    Finished,
    LogLine,
    Outcome,
    Runner,
    Settings,
    StatusChanged,
    Submitted,
)
from runner.budget import DEFAULT_RATES, Budgets

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})


# ----------------------------------------------------------------- arguments


def parse_pairs(text: str, known_families: Iterable[str]) -> dict[str, float]:
    """``"sagemaker.describe=50,logs=inf"`` -> per-family values; a service name
    alone (``logs``) stands for each of its known families."""
    families = list(known_families)
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, raw = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: expected family=value")
        value = float(raw)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{item!r}: must be positive")
        name = name.strip()
        if "." in name:
            values[name] = value
        else:
            matched = [f for f in families if f.startswith(name + ".")]
            if not matched:
                raise argparse.ArgumentTypeError(f"{name!r}: no such service or family")
            values.update(dict.fromkeys(matched, value))
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=100, help="training jobs (default 100)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds each job runs on the emulator (default 5)")
    parser.add_argument("--instances", type=int, default=2, help="instances per job (default 2)")
    parser.add_argument("--lines", type=int, default=5,
                        help="log lines per instance (default 5)")
    parser.add_argument("--rates", default="",
                        help="budget rates, family=calls/s,... (see the module docstring)")
    parser.add_argument("--bursts", default="", help="budget bursts, family=tokens,...")
    parser.add_argument("--settings", default="",
                        help="Settings.fast() overrides, name=seconds,... (e.g. poll_max=2)")
    parser.add_argument("--pool", type=int, default=100,
                        help="HTTP connections per client (AwsConfig.max_pool_connections)")
    parser.add_argument("--emulator", choices=("in-process", "process"), default="in-process",
                        help="where the emulator runs (default: in this process)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    return parser


def settings_from(text: str) -> Settings:
    overrides: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, raw = item.partition("=")
        overrides[name.strip()] = float(raw)
    return Settings.fast(**overrides)


# ----------------------------------------------------------------- the jobs


def training_request(index: int, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": {"k": str(10 + index % 10), "feature_dim": "784"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://my-bucket/mnist/train",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://my-bucket/fanout/output"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": args.instances,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [
            {"Key": "smrun:emulator:duration", "Value": str(args.duration)},
            {"Key": "smrun:emulator:log-lines", "Value": str(args.lines)},
        ],
    }


@dataclass
class Tally:
    """What the bus delivered, counted as it goes by (no event is kept)."""

    lines: Counter[str] = field(default_factory=Counter)
    submitted: dict[str, float] = field(default_factory=dict)
    terminal: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)  # SageMaker's CreationTime
    ended: dict[str, float] = field(default_factory=dict)  # SageMaker's end time
    outcomes: Counter[str] = field(default_factory=Counter)

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogLine):
            self.lines[event.job] += 1
        elif isinstance(event, Submitted):
            self.submitted[event.job] = event.time
        elif isinstance(event, StatusChanged):
            if event.status in TERMINAL and event.job not in self.terminal:
                self.terminal[event.job] = event.time
        elif isinstance(event, Finished):
            self.finished[event.job] = event.time
            if event.result.created is not None:
                self.created[event.job] = event.result.created.timestamp()
            if event.result.ended is not None:
                self.ended[event.job] = event.result.ended.timestamp()
            self.outcomes[event.result.outcome.value] += 1


@dataclass
class LoopLag:
    """How late a 50 ms sleep wakes up: the event loop's responsiveness under load."""

    period: float = 0.05
    samples: list[float] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await anyio.sleep(self.period)
            self.samples.append(time.perf_counter() - started - self.period)


@asynccontextmanager
async def in_process_emulator() -> AsyncIterator[str]:
    from runner.emulator import Emulator

    async with Emulator() as emulator:
        yield emulator.url


@contextmanager
def emulator_process() -> Iterator[str]:
    """``smrun emulator`` in a child process: its URL, until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ----------------------------------------------------------------- the run


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(at(0.95), 3),
        "max": round(ordered[-1], 3),
    }


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def bench(args: argparse.Namespace, url: str | None) -> dict[str, Any]:
    rates = parse_pairs(args.rates, DEFAULT_RATES)
    bursts = parse_pairs(args.bursts, DEFAULT_RATES)
    settings = settings_from(args.settings)
    tally = Tally()
    lag = LoopLag()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_before = cpu_seconds(resource.RUSAGE_SELF)

    emulator: AbstractAsyncContextManager[str] = (
        nullcontext(url) if url is not None else in_process_emulator()
    )
    async with emulator as url:
        config = AwsConfig(
            region="us-east-1",
            endpoint_url=url,
            logs_endpoint_url=url,
            static_credentials=("bench", "bench"),
            max_pool_connections=args.pool,
        )
        budgets = Budgets(rates, bursts=bursts)
        async with anyio.create_task_group() as watchdog:
            watchdog.start_soon(lag.run)
            started = time.time()
            async with Runner(config, settings=settings, budgets=budgets, sinks=[tally]) as runner:
                jobs = [
                    await runner.submit(f"job-{i:04d}", "training", training_request(i, args))
                    for i in range(args.jobs)
                ]
                results = [await job.wait() for job in jobs]
                ended = time.time()
                assert runner.aws is not None
                calls = dict(sorted(runner.aws.stats.calls.items()))
                stats = runner.stats()
            watchdog.cancel_scope.cancel()

    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu_before
    wall = ended - started
    expected_lines = args.jobs * args.instances * args.lines
    delivered = sum(tally.lines.values())
    short = sorted(j for j in tally.finished if tally.lines[j] != args.instances * args.lines)
    total_calls = sum(calls.values())
    seen_late = [tally.terminal[j] - tally.ended[j] for j in tally.terminal if j in tally.ended]
    drained_in = [tally.finished[j] - tally.terminal[j] for j in tally.terminal]
    return {
        "jobs": args.jobs,
        "job": {"duration": args.duration, "instances": args.instances, "lines": args.lines},
        "emulator": args.emulator,
        "settings": {k: v for k, v in asdict(settings).items() if isinstance(v, float)},
        "wall_seconds": round(wall, 2),
        "all_created_after_seconds": round(max(tally.created.values(), default=started) - started,
                                           2),
        "jobs_per_second": round(args.jobs / wall, 2),
        "outcomes": dict(tally.outcomes),
        "succeeded": sum(r.outcome is Outcome.SUCCEEDED for r in results),
        "log_lines": {
            "expected": expected_lines,
            "delivered": delivered,
            "ok": delivered == expected_lines and not short,
            "jobs_short": short[:10],
        },
        "calls": {
            "total": total_calls,
            "per_job": round(total_calls / args.jobs, 1),
            "per_second": round(total_calls / wall, 1),
            "by_operation": {op: [n, round(n / args.jobs, 1)] for op, n in calls.items()},
            **{k: v for k, v in stats["aws"].items() if k != "calls"},
        },
        "budgets": {
            family: {
                "acquired": s.acquired,
                "wait_seconds": round(s.wait_seconds, 1),
                "wait_per_call_ms": round(1000 * s.wait_seconds / max(1, s.acquired), 1),
                "max_rate": s.max_rate,
                "throttled": s.throttled,
            }
            for family, s in stats["budgets"].items()
        },
        "terminal_seen_late_seconds": percentiles(seen_late),
        "drain_seconds": percentiles(drained_in),
        "loop_lag_seconds": percentiles(lag.samples),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_mib": round(rss_before / 1024, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu_per_job_ms": round(1000 * cpu / args.jobs, 1),
        "cpu_utilisation": round(cpu / wall, 2),
        "emulator_process_cpu_seconds": None,  # filled in once the process has ended
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def render(report: Mapping[str, Any]) -> str:
    lines = [
        f"{report['jobs']} training jobs x {report['job']['instances']} instances x "
        f"{report['job']['lines']} lines, {report['job']['duration']} s each "
        f"(emulator {report['emulator']})",
        f"wall {report['wall_seconds']} s (last job created after "
        f"{report['all_created_after_seconds']} s), "
        f"{report['jobs_per_second']} jobs/s; outcomes {report['outcomes']}",
        f"log lines {report['log_lines']['delivered']}/{report['log_lines']['expected']} "
        f"({'ok' if report['log_lines']['ok'] else 'MISSING OR EXTRA'})",
        f"AWS calls {report['calls']['total']} ({report['calls']['per_job']}/job, "
        f"{report['calls']['per_second']}/s), retries {report['calls']['retries']}, "
        f"throttles {report['calls']['throttles']}",
    ]
    for op, (count, per_job) in report["calls"]["by_operation"].items():
        lines.append(f"  {op:<28} {count:>8} {per_job:>8}/job")
    lines.append("budget waits (family: calls, total wait, mean wait per call, rate)")
    for family, b in report["budgets"].items():
        lines.append(
            f"  {family:<20} {b['acquired']:>8} {b['wait_seconds']:>9} s "
            f"{b['wait_per_call_ms']:>8} ms  {b['max_rate']}/s"
        )
    lines += [
        f"terminal status seen late by {report['terminal_seen_late_seconds']} s",
        f"terminal status to result (log drain) {report['drain_seconds']} s",
        f"event loop lag {report['loop_lag_seconds']} s",
        f"peak RSS {report['peak_rss_mib']} MiB (before the run {report['rss_before_mib']} MiB); "
        f"CPU {report['cpu_seconds']} s ({report['cpu_per_job_ms']} ms/job, "
        f"{report['cpu_utilisation']} of one core)"
        + (
            f"; emulator process CPU {report['emulator_process_cpu_seconds']} s"
            if report["emulator_process_cpu_seconds"] is not None
            else ""
        ),
        f"machine: {report['machine']['cpus']} CPUs, Python {report['machine']['python']}, "
        f"{report['machine']['platform']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.emulator == "process":
        children_before = cpu_seconds(resource.RUSAGE_CHILDREN)
        with emulator_process() as url:
            report = asyncio.run(bench(args, url))
        # a child's CPU time is counted once it has been waited for
        emulator_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - children_before
        report["emulator_process_cpu_seconds"] = round(emulator_cpu, 2)
    else:
        report = asyncio.run(bench(args, None))
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["succeeded"] == args.jobs and report["log_lines"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
