"""Matrix jobs in manifests: expansion, `{{ matrix.* }}`, validation per item,
references to items, lists and the best item, limits and names (no network)."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smrun.handlers import KINDS
from smrun.identity import is_ours, resource_name, tag_value, with_our_tags
from smrun.manifest import (
    JobSpec,
    Manifest,
    ManifestError,
    MatrixSpec,
    Reference,
    UnresolvedReference,
    load_manifest,
    parse_template,
)
from smrun.matrix import expand
from smrun.types import JobResult, Outcome

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
HEADER = f"defaults:\n  role: {ROLE}\njobs:\n"
TRAINING_BODY = """\
      AlgorithmSpecification: {TrainingImage: img:1, TrainingInputMode: File}
      OutputDataConfig: {S3OutputPath: "s3://bucket/out"}
      ResourceConfig: {InstanceType: ml.m5.xlarge, InstanceCount: 1, VolumeSizeInGB: 30}
      StoppingCondition: {MaxRuntimeInSeconds: 3600}
"""
NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def load(text: str, **kwargs: Any) -> Manifest:
    return load_manifest(textwrap.dedent(text), kinds=KINDS, source="m.yaml", **kwargs)


def errors_of(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load(text, **kwargs)
    return caught.value.errors


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    found = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return found[occurrence - 1]


def only(errors: list[str], needle: str) -> str:
    found = [e for e in errors if needle in e]
    assert len(found) == 1, errors
    return found[0]


def training(
    name: str, extra: str = "", request_extra: str = "", body: str = TRAINING_BODY
) -> str:
    return f"  - name: {name}\n    kind: training\n{extra}    request:\n{body}{request_extra}"


def sweep(matrix: str, extra: str = "", request_extra: str = "", body: str = TRAINING_BODY) -> str:
    """A training matrix job ``sweep``; ``matrix`` is the YAML under ``matrix:``."""
    block = textwrap.indent(textwrap.dedent(matrix), "      ")
    return training("sweep", f"    matrix:\n{block}{extra}", request_extra, body)


LR_DEPTH = """\
lr: [0.1, 0.2]
depth: [4, 6, 8]
"""


def result(key: str, ok: bool = True, metrics: dict[str, float] | None = None,
           **outputs: Any) -> JobResult:
    details: dict[str, Any] = {"metrics": metrics} if metrics is not None else {}
    return JobResult(key=key, kind="training", name=key,
                     outcome=Outcome.SUCCEEDED if ok else Outcome.FAILED,
                     outputs=outputs, details=details)


# --- expansion -------------------------------------------------------------


def test_product_expands_first_name_slowest_into_item_keys() -> None:
    manifest = load(HEADER + sweep(LR_DEPTH, request_extra=(
        '      HyperParameters: {lr: "{{ matrix.lr }}", depth: "{{ matrix.depth }}"}\n'
    )))
    matrix = manifest.matrices["sweep"]
    assert matrix.items == tuple(f"sweep[{i}]" for i in range(6))
    assert [dict(v) for v in matrix.values] == [
        {"lr": 0.1, "depth": 4}, {"lr": 0.1, "depth": 6}, {"lr": 0.1, "depth": 8},
        {"lr": 0.2, "depth": 4}, {"lr": 0.2, "depth": 6}, {"lr": 0.2, "depth": 8},
    ]
    assert list(manifest.jobs) == list(matrix.items)  # never the template
    item = manifest.jobs["sweep[4]"]
    assert (item.matrix, item.item, dict(item.values)) == ("sweep", 4, {"lr": 0.2, "depth": 6})
    assert item.label == "sweep[4] (lr=0.2, depth=6)"
    assert item.request["HyperParameters"] == {"lr": "0.2", "depth": "6"}
    assert item.request["RoleArn"] == ROLE  # defaults apply to every item
    assert (matrix.kind, matrix.fail_fast, matrix.min_succeeded, matrix.max_parallel) == (
        "training", False, 6, None
    )
    assert matrix.line == 4


def test_list_form_is_exactly_its_items() -> None:
    manifest = load(HEADER + sweep("- {lr: 0.3}\n- {lr: 0.1, depth: 2}\n"))
    assert [dict(v) for v in manifest.matrices["sweep"].values] == [
        {"lr": 0.3}, {"lr": 0.1, "depth": 2}
    ]
    assert manifest.jobs["sweep[1]"].label == "sweep[1] (lr=0.1, depth=2)"


def test_include_extends_matching_items_or_adds_new_ones_as_github_documents() -> None:
    # the example of GitHub Actions' documentation, "Expanding or adding matrix configurations"
    definition = {
        "fruit": ["apple", "pear"],
        "animal": ["cat", "dog"],
        "include": [
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    }
    items, problems = expand(definition, 100)
    assert problems == []
    assert items == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_exclude_removes_partial_matches_and_include_can_add_one_back() -> None:
    definition = {
        "os": ["linux", "windows"],
        "version": [12, 14, 16],
        "exclude": [{"os": "windows"}, {"version": 12}],
        "include": [{"os": "windows", "version": 16, "experimental": True}],
    }
    items, problems = expand(definition, 100)
    assert problems == []
    assert items == [
        {"os": "linux", "version": 14},
        {"os": "linux", "version": 16},
        {"os": "windows", "version": 16, "experimental": True},
    ]


def test_values_match_by_type_not_by_python_equality() -> None:
    items, _ = expand({"n": [1, True, 1.0], "exclude": [{"n": 1}]}, 10)
    assert items == [{"n": True}, {"n": 1.0}]


def test_matrix_definition_errors() -> None:
    text = HEADER + sweep(
        "lr: []\n"
        "Bad.name: [1]\n"
        "exclude:\n"
        "  - {lr: 0.1}\n"
        "  - {dept: 4}\n"
        "include: {x: 1}\n"
    )
    errors = errors_of(text)
    assert only(errors, "lr: must") == (
        f"m.yaml:{line_of(text, 'lr: []')}: job 'sweep': matrix.lr: "
        "must be a non-empty list of values, not []"
    )
    assert only(errors, "matrix name").startswith(
        f"m.yaml:{line_of(text, 'Bad.name')}: job 'sweep': matrix.Bad.name: "
        "matrix name 'Bad.name' must match"
    )
    assert only(errors, "dept") == (
        f"m.yaml:{line_of(text, 'dept')}: job 'sweep': matrix.exclude[1].dept: "
        "'dept' is not a name of the matrix; names: lr, Bad.name"
    )
    assert only(errors, "include") == (
        f"m.yaml:{line_of(text, 'include')}: job 'sweep': matrix.include: "
        "must be a list of mappings, not a dict"
    )
    assert len(errors) == 4, errors


def test_a_matrix_that_excludes_everything_is_an_error() -> None:
    text = HEADER + sweep("lr: [1]\nexclude: [{lr: 1}]\n")
    assert errors_of(text) == [
        "m.yaml:6: job 'sweep': matrix: has no items: 'exclude' removes every combination"
    ]


def test_an_empty_list_form_and_a_scalar_matrix_are_errors() -> None:
    assert errors_of(HEADER + sweep("[]\n").replace("matrix:\n      []", "matrix: []")) == [
        "m.yaml:6: job 'sweep': matrix: is an empty list; a matrix needs at least one item"
    ]
    assert errors_of(HEADER + sweep("3\n").replace("matrix:\n      3", "matrix: 3")) == [
        "m.yaml:6: job 'sweep': matrix: must be a mapping of names to lists of values, "
        "or a list of mappings, not an int"
    ]


# --- {{ matrix.NAME }} -------------------------------------------------------


def test_matrix_values_keep_their_type_or_become_text_where_the_member_is_a_string() -> None:
    body = TRAINING_BODY.replace("InstanceCount: 1", 'InstanceCount: "{{ matrix.count }}"')
    text = HEADER + sweep(
        "- {count: 2, depth: 4, flag: true, rc: {InstanceType: ml.c5.xlarge, InstanceCount: 3,"
        " VolumeSizeInGB: 5}}\n",
        body=body,
        request_extra=(
            "      HyperParameters:\n"
            '        depth: "{{ matrix.depth }}"\n'
            '        flag: "{{ matrix.flag }}"\n'
            '        both: "d{{ matrix.depth }}-{{ matrix.flag }}"\n'
            "      CheckpointConfig:\n"
            '        S3Uri: "s3://bucket/{{ run.id }}/depth={{ matrix.depth }}"\n'
        ),
    )
    request = load(text).jobs["sweep[0]"].request
    assert request["ResourceConfig"]["InstanceCount"] == 2  # an integer member: still an int
    assert request["HyperParameters"] == {"depth": "4", "flag": "true", "both": "d4-true"}
    # other expressions are left for run time
    assert request["CheckpointConfig"]["S3Uri"] == "s3://bucket/{{ run.id }}/depth=4"

    whole = HEADER + sweep(
        "- {rc: {InstanceType: ml.c5.xlarge, InstanceCount: 3, VolumeSizeInGB: 5}}\n",
        body=TRAINING_BODY.replace(
            "ResourceConfig: {InstanceType: ml.m5.xlarge, InstanceCount: 1, VolumeSizeInGB: 30}",
            'ResourceConfig: "{{ matrix.rc }}"',
        ),
    )
    assert load(whole).jobs["sweep[0]"].request["ResourceConfig"] == {
        "InstanceType": "ml.c5.xlarge", "InstanceCount": 3, "VolumeSizeInGB": 5
    }


def test_unknown_matrix_value_names_the_item() -> None:
    text = HEADER + sweep(
        "lr: [0.1]\ninclude: [{lr: 0.1, depth: 4}, {lr: 0.5}]\n",
        request_extra='      HyperParameters: {depth: "{{ matrix.depth }}"}\n',
    )
    line = line_of(text, "HyperParameters")
    assert errors_of(text) == [
        f"m.yaml:{line}: job 'sweep[1] (lr=0.5)': request.HyperParameters.depth: "
        "'{{ matrix.depth }}': no matrix value 'depth'; this item has: lr"
    ]


def test_a_list_value_cannot_be_put_into_text() -> None:
    text = HEADER + sweep(
        "- {ids: [1, 2]}\n",
        request_extra='      HyperParameters: {ids: "ids={{ matrix.ids }}"}\n',
    )
    assert only(errors_of(text), "ids=") == (
        f"m.yaml:{line_of(text, 'HyperParameters')}: job 'sweep[0] (ids=[1,2])': "
        "request.HyperParameters.ids: 'ids={{ matrix.ids }}': matrix value 'ids' is a list; "
        "only strings, numbers and booleans can be put into text"
    )


def test_matrix_expression_in_a_plain_job_is_an_error() -> None:
    text = HEADER + training("a", request_extra='      HyperParameters: {x: "{{ matrix.x }}"}\n')
    assert errors_of(text) == [
        f"m.yaml:{line_of(text, 'HyperParameters')}: job 'a': request.HyperParameters.x: "
        "'{{ matrix.x }}': matrix values exist only in a job with 'matrix:'"
    ]


# --- each item is validated --------------------------------------------------


def test_botocore_error_names_the_item_its_values_the_field_and_the_line() -> None:
    body = TRAINING_BODY.replace("VolumeSizeInGB: 30", 'VolumeSizeInGB: "{{ matrix.size }}"')
    text = HEADER + sweep(
        "lr: [0.1, 0.2]\nsize: [10, 20, big]\n",
        body=body,
        request_extra='      HyperParameters: {lr: "{{ matrix.lr }}"}\n',
    )
    line = line_of(text, "VolumeSizeInGB")
    assert errors_of(text) == [
        f"m.yaml:{line}: job 'sweep[{i}] (lr={lr}, size=big)': "
        "request.ResourceConfig.VolumeSizeInGB: Invalid type for parameter "
        "ResourceConfig.VolumeSizeInGB, value: big, type: <class 'str'>, "
        "valid types: <class 'int'>"
        for i, lr in ((2, "0.1"), (5, "0.2"))
    ]


def test_item_errors_are_capped_at_twenty_per_matrix() -> None:
    text = HEADER + sweep(
        f"n: [{', '.join(map(str, range(30)))}]\n", request_extra="      Bogus: 1\n"
    )
    errors = errors_of(text)
    bogus = line_of(text, "Bogus")
    assert len(errors) == 21
    assert errors[0] == (
        f"m.yaml:{bogus}: job 'sweep[0] (n=0)': request.Bogus: "
        'Unknown parameter in input: "Bogus", must be one of: ' + errors[0].split("one of: ")[1]
    )
    assert [e.split("'")[1] for e in errors[:20]] == [f"sweep[{i}] (n={i})" for i in range(20)]
    assert errors[20] == "m.yaml:4: job 'sweep': ... and 10 more items with errors"


def test_a_matrix_above_the_limit_is_an_error_naming_the_flag() -> None:
    text = HEADER + sweep(LR_DEPTH)
    assert errors_of(text, max_matrix=5) == [
        "m.yaml:6: job 'sweep': matrix: has 6 items, more than the limit of 5; "
        "raise the limit with --max-matrix (max_matrix= in Python)"
    ]
    assert len(load(text, max_matrix=6).jobs) == 6


def test_a_huge_product_is_counted_not_built() -> None:
    values = ", ".join(map(str, range(1000)))
    text = HEADER + sweep(f"a: [{values}]\nb: [{values}]\nc: [{values}]\nexclude: [{{a: 0}}]\n")
    assert errors_of(text) == [
        "m.yaml:6: job 'sweep': matrix: has 999,000,000 items, more than the limit of 10,000; "
        "raise the limit with --max-matrix (max_matrix= in Python)"
    ]
    # when even counting would take too long, the product before exclude is named
    wide = ", ".join(map(str, range(200)))
    text = HEADER + sweep(
        f"a: [{wide}]\nb: [{wide}]\nc: [{wide}]\nexclude: [{{a: 0, b: 0, c: 0}}]\n"
    )
    assert errors_of(text) == [
        "m.yaml:6: job 'sweep': matrix: has 8,000,000 combinations before 'exclude', too many "
        "to expand (the limit is 10,000 items; raise it with --max-matrix)"
    ]
    # exclude can bring a large product under the limit
    small = HEADER + sweep(f"a: [{values}]\nb: [1, 2]\nexclude: [{{b: 2}}]\n")
    assert len(load(small, max_matrix=1000).jobs) == 1000


matrix_values = st.lists(st.sampled_from([0, 1, 2, "x", True]), min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    lists=st.dictionaries(st.sampled_from(["a", "b", "c"]), matrix_values, max_size=3),
    exclude=st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                     st.sampled_from([0, 1, "x"]), min_size=1), max_size=3),
    include=st.lists(st.dictionaries(st.sampled_from(["a", "b", "d"]),
                                     st.sampled_from([0, 1, "y"])), max_size=3),
)
def test_the_count_before_expanding_agrees_with_the_expansion(
    lists: dict[str, list[Any]], exclude: list[dict[str, Any]], include: list[dict[str, Any]]
) -> None:
    exclude = [e for e in exclude if set(e) <= set(lists)]
    definition: dict[str, Any] = {**lists, "exclude": exclude, "include": include}
    items, problems = expand(definition, 1000)
    if problems:
        assert not items
        assert problems[0][1].startswith("has no")
        return
    assert expand(definition, len(items))[0] == items
    # one under the limit: counted without expanding, and the count is exact
    assert expand(definition, len(items) - 1)[1] == [
        ((), f"has {len(items):,} items, more than the limit of {len(items) - 1:,}; "
             "raise the limit with --max-matrix (max_matrix= in Python)")
    ]


# --- job-level keys ----------------------------------------------------------


def test_explicit_name_needs_a_matrix_value() -> None:
    fixed = HEADER + sweep(LR_DEPTH, request_extra="      TrainingJobName: fixed\n")
    assert errors_of(fixed) == [
        f"m.yaml:{line_of(fixed, 'TrainingJobName')}: job 'sweep': request.TrainingJobName: "
        "every item of a matrix job needs its own name: put a '{{ matrix.<name> }}' in it, "
        "or leave it out to name each item from its key"
    ]
    named = HEADER + sweep(
        "depth: [4, 6]\n", request_extra='      TrainingJobName: "d{{ matrix.depth }}"\n'
    )
    jobs = load(named).jobs
    assert [j.request["TrainingJobName"] for j in jobs.values()] == ["d4", "d6"]


def test_matrix_settings_are_read_and_checked() -> None:
    good = load(HEADER + sweep(LR_DEPTH, "    fail_fast: true\n    min_succeeded: 0\n"
                                         "    max_parallel: 2\n"))
    matrix = good.matrices["sweep"]
    assert (matrix.fail_fast, matrix.min_succeeded, matrix.max_parallel) == (True, 0, 2)

    text = HEADER + sweep(LR_DEPTH, "    fail_fast: sometimes\n    min_succeeded: 7\n"
                                    "    max_parallel: 0\n")
    assert errors_of(text) == [
        f"m.yaml:{line_of(text, 'fail_fast')}: job 'sweep': fail_fast: "
        "fail_fast must be true or false, not 'sometimes'",
        f"m.yaml:{line_of(text, 'min_succeeded')}: job 'sweep': min_succeeded: "
        "min_succeeded must be an integer from 0 to 6 (the matrix has 6 items), not 7",
        f"m.yaml:{line_of(text, 'max_parallel')}: job 'sweep': max_parallel: "
        "max_parallel must be a positive integer, not 0",
    ]
    negative = HEADER + sweep(LR_DEPTH, "    min_succeeded: -1\n")
    assert "from 0 to 6 (the matrix has 6 items), not -1" in only(errors_of(negative), "min_")


def test_matrix_settings_on_a_plain_job_are_errors() -> None:
    text = HEADER + training("a", "    max_parallel: 2\n    fail_fast: true\n")
    assert errors_of(text) == [
        f"m.yaml:{line_of(text, 'max_parallel')}: job 'a': max_parallel: "
        "max_parallel limits the items of a matrix job (one with 'matrix:'); to limit other "
        "jobs use defaults.max_parallel (for the whole run, or per kind)",
        f"m.yaml:{line_of(text, 'fail_fast')}: job 'a': fail_fast: "
        "fail_fast is for a matrix job (one with 'matrix:'), and this job has none",
    ]


def test_unknown_job_keys_still_suggest_the_right_one() -> None:
    text = HEADER + sweep(LR_DEPTH, "    fail-fast: true\n")
    assert only(errors_of(text), "fail-fast") == (
        f"m.yaml:{line_of(text, 'fail-fast')}: job 'sweep': fail-fast: "
        "unknown key 'fail-fast'; did you mean 'fail_fast'?"
    )


def test_defaults_max_parallel_for_the_run_or_per_kind() -> None:
    run = load(HEADER.replace("jobs:", "  max_parallel: 8\njobs:") + training("a"))
    assert (run.limits.run, dict(run.limits.kinds)) == (8, {})
    per_kind = load(
        HEADER.replace("jobs:", "  max_parallel: {run: 10, training: 4, transform: 2}\njobs:")
        + training("a")
    )
    assert (per_kind.limits.run, dict(per_kind.limits.kinds)) == (
        10, {"training": 4, "transform": 2}
    )
    assert load(HEADER + training("a")).limits.run is None

    text = HEADER.replace("jobs:", "  max_parallel: {trainig: 4, tuning: 0}\njobs:") + training(
        "a"
    )
    assert errors_of(text) == [
        "m.yaml:3: defaults.max_parallel.trainig: unknown kind 'trainig'; did you mean "
        f"'training'? known kinds: {', '.join(sorted(KINDS))} ('run' is the whole run)",
        "m.yaml:3: defaults.max_parallel.tuning: must be a positive integer, not 0",
    ]
    wrong = HEADER.replace("jobs:", "  max_parallel: lots\njobs:") + training("a")
    assert errors_of(wrong)[0].startswith(
        "m.yaml:3: defaults.max_parallel: must be a positive integer (jobs at once in the "
        "whole run) or a mapping of kind names"
    )


# --- references ------------------------------------------------------------


def consumer(name: str, value: str, extra: str = "") -> str:
    quoted = "'" + value.replace("'", "''") + "'"  # YAML's single quotes
    return training(name, extra, f"      HyperParameters: {{x: {quoted}}}\n")


PROCESS_OF_LIST = """\
  - name: report
    kind: processing
    request:
      ProcessingResources:
        ClusterConfig: {InstanceCount: 1, InstanceType: ml.m5.xlarge, VolumeSizeInGB: 5}
      AppSpecification:
        ImageUri: img
        ContainerArguments: "{{ jobs.sweep.outputs.model_artifact_url }}"
