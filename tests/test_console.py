"""The console: JSON lines exactly as KFP parses them, the live status table on
a terminal, the summary a person reads, redaction everywhere, and the flush
contract the log follower relies on (nothing written before ``flush()``,
everything after). Rendered at a fixed size with an injected clock."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import datetime, timedelta, timezone

from rich.console import Console as RichConsole
from rich.console import RenderableType

from smrun.console import Console, summary_table
from smrun.events import Finished, LogLine, Notice, StatusChanged, Submitted
from smrun.types import JobResult, Outcome

T = 1_700_000_000.25
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ANSI = re.compile(r"\x1b\[")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def plain(stream: io.StringIO, clock: Clock | None = None, **kw: object) -> Console:
    """A console rendering off a terminal (as with ``--log-format console`` to a file)."""
    return Console(stream, fmt="console", clock=clock or Clock(T), **kw)  # type: ignore[arg-type]


def render(renderable: RenderableType, width: int = 100) -> str:
    out = RichConsole(file=io.StringIO(), width=width, height=20, color_system=None,
                      force_terminal=False)
    with out.capture() as captured:
        out.print(renderable)
    return captured.get()


def log(job: str, message: str, at: float = T, instance: str = "algo-1") -> LogLine:
    return LogLine(job, stream=f"{job}/{instance}-1700000000", instance=instance,
                   timestamp=int(at * 1000), message=message, time=at)


def result(key: str, outcome: Outcome, *, kind: str = "training", seconds: float | None = None,
           reason: str | None = None, outputs: dict[str, object] | None = None,
           billable: int | None = None) -> JobResult:
    created = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    return JobResult(
        key, kind, f"{key}-1", outcome, status=outcome.value, failure_reason=reason,
        outputs=dict(outputs or {}),
        details={} if billable is None else {"billable_seconds": billable},
        created=created if seconds is not None else None,
        ended=created + timedelta(seconds=seconds) if seconds is not None else None,
    )


# ------------------------------------------------------------------ JSON lines

# what the console wrote before the live table existed; KFP pods parse these
PINNED = [
    '{"job": "train", "time": 1700000000.25, "kind": "training", "name": "train-abc", '
    '"attached": false, "text": "created training train-abc", "event": "submitted"}',
    '{"job": "train", "time": 1700000001.25, "status": "InProgress", '
    '"secondary": "Starting", "message": "Preparing the instances", "changed": null, '
    '"text": "InProgress \\u00b7 Starting \\u2014 Preparing the instances", "event": "status"}',
    '{"job": "train", "time": 1700000002.25, "stream": "train-abc/algo-1-1700000000", '
    '"instance": "algo-1", "timestamp": 1700000002000, '
    '"message": "epoch 1 loss=0.5 key ***", "event": "log"}',
    '{"job": "train", "time": 1700000002.25, "stream": "train-abc/algo-2-1700000000", '
    '"instance": "algo-2", "timestamp": 1700000002500, "message": "{\\"x\\": \\"\\u00fc\\"}", '
    '"event": "log"}',
    '{"job": "train", "time": 1700000003.25, "level": "warning", "attempt": 2, '
    '"api_token": "abc", "text": "describe failed: throttled", "event": "notice"}',
    '{"job": "train", "time": 1700000004.25, "result": {"job": "train", "kind": "training", '
    '"name": "train-abc", "outcome": "Failed", "status": "Failed", '
    '"failure_reason": "AlgorithmError: bad key ***", "duration_seconds": 45.5, '
    '"outputs": {"model_artifacts": "s3://b/o/model.tar.gz", "metrics": {"loss": 0.5}}, '
    '"details": {"billable_seconds": 42}, '
    '"arn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/train-abc", '
    '"attached": false, "created": "2023-11-14T22:13:20+00:00", '
    '"ended": "2023-11-14T22:14:05.500000+00:00"}, "outcome": "Failed", '
    '"text": "Failed \\u00b7 in 45.5s \\u00b7 billable 42s \\u00b7 '
    'reason: AlgorithmError: bad key ***", "event": "finished"}',
    '{"jobs": [{"job": "train", "kind": "training", "name": "train-abc", '
    '"outcome": "Failed", "status": "Failed", '
    '"failure_reason": "AlgorithmError: bad key ***", "duration_seconds": 45.5, '
    '"outputs": {"model_artifacts": "s3://b/o/model.tar.gz", "metrics": {"loss": 0.5}}, '
    '"details": {"billable_seconds": 42}, '
    '"arn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/train-abc", '
    '"attached": false, "created": "2023-11-14T22:13:20+00:00", '
    '"ended": "2023-11-14T22:14:05.500000+00:00"}, {"job": "prep", "kind": "processing", '
    '"name": "prep-1", "outcome": "Succeeded", "status": "Completed", '
    '"failure_reason": null, "duration_seconds": null, "outputs": {}, "details": {}, '
    '"arn": null, "attached": false, "created": null, "ended": null}], "ok": false, '
    '"time": 1700000100.5, "job": "", "event": "summary"}',
]


def test_json_lines_are_byte_for_byte_what_kfp_parses() -> None:
    out = io.StringIO()
    console = Console(out, fmt="json", clock=Clock(1_700_000_100.5))
    console.plan({"train": "training", "prep": "processing"})  # changes nothing in JSON
    console(Submitted("train", kind="training", name="train-abc", attached=False, time=T))
    console(StatusChanged("train", status="InProgress", secondary="Starting",
                          message="Preparing the instances", time=T + 1))
    console(LogLine("train", stream="train-abc/algo-1-1700000000", instance="algo-1",
                    timestamp=1_700_000_002_000, message=f"epoch 1 loss=0.5 key {ACCESS_KEY}",
                    time=T + 2))
    console(LogLine("train", stream="train-abc/algo-2-1700000000", instance="algo-2",
                    timestamp=1_700_000_002_500, message='{"x": "ü"}', time=T + 2))
    console.flush()
    console(Notice("train", "warning", "describe failed: throttled",
                   {"attempt": 2, "api_token": "abc"}, time=T + 3))
    failed = JobResult(
        "train", "training", "train-abc", Outcome.FAILED, status="Failed",
        failure_reason=f"AlgorithmError: bad key {ACCESS_KEY}",
        outputs={"model_artifacts": "s3://b/o/model.tar.gz", "metrics": {"loss": 0.5}},
        details={"billable_seconds": 42},
        arn="arn:aws:sagemaker:us-east-1:123456789012:training-job/train-abc",
        created=datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc),
        ended=datetime(2023, 11, 14, 22, 14, 5, 500000, tzinfo=timezone.utc),
    )
    console(Finished("train", failed, time=T + 4))
    ok = JobResult("prep", "processing", "prep-1", Outcome.SUCCEEDED, status="Completed")
    console.summary({"train": failed, "prep": ok})
    console.close()  # after the summary: nothing more is written
    assert out.getvalue() == "".join(line + "\n" for line in PINNED)


def test_json_log_lines_are_written_only_on_flush() -> None:
    out = io.StringIO()
    console = Console(out, fmt="json")
    console(log("a", "one"))
    console(log("b", "two"))
    assert out.getvalue() == ""
    console.flush()
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["one", "two"]


# ------------------------------------------------------------- scrolling lines


def test_console_log_lines_are_written_only_on_flush_and_in_order() -> None:
    out = io.StringIO()
    console = plain(out)
    console(log("train", "epoch 1"))
    console(log("train", "epoch 2", instance="algo-2"))
    assert out.getvalue() == ""
    console.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("train        │ algo-1 epoch 1")
    assert lines[1].endswith("│ algo-2 epoch 2")
    assert lines[0].startswith(time.strftime("%H:%M:%S", time.localtime(T)))


def test_a_status_change_writes_the_held_log_lines_before_itself() -> None:
    out = io.StringIO()
    console = plain(out)
    console(Submitted("train", kind="training", name="train-1", attached=False, time=T))
    console(log("train", "held line"))
    console(StatusChanged("train", status="Stopping", time=T + 1))
    text = out.getvalue()
    assert "▶ created training train-1" in text
    assert text.index("held line") < text.index("◆ Stopping")


def test_off_a_terminal_lines_have_no_ansi_and_are_never_wrapped() -> None:
    out = io.StringIO()
    console = plain(out)
    long = "loss=0.25 " * 40 + "end"
    console(log("train", f"\x1b[31mred\x1b[0m {long}"))
    console.flush()
    assert not ANSI.search(out.getvalue())
    assert out.getvalue().count("\n") == 1 and out.getvalue().rstrip().endswith(f"red {long}")


def test_the_job_column_is_as_wide_as_the_longest_planned_job() -> None:
    out = io.StringIO()
    console = plain(out)
    console.plan({"a": "training", "a-rather-long-job-name": "processing"})
    console(log("a", "short job"))
    console.flush()
    assert "a" + " " * len("-rather-long-job-name") + " │ algo-1 short job" in out.getvalue()


# ------------------------------------------------------------------ live table


def four_jobs(clock: Clock) -> Console:
    console = plain(io.StringIO(), clock, width=100, height=20)
    console.plan({"prep": "processing", "train": "training", "tune": "tuning",
                  "deploy": "endpoint"})
    console(Submitted("prep", kind="processing", name="prep-1", attached=False, time=T))
    console(Finished("prep", result("prep", Outcome.SUCCEEDED, kind="processing"),
                     time=T + 30))
    console(Submitted("train", kind="training", name="train-1", attached=False, time=T + 10))
    console(StatusChanged("train", status="InProgress", secondary="Training", time=T + 11))
    console(log("train", "epoch 3", at=T + 40))
    console.flush()
    console(Submitted("tune", kind="tuning", name="tune-1", attached=False, time=T + 5))
    console(Finished("tune", result("tune", Outcome.FAILED, kind="tuning"), time=T + 20))
    return console


def row(text: str, job: str) -> list[str]:
    """The cells of ``job``'s row in a rendered table."""
    (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [job]]
    return re.split(r"\s{2,}", line.strip())


