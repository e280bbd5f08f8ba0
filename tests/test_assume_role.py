"""assume_role: every call is made with refreshable STS credentials of the role
(moto's STS in server mode plays AWS; the emulator plays SageMaker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from smrun.aws import Aws, AwsConfig
from smrun.emulator import Emulator

ROLE = "arn:aws:iam::123456789012:role/kfp-pipelines"


@pytest.fixture
def sts_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # botocore's per-service endpoint variable: only STS goes to moto
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    try:
        yield url
    finally:
        server.stop()


async def test_calls_use_the_assumed_roles_refreshable_credentials(
    sts_url: str, emulator: Emulator
) -> None:
    config = AwsConfig(
        region="us-east-1",
        endpoint_url=emulator.url,
        logs_endpoint_url=emulator.url,
        static_credentials=("AKIAIOSFODNN7SOURCE1", "source-secret"),
        assume_role=ROLE,
    )
    async with Aws(config) as aws:
        listed = await aws.call("sagemaker", "ListTrainingJobs")
        await aws.call("logs", "DescribeLogGroups")
    assert listed["TrainingJobSummaries"] == []
    # SageMaker and Logs saw the role's temporary keys (moto's STS hands out
    # ASIA... keys), never the source keys
    assert len(emulator.callers) == 2
    assert all(key.startswith("ASIA") for key in emulator.callers), emulator.callers


async def test_without_assume_role_the_source_keys_sign(emulator: Emulator) -> None:
    config = AwsConfig(region="us-east-1", endpoint_url=emulator.url,
                       static_credentials=("AKIAIOSFODNN7SOURCE1", "source-secret"))
    async with Aws(config) as aws:
        await aws.call("sagemaker", "ListTrainingJobs")
    assert emulator.callers == ["AKIAIOSFODNN7SOURCE1"]
