"""Matrix jobs on the console: each matrix named by ``Console.fold`` is one row
of the summary (counts by outcome, the slowest item's duration, the billable
seconds of all, the best item by a final metric, the first failure) and one
row of the live table, unless the console expands them; the JSON summary keeps
every item and adds a ``matrices`` record. Rendered at a fixed size with an
injected clock, as in test_console.py."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from rich.console import Console as RichConsole
from rich.console import RenderableType

from smrun.console import Console, Fold, summary_table
from smrun.events import Finished, LogLine, StatusChanged, Submitted
from smrun.types import JobResult, Outcome

T = 1_700_000_000.25
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
RMSE = "validation:rmse"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def render(renderable: RenderableType, width: int = 100, height: int = 20) -> str:
    out = RichConsole(file=io.StringIO(), width=width, height=height, color_system=None,
                      force_terminal=False)
    with out.capture() as captured:
        out.print(renderable)
    return captured.get()


def row(text: str, job: str) -> list[str]:
    """The cells of the row whose JOB cell is ``job`` (which may hold spaces)."""
    (line,) = [ln for ln in text.splitlines() if ln.startswith(job + "  ")]
    return re.split(r"\s{2,}", line.strip())


def result(key: str, outcome: Outcome, *, kind: str = "training", seconds: float | None = None,
           reason: str | None = None, billable: int | None = None,
           metrics: dict[str, float] | None = None,
           outputs: dict[str, object] | None = None) -> JobResult:
    created = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    details: dict[str, object] = {}
    if billable is not None:
        details["billable_seconds"] = billable
    if metrics is not None:
        details["metrics"] = metrics
    return JobResult(
        key, kind, f"{key}-1", outcome, status=outcome.value, failure_reason=reason,
        outputs=dict(outputs or {}), details=details,
        created=created if seconds is not None else None,
        ended=created + timedelta(seconds=seconds) if seconds is not None else None,
    )


SWEEP = tuple(f"sweep[{i}]" for i in range(12))
# rmse, seconds, billable per item; items 5 and 9 fail, 7 is the slowest, 3 the best
RMSES = [0.52, 0.48, 0.5, 0.412, 0.47, None, 0.45, 0.61, 0.44, None, 0.43, 0.6]


def sweep_results() -> dict[str, JobResult]:
    results = {"prep": result("prep", Outcome.SUCCEEDED, kind="processing", seconds=75.0,
                              billable=70, outputs={"output_uri": "s3://b/prep/out"})}
    for i, key in enumerate(SWEEP):
        failed = i in (5, 9)
        results[key] = result(
            key, Outcome.FAILED if failed else Outcome.SUCCEEDED,
            seconds=190.0 if i == 7 else 100.0 + i, billable=10 * (i + 1),
            reason=f"AlgorithmError: loss is NaN at epoch {i}" if failed else None,
            metrics=None if failed else {RMSE: float(RMSES[i] or 0), "train:rmse": 0.1},
            outputs={"model_artifact_url": f"s3://b/sweep/{i}/model.tar.gz"},
        )
    results["deploy"] = result("deploy", Outcome.NOT_STARTED, kind="endpoint",
                               reason="not started because sweep failed")
    return results


def summarized(results: dict[str, JobResult], folds: list[Fold], **kw: object) -> str:
    """What a console off a terminal writes for the summary."""
    out = io.StringIO()
    console = Console(out, fmt="console", clock=Clock(T), width=200, **kw)  # type: ignore[arg-type]
    console.fold(folds)
    console.summary(results)
    return out.getvalue()


def json_summary(results: dict[str, JobResult], folds: list[Fold]) -> dict[str, Any]:
    out = io.StringIO()
    console = Console(out, fmt="json", clock=Clock(T))
    console.fold(folds)
    console.summary(results)
    (line,) = out.getvalue().splitlines()
    record: dict[str, Any] = json.loads(line)
    return record


# --------------------------------------------------------------------- summary


def test_a_matrix_is_one_summary_row_of_counts_best_slowest_and_billable_sum() -> None:
    text = summarized(sweep_results(), [Fold("sweep", SWEEP, RMSE)])
    lines = [ln.rstrip() for ln in text.splitlines()]
    assert row(text, "sweep (12 items)") == [
        "sweep (12 items)", "training", "10 Succeeded · 2 Failed", "3m10s",
        f"{sum(10 * (i + 1) for i in range(12))}s",
        "best sweep[3] (validation:rmse 0.412); slowest sweep[7]; "
        "sweep[5] failed: AlgorithmError: loss is NaN at epoch 5",
    ]
    assert not [ln for ln in lines if ln.startswith("sweep[")]  # no row per item
    # the jobs outside the matrix, where they were
    assert row(text, "prep") == ["prep", "processing", "Succeeded", "1m15s", "70s"]
    assert row(text, "deploy")[2] == "NotStarted"
    table = [ln.split()[0] for ln in lines[lines.index("Summary") + 3:] if ln][:3]
    assert table == ["prep", "sweep", "deploy"]
    # outputs: the best item's only, under the matrix's name
    assert "sweep.best.model_artifact_url: s3://b/sweep/3/model.tar.gz" in lines
    assert not [ln for ln in lines if ln.startswith("sweep[")]
    assert "prep.output_uri: s3://b/prep/out" in lines
    assert lines[-1] == "11/14 jobs succeeded"  # every item counts


def test_the_best_item_is_the_highest_with_direction_max() -> None:
    aucs = {"a[0]": 0.81, "a[1]": 0.93, "a[2]": 0.93, "a[3]": 0.7}  # a tie goes to the first
    results = {key: result(key, Outcome.SUCCEEDED, seconds=60.0 + i, metrics={"auc": auc})
               for i, (key, auc) in enumerate(aucs.items())}
    results["a[4]"] = result("a[4]", Outcome.FAILED, seconds=5.0, metrics={"auc": 0.99},
                             reason="AlgorithmError: boom")  # failed: never the best
    fold = Fold("a", tuple(results), "auc", "max")
    reason = row(summarized(results, [fold]), "a (5 items)")[-1]
    assert reason == "best a[1] (auc 0.93); slowest a[3]; a[4] failed: AlgorithmError: boom"
    (matrix,) = json_summary(results, [fold])["matrices"]
    assert (matrix["best"], matrix["best_value"]) == ("a[1]", 0.93)
    # the same items, lowest first
    low = json_summary(results, [Fold("a", tuple(results), "auc")])["matrices"]
    assert (low[0]["best"], low[0]["best_value"]) == ("a[3]", 0.7)


def test_without_a_metric_no_item_is_best_and_no_outputs_are_listed() -> None:
    results = sweep_results()
    text = summarized(results, [Fold("sweep", SWEEP)])
    cells = row(text, "sweep (12 items)")
    assert cells[-1] == "slowest sweep[7]; sweep[5] failed: AlgorithmError: loss is NaN at epoch 5"
    assert "best" not in text.replace("sweep.best", "")
    assert not [ln for ln in text.splitlines() if ln.startswith("sweep")
                and ":" in ln.split()[0]]  # no outputs of the matrix at all
    (matrix,) = json_summary(results, [Fold("sweep", SWEEP)])["matrices"]
    assert matrix["best"] is None and matrix["best_value"] is None and matrix["metric"] is None


def test_a_metric_no_item_reported_is_said_so() -> None:
    results = {k: result(k, Outcome.SUCCEEDED, seconds=3.0) for k in ("m[0]", "m[1]")}
    cells = row(summarized(results, [Fold("m", ("m[0]", "m[1]"), "loss")]), "m (2 items)")
    assert cells[2:] == ["2 Succeeded", "3.0s", "-", "no item reported loss; slowest m[0]"]


def test_expand_shows_every_item_under_its_matrix_row() -> None:
    text = summarized(sweep_results(), [Fold("sweep", SWEEP, RMSE)], expand=True)
    lines = [ln.rstrip() for ln in text.splitlines()]
    names = [ln.split()[0] for ln in lines[lines.index("Summary") + 3:] if ln][:15]
    assert names == ["prep", "sweep", *SWEEP, "deploy"]
    # the head row: its counts, best and slowest; each item's reason is on its own row
    assert row(text, "sweep (12 items)")[-1] == (
        "best sweep[3] (validation:rmse 0.412); slowest sweep[7]")
    assert row(text, "sweep[5]") == ["sweep[5]", "training", "Failed", "1m45s", "60s",
                                     "AlgorithmError: loss is NaN at epoch 5"]
    assert row(text, "sweep[7]")[3] == "3m10s"
    assert "sweep[3].model_artifact_url: s3://b/sweep/3/model.tar.gz" in lines
    assert sum(ln.startswith("sweep[") and ".model_artifact_url" in ln for ln in lines) == 12
    assert not [ln for ln in lines if ln.startswith("sweep.best.")]
    assert lines[-1] == "11/14 jobs succeeded"


def test_summary_table_folds_as_the_console_does() -> None:
    text = summary_table(sweep_results(), folds=[Fold("sweep", SWEEP, RMSE)])
    assert row(text, "sweep (12 items)")[2] == "10 Succeeded · 2 Failed"
    assert text.splitlines()[-1] == "11/14 jobs succeeded"
    unfolded = summary_table(sweep_results()).splitlines()  # no folds: as it was
    assert sum(ln.startswith("sweep[") and "  training  " in ln for ln in unfolded) == 12


def test_all_succeeded_and_one_item_read_naturally() -> None:
    results = {"one[0]": result("one[0]", Outcome.SUCCEEDED, seconds=2.0, billable=2)}
    cells = row(summarized(results, [Fold("one", ("one[0]",))]), "one (1 item)")
    assert cells == ["one (1 item)", "training", "1 Succeeded", "2.0s", "2s"]


# ------------------------------------------------------------------ JSON lines


def test_the_json_summary_keeps_every_item_and_adds_matrices() -> None:
    results = sweep_results()
    record = json_summary(results, [Fold("sweep", SWEEP, RMSE)])
    assert list(record) == ["jobs", "matrices", "ok", "time", "job", "event"]
    assert [job["job"] for job in record["jobs"]] == list(results)
    assert record["matrices"] == [{
        "matrix": "sweep", "items": list(SWEEP), "counts": {"Succeeded": 10, "Failed": 2},
        "best": "sweep[3]", "best_value": 0.412, "metric": RMSE,
        "slowest": "sweep[7]", "slowest_seconds": 190.0,
    }]


def test_no_folds_leave_the_json_summary_as_it_was() -> None:
    results = sweep_results()
    assert list(json_summary(results, [])) == ["jobs", "ok", "time", "job", "event"]


def test_secrets_in_an_item_stay_redacted_in_the_matrix_row() -> None:
    results = {"s[0]": result("s[0]", Outcome.FAILED, seconds=1.0,
                              reason=f"AlgorithmError: bad key {ACCESS_KEY}")}
    text = summarized(results, [Fold("s", ("s[0]",))])
    assert ACCESS_KEY not in text and "s[0] failed: AlgorithmError: bad key ***" in text


def test_a_direction_is_min_or_max() -> None:
    with pytest.raises(ValueError, match="direction"):
        Fold("x", ("x[0]",), "loss", "lowest")
    assert Fold("x", ["x[0]"]).items == ("x[0]",)  # type: ignore[arg-type]


# ------------------------------------------------------------------ live table


GRID = [f"grid[{i:03d}]" for i in range(200)]


def grid_console(height: int = 20, width: int = 120, expand: bool = False) -> Console:
    """prep succeeded, 200 grid items (150 submitted, 100 of those finished, the first
    three failed), then report waiting: grid folded unless ``expand``."""
    console = Console(io.StringIO(), fmt="console", clock=Clock(T + 300), width=width,
                      height=height, expand=expand)
    console.plan({"prep": "processing", **dict.fromkeys(GRID, "training"),
                  "report": "processing"})
    console.fold([Fold("grid", tuple(GRID), RMSE)])
    console(Submitted("prep", kind="processing", name="prep-1", attached=False, time=T))
    console(Finished("prep", result("prep", Outcome.SUCCEEDED, kind="processing"),
                     time=T + 20))
    for i, key in enumerate(GRID[:150]):
        console(Submitted(key, kind="training", name=key, attached=False, time=T + 30))
        console(StatusChanged(key, status="InProgress", secondary="Training", time=T + 31))
        if i < 100:
            outcome = Outcome.FAILED if i < 3 else Outcome.SUCCEEDED
            console(Finished(key, result(key, outcome), time=T + 200))
    console(LogLine(GRID[120], stream="s", instance="algo-1", timestamp=int((T + 250) * 1000),
                    message="epoch 3", time=T + 250))
    console(LogLine(GRID[130], stream="s", instance="algo-1", timestamp=int((T + 240) * 1000),
                    message="epoch 2", time=T + 240))
    console.flush()
    return console


def test_the_live_table_folds_200_items_into_one_row_that_fits() -> None:
    view = render(grid_console().status_view(), width=120)
    lines = view.splitlines()
    assert len(lines) == 6  # header, bar, column names, prep, grid, report
    assert lines[0].startswith("50 running · 51 waiting · 98 succeeded · 3 failed ─")
    assert lines[1].endswith(" 101/202 finished")  # the bar counts every item
    assert [ln.split()[0] for ln in lines[3:]] == ["prep", "grid", "report"]
    last_log = time_of(T + 250)
    assert row(view, "grid (200 items)") == [
        "grid (200 items)", "training",
        "100/200 · 3 failed · 50 running (Training) · 97 succeeded · 50 waiting",
        "4m30s", last_log]
    assert row(view, "prep") == ["prep", "processing", "Succeeded", "20s"]
    assert row(view, "report") == ["report", "processing", "waiting"]


def time_of(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def test_a_folded_row_is_one_line_on_a_narrow_terminal() -> None:
    lines = render(grid_console(width=60).status_view(), width=60).splitlines()
    assert len(lines) == 6 and all(len(line) <= 60 for line in lines)
    (grid,) = [ln for ln in lines if ln.startswith("grid")]
    # the status gives way like any other (its start, how far the matrix got, stays)
    assert re.search(r"  100/200 · 3…  ", grid)


def test_running_items_of_different_statuses_are_just_running() -> None:
    console = grid_console()
    console(StatusChanged(GRID[140], status="Stopping", time=T + 260))
    cells = row(render(console.status_view(), width=120), "grid (200 items)")
    assert cells[2].startswith("100/200 · 3 failed · 50 running · 97 succeeded")


def test_folded_rows_share_a_short_terminal_with_the_other_jobs() -> None:
    console = Console(io.StringIO(), fmt="console", clock=Clock(T + 60), width=100, height=12)
    others = [f"job-{i}" for i in range(20)]
    console.plan({**dict.fromkeys(others, "processing"), **dict.fromkeys(GRID, "training")})
    console.fold([Fold("grid", tuple(GRID))])
    for key in [*others[:2], *GRID[:5]]:
        console(Submitted(key, kind="training", name=key, attached=False, time=T))
    view = render(console.status_view(), height=12)
    lines = view.splitlines()
    assert len(lines) == 12 * 2 // 3
    assert lines[0].startswith("7 running · 213 waiting ─")
    shown = [ln.split()[0] for ln in lines[3:-1]]
    # the running rows (the matrix has running items) first, then waiting ones, in order
    assert shown == ["job-0", "job-1", "job-2", "grid"]
    assert lines[-1] == "… and 17 more: 17 waiting"


def test_expand_shows_every_item_in_the_live_table() -> None:
    view = render(grid_console(height=400, expand=True).status_view(), width=120, height=400)
    assert sum(ln.startswith("grid[") for ln in view.splitlines()) == 200
    assert "items)" not in view


def test_fold_redraws_a_live_table_already_drawn() -> None:
    out = io.StringIO()
    console = Console(out, fmt="console", live=True, colour=False, width=100, height=30,
                      clock=Clock(T + 5), refresh_per_second=None)
    console.plan({"train": "training", **dict.fromkeys(GRID[:12], "training")})
    assert "grid[011]" in out.getvalue()
    drawn = len(out.getvalue())
    console.fold([Fold("grid", tuple(GRID[:12]))])
    redrawn = out.getvalue()[drawn:]
    assert "grid (12 items)" in redrawn and "grid[0" not in redrawn
    assert "0/12 · 12 waiting" in redrawn
    console.close()
