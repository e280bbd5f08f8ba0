"""Real processes, real signals: a killed run resumes without duplicates or gaps,
and SIGTERM stops what the run created.

The emulator runs in its own process here, so that killing the runner leaves
SageMaker (the emulator) running, as in production.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ENV, SMRUN


def admin(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}/_emulator/{path}", timeout=10) as response:
        return json.loads(response.read())


def training(duration: float, instances: int, lines: int) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {
            "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1",
            "TrainingInputMode": "File",
        },
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": instances,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [
            {"Key": "smrun:emulator:duration", "Value": str(duration)},
            {"Key": "smrun:emulator:log-lines", "Value": str(lines)},
        ],
    }


def write_manifest(path: Path, jobs: dict[str, dict[str, Any]]) -> Path:
    manifest = {
        "defaults": {"role": "arn:aws:iam::123456789012:role/SageMakerRole"},
        "jobs": [{"name": key, "kind": "training", "request": req} for key, req in jobs.items()],
    }
    path.write_text(yaml.safe_dump(manifest))
    return path


def run_args(manifest: Path, url: str, state: Path, run_id: str, out: Path) -> list[str]:
    return [
        *SMRUN, "run", str(manifest), "--run-id", run_id, "--state-dir", str(state),
        "--endpoint-url", url, "--logs-endpoint-url", url,
        "--sts-endpoint-url", url, "--region", "us-east-1",
        "--timing", "fast", "--log-format", "json", "--output-json", str(out),
    ]


class Reader:
    """Collects a process's stdout lines on a thread, so the test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._proc = proc
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.events()):
                remaining = deadline - time.monotonic()
                assert remaining > 0, "timed out waiting for output"
                assert self._proc.poll() is None or self._thread.is_alive(), "process ended"
                self._cond.wait(remaining)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def join(self) -> None:
        self._thread.join(timeout=30)


def log_lines(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["job"], e["instance"], e["message"]) for e in events if e.get("event") == "log"]


def emulator_tags(**tags: str) -> list[dict[str, str]]:
    return [{"Key": f"smrun:emulator:{k.replace('_', '-')}", "Value": v} for k, v in tags.items()]


