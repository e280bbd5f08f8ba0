"""smrun: SageMaker jobs on one asyncio engine.

The library API::

    async with Runner(local=True) as runner:
        job = await runner.submit("train", "training", request)
        result = await job.wait()
"""

from runner.aws import AwsConfig
from runner.engine import Runner
from runner.events import Event, Finished, LogLine, Notice, StatusChanged, Submitted
from runner.job import Job, JobResult
from runner.kind import Outcome
from runner.manifest import JobSpec, Manifest, ManifestError, load_manifest
from runner.settings import OnCancel, Settings


async def run_manifest(manifest: Manifest | str, **runner_options: object) -> dict[str, JobResult]:
    """Load (when given a path or YAML text) and run a manifest with a fresh Runner."""
    if isinstance(manifest, str):
        manifest = load_manifest(manifest)
    async with Runner(**runner_options) as runner:  # type: ignore[arg-type]
        return await runner.run_manifest(manifest)


__all__ = [
    "AwsConfig",
    "Event",
    "Finished",
    "Job",
    "JobResult",
    "JobSpec",
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
