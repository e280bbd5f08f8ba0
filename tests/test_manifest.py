"""Manifest loading, validation, references and resource names (no network)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smrun.handlers import KINDS as BUILTIN_KINDS
from smrun.identity import resource_name
from smrun.kind import Kind
from smrun.manifest import (
    Defaults,
    JobSpec,
    Manifest,
    ManifestError,
    UnresolvedReference,
    load_manifest,
)

TRAINING = Kind(
    name="training",
    create="CreateTrainingJob",
    describe="DescribeTrainingJob",
    name_field="TrainingJobName",
    arn_field="TrainingJobArn",
    status_field="TrainingJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed", "Stopped"}),
    output_types={"model_artifact_url": str, "job_name": str, "training_image": str},
)
TUNING = Kind(
    name="tuning",
    create="CreateHyperParameterTuningJob",
    describe="DescribeHyperParameterTuningJob",
    name_field="HyperParameterTuningJobName",
    arn_field="HyperParameterTuningJobArn",
    status_field="HyperParameterTuningJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed", "Stopped"}),
    max_name_length=32,
    output_types={"best_hyperparameters": dict, "best_job_name": str},
)
PROCESSING = Kind(
    name="processing",
    create="CreateProcessingJob",
    describe="DescribeProcessingJob",
    name_field="ProcessingJobName",
    arn_field="ProcessingJobArn",
    status_field="ProcessingJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed", "Stopped"}),
    output_types={"job_name": str, "output_artifacts": dict, "instance_count": int},
)
KINDS = {kind.name: kind for kind in (TRAINING, TUNING, PROCESSING)}
NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")

# A valid CreateTrainingJob request without RoleArn (defaults supply it) and without a name.
TRAINING_REQUEST = """\
      AlgorithmSpecification: {TrainingImage: img:1, TrainingInputMode: File}
      OutputDataConfig: {S3OutputPath: "s3://bucket/out"}
      ResourceConfig: {InstanceType: ml.m5.xlarge, InstanceCount: 1, VolumeSizeInGB: 30}
      StoppingCondition: {MaxRuntimeInSeconds: 3600}
"""

HEADER = """\
defaults:
  role: arn:aws:iam::123456789012:role/SageMakerRole
  tags: {team: vision}
jobs:
"""


def load(text: str, source: str = "m.yaml") -> Manifest:
    return load_manifest(textwrap.dedent(text), kinds=KINDS, source=source)


def errors_of(text: str, source: str = "m.yaml") -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load(text, source)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


def training_job(name: str, extra: str = "", request_extra: str = "") -> str:
    head = f"  - name: {name}\n    kind: training\n{extra}"
    return f"{head}    request:\n{TRAINING_REQUEST}{request_extra}"


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line of ``text`` containing ``needle``."""
    found = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return found[occurrence - 1]


def only(errors: list[str], needle: str) -> str:
    found = [e for e in errors if needle in e]
    assert len(found) == 1, errors
    return found[0]


# --- a valid manifest ------------------------------------------------------


PIPELINE = (
    HEADER
    + training_job("train-b", "    after: [prepare]\n")
    + "      HyperParameters:\n"
    + '        source: "{{ jobs.prepare.outputs.job_name }}"\n'
    + training_job("prepare")
    + "  - name: tune\n    kind: tuning\n    after: [train-b]\n    request:\n"
    + "      HyperParameterTuningJobConfig:\n"
    + "        Strategy: Bayesian\n"
    + "        ResourceLimits: {MaxParallelTrainingJobs: 2}\n"
    + training_job("train-final", "    timeout: 600\n")
    + '      HyperParameters: "{{ jobs.tune.outputs.best_hyperparameters }}"\n'
    + "      CheckpointConfig:\n"
    + '        S3Uri: "s3://bucket/{{ run.id }}/{{ jobs.train-b.outputs.job_name }}"\n'
)


def test_valid_manifest_loads_in_dependency_order() -> None:
    manifest = load(PIPELINE)
    assert list(manifest.jobs) == ["train-b", "prepare", "tune", "train-final"]
    assert manifest.order() == ["prepare", "train-b", "tune", "train-final"]
    assert manifest.dependencies("train-final") == ("tune", "train-b")