"""

REFERENCES = (
    HEADER
    + sweep("lr: [0.1, 0.2, 0.3]\n")
    + consumer("one", "{{ jobs.sweep[1].outputs.job_name }}")
    + consumer("low", '{{ jobs.sweep.best("validation:rmse").outputs.job_name }}')
    + consumer("high", "{{ jobs.sweep.best('validation:rmse', 'max').outputs.job_name }}")
    + PROCESS_OF_LIST
)


def test_references_to_an_item_a_list_and_the_best_item_resolve_from_results() -> None:
    manifest = load(REFERENCES)
    assert manifest.dependencies("one") == ("sweep[1]",)
    assert manifest.dependencies("low") == ("sweep",)
    assert manifest.dependencies("report") == ("sweep",)
    results = {
        "sweep[0]": result("sweep[0]", metrics={"validation:rmse": 0.5}, job_name="j0",
                           model_artifact_url="s3://m/0"),
        "sweep[1]": result("sweep[1]", ok=False, metrics={"validation:rmse": 0.1},
                           job_name="j1", model_artifact_url="s3://m/1"),
        "sweep[2]": result("sweep[2]", metrics={"validation:rmse": 0.7, "other": 9.0},
                           job_name="j2", model_artifact_url="s3://m/2"),
    }
    assert manifest.resolve("one", results, "r")["HyperParameters"] == {"x": "j1"}
    # the failed item is skipped, however good its metric
    assert manifest.resolve("low", results, "r")["HyperParameters"] == {"x": "j0"}
    assert manifest.resolve("high", results, "r")["HyperParameters"] == {"x": "j2"}
    report = manifest.resolve("report", results, "r")
    assert report["AppSpecification"]["ContainerArguments"] == ["s3://m/0", "s3://m/2"]

    refs = manifest.references("low")
    assert refs == (Reference(
        text='{{ jobs.sweep.best("validation:rmse").outputs.job_name }}', job="sweep",
        output="job_name", aggregate="best", metric="validation:rmse", direction="min",
    ),)
    assert manifest.references("report")[0].aggregate == "all"
    assert manifest.references("one")[0] == Reference(
        "{{ jobs.sweep[1].outputs.job_name }}", "sweep[1]", "job_name", index=1
    )


def test_items_without_the_metric_are_skipped_and_none_is_an_unresolved_reference() -> None:
    manifest = load(REFERENCES)
    results = {
        "sweep[0]": result("sweep[0]", job_name="j0"),
        "sweep[1]": result("sweep[1]", metrics={"validation:rmse": 0.9}, job_name="j1"),
    }
    assert manifest.resolve("low", results, "r")["HyperParameters"] == {"x": "j1"}
    with pytest.raises(UnresolvedReference) as caught:
        manifest.resolve("low", {"sweep[0]": results["sweep[0]"]}, "r")
    assert str(caught.value) == (
        "job 'low': request.HyperParameters.x: "
        '{{ jobs.sweep.best("validation:rmse").outputs.job_name }}: no succeeded item of '
        "matrix 'sweep' has the final metric 'validation:rmse' (1 of 3 items succeeded)"
    )


def test_ties_pick_the_first_item_and_a_tuning_jobs_best_objective_counts() -> None:
    manifest = load(REFERENCES)
    same = {f"sweep[{i}]": result(f"sweep[{i}]", metrics={"validation:rmse": 1.0},
                                  job_name=f"j{i}") for i in range(3)}
    assert manifest.resolve("high", same, "r")["HyperParameters"] == {"x": "j0"}
    tuned = JobResult(key="sweep[2]", kind="tuning", name="t", outcome=Outcome.SUCCEEDED,
                      outputs={"job_name": "t2"},
                      details={"best_objective": {"metric": "validation:rmse", "value": 0.01}})
    assert manifest.resolve("low", {**same, "sweep[2]": tuned}, "r")["HyperParameters"] == {
        "x": "t2"
    }


def test_a_missing_item_output_is_an_unresolved_reference() -> None:
    manifest = load(REFERENCES)
    with pytest.raises(UnresolvedReference, match=r"job 'sweep\[1\]' has no output 'job_name'"):
        manifest.resolve("one", {"sweep[1]": result("sweep[1]")}, "r")


def test_jobspec_resolve_still_serves_plain_and_item_references() -> None:
    spec = JobSpec("x", "training", {"A": "{{ jobs.sweep[2].outputs.n }}", "B": "{{ run.id }}"})
    assert spec.resolve({"sweep[2]": {"n": 3}}, "r1") == {"A": 3, "B": "r1"}


def test_index_out_of_range_and_item_of_a_plain_job() -> None:
    text = (
        HEADER
        + sweep("lr: [0.1, 0.2]\n")
        + training("prep")
        + consumer("a", "{{ jobs.sweep[2].outputs.job_name }}", "    after: ['sweep[5]']\n")
        + consumer("b", "{{ jobs.prep[0].outputs.job_name }}")
        + consumer("c", '{{ jobs.prep.best("loss").outputs.job_name }}')
    )
    errors = errors_of(text)
    assert errors == [
        f"m.yaml:{line_of(text, 'sweep[5]')}: job 'a': after[0]: "
        "index 5 is out of range: matrix 'sweep' has 2 items (sweep[0] to sweep[1])",
        f"m.yaml:{line_of(text, 'sweep[2]')}: job 'a': request.HyperParameters.x: "
        "'{{ jobs.sweep[2].outputs.job_name }}': "
        "index 2 is out of range: matrix 'sweep' has 2 items (sweep[0] to sweep[1])",
        f"m.yaml:{line_of(text, 'prep[0]')}: job 'b': request.HyperParameters.x: "
        "'{{ jobs.prep[0].outputs.job_name }}': job 'prep' is not a matrix job, "
        "so it has no item [0]",
        f"m.yaml:{line_of(text, 'prep.best')}: job 'c': request.HyperParameters.x: "
        "'{{ jobs.prep.best(\"loss\").outputs.job_name }}': job 'prep' is not a matrix job; "
        "best() picks one of a matrix job's items",
    ]


TRANSFORM_MATRIX = """\
  - name: shard
    kind: transform
    matrix: {part: ["0", "1"]}
    request:
      ModelName: m
      TransformInput:
        DataSource:
          S3DataSource: {S3DataType: S3Prefix, S3Uri: "s3://in/{{ matrix.part }}"}
      TransformOutput: {S3OutputPath: "s3://out/{{ matrix.part }}"}
      TransformResources: {InstanceType: ml.m5.large, InstanceCount: 1}
