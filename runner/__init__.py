"""smrun: SageMaker jobs on one asyncio engine.

The library API::

    async with Runner(local=True) as runner:
        job = await runner.submit("train", "training", request)
        result = await job.wait()

This package's own modules never import the built-in handlers; the facade
here, like the CLI, is an entry point that passes them in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from smrun import engine, handlers
from smrun.aws import AwsConfig, EnvironmentProblem, Identity
from smrun.events import Event, Finished, LogLine, Notice, StatusChanged, Submitted
from smrun.job import Job
from smrun.kind import Kind
from smrun.manifest import DEFAULT_MAX_MATRIX, JobSpec, Manifest, ManifestError
from smrun.manifest import load_manifest as _load_manifest
from smrun.settings import OnCancel, Settings
from smrun.types import JobResult, Outcome


class Runner(engine.Runner):
    """:class:`smrun.engine.Runner` with the built-in kinds unless ``kinds`` is given."""

    def __init__(
        self, aws: AwsConfig | None = None, *, kinds: Mapping[str, Kind] | None = None,
        **options: Any,
    ) -> None:
        # read at construction: ``handlers`` may still be importing when this module is
        super().__init__(aws, kinds=handlers.KINDS if kinds is None else kinds, **options)


def load_manifest(
    path_or_text: str | os.PathLike[str],
    *,
    kinds: Mapping[str, Kind] | None = None,
    source: str | None = None,
    max_matrix: int = DEFAULT_MAX_MATRIX,
) -> Manifest:
    """Load and validate a manifest (a path or YAML text); the built-in kinds
    unless ``kinds`` is given (see :func:`smrun.manifest.load_manifest`)."""
    return _load_manifest(
        path_or_text, kinds=handlers.KINDS if kinds is None else kinds, source=source,
        max_matrix=max_matrix,
    )


async def run_manifest(manifest: Manifest | str, **runner_options: Any) -> dict[str, JobResult]:
    """Load (when given a path or YAML text) and run a manifest with a fresh Runner."""
    if isinstance(manifest, str):
        manifest = load_manifest(manifest)
    async with Runner(**runner_options) as runner:
        return await runner.run_manifest(manifest)


__all__ = [
    "AwsConfig",
    "EnvironmentProblem",
    "Event",
    "Finished",
    "Identity",
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