def test_order_is_stable_by_manifest_order_among_independent_jobs() -> None:
    text = HEADER + "".join(training_job(n) for n in ("c", "a", "b"))
    text += training_job("d", "    after: [b, a]\n")
    assert load(text).order() == ["c", "a", "b", "d"]


def test_reference_adds_an_implicit_dependency() -> None:
    manifest = load(PIPELINE)
    assert manifest.jobs["train-b"].after == ("prepare",)
    assert manifest.jobs["train-final"].after == ()
    assert set(manifest.jobs["train-final"].needs) == {"tune", "train-b"}


def test_defaults_fill_role_and_merge_tags_and_timeout() -> None:
    text = (
        HEADER.replace("jobs:\n", "  timeout: 3600\njobs:\n")
        + training_job("a")
        + training_job(
            "b",
            "    timeout: 60\n",
            "      RoleArn: arn:aws:iam::123456789012:role/Own\n"
            "      Tags: [{Key: team, Value: audio}, {Key: owner, Value: me}]\n",
        )
    )
    manifest = load(text)
    a, b = manifest.jobs["a"], manifest.jobs["b"]
    assert a.request["RoleArn"] == "arn:aws:iam::123456789012:role/SageMakerRole"
    assert a.request["Tags"] == [{"Key": "team", "Value": "vision"}]
    assert b.request["RoleArn"] == "arn:aws:iam::123456789012:role/Own"
    assert b.request["Tags"] == [{"Key": "team", "Value": "audio"}, {"Key": "owner", "Value": "me"}]
    assert (a.timeout, b.timeout) == (3600.0, 60.0)
    assert manifest.defaults.tags == {"team": "vision"}


def test_role_default_only_goes_where_the_operation_has_a_role() -> None:
    # CreateHyperParameterTuningJob has no top-level RoleArn: filling it would be rejected
    text = (
        HEADER.replace("jobs:\n", "  region: eu-west-1\njobs:\n")
        + "  - name: tune\n    kind: tuning\n    request:\n"
        + "      HyperParameterTuningJobConfig:\n"
        + "        Strategy: Bayesian\n"
        + "        ResourceLimits: {MaxParallelTrainingJobs: 2}\n"
    )
    manifest = load(text)
    assert "RoleArn" not in manifest.jobs["tune"].request
    assert manifest.jobs["tune"].request["Tags"] == [{"Key": "team", "Value": "vision"}]
    assert manifest.region == "eu-west-1"


def test_load_from_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE)
    assert load_manifest(path, kinds=KINDS).source == str(path)
    assert load_manifest(str(path), kinds=KINDS).order()[0] == "prepare"


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nowhere\.yaml: no such manifest file"):
        load_manifest(tmp_path / "nowhere.yaml", kinds=KINDS)


# --- resolve ---------------------------------------------------------------


def test_resolve_keeps_types_and_interpolates_text() -> None:
    job = load(PIPELINE).jobs["train-final"]
    best = {"lr": "0.1", "depth": "6"}
    outputs: dict[str, dict[str, Any]] = {
        "tune": {"best_hyperparameters": best},
        "train-b": {"job_name": "train-b-1234abcd"},
    }
    request = job.resolve(outputs, "run-7")
    assert request["HyperParameters"] == best
    assert request["HyperParameters"] is not best
    assert request["CheckpointConfig"]["S3Uri"] == "s3://bucket/run-7/train-b-1234abcd"
    assert "{{" in job.request["CheckpointConfig"]["S3Uri"]  # the spec itself is unchanged


def test_resolve_renders_numbers_and_booleans_as_text() -> None:
    spec = JobSpec(
        key="x",
        kind="training",
        request={"A": "n={{ jobs.a.outputs.n }} on={{ jobs.a.outputs.on }}", "B": "{{ run.id }}"},
    )
    resolved = spec.resolve({"a": {"n": 3, "on": True}}, "r1")
    assert resolved == {"A": "n=3 on=true", "B": "r1"}


