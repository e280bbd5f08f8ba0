"""Bad input: exit 2, a message naming the file, job and field, no traceback,
and not a single request reaches SageMaker."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smrun import load_manifest
from smrun.manifest import ManifestError
from tests.conftest import ENV, SMRUN
from tests.test_restart import admin

VALID: dict[str, Any] = {
    "defaults": {"role": "arn:aws:iam::123456789012:role/R", "tags": {"team": "ml"}},
    "jobs": [
        {
            "name": "train",
            "kind": "training",
            "request": {
                "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
                "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
                "ResourceConfig": {
                    "InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            },
        },
        {
            "name": "again",
            "kind": "training",
            "after": ["train"],
            "request": {
                "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
                "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
                "ResourceConfig": {
                    "InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                "HyperParameters": {"model": "{{ jobs.train.outputs.model_artifact_url }}"},
            },
        },
    ],
}


def mutated(change: Any) -> str:
    data = copy.deepcopy(VALID)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


CASES: dict[str, tuple[str, list[str]]] = {
    "malformed yaml": ("jobs:\n  - name: [unclosed\n", ["line"]),
    "unknown kind": (mutated(lambda d: d["jobs"][0].update(kind="trainnig")), ["train", "kind"]),
    "unknown field": (
        mutated(lambda d: d["jobs"][0]["request"].update(TrainingJobNme="x")),
        ["train", "TrainingJobNme"],
    ),
    "wrong type": (
        mutated(lambda d: d["jobs"][0]["request"]["ResourceConfig"].update(InstanceCount="two")),
        ["train", "ResourceConfig.InstanceCount"],
    ),
    "missing required": (
        mutated(lambda d: d["jobs"][0]["request"].pop("OutputDataConfig")),
        ["train", "OutputDataConfig"],
    ),
    "name too long": (
        mutated(lambda d: d["jobs"][0]["request"].update(TrainingJobName="n" * 64)),
        ["train", "TrainingJobName"],
    ),
    "duplicate job names": (
        mutated(lambda d: d["jobs"][1].update(name="train", after=[])),
        ["train", "duplicate"],
    ),
    "bad reference": (
        mutated(lambda d: d["jobs"][1]["request"].update(
            HyperParameters={"m": "{{ jobs.nope.outputs.model_artifact_url }}"})),
        ["again", "nope"],
    ),
    "cycle": (
        mutated(lambda d: d["jobs"][0].update(after=["again"])),
        ["cycle"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_exits_2_names_the_place_and_creates_nothing(
    case: str, emulator_url: str, tmp_path: Path
) -> None:
    text, expected = CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = subprocess.run(
        [*SMRUN, "run", str(path), "--endpoint-url", emulator_url,
         "--logs-endpoint-url", emulator_url,
         "--sts-endpoint-url", emulator_url, "--region", "us-east-1",
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr
    for word in expected:
        assert word in proc.stderr, (word, proc.stderr)
    assert admin(emulator_url, "requests") == []


def test_missing_file_exits_2(tmp_path: Path, emulator_url: str) -> None:
    proc = subprocess.run(
        [*SMRUN, "run", str(tmp_path / "nope.yaml"), "--endpoint-url", emulator_url],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert proc.returncode == 2
    assert "nope.yaml" in proc.stderr and "Traceback" not in proc.stderr
    assert admin(emulator_url, "requests") == []


# --- property: whatever the mutation, loading either succeeds or says why -------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=False),
    st.text(max_size=80), st.just("{{ jobs.train.outputs.model_artifact_url }}"),
    st.just("{{ run.id }}"), st.just("{{ __import__('os') }}"),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(VALID)[1:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "add"]), _values),
        min_size=1, max_size=4,
    )
)
def test_mutated_manifests_never_raise_anything_but_manifest_error(
    edits: list[tuple[tuple[Any, ...], str, Any]],
) -> None:
    data = copy.deepcopy(VALID)
    for path, action, value in edits:
        parent: Any = data
        try:
            for step in path[:-1]:
                parent = parent[step]
            last = path[-1]
            if action == "set":
                parent[last] = value
            elif action == "delete":
                del parent[last]
            elif isinstance(parent, dict):
                parent[f"X{last}"] = value
            elif isinstance(parent, list):
                parent.append(value)
        except (KeyError, IndexError, TypeError):
            continue
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        manifest = load_manifest(text, source="fuzz.yaml")
    except ManifestError as error:
        assert str(error).strip()
        assert all(line.startswith("fuzz.yaml") for line in str(error).split("\n"))
        return
    assert manifest.jobs  # a valid mutation still loads whole


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_is_a_manifest_error_or_a_manifest(text: str) -> None:
    try:
        load_manifest(text + "\n", source="text.yaml")
    except ManifestError as error:
        assert str(error).startswith("text.yaml")