"""


def test_best_on_a_matrix_without_final_metrics_is_an_error() -> None:
    text = HEADER + TRANSFORM_MATRIX + consumer(
        "a", '{{ jobs.shard.best("loss", "max").outputs.output_location }}'
    )
    assert errors_of(text) == [
        f"m.yaml:{line_of(text, 'shard.best')}: job 'a': request.HyperParameters.x: "
        "'{{ jobs.shard.best(\"loss\", \"max\").outputs.output_location }}': best() compares "
        "final metrics, which only training and tuning jobs report; "
        "matrix 'shard' is of kind 'transform'"
    ]


def test_a_list_goes_only_where_a_list_is_taken() -> None:
    text = (
        HEADER
        + sweep("lr: [0.1]\n")
        + consumer("into-text", "all: {{ jobs.sweep.outputs.job_name }}")
        + consumer("into-string", "{{ jobs.sweep.outputs.job_name }}")
    )
    errors = errors_of(text)
    whole = line_of(text, "x: '{{ jobs.sweep.outputs")
    assert errors == [
        f"m.yaml:{line_of(text, 'all: ')}: job 'into-text': request.HyperParameters.x: "
        "'all: {{ jobs.sweep.outputs.job_name }}': the list of output 'job_name' of matrix "
        "'sweep''s succeeded items can't be put into text; pick one item with "
        "'jobs.sweep[<index>]' or 'jobs.sweep.best(\"<metric>\")'",
        f"m.yaml:{whole}: job 'into-string': "
        "request.HyperParameters.x: '{{ jobs.sweep.outputs.job_name }}': the list of output "
        "'job_name' of matrix 'sweep''s succeeded items is a list, but this member takes "
        "a string",
    ]


def test_best_expression_errors() -> None:
    assert parse_template('{{ jobs.s.best("m", "up").outputs.x }}') == (
        "'{{ jobs.s.best(\"m\", \"up\").outputs.x }}': "
        "best()'s direction must be \"min\" or \"max\", not 'up'"
    )
    assert "needs the name of a final metric" in str(
        parse_template('{{ jobs.s.best("").outputs.x }}')
    )
    ref = parse_template("{{jobs.s.best( 'a:b' ,'max' ).outputs.x}}")
    assert isinstance(ref, tuple) and ref[0] == Reference(
        "{{jobs.s.best( 'a:b' ,'max' ).outputs.x}}", "s", "x",
        aggregate="best", metric="a:b", direction="max",
    )


def test_an_item_referring_to_its_own_matrix_is_an_error() -> None:
    text = HEADER + sweep(
        "lr: [0.1, 0.2]\n",
        request_extra='      HyperParameters: {x: "{{ jobs.sweep[0].outputs.job_name }}"}\n',
    )
    errors = errors_of(text)
    assert len(errors) == 2
    assert errors[1] == (
        f"m.yaml:{line_of(text, 'HyperParameters')}: job 'sweep[1] (lr=0.2)': "
        "request.HyperParameters.x: '{{ jobs.sweep[0].outputs.job_name }}': an item can't "
        "refer to its own matrix 'sweep' (its items would wait for each other: "
        "a dependency cycle)"
    )


def test_a_cycle_through_a_matrix_is_named() -> None:
    text = (
        HEADER
        + sweep("lr: [0.1]\n", "    after: [a]\n")
        + consumer("a", "{{ jobs.sweep[0].outputs.job_name }}")
    )
    assert errors_of(text) == [
        "m.yaml:4: job 'sweep': dependency cycle: sweep -> a -> sweep (each waits for the next)"
    ]


# --- the graph ---------------------------------------------------------------


def test_after_a_matrix_means_every_item_and_order_keeps_items_together() -> None:
    text = (
        HEADER
        + training("last", "    after: [sweep, prep]\n")
        + sweep("lr: [0.1, 0.2, 0.3]\n", "    after: [prep]\n")
        + training("prep")
        + training("pick", "    after: ['sweep[2]']\n")
    )
    manifest = load(text)
    assert manifest.dependencies("last") == ("sweep", "prep")
    assert manifest.dependencies("sweep[1]") == ("prep",)
    assert manifest.dependencies("pick") == ("sweep[2]",)
    assert manifest.members("sweep") == ("sweep[0]", "sweep[1]", "sweep[2]")
    assert manifest.members("sweep[1]") == ("sweep[1]",)
    assert manifest.members("prep") == ("prep",)
    with pytest.raises(KeyError):
        manifest.members("nope")
    assert manifest.order() == ["prep", "sweep[0]", "sweep[1]", "sweep[2]", "last", "pick"]


def test_satisfied_counts_min_succeeded_items() -> None:
    manifest = load(HEADER + sweep("lr: [0.1, 0.2, 0.3]\n", "    min_succeeded: 2\n")
                    + training("prep"))
    results = {"sweep[0]": result("sweep[0]"), "sweep[1]": result("sweep[1]", ok=False)}
    assert not manifest.satisfied("sweep", results)  # sweep[2] has no result: not a success
    results["sweep[2]"] = result("sweep[2]")
    assert manifest.satisfied("sweep", results)
    assert manifest.matrices["sweep"].succeeded(results)
    assert not manifest.satisfied("sweep[1]", results)
    assert manifest.satisfied("sweep[2]", results)
    assert not manifest.satisfied("prep", results)
    assert manifest.satisfied("prep", {"prep": result("prep")})


# --- Python construction ---------------------------------------------------


def test_from_jobs_expands_a_template_and_takes_expanded_items_back() -> None:
    request = {
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "HyperParameters": {"lr": "{{ matrix.lr }}"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    spec = JobSpec("sweep", "training", request,
                   matrix_spec=MatrixSpec({"lr": [0.1, 0.2]}, min_succeeded=1, max_parallel=1))
    manifest = Manifest.from_jobs([spec], kinds=KINDS)
    assert manifest.jobs["sweep[1]"].request["HyperParameters"] == {"lr": "0.2"}
    assert manifest.matrices["sweep"].min_succeeded == 1

    again = Manifest.from_jobs(manifest.jobs.values(), kinds=KINDS)
    assert again.jobs == manifest.jobs
    assert again.matrices == manifest.matrices

    items = list(manifest.jobs.values())
    with pytest.raises(ManifestError) as caught:
        Manifest.from_jobs(items[1:], kinds=KINDS)
    assert caught.value.errors == [
        "<python>: job 'sweep': the items of matrix 'sweep' must be numbered 0 to 0, "
        "each once; they are 1"
    ]

    with pytest.raises(ManifestError) as caught:
        Manifest.from_jobs([spec], kinds=KINDS, max_matrix=1)
    assert caught.value.errors == [
        "<python>: job 'sweep': matrix: has 2 items, more than the limit of 1; "
        "raise the limit with --max-matrix (max_matrix= in Python)"
    ]


# --- names and tags --------------------------------------------------------


def test_item_resource_names_are_valid_and_distinct() -> None:
    keys = [f"sweep[{i}]" for i in range(200)] + ["a" * 63 + "[12]"]
    for length in (32, 63):
        names = [resource_name("run-1", key, length) for key in keys]
        assert all(NAME_RE.fullmatch(n) and len(n) <= length for n in names), names
        assert len(set(names)) == len(names)
    assert re.fullmatch(r"sweep-3-[0-9a-f]{8}", resource_name("run-1", "sweep[3]", 63))


def test_tag_value_and_our_tags_agree() -> None:
    assert tag_value("sweep[3]") == "sweep.3"
    assert tag_value("train-model") == "train-model"
    tagged = with_our_tags({"Tags": [{"Key": "team", "Value": "x"}]}, "r1", "sweep[3]", "abc")
    tags = {t["Key"]: t["Value"] for t in tagged["Tags"]}
    assert tags["smrun:job"] == "sweep.3"
    assert is_ours(tags, "r1", "sweep[3]")
    assert not is_ours(tags, "r1", "sweep[4]")
    plain = {t["Key"]: t["Value"] for t in with_our_tags({}, "r1", "train", "d")["Tags"]}
    assert plain["smrun:job"] == "train" and is_ours(plain, "r1", "train")


def test_items_sharing_an_explicit_name_are_an_error() -> None:
    text = HEADER + sweep(
        LR_DEPTH, request_extra='      TrainingJobName: "d{{ matrix.depth }}"\n'
    )
    assert errors_of(text) == [
        f"m.yaml:{line_of(text, 'TrainingJobName')}: job 'sweep': request.TrainingJobName: "
        "items 'sweep[0]' and 'sweep[3]' would both be named 'd4', and 2 more items repeat "
        "an earlier name; every item needs its own name"
    ]


def test_with_tags_keeps_the_matrices_and_limits() -> None:
    from smrun.kfp import with_tags

    manifest = load(
        HEADER.replace("jobs:", "  max_parallel: {training: 3}\njobs:")
        + sweep(LR_DEPTH, "    fail_fast: true\n    min_succeeded: 4\n    max_parallel: 2\n")
    )
    tagged = with_tags(manifest, {"team": "x"}, KINDS)
    assert tagged.matrices == manifest.matrices
    assert tagged.limits == manifest.limits
    assert tagged.jobs["sweep[5]"].request["Tags"] == [{"Key": "team", "Value": "x"}]