def test_resolve_names_the_missing_output() -> None:
    job = load(PIPELINE).jobs["train-final"]
    with pytest.raises(UnresolvedReference, match=r"job 'train-final': request\.HyperParameters"):
        job.resolve({"train-b": {"job_name": "x"}}, "r")


# --- YAML-level errors -----------------------------------------------------


def test_malformed_yaml_names_file_line_and_column() -> None:
    errors = errors_of("jobs:\n  - name: a\n    kind: [training\n", source="bad.yaml")
    assert len(errors) == 1
    assert re.match(r"bad\.yaml:\d+:\d+: malformed YAML: ", errors[0]), errors


def test_duplicate_mapping_keys_are_errors() -> None:
    text = HEADER + training_job("a", "    kind: processing\n")
    error = only(errors_of(text), "duplicate key")
    first, again = line_of(text, "kind:"), line_of(text, "kind:", 2)
    assert error == f"m.yaml:{again}: job 'a': kind: duplicate key 'kind' (first at line {first})"


def test_unknown_top_level_and_defaults_keys() -> None:
    text = "job: []\ndefaults: {rol: x}\njobs:\n" + training_job("a")
    errors = errors_of(text)
    assert only(errors, "'job'").startswith(
        "m.yaml:1: job: unknown key 'job'; did you mean 'jobs'?"
    )
    assert only(errors, "'rol'").startswith("m.yaml:2: defaults.rol: unknown key 'rol'")


def test_jobs_missing_or_empty() -> None:
    assert "'jobs:' is missing or empty" in errors_of("defaults: {}\n")[0]
    assert errors_of("jobs: []\n")[0].startswith("m.yaml:1: jobs: 'jobs:' is missing or empty")
    assert "manifest is empty" in errors_of("\n")[0]


# --- job-level errors ------------------------------------------------------


def test_job_without_name_kind_or_request() -> None:
    errors = errors_of("jobs:\n  - kind: training\n    request: {}\n  - name: b\n")
    assert only(errors, "missing 'name'").startswith("m.yaml:2: job '#1': missing 'name'")
    assert only(errors, "missing 'kind'").startswith("m.yaml:4: job 'b': missing 'kind'")
    assert only(errors, "missing 'request'").startswith("m.yaml:4: job 'b': missing 'request'")


def test_unknown_job_key_suggests_the_right_one() -> None:
    text = HEADER + training_job("a", "    nam: b\n")
    assert only(errors_of(text), "'nam'") == (
        "m.yaml:7: job 'a': nam: unknown key 'nam'; did you mean 'name'?"
    )


def test_bad_job_name() -> None:
    text = HEADER + training_job("bad_name")
    assert only(errors_of(text), "bad_name").startswith("m.yaml:5: job '#1': name: name 'bad_name'")


def test_duplicate_job_names() -> None:
    errors = errors_of(HEADER + training_job("a") + training_job("a"))
    assert only(errors, "duplicate job name") == (
        "m.yaml:12: job 'a': name: duplicate job name (first at line 5)"
    )


def test_unknown_kind_lists_known_kinds() -> None:
    text = HEADER + training_job("a").replace("kind: training", "kind: trainin")
    assert only(errors_of(text), "unknown kind") == (
        "m.yaml:6: job 'a': kind: unknown kind 'trainin'; did you mean 'training'? "
        "known kinds: processing, training, tuning"
    )


def test_bad_timeout() -> None:
    text = HEADER + training_job("a", "    timeout: soon\n")
    assert only(errors_of(text), "timeout").startswith(
        "m.yaml:7: job 'a': timeout: timeout must be a positive number"
    )


# --- dependency graph ------------------------------------------------------


def test_after_naming_an_unknown_job() -> None:
    text = HEADER + training_job("train", "    after: [prep]\n")
    assert only(errors_of(text), "no job named") == (
        "m.yaml:7: job 'train': after[0]: no job named 'prep'"
    )


def test_self_dependency() -> None:
    text = HEADER + training_job("a", "    after: [a]\n")
    assert (
        only(errors_of(text), "itself")
        == "m.yaml:7: job 'a': after[0]: a job can't run after itself"
    )


