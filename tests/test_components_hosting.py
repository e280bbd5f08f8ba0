"""The v1 hosting and labeling components: ``smrun model``, ``smrun deploy``
(an endpoint config, then the endpoint: created, or updated in place),
``smrun workteam`` and ``smrun ground_truth``, run on the emulator with the
argument sets of the original integration tests, and their translations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smrun.cli import main_async
from smrun.emulator import Emulator
from smrun.emulator.endpoint import Endpoints
from smrun.handlers.endpoint import COMPONENT as DEPLOY
from smrun.handlers.labeling import COMPONENT as GROUND_TRUTH
from smrun.handlers.labeling import task_price
from smrun.handlers.model import COMPONENT as MODEL
from smrun.handlers.workteam import COMPONENT as WORKTEAM
from smrun.kfp import job_name_for
from smrun.settings import Settings
from smrun.v1 import ArgumentError, Component, InputType

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
KMEANS = "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
ARTIFACT = "s3://data-bucket/mnist_kmeans_example/model/kmeans-mnist-model/model.tar.gz"
DATA = "s3://data-bucket/mini-image-classification/ground-truth-demo"
USER_POOL, CLIENT_ID = "us-east-1_AbCdEf123", "1example23456789"
# what the emulator is told through tags: quick deployments and labeling jobs
FAST = {"smrun:emulator:duration": "0.3", "smrun:emulator:log-lines": "2"}
# fast timings, and a short drain: an endpoint's log streams never end
TIMINGS = Settings.fast(drain_grace=0.2)
CREATES = ("CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint",
           "CreateLabelingJob", "CreateWorkteam")


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def model_arguments(**overrides: str) -> dict[str, str]:
    """kmeans-mnist-model, as KFP v1 passed it: every value a string."""
    args = {
        "region": REGION,
        "model_name": "kmeans-mnist-model",
        "image": KMEANS,
        "model_artifact_url": ARTIFACT,
        "network_isolation": "True",
        "role": ROLE,
    }
    return {**args, **overrides}


def deploy_arguments(**overrides: str) -> dict[str, str]:
    """kmeans-mnist-endpoint with a second variant (weights 1 : 0.5)."""
    args = {
        "region": REGION,
        "endpoint_name": "kmeans-mnist-endpoint",
        "endpoint_config_name": "kmeans-mnist-endpoint",
        "endpoint_config_tags": json.dumps({"team": "ml"}),
        "variant_name_1": "variant-1",
        "model_name_1": "kmeans-mnist-model",
        "initial_variant_weight_1": "1.0",
        "instance_type_1": "ml.m5.xlarge",
        "initial_instance_count_1": "1",
        "variant_name_2": "variant-2",
        "model_name_2": "kmeans-mnist-model-2",
        "initial_variant_weight_2": "0.5",
        "instance_type_2": "ml.m5.large",
        "tags": json.dumps(FAST),
    }
    return {**args, **overrides}


def workteam_arguments(**overrides: str) -> dict[str, str]:
    """create-workteam (with a Cognito user pool and client id of the real shape)."""
    args = {
        "region": REGION,
        "team_name": "test-workteam",
        "description": "Team for GroundTruth Integ Test",
        "user_pool": USER_POOL,
        "user_groups": "user-group",
        "client_id": CLIENT_ID,
    }
    return {**args, **overrides}


def ground_truth_arguments(**overrides: str) -> dict[str, str]:
    """image-classification-groundtruth: a private team labels images."""
    args = {
        "region": REGION,
        "role": ROLE,
        "job_name": "image-labeling",
        "label_attribute_name": "category",
        "manifest_location": f"{DATA}/train.manifest",
        "output_location": f"{DATA}/output",
        "task_type": "image classification",
        "worker_type": "private",
        "workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/"
                        "test-workteam",
        "label_category_config": f"{DATA}/class_labels.json",
        "ui_template": f"{DATA}/instructions.template",
        "title": "Mini image classification",
        "description": "Test for Ground Truth KFP component",
        "num_workers_per_object": "1",
        "time_limit": "30",
        "task_availibility": "3600",
        "max_concurrent_tasks": "20",
        "tags": json.dumps({**FAST, "smrun:emulator:objects": "20"}),
    }
    return {**args, **overrides}


def argv(component: Component, emulator: Emulator, args: dict[str, str], out: Path | None,
         *extra: str) -> list[str]:
    flags = [f"--{name}={value}" for name, value in args.items()]
    if out is not None:
        flags += [f"--{o.name}_output_path={out / o.name}" for o in component.outputs]
        flags += [f"--ui_summary_output_path={out / 'ui_summary.md'}"]
    return [component.name, *flags, "--endpoint_url", emulator.url,
            "--logs_endpoint_url", emulator.url,
            "--sts_endpoint_url", emulator.url, "--timing", "fast", "--log_format", "json",
            *extra]


async def run(component: Component, emulator: Emulator, args: dict[str, str],
              out: Path | None = None, *extra: str) -> int:
    return await main_async(argv(component, emulator, args, out, *extra), settings=TIMINGS)


def sent(emulator: Emulator, operation: str) -> list[dict[str, Any]]:
    return [params for _, op, params in emulator.requests if op == operation]


def tags_of(request: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in request.get("Tags", [])}


# --- model ------------------------------------------------------------------


async def test_model_creates_the_model_v1_asked_for_and_outputs_its_name(
    emulator: Emulator, tmp_path: Path
) -> None:
    args = model_arguments(tags='{"project": "mnist"}')
    assert await run(MODEL, emulator, args, tmp_path) == 0

    [request] = sent(emulator, "CreateModel")
    assert {k: v for k, v in request.items() if k != "Tags"} == {
        "ModelName": "kmeans-mnist-model",
        "PrimaryContainer": {"Image": KMEANS, "ModelDataUrl": ARTIFACT, "Environment": {}},
        "ExecutionRoleArn": ROLE,
        "EnableNetworkIsolation": True,
    }
    assert tags_of(request)["project"] == "mnist"
    assert (tmp_path / "model_name").read_text() == "kmeans-mnist-model"
    summary = (tmp_path / "ui_summary.md").read_text()
    assert "#/models/kmeans-mnist-model)" in summary and "Succeeded" in summary


def model_request(**overrides: str) -> dict[str, Any]:
    return MODEL.request(MODEL.parse(model_arguments(**overrides)))


def test_model_package_wins_and_secondary_containers_replace_the_primary() -> None:
    package = model_request(model_package="arn:aws:sagemaker:us-east-1:1:model-package/p/1",
                            container_host_name="first", environment='{"A": "1"}')
    assert package["PrimaryContainer"] == {
        "ModelPackageName": "arn:aws:sagemaker:us-east-1:1:model-package/p/1",
        "ContainerHostname": "first",
        "Environment": {"A": "1"},
    }
    pipeline = model_request(secondary_containers=json.dumps(
        [{"Image": KMEANS, "ContainerHostname": "one"}, {"Image": "other:1"}]
    ))
    assert "PrimaryContainer" not in pipeline
    assert [c["Image"] for c in pipeline["Containers"]] == [KMEANS, "other:1"]
    vpc = model_request(vpc_security_group_ids="sg-1,sg-2", vpc_subnets="subnet-1",
                        network_isolation="False")
    assert vpc["VpcConfig"] == {"SecurityGroupIds": ["sg-1", "sg-2"], "Subnets": ["subnet-1"]}
    assert vpc["EnableNetworkIsolation"] is False
    assert "VpcConfig" not in model_request(vpc_subnets="subnet-1")  # both or neither, as v1
    with pytest.raises(ArgumentError, match="image"):
        model_request(image="")


# --- deploy -----------------------------------------------------------------


async def models(emulator: Emulator, *names: str) -> None:
    for name in names:
        assert await run(MODEL, emulator, model_arguments(model_name=name)) == 0


async def test_deploy_creates_a_config_of_two_variants_then_updates_the_endpoint_in_place(
    emulator: Emulator, tmp_path: Path
) -> None:
    await models(emulator, "kmeans-mnist-model", "kmeans-mnist-model-2", "kmeans-mnist-model-3")

    assert await run(DEPLOY, emulator, deploy_arguments(), tmp_path / "create") == 0

    [config] = sent(emulator, "CreateEndpointConfig")
    assert config["EndpointConfigName"] == "kmeans-mnist-endpoint"
    assert config["ProductionVariants"] == [
        {"VariantName": "variant-1", "ModelName": "kmeans-mnist-model",
         "InitialInstanceCount": 1, "InstanceType": "ml.m5.xlarge", "InitialVariantWeight": 1.0},
        {"VariantName": "variant-2", "ModelName": "kmeans-mnist-model-2",
         "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 0.5},
    ]
    assert "KmsKeyId" not in config
    # v1: endpoint_config_tags on the config, tags on the endpoint
    assert tags_of(config)["team"] == "ml" and "smrun:emulator:duration" not in tags_of(config)
    [endpoint] = sent(emulator, "CreateEndpoint")
    assert endpoint["EndpointName"] == "kmeans-mnist-endpoint"
    assert endpoint["EndpointConfigName"] == "kmeans-mnist-endpoint"
    assert tags_of(endpoint)["smrun:emulator:duration"] == "0.3"
    assert (tmp_path / "create" / "endpoint_name").read_text() == "kmeans-mnist-endpoint"
    summary = (tmp_path / "create" / "ui_summary.md").read_text()
    assert "#/endpoints/kmeans-mnist-endpoint)" in summary
    assert summary.count("Succeeded") == 2  # the config and the endpoint

    # kmeans-mnist-update-endpoint: the same names, a new model on another instance type
    update = deploy_arguments(update_endpoint="True", model_name_1="kmeans-mnist-model-3",
                              instance_type_1="ml.m5.large", model_name_2="")
    assert await run(DEPLOY, emulator, update, tmp_path / "update") == 0

    assert emulator.count("CreateEndpoint") == 1
    new_config = sent(emulator, "CreateEndpointConfig")[1]
    # the given config name serves the endpoint: v1 named the new config itself
    new_name = new_config["EndpointConfigName"]
    assert new_name != "kmeans-mnist-endpoint"
    assert new_config["ProductionVariants"] == [
        {"VariantName": "variant-1", "ModelName": "kmeans-mnist-model-3",
         "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0},
    ]
    assert sent(emulator, "UpdateEndpoint") == [
        {"EndpointName": "kmeans-mnist-endpoint", "EndpointConfigName": new_name}
    ]
    # the config it replaced is deleted once the update is InService, as v1 deleted it
    assert sent(emulator, "DeleteEndpointConfig") == [
        {"EndpointConfigName": "kmeans-mnist-endpoint"}
    ]
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    assert set(endpoints.configs) == {new_name}
    assert (tmp_path / "update" / "endpoint_name").read_text() == "kmeans-mnist-endpoint"
    assert "#/endpoints/kmeans-mnist-endpoint)" in (tmp_path / "update" / "ui_summary.md")\
        .read_text()


async def test_restarted_deploy_step_attaches_to_the_config_and_endpoint_of_its_task(
    emulator: Emulator,
) -> None:
    await models(emulator, "kmeans-mnist-model")
    args = deploy_arguments(endpoint_name="", endpoint_config_name="", model_name_2="")
    ids = ["--run_id", "3f7c-run", "--task_id", "9a1b-task"]

    assert await run(DEPLOY, emulator, args, None, *ids) == 0
    assert await run(DEPLOY, emulator, args, None, *ids) == 0

    assert emulator.count("CreateEndpointConfig") == 1 and emulator.count("CreateEndpoint") == 1
    [endpoint] = sent(emulator, "CreateEndpoint")
    assert endpoint["EndpointName"] == job_name_for(DEPLOY.key, "3f7c-run", "9a1b-task", 63)
    assert endpoint["EndpointConfigName"] != endpoint["EndpointName"]


async def test_deploy_fails_without_creating_the_endpoint_when_its_config_fails(
    emulator: Emulator, tmp_path: Path
) -> None:
    code = await run(DEPLOY, emulator, deploy_arguments(model_name_2=""), tmp_path)

    assert code == 1  # no model kmeans-mnist-model: SageMaker refuses the config
    assert emulator.count("CreateEndpointConfig") == 1 and emulator.count("CreateEndpoint") == 0
    assert not (tmp_path / "endpoint_name").exists()
    summary = (tmp_path / "ui_summary.md").read_text()
    assert "Could not find model" in summary and "kmeans-mnist-endpoint" in summary
    assert "not started because endpoint-config failed" in summary


def deploy_jobs(**overrides: str) -> dict[str, Any]:
    jobs = DEPLOY.jobs(DEPLOY.parse(deploy_arguments(**overrides)))
    return {key: (job.kind, job.request, dict(job.options)) for key, job in jobs.items()}


def test_deploy_variants_follow_v1_slots_and_defaults() -> None:
    jobs = deploy_jobs(
        model_name_2="", model_name_3="m-3", initial_instance_count_3="0",
        accelerator_type_3="ml.eia1.medium", variant_name_3="", instance_type_3="",
        resource_encryption_key="kms-1",
    )
    kind, config, options = jobs["endpoint-config"]
    assert (kind, options) == ("endpoint_config", {})
    assert config["KmsKeyId"] == "kms-1"
    # variant 2 has no model: left out; variant 3 keeps its slot's defaults
    assert config["ProductionVariants"][1] == {
        "VariantName": "variant-name-3", "ModelName": "m-3", "InitialInstanceCount": 1,
        "InstanceType": "ml.m4.xlarge", "InitialVariantWeight": 1.0,
        "AcceleratorType": "ml.eia1.medium",
    }
    kind, endpoint, options = jobs["deploy"]
    assert (kind, options) == ("endpoint", {})
    assert endpoint["EndpointConfigName"] == (
        "{{ jobs.endpoint-config.outputs.endpoint_config_name }}"
    )
    assert tags_of(endpoint) == FAST
    update = deploy_jobs(update_endpoint="True")
    assert update["deploy"][2] == {"update": True}
    # with update_endpoint the config is named by smrun, as v1 did
    assert "EndpointConfigName" not in update["endpoint-config"][1]


# --- workteam and ground truth ----------------------------------------------


async def test_workteam_then_ground_truth_labels_with_the_private_team(
    emulator: Emulator, tmp_path: Path
) -> None:
    assert await run(WORKTEAM, emulator, workteam_arguments(), tmp_path / "team") == 0
    [team] = sent(emulator, "CreateWorkteam")
    assert {k: v for k, v in team.items() if k != "Tags"} == {
        "WorkteamName": "test-workteam",
        "Description": "Team for GroundTruth Integ Test",
        "MemberDefinitions": [{"CognitoMemberDefinition": {
            "UserPool": USER_POOL, "UserGroup": "user-group", "ClientId": CLIENT_ID,
        }}],
    }
    workteam_arn = (tmp_path / "team" / "workteam_arn").read_text()
    assert workteam_arn.endswith(":workteam/private-crowd/test-workteam")

    args = ground_truth_arguments(workteam_arn=workteam_arn)
    assert await run(GROUND_TRUTH, emulator, args, tmp_path / "gt") == 0

    [job] = sent(emulator, "CreateLabelingJob")
    assert {k: v for k, v in job.items() if k != "Tags"} == {
        "LabelingJobName": "image-labeling",
        "LabelAttributeName": "category",
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": f"{DATA}/train.manifest"}}
        },
        "OutputConfig": {"S3OutputPath": f"{DATA}/output"},
        "RoleArn": ROLE,
        "LabelCategoryConfigS3Uri": f"{DATA}/class_labels.json",
        "HumanTaskConfig": {
            "WorkteamArn": workteam_arn,
            "UiConfig": {"UiTemplateS3Uri": f"{DATA}/instructions.template"},
            "PreHumanTaskLambdaArn":
                "arn:aws:lambda:us-east-1:432418664414:function:PRE-ImageMultiClass",
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn":
                "arn:aws:lambda:us-east-1:432418664414:function:ACS-ImageMultiClass"},
            "TaskTitle": "Mini image classification",
            "TaskDescription": "Test for Ground Truth KFP component",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 30,
            "TaskAvailabilityLifetimeInSeconds": 3600,
            "MaxConcurrentTaskCount": 20,
        },
    }
    out = tmp_path / "gt"
    assert (out / "output_manifest_location").read_text() == (
        f"{DATA}/output/image-labeling/manifests/output/output.manifest"
    )
    assert (out / "active_learning_model_arn").read_text() == ""  # no auto-labeling
    assert "Succeeded" in (out / "ui_summary.md").read_text()


async def test_public_bounding_box_job_with_auto_labeling_outputs_its_model(
    emulator: Emulator, tmp_path: Path
) -> None:
    args = ground_truth_arguments(
        job_name="", label_attribute_name="boxes", task_type="Bounding Box",
        worker_type="public", workteam_arn="", no_adult_content="True", no_ppi="True",
        workforce_task_price="0.036", enable_auto_labeling="True",
        max_human_labeled_objects="10", task_keywords="images, boxes",
    )
    assert await run(GROUND_TRUTH, emulator, args, tmp_path) == 0

    [job] = sent(emulator, "CreateLabelingJob")
    task = job["HumanTaskConfig"]
    assert task["WorkteamArn"] == (
        "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"
    )
    assert task["PublicWorkforceTaskPrice"] == {
        "AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}
    }
    assert task["PreHumanTaskLambdaArn"].endswith(":function:PRE-BoundingBox")
    assert task["TaskKeywords"] == ["images", "boxes"]
    assert job["InputConfig"]["DataAttributes"] == {"ContentClassifiers": [
        "FreeOfAdultContent", "FreeOfPersonallyIdentifiableInformation",
    ]}
    assert job["StoppingConditions"] == {"MaxHumanLabeledObjectCount": 10}
    assert job["LabelingJobAlgorithmsConfig"] == {"LabelingJobAlgorithmSpecificationArn": (
        "arn:aws:sagemaker:us-east-1:027400017018:"
        "labeling-job-algorithm-specification/object-detection"
    )}
    assert (tmp_path / "output_manifest_location").read_text().endswith("/output.manifest")
    assert (tmp_path / "active_learning_model_arn").read_text().startswith("arn:aws:sagemaker:")


def labeling_request(**overrides: str) -> dict[str, Any]:
    return GROUND_TRUTH.request(GROUND_TRUTH.parse(ground_truth_arguments(**overrides)))


@pytest.mark.parametrize(("region", "task", "function"), [
    ("us-west-2", "bounding box", "arn:aws:lambda:us-west-2:081040173940:function:{}-BoundingBox"),
    ("eu-central-1", "Text Classification",
     "arn:aws:lambda:eu-central-1:203001061592:function:{}-TextMultiClass"),
    ("ap-southeast-2", "semantic segmentation",
     "arn:aws:lambda:ap-southeast-2:454466003867:function:{}-SemanticSegmentation"),
])
def test_built_in_task_types_use_the_regions_aws_functions(
    region: str, task: str, function: str
) -> None:
    label = "masks-ref" if "segmentation" in task else "category"
    config = labeling_request(region=region, task_type=task, label_attribute_name=label)[
        "HumanTaskConfig"
    ]
    assert config["PreHumanTaskLambdaArn"] == function.format("PRE")
    assert config["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == (
        function.format("ACS")
    )


def test_custom_tasks_take_their_own_functions_and_others_are_refused() -> None:
    pre = "arn:aws:lambda:us-east-1:123456789012:function:pre"
    post = "arn:aws:lambda:us-east-1:123456789012:function:post"
    config = labeling_request(task_type="custom", pre_human_task_function=pre,
                              post_human_task_function=post)["HumanTaskConfig"]
    assert config["PreHumanTaskLambdaArn"] == pre
    assert config["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == post
    with pytest.raises(ArgumentError, match="post_human_task_function"):
        labeling_request(task_type="custom", pre_human_task_function=pre)
    with pytest.raises(ArgumentError, match=r"task_type.*eu-north-1"):
        labeling_request(region="eu-north-1")
    with pytest.raises(ArgumentError, match="enable_auto_labeling"):
        labeling_request(task_type="semantic segmentation", label_attribute_name="m-ref",
                         enable_auto_labeling="True")


def test_label_attribute_rules_and_default_are_v1s() -> None:
    assert labeling_request(label_attribute_name="")["LabelAttributeName"] == "image-labeling"
    with pytest.raises(ArgumentError, match="label_attribute_name"):
        labeling_request(label_attribute_name="", job_name="")
    with pytest.raises(ArgumentError, match="-ref or -metadata"):
        labeling_request(label_attribute_name="category-metadata")
    with pytest.raises(ArgumentError, match="must end in -ref"):
        labeling_request(task_type="semantic segmentation", label_attribute_name="masks")
    request = labeling_request(max_percent_objects="50", output_encryption_key="kms-out",
                               enable_auto_labeling="True", initial_model_arn="arn:model",
                               resource_encryption_key="kms-vol")
    assert request["StoppingConditions"] == {"MaxPercentageOfInputDatasetLabeled": 50}
    assert request["OutputConfig"]["KmsKeyId"] == "kms-out"
    algorithms = request["LabelingJobAlgorithmsConfig"]
    assert algorithms["InitialActiveLearningModelArn"] == "arn:model"
    assert algorithms["LabelingJobResourceConfig"] == {"VolumeKmsKeyId": "kms-vol"}
    assert algorithms["LabelingJobAlgorithmSpecificationArn"].endswith("/image-classification")
    private = labeling_request()
    assert "DataAttributes" not in private["InputConfig"]
    assert "PublicWorkforceTaskPrice" not in private["HumanTaskConfig"]


@pytest.mark.parametrize(("text", "dollars", "cents", "tenths"), [
    ("0.000", 0, 0, 0), ("0.036", 0, 3, 6), ("0.012", 0, 1, 2), ("0.84", 0, 84, 0),
    ("1.2", 1, 20, 0),  # v1's float arithmetic made this 1 dollar, 19 cents and 10 tenths
    ("12.345", 12, 34, 5),
])
def test_task_price_is_split_exactly(text: str, dollars: int, cents: int, tenths: int) -> None:
    assert task_price(text) == {"Dollars": dollars, "Cents": cents,
                                "TenthFractionsOfACent": tenths}


def test_workteam_members_and_notifications() -> None:
    request = WORKTEAM.request(WORKTEAM.parse(workteam_arguments(
        user_groups="labelers, reviewers", sns_topic="arn:aws:sns:us-east-1:1:gt-tasks"
    )))
    assert [m["CognitoMemberDefinition"]["UserGroup"] for m in request["MemberDefinitions"]] == [
        "labelers", "reviewers"
    ]
    assert request["NotificationConfiguration"] == {
        "NotificationTopicArn": "arn:aws:sns:us-east-1:1:gt-tasks"
    }
    assert "WorkteamName" not in request  # the runner sets it from team_name


# --- bad arguments ------------------------------------------------------------


@pytest.mark.parametrize(("component", "args", "problem"), [
    (MODEL, model_arguments(image=""), "argument image: give an image or a model_package"),
    (MODEL, model_arguments(network_isolation="maybe"), "expected True or False"),
    (MODEL, model_arguments(role="not-an-arn"), "ExecutionRoleArn"),  # botocore's model
    (DEPLOY, deploy_arguments(model_name_1=""), "argument model_name_1: is required"),
    (DEPLOY, deploy_arguments(initial_variant_weight_2="heavy"), "initial_variant_weight_2"),
    (DEPLOY, deploy_arguments(accelerator_type_1="ml.eia9.huge"), "is not one of"),
    (DEPLOY, deploy_arguments(initial_instance_count_1="two"), "expected an integer"),
    (GROUND_TRUTH, ground_truth_arguments(task_type="polygon"), "argument task_type"),
    (GROUND_TRUTH, ground_truth_arguments(worker_type="crowd"), "argument worker_type"),
    (GROUND_TRUTH, ground_truth_arguments(workteam_arn=""), "argument workteam_arn"),
    (GROUND_TRUTH, ground_truth_arguments(worker_type="public", workforce_task_price="cheap"),
     "argument workforce_task_price"),
    (GROUND_TRUTH, ground_truth_arguments(time_limit=""), "argument time_limit: is required"),
    (WORKTEAM, workteam_arguments(user_groups=" , "), "argument user_groups"),
    (WORKTEAM, workteam_arguments(client_id=""), "argument client_id"),
])
async def test_bad_argument_exits_2_and_creates_nothing(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], component: Component,
    args: dict[str, str], problem: str,
) -> None:
    assert await run(component, emulator, args) == 2
    assert all(emulator.count(op) == 0 for op in CREATES)
    err = capsys.readouterr().err
    assert "invalid arguments" in err and problem in err


# --- the v1 interface ------------------------------------------------------------

# Each component's own inputs as v1's component.yaml declares them: name, type,
# default (as text; None: required). CsvList inputs are Strings in v1.
V1_INPUTS: dict[str, list[tuple[str, str, str | None]]] = {
    "model": [
        ("model_name", "String", None), ("role", "String", None),
        ("container_host_name", "String", ""), ("image", "String", ""),
        ("model_artifact_url", "String", ""), ("environment", "JsonObject", "{}"),
        ("model_package", "String", ""), ("secondary_containers", "JsonArray", "[]"),
        ("vpc_security_group_ids", "String", ""), ("vpc_subnets", "String", ""),
        ("network_isolation", "Bool", "True"),
    ],
    "deploy": [
        ("endpoint_name", "String", ""), ("endpoint_config_name", "String", ""),
        ("endpoint_config_tags", "JsonObject", "{}"), ("resource_encryption_key", "String", ""),
        ("update_endpoint", "Bool", "False"),
        *[spec for n in (1, 2, 3) for spec in (
            (f"variant_name_{n}", "String", f"variant-name-{n}"),
            (f"model_name_{n}", "String", None if n == 1 else ""),
            (f"initial_instance_count_{n}", "Integer", "1"),
            (f"instance_type_{n}", "String", "ml.m4.xlarge"),
            (f"initial_variant_weight_{n}", "String", "1.0"),
            (f"accelerator_type_{n}", "String", ""),
        )],
    ],
    "ground_truth": [
        ("role", "String", None), ("job_name", "String", ""),
        ("label_attribute_name", "String", ""), ("manifest_location", "String", None),
        ("output_location", "String", None), ("output_encryption_key", "String", ""),
        ("task_type", "String", None), ("worker_type", "String", None),
        ("workteam_arn", "String", ""), ("no_adult_content", "Bool", "False"),
        ("no_ppi", "Bool", "False"), ("label_category_config", "String", ""),
        ("max_human_labeled_objects", "Integer", "0"), ("max_percent_objects", "Integer", "0"),
        ("enable_auto_labeling", "Bool", "False"), ("initial_model_arn", "String", ""),
        ("resource_encryption_key", "String", ""), ("ui_template", "String", None),
        ("pre_human_task_function", "String", ""), ("post_human_task_function", "String", ""),
        ("task_keywords", "String", ""), ("title", "String", None),
        ("description", "String", None), ("num_workers_per_object", "Integer", None),
        ("time_limit", "Integer", None), ("task_availibility", "Integer", "0"),
        ("max_concurrent_tasks", "Integer", "0"), ("workforce_task_price", "String", "0.000"),
    ],
    "workteam": [
        ("team_name", "String", None), ("description", "String", None),
        ("user_pool", "String", ""), ("user_groups", "String", ""), ("client_id", "String", ""),
        ("sns_topic", "String", ""),
    ],
}
V1_OUTPUTS = {
    "model": ["model_name"],
    "deploy": ["endpoint_name"],
    "ground_truth": ["output_manifest_location", "active_learning_model_arn"],
    "workteam": ["workteam_arn"],
}


@pytest.mark.parametrize("component", [MODEL, DEPLOY, GROUND_TRUTH, WORKTEAM],
                         ids=lambda c: c.name)
def test_inputs_and_outputs_are_v1s_names_types_and_defaults(component: Component) -> None:
    names = [spec.name for spec in component.all_inputs]
    assert names == ["region", "endpoint_url", "assume_role", "tags",
                     *(name for name, _, _ in V1_INPUTS[component.name])]
    for name, v1_type, v1_default in V1_INPUTS[component.name]:
        spec = component.input(name)
        ours = "String" if spec.type is InputType.CSV_LIST else spec.type.value
        assert ours == v1_type, name
        if v1_default is None:
            assert spec.required, name
        else:
            assert spec.parse(v1_default) == spec.default, name
    assert [o.name for o in component.outputs] == V1_OUTPUTS[component.name]
