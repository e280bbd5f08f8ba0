"""The emulator's wire protocol: parsing, validation messages, errors, serialization."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from smrun.emulator import ApiError, Emulator, FakeClock
from smrun.emulator.protocol import ServiceProtocol

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"

AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/sagemaker/aws4"}


def training_request(name: str = "job-1", **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "img:latest", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    request.update(overrides)
    return request


async def post(
    emu: Emulator, target: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    send = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1", **AUTH}
    send.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(emu.url + "/", data=data, headers=send) as response,
    ):
        return response.status, json.loads(await response.read()), dict(response.headers)


async def validation_message(sagemaker: Any, call: str, **params: Any) -> str:
    with pytest.raises(ClientError) as caught:
        await getattr(sagemaker, call)(**params)
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    return str(error["Message"])


async def test_too_long_name_is_reported_like_aws(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator, validate=False)
    name = "a" * 64
    message = await validation_message(sagemaker, "create_training_job", **training_request(name))
    assert message.startswith("2 validation errors detected: ")
    assert (
        f"Value '{name}' at 'trainingJobName' failed to satisfy constraint: "
        "Member must have length less than or equal to 63"
    ) in message
    assert "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}" in (
        message
    )
    assert fake_emulator.sagemaker.kinds["training"].jobs == {}  # type: ignore[attr-defined]


async def test_single_violation_says_one_error(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator, validate=False)
    message = await validation_message(
        sagemaker, "create_training_job", **training_request("bad_name")
    )
    assert message == (
        "1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


async def test_enum_max_value_and_nested_paths(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator, validate=False)
    request = training_request(
        ResourceConfig={"InstanceType": "ml.huge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        Tags=[{"Key": "k" * 129, "Value": "v"}],
    )
    message = await validation_message(sagemaker, "create_training_job", **request)
    assert "Value 'ml.huge' at 'resourceConfig.instanceType' failed to satisfy constraint: " in (
        message
    )
    assert "Member must satisfy enum value set: [ml.m4.xlarge, " in message
    assert (
        "at 'tags.1.member.key' failed to satisfy constraint: "
        "Member must have length less than or equal to 128"
    ) in message

    message = await validation_message(sagemaker, "list_training_jobs", MaxResults=101)
    assert message == (
        "1 validation error detected: Value '101' at 'maxResults' failed to satisfy "
        "constraint: Member must have value less than or equal to 100"
    )


async def test_min_value_and_map_values(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator, validate=False)
    request = training_request(
        StoppingCondition={"MaxRuntimeInSeconds": 0},
        HyperParameters={"lr": "x" * 2501},
    )
    message = await validation_message(sagemaker, "create_training_job", **request)
    assert (
        "Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    ) in message
    assert (
        "at 'hyperParameters' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 2500]"
    ) in message


async def test_missing_required_member(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator, validate=False)
    request = training_request()
    del request["RoleArn"]
    message = await validation_message(sagemaker, "create_training_job", **request)
    assert message == (
        "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: "
        "Member must not be null"
    )


async def test_unknown_member_is_rejected(fake_emulator: Emulator) -> None:
    status, body, _ = await post(
        fake_emulator, "SageMaker.CreateTrainingJob", {**training_request(), "Bogus": 1}
    )
    assert status == 400
    assert body["__type"] == "ValidationException"
    assert "Unknown member 'Bogus'" in body["message"]


async def test_wrong_type_is_a_serialization_error(fake_emulator: Emulator) -> None:
    status, body, headers = await post(
        fake_emulator, "SageMaker.DescribeTrainingJob", {"TrainingJobName": 5}
    )
    assert status == 400
    assert body["__type"] == "SerializationException"
    assert headers["x-amzn-ErrorType"] == "SerializationException"


async def test_error_wire_format(fake_emulator: Emulator) -> None:
    status, body, headers = await post(
        fake_emulator, "SageMaker.DescribeTrainingJob", {"TrainingJobName": "nope"}
    )
    assert status == 400
    assert body == {"__type": "ValidationException", "message": "Requested resource not found."}
    assert headers["x-amzn-ErrorType"] == "ValidationException"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-RequestId"]


async def test_bad_json_unknown_target_and_missing_auth(fake_emulator: Emulator) -> None:
    status, body, _ = await post(fake_emulator, "SageMaker.ListTrainingJobs", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")

    status, body, _ = await post(fake_emulator, "Nope.ListTrainingJobs", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")

    status, body, _ = await post(fake_emulator, "SageMaker.NotAnOperation", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake_emulator.url + "/",
            data=b"{}",
            headers={"X-Amz-Target": "SageMaker.ListTrainingJobs"},
        ) as response,
    ):
        assert response.status == 403
        assert (await response.json(content_type=None))["__type"] == (
            "MissingAuthenticationTokenException"
        )


async def test_empty_body_is_an_empty_request(fake_emulator: Emulator) -> None:
    status, body, _ = await post(fake_emulator, "SageMaker.ListTrainingJobs", b"")
    assert status == 200
    assert body == {"TrainingJobSummaries": []}


async def test_timestamps_round_trip_as_datetimes(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_training_job(**training_request())
    described = await sagemaker.describe_training_job(TrainingJobName="job-1")
    created = described["CreationTime"]
    assert isinstance(created, dt.datetime)
    assert created.timestamp() == fake_clock.now
    # A datetime sent by the client arrives as an epoch number and is compared as time.
    before = await sagemaker.list_training_jobs(CreationTimeBefore=created)
    after = await sagemaker.list_training_jobs(CreationTimeAfter=created - dt.timedelta(seconds=1))
    assert before["TrainingJobSummaries"] == []
    assert [s["TrainingJobName"] for s in after["TrainingJobSummaries"]] == ["job-1"]


def test_serialize_follows_the_output_shape() -> None:
    protocol = ServiceProtocol.for_service("logs")
    operation = protocol.model.operation_model("GetLogEvents")
    body = json.loads(
        protocol.serialize(
            operation,
            {
                "events": [{"timestamp": 5, "message": "m", "ingestionTime": 6, "extra": 1}],
                "nextForwardToken": "f/1",
                "notInTheShape": "dropped",
                "nextBackwardToken": None,
            },
        )
    )
    assert body == {
        "events": [{"timestamp": 5, "message": "m", "ingestionTime": 6}],
        "nextForwardToken": "f/1",
    }


def test_serialize_converts_timestamps_and_blobs() -> None:
    protocol = ServiceProtocol.for_service("sagemaker")
    operation = protocol.model.operation_model("ListTrainingJobs")
    when = dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)
    summary = {
        "TrainingJobName": "a",
        "TrainingJobArn": "arn",
        "CreationTime": when,
        "LastModifiedTime": 1.5,
        "TrainingJobStatus": "InProgress",
    }
    body = json.loads(protocol.serialize(operation, {"TrainingJobSummaries": [summary]}))
    assert body["TrainingJobSummaries"][0]["CreationTime"] == when.timestamp()
    assert body["TrainingJobSummaries"][0]["LastModifiedTime"] == 1.5

    invoke = ServiceProtocol.for_service("sagemaker-runtime")
    shape = invoke.model.operation_model("InvokeEndpoint").output_shape
    assert invoke.to_wire({"Body": b"\x00hi"}, shape, "out") == {"Body": "AGhp"}


def test_missing_required_output_member_is_an_internal_failure() -> None:
    protocol = ServiceProtocol.for_service("sagemaker")
    operation = protocol.model.operation_model("CreateTrainingJob")
    with pytest.raises(ApiError) as caught:
        protocol.serialize(operation, {})
    assert caught.value.status == 500
    assert caught.value.code == "InternalFailure"


def test_parse_converts_wire_values() -> None:
    protocol = ServiceProtocol.for_service("sagemaker")
    operation = protocol.model.operation_model("ListTrainingJobs")
    params = protocol.parse(operation, {"CreationTimeAfter": 1700000000.5, "MaxResults": 5})
    assert params["CreationTimeAfter"] == dt.datetime.fromtimestamp(
        1700000000.5, tz=dt.timezone.utc
    )


def test_uncompilable_patterns_are_skipped() -> None:
    protocol = ServiceProtocol.for_service("sagemaker")
    operation = protocol.model.operation_model("AddTags")
    # TagKey's pattern uses Java's \p{L}; the value must not be rejected for it.
    protocol.parse(
        operation,
        {
            "ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x",
            "Tags": [{"Key": "ключ", "Value": "значение"}],
        },
    )


async def test_two_emulators_are_independent(aws_client: Any) -> None:
    async with Emulator(clock=FakeClock()) as first, Emulator(clock=FakeClock()) as second:
        one = await aws_client("sagemaker", first)
        two = await aws_client("sagemaker", second)
        await one.create_training_job(**training_request("only-here"))
        assert first.url != second.url
        listed = await two.list_training_jobs()
        assert listed["TrainingJobSummaries"] == []
        assert first.count("CreateTrainingJob") == 1
        assert second.count("CreateTrainingJob") == 0