def test_cycle_is_named() -> None:
    text = (
        HEADER
        + training_job("a", "    after: [c]\n")
        + training_job("b", "    after: [a]\n")
        + training_job("c", "    after: [b]\n")
        + training_job("d", "    after: [c]\n")
    )
    errors = errors_of(text)
    assert errors == [
        "m.yaml:5: job 'a': dependency cycle: a -> c -> b -> a (each waits for the next)"
    ]


def test_cycle_through_a_reference() -> None:
    text = (
        HEADER
        + training_job("a", "", '      HyperParameters: {x: "{{ jobs.b.outputs.job_name }}"}\n')
        + training_job("b", "    after: [a]\n")
    )
    assert "dependency cycle: a -> b -> a" in only(errors_of(text), "cycle")


# --- references ------------------------------------------------------------


def test_reference_to_unknown_job_and_to_itself() -> None:
    text = HEADER + training_job(
        "a",
        "",
        "      HyperParameters:\n"
        '        x: "{{ jobs.nope.outputs.job_name }}"\n'
        '        y: "{{ jobs.a.outputs.job_name }}"\n',
    )
    errors = errors_of(text)
    assert only(errors, "no job named") == (
        f"m.yaml:{line_of(text, 'x: ')}: job 'a': request.HyperParameters.x: "
        "'{{ jobs.nope.outputs.job_name }}': no job named 'nope'"
    )
    assert only(errors, "own outputs").startswith(
        f"m.yaml:{line_of(text, 'y: ')}: job 'a': request.HyperParameters.y:"
    )


def test_reference_to_an_undeclared_output_lists_the_declared_ones() -> None:
    text = (
        HEADER
        + training_job("a")
        + training_job("b", "", '      HyperParameters: {x: "{{ jobs.a.outputs.model }}"}\n')
    )
    assert only(errors_of(text), "has no output") == (
        "m.yaml:19: job 'b': request.HyperParameters.x: '{{ jobs.a.outputs.model }}': "
        "kind 'training' has no output 'model' "
        "(outputs: job_name, model_artifact_url, training_image)"
    )


def test_unsupported_expression_is_an_error() -> None:
    text = HEADER + training_job("a", "", '      Environment: {HOME: "{{ env.HOME }}"}\n')
    assert only(errors_of(text), "unsupported").startswith(
        f"m.yaml:{line_of(text, 'Environment')}: job 'a': request.Environment.HOME: "
        "unsupported expression '{{ env.HOME }}'"
    )


def test_dict_output_into_a_string_member_is_a_type_error() -> None:
    text = (
        HEADER
        + "  - name: tune\n    kind: tuning\n    request:\n"
        + "      HyperParameterTuningJobConfig:\n"
        + "        Strategy: Bayesian\n"
        + "        ResourceLimits: {MaxParallelTrainingJobs: 2}\n"
        + training_job("a").replace(
            "TrainingImage: img:1", 'TrainingImage: "{{ jobs.tune.outputs.best_hyperparameters }}"'
        )
    )
    assert only(errors_of(text), "best_hyperparameters") == (
        "m.yaml:14: job 'a': request.AlgorithmSpecification.TrainingImage: "
        "'{{ jobs.tune.outputs.best_hyperparameters }}': "
        "output 'best_hyperparameters' is a dict, but this member takes a string"
    )


def test_dict_output_cannot_be_interpolated_into_text() -> None:
    text = (
        HEADER
        + PROCESS
        + training_job(
            "a", "", '      Environment: {X: "a-{{ jobs.p.outputs.output_artifacts }}"}\n'
        )
    )
    assert only(errors_of(text), "output_artifacts").endswith(
        "output 'output_artifacts' is a dict; "
        "only strings, numbers and booleans can be put into text"
    )


# --- botocore validation ---------------------------------------------------