def test_live_table_has_a_row_per_job_and_counts_in_its_header() -> None:
    clock = Clock(T + 75)
    view = render(four_jobs(clock).status_view())
    lines = view.splitlines()
    assert lines[0].startswith("1 running · 1 waiting · 1 succeeded · 1 failed ─")
    assert re.split(r"\s{2,}", lines[1].strip()) == ["JOB", "KIND", "STATUS", "ELAPSED",
                                                      "LAST LOG"]
    last_log = time.strftime("%H:%M:%S", time.localtime(T + 40))
    assert row(view, "train") == ["train", "training", "InProgress · Training", "1m05s",
                                  last_log]
    assert row(view, "prep") == ["prep", "processing", "Succeeded", "30s"]
    assert row(view, "tune") == ["tune", "tuning", "Failed", "15s"]
    assert row(view, "deploy") == ["deploy", "endpoint", "waiting"]
    assert [ln.split()[0] for ln in lines[2:6]] == ["prep", "train", "tune", "deploy"]
    assert "finished" not in view  # no progress bar for four jobs
    assert len(lines) == 6


def test_elapsed_times_run_until_the_job_finishes() -> None:
    clock = Clock(T + 75)
    console = four_jobs(clock)
    clock.now = T + 3600 + 10 + 125
    view = render(console.status_view())
    assert row(view, "train")[3] == "1h02m"
    assert row(view, "prep")[3] == "30s"  # frozen at Finished


