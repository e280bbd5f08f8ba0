"""Arbitrary v1 component arguments: a clear error or a valid request, never a
traceback; an invalid one never reaches SageMaker, and a valid one reaches it
as the request the component's manifest holds.

Nothing here re-implements ``run_component``'s pre-flight: the manifest comes
from :func:`smrun.kfp.component_manifest`, which ``run_component`` itself
uses, and ``run_component`` is run against an emulator.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smrun.emulator import Emulator, FaultConfig
from smrun.handlers import COMPONENTS, KINDS
from smrun.kfp import EXIT_BAD_INPUT, EXIT_FAILED, component_manifest, run_component
from smrun.manifest import Manifest, ManifestError
from smrun.settings import Settings
from smrun.v1 import ArgumentError, Component
from tests.test_components import v1_arguments
from tests.test_components_hosting import (
    deploy_arguments,
    ground_truth_arguments,
    model_arguments,
    workteam_arguments,
)
from tests.test_components_jobs import process_arguments, transform_arguments, tuning_arguments

NAMES = sorted(COMPONENTS)
# every create is denied: a valid request reaches SageMaker, and nothing runs
CREATES = frozenset(k.create for k in KINDS.values())

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


# arguments each component's own tests run with: valid
VALID: dict[str, Any] = {
    "train": v1_arguments, "hyperparameter_tuning": tuning_arguments,
    "process": process_arguments, "batch_transform": transform_arguments,
    "model": model_arguments, "deploy": deploy_arguments, "workteam": workteam_arguments,
    "ground_truth": ground_truth_arguments,
}


@st.composite
def component_arguments(draw: st.DrawFn) -> tuple[Component, dict[str, Any]]:
    """Anything at all, or valid arguments with a few of them replaced."""
    name = draw(st.sampled_from(NAMES))
    component = COMPONENTS[name]
    # assume_role is left out: any string is taken, and one that is not a role ARN
    # fails later (test_an_assume_role_that_is_not_a_role_arn_is_bad_input)
    inputs = [i.name for i in component.all_inputs if i.name != "assume_role"]
    if draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(inputs), unique=True, max_size=len(inputs)))
        raw = {name: draw(_raw_values) for name in chosen}
        if draw(st.booleans()):
            raw["region"] = "us-east-1"
        return component, raw
    raw = dict(VALID[name]())
    for changed in draw(st.lists(st.sampled_from(inputs), unique=True, max_size=2)):
        raw[changed] = draw(_raw_values)
    return component, raw


def test_every_component_has_valid_arguments_to_start_from() -> None:
    assert set(VALID) == set(COMPONENTS)
    for name, arguments in VALID.items():
        assert manifest_of(COMPONENTS[name], arguments()).jobs


def manifest_of(component: Component, raw: dict[str, Any], **ids: str) -> Manifest:
    """What run_component builds before it creates anything: the same calls."""
    return component_manifest(component, component.parse(raw), KINDS, **ids)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(component_arguments())
def test_arbitrary_arguments_give_a_clear_error_or_a_valid_manifest(
    case: tuple[Component, dict[str, Any]],
) -> None:
    component, raw = case
    try:
        manifest = manifest_of(component, raw)
    except ArgumentError as error:
        assert error.name and str(error)
    except ManifestError as error:
        assert str(error).startswith(f"{component.name} arguments")
    else:
        assert component.key in manifest.jobs
        assert {spec.kind for spec in manifest.jobs.values()} <= set(KINDS)


def test_the_v1_training_arguments_make_a_valid_manifest_named_for_the_kfp_task() -> None:
    """A control for the fuzzing above: valid arguments do get through."""
    manifest = manifest_of(COMPONENTS["train"], v1_arguments(), kfp_run_id="run-1",
                           kfp_task_id="task-7")
    [spec] = manifest.jobs.values()
    assert spec.kind == "training"
    again = manifest_of(COMPONENTS["train"], v1_arguments(), kfp_run_id="run-1",
                        kfp_task_id="task-7")
    name = spec.request["TrainingJobName"]
    assert name == again.jobs[spec.key].request["TrainingJobName"]  # a restarted pod attaches
    with pytest.raises(ArgumentError):
        manifest_of(COMPONENTS["train"], v1_arguments(instance_count="many"))


async def run_it(emulator: Emulator, component: Component, raw: dict[str, Any]) -> Any:
    return await run_component(
        component, {**raw, "endpoint_url": emulator.url},
        kinds=KINDS, components=COMPONENTS, credentials=("testing", "testing"),
        sts_endpoint_url=emulator.url, logs_endpoint_url=emulator.url,
        settings=Settings.fast(),
    )


async def check_run(emulator: Emulator, component: Component, raw: dict[str, Any]) -> None:
    """Run ``component`` for real: invalid arguments end EXIT_BAD_INPUT with nothing
    sent to SageMaker; valid ones send the request of the manifest's first job (every
    create is denied, so nothing runs)."""
    emulator.faults = FaultConfig(deny=CREATES)
    try:
        manifest: Manifest | None = manifest_of(component, raw)
    except (ArgumentError, ManifestError):
        manifest = None
    before = len(emulator.requests)
    run = await run_it(emulator, component, raw)
    if run.problem is not None:
        # e.g. a region that is not one (see test_first_contact): bad input, and
        # nothing was asked of SageMaker
        assert manifest is not None and run.exit_code == EXIT_BAD_INPUT
        assert {s for s, _, _ in emulator.requests[before:]} <= {"sts"}
        return
    sent = [(op, params) for s, op, params in emulator.requests[before:] if s == "sagemaker"]
    if manifest is None:
        assert run.exit_code == EXIT_BAD_INPUT and run.error
        assert sent == []
        return
    assert run.exit_code == EXIT_FAILED, run.error
    assert run.error is not None and "AccessDeniedException" in run.error
    first = manifest.jobs[manifest.order()[0]]
    kind = KINDS[first.kind]
    [(op, params)] = [(op, p) for op, p in sent if op in CREATES]
    assert op == kind.create
    expected = first.resolve({}, "run-id")
    ignored = ("Tags", kind.name_field)
    assert {k: v for k, v in params.items() if k not in ignored} == {
        k: v for k, v in expected.items() if k not in ignored
    }


async def test_run_component_sends_the_request_of_its_manifest(emulator: Emulator) -> None:
    await check_run(emulator, COMPONENTS["train"], v1_arguments())
    assert emulator.count("CreateTrainingJob") == 1
    await check_run(emulator, COMPONENTS["train"], v1_arguments(instance_count="many"))
    assert emulator.count("CreateTrainingJob") == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(component_arguments())
async def test_arbitrary_arguments_reach_sagemaker_only_as_a_valid_request(
    emulator: Emulator, case: tuple[Component, dict[str, Any]]
) -> None:
    component, raw = case
    await check_run(emulator, component, raw)


async def test_an_assume_role_that_is_not_a_role_arn_is_bad_input(emulator: Emulator) -> None:
    run = await run_it(emulator, COMPONENTS["train"], v1_arguments(assume_role="not-a-role"))
    assert run.exit_code == EXIT_BAD_INPUT and run.error
    assert emulator.requests == []


async def test_a_region_that_is_not_one_is_bad_input(emulator: Emulator) -> None:
    run = await run_it(emulator, COMPONENTS["train"], v1_arguments(region="useast1"))
    assert run.exit_code == EXIT_BAD_INPUT
    assert run.error is not None and "useast1" in run.error
    assert emulator.requests == []
