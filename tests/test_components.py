"""KFP v1 drop-in components: argument parsing, the train translation, and
``smrun train`` / ``smrun run`` as steps against the emulator."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from smrun.cli import main_async
from smrun.emulator import Emulator
from smrun.handlers import COMPONENTS
from smrun.handlers._algorithms import image_for
from smrun.handlers.training import COMPONENT as TRAIN
from smrun.kfp import job_name_for
from smrun.v1 import ArgumentError, Component, Input, InputType

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
CHANNELS = [
    {
        "ChannelName": "train",
        "DataSource": {
            "S3DataSource": {
                "S3Uri": "s3://data-bucket/mnist_kmeans_example/data",
                "S3DataType": "S3Prefix",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "CompressionType": "None",
        "RecordWrapperType": "None",
        "InputMode": "File",
    }
]
# what the emulator is told through tags: a short job with a few log lines
FAST_JOB = {"smrun:emulator:duration": "0.3", "smrun:emulator:log-lines": "3"}


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def v1_arguments(**overrides: Any) -> dict[str, str]:
    """The simple-mnist-training argument set of the original integration tests,
    as KFP v1 passed it: every value a string."""
    args = {
        "region": "us-east-1",
        "image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
        "training_input_mode": "File",
        "hyperparameters": json.dumps({"k": "10", "feature_dim": "784"}),
        "channels": json.dumps(CHANNELS),
        "instance_type": "ml.m5.xlarge",
        "instance_count": "1",
        "volume_size": "50",
        "max_run_time": "3600",
        "model_artifact_path": "s3://data-bucket/mnist_kmeans_example/output",
        "network_isolation": "True",
        "traffic_encryption": "False",
        "spot_instance": "False",
        "max_wait_time": "3600",
        "checkpoint_config": "{}",
        "role": ROLE,
        "tags": json.dumps(FAST_JOB),
    }
    args.update(overrides)
    return args


def argv(component: str, emulator: Emulator, args: dict[str, str], *extra: str) -> list[str]:
    flags = [f"--{name}={value}" for name, value in args.items()]
    return [component, *flags, "--endpoint_url", emulator.url,
            "--logs_endpoint_url", emulator.url,
            "--sts_endpoint_url", emulator.url, "--timing", "fast", "--log_format", "json",
            *extra]


def output_flags(tmp_path: Path) -> list[str]:
    return [
        f"--{name}_output_path={tmp_path / 'out' / name}"
        for name in ("model_artifact_url", "job_name", "training_image")
    ] + [f"--ui_summary_output_path={tmp_path / 'out' / 'ui_summary.md'}"]


def created(emulator: Emulator) -> list[dict[str, Any]]:
    return [p for _, op, p in emulator.requests if op == "CreateTrainingJob"]


# --- running on the emulator ------------------------------------------------


async def test_train_with_v1_arguments_creates_the_job_and_writes_every_output(
    emulator: Emulator, tmp_path: Path
) -> None:
    code = await main_async(argv("train", emulator, v1_arguments(), *output_flags(tmp_path)))

    assert code == 0
    [request] = created(emulator)
    name = request["TrainingJobName"]
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
        "TrainingInputMode": "File",
    }
    assert request["RoleArn"] == ROLE
    assert request["HyperParameters"] == {"k": "10", "feature_dim": "784"}
    assert request["InputDataConfig"] == CHANNELS
    assert request["OutputDataConfig"] == {
        "S3OutputPath": "s3://data-bucket/mnist_kmeans_example/output"
    }
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["EnableNetworkIsolation"] is True
    assert request["EnableInterContainerTrafficEncryption"] is False
    for absent in ("EnableManagedSpotTraining", "CheckpointConfig", "VpcConfig",
                   "DebugHookConfig", "DebugRuleConfigurations"):
        assert absent not in request
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags["smrun:emulator:duration"] == "0.3"
    assert tags["smrun:job"] == "train"

    out = tmp_path / "out"
    assert (out / "job_name").read_text() == name
    assert (out / "model_artifact_url").read_text() == (
        f"s3://data-bucket/mnist_kmeans_example/output/{name}/output/model.tar.gz"
    )
    assert (out / "training_image").read_text() == request["AlgorithmSpecification"][
        "TrainingImage"
    ]
    summary = (out / "ui_summary.md").read_text()
    assert f"#/jobs/{name})" in summary
    assert "group=/aws/sagemaker/TrainingJobs;prefix=" + name + "/" in summary
    assert "Succeeded" in summary


async def test_restarted_step_attaches_to_the_job_of_its_kfp_task(
    emulator: Emulator, tmp_path: Path
) -> None:
    ids = ["--run_id", "3f7c-run", "--task_id", "9a1b-task"]
    first = await main_async(argv("train", emulator, v1_arguments(), *ids, *output_flags(tmp_path)))
    (tmp_path / "out" / "job_name").unlink()
    second = await main_async(
        argv("train", emulator, v1_arguments(), *ids, *output_flags(tmp_path))
    )
    other_task = await main_async(
        argv("train", emulator, v1_arguments(), "--run_id", "3f7c-run", "--task_id", "other")
    )

    assert (first, second, other_task) == (0, 0, 0)
    # the restart's create was answered "already exists": it made nothing new;
    # another task is another job
    names = list(dict.fromkeys(p["TrainingJobName"] for p in created(emulator)))
    assert len(names) == 2
    assert names[0] == job_name_for(TRAIN.key, "3f7c-run", "9a1b-task", 63)
    assert (tmp_path / "out" / "job_name").read_text() == names[0]


async def test_job_name_explicit_wins_and_empty_gets_a_unique_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    assert await main_async(argv("train", emulator, v1_arguments(job_name="my-mnist"))) == 0
    assert await main_async(argv("train", emulator, v1_arguments(job_name=""))) == 0
    assert await main_async(argv("train", emulator, v1_arguments())) == 0
    names = [p["TrainingJobName"] for p in created(emulator)]
    assert names[0] == "my-mnist"
    assert len(set(names)) == 3


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("instance_count", "two", "expected an integer"),
        ("network_isolation", "maybe", "expected True or False"),
        ("channels", '{"ChannelName": "train"}', "expected a list"),
        ("hyperparameters", "k: [10", "neither JSON nor YAML"),
        ("training_input_mode", "Stream", "is not one of"),
        ("role", "", "is required"),
        ("spot_instance", "True", "checkpoint"),
        ("role", "not-an-arn", "RoleArn"),  # rejected by botocore's model
    ],
)
async def test_bad_argument_exits_2_and_creates_nothing(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], name: str, value: str, problem: str
) -> None:
    code = await main_async(argv("train", emulator, v1_arguments(**{name: value})))
    assert code == 2
    assert emulator.count("CreateTrainingJob") == 0
    err = capsys.readouterr().err
    assert "invalid arguments" in err and problem in err


async def test_failed_job_exits_1_and_writes_no_outputs(
    emulator: Emulator, tmp_path: Path
) -> None:
    tags = json.dumps({**FAST_JOB, "smrun:emulator:outcome": "Failed"})
    code = await main_async(
        argv("train", emulator, v1_arguments(tags=tags), *output_flags(tmp_path))
    )
    assert code == 1
    assert not (tmp_path / "out" / "job_name").exists()
    assert "Failed" in (tmp_path / "out" / "ui_summary.md").read_text()


async def test_sigterm_stops_the_training_job(emulator: Emulator) -> None:
    tags = json.dumps({**FAST_JOB, "smrun:emulator:duration": "60"})
    codes: list[int] = []

    async def step() -> None:
        codes.append(await main_async(argv("train", emulator, v1_arguments(tags=tags))))

    async with anyio.create_task_group() as tg:
        tg.start_soon(step)
        with anyio.fail_after(5):
            while emulator.count("DescribeTrainingJob") == 0:
                await anyio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)
    assert codes == [143]
    assert emulator.count("StopTrainingJob") == 1


async def test_run_step_takes_manifest_text_and_writes_outputs_and_summary(
    emulator: Emulator, tmp_path: Path
) -> None:
    request = TRAIN.request(TRAIN.parse(v1_arguments()))
    manifest = {"jobs": [{"name": "first", "kind": "training", "request": request},
                         {"name": "second", "kind": "training", "request": request,
                          "after": ["first"]}]}
    code = await main_async([
        "run", "--manifest-text", json.dumps(manifest), "--region", "us-east-1",
        "--endpoint-url", emulator.url, "--logs-endpoint-url", emulator.url,
        "--sts-endpoint-url", emulator.url,
        "--timing", "fast", "--log-format", "json", "--state-dir", str(tmp_path / "state"),
        "--run-id", "kfp-run", "--task-id", "kfp-task", "--tags", '{"team": "ml"}',
        "--outputs-path", str(tmp_path / "outputs.json"),
        "--ui-summary-path", str(tmp_path / "summary.md"),
    ])
    assert code == 0
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert set(outputs) == {"first", "second"}
    assert outputs["first"]["model_artifact_url"].endswith("/output/model.tar.gz")
    assert all({"Key": "team", "Value": "ml"} in p["Tags"] for p in created(emulator))
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("Succeeded") == 2 and "#/jobs/" in summary


# --- the train translation ---------------------------------------------------


def train_request(**overrides: Any) -> dict[str, Any]:
    return TRAIN.request(TRAIN.parse(v1_arguments(**overrides)))


def test_spot_needs_a_checkpoint_uri_and_a_long_enough_wait() -> None:
    with pytest.raises(ArgumentError, match="checkpoint_config"):
        train_request(spot_instance="True", checkpoint_config="{}")
    with pytest.raises(ArgumentError, match="max_wait_time"):
        train_request(spot_instance="True", checkpoint_config='{"S3Uri": "s3://b/c"}',
                      max_wait_time="3599", max_run_time="3600")

    spot = train_request(spot_instance="true", checkpoint_config="S3Uri: s3://b/ckpt",
                         max_wait_time="7200")
    assert spot["EnableManagedSpotTraining"] is True
    assert spot["CheckpointConfig"] == {"S3Uri": "s3://b/ckpt"}
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}


def test_without_spot_the_spot_fields_are_left_out() -> None:
    request = train_request(checkpoint_config='{"S3Uri": "s3://b/c"}', max_wait_time="1")
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert "CheckpointConfig" not in request and "EnableManagedSpotTraining" not in request


@pytest.mark.parametrize(
    ("algorithm", "region", "image"),
    [
        ("K-Means", "us-west-2", "174872318107.dkr.ecr.us-west-2.amazonaws.com/kmeans:1"),
        (" linear learner ", "eu-west-1",
         "438346466558.dkr.ecr.eu-west-1.amazonaws.com/linear-learner:1"),
        ("XGBoost", "us-east-1",
         "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
        ("xgboost:1.5-1", "us-east-1",
         "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.5-1"),
        ("Image Classification", "us-east-1",
         "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"),
        ("kmeans", "cn-north-1", "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/kmeans:1"),
    ],
)
def test_built_in_algorithm_names_resolve_to_the_region_image(
    algorithm: str, region: str, image: str
) -> None:
    request = train_request(image="", algorithm_name=algorithm, region=region)
    assert request["AlgorithmSpecification"]["TrainingImage"] == image
    assert "AlgorithmName" not in request["AlgorithmSpecification"]


def test_image_wins_and_other_algorithm_names_are_algorithm_resources() -> None:
    both = train_request(image="1.dkr.ecr.us-east-1.amazonaws.com/mine:2", algorithm_name="pca")
    assert both["AlgorithmSpecification"]["TrainingImage"].endswith("/mine:2")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:algorithm/my-algo"
    for name in (arn, "my-marketplace-algo"):
        spec = train_request(image="", algorithm_name=name)["AlgorithmSpecification"]
        assert spec["AlgorithmName"] == name and "TrainingImage" not in spec
    with pytest.raises(ArgumentError, match="algorithm_name"):
        train_request(image="", algorithm_name="lda", region="eu-north-1")
    with pytest.raises(ArgumentError, match="image"):
        train_request(image="", algorithm_name="")
    assert image_for("not an algorithm", "us-east-1") is None


def test_v1_inputs_are_all_there_with_v1_defaults() -> None:
    names = [spec.name for spec in TRAIN.all_inputs]
    assert sorted(names) == sorted([
        "spot_instance", "max_wait_time", "max_run_time", "checkpoint_config", "region",
        "endpoint_url", "assume_role", "tags", "job_name", "role", "image", "algorithm_name",
        "metric_definitions", "training_input_mode", "hyperparameters", "channels",
        "instance_type", "instance_count", "volume_size", "resource_encryption_key",
        "model_artifact_path", "output_encryption_key", "vpc_security_group_ids",
        "vpc_subnets", "network_isolation", "traffic_encryption", "debug_hook_config",
        "debug_rule_config",
    ])
    defaults = {spec.name: spec.default for spec in TRAIN.all_inputs if not spec.required}
    assert defaults["network_isolation"] is True
    assert defaults["max_wait_time"] == 86400 and defaults["max_run_time"] == 86400
    assert defaults["instance_type"] == "ml.m4.xlarge" and defaults["volume_size"] == 30
    assert {s.name for s in TRAIN.all_inputs if s.required} == {
        "region", "role", "channels", "model_artifact_path"
    }
    assert [o.name for o in TRAIN.outputs] == ["model_artifact_url", "job_name", "training_image"]


def test_every_declared_output_is_one_the_kind_produces() -> None:
    from smrun.handlers import KINDS

    for component in COMPONENTS.values():
        produced = KINDS[component.kind].output_types
        assert {o.name for o in component.outputs} <= set(produced), component.name


def test_v1_request_details_metrics_vpc_debugger_and_hyperparameter_numbers() -> None:
    request = train_request(
        metric_definitions='{"test:msd": "#quality_metric: host=\\\\S+, test msd <loss>=(\\\\S+)"}',
        vpc_security_group_ids="sg-1, sg-2", vpc_subnets="subnet-1",
        hyperparameters="{k: 10, feature_dim: '784'}",
        debug_rule_config='[{"RuleConfigurationName": "r", "RuleEvaluatorImage": "img"}]',
        output_encryption_key="kms-1",
    )
    assert request["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "test:msd"
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-1", "sg-2"], "Subnets": ["subnet-1"]}
    assert request["HyperParameters"] == {"k": "10", "feature_dim": "784"}
    assert request["DebugRuleConfigurations"][0]["RuleConfigurationName"] == "r"
    assert request["OutputDataConfig"]["KmsKeyId"] == "kms-1"
    # one of the two VPC lists alone is ignored, as in v1
    assert "VpcConfig" not in train_request(vpc_security_group_ids="sg-1")
    with pytest.raises(ArgumentError, match="hyperparameters"):
        train_request(hyperparameters='{"layers": [1, 2]}')


# --- v1 value parsing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "raw", "value"),
    [
        (InputType.BOOL, "True", True),
        (InputType.BOOL, "FALSE", False),
        (InputType.BOOL, "true", True),  # KFP v2 renders booleans as JSON
        (InputType.INTEGER, "42", 42),
        (InputType.INTEGER, "86400.0", 86400),
        (InputType.FLOAT, "0.5", 0.5),
        (InputType.JSON_OBJECT, '{"a": "1"}', {"a": "1"}),
        (InputType.JSON_OBJECT, "a: 1\nb: two", {"a": 1, "b": "two"}),
        (InputType.JSON_ARRAY, "[1, 2]", [1, 2]),
        (InputType.JSON_ARRAY, "- x\n- y", ["x", "y"]),
        (InputType.CSV_LIST, "sg-1, sg-2,,", ["sg-1", "sg-2"]),
        (InputType.STRING, "text", "text"),
    ],
)
def test_v1_values_parse(type_: InputType, raw: str, value: Any) -> None:
    assert Input("x", type_, default=None).parse(raw) == value


def test_empty_values_take_the_default_and_defaults_are_not_shared() -> None:
    spec = Input("tags", InputType.JSON_OBJECT, default={})
    first = spec.parse("")
    first["k"] = "v"
    assert spec.parse(None) == {}
    with pytest.raises(ArgumentError, match="argument channels: is required"):
        Input("channels", InputType.JSON_ARRAY).parse("")


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(ArgumentError, match="not an input of the train component"):
        TRAIN.parse({"region": "us-east-1", "instance_typ": "ml.m5.large"})


def test_components_are_found_in_handler_modules() -> None:
    components = COMPONENTS
    assert components["train"] is TRAIN
    assert all(isinstance(c, Component) for c in components.values())