def many_jobs(total: int, running: int, failed: int, succeeded: int, height: int) -> Console:
    """``total`` jobs planned; the first ``running + failed + succeeded`` submitted, the
    last of those finished (failed ones first), the rest waiting."""
    console = plain(io.StringIO(), Clock(T + 60), width=100, height=height)
    keys = [f"job-{i:03d}" for i in range(total)]
    console.plan(dict.fromkeys(keys, "training"))
    for key in keys[: running + failed + succeeded]:
        console(Submitted(key, kind="training", name=key, attached=False, time=T))
        console(StatusChanged(key, status="InProgress", secondary="Training", time=T))
    done = keys[running : running + failed + succeeded]
    for i, key in enumerate(done):
        outcome = Outcome.FAILED if i < failed else Outcome.SUCCEEDED
        console(Finished(key, result(key, outcome), time=T + 30))
    return console


def test_many_jobs_fold_into_counts_that_fit_the_terminal() -> None:
    view = render(many_jobs(300, running=200, failed=5, succeeded=35, height=20).status_view())
    lines = view.splitlines()
    assert len(lines) == 20 * 2 // 3  # the rest of the terminal is for the log lines
    assert lines[0].startswith("200 running · 60 waiting · 35 succeeded · 5 failed ─")
    shown = [ln.split()[0] for ln in lines if ln.startswith("job-")]
    # the failed rows are kept first, then running ones, in the table's own order;
    # neither the waiting nor the succeeded rows fit
    assert shown == [f"job-{i:03d}" for i in (0, 1, 2, 3, 200, 201, 202, 203, 204)]
    assert lines[-1] == "… and 291 more: 196 InProgress, 60 waiting, 35 Succeeded"


