"""What the API answers about runs and jobs, built from the store's records.

Plain functions over plain data: a run's record, its job rows, its status
events and its manifest in, JSON-ready dictionaries out. A job the manifest
names but that was not created yet is ``waiting``; one created and not ended
is ``running``; one that ended has its outcome as its state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from smrun.kind import Kind, console_links
from smrun.manifest import Manifest
from smrun.store import JobRecord, RunRecord, StoredEvent

WAITING = "waiting"
RUNNING = "running"
TIMELINE_TYPES = ("submitted", "status", "finished")


def run_view(run: RunRecord, jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A run as the API shows it; ``jobs`` are its job views."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["state"]] = counts.get(job["state"], 0) + 1
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "source": run.source,
        "created": run.created,
        "updated": run.updated,
        "ended": run.ended,
        "owner": run.owner,
        "stop_requested": run.stop_requested,
        "options": run.options,
        "jobs_total": len(jobs),
        "counts": counts,
        "summary": run.summary,
    }


def job_views(
    run: RunRecord,
    manifest: Manifest | None,
    rows: Iterable[JobRecord],
    timeline: Iterable[StoredEvent],
    kinds: Mapping[str, Kind],
    region: str,
) -> list[dict[str, Any]]:
    """Every job of the run, in manifest order (then any the manifest lacks)."""
    by_key = {row.job: row for row in rows}
    events: dict[str, list[StoredEvent]] = {}
    for event in timeline:
        events.setdefault(event.job, []).append(event)
    order = manifest.order() if manifest is not None else []
    order += [key for key in by_key if key not in set(order)]
    views = []
    for key in order:
        spec = manifest.jobs.get(key) if manifest is not None else None
        row = by_key.get(key) or JobRecord(run.run_id, key)
        kind_name = row.kind or (spec.kind if spec is not None else None) or ""
        views.append(job_view(
            row, kind_name, events.get(key, []), kinds.get(kind_name), region,
            needs=list(spec.needs) if spec is not None else [],
        ))
    return views


def job_view(
    row: JobRecord,
    kind_name: str,
    events: Sequence[StoredEvent],
    kind: Kind | None,
    region: str,
    *,
    needs: list[str],
) -> dict[str, Any]:
    result = row.result or {}
    timeline: list[dict[str, Any]] = []
    submitted = ended = None
    secondary = None
    for event in events:
        record = event.record
        if event.type == "submitted":
            submitted = submitted or record["time"]
            timeline.append({"time": record["time"], "status": "Created", "secondary": None})
        elif event.type == "status":
            secondary = record.get("secondary")
            timeline.append({"time": _began(record, timeline), "status": record["status"],
                             "secondary": secondary})
        elif event.type == "finished":
            ended = record["time"]
    if row.outcome:
        state = row.outcome
    elif row.name:
        state = RUNNING
    else:
        state = WAITING
    links: dict[str, str | None] = {"console": None, "logs": None}
    if kind is not None and row.name:
        found = console_links(region, kind, row.name)
        links = {"console": found.get("SageMaker console"), "logs": found.get("CloudWatch logs")}
    return {
        "job": row.job,
        "kind": kind_name,
        "name": row.name,
        "state": state,
        "status": row.status,
        "secondary": secondary if not row.outcome else None,
        "outcome": row.outcome,
        "failure_reason": result.get("failure_reason"),
        "outputs": result.get("outputs") or {},
        "details": result.get("details") or {},
        "arn": result.get("arn"),
        "submitted": submitted,
        "ended": ended if row.outcome else None,
        "attached": bool(result.get("attached")),
        "needs": needs,
        "timeline": timeline,
        "links": links,
    }


def _began(record: Mapping[str, Any], timeline: Sequence[Mapping[str, Any]]) -> float:
    """When a status began: when SageMaker says it changed (a phase a poll
    skipped is told late, but began earlier), never before the step before it
    nor after it was seen."""
    seen = float(record["time"])
    changed = record.get("changed")
    if not isinstance(changed, int | float):
        return seen
    floor = float(timeline[-1]["time"]) if timeline else float("-inf")
    return min(seen, max(floor, float(changed)))


def sse_block(event: StoredEvent) -> bytes:
    """One server-sent event: its id, its type and its record as JSON."""
    data = json.dumps(event.record, default=str, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()
