"""Running a KFP v1 component as a Kubeflow Pipelines step, on the engine.

:func:`run_component` takes a component (its v1 interface is in
:mod:`smrun.v1`) and the step's raw arguments: it builds the requests,
validates them with botocore's model (as a small manifest), runs them on a
:class:`Runner` with logs streamed, writes each output to its file as v1 did,
and a Markdown summary for the KFP UI. The job name derives from the KFP run
and task ids, so a restarted pod attaches to its job instead of creating a
second one.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smrun.aws import AwsConfig, EnvironmentProblem
from smrun.engine import Runner, new_run_id
from smrun.events import Event
from smrun.identity import resource_name
from smrun.kind import Kind, console_links
from smrun.manifest import JobSpec, Manifest, ManifestError
from smrun.outputs import write_output_file
from smrun.settings import Settings
from smrun.types import JobResult, Outcome
from smrun.v1 import ArgumentError, Component, Input, InputType

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")


def parse_tags(raw: Any) -> dict[str, str]:
    """The ``tags`` input: a JSON or YAML mapping of tag keys to values."""
    tags = Input("tags", InputType.JSON_OBJECT, {}).parse(raw)
    return {str(k): str(v) for k, v in tags.items()}


def with_tags(manifest: Manifest, tags: Mapping[str, str], kinds: Mapping[str, Kind]) -> Manifest:
    """``manifest`` with ``tags`` on every job; the manifest's own tags win."""
    defaults = dataclasses.replace(manifest.defaults, tags={**tags, **manifest.defaults.tags})
    return Manifest.from_jobs(
        manifest.jobs.values(), kinds=kinds, defaults=defaults, source=manifest.source
    )


def _kfp_id(value: str | None) -> str | None:
    """A KFP id, or None when absent or left as an unfilled placeholder."""
    if not value or "{{" in value:
        return None
    return value


def job_name_for(key: str, run_id: str, task_id: str, max_length: int) -> str:
    """The deterministic resource name of a KFP task's job ``key``: the same run
    and task (a restarted pod) give the same name, so the step attaches."""
    return resource_name(run_id, f"{key}-{task_id}", max_length)


@dataclass
class ComponentRun:
    """What one component run did: the exit code, the result of the component's
    own job and its outputs; ``results`` has every job's, in run order."""

    exit_code: int
    result: JobResult | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    results: dict[str, JobResult] = field(default_factory=dict)
    # set when the environment (credentials, region, endpoints) can't reach AWS
    problem: EnvironmentProblem | None = None


def markdown_summary(
    results: Mapping[str, JobResult],
    region: str,
    kinds: Mapping[str, Kind],
    components: Mapping[str, Component],
) -> str:
    """A Markdown report of jobs for the KFP UI: outcome, links, outputs."""
    paths = {c.kind: c.console_path for c in components.values()}
    lines: list[str] = []
    for key, r in results.items():
        mark = "✅" if r.ok else "❌"
        lines.append(f"### {mark} {key}: {r.kind} `{r.name or '-'}`")
        lines.append("")
        lines.append(f"- outcome: **{r.outcome.value}**" + (f" ({r.status})" if r.status else ""))
        if r.failure_reason:
            lines.append(f"- reason: {r.failure_reason}")
        if r.duration_seconds is not None:
            lines.append(f"- duration: {r.duration_seconds:.0f} s")
        kind = kinds.get(r.kind)
        if r.name and kind is not None:
            for label, url in console_links(region, kind, r.name, paths.get(r.kind, "")).items():
                lines.append(f"- [{label}]({url})")
        for name, value in r.outputs.items():
            text = json.dumps(value) if isinstance(value, dict | list) else str(value)
            lines.append(f"- output `{name}`: `{text}`")
        lines.append("")
    return "\n".join(lines)


