"""Matrix manifests run on the emulator: max_parallel, fail_fast, min_succeeded,
references to items and aggregates, and the KFP run step."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
import yaml

from smrun import Event, Finished, Notice, Outcome, Runner, Settings, Submitted, load_manifest
from smrun.budget import Budgets
from smrun.cli import main_async
from smrun.emulator import Emulator
from tests.conftest import ENV
from tests.helpers import emulator_config
from tests.test_endpoint import emulated_stack, endpoint_request, in_service
from tests.test_restart import Reader, admin, run_args

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)


def training(duration: str = "0.6", outcome: str = "Completed",
             instance_type: str = "ml.m5.large", count: int = 1) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {
            "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "validation:rmse", "Regex": "rmse=([0-9.]+)"}],
        },
        "HyperParameters": {"lr": "{{ matrix.lr }}"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": count,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [
            {"Key": "smrun:emulator:duration", "Value": duration},
            {"Key": "smrun:emulator:outcome", "Value": outcome},
            {"Key": "smrun:emulator:log-lines", "Value": "2"},
        ],
    }


def model(image: str, data: str) -> dict[str, Any]:
    return {"PrimaryContainer": {"Image": image, "ModelDataUrl": data}}


def manifest_text(jobs: list[dict[str, Any]], **defaults: Any) -> str:
    return yaml.safe_dump({"defaults": {"role": ROLE, **defaults}, "jobs": jobs})


# creates as fast as the emulator takes them: the jobs of a test overlap
QUICK_CREATES = {"sagemaker.create": 100.0}


async def run(emulator: Emulator, text: str, **options: Any) -> tuple[dict[str, Any], list[Event]]:
    events: list[Event] = []
    manifest = load_manifest(text)
    settings = Settings.fast(**options)
    budgets = Budgets(QUICK_CREATES, bursts=QUICK_CREATES)
    async with Runner(emulator_config(emulator), settings=settings, budgets=budgets,
                      sinks=[events.append]) as runner:
        results = await runner.run_manifest(manifest)
    return results, events


def peak_concurrency(events: list[Event], keys: set[str]) -> int:
    """The most of ``keys`` between their Submitted and their Finished at once."""
    running = peak = 0
    for event in events:
        if event.job not in keys:
            continue
        if isinstance(event, Submitted):
            running += 1
            peak = max(peak, running)
        elif isinstance(event, Finished) and event.result.name is not None:
            running -= 1
    return peak


async def test_max_parallel_of_a_matrix_is_never_exceeded_and_items_go_in_order(
    emulator: Emulator,
) -> None:
    lrs = [str(n) for n in range(8)]
    text = manifest_text([{
        "name": "sweep", "kind": "training", "matrix": {"lr": lrs}, "max_parallel": 3,
        "request": training(),
    }])
    # the last items run with fewer than list_from jobs of their kind left: they
    # must see their end at once, not after unknown_after (no listing serves them)
    with anyio.fail_after(60):
        results, events = await run(emulator, text, unknown_after=600.0)
    keys = {f"sweep[{i}]" for i in range(8)}
    assert set(results) == keys
    assert all(r.ok for r in results.values())
    assert peak_concurrency(events, keys) == 3
    # and as SageMaker saw it
    assert emulator.concurrency_report()["families"]["training"]["jobs"]["peak"] == 3
    submitted = [e.job for e in events if isinstance(e, Submitted)]
    assert submitted == [f"sweep[{i}]" for i in range(8)]  # manifest (item) order
    # each item got its own value and its own deterministic name
    names = {r.name for r in results.values()}
    assert len(names) == 8 and all(n and n.startswith("sweep-") for n in names)


async def test_a_run_wide_and_a_kind_limit_hold_across_matrices(emulator: Emulator) -> None:
    text = manifest_text([
        {"name": "a", "kind": "training", "matrix": {"lr": ["1", "2", "3", "4"]},
         "request": training()},
        {"name": "b", "kind": "training", "matrix": {"lr": ["5", "6", "7", "8"]},
         "request": training()},
    ], max_parallel={"run": 5, "training": 2})
    results, events = await run(emulator, text)
    assert all(r.ok for r in results.values())
    assert peak_concurrency(events, set(results)) == 2


async def test_fail_fast_stops_the_rest_of_the_matrix_and_its_dependents(
    emulator: Emulator,
) -> None:
    items = [{"lr": str(i), "outcome": "Failed" if i == 1 else "Completed"} for i in range(5)]
    request = training()
    request["Tags"][1]["Value"] = "{{ matrix.outcome }}"
    text = manifest_text([
        {"name": "sweep", "kind": "training", "matrix": items, "max_parallel": 1,
         "fail_fast": True, "request": request},
        {"name": "after", "kind": "training", "after": ["sweep"],
         "request": {**training(), "HyperParameters": {}}},
    ])
    results, _ = await run(emulator, text)
    assert results["sweep[0]"].outcome is Outcome.SUCCEEDED
    assert results["sweep[1]"].outcome is Outcome.FAILED
    for i in (2, 3, 4):
        assert results[f"sweep[{i}]"].outcome is Outcome.NOT_STARTED
        reason = results[f"sweep[{i}]"].failure_reason or ""
        assert "sweep[1] failed and sweep fails fast" in reason
    assert results["after"].outcome is Outcome.NOT_STARTED
    assert "sweep" in (results["after"].failure_reason or "")
    assert emulator.count("CreateTrainingJob") == 2


@pytest.mark.parametrize(("min_succeeded", "dependent"), [(3, Outcome.SUCCEEDED),
                                                          (4, Outcome.NOT_STARTED)])
async def test_min_succeeded_decides_whether_the_matrix_succeeded(
    emulator: Emulator, min_succeeded: int, dependent: Outcome,
) -> None:
    items = [{"lr": str(i), "outcome": "Failed" if i in (0, 3) else "Completed"}
             for i in range(5)]
    request = training()
    request["Tags"][1]["Value"] = "{{ matrix.outcome }}"
    text = manifest_text([
        {"name": "sweep", "kind": "training", "matrix": items,
         "min_succeeded": min_succeeded, "request": request},
        {"name": "model", "kind": "model", "request": model(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1",
            '{{ jobs.sweep.best("validation:rmse").outputs.model_artifact_url }}')},
    ])
    results, _ = await run(emulator, text)
    # fail_fast is off: every item ran to its own end
    assert [results[f"sweep[{i}]"].outcome for i in range(5)] == [
        Outcome.FAILED, Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.FAILED, Outcome.SUCCEEDED]
    assert results["model"].outcome is dependent


async def test_references_to_an_item_to_the_best_and_to_the_list_resolve(
    emulator: Emulator,
) -> None:
    text = manifest_text([
        {"name": "sweep", "kind": "training", "matrix": {"lr": ["0.1", "0.2", "0.3"]},
         "request": training()},
        {"name": "second", "kind": "model", "request": model(
            "{{ jobs.sweep[1].outputs.training_image }}",
            "{{ jobs.sweep[1].outputs.model_artifact_url }}")},
        {"name": "best", "kind": "model", "request": model(
            '{{ jobs.sweep.best("validation:rmse", "max").outputs.training_image }}',
            '{{ jobs.sweep.best("validation:rmse", "max").outputs.model_artifact_url }}')},
    ])
    results, _ = await run(emulator, text)
    assert all(r.ok for r in results.values()), {k: r.failure_reason for k, r in results.items()}
    rmse = {i: results[f"sweep[{i}]"].details["metrics"]["validation:rmse"] for i in range(3)}
    top = max(rmse, key=lambda i: rmse[i])
    created = [params for _, op, params in emulator.requests if op == "CreateModel"]
    by_name = {p["ModelName"]: p["PrimaryContainer"]["ModelDataUrl"] for p in created}
    described = {key: by_name[results[key].name or ""] for key in ("second", "best")}
    assert described["second"] == results["sweep[1]"].outputs["model_artifact_url"]
    assert described["best"] == results[f"sweep[{top}]"].outputs["model_artifact_url"]


async def test_the_kfp_run_step_accepts_a_manifest_with_a_matrix(
    emulator: Emulator, tmp_path: Path
) -> None:
    manifest = {"defaults": {"role": ROLE}, "jobs": [
        {"name": "sweep", "kind": "training", "matrix": {"lr": ["0.1", "0.2"]},
         "max_parallel": 1, "request": training()},
    ]}
    code = await main_async([
        "run", "--manifest-text", json.dumps(manifest), "--region", "us-east-1",
        "--endpoint-url", emulator.url, "--logs-endpoint-url", emulator.url,
        "--sts-endpoint-url", emulator.url,
        "--timing", "fast", "--log-format", "json", "--state-dir", str(tmp_path / "state"),
        "--run-id", "kfp-run", "--task-id", "kfp-task", "--tags", '{"team": "ml"}',
        "--outputs-path", str(tmp_path / "outputs.json"),
    ])
    assert code == 0
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert set(outputs) == {"sweep[0]", "sweep[1]"}
    created = [params for _, op, params in emulator.requests if op == "CreateTrainingJob"]
    assert len(created) == 2
    assert all({"Key": "team", "Value": "ml"} in p["Tags"] for p in created)
    assert {p["HyperParameters"]["lr"] for p in created} == {"0.1", "0.2"}


async def test_a_matrix_over_the_limit_is_refused_before_anything_is_created(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(manifest_text([{
        "name": "grid", "kind": "training",
        "matrix": {"lr": [str(i) for i in range(30)], "depth": [str(i) for i in range(30)]},
        "request": training(),
    }]))
    code = await main_async([
        "run", str(path), "--max-matrix", "500", "--endpoint-url", emulator.url,
        "--logs-endpoint-url", emulator.url, "--sts-endpoint-url", emulator.url,
        "--region", "us-east-1", "--log-format", "json", "--state-dir", str(tmp_path / "s"),
    ])
    assert code == 2
    err = capsys.readouterr().err
    assert "grid" in err and "900" in err and "--max-matrix" in err
    assert emulator.count("CreateTrainingJob") == 0


def _notices(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, Notice)]


# ------------------------------------------------------------ capacity


TRAINING_QUOTA = "ml.m5.large for training job usage"


async def test_resource_limit_exceeded_queues_the_creates_instead_of_failing_them(
    emulator: Emulator,
) -> None:
    emulator.quotas = {TRAINING_QUOTA: 2}
    text = manifest_text([{
        "name": "sweep", "kind": "training", "matrix": {"lr": [str(i) for i in range(6)]},
        "request": training(duration="0.5"),
    }])
    results, events = await run(emulator, text)
    assert all(r.ok for r in results.values()), {k: r.failure_reason for k, r in results.items()}
    report = emulator.concurrency_report()
    assert report["refused"][TRAINING_QUOTA] >= 1
    assert report["families"]["training"]["instance_types"]["ml.m5.large"]["peak"] == 2
    # the four that did not fit at first waited (refused, or in line behind those refused)
    waiting = [m for m in _notices(events) if m.startswith("waiting for capacity")]
    assert len(waiting) == 4
    assert all(TRAINING_QUOTA in m for m in waiting)
    # one probe a job that ends, not a stampede: few refusals past the first four
    assert report["refused"][TRAINING_QUOTA] <= 4 + 6


async def test_with_no_job_ending_before_the_deadline_the_job_fails_naming_the_quota(
    emulator: Emulator,
) -> None:
    emulator.quotas = {TRAINING_QUOTA: 1}
    text = manifest_text([{
        "name": "big", "kind": "training", "matrix": {"lr": ["1"]},
        "request": training(count=2),  # two instances against a quota of one: never fits
    }])
    results, _ = await run(emulator, text, capacity_deadline=1.0)
    result = results["big[0]"]
    assert result.outcome is Outcome.FAILED
    reason = result.failure_reason or ""
    assert TRAINING_QUOTA in reason
    assert "request-service-quota-increase" in reason and "list-service-quotas" in reason
    assert emulator.concurrency_report()["refused"][TRAINING_QUOTA] >= 2  # tried again


async def test_the_shards_example_queues_on_its_quota_and_every_shard_succeeds(
    emulator: Emulator,
) -> None:
    quota = "ml.m5.large for transform job usage"
    emulator.quotas = {quota: 5}
    text = (Path(__file__).resolve().parent.parent / "examples" / "shards.yaml").read_text()
    results, _ = await run(emulator, text)
    assert len(results) == 51 and all(r.ok for r in results.values())
    report = emulator.concurrency_report()
    assert report["families"]["transform"]["instance_types"]["ml.m5.large"]["peak"] == 5
    assert report["refused"][quota] >= 1
    # a job that ends frees capacity for the first in line, not for a new create:
    # about one refusal a shard at most, not one a shard and an end
    assert report["refused"][quota] <= 50


def test_a_run_killed_while_items_wait_for_capacity_resumes_and_creates_nothing_twice(
    emulator_url: str, tmp_path: Path
) -> None:
    post = urllib.request.Request(
        f"{emulator_url}/_emulator/quotas", method="POST",
        data=json.dumps({TRAINING_QUOTA: 2}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(post, timeout=10).close()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(manifest_text([{
        "name": "sweep", "kind": "training", "matrix": {"lr": [str(i) for i in range(6)]},
        "max_parallel": 4, "request": training(duration="3"),
    }]))
    args = run_args(manifest, emulator_url, tmp_path / "state", "queued-1", tmp_path / "out.json")
    first = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=ENV)
    reader = Reader(first)
    # killed while two run and two more wait for capacity
    reader.wait_for(lambda evs: sum(e.get("event") == "submitted" for e in evs) >= 2
                    and any("waiting for capacity" in str(e.get("text")) for e in evs))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    reader.join()

    second = subprocess.run(args, stdout=subprocess.PIPE, text=True, env=ENV, timeout=120)
    assert second.returncode == 0, second.stdout[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["ok"] is True
    assert set(result["jobs"]) == {f"sweep[{i}]" for i in range(6)}
    # one resource a job: the restart attached to those the first run had made
    sagemaker = boto3.client("sagemaker", endpoint_url=emulator_url, region_name="us-east-1",
                             aws_access_key_id="testing", aws_secret_access_key="testing")
    listed = sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    assert len(listed) == 6
    assert {j["TrainingJobName"] for j in listed} == {
        job["name"] for job in result["jobs"].values()}
    report = admin(emulator_url, "concurrency")
    assert report["families"]["training"]["instance_types"]["ml.m5.large"]["peak"] == 2


ENDPOINT_QUOTA = "ml.m5.large for endpoint usage"


async def test_an_endpoint_update_refused_for_capacity_waits_then_goes_through(
    emulator: Emulator,
) -> None:
    await emulated_stack(emulator)  # c1: 2 instances of ml.m5.large; c2: 1
    await in_service(emulator, "ep", "c1")
    emulator.quotas = {ENDPOINT_QUOTA: 2}  # the update's new fleet comes on top of the old
    events: list[Event] = []
    budgets = Budgets(QUICK_CREATES, bursts=QUICK_CREATES)
    async with Runner(emulator_config(emulator), settings=Settings.fast(), budgets=budgets,
                      sinks=[events.append]) as runner:
        job = await runner.submit("update", "endpoint", endpoint_request("c2", "ep"),
                                  options={"update": True})
        with anyio.fail_after(10):
            while not any("waiting for capacity" in m for m in _notices(events)):
                await anyio.sleep(0.02)
        emulator.quotas = {ENDPOINT_QUOTA: 3}  # someone else's endpoint went away
        result = await job.wait()
    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    assert emulator.concurrency_report()["refused"][ENDPOINT_QUOTA] >= 1
    waiting = next(m for m in _notices(events) if "waiting for capacity" in m)
    assert ENDPOINT_QUOTA in waiting


async def test_cancelling_the_run_drops_the_queue_and_stops_what_runs(
    emulator: Emulator,
) -> None:
    emulator.quotas = {TRAINING_QUOTA: 1}
    manifest = load_manifest(manifest_text([{
        "name": "sweep", "kind": "training", "matrix": {"lr": ["1", "2", "3"]},
        "request": training(duration="60"),
    }]))
    events: list[Event] = []
    budgets = Budgets(QUICK_CREATES, bursts=QUICK_CREATES)
    async with Runner(emulator_config(emulator), settings=Settings.fast(), budgets=budgets,
                      sinks=[events.append]) as runner:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(runner.run_manifest, manifest)
                with anyio.fail_after(10):
                    while sum("waiting for capacity" in m for m in _notices(events)) < 2:
                        await anyio.sleep(0.02)
                scope.cancel()
        results = dict(runner.results)
    outcomes = sorted(r.outcome.value for r in results.values())
    assert outcomes == sorted([Outcome.STOPPED_BY_US.value, Outcome.NOT_STARTED.value,
                               Outcome.NOT_STARTED.value]), outcomes
    assert emulator.count("StopTrainingJob") == 1
    assert emulator.count("CreateTrainingJob") >= 3  # one made, two refused, none since
