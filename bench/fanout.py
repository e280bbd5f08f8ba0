"""Fan-out benchmark: one process, one Runner, N concurrent training jobs.

    python -m bench.fanout --jobs 1000 --instances 2 --duration 120 --lines 50 \\
        --strategy list --create-rate 20

The emulator runs in its own process (so its CPU is not the runner's). For
``--strategy events`` ``smrun events setup`` makes the rule and the queue in
the emulator's own EventBridge and SQS, which deliver its state changes to the
queue the runner reads (moto's, tried first, saturated at about 15 events a
second). The runner works with **production timings**
(``Settings()``) and the budgets it would use in us-east-1; only the create
rate may be raised (``--create-rate``), to load the emulator quickly.

The last line printed is one JSON object: outcomes and wall time; detection
lag (SageMaker's end time → the runner saw the terminal status) and result
lag (end time → the job's result); log lines expected, delivered and
duplicated, and their latency (the line's timestamp → printed); AWS calls per
job by operation; the peak per-second rate of each operation as the emulator
counted it, against its budget; the runner's CPU and peak RSS, and the
emulator's CPU. Above it, a readable summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from smrun import AwsConfig, Event, Finished, LogLine, Outcome, Settings, StatusChanged
from smrun.budget import Budgets, Priority, family_of
from smrun.engine import Runner
from smrun.handlers import KINDS
from smrun.manifest import DEFAULT_MAX_MATRIX, Manifest, load_manifest

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
REGION = "us-east-1"
CREDENTIALS = ("bench", "bench")
STRATEGIES = ("auto", "describe", "list", "events")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", "-n", type=int, default=100, help="training jobs (default 100)")
    parser.add_argument("--instances", type=int, default=2, help="instances per job (default 2)")
    parser.add_argument("--duration", type=float, default=120.0,
                        help="seconds each job runs (default 120)")
    parser.add_argument("--lines", type=int, default=50, help="log lines per instance (default 50)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="how the runner watches status (default auto)")
    parser.add_argument("--create-rate", type=float,
                        help="raise the Create* budget to this many calls/s (and its burst)")
    parser.add_argument("--settings", default="",
                        help="overrides of the production Settings(), name=value,... "
                        "(recorded in the report; the targets are for none)")
    parser.add_argument("--matrix", action="store_true",
                        help="run the jobs as one manifest with a matrix of N items "
                        "(through run_manifest) instead of N submits")
    parser.add_argument("--max-parallel", type=int,
                        help="with --matrix: the matrix's max_parallel")
    parser.add_argument("--quota", action="append", default=[], metavar="NAME=N",
                        help="an account quota the emulator enforces (repeatable), e.g. "
                        "'ml.m5.large for training job usage=400'")
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser


def settings_from(text: str) -> Settings:
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, raw = item.partition("=")
        overrides[name.strip()] = int(raw) if raw.strip().isdigit() else float(raw)
    return Settings(**overrides)


def training_request(index: int, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": {"k": str(10 + index % 10), "feature_dim": "784"},
        "InputDataConfig": [{
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": "s3://my-bucket/mnist/train"}},
        }],
        "OutputDataConfig": {"S3OutputPath": "s3://my-bucket/fanout/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": args.instances,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [
            {"Key": "smrun:emulator:duration", "Value": str(args.duration)},
            {"Key": "smrun:emulator:log-lines", "Value": str(args.lines)},
        ],
    }


# ----------------------------------------------------------------- what the bus shows


@dataclass
class Tally:
    """What the bus delivered, counted as it goes by (log lines are not kept)."""

    lines: Counter[str] = field(default_factory=Counter)
    seen: set[tuple[str, str, int, str]] = field(default_factory=set)
    duplicated: int = 0
    latency: list[float] = field(default_factory=list)
    terminal: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogLine):
            key = (event.job, event.stream, event.timestamp, event.message)
            if key in self.seen:
                self.duplicated += 1
            else:
                self.seen.add(key)
                self.lines[event.job] += 1
            self.latency.append(event.time - event.timestamp / 1000.0)
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


# ----------------------------------------------------------------- child processes


@contextmanager
def child(argv: list[str], what: str, *, quiet: bool = False
          ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A child process that prints its URL on its first line; (url, process)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            stderr=subprocess.DEVNULL if quiet else None)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"{what} did not start (printed {url!r})")
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def admin(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}/_emulator/{path}", timeout=30) as response:
        return json.load(response)


class CountingBudgets(Budgets):
    """The runner's budgets, counting the calls let go in each second of the
    runner's clock: what the runner sent, beside what the emulator saw arrive."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.let_go: dict[str, Counter[int]] = {}

    async def acquire(self, service: str, operation: str,
                      priority: Priority = Priority.LIVE) -> None:
        await super().acquire(service, operation, priority)
        self.let_go.setdefault(operation, Counter())[int(time.time())] += 1

    def peaks(self) -> dict[str, int]:
        return {op: max(seconds.values()) for op, seconds in sorted(self.let_go.items())}