def test_many_jobs_show_a_progress_bar_of_finished_jobs() -> None:
    view = render(many_jobs(300, running=200, failed=5, succeeded=35, height=20).status_view())
    (bar,) = [ln for ln in view.splitlines() if ln.endswith("finished")]
    assert bar.endswith(" 40/300 finished")
    assert bar.count("━") == round(40 * 40 / 300) and "─" in bar


def test_a_tall_terminal_shows_every_row_and_no_fold_line() -> None:
    view = render(many_jobs(12, running=6, failed=1, succeeded=2, height=60).status_view())
    assert sum(ln.startswith("job-") for ln in view.splitlines()) == 12
    assert "more:" not in view
    assert "3/12 finished" in view  # twelve jobs are many enough for the bar


def test_the_live_display_stays_under_the_lines_and_goes_away_on_close() -> None:
    out = io.StringIO()
    console = Console(out, fmt="console", live=True, colour=False, width=100, height=20,
                      clock=Clock(T + 5), refresh_per_second=None)
    console.plan({"train": "training", "deploy": "endpoint"})
    started = out.getvalue()
    assert "train" in started and "waiting" in started  # drawn before any event
    console(Submitted("train", kind="training", name="train-1", attached=False, time=T))
    console(log("train", "epoch 1"))
    before_flush = out.getvalue()
    console.flush()
    after = out.getvalue()[len(before_flush):]
    # the line, then the table drawn again below it
    assert after.index("│ algo-1 epoch 1") < after.index("1 running · 1 waiting")
    console.summary({"train": result("train", Outcome.SUCCEEDED, seconds=4.0)})
    console.close()
    closing = out.getvalue()[len(before_flush) + len(after):]
    assert "\x1b[?25h" in closing  # the cursor is back
    tail = closing[closing.index("\x1b[?25h"):]
    assert "Summary" in tail and "1/1 jobs succeeded" in tail
    assert "LAST LOG" not in tail and "waiting" not in tail  # no table after the summary


def test_without_a_terminal_there_is_no_live_display() -> None:
    out = io.StringIO()
    console = plain(out)
    console.plan({"train": "training"})
    console(Submitted("train", kind="training", name="train-1", attached=False, time=T))
    console.close()
    assert "LAST LOG" not in out.getvalue() and not ANSI.search(out.getvalue())
    assert out.getvalue().count("\n") == 1


# --------------------------------------------------------------------- summary


def summary_results() -> dict[str, JobResult]:
    return {
        "prep": result("prep", Outcome.SUCCEEDED, kind="processing", seconds=75.0, billable=70,
                       outputs={"output_uri": "s3://b/prep/out"}),
        "train": result("train", Outcome.FAILED, seconds=12.25, billable=10,
                        reason="AlgorithmError: loss is NaN",
                        outputs={"metrics": {"loss": None, "epochs": [1, 2, 3]}}),
        "deploy": result("deploy", Outcome.NOT_STARTED, kind="endpoint",
                         reason="not started because train failed"),
    }