def test_request_type_error_names_file_line_job_and_field() -> None:
    text = HEADER + training_job("train-a").replace("InstanceCount: 1", "InstanceCount: two")
    assert errors_of(text, source="examples/x.yaml") == [
        f"examples/x.yaml:{line_of(text, 'InstanceCount')}: job 'train-a': "
        "request.ResourceConfig.InstanceCount: "
        "Invalid type for parameter ResourceConfig.InstanceCount, value: two, "
        "type: <class 'str'>, valid types: <class 'int'>"
    ]


def test_all_errors_are_collected() -> None:
    text = (
        HEADER
        + training_job("a", "", "      Bogus: 1\n      HyperParameters: {epochs: 10}\n")
        + "  - name: b\n    kind: training\n    request: {}\n"
    )
    errors = errors_of(text)
    assert len(errors) == 3, errors
    bogus, epochs = line_of(text, "Bogus"), line_of(text, "epochs")
    request_b = line_of(text, "request: {}")
    assert errors[0].startswith(
        f"m.yaml:{bogus}: job 'a': request.Bogus: Unknown parameter in input: \"Bogus\""
    )
    assert errors[1].startswith(
        f"m.yaml:{epochs}: job 'a': request.HyperParameters.epochs: Invalid type"
    )
    assert errors[1].endswith("(quote the value in YAML to make it a string)")
    assert errors[2] == (
        f"m.yaml:{request_b}: job 'b': request: "
        'Missing required parameter in input: "OutputDataConfig"'
    )


def test_missing_role_without_a_default_is_reported() -> None:
    text = "jobs:\n" + training_job("a")
    assert errors_of(text) == [
        "m.yaml:4: job 'a': request: Missing required parameter in input: \"RoleArn\""
    ]


PROCESS = """\
  - name: p
    kind: processing
    request:
      ProcessingResources:
        ClusterConfig: {InstanceCount: 1, InstanceType: ml.m5.xlarge, VolumeSizeInGB: 5}
      AppSpecification: {ImageUri: img}
"""


def test_a_whole_reference_is_checked_by_its_declared_type_not_its_text() -> None:
    # the reference text is a str; what counts is the int the output will be
    fits = (
        HEADER
        + PROCESS
        + training_job("a").replace(
            "InstanceCount: 1", 'InstanceCount: "{{ jobs.p.outputs.instance_count }}"'
        )
    )
    assert load(fits).jobs["a"].needs == ("p",)

    wrong = (
        HEADER
        + PROCESS
        + training_job("a").replace(
            "InstanceCount: 1", 'InstanceCount: "{{ jobs.p.outputs.job_name }}"'
        )
    )
    assert errors_of(wrong) == [
        f"m.yaml:{line_of(wrong, 'InstanceCount', 2)}: job 'a': "
        "request.ResourceConfig.InstanceCount: '{{ jobs.p.outputs.job_name }}': "
        "output 'job_name' is a str, but this member takes an integer"
    ]


def test_interpolated_reference_in_a_number_member_is_a_botocore_error() -> None:
    text = (
        HEADER
        + PROCESS
        + training_job("a").replace(
            "InstanceCount: 1", 'InstanceCount: "{{ jobs.p.outputs.instance_count }}0"'
        )
    )
    assert "request.ResourceConfig.InstanceCount: Invalid type" in only(errors_of(text), "Invalid")


def test_a_malformed_job_is_reported_once_not_again_by_its_dependents() -> None:
    text = (
        HEADER
        + "  - name: p\n    kind: processing\n"
        + training_job(
            "a", "    after: [p]\n", '      HyperParameters: {x: "{{ jobs.p.outputs.job_name }}"}\n'
        )
    )
    assert errors_of(text) == [f"m.yaml:{line_of(text, 'name: p')}: job 'p': missing 'request'"]


@pytest.mark.parametrize(
    ("kind", "name", "problem"),
    [
        ("training", "x" * 64, "is 64 characters; at most 63 are allowed"),
        ("training", "ends-", "must match"),
        ("tuning", "t" * 33, "is 33 characters; at most 32 are allowed"),
    ],
)
def test_explicit_names_are_checked_against_length_and_pattern(
    kind: str, name: str, problem: str
) -> None:
    member = KINDS[kind].name_field
    body = (
        TRAINING_REQUEST
        if kind == "training"
        else "      HyperParameterTuningJobConfig:\n        Strategy: Bayesian\n"
        "        ResourceLimits: {MaxParallelTrainingJobs: 1}\n"
    )
    text = HEADER + f"  - name: j\n    kind: {kind}\n    request:\n      {member}: {name}\n" + body
    error = only(errors_of(text), problem)
    assert error.startswith(f"m.yaml:8: job 'j': request.{member}: name '{name}'")


