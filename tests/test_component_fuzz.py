"""Arbitrary v1 component arguments: a clear error or a valid request, never a
traceback; and an invalid one never reaches SageMaker."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.component import ArgumentError, Component, discover_components, run_component
from runner.emulator import Emulator
from runner.manifest import JobSpec, Manifest, ManifestError

COMPONENTS = discover_components()
NAMES = sorted(COMPONENTS)

# what a KFP placeholder, a person or a broken pipeline may pass as a string
_raw_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "True", "False", "true", "0", "-1", "1e9", "[]", "{}", "null",
                     "a,b,,c", "ml.m5.large", "s3://bucket/prefix", "{{$.inputs}}"]),
    st.integers(-5, 10**6).map(str),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3).map(json.dumps),
    st.lists(st.dictionaries(st.sampled_from(["ChannelName", "S3Uri", "x"]),
                             st.text(max_size=8), max_size=2), max_size=2).map(json.dumps),
)


@st.composite
def component_arguments(draw: st.DrawFn) -> tuple[Component, dict[str, Any]]:
    component = COMPONENTS[draw(st.sampled_from(NAMES))]
    inputs = [i.name for i in component.all_inputs]
    chosen = draw(st.lists(st.sampled_from(inputs), unique=True, max_size=len(inputs)))
    raw = {name: draw(_raw_values) for name in chosen}
    if draw(st.booleans()):
        raw["region"] = "us-east-1"
    return component, raw


def translate(component: Component, raw: dict[str, Any]) -> Manifest:
    """What run_component does before it creates anything."""
    args = component.parse(raw)
    specs = [
        JobSpec(key=key, kind=job.kind, request=dict(job.request), after=job.after,
                options=dict(job.options))
        for key, job in component.jobs(args).items()
    ]
    return Manifest.from_jobs(specs, source=f"{component.name} arguments")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(component_arguments())
def test_arbitrary_arguments_give_a_clear_error_or_a_valid_manifest(
    case: tuple[Component, dict[str, Any]],
) -> None:
    component, raw = case
    try:
        manifest = translate(component, raw)
    except ArgumentError as error:
        assert error.name and str(error)
    except ManifestError as error:
        assert str(error).startswith(f"{component.name} arguments")
    else:
        assert manifest.jobs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(component_arguments())
async def test_invalid_arguments_never_reach_sagemaker(
    emulator: Emulator, case: tuple[Component, dict[str, Any]]
) -> None:
    component, raw = case
    try:
        translate(component, raw)
    except (ArgumentError, ManifestError):
        pass
    else:
        return  # valid: running it would (rightly) create the job
    before = len(emulator.requests)
    run = await run_component(component, {**raw, "endpoint_url": emulator.url},
                              credentials=("testing", "testing"))
    assert run.exit_code == 2
    assert len(emulator.requests) == before