# ----------------------------------------------------------------- figures


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    return {"p50": round(statistics.median(ordered), 2), "p95": round(at(0.95), 2),
            "max": round(ordered[-1], 2)}


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def peak_rates(operations: Mapping[str, Any], budgets: CountingBudgets
               ) -> dict[str, dict[str, Any]]:
    """Per operation the emulator served: its peak calls in one second (as they
    arrived; ``sent_peak``: as the runner let them go), against the rate of the
    budget family it draws from."""
    limits = {f: s.max_rate for f, s in budgets.stats().items()}
    sent = budgets.peaks()
    out: dict[str, dict[str, Any]] = {}
    for operation, row in sorted(operations.items()):
        service = _service_of(operation)
        family = family_of(service, operation)
        budget = limits.get(family)
        peak = int(row.get("peak_per_second", 0))
        out[operation] = {"peak": peak, "sent_peak": sent.get(operation), "family": family,
                          "budget": budget, "over": budget is not None and peak > budget + 1e-9}
    return out


# ----------------------------------------------------------------- the run


async def drive(args: argparse.Namespace, url: str) -> dict[str, Any]:
    settings = settings_from(args.settings)
    rates: dict[str, float] = {}
    bursts: dict[str, float] = {}
    if args.create_rate:
        rates["sagemaker.create"] = bursts["sagemaker.create"] = args.create_rate
    budgets = CountingBudgets(rates, bursts=bursts, region=REGION)
    config = AwsConfig(region=REGION, endpoint_url=url, logs_endpoint_url=url,
                       sts_endpoint_url=url, static_credentials=CREDENTIALS,
                       max_pool_connections=100, sqs_endpoint_url=url, events_endpoint_url=url)
    tally = Tally()
    queue_url: str | None = None
    if args.strategy == "events":
        queue_url = await events_queue(config)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_before = cpu_seconds(resource.RUSAGE_SELF)
    started = time.time()
    runner = Runner(config, kinds=KINDS, settings=settings, budgets=budgets, sinks=[tally],
                    watch=args.strategy, events_queue_url=queue_url)
    async with runner:
        if args.matrix:
            await runner.run_manifest(matrix_manifest(args))
        else:
            jobs = [await runner.submit(f"job-{i:05d}", "training", training_request(i, args))
                    for i in range(args.jobs)]
            for job in jobs:
                await job.wait()
        ended = time.time()
        refusals = runner.engine.capacity.refusals
        assert runner.engine.aws is not None
        calls = dict(sorted(runner.engine.aws.stats.calls.items()))
        stats = runner.engine.stats()
        events = runner.engine.events
        queue = dataclasses.asdict(events.stats) if events is not None else None
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu_before
    wall = ended - started
    counted = admin(url, "rates")
    published = admin(url, "events") if args.strategy == "events" else None
    # creation time: from the start to the last job's SageMaker CreationTime
    creation = max(tally.created.values(), default=started) - started

    expected = args.jobs * args.instances * args.lines
    delivered = sum(tally.lines.values())
    short = sorted(j for j in tally.finished if tally.lines[j] != args.instances * args.lines)
    detection = [tally.terminal[j] - tally.ended[j] for j in tally.terminal if j in tally.ended]
    result_lag = [tally.finished[j] - tally.ended[j] for j in tally.finished if j in tally.ended]
    sagemaker_calls = {op: n for op, n in calls.items() if not _is_logs(op) and not _is_other(op)}
    logs_reads = {op: n for op, n in calls.items() if _is_logs(op)}
    return {
        "jobs": args.jobs,
        "job": {"instances": args.instances, "duration": args.duration, "lines": args.lines},
        "strategy": args.strategy,
        "settings": "production" if not args.settings else args.settings,
        "create_rate": args.create_rate,
        "outcomes": dict(tally.outcomes),
        "ok": tally.outcomes.get(Outcome.SUCCEEDED.value, 0) == args.jobs,
        "wall_seconds": round(wall, 1),
        "creation_seconds": round(creation, 1),
        "wall_target_seconds": round(args.duration + creation + 30, 1),
        "detection_lag_seconds": percentiles(detection),
        "result_lag_seconds": percentiles(result_lag),
        "log_lines": {"expected": expected, "delivered": delivered,
                      "duplicated": tally.duplicated,
                      "exactly_once": delivered == expected and not short and not tally.duplicated,
                      "jobs_short": short[:10]},
        "log_latency_seconds": percentiles(tally.latency),
        "calls_per_job": {
            "sagemaker": round(sum(sagemaker_calls.values()) / args.jobs, 2),
            "logs_reads": round(sum(logs_reads.values()) / args.jobs, 2),
            "by_operation": {op: round(n / args.jobs, 3) for op, n in calls.items()},
        },
        "peak_rates": peak_rates(counted.get("operations", {}), budgets),
        "throttled": stats["aws"].get("throttles", 0),
        "events_queue": queue,
        "runner": {
            "cpu_seconds": round(cpu, 1),
            "cpu_share_of_one_core": round(cpu / wall, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_mib": round(rss_before / 1024, 1),
        },
        "matrix": matrix_report(args, url, refusals) if args.matrix else None,
        "emulator": {"cpu_seconds": counted.get("cpu_seconds"),
                     "requests": counted.get("requests"),
                     "events_published": published},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }


_SQS = {"ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "GetQueueAttributes",
        "SetQueueAttributes", "CreateQueue", "GetQueueUrl", "ListQueues", "DeleteQueue"}
_EVENTS = {"PutRule", "PutTargets", "DescribeRule", "ListTargetsByRule", "RemoveTargets",
           "DeleteRule", "PutEvents"}


def _service_of(operation: str) -> str:
    """Which service an operation the emulator counted belongs to."""
    if _is_logs(operation) or operation.endswith("LogEvents"):
        return "logs"
    if operation == "GetCallerIdentity":
        return "sts"
    if operation in _SQS:
        return "sqs"
    if operation in _EVENTS:
        return "events"
    return "sagemaker"


def matrix_manifest(args: argparse.Namespace) -> Manifest:
    """One training job with a matrix of ``args.jobs`` items."""
    request = training_request(0, args)
    request["HyperParameters"]["k"] = "{{ matrix.k }}"
    job: dict[str, Any] = {"name": "sweep", "kind": "training",
                           "matrix": {"k": [str(10 + i) for i in range(args.jobs)]},
                           "request": request}
    if args.max_parallel:
        job["max_parallel"] = args.max_parallel
    return load_manifest(json.dumps({"jobs": [job]}), kinds=KINDS, source="<bench>",
                         max_matrix=max(args.jobs, DEFAULT_MAX_MATRIX))


def matrix_report(args: argparse.Namespace, url: str, refusals: int) -> dict[str, Any]:
    """Concurrency as the emulator recorded it, against max_parallel and the quotas."""
    seen = admin(url, "concurrency")
    training = seen["families"]["training"]
    return {
        "max_parallel": args.max_parallel,
        "quotas": args.quota,
        "peak_concurrent_jobs": training["jobs"]["peak"],
        "peak_instances": training["instances"]["peak"],
        "resource_limit_exceeded_absorbed": refusals,
        "refused_by_quota": seen.get("refused", {}),
    }


def _is_logs(operation: str) -> bool:
    return operation in {"GetLogEvents", "FilterLogEvents", "DescribeLogStreams"}


def _is_other(operation: str) -> bool:
    return operation == "GetCallerIdentity" or operation in _SQS or operation in _EVENTS


async def events_queue(config: AwsConfig) -> str:
    """The rule and queue in the emulator's EventBridge and SQS (``smrun events setup``)."""
    from smrun.aws import Aws
    from smrun.watch.setup import setup_events

    async with Aws(config) as aws:
        made = await setup_events(aws, kinds=KINDS)
    return made.queue_url


def render(report: Mapping[str, Any]) -> str:
    lines = [
        f"{report['jobs']} training jobs x {report['job']['instances']} instances x "
        f"{report['job']['lines']} lines, {report['job']['duration']:.0f} s each; "
        f"strategy {report['strategy']}, settings {report['settings']}",
        f"outcomes {report['outcomes']}; wall {report['wall_seconds']} s "
        f"(target {report['wall_target_seconds']} s; all created after "
        f"{report['creation_seconds']} s)",
        f"detection lag {report['detection_lag_seconds']} s; "
        f"result lag {report['result_lag_seconds']} s",
        f"log lines {report['log_lines']['delivered']}/{report['log_lines']['expected']}, "
        f"{report['log_lines']['duplicated']} duplicated; latency "
        f"{report['log_latency_seconds']} s",
        f"calls per job: SageMaker {report['calls_per_job']['sagemaker']}, "
        f"CloudWatch reads {report['calls_per_job']['logs_reads']}",
    ]
    for op, per_job in report["calls_per_job"]["by_operation"].items():
        lines.append(f"  {op:<34} {per_job:>8}/job")
    lines.append("peak calls in one second, against the budget:")
    for operation, row in report["peak_rates"].items():
        lines.append(f"  {operation:<28} {row['peak']:>5} (sent {row['sent_peak']}) / "
                     f"{row['budget']} ({row['family']})"
                     f"{'  OVER' if row['over'] else ''}")
    if report.get("matrix"):
        lines.append(f"matrix: {report['matrix']}")
    r = report["runner"]
    lines.append(f"runner CPU {r['cpu_seconds']} s ({r['cpu_share_of_one_core']} of one core), "
                 f"peak RSS {r['peak_rss_mib']} MiB; emulator CPU "
                 f"{report['emulator']['cpu_seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with ExitStack() as stack:
        quotas = [arg for quota in args.quota for arg in ("--quota", quota)]
        url, _ = stack.enter_context(child(
            [sys.executable, "-m", "smrun.cli", "emulator", "--port", "0", *quotas],
            "the emulator"))
        report = anyio.run(drive, args, url)
    print(render(report), file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0 if report["ok"] and report["log_lines"]["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
