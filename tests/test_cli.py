"""`smrun run` as a person uses it: --local, exit codes, the summary, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from smrun.cli import main
from tests.test_runner import training_request


def write(path: Path, jobs: dict[str, dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump(
        {"jobs": [{"name": k, "kind": "training", "request": r} for k, r in jobs.items()]}))
    return path


def test_local_run_succeeds_and_writes_every_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path / "m.yaml", {
        "a": training_request(duration=0.5, lines=3),
        "b": training_request(duration=0.8, instances=2, lines=2),
    })
    out = tmp_path / "out.json"
    code = main(["run", str(manifest), "--local", "--log-format", "json",
                 "--state-dir", str(tmp_path / "state"), "--output-json", str(out)])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"submitted", "status", "log", "finished", "summary"} <= kinds
    assert len([e for e in events if e["event"] == "log"]) == 3 + 2 * 2
    result = json.loads(out.read_text())
    assert result["ok"] and set(result["jobs"]) == {"a", "b"}
    assert result["jobs"]["b"]["details"]["billable_instance_seconds"] >= 2


def test_a_failed_job_exits_1_and_shows_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path / "m.yaml", {
        "good": training_request(duration=0.5, lines=1),
        "bad": training_request(duration=0.5, lines=1, outcome="Failed",
                                reason="AlgorithmError: loss is NaN"),
    })
    code = main(["run", str(manifest), "--local", "--log-format", "console",
                 "--state-dir", str(tmp_path / "state")])
    assert code == 1
    out = capsys.readouterr().out
    assert "loss is NaN" in out
    assert "1/2 jobs succeeded" in out


def test_a_dependent_of_a_failed_job_is_not_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"jobs": [
        {"name": "first", "kind": "training",
         "request": training_request(duration=0.5, lines=1, outcome="Failed")},
        {"name": "second", "kind": "training", "after": ["first"],
         "request": training_request(duration=0.5, lines=1)},
        {"name": "independent", "kind": "training",
         "request": training_request(duration=0.5, lines=1)},
    ]}))
    out = tmp_path / "out.json"
    assert main(["run", str(path), "--local", "--log-format", "json",
                 "--state-dir", str(tmp_path / "state"), "--output-json", str(out)]) == 1
    jobs = json.loads(out.read_text())["jobs"]
    assert jobs["first"]["outcome"] == "Failed"
    assert jobs["second"]["outcome"] == "NotStarted"
    assert "first failed" in jobs["second"]["failure_reason"]
    assert jobs["independent"]["outcome"] == "Succeeded"


def test_validate_says_valid_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path / "m.yaml", {"a": training_request()})
    assert main(["validate", str(manifest)]) == 0
    assert "1 job, valid" in capsys.readouterr().out
