"""The tables of bench/RESULTS.md, from the reports ``bench.fanout --json`` wrote.

    python -m bench.tables bench/results-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _p(lag: dict[str, float], *keys: str) -> str:
    return " / ".join(f"{lag[k]:g}" for k in keys) if lag else "n/a"


def row(report: dict[str, Any]) -> str:
    lines = report["log_lines"]
    over = [op for op, r in report["peak_rates"].items() if r["over"]]
    sent_over = [op for op, r in report["peak_rates"].items()
                 if r.get("sent_peak") is not None and r["budget"] is not None
                 and r["sent_peak"] > r["budget"]]
    runner = report["runner"]
    return " | ".join([
        "", f"{report['jobs']:,}", report["strategy"],
        "all succeeded" if report["ok"] else str(report["outcomes"]),
        f"{report['wall_seconds']:g} (≤ {report['wall_target_seconds']:g})",
        _p(report["detection_lag_seconds"], "p50", "p95", "max"),
        _p(report["result_lag_seconds"], "p50", "p95"),
        f"{lines['delivered']:,}/{lines['expected']:,}, {lines['duplicated']} dup",
        _p(report["log_latency_seconds"], "p50", "p95"),
        f"{report['calls_per_job']['sagemaker']:g}",
        f"{report['calls_per_job']['logs_reads']:g}",
        ", ".join(f"{op} {report['peak_rates'][op]['peak']}" for op in over) or "none",
        ", ".join(sent_over) or ("none" if any("sent_peak" in r for r in
                                              report["peak_rates"].values()) else "n/a"),
        f"{runner['cpu_share_of_one_core']:.0%}",
        f"{runner['peak_rss_mib']:g}",
        f"{report['emulator']['cpu_seconds']:.0f}",
        "",
    ]).strip()


HEADER = (
    "| N | strategy | outcomes | wall s (target) | detection lag p50 / p95 / max s "
    "| result lag p50 / p95 s | lines | log latency p50 / p95 s | SageMaker calls/job "
    "| CloudWatch reads/job | seconds over budget, as arrived | over budget, as sent "
    "| runner CPU (of one core) | runner peak RSS MiB | emulator CPU s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(paths: list[str]) -> int:
    reports = [json.loads(Path(p).read_text()) for p in paths]
    reports.sort(key=lambda r: (r["jobs"], ["describe", "list", "events", "auto"]
                                .index(r["strategy"])))
    print(HEADER)
    for report in reports:
        print(row(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
