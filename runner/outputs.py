"""Results written for machines: a JSON summary, and per-output files for KFP."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smrun.types import JobResult


def summary(results: Mapping[str, JobResult], run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "ok": all(r.ok for r in results.values()),
        "jobs": {key: r.to_dict() for key, r in results.items()},
    }


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write atomically: a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(target)


def output_text(value: Any) -> str:
    """How a v1 component wrote an output: JSON for lists and dicts, plain text else."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if value is None:
        return ""
    return str(value)


def write_output_file(path: str | os.PathLike[str], value: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(output_text(value))
