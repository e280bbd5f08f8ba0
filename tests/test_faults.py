"""Throttling and transient faults slow the runner down; they never fail a job
or lose a log line. A job the runner can't see ends Unknown, not Failed."""

from __future__ import annotations

from collections import Counter

from runner import LogLine, Outcome, Settings, StatusChanged, Submitted
from runner.emulator import Emulator, FaultConfig
from runner.manifest import JobSpec, Manifest
from tests.test_runner import local_runner, training_request


async def test_throttling_and_5xx_never_change_an_outcome_or_a_line(emulator: Emulator) -> None:
    jobs = {
        "ok-1": training_request(duration=2.0, instances=2, lines=12),
        "ok-2": training_request(duration=3.0, instances=1, lines=15),
        "truly-fails": training_request(duration=1.5, lines=6, outcome="Failed",
                                        reason="AlgorithmError: bad data"),
        "after-ok-1": training_request(duration=1.0, lines=4),
    }
    manifest = Manifest.from_jobs(
        [JobSpec(key, "training", req, after=("ok-1",) if key == "after-ok-1" else ())
         for key, req in jobs.items()]
    )
    emulator.faults = FaultConfig(throttle=0.3, server_error=0.05, seed=11)
    lines: list[LogLine] = []
    async with local_runner(emulator, sinks=[
        lambda e: lines.append(e) if isinstance(e, LogLine) else None
    ]) as runner:
        results = await runner.run_manifest(manifest)
        stats = runner.stats()

    outcomes = {key: r.outcome for key, r in results.items()}
    assert outcomes == {
        "ok-1": Outcome.SUCCEEDED,
        "ok-2": Outcome.SUCCEEDED,
        "truly-fails": Outcome.FAILED,
        "after-ok-1": Outcome.SUCCEEDED,
    }
    assert "bad data" in (results["truly-fails"].failure_reason or "")
    seen = Counter((line.stream, line.message) for line in lines)
    assert max(seen.values()) == 1
    expected = sum(
        r["ResourceConfig"]["InstanceCount"] * int(r["Tags"][1]["Value"]) for r in jobs.values()
    )
    assert len(seen) == expected
    # the faults really happened, and were absorbed
    faulted = Counter(kind for _, kind in emulator.faulted)
    assert faulted["throttle"] > 10
    assert stats["aws"]["retries"] > 0
    # one resource per job even though creates were throttled and retried
    assert emulator.count("CreateTrainingJob") >= len(jobs)
    assert len(emulator.sagemaker.kinds["training"].jobs) == len(jobs)  # type: ignore[attr-defined]
    budgets = {f: (b.acquired, b.throttled, round(b.wait_seconds, 1))
               for f, b in stats["budgets"].items()}
    print("fault figures:", dict(faulted), stats["aws"], budgets)


async def test_a_job_that_cannot_be_seen_ends_unknown(emulator: Emulator) -> None:
    settings = Settings.fast(unknown_after=1.0)
    async with local_runner(emulator, settings=settings) as runner:
        job = await runner.submit("blind", "training", training_request(duration=30))
        async for event in job.events():
            if isinstance(event, Submitted | StatusChanged):
                break
        # from now on every describe fails with a 5xx
        emulator.faults = FaultConfig(
            server_error=1.0, operations=frozenset({"DescribeTrainingJob"}), seed=1
        )
        result = await job.wait()
    assert result.outcome is Outcome.UNKNOWN
    assert result.failure_reason is not None and "no describe" in result.failure_reason
