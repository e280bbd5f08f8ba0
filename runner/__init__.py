"""smrun: SageMaker jobs on one asyncio engine.

The library API::

    import smrun

    async with smrun.Runner(local=True) as runner:
        job = await runner.submit("train", "training", request)
        async for line in job.logs():
            print(line.instance, line.message)
        result = await job.wait()

``smrun.requests`` builds the Create* requests of each kind; ``smrun.testing``
gives a test suite the emulator as a pytest fixture. Everything this module
exports is in ``__all__`` (a test pins it); other modules are the engine's
own and may change.

This package's own modules never import the built-in handlers; the facade
here, like the CLI, is an entry point that passes them in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from smrun import engine, handlers
from smrun.aws import AwsConfig, EnvironmentProblem
from smrun.events import Event, Finished, LogLine, Notice, StatusChanged, Submitted
from smrun.job import Job
from smrun.manifest import DEFAULT_MAX_MATRIX as _DEFAULT_MAX_MATRIX
from smrun.manifest import Manifest, ManifestError
from smrun.manifest import load_manifest as _load_manifest
from smrun.settings import OnCancel, Settings
from smrun.types import JobResult, Outcome

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from smrun.kind import Kind


class Runner(engine.Runner):
    """One run on an engine of its own: ``async with Runner() as runner: ...``.

    ``aws`` says where and as whom (region, endpoints, credentials, a role
    to assume); by default the standard AWS configuration. ``local=True``
    starts the embedded emulator instead. ``kinds`` are the built-in ones
    unless given. The other options are :class:`smrun.engine.RunnerOptions`:
    ``settings`` (timings; :meth:`Settings.fast` for an emulator), ``run_id``
    (the same id attaches to the same jobs after a restart), ``sinks``
    (callables that get every event), ``on_cancel`` (what cancelling does to
    running jobs: :attr:`OnCancel.STOP` by default, or
    :attr:`OnCancel.DETACH`), ``watch``, ``events_queue_url``, ``journal``.

    Entering it checks the environment (region, credentials, endpoints) and
    raises :class:`EnvironmentProblem` with ``.problem`` and ``.fix`` before
    anything is created. Cancelling the task that holds it (or
    :meth:`cancel`) stops or detaches every running job by ``on_cancel``.
    It runs on asyncio (``asyncio.run`` or anyio's asyncio backend) only.
    """

    def __init__(
        self, aws: AwsConfig | None = None, *, kinds: Mapping[str, Kind] | None = None,
        **options: Unpack[engine.RunnerOptions],
    ) -> None:
        # read at construction: ``handlers`` may still be importing when this module is
        super().__init__(aws, kinds=handlers.KINDS if kinds is None else kinds, **options)


def load_manifest(
    path_or_text: str | os.PathLike[str],
    *,
    kinds: Mapping[str, Kind] | None = None,
    source: str | None = None,
    max_matrix: int = _DEFAULT_MAX_MATRIX,
) -> Manifest:
    """Load and validate a manifest (a path, or YAML text) with the built-in
    kinds unless ``kinds`` is given; :class:`ManifestError` lists every problem."""
    return _load_manifest(
        path_or_text, kinds=handlers.KINDS if kinds is None else kinds, source=source,
        max_matrix=max_matrix,
    )


async def run_manifest(
    manifest: Manifest | str | os.PathLike[str],
    *,
    aws: AwsConfig | None = None,
    local: bool = False,
    settings: Settings | None = None,
    run_id: str | None = None,
    sinks: Sequence[Callable[[Event], None]] = (),
    on_cancel: OnCancel | None = None,
) -> dict[str, JobResult]:
    """Run a manifest (or load it first, from a path or YAML text) on a fresh
    :class:`Runner`; every job's result, in manifest order."""
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    async with Runner(aws, local=local, settings=settings, run_id=run_id, sinks=list(sinks),
                      on_cancel=on_cancel) as runner:
        return await runner.run_manifest(manifest)


__all__ = [
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