def mixed_jobs() -> list[dict[str, Any]]:
    """Several kinds at once: training, processing, tuning (child logs), model → transform."""
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1"
    return [
        {"name": "wide", "kind": "training", "request": training(5.0, 3, 15)},
        {"name": "prep", "kind": "processing", "request": {
            "AppSpecification": {"ImageUri": image},
            "ProcessingResources": {"ClusterConfig": {
                "InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 10}},
            "Tags": emulator_tags(duration="4", log_lines="12"),
        }},
        {"name": "tune", "kind": "tuning", "request": {
            "HyperParameterTuningJobConfig": {
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
                "ParameterRanges": {"IntegerParameterRanges": [
                    {"Name": "epochs", "MinValue": "1", "MaxValue": "10"}]},
            },
            "TrainingJobDefinition": {
                "AlgorithmSpecification": {
                    "TrainingImage": image, "TrainingInputMode": "File",
                    "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}]},
                "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
                "OutputDataConfig": {"S3OutputPath": "s3://bucket/hpo"},
                "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                   "VolumeSizeInGB": 10},
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            },
            "Tags": emulator_tags(child_duration="2", log_lines="8"),
        }},
        {"name": "model", "kind": "model", "request": {
            "PrimaryContainer": {"Image": image},
        }},
        {"name": "score", "kind": "transform", "request": {
            "ModelName": "{{ jobs.model.outputs.model_name }}",
            "TransformInput": {"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}}},
            "TransformOutput": {"S3OutputPath": "s3://bucket/out/"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "Tags": emulator_tags(duration="5", log_lines="10"),
        }},
    ]


def cloudwatch_lines(url: str) -> set[tuple[str, str]]:
    """Every (stream, message) the emulator's CloudWatch holds for the job log groups."""
    import boto3

    logs = boto3.client("logs", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    lines: set[tuple[str, str]] = set()
    for group in ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs",
                  "/aws/sagemaker/TransformJobs"):
        for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=group):
            for stream in page["logStreams"]:
                name, token = stream["logStreamName"], None
                while True:
                    kwargs: dict[str, Any] = {"nextToken": token} if token else {}
                    got = logs.get_log_events(logGroupName=group, logStreamName=name,
                                              startFromHead=True, **kwargs)
                    lines.update((name, e["message"]) for e in got["events"])
                    if got["nextForwardToken"] == token:
                        break
                    token = got["nextForwardToken"]
    return lines


def test_killed_run_resumes_with_every_line_exactly_once(
    emulator_url: str, tmp_path: Path
) -> None:
    jobs = mixed_jobs()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({
        "defaults": {"role": "arn:aws:iam::123456789012:role/SageMakerRole"}, "jobs": jobs}))
    state = tmp_path / "state"
    args = run_args(manifest, emulator_url, state, "restart-1", tmp_path / "out.json")

    first = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=ENV)
    reader = Reader(first)
    # kill it in the middle: lines of several jobs shown, the longest not finished
    reader.wait_for(lambda ev: len({j for j, _, _ in log_lines(ev)}) >= 3
                    and len(log_lines(ev)) >= 20)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    reader.join()
    before = [(e["stream"], e["message"]) for e in reader.events() if e.get("event") == "log"]
    assert not any(e.get("event") == "finished" for e in reader.events()
                   if e["job"] in ("wide", "score"))

    second = subprocess.run(args, stdout=subprocess.PIPE, text=True, env=ENV, timeout=120)
    assert second.returncode == 0, second.stdout[-3000:]
    after_events = [json.loads(line) for line in second.stdout.splitlines()
                    if line.startswith("{")]
    after = [(e["stream"], e["message"]) for e in after_events if e.get("event") == "log"]

    # SageMaker holds exactly one resource per job: the second run attached
    # (a restarted job's create is answered "already exists": count the names)
    created = Counter(op for op, _name in {
        (r["operation"], r["params"].get(r["operation"].removeprefix("Create") + "Name"))
        for r in admin(emulator_url, "requests") if r["operation"].startswith("Create")
    })
    assert created == Counter({"CreateTrainingJob": 1, "CreateProcessingJob": 1,
                               "CreateHyperParameterTuningJob": 1, "CreateModel": 1,
                               "CreateTransformJob": 1}), created
    # every line CloudWatch has was shown, and none twice, except the one round of
    # lines whose write the kill may have caught before its positions were saved
    # (a sub-millisecond window per round; killing on fresh output aims right at it)
    seen = Counter(before + after)
    assert set(seen) == cloudwatch_lines(emulator_url)
    logs_before = [e for e in reader.events() if e.get("event") == "log"]
    last_round = (logs_before[-1]["job"], logs_before[-1]["time"])
    repeated = {k for k, v in seen.items() if v > 1}
    in_last_round = {(e["stream"], e["message"]) for e in logs_before
                     if (e["job"], e["time"]) == last_round}
    assert repeated <= in_last_round, sorted(repeated - in_last_round)[:5]
    assert max(Counter(after).values()) == 1

    # and the outputs of every job, including those that ended while no one watched
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["ok"] is True
    assert set(result["jobs"]) == {j["name"] for j in jobs}
    assert result["jobs"]["tune"]["outputs"]["best_hyperparameters"]
    assert result["jobs"]["score"]["outputs"]["output_location"] == "s3://bucket/out/"


def test_sigterm_stops_the_jobs_and_exits_143(emulator_url: str, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", {"forever": training(600.0, 1, 50)})
    out = tmp_path / "out.json"
    proc = subprocess.Popen(
        run_args(manifest, emulator_url, tmp_path / "state", "term-1", out),
        stdout=subprocess.PIPE, text=True, env=ENV,
    )
    reader = Reader(proc)
    reader.wait_for(lambda ev: any(e.get("event") == "status" for e in ev))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    reader.join()
    stops = [r for r in admin(emulator_url, "requests") if r["operation"] == "StopTrainingJob"]
    assert len(stops) == 1
    result = json.loads(out.read_text())
    assert result["jobs"]["forever"]["outcome"] == "StoppedByUs"
    assert result["jobs"]["forever"]["status"] == "Stopped"


def test_sigterm_with_detach_leaves_the_job_running(emulator_url: str, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", {"keep": training(600.0, 1, 50)})
    out = tmp_path / "out.json"
    proc = subprocess.Popen(
        [*run_args(manifest, emulator_url, tmp_path / "state", "detach-1", out),
         "--on-cancel", "detach"],
        stdout=subprocess.PIPE, text=True, env=ENV,
    )
    reader = Reader(proc)
    reader.wait_for(lambda ev: any(e.get("event") == "status" for e in ev))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    reader.join()
    assert not [r for r in admin(emulator_url, "requests")
                if r["operation"] == "StopTrainingJob"]
    assert json.loads(out.read_text())["jobs"]["keep"]["outcome"] == "Detached"