def test_the_summary_is_a_table_then_outputs_then_a_count() -> None:
    out = io.StringIO()
    console = plain(out, width=100)
    console.summary(summary_results())
    text = out.getvalue()
    lines = [ln.rstrip() for ln in text.splitlines()]
    head = lines.index("Summary")
    assert re.split(r"\s{2,}", lines[head + 1].strip()) == [
        "JOB", "KIND", "OUTCOME", "DURATION", "BILLABLE", "REASON"]
    assert row(text, "prep") == ["prep", "processing", "Succeeded", "1m15s", "70s"]
    assert row(text, "train") == ["train", "training", "Failed", "12.2s", "10s",
                                  "AlgorithmError: loss is NaN"]
    assert row(text, "deploy") == ["deploy", "endpoint", "NotStarted", "-", "-",
                                   "not started because train failed"]
    assert "prep.output_uri: s3://b/prep/out" in lines
    assert 'train.metrics: {"loss": null, "epochs": [1, 2, 3]}' in lines
    assert lines[-1] == "1/3 jobs succeeded"
    assert not ANSI.search(text)
    assert not [ln for ln in text.splitlines() if ln.endswith(" ")]  # no padding left over


def test_summary_table_text_is_the_same_table_unwrapped() -> None:
    results = summary_results()
    wide = {f"k{i}": i for i in range(40)}
    results["train"].outputs["wide"] = wide
    results["train"].failure_reason = "AlgorithmError: " + "very long reason " * 12
    text = summary_table(results)
    lines = text.splitlines()
    assert f"train.wide: {json.dumps(wide)}" in lines  # one line, however long
    (train,) = [ln for ln in lines if ln.startswith("train ")]
    assert train.endswith("very long reason")  # the reason is not wrapped either
    assert lines[-1] == "1/3 jobs succeeded" and "Summary" in lines


def test_summary_closes_the_console() -> None:
    out = io.StringIO()
    console = plain(out)
    console(log("train", "late line"))
    console.summary({"train": result("train", Outcome.SUCCEEDED)})
    text = out.getvalue()
    assert text.index("late line") < text.index("Summary")
    console.close()
    assert out.getvalue() == text  # closing twice writes nothing more


# ------------------------------------------------------------------- redaction


def test_secrets_are_redacted_in_every_rendering() -> None:
    leaky = result("train", Outcome.FAILED, seconds=3.0,
                   reason=f"AlgorithmError: bad key {ACCESS_KEY}",
                   outputs={"note": f"secret={SECRET_KEY}"})
    renderings: dict[str, str] = {}
    for name, kw in {"json": {"fmt": "json"}, "console": {"fmt": "console"},
                     "live": {"fmt": "console", "live": True, "colour": False, "width": 120,
                              "height": 30, "refresh_per_second": None}}.items():
        out = io.StringIO()
        console = Console(out, clock=Clock(T), **kw)  # type: ignore[arg-type]
        console.plan({"train": "training"})
        console(Submitted("train", kind="training", name="train-1", attached=False, time=T))
        console(StatusChanged("train", status="InProgress", secondary=f"key {ACCESS_KEY}",
                              time=T))
        console(log("train", f"export AWS_SECRET_ACCESS_KEY={SECRET_KEY}"))
        console.flush()
        renderings[f"{name} status view"] = render(console.status_view(), width=200)
        console(Finished("train", leaky, time=T + 3))
        console.summary({"train": leaky})
        renderings[name] = out.getvalue()
    renderings["summary_table"] = summary_table({"train": leaky})
    for name, text in renderings.items():
        assert ACCESS_KEY not in text and SECRET_KEY not in text, name
    for name in ("json", "console", "live", "summary_table"):
        assert "AlgorithmError: bad key ***" in renderings[name], name
    assert "InProgress · key ***" in renderings["console status view"]
    assert "export AWS_SECRET_ACCESS_KEY=***" in renderings["console"]


def test_a_narrow_terminal_still_gets_one_line_per_row() -> None:
    console = plain(io.StringIO(), Clock(T + 5), width=44, height=40)
    long_key = "a-training-job-with-a-very-long-name"
    console.plan({long_key: "training", "b": "processing"})
    console(Submitted(long_key, kind="training", name="x", attached=False, time=T))
    console(StatusChanged(long_key, status="InProgress", secondary="Downloading", time=T))
    lines = render(console.status_view(), width=44).splitlines()
    assert len(lines) == 4 and all(len(line) <= 44 for line in lines)
    (row_line,) = [ln for ln in lines if ln.startswith("a-train")]
    assert "…" in row_line and row_line.rstrip().endswith("5s")  # the key gave way
    assert lines[1].split() == ["JOB", "KIND", "STATUS", "ELAPSED"]  # LAST LOG went
    assert lines[3].startswith("b ")
