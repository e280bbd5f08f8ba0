"""The generated KFP v2 components: up to date, v1's names and the right types,
usable in a compiled pipeline, and a pipeline run by kfp.local on the emulator.

(No ``from __future__ import annotations`` here: kfp reads the component
functions' annotations as types.)"""

import functools
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import pytest
import yaml

kfp = pytest.importorskip("kfp")

from kfp import compiler, dsl  # noqa: E402

from components import build  # noqa: E402
from smrun.emulator import Emulator  # noqa: E402
from smrun.handlers import COMPONENTS  # noqa: E402

COMPONENTS_DIR = Path(build.__file__).resolve().parent


def component_yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((COMPONENTS_DIR / name).read_text())
    return data


def test_component_yaml_files_are_up_to_date() -> None:
    assert build.stale() == [], "run `make components` and commit the YAML files"
    expected = {f"{name}.yaml" for name in COMPONENTS} | {"run.yaml"}
    assert expected <= {p.name for p in COMPONENTS_DIR.glob("*.yaml")}


def test_train_yaml_has_v1_names_and_typed_parameters() -> None:
    spec = component_yaml("train.yaml")
    [component] = spec["components"].values()
    inputs = component["inputDefinitions"]["parameters"]
    assert set(inputs) == {s.name for s in COMPONENTS["train"].all_inputs}
    types = {name: p["parameterType"] for name, p in inputs.items()}
    assert types["instance_count"] == "NUMBER_INTEGER"
    assert types["hyperparameters"] == "STRUCT"
    assert types["channels"] == "LIST"
    assert types["network_isolation"] == "BOOLEAN"
    assert types["vpc_subnets"] == "STRING"
    assert inputs["network_isolation"]["defaultValue"] is True
    assert inputs["max_wait_time"]["defaultValue"] == 86400
    assert inputs["tags"]["defaultValue"] == {}
    assert "defaultValue" not in inputs["role"] and "isOptional" not in inputs["role"]
    outputs = component["outputDefinitions"]
    assert set(outputs["parameters"]) == {"model_artifact_url", "job_name", "training_image"}
    assert outputs["artifacts"]["ui_summary"]["artifactType"]["schemaTitle"] == "system.Markdown"

    [executor] = spec["deploymentSpec"]["executors"].values()
    container = executor["container"]
    assert container["command"] == ["smrun", "train"]
    assert container["image"] == build.DEFAULT_IMAGE
    args = container["args"]
    assert args[args.index("--run_id") + 1] == dsl.PIPELINE_JOB_ID_PLACEHOLDER
    assert args[args.index("--task_id") + 1] == dsl.PIPELINE_TASK_ID_PLACEHOLDER
    assert args[args.index("--channels") + 1] == "{{$.inputs.parameters['channels']}}"
    assert "--job_name_output_path" in args


def test_image_is_configurable() -> None:
    text = build.render(build.kind_component(COMPONENTS["train"], "reg/smrun:1.2"))
    assert "image: reg/smrun:1.2" in text


def test_example_pipeline_compiles_to_a_pipeline_spec(tmp_path: Path) -> None:
    from components.examples.mnist_kmeans import mnist_kmeans

    target = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(mnist_kmeans, str(target))
    spec = yaml.safe_load(target.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert len(tasks) == 2
    train = next(t for t in tasks.values() if "training" in t["componentRef"]["name"])
    params = train["inputs"]["parameters"]
    assert params["algorithm_name"]["runtimeValue"]["constant"] == "K-Means"
    assert params["volume_size"]["runtimeValue"]["constant"] == 50
    assert params["region"]["componentInputParameter"] == "region"
    manifest_task = next(t for t in tasks.values() if t is not train)
    assert manifest_task["dependentTasks"] == [train["taskInfo"]["name"]]


# --- kfp.local: a pipeline whose steps call the smrun library --------------------


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def train_step(
    endpoint: str, run_id: str, task_id: str, k: int
) -> NamedTuple("TrainOutputs", [("job_name", str), ("model_artifact_url", str)]):  # type: ignore[valid-type]
    import functools
    import json

    import anyio

    from smrun.handlers import COMPONENTS, KINDS
    from smrun.kfp import run_component
    from smrun.settings import Settings

    arguments = {
        "region": "us-east-1",
        "endpoint_url": endpoint,
        "role": "arn:aws:iam::123456789012:role/SageMakerRole",
        "algorithm_name": "K-Means",
        "hyperparameters": json.dumps({"k": str(k), "feature_dim": "784"}),
        "channels": json.dumps([{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3Uri": "s3://bucket/mnist", "S3DataType": "S3Prefix"}}}]),
        "model_artifact_path": "s3://bucket/output",
        "tags": json.dumps({"smrun:emulator:duration": "0.3", "smrun:emulator:log-lines": "2"}),
    }
    run = anyio.run(functools.partial(
        run_component, COMPONENTS["train"], arguments, kinds=KINDS, components=COMPONENTS,
        kfp_run_id=run_id, kfp_task_id=task_id, logs_endpoint_url=endpoint,
        sts_endpoint_url=endpoint,
        settings=Settings.fast(), credentials=("testing", "testing"),
    ))
    if run.exit_code != 0:
        raise RuntimeError(f"training failed: {run.error}")
    from collections import namedtuple

    outputs = namedtuple("TrainOutputs", ["job_name", "model_artifact_url"])
    return outputs(run.outputs["job_name"], run.outputs["model_artifact_url"])


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def check_model(job_name: str, model_artifact_url: str) -> str:
    if f"/{job_name}/" not in model_artifact_url:
        raise ValueError(f"{model_artifact_url} is not the model of {job_name}")
    return model_artifact_url


@dsl.pipeline
def local_pipeline(endpoint: str, k: int = 10) -> str:
    train = train_step(
        endpoint=endpoint, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER, k=k,
    )
    check = check_model(
        job_name=train.outputs["job_name"],
        model_artifact_url=train.outputs["model_artifact_url"],
    )
    return check.output  # type: ignore[no-any-return]


async def test_kfp_local_pipeline_passes_job_outputs_between_steps(
    emulator: Emulator, tmp_path: Path
) -> None:
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    # kfp.local blocks while its subprocesses run; the emulator serves from this loop
    task = await anyio.to_thread.run_sync(functools.partial(local_pipeline, endpoint=emulator.url))

    [created] = [p for _, op, p in emulator.requests if op == "CreateTrainingJob"]
    name = created["TrainingJobName"]
    assert created["HyperParameters"] == {"k": "10", "feature_dim": "784"}
    assert created["AlgorithmSpecification"]["TrainingImage"].endswith("/kmeans:1")
    assert task.output == f"s3://bucket/output/{name}/output/model.tar.gz"
    # the job is named after the KFP run and task, which kfp.local filled in
    tags = {t["Key"]: t["Value"] for t in created["Tags"]}
    assert name.startswith("train-") and "{{" not in tags["smrun:run-id"]
