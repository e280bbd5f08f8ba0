"""Helpers several test modules share: errors of the emulator, responses checked
against botocore's model, and the engine pointed at an emulator."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

from smrun import AwsConfig, Runner, Settings
from smrun.emulator import Emulator
from smrun.emulator.jobs import LATE_INGESTION


async def error_of(call: Any, **params: Any) -> tuple[str, str]:
    """The code and message of the ClientError that ``call(**params)`` raises."""
    with pytest.raises(ClientError) as caught:
        await call(**params)
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


@functools.cache
def sagemaker_model() -> ServiceModel:
    return ServiceModel(Loader().load_service_model("sagemaker", "service-2"))


def assert_fits_the_model(response: dict[str, Any], operation: str) -> None:
    """The parsed response has every required member, of the model's types."""
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    shape = sagemaker_model().operation_model(operation).output_shape
    report = ParamValidator().validate(body, shape)
    assert not report.has_errors(), report.generate_report()


def emulator_config(emulator: Emulator) -> AwsConfig:
    return AwsConfig(
        region="us-east-1",
        endpoint_url=emulator.url,
        logs_endpoint_url=emulator.url,
        sts_endpoint_url=emulator.url,
        static_credentials=("testing", "testing"),
    )


def local_runner(emulator: Emulator, **kwargs: Any) -> Runner:
    """A runner on the emulator. The emulator's last line of a stream reaches
    CloudWatch 0.5 s after the job ended: the drain waits longer than that."""
    kwargs.setdefault("settings", Settings.fast(drain_grace=LATE_INGESTION + 0.2))
    return Runner(emulator_config(emulator), **kwargs)


# the events status source (runner.watch.events): SageMaker's EventBridge events
EVENT_ACCOUNT = "111122223333"
EVENT_T0 = 1_717_000_000_000  # 2024-05-29T16:26:40Z in epoch milliseconds


def training_event_detail(status: str = "Completed", secondary: str = "Completed", *,
                          artifacts: bool = True, modified: Any = EVENT_T0) -> dict[str, Any]:
    """The detail of a "SageMaker Training Job State Change" event: the shape of
    DescribeTrainingJob, times in epoch milliseconds (as in AWS's samples)."""
    detail: dict[str, Any] = {
        "TrainingJobName": "xgb-churn-7",
        "TrainingJobArn": f"arn:aws:sagemaker:us-west-2:{EVENT_ACCOUNT}:training-job/xgb-churn-7",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "HyperParameters": {"max_depth": "6", "eta": "0.2"},
        "AlgorithmSpecification": {
            "TrainingImage": "246618743249.dkr.ecr.us-west-2.amazonaws.com/xgboost:1.7-1",
            "TrainingInputMode": "File",
        },
        "RoleArn": f"arn:aws:iam::{EVENT_ACCOUNT}:role/sagemaker-exec",
        "InputDataConfig": [{
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": "s3://churn-data/train/",
                                            "S3DataDistributionType": "FullyReplicated"}},
        }],
        "OutputDataConfig": {"S3OutputPath": "s3://churn-models/"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2,
                           "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": EVENT_T0 - 600_000,
        "TrainingStartTime": EVENT_T0 - 540_000,
        "LastModifiedTime": modified,
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": EVENT_T0 - 600_000, "EndTime": EVENT_T0 - 540_000,
             "StatusMessage": "Preparing the instances for training"},
            {"Status": secondary, "StartTime": EVENT_T0 - 1_000},
        ],
        "BillableTimeInSeconds": 540,
        "TrainingTimeInSeconds": 540,
        "FinalMetricDataList": [{"MetricName": "validation:auc", "Value": 0.91,
                                 "Timestamp": EVENT_T0 - 2_000}],
        "Tags": {},
    }
    if status == "Completed":
        detail["TrainingEndTime"] = EVENT_T0
    if artifacts:
        detail["ModelArtifacts"] = {"S3ModelArtifacts": "s3://churn-models/xgb-churn-7/model.tar.gz"}
    if status == "Failed":
        detail["FailureReason"] = "AlgorithmError: out of memory"
    return detail
