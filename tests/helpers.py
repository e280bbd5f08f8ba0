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

from runner import AwsConfig, Runner, Settings
from runner.emulator import Emulator
from runner.emulator.jobs import LATE_INGESTION


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