def _write_text(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def component_manifest(
    component: Component,
    args: Mapping[str, Any],
    kinds: Mapping[str, Kind],
    *,
    kfp_run_id: str | None = None,
    kfp_task_id: str | None = None,
) -> Manifest:
    """The component's job (or jobs) as a validated manifest, named for the KFP task.

    Error handling: raises :class:`ArgumentError` or :class:`ManifestError`
    for arguments that can't make a valid request; nothing is created."""
    run_id, task_id = _kfp_id(kfp_run_id), _kfp_id(kfp_task_id)
    explicit = str(args.get(component.name_input) or "") if component.name_input else ""
    specs: list[JobSpec] = []
    for key, job in component.jobs(args).items():
        kind = kinds[job.kind]
        request = dict(job.request)
        if key == component.key and explicit:
            request[kind.name_field] = explicit
        elif not request.get(kind.name_field) and run_id and task_id:
            request[kind.name_field] = job_name_for(key, run_id, task_id, kind.max_name_length)
        # else: a fresh run id, and the runner names the job from it (unique)
        specs.append(JobSpec(key=key, kind=job.kind, request=request, after=job.after,
                             options=dict(job.options)))
    return Manifest.from_jobs(specs, kinds=kinds, source=f"{component.name} arguments")


async def run_component(
    component: Component,
    raw_args: Mapping[str, Any],
    *,
    kinds: Mapping[str, Kind],
    components: Mapping[str, Component],
    output_paths: Mapping[str, str] | None = None,
    ui_summary_path: str | None = None,
    kfp_run_id: str | None = None,
    kfp_task_id: str | None = None,
    logs_endpoint_url: str | None = None,
    settings: Settings | None = None,
    sinks: Sequence[Callable[[Event], None]] = (),
    credentials: tuple[str, str] | None = None,
    sts_endpoint_url: str | None = None,
) -> ComponentRun:
    """Run the job (or jobs) of ``component`` from v1 arguments, to the end.

    Bad arguments and requests that botocore's model rejects end with
    ``EXIT_BAD_INPUT`` before anything is created; so does an environment that
    can't reach AWS (see :class:`smrun.aws.EnvironmentProblem`). On success
    every output named in ``output_paths`` is written (JSON for dicts and
    lists, plain text otherwise); the Markdown summary is written whenever a
    job ran. Cancelling the caller's scope (e.g. on SIGTERM) stops the jobs.
    """
    try:
        args = component.parse(raw_args)
        if args["assume_role"] and not _ROLE_ARN.fullmatch(str(args["assume_role"])):
            raise ArgumentError("assume_role", f"{args['assume_role']!r} is not an IAM role "
                                "ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        manifest = component_manifest(
            component, args, kinds, kfp_run_id=kfp_run_id, kfp_task_id=kfp_task_id
        )
    except (ArgumentError, ManifestError) as error:
        return ComponentRun(EXIT_BAD_INPUT, error=str(error))

    region = str(args["region"])
    aws = AwsConfig(
        region=region,
        endpoint_url=args["endpoint_url"] or None,
        logs_endpoint_url=logs_endpoint_url or None,
        sts_endpoint_url=sts_endpoint_url,
        assume_role=args["assume_role"] or None,
        static_credentials=credentials,
    )
    run_id = _kfp_id(kfp_run_id) or new_run_id()
    runner = Runner(aws, kinds=kinds, settings=settings, run_id=run_id, sinks=list(sinks))
    try:
        async with runner:
            await runner.run_manifest(manifest)
    except EnvironmentProblem as problem:
        return ComponentRun(EXIT_BAD_INPUT, error=str(problem), problem=problem)
    finally:
        results = {k: runner.results[k] for k in manifest.order() if k in runner.results}
        ran = {k: r for k, r in results.items() if r.outcome is not Outcome.NOT_STARTED}
        if ui_summary_path and ran:  # with the jobs that could not start, and why
            _write_text(ui_summary_path, markdown_summary(results, region, kinds, components))
    result = results.get(component.key)
    if result is None:
        raise RuntimeError(f"component {component.name}: its job {component.key} has no result")
    if not result.ok:
        # the first job that failed says why (its dependents did not start)
        first = next((r for r in ran.values() if not r.ok), result)
        return ComponentRun(EXIT_FAILED, result, error=first.failure_reason, results=results)
    outputs = {o.name: result.outputs.get(o.name, "") for o in component.outputs}
    for name, path in (output_paths or {}).items():
        if path:
            write_output_file(path, outputs.get(name, ""))
    return ComponentRun(EXIT_OK, result, outputs, results=results)
