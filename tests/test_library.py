"""`import smrun` as a library: the public surface (pinned), asyncio.run and
anyio's asyncio backend, trio refused with a clear error, the caller's
cancellation, Runner.cancel() and Runner.as_completed()."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import anyio
import pytest
import yaml

import smrun
from smrun.emulator import Emulator
from tests.helpers import local_runner
from tests.test_runner import training_request

# the public API; a change here is a change for every user (as httpx pins its own)
PUBLIC = [
    "AwsConfig",
    "EnvironmentProblem",
    "Event",
    "Finished",
    "Job",
    "JobResult",
    "LogLine",
    "Manifest",
    "ManifestError",
    "Notice",
    "OnCancel",
    "Outcome",
    "Runner",
    "Settings",
    "StatusChanged",
    "Submitted",
    "load_manifest",
    "run_manifest",
]


def test_the_public_api_is_exactly_what_all_says() -> None:
    assert smrun.__all__ == PUBLIC
    for name in PUBLIC:
        value = getattr(smrun, name)
        assert inspect.getdoc(value), f"smrun.{name} has no docstring"
    # every class and function of smrun's own that the package shows is in __all__
    shown = {name for name in dir(smrun) if not name.startswith("_")
             and not inspect.ismodule(getattr(smrun, name))
             and getattr(getattr(smrun, name), "__module__", "").startswith("smrun")}
    assert shown == set(PUBLIC)


# what a Runner shows: its run, and the engine under it by one name
RUNNER_SURFACE = {
    "as_completed", "bus", "cancel", "engine", "identity", "job", "jobs", "results", "run_id",
    "run_manifest", "settings", "submit",
}


def test_a_runner_shows_its_run_and_holds_its_engine() -> None:
    runner = smrun.Runner(local=True)
    assert {name for name in dir(runner) if not name.startswith("_")} == RUNNER_SURFACE
    for name in RUNNER_SURFACE - {"engine"}:
        assert inspect.getdoc(getattr(smrun.Runner, name)), f"Runner.{name} has no docstring"
    assert not isinstance(runner, type(runner.engine))


async def one_job(**runner_options: Any) -> smrun.JobResult:
    async with smrun.Runner(local=True, **runner_options) as runner:
        job = await runner.submit("train", "training", training_request(duration=0.5, lines=2))
        lines = [line async for line in job.logs()]
        result = await job.wait()
    assert [(line.instance, line.timestamp > 0) for line in lines] == [("algo-1", True)] * 2
    return result


def test_it_runs_under_plain_asyncio_run() -> None:
    result = asyncio.run(one_job())
    assert result.outcome is smrun.Outcome.SUCCEEDED


def test_it_runs_under_anyios_asyncio_backend() -> None:
    result = anyio.run(one_job, backend="asyncio")
    assert result.outcome is smrun.Outcome.SUCCEEDED


def test_trio_is_refused_with_a_clear_error() -> None:
    # trio is a test dependency: this runs under it, never skipped
    with pytest.raises(RuntimeError, match=r"asyncio only.*trio is not supported"):
        anyio.run(one_job, backend="trio")


@pytest.mark.parametrize(("on_cancel", "outcome", "stops"), [
    (smrun.OnCancel.STOP, smrun.Outcome.STOPPED_BY_US, 1),
    (smrun.OnCancel.DETACH, smrun.Outcome.DETACHED, 0),
])
async def test_cancelling_the_callers_task_stops_or_detaches_by_the_runs_policy(
    emulator: Emulator, on_cancel: smrun.OnCancel, outcome: smrun.Outcome, stops: int,
) -> None:
    jobs: list[smrun.Job] = []

    async def caller() -> None:
        async with local_runner(emulator, on_cancel=on_cancel) as runner:
            job = await runner.submit("long", "training", training_request(duration=60))
            jobs.append(job)
            async for event in job.events():
                if isinstance(event, smrun.StatusChanged):
                    break
            await job.wait()  # cancelled here, from outside

    with anyio.move_on_after(30) as timeout:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            with anyio.fail_after(20):
                while not jobs or emulator.count("DescribeTrainingJob") == 0:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert not timeout.cancelled_caught
    [job] = jobs
    assert job.result is not None and job.result.outcome is outcome
    assert emulator.count("StopTrainingJob") == stops


async def test_runner_cancel_ends_run_manifest_with_each_jobs_result(emulator: Emulator) -> None:
    manifest = smrun.load_manifest(yaml.safe_dump({"jobs": [
        {"name": "long", "kind": "training", "request": training_request(duration=60)},
        {"name": "after", "kind": "training", "after": ["long"],
         "request": training_request(duration=1)},
    ]}))
    async with local_runner(emulator) as runner:
        async with anyio.create_task_group() as tg:
            finished: list[dict[str, smrun.JobResult]] = []

            async def run() -> None:
                finished.append(await runner.run_manifest(manifest))

            tg.start_soon(run)
            with anyio.fail_after(20):
                while emulator.count("CreateTrainingJob") == 0:
                    await anyio.sleep(0.05)
            runner.cancel()
    [results] = finished
    assert results["long"].outcome is smrun.Outcome.STOPPED_BY_US
    assert results["after"].outcome is smrun.Outcome.NOT_STARTED


async def test_as_completed_gives_each_job_in_the_order_they_end(emulator: Emulator) -> None:
    ended: list[str] = []

    def sink(event: smrun.Event) -> None:
        if isinstance(event, smrun.Finished):
            ended.append(event.job)

    async with local_runner(emulator, sinks=[sink]) as runner:
        jobs = [await runner.submit(key, "training", training_request(duration=seconds, lines=1))
                for key, seconds in (("slow", 4.0), ("fast", 0.3), ("middle", 2.0))]
        order = [job.key async for job in runner.as_completed(jobs)]
    assert order == ended  # as they ended, whatever SageMaker's own pace
    assert order[0] == "fast" and order[-1] == "slow"
    assert all(job.result is not None and job.result.ok for job in jobs)
