"""The example pipelines in components/pipelines: each compiles to a pipeline spec
with the expected tasks and wiring, and every task's arguments make a request that
botocore's model accepts (as the step itself would check them before creating
anything).

(No ``from __future__ import annotations`` here: kfp reads annotations as types.)"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

kfp = pytest.importorskip("kfp")

from kfp import compiler  # noqa: E402

from smrun import load_manifest  # noqa: E402
from smrun.handlers import COMPONENTS, KINDS  # noqa: E402
from smrun.manifest import JobSpec, Manifest  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
# what an upstream step would produce, by output name, to check the arguments it feeds
UPSTREAM = {
    "training_image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
    "best_hyperparameters": {"k": "10", "feature_dim": "784", "mini_batch_size": "500"},
    "job_name": "mnist-train-1",
    "model_artifact_url": "s3://my-bucket/mnist_kmeans_example/output/model.tar.gz",
    "model_name": "mnist-model-1",
    "workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/birds",
}


def compile_to_spec(pipeline: Callable[..., Any], tmp_path: Path) -> dict[str, Any]:
    target = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(target))
    spec: dict[str, Any] = yaml.safe_load(target.read_text())
    return spec


def tasks_by_command(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pipeline's tasks by the ``smrun`` subcommand their container runs."""
    executors = spec["deploymentSpec"]["executors"]
    components = spec["components"]
    found: dict[str, dict[str, Any]] = {}
    for task in spec["root"]["dag"]["tasks"].values():
        executor = components[task["componentRef"]["name"]]["executorLabel"]
        command = executors[executor]["container"]["command"]
        assert command[0] == "smrun"
        assert command[1] not in found, f"two {command[1]} tasks"
        found[command[1]] = task
    return found


def name_of(tasks: dict[str, dict[str, Any]], command: str) -> str:
    return str(tasks[command]["taskInfo"]["name"])


def fed_by(task: dict[str, Any], parameter: str) -> tuple[str, str]:
    """``(producer task, output)`` of an argument wired to an upstream output."""
    source = task["inputs"]["parameters"][parameter]["taskOutputParameter"]
    return source["producerTask"], source["outputParameterKey"]


def arguments(task: dict[str, Any], pipeline_args: dict[str, Any]) -> dict[str, Any]:
    """The task's argument values: constants, pipeline arguments, upstream outputs."""
    values: dict[str, Any] = {}
    for name, source in task["inputs"]["parameters"].items():
        if "runtimeValue" in source:
            values[name] = source["runtimeValue"]["constant"]
        elif "componentInputParameter" in source:
            values[name] = pipeline_args[source["componentInputParameter"]]
        else:
            values[name] = UPSTREAM[source["taskOutputParameter"]["outputParameterKey"]]
    return values


def assert_makes_a_valid_request(command: str, task: dict[str, Any],
                                 pipeline_args: dict[str, Any]) -> dict[str, Any]:
    """The request of the component's own job; every job it makes is validated."""
    component = COMPONENTS[command]
    jobs = component.jobs(component.parse(arguments(task, pipeline_args)))
    Manifest.from_jobs([JobSpec(key=key, kind=job.kind, request=job.request,
                                options=job.options, after=job.after)
                        for key, job in jobs.items()], kinds=KINDS)
    return jobs[component.key].request