# --- Python construction ---------------------------------------------------


def test_from_jobs_validates_like_yaml_and_applies_defaults() -> None:
    request = {
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    defaults = Defaults(role="arn:aws:iam::1:role/R", timeout=10)
    manifest = Manifest.from_jobs(
        [
            JobSpec(
                "second",
                "training",
                {**request, "HyperParameters": {"a": "{{ jobs.first.outputs.job_name }}"}},
            ),
            JobSpec("first", "training", request),
        ],
        defaults=defaults,
        kinds=KINDS,
    )
    assert manifest.order() == ["first", "second"]
    assert manifest.jobs["first"].request["RoleArn"] == "arn:aws:iam::1:role/R"
    assert manifest.jobs["first"].timeout == 10
    assert "RoleArn" not in request

    with pytest.raises(ManifestError) as caught:
        Manifest.from_jobs([JobSpec("x", "training", {"Bogus": 1})], kinds=KINDS)
    assert all(e.startswith("<python>: job 'x': request") for e in caught.value.errors)


# --- resource names --------------------------------------------------------


job_keys = st.from_regex(r"\A[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")


@given(run_id=st.text(min_size=1, max_size=80), key=job_keys, max_length=st.sampled_from([32, 63]))
def test_resource_name_fits_sagemaker(run_id: str, key: str, max_length: int) -> None:
    name = resource_name(run_id, key, max_length)
    assert len(name) <= max_length
    assert NAME_RE.fullmatch(name), name
    assert name == resource_name(run_id, key, max_length)


@given(run_id=st.text(min_size=1, max_size=20), a=job_keys, b=job_keys)
def test_resource_names_differ_for_different_keys(run_id: str, a: str, b: str) -> None:
    if a != b:
        assert resource_name(run_id, a, 32) != resource_name(run_id, b, 32)


def test_resource_name_is_readable_and_run_specific() -> None:
    name = resource_name("run-1", "train-model", 63)
    assert re.fullmatch(r"train-model-[0-9a-f]{8}", name)
    assert resource_name("run-2", "train-model", 63) != name
    long_key = "a" * 22 + "-b" + "c" * 30
    short = resource_name("run-1", long_key, 32)
    # the cut falls right after a hyphen, which must not be left dangling
    assert re.fullmatch("a" * 22 + "-[0-9a-f]{8}", short)


def test_default_role_fills_a_tuning_jobs_nested_role() -> None:
    manifest = load_manifest(
        "defaults: {role: 'arn:aws:iam::123456789012:role/R'}\n"
        "jobs:\n"
        "  - name: tune\n"
        "    kind: tuning\n"
        "    request:\n"
        "      HyperParameterTuningJobConfig:\n"
        "        Strategy: Random\n"
        "        ResourceLimits: {MaxNumberOfTrainingJobs: 2, MaxParallelTrainingJobs: 1}\n"
        "      TrainingJobDefinition:\n"
        "        AlgorithmSpecification: {TrainingImage: 'i:1', TrainingInputMode: File}\n"
        "        OutputDataConfig: {S3OutputPath: 's3://b/o'}\n"
        "        ResourceConfig: {InstanceType: ml.m5.large, InstanceCount: 1,"
        " VolumeSizeInGB: 10}\n"
        "        StoppingCondition: {MaxRuntimeInSeconds: 60}\n",
        kinds=BUILTIN_KINDS,
    )
    definition = manifest.jobs["tune"].request["TrainingJobDefinition"]
    assert definition["RoleArn"] == "arn:aws:iam::123456789012:role/R"
    assert "RoleArn" not in manifest.jobs["tune"].request
