"""The emulator measures itself: calls per operation per second of its clock, each
operation's peak, and its own CPU, on the admin API and as a method."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from smrun.emulator import Emulator, FakeClock, FaultConfig

START = FakeClock().now  # a whole second


async def test_peaks_are_counted_per_whole_second_of_the_clock(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    logs = await aws_client("logs", fake_emulator)
    sts = await aws_client("sts", fake_emulator)
    fake_clock.set(START + 0.2)
    for _ in range(3):
        await sagemaker.list_training_jobs()
    fake_clock.set(START + 1.9)
    await sagemaker.list_training_jobs()
    await logs.describe_log_groups()
    await logs.describe_log_groups()
    fake_clock.set(START + 2.0)
    await sts.get_caller_identity()
    fake_emulator.faults = FaultConfig(throttle=1.0, operations=frozenset({"ListTrainingJobs"}))
    for _ in range(3):
        with pytest.raises(ClientError, match="ThrottlingException"):
            await sagemaker.list_training_jobs()  # throttled: still a call that arrived

    report = fake_emulator.rates_report()
    assert report["operations"] == {
        "DescribeLogGroups": {"total": 2, "peak_per_second": 2, "peak_second": START + 1},
        "GetCallerIdentity": {"total": 1, "peak_per_second": 1, "peak_second": START + 2},
        "ListTrainingJobs": {"total": 7, "peak_per_second": 3, "peak_second": START},
    }
    # every operation together: 3 in the first second, 3 in the next, 4 in the third
    assert (report["requests"], report["peak_per_second"], report["peak_second"]) == (
        10,
        4,
        START + 2,
    )
    assert fake_emulator.count("ListTrainingJobs") == 7
    assert report["process_cpu_seconds"] >= report["cpu_seconds"] > 0


async def test_the_admin_api_reports_and_resets_the_counters(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for _ in range(5):
        await sagemaker.list_processing_jobs()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake_emulator.url}/_emulator/rates") as response:
            assert response.status == 200
            report = await response.json()
        assert report["requests"] == 5
        assert report["operations"]["ListProcessingJobs"]["peak_per_second"] == 5
        assert set(report) == {
            "requests",
            "peak_per_second",
            "peak_second",
            "operations",
            "cpu_seconds",
            "process_cpu_seconds",
            "wall_seconds",
        }
        async with http.post(f"{fake_emulator.url}/_emulator/rates") as response:
            assert response.status == 200
            fresh = await response.json()
    assert fresh["requests"] == 0 and fresh["operations"] == {}
    await sagemaker.list_processing_jobs()
    assert fake_emulator.rates_report()["operations"]["ListProcessingJobs"]["total"] == 1


async def test_an_emulator_in_its_own_process_reports_its_cpu_and_rates(
    emulator_url: str, aio_session: Any
) -> None:
    async with aio_session.create_client(
        "sagemaker",
        region_name="us-east-1",
        endpoint_url=emulator_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as sagemaker:
        for _ in range(20):
            await sagemaker.list_training_jobs(MaxResults=100)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator_url}/_emulator/rates") as response:
            report = await response.json()
    assert report["operations"]["ListTrainingJobs"]["total"] == 20
    assert 1 <= report["operations"]["ListTrainingJobs"]["peak_per_second"] <= 20
    # the child's own CPU: it has at least parsed botocore's models and served 20 calls
    assert report["process_cpu_seconds"] > 0.05