def test_mnist_classification_wires_tuning_training_model_then_deploy_and_transform(
    tmp_path: Path,
) -> None:
    from components.pipelines.mnist_classification import mnist_classification

    spec = compile_to_spec(mnist_classification, tmp_path)
    tasks = tasks_by_command(spec)
    assert set(tasks) == {"process", "hyperparameter_tuning", "train", "model", "deploy",
                          "batch_transform"}
    process, tune, train, model = (name_of(tasks, c) for c in
                                   ("process", "hyperparameter_tuning", "train", "model"))
    assert "dependentTasks" not in tasks["process"]
    assert tasks["hyperparameter_tuning"]["dependentTasks"] == [process]
    assert fed_by(tasks["train"], "hyperparameters") == (tune, "best_hyperparameters")
    assert fed_by(tasks["train"], "image") == (tune, "training_image")
    assert fed_by(tasks["model"], "model_artifact_url") == (train, "model_artifact_url")
    assert fed_by(tasks["model"], "model_name") == (train, "job_name")
    assert fed_by(tasks["model"], "image") == (train, "training_image")
    # deploy and batch transform both follow the model, and not each other
    assert fed_by(tasks["deploy"], "model_name_1") == (model, "model_name")
    assert fed_by(tasks["batch_transform"], "model_name") == (model, "model_name")
    assert tasks["deploy"]["dependentTasks"] == [model]
    assert sorted(tasks["batch_transform"]["dependentTasks"]) == sorted([model, process])
    assert spec["root"]["inputDefinitions"]["parameters"]["role"]["parameterType"] == "STRING"

    pipeline_args = {"role": ROLE, "region": "us-east-1", "instance_type": "ml.m5.2xlarge"}
    requests = {c: assert_makes_a_valid_request(c, t, pipeline_args) for c, t in tasks.items()}
    # the splits the processing job writes are what tuning and training read
    written = {o["S3Output"]["S3Uri"]
               for o in requests["process"]["ProcessingOutputConfig"]["Outputs"]}
    for command in ("hyperparameter_tuning", "train"):
        request = requests[command]
        channels = (request.get("TrainingJobDefinition") or request)["InputDataConfig"]
        assert {c["DataSource"]["S3DataSource"]["S3Uri"] for c in channels} <= written
    transform_input = requests["batch_transform"]["TransformInput"]["DataSource"]["S3DataSource"]
    assert transform_input["S3Uri"] in written
    tuning = requests["hyperparameter_tuning"]["HyperParameterTuningJobConfig"]
    assert tuning["HyperParameterTuningJobObjective"] == {"Type": "Minimize",
                                                          "MetricName": "test:msd"}


def test_the_manifest_step_runs_the_mnist_manifest_in_one_task(tmp_path: Path) -> None:
    from components.pipelines import mnist_manifest_step

    spec = compile_to_spec(mnist_manifest_step.mnist_manifest_step, tmp_path)
    tasks = tasks_by_command(spec)
    assert set(tasks) == {"run"}
    manifest_text = tasks["run"]["inputs"]["parameters"]["manifest"]["runtimeValue"]["constant"]
    example = Path(__file__).resolve().parent.parent / "examples" / "mnist-pipeline.yaml"
    assert manifest_text == example.read_text()
    manifest = load_manifest(manifest_text, source="the manifest step")
    assert {j.kind for j in manifest.jobs.values()} == {
        "processing", "tuning", "training", "model", "endpoint_config", "endpoint", "transform"
    }
    region = tasks["run"]["inputs"]["parameters"]["region"]
    assert region == {"componentInputParameter": "region"}


def test_the_manifest_steps_fallback_is_a_valid_manifest() -> None:
    from components.pipelines.mnist_manifest_step import FALLBACK

    manifest = load_manifest(FALLBACK)
    assert manifest.order() == ["train", "model"]


def test_ground_truth_gives_the_workteam_to_the_labeling_job(tmp_path: Path) -> None:
    from components.pipelines.ground_truth import ground_truth

    spec = compile_to_spec(ground_truth, tmp_path)
    tasks = tasks_by_command(spec)
    assert set(tasks) == {"workteam", "ground_truth"}
    assert fed_by(tasks["ground_truth"], "workteam_arn") == (
        name_of(tasks, "workteam"), "workteam_arn"
    )
    assert tasks["ground_truth"]["dependentTasks"] == [name_of(tasks, "workteam")]
    pipeline_args = {"role": ROLE, "region": "us-east-1", "team_name": "bird-labelers",
                     "user_pool": "us-east-1_ExAmPlE12", "user_groups": "bird-labelers",
                     "client_id": "1example23456789example0abc", "sns_topic": ""}
    team = assert_makes_a_valid_request("workteam", tasks["workteam"], pipeline_args)
    assert team["MemberDefinitions"][0]["CognitoMemberDefinition"]["UserGroup"] == "bird-labelers"
    labeling = assert_makes_a_valid_request("ground_truth", tasks["ground_truth"], pipeline_args)
    human = labeling["HumanTaskConfig"]
    assert human["WorkteamArn"] == UPSTREAM["workteam_arn"]
    assert human["PreHumanTaskLambdaArn"].endswith(":function:PRE-ImageMultiClass")
