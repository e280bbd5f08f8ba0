"""KFP v1 drop-in components for jobs besides training: ``hyperparameter_tuning``,
``process`` and ``batch_transform``, run as steps against the emulator with the
argument sets of the original integration tests, and their v1 translations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from smrun.cli import main_async
from smrun.emulator import Emulator
from smrun.handlers.processing import COMPONENT as PROCESS
from smrun.handlers.transform import COMPONENT as TRANSFORM
from smrun.handlers.tuning import COMPONENT as TUNING
from smrun.v1 import ArgumentError, Component

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "s3://data-bucket/mnist_kmeans_example"
KMEANS_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
COMPONENTS_DIR = Path(__file__).resolve().parent.parent / "components"
# what the emulator is told through tags: short jobs with a few log lines
FAST_JOB = {"smrun:emulator:duration": "0.3", "smrun:emulator:log-lines": "3"}
FAST_TUNING = {"smrun:emulator:child-duration": "0.3", "smrun:emulator:log-lines": "2"}


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def channel(name: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3Uri": f"{BUCKET}/{name}_data",
                "S3DataType": "S3Prefix",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "CompressionType": "None",
        "RecordWrapperType": "None",
        "InputMode": "File",
    }


INTEGER_RANGES = [
    {"Name": "mini_batch_size", "MinValue": "450", "MaxValue": "550"},
    {"Name": "extra_center_factor", "MinValue": "10", "MaxValue": "20"},
]
CATEGORICAL_RANGES = [{"Name": "init_method", "Values": ["random", "kmeans++"]}]


def tuning_arguments(**overrides: str) -> dict[str, str]:
    """The kmeans-mnist-hpo argument set of the original integration tests, as
    KFP v1 passed it: every value a string."""
    args = {
        "region": "us-east-1",
        "algorithm_name": "K-Means",
        "training_input_mode": "File",
        "static_parameters": json.dumps({"k": "10", "feature_dim": "784"}),
        "integer_parameters": json.dumps(INTEGER_RANGES),
        "categorical_parameters": json.dumps(CATEGORICAL_RANGES),
        "channels": json.dumps([channel("train"), channel("test")]),
        "early_stopping_type": "Off",
        "max_parallel_jobs": "2",
        "max_num_jobs": "2",
        "metric_name": "test:msd",
        "metric_type": "Minimize",
        "strategy": "Bayesian",
        "instance_type": "ml.m5.xlarge",
        "instance_count": "1",
        "volume_size": "50",
        "max_run_time": "3600",
        "output_location": f"{BUCKET}/output",
        "network_isolation": "True",
        "max_wait_time": "3600",
        "role": ROLE,
        "tags": json.dumps(FAST_TUNING),
    }
    args.update(overrides)
    return args


INPUT_CONFIG = [
    {
        "InputName": "mnist_tar",
        "S3Input": {
            "S3Uri": "s3://data-bucket/algorithms/mnist.pkl.gz",
            "LocalPath": "/opt/ml/processing/input",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3CompressionType": "None",
        },
    },
    {
        "InputName": "source_code",
        "S3Input": {
            "S3Uri": f"{BUCKET}/processing_code/kmeans_preprocessing.py",
            "LocalPath": "/opt/ml/processing/code",
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3CompressionType": "None",
        },
    },
]
OUTPUT_CONFIG = [
    {
        "OutputName": f"{part}_data",
        "S3Output": {
            "S3Uri": f"{BUCKET}/output/",
            "LocalPath": f"/opt/ml/processing/output_{part}/",
            "S3UploadMode": "EndOfJob",
        },
    }
    for part in ("train", "test", "valid")
]
PYTORCH_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.5.0-cpu-py36-ubuntu16.04"
)


def process_arguments(**overrides: str) -> dict[str, str]:
    """The kmeans-algo-mnist-processing argument set of the original integration tests."""
    args = {
        "region": "us-east-1",
        "job_name": "process-mnist-for-kmeans",
        "image": PYTORCH_IMAGE,
        "container_entrypoint": json.dumps(
            ["python", "/opt/ml/processing/code/kmeans_preprocessing.py"]
        ),
        "input_config": json.dumps(INPUT_CONFIG),
        "output_config": json.dumps(OUTPUT_CONFIG),
        "instance_type": "ml.m5.xlarge",
        "instance_count": "1",
        "volume_size": "50",
        "max_run_time": "1800",
        "role": ROLE,
        "tags": json.dumps(FAST_JOB),
    }
    args.update(overrides)
    return args


MODEL = "kmeans-mnist-model"


def transform_arguments(**overrides: str) -> dict[str, str]:
    """The kmeans-mnist-batch-transform argument set of the original integration tests."""
    args = {
        "region": "us-east-1",
        "model_name": MODEL,
        "job_name": "kmeans-mnist-transform",
        "instance_type": "ml.m4.xlarge",
        "instance_count": "1",
        "input_location": f"{BUCKET}/input",
        "data_type": "S3Prefix",
        "content_type": "text/csv",
        "compression_type": "None",
        "output_location": f"{BUCKET}/output",
        "max_concurrent": "4",
        "max_payload": "6",
        "batch_strategy": "MultiRecord",
        "split_type": "Line",
        "tags": json.dumps({**FAST_JOB, "smrun:emulator:records": "3"}),
    }
    args.update(overrides)
    return args


def argv(component: str, emulator: Emulator, args: dict[str, str], *extra: str) -> list[str]:
    flags = [f"--{name}={value}" for name, value in args.items()]
    return [component, *flags, "--endpoint_url", emulator.url,
            "--logs_endpoint_url", emulator.url,
            "--sts_endpoint_url", emulator.url, "--timing", "fast", "--log_format", "json",
            *extra]


def output_flags(component: Component, out: Path) -> list[str]:
    return [f"--{o.name}_output_path={out / o.name}" for o in component.outputs] + [
        f"--ui_summary_output_path={out / 'ui_summary.md'}"
    ]


def created(emulator: Emulator, operation: str) -> list[dict[str, Any]]:
    return [p for _, op, p in emulator.requests if op == operation]


def tags_of(request: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in request.get("Tags", [])}


async def create_model(aws_client: Any, emulator: Emulator, name: str = MODEL) -> None:
    sagemaker = await aws_client("sagemaker", emulator)
    await sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": KMEANS_IMAGE, "ModelDataUrl": f"{BUCKET}/model.tar.gz"},
        ExecutionRoleArn=ROLE,
    )


# --- hyperparameter_tuning on the emulator --------------------------------------


async def test_hyperparameter_tuning_with_v1_arguments_creates_the_job_and_writes_every_output(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = await main_async(
        argv("hyperparameter_tuning", emulator, tuning_arguments(), *output_flags(TUNING, out))
    )

    assert code == 0
    [request] = created(emulator, "CreateHyperParameterTuningJob")
    name = request["HyperParameterTuningJobName"]
    assert len(name) <= 32
    assert request["HyperParameterTuningJobConfig"] == {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "test:msd"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": {
            "IntegerParameterRanges": INTEGER_RANGES,
            "CategoricalParameterRanges": CATEGORICAL_RANGES,
        },
        "TrainingJobEarlyStoppingType": "Off",
    }
    definition = request["TrainingJobDefinition"]
    assert definition == {
        # "K-Means" is the built-in algorithm's image for the region
        "AlgorithmSpecification": {"TrainingImage": KMEANS_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [channel("train"), channel("test")],
        "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 50},
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": False,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "StaticHyperParameters": {"k": "10", "feature_dim": "784"},
    }
    assert "WarmStartConfig" not in request
    tags = tags_of(request)
    assert tags["smrun:emulator:child-duration"] == "0.3"
    assert tags["smrun:job"] == "hyperparameter-tuning"

    children = [p["TrainingJobName"] for _, op, p in emulator.requests
                if op == "DescribeTrainingJob"]
    best = (out / "best_job_name").read_text()
    assert best.startswith(f"{name}-") and best in children
    assert (out / "hpo_job_name").read_text() == name
    assert (out / "model_artifact_url").read_text() == (
        f"{BUCKET}/output/{best}/output/model.tar.gz"
    )
    assert (out / "training_image").read_text() == KMEANS_IMAGE
    tuned = json.loads((out / "best_hyperparameters").read_text())
    assert "_tuning_objective_metric" not in tuned
    assert {"k": "10", "feature_dim": "784"}.items() <= tuned.items()
    assert 450 <= int(tuned["mini_batch_size"]) <= 550
    assert tuned["init_method"] in ("random", "kmeans++")
    summary = (out / "ui_summary.md").read_text()
    assert f"#/hyper-tuning-jobs/{name})" in summary and "Succeeded" in summary


async def test_hyperparameter_tuning_warm_starts_from_the_parent_jobs_of_a_comma_list(
    emulator: Emulator, aws_client: Any, tmp_path: Path
) -> None:
    sagemaker = await aws_client("sagemaker", emulator)
    one_job = {"max_num_jobs": "1", "max_parallel_jobs": "1"}
    for parent in ("parent-hpo-a", "parent-hpo-b"):
        request = TUNING.request(TUNING.parse(tuning_arguments(**one_job)))
        await sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=parent, **request
        )
    code = await main_async(argv(
        "hyperparameter_tuning", emulator,
        tuning_arguments(job_name="warm-hpo", warm_start_type="TransferLearning",
                         parent_hpo_jobs="parent-hpo-a, parent-hpo-b,", **one_job),
        *output_flags(TUNING, tmp_path),
    ))

    assert code == 0
    request = created(emulator, "CreateHyperParameterTuningJob")[-1]
    assert request["HyperParameterTuningJobName"] == "warm-hpo"
    assert request["WarmStartConfig"] == {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "parent-hpo-a"},
            {"HyperParameterTuningJobName": "parent-hpo-b"},
        ],
    }
    assert (tmp_path / "hpo_job_name").read_text() == "warm-hpo"


# --- process on the emulator ------------------------------------------------------


async def test_process_with_v1_arguments_creates_the_job_and_writes_every_output(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = await main_async(
        argv("process", emulator, process_arguments(), *output_flags(PROCESS, out))
    )

    assert code == 0
    [request] = created(emulator, "CreateProcessingJob")
    assert request["ProcessingJobName"] == "process-mnist-for-kmeans"
    assert request["RoleArn"] == ROLE
    assert request["AppSpecification"] == {
        "ImageUri": PYTORCH_IMAGE,
        "ContainerEntrypoint": ["python", "/opt/ml/processing/code/kmeans_preprocessing.py"],
    }
    assert request["ProcessingInputs"] == INPUT_CONFIG
    assert request["ProcessingOutputConfig"] == {"Outputs": OUTPUT_CONFIG}
    assert request["ProcessingResources"] == {"ClusterConfig": {
        "InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50
    }}
    assert request["NetworkConfig"] == {
        "EnableInterContainerTrafficEncryption": False, "EnableNetworkIsolation": True
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    assert "Environment" not in request
    assert tags_of(request)["smrun:job"] == "process"

    assert (out / "job_name").read_text() == "process-mnist-for-kmeans"
    assert json.loads((out / "output_artifacts").read_text()) == {
        "train_data": f"{BUCKET}/output/",
        "test_data": f"{BUCKET}/output/",
        "valid_data": f"{BUCKET}/output/",
    }
    summary = (out / "ui_summary.md").read_text()
    assert "#/processing-jobs/process-mnist-for-kmeans)" in summary
    assert "group=/aws/sagemaker/ProcessingJobs;prefix=process-mnist-for-kmeans/" in summary


# --- batch_transform on the emulator ------------------------------------------------


async def test_batch_transform_with_v1_arguments_creates_the_job_and_writes_every_output(
    emulator: Emulator, aws_client: Any, tmp_path: Path
) -> None:
    await create_model(aws_client, emulator)
    out = tmp_path / "out"
    code = await main_async(
        argv("batch_transform", emulator, transform_arguments(), *output_flags(TRANSFORM, out))
    )

    assert code == 0
    [request] = created(emulator, "CreateTransformJob")
    tags = request.pop("Tags")
    assert request == {
        "TransformJobName": "kmeans-mnist-transform",
        "ModelName": MODEL,
        "MaxConcurrentTransforms": 4,
        "MaxPayloadInMB": 6,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"{BUCKET}/input"}},
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"{BUCKET}/output"},
        "TransformResources": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
        "DataProcessing": {"JoinSource": "None"},
    }
    assert {"Key": "smrun:job", "Value": "batch-transform"} in tags

    assert (out / "output_location").read_text() == f"{BUCKET}/output"
    summary = (out / "ui_summary.md").read_text()
    assert "#/transform-jobs/kmeans-mnist-transform)" in summary and "Succeeded" in summary


async def test_batch_transform_without_its_model_fails_and_says_to_create_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = await main_async(
        argv("batch_transform", emulator, transform_arguments(), *output_flags(TRANSFORM, out))
    )
    assert code == 1
    assert not (out / "output_location").exists()
    assert "create the model first" in (out / "ui_summary.md").read_text()


# --- bad arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "name", "value", "problem"),
    [
        ("hyperparameter_tuning", "metric_type", "Lowest", "is not one of"),
        ("hyperparameter_tuning", "max_num_jobs", "", "is required"),
        ("hyperparameter_tuning", "static_parameters", '{"k": [10]}', "static_parameters"),
        ("hyperparameter_tuning", "warm_start_type", "TransferLearning", "parent_hpo_jobs"),
        ("hyperparameter_tuning", "parent_hpo_jobs", "old-hpo", "warm_start_type"),
        ("hyperparameter_tuning", "spot_instance", "True", "checkpoint"),
        ("hyperparameter_tuning", "algorithm_name", "lda", "algorithm_name"),  # none in eu-north-1
        ("hyperparameter_tuning", "channels", "[]", "at least one input channel"),
        ("hyperparameter_tuning", "max_parallel_jobs", "0", "MaxParallelTrainingJobs"),
        ("process", "output_config", "[]", "at least one output"),
        ("process", "image", "", "image"),
        ("process", "container_entrypoint", "python run.py", "expected a list"),
        ("process", "input_config", '[{"S3Input": {"S3Uri": "s3://b/x"}}]', "InputName"),
        ("batch_transform", "split_type", "Lines", "is not one of"),
        ("batch_transform", "max_payload", "six", "expected an integer"),
        ("batch_transform", "join_source", "Output", "is not one of"),
        ("batch_transform", "input_location", "", "is required"),
        ("batch_transform", "max_concurrent", "-1", "MaxConcurrentTransforms"),
    ],
)
async def test_bad_argument_exits_2_and_creates_nothing(
    emulator: Emulator, capsys: pytest.CaptureFixture[str],
    component: str, name: str, value: str, problem: str,
) -> None:
    arguments, operation = {
        "hyperparameter_tuning": (tuning_arguments, "CreateHyperParameterTuningJob"),
        "process": (process_arguments, "CreateProcessingJob"),
        "batch_transform": (transform_arguments, "CreateTransformJob"),
    }[component]
    overrides = {name: value}
    if name == "algorithm_name":
        overrides.update(image="", region="eu-north-1")
    code = await main_async(argv(component, emulator, arguments(**overrides)))
    assert code == 2
    assert emulator.count(operation) == 0
    err = capsys.readouterr().err
    assert "invalid arguments" in err and problem in err


# --- the translations ---------------------------------------------------------------


def tuning_request(**overrides: str) -> dict[str, Any]:
    return TUNING.request(TUNING.parse(tuning_arguments(**overrides)))


def test_tuning_takes_spot_vpc_encryption_and_algorithm_resources_as_v1_did() -> None:
    request = tuning_request(
        spot_instance="True", checkpoint_config='{"S3Uri": "s3://b/ckpt"}', max_wait_time="7200",
        vpc_security_group_ids="sg-1,sg-2", vpc_subnets="subnet-1",
        output_encryption_key="kms-out", resource_encryption_key="kms-vol",
        traffic_encryption="True", network_isolation="False", early_stopping_type="Auto",
        strategy="Random", metric_definitions='{"test:msd": "msd=(\\\\S+)"}',
        continuous_parameters='[{"Name": "lr", "MinValue": "0.01", "MaxValue": "0.1"}]',
        tags='{"team": "ml"}',
    )
    definition = request["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["CheckpointConfig"] == {"S3Uri": "s3://b/ckpt"}
    assert definition["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200
    }
    assert definition["VpcConfig"] == {"SecurityGroupIds": ["sg-1", "sg-2"],
                                       "Subnets": ["subnet-1"]}
    assert definition["OutputDataConfig"]["KmsKeyId"] == "kms-out"
    assert definition["ResourceConfig"]["VolumeKmsKeyId"] == "kms-vol"
    assert definition["EnableInterContainerTrafficEncryption"] is True
    assert definition["EnableNetworkIsolation"] is False
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "test:msd", "Regex": "msd=(\\S+)"}
    ]
    config = request["HyperParameterTuningJobConfig"]
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["Strategy"] == "Random"
    assert config["ParameterRanges"]["ContinuousParameterRanges"][0]["Name"] == "lr"
    assert {"Key": "team", "Value": "ml"} in request["Tags"]

    # the image wins over an algorithm name; other names are algorithm resources
    both = tuning_request(image="1.dkr.ecr.us-east-1.amazonaws.com/mine:2")
    assert both["TrainingJobDefinition"]["AlgorithmSpecification"]["TrainingImage"].endswith(
        "/mine:2"
    )
    algorithm = tuning_request(algorithm_name="my-marketplace-algo")
    spec = algorithm["TrainingJobDefinition"]["AlgorithmSpecification"]
    assert spec == {"AlgorithmName": "my-marketplace-algo", "TrainingInputMode": "File"}
    # without spot, the spot members are left out whatever else is given
    plain = tuning_request(checkpoint_config='{"S3Uri": "s3://b/c"}', max_wait_time="1")
    assert "CheckpointConfig" not in plain["TrainingJobDefinition"]
    assert plain["TrainingJobDefinition"]["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    # one of the two VPC lists alone is ignored, as in v1
    assert "VpcConfig" not in tuning_request(vpc_subnets="subnet-1")["TrainingJobDefinition"]


def test_tuning_static_parameters_numbers_become_text_and_zero_sizes_fall_back_to_one() -> None:
    request = tuning_request(static_parameters="{k: 10, feature_dim: '784'}",
                             instance_count="0", volume_size="0")
    definition = request["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {"k": "10", "feature_dim": "784"}
    assert definition["ResourceConfig"]["InstanceCount"] == 1
    assert definition["ResourceConfig"]["VolumeSizeInGB"] == 1
    bare = tuning_request(static_parameters="{}", integer_parameters="[]",
                          categorical_parameters="")
    assert "StaticHyperParameters" not in bare["TrainingJobDefinition"]
    assert bare["HyperParameterTuningJobConfig"]["ParameterRanges"] == {}
    with pytest.raises(ArgumentError, match="image"):
        tuning_request(algorithm_name="", image="")


def process_request(**overrides: str) -> dict[str, Any]:
    return PROCESS.request(PROCESS.parse(process_arguments(**overrides)))


def test_process_takes_arguments_environment_vpc_and_keys_and_leaves_out_empty_ones() -> None:
    request = process_request(
        container_arguments='["--split", "0.8"]', environment='{"MODE": "full"}',
        vpc_security_group_ids="sg-1", vpc_subnets="subnet-1, subnet-2",
        output_encryption_key="kms-out", resource_encryption_key="kms-vol",
        network_isolation="False", traffic_encryption="True",
    )
    assert request["AppSpecification"]["ContainerArguments"] == ["--split", "0.8"]
    assert request["Environment"] == {"MODE": "full"}
    assert request["NetworkConfig"] == {
        "EnableInterContainerTrafficEncryption": True,
        "EnableNetworkIsolation": False,
        "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1", "subnet-2"]},
    }
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == "kms-out"
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "kms-vol"

    bare = process_request(container_entrypoint="[]", input_config="")
    assert bare["AppSpecification"] == {"ImageUri": PYTORCH_IMAGE}
    assert "ProcessingInputs" not in bare
    assert "KmsKeyId" not in bare["ProcessingOutputConfig"]
    defaults = PROCESS.request(PROCESS.parse({
        "region": "us-east-1", "role": ROLE, "image": PYTORCH_IMAGE,
        "output_config": json.dumps(OUTPUT_CONFIG),
    }))
    assert defaults["ProcessingResources"]["ClusterConfig"] == {
        "InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30
    }
    assert defaults["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert defaults["NetworkConfig"]["EnableNetworkIsolation"] is True


def transform_request(**overrides: str) -> dict[str, Any]:
    return TRANSFORM.request(TRANSFORM.parse(transform_arguments(**overrides)))


def test_transform_filters_join_and_output_options_become_the_request_members() -> None:
    request = transform_request(
        input_filter="$[1:]", output_filter="$['id','SageMakerOutput']", join_source="Input",
        accept="text/csv", assemble_with="Line", output_encryption_key="kms-out",
        resource_encryption_key="kms-vol", environment='{"MODEL_SERVER_WORKERS": "2"}',
        compression_type="Gzip", data_type="ManifestFile", split_type="",
    )
    assert request["DataProcessing"] == {
        "InputFilter": "$[1:]", "OutputFilter": "$['id','SageMakerOutput']",
        "JoinSource": "Input",
    }
    assert request["TransformOutput"] == {
        "S3OutputPath": f"{BUCKET}/output", "Accept": "text/csv", "AssembleWith": "Line",
        "KmsKeyId": "kms-out",
    }
    assert request["TransformResources"]["VolumeKmsKeyId"] == "kms-vol"
    assert request["Environment"] == {"MODEL_SERVER_WORKERS": "2"}
    source = request["TransformInput"]
    assert source["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"
    assert source["CompressionType"] == "Gzip"
    assert source["SplitType"] == "None"  # empty takes v1's default

    # v1's defaults: no MaxConcurrentTransforms for 0, the payload limit always
    minimal = TRANSFORM.request(TRANSFORM.parse({
        "region": "us-east-1", "model_name": MODEL, "input_location": f"{BUCKET}/input",
        "output_location": f"{BUCKET}/output",
    }))
    assert minimal == {
        "ModelName": MODEL,
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"{BUCKET}/input"}},
            "CompressionType": "None",
            "SplitType": "None",
        },
        "TransformOutput": {"S3OutputPath": f"{BUCKET}/output"},
        "TransformResources": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
        "DataProcessing": {"JoinSource": "None"},
    }
    assert transform_request(max_payload="0")["MaxPayloadInMB"] == 0


# --- the v1 interface -----------------------------------------------------------------

V1_INPUTS: dict[str, list[str]] = {
    "hyperparameter_tuning": [
        "spot_instance", "max_wait_time", "max_run_time", "checkpoint_config", "region",
        "endpoint_url", "assume_role", "tags", "job_name", "role", "image", "algorithm_name",
        "training_input_mode", "metric_definitions", "strategy", "metric_name", "metric_type",
        "early_stopping_type", "static_parameters", "integer_parameters",
        "continuous_parameters", "categorical_parameters", "channels", "output_location",
        "output_encryption_key", "instance_type", "instance_count", "volume_size",
        "max_num_jobs", "max_parallel_jobs", "resource_encryption_key",
        "vpc_security_group_ids", "vpc_subnets", "network_isolation", "traffic_encryption",
        "warm_start_type", "parent_hpo_jobs",
    ],
    "process": [
        "region", "endpoint_url", "assume_role", "tags", "job_name", "role", "image",
        "instance_type", "instance_count", "volume_size", "resource_encryption_key",
        "output_encryption_key", "max_run_time", "environment", "container_entrypoint",
        "container_arguments", "output_config", "input_config", "vpc_security_group_ids",
        "vpc_subnets", "network_isolation", "traffic_encryption",
    ],
    "batch_transform": [
        "region", "endpoint_url", "assume_role", "tags", "job_name", "model_name",
        "max_concurrent", "max_payload", "batch_strategy", "environment", "input_location",
        "data_type", "content_type", "split_type", "compression_type", "output_location",
        "accept", "assemble_with", "output_encryption_key", "input_filter", "output_filter",
        "join_source", "instance_type", "instance_count", "resource_encryption_key",
    ],
}
V1_REQUIRED = {
    "hyperparameter_tuning": {"region", "role", "metric_name", "metric_type", "channels",
                              "output_location", "max_num_jobs", "max_parallel_jobs"},
    "process": {"region", "role"},
    "batch_transform": {"region", "model_name", "input_location", "output_location"},
}


@pytest.mark.parametrize("component", [TUNING, PROCESS, TRANSFORM], ids=lambda c: c.name)
def test_v1_inputs_in_v1_order_with_v1_required_ones(component: Component) -> None:
    assert [spec.name for spec in component.all_inputs] == V1_INPUTS[component.name]
    assert {spec.name for spec in component.all_inputs if spec.required} == V1_REQUIRED[
        component.name
    ]


def test_v1_defaults_and_outputs() -> None:
    def defaults(component: Component) -> dict[str, Any]:
        return {s.name: s.default for s in component.all_inputs if not s.required}

    tuning = defaults(TUNING)
    assert tuning["strategy"] == "Bayesian" and tuning["early_stopping_type"] == "Off"
    assert tuning["network_isolation"] is True and tuning["traffic_encryption"] is False
    assert tuning["instance_type"] == "ml.m4.xlarge" and tuning["volume_size"] == 30
    assert tuning["max_run_time"] == 86400 and tuning["spot_instance"] is False
    assert tuning["parent_hpo_jobs"] == [] and tuning["warm_start_type"] == ""
    process = defaults(PROCESS)
    assert process["max_run_time"] == 86400 and process["volume_size"] == 30
    assert process["instance_count"] == 1 and process["output_config"] == []
    transform = defaults(TRANSFORM)
    assert (transform["max_concurrent"], transform["max_payload"]) == (0, 6)
    assert transform["data_type"] == "S3Prefix" and transform["join_source"] == "None"
    assert transform["split_type"] == "None" and transform["compression_type"] == "None"
    assert transform["batch_strategy"] == "" and transform["assemble_with"] == ""

    assert [o.name for o in TUNING.outputs] == [
        "hpo_job_name", "model_artifact_url", "best_job_name", "best_hyperparameters",
        "training_image",
    ]
    assert [o.name for o in PROCESS.outputs] == ["job_name", "output_artifacts"]
    assert [o.name for o in TRANSFORM.outputs] == ["output_location"]


@pytest.mark.parametrize("component", [TUNING, PROCESS, TRANSFORM], ids=lambda c: c.name)
def test_generated_yaml_runs_the_component_with_v1_names(component: Component) -> None:
    spec = yaml.safe_load((COMPONENTS_DIR / f"{component.name}.yaml").read_text())
    [definition] = spec["components"].values()
    inputs = definition["inputDefinitions"]["parameters"]
    assert set(inputs) == set(V1_INPUTS[component.name])
    assert set(definition["outputDefinitions"]["parameters"]) == {
        o.name for o in component.outputs
    }
    [executor] = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["command"] == ["smrun", component.name]
    types = {name: p["parameterType"] for name, p in inputs.items()}
    assert types["vpc_subnets" if component is not TRANSFORM else "job_name"] == "STRING"
    assert types["tags"] == "STRUCT" and types["instance_count"] == "NUMBER_INTEGER"
