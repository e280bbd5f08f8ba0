"""A daemon's run in a terminal: the live table and lines of ``smrun run``, and plain tables.

:func:`follow_run` reads the run's event stream (log lines included) and
hands each event to a :class:`~smrun.console.Console`, so a person sees a
run on a daemon as if it ran in their terminal, and a script gets the same
JSON lines. The exit code is that of ``smrun run``: 0 when the run
succeeded, 1 when it failed or was stopped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from smrun.console import Console
from smrun.daemon.client import Client
from smrun.events import Finished, from_record
from smrun.kfp import EXIT_FAILED, EXIT_OK
from smrun.types import JobResult

_EVENT_TYPES = ("submitted", "status", "log", "notice", "finished")


async def follow_run(daemon: Client, run_id: str, console: Console) -> int:
    """Show the run until it ends; its exit code."""
    run = await daemon.run(run_id)
    console.plan({job["job"]: job["kind"] for job in run.get("jobs", [])})
    results: dict[str, JobResult] = {}
    status = run["status"]
    try:
        async for event in daemon.events(run_id, logs=True):
            if event.type == "run":
                status = event.record.get("status", status)
                continue
            if event.type not in _EVENT_TYPES:
                continue
            parsed = from_record(event.record)
            if isinstance(parsed, Finished):
                results[parsed.job] = parsed.result
            console(parsed)
    finally:
        console.close()
    final = await daemon.run(run_id)
    status = final["status"]
    for job in final.get("jobs", []):  # jobs that ended before this client looked
        if job["job"] not in results and job.get("outcome"):
            results[job["job"]] = _result(job)
    order = [job["job"] for job in final.get("jobs", []) if job["job"] in results]
    console.summary({key: results[key] for key in order})
    return EXIT_OK if status == "succeeded" else EXIT_FAILED


def _result(job: dict[str, Any]) -> JobResult:
    return JobResult.from_dict({
        "job": job["job"], "kind": job["kind"], "name": job.get("name"),
        "outcome": job["outcome"], "status": job.get("status"),
        "failure_reason": job.get("failure_reason"), "outputs": job.get("outputs"),
        "details": job.get("details"), "arn": job.get("arn"), "attached": job.get("attached"),
    })


def log_text(record: dict[str, Any]) -> str:
    """One log line for a person: the job, its instance, the text."""
    return f"{record['job']} [{record.get('instance', '')}] {record['message']}"


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def runs_table(runs: Sequence[dict[str, Any]]) -> str:
    if not runs:
        return "no runs"
    rows = [(r["run_id"], r["status"], str(r["jobs_total"]),
             " ".join(f"{k}={v}" for k, v in sorted(r["counts"].items())), _when(r["created"]))
            for r in runs]
    return _table(("RUN", "STATUS", "JOBS", "STATES", "SUBMITTED"), rows)


def run_table(run: dict[str, Any]) -> str:
    head = f"run {run['run_id']}: {run['status']}" + (
        f" (held by {run['owner']})" if run.get("owner") else "")
    rows = [(j["job"], j["kind"], j["state"],
             (j.get("status") or "-") + (f" · {j['secondary']}" if j.get("secondary") else ""),
             j.get("failure_reason") or "") for j in run.get("jobs", [])]
    return head + "\n" + _table(("JOB", "KIND", "STATE", "STATUS", "REASON"), rows)
