"""Throttling and transient faults slow the runner down; they never fail a job
or lose a log line. A job the runner can't see ends Unknown, not Failed."""

from __future__ import annotations

from collections import Counter

import yaml

from smrun import LogLine, Outcome, Settings, StatusChanged, Submitted, load_manifest
from smrun.emulator import Emulator, FaultConfig
from tests.test_restart import mixed_jobs
from tests.test_runner import local_runner, training_request


async def test_throttling_and_5xx_never_change_an_outcome_or_a_line(emulator: Emulator) -> None:
    jobs = [
        *mixed_jobs(),
        {"name": "truly-fails", "kind": "training",
         "request": training_request(duration=1.5, lines=6, outcome="Failed",
                                     reason="AlgorithmError: bad data")},
        {"name": "after-wide", "kind": "training", "after": ["wide"],
         "request": training_request(duration=1.0, lines=4)},
    ]
    manifest = load_manifest(yaml.safe_dump(
        {"defaults": {"role": "arn:aws:iam::123456789012:role/SageMakerRole"}, "jobs": jobs}))
    emulator.faults = FaultConfig(throttle=0.3, server_error=0.05, seed=11)
    lines: list[LogLine] = []
    async with local_runner(emulator, sinks=[
        lambda e: lines.append(e) if isinstance(e, LogLine) else None
    ]) as runner:
        results = await runner.run_manifest(manifest)
        stats = runner.engine.stats()

    outcomes = {key: r.outcome for key, r in results.items()}
    assert outcomes == {job["name"]: Outcome.SUCCEEDED for job in jobs} | {
        "truly-fails": Outcome.FAILED}
    assert "bad data" in (results["truly-fails"].failure_reason or "")
    # every line CloudWatch holds, once
    seen = Counter((line.stream, line.message) for line in lines)
    assert max(seen.values()) == 1
    store = emulator.logs
    held = {(stream, event.message)
            for group in ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs",
                          "/aws/sagemaker/TransformJobs")
            for stream in store.stream_names(group)
            for event in store.events(group, stream)}
    assert set(seen) == held
    # the faults really happened, and were absorbed
    faulted = Counter(kind for _, kind in emulator.faulted)
    assert faulted["throttle"] > 10
    assert stats["aws"]["retries"] >= faulted["throttle"]
    # one resource per job even though creates were throttled and retried
    training_jobs = emulator.sagemaker.kinds["training"].jobs  # type: ignore[attr-defined]
    tuning = str(results["tune"].name).lower()
    ours = sorted(n.rsplit("-", 1)[0] for n in training_jobs if not n.startswith(tuning))
    assert ours == ["after-wide", "truly-fails", "wide"]
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
