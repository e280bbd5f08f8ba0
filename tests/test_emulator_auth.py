"""The emulator's STS GetCallerIdentity, refused credentials and AccessDenied:
each answered the way AWS answers it, in the caller's protocol."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from smrun.emulator import Emulator, FaultConfig, KeyRefusal
from tests.test_emulator_protocol import training_request

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
SIGNED_FOR_STS = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/sts/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=00",
    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
}
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
# mode -> (JSON code, JSON status, STS code, STS status, message)
REFUSALS: dict[KeyRefusal, tuple[str, int, str, int, str]] = {
    "invalid_key": (
        "UnrecognizedClientException", 400, "InvalidClientTokenId", 403,
        "The security token included in the request is invalid.",
    ),
    "expired_token": (
        "ExpiredTokenException", 400, "ExpiredToken", 403,
        "The security token included in the request is expired",
    ),
    "bad_signature": (
        "InvalidSignatureException", 400, "SignatureDoesNotMatch", 403, BAD_SIGNATURE,
    ),
}

SignedClient = Callable[..., Awaitable[Any]]


@pytest.fixture
async def signed(aio_session: AioSession) -> AsyncIterator[SignedClient]:
    """``await signed("sts", emu, key="AKID")``: a client signing with ``key``."""
    async with AsyncExitStack() as stack:

        async def make(service: str, emu: Emulator, *, key: str = "testing") -> Any:
            config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
            return await stack.enter_async_context(
                aio_session.create_client(
                    service,
                    region_name=emu.region,
                    endpoint_url=emu.url,
                    aws_access_key_id=key,
                    aws_secret_access_key="secret",
                    config=config,
                )
            )

        yield make


async def error_of(call: Awaitable[Any]) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        await call
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


async def post_form(
    emu: Emulator, body: str, headers: dict[str, str] | None = None
) -> tuple[int, ET.Element, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(emu.url + "/", data=body.encode(), headers=headers or SIGNED_FOR_STS) as response,
    ):
        return response.status, ET.fromstring(await response.read()), dict(response.headers)


# -- GetCallerIdentity ------------------------------------------------------


async def test_caller_identity_defaults_to_a_user_of_the_emulators_account(
    emulator: Emulator, signed: SignedClient
) -> None:
    sts = await signed("sts", emulator)
    identity = await sts.get_caller_identity()
    assert identity["Account"] == "123456789012"
    assert identity["Arn"] == "arn:aws:iam::123456789012:user/testing"
    assert identity["UserId"].startswith("AIDA") and len(identity["UserId"]) == 21
    assert identity["ResponseMetadata"]["RequestId"]
    assert emulator.requests == [("sts", "GetCallerIdentity", {})]
    assert emulator.callers == ["testing"]


async def test_caller_identity_is_configurable_per_access_key(
    emulator: Emulator, signed: SignedClient
) -> None:
    emulator.identities["AKIAROLECALLER"] = "arn:aws:sts::210987654321:assumed-role/Deployer/ci"
    as_role = await (await signed("sts", emulator, key="AKIAROLECALLER")).get_caller_identity()
    as_default = await (await signed("sts", emulator)).get_caller_identity()
    assert as_role["Arn"] == "arn:aws:sts::210987654321:assumed-role/Deployer/ci"
    assert as_role["Account"] == "210987654321"
    assert as_role["UserId"].startswith("AROA") and as_role["UserId"].endswith(":ci")
    assert as_default["Arn"] == "arn:aws:iam::123456789012:user/testing"
    assert emulator.callers == ["AKIAROLECALLER", "testing"]


def test_an_identity_must_be_a_principal_arn(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="not an identity ARN"):
        emulator.identities["AKIA1"] = "arn:aws:s3:::bucket"
    assert "AKIA1" not in emulator.identities


async def test_caller_identity_answers_in_sts_xml_shape(emulator: Emulator) -> None:
    status, root, headers = await post_form(emulator, "Action=GetCallerIdentity&Version=2011-06-15")
    assert status == 200
    assert headers["Content-Type"] == "text/xml"
    assert root.tag == f"{STS_NS}GetCallerIdentityResponse"
    result, metadata = list(root)
    assert result.tag == f"{STS_NS}GetCallerIdentityResult"
    assert [child.tag for child in result] == [f"{STS_NS}{m}" for m in ("Arn", "UserId", "Account")]
    assert metadata.tag == f"{STS_NS}ResponseMetadata"
    assert metadata.findtext(f"{STS_NS}RequestId") == headers["x-amzn-RequestId"]


async def test_boto3_reads_the_caller_identity(emulator: Emulator) -> None:
    client = boto3.client(
        "sts",
        region_name=emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id="AKIASYNC",
        aws_secret_access_key="secret",
    )
    # boto3 blocks: call it off the loop the emulator runs on
    identity = await asyncio.to_thread(client.get_caller_identity)
    assert identity["Arn"] == "arn:aws:iam::123456789012:user/AKIASYNC"
    assert emulator.callers == ["AKIASYNC"]


async def test_unknown_and_unserved_sts_actions_are_invalid_action(
    emulator: Emulator, signed: SignedClient
) -> None:
    status, root, _ = await post_form(emulator, "Action=GetEverything&Version=2011-06-15")
    assert status == 400
    assert root.tag == f"{STS_NS}ErrorResponse"
    assert root.findtext(f"{STS_NS}Error/{STS_NS}Type") == "Sender"
    assert root.findtext(f"{STS_NS}Error/{STS_NS}Code") == "InvalidAction"
    assert root.findtext(f"{STS_NS}Error/{STS_NS}Message") == (
        "Could not find operation GetEverything for version 2011-06-15"
    )
    assert root.findtext(f"{STS_NS}RequestId")
    sts = await signed("sts", emulator)
    code, message, http_status = await error_of(
        sts.get_session_token(DurationSeconds=900)
    )
    assert (code, http_status) == ("InvalidAction", 400)
    assert "GetSessionToken" in message
    assert emulator.count("GetEverything") == 1


async def test_an_unsigned_sts_call_is_missing_authentication(emulator: Emulator) -> None:
    form_only = {"Content-Type": "application/x-www-form-urlencoded"}
    status, root, _ = await post_form(
        emulator, "Action=GetCallerIdentity&Version=2011-06-15", form_only
    )
    assert status == 403
    assert root.findtext(f"{STS_NS}Error/{STS_NS}Code") == "MissingAuthenticationToken"
    assert emulator.requests == []


async def test_sts_takes_the_random_faults_in_its_own_words(
    emulator: Emulator, signed: SignedClient
) -> None:
    emulator.faults = FaultConfig(throttle=1.0, operations=frozenset({"GetCallerIdentity"}))
    code, message, status = await error_of((await signed("sts", emulator)).get_caller_identity())
    assert (code, message, status) == ("Throttling", "Rate exceeded", 400)
    assert emulator.faulted == [("GetCallerIdentity", "throttle")]


# -- refused keys ------------------------------------------------------------


@pytest.mark.parametrize("how", sorted(REFUSALS))
async def test_a_refused_key_is_refused_by_every_service_in_its_protocol(
    emulator: Emulator, signed: SignedClient, how: KeyRefusal
) -> None:
    json_code, json_status, sts_code, sts_status, message = REFUSALS[how]
    emulator.refuse_key("AKIAREFUSED", how)
    sagemaker = await signed("sagemaker", emulator, key="AKIAREFUSED")
    logs = await signed("logs", emulator, key="AKIAREFUSED")
    sts = await signed("sts", emulator, key="AKIAREFUSED")
    assert await error_of(sagemaker.list_training_jobs()) == (json_code, message, json_status)
    assert await error_of(logs.describe_log_groups()) == (json_code, message, json_status)
    assert await error_of(sts.get_caller_identity()) == (sts_code, message, sts_status)
    assert emulator.faulted == [
        ("ListTrainingJobs", how), ("DescribeLogGroups", how), ("GetCallerIdentity", how),
    ]
    # only that key: another one is served
    other = await signed("sagemaker", emulator, key="AKIAGOOD")
    assert (await other.list_training_jobs())["TrainingJobSummaries"] == []


async def test_a_refused_create_creates_nothing_and_an_accepted_key_works_again(
    emulator: Emulator, signed: SignedClient
) -> None:
    emulator.refuse_key("testing", "expired_token")
    sagemaker = await signed("sagemaker", emulator)
    code, _, _ = await error_of(sagemaker.create_training_job(**training_request("job-1")))
    assert code == "ExpiredTokenException"
    assert emulator.sagemaker.kinds["training"].jobs == {}  # type: ignore[attr-defined]
    emulator.accept_key("testing")
    assert emulator.faults.refused_keys == {}
    created = await sagemaker.create_training_job(**training_request("job-1"))
    assert created["TrainingJobArn"].endswith(":training-job/job-1")


def test_a_key_is_refused_in_one_of_three_ways(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="invalid_key, expired_token, bad_signature"):
        emulator.refuse_key("AKIA1", "revoked")  # type: ignore[arg-type]
    assert emulator.faults.refused_keys == {}


# -- AccessDenied -------------------------------------------------------------


async def test_a_denied_create_training_job_creates_nothing(
    emulator: Emulator, signed: SignedClient
) -> None:
    emulator.faults = FaultConfig(deny=frozenset({"CreateTrainingJob"}))
    sagemaker = await signed("sagemaker", emulator)
    code, message, status = await error_of(
        sagemaker.create_training_job(**training_request("Denied-Job"))
    )
    assert (code, status) == ("AccessDeniedException", 400)
    assert message == (
        "User: arn:aws:iam::123456789012:user/testing is not authorized to perform: "
        "sagemaker:CreateTrainingJob on resource: "
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/denied-job "
        "because no identity-based policy allows the sagemaker:CreateTrainingJob action"
    )
    code, message, _ = await error_of(sagemaker.describe_training_job(TrainingJobName="Denied-Job"))
    assert (code, message) == ("ValidationException", "Requested resource not found.")
    assert emulator.faulted == [("CreateTrainingJob", "access_denied")]
    # other operations are allowed
    assert (await sagemaker.list_training_jobs())["TrainingJobSummaries"] == []


async def test_deny_for_one_key_names_its_principal_and_spares_the_others(
    emulator: Emulator, signed: SignedClient
) -> None:
    emulator.identities["AKIALIMITED"] = "arn:aws:sts::123456789012:assumed-role/ReadOnly/me"
    emulator.faults = FaultConfig(deny_for={"AKIALIMITED": frozenset({"sagemaker:*"})})
    limited = await signed("sagemaker", emulator, key="AKIALIMITED")
    code, message, _ = await error_of(limited.list_training_jobs())
    assert code == "AccessDeniedException"
    assert message.startswith(
        "User: arn:aws:sts::123456789012:assumed-role/ReadOnly/me is not authorized to "
        "perform: sagemaker:ListTrainingJobs on resource: * because"
    )
    # the same key may still read its identity and its logs
    sts = await signed("sts", emulator, key="AKIALIMITED")
    assert (await sts.get_caller_identity())["Account"] == "123456789012"
    logs = await signed("logs", emulator, key="AKIALIMITED")
    assert "logGroups" in await logs.describe_log_groups()
    other = await signed("sagemaker", emulator)
    assert (await other.list_training_jobs())["TrainingJobSummaries"] == []


async def test_a_denied_logs_call_names_the_log_stream(
    emulator: Emulator, signed: SignedClient
) -> None:
    emulator.faults = FaultConfig(deny=frozenset({"logs:GetLogEvents"}))
    logs = await signed("logs", emulator)
    code, message, status = await error_of(
        logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="job/algo-1")
    )
    assert (code, status) == ("AccessDeniedException", 400)
    assert (
        "on resource: arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/TrainingJobs"
        ":log-stream:job/algo-1 because" in message
    )


async def test_a_denied_sts_call_is_access_denied_403(
    emulator: Emulator, signed: SignedClient
) -> None:
    emulator.faults = FaultConfig(deny=frozenset({"sts:GetCallerIdentity"}))
    code, message, status = await error_of((await signed("sts", emulator)).get_caller_identity())
    assert (code, status) == ("AccessDenied", 403)
    assert "perform: sts:GetCallerIdentity on resource: *" in message
    assert emulator.faulted == [("GetCallerIdentity", "access_denied")]


def test_denied_operations_must_exist() -> None:
    with pytest.raises(ValueError, match="names no operation"):
        FaultConfig(deny=frozenset({"CreateTrainingJobs"}))
    for entry in ("s3:GetObject", ":CreateTrainingJob"):
        with pytest.raises(ValueError, match="the service is one of"):
            FaultConfig(deny=frozenset({entry}))


# -- admin endpoints ----------------------------------------------------------


async def test_admin_endpoint_sets_and_returns_the_auth_faults(
    emulator: Emulator, signed: SignedClient
) -> None:
    settings = {
        "refused_keys": {"AKIAOLD": "expired_token"},
        "deny": ["CreateTrainingJob"],
        "deny_for": {"AKIALIMITED": ["logs:*", "sagemaker:ListTrainingJobs"]},
    }
    faults_url = emulator.url + "/_emulator/faults"
    async with aiohttp.ClientSession() as http:
        async with http.post(faults_url, json=settings) as response:
            assert response.status == 200
        async with http.get(faults_url) as response:
            current = await response.json()
        for bad in (
            {"refused_keys": {"AKIAX": "revoked"}},
            {"refused_keys": ["AKIAX"]},
            {"deny": ["NoSuchOperation"]},
            {"deny": "CreateTrainingJob"},
            {"deny_for": {"AKIAX": ["ec2:RunInstances"]}},
        ):
            async with http.post(faults_url, json=bad) as response:
                assert response.status == 400, bad
                assert "error" in await response.json()
    assert {k: current[k] for k in settings} == settings
    assert emulator.faults.refused_keys == {"AKIAOLD": "expired_token"}
    assert emulator.faults.deny_for == {
        "AKIALIMITED": frozenset({"logs:*", "sagemaker:ListTrainingJobs"})
    }
    old = await signed("sts", emulator, key="AKIAOLD")
    assert (await error_of(old.get_caller_identity()))[0] == "ExpiredToken"


async def test_admin_endpoint_sets_identities(emulator: Emulator, signed: SignedClient) -> None:
    url = emulator.url + "/_emulator/identities"
    arn = "arn:aws:iam::123456789012:user/ci-bot"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"AKIACI": arn}) as response:
            assert response.status == 200
        async with http.post(url, json={"AKIACI": "not-an-arn"}) as response:
            assert response.status == 400
        async with http.get(url) as response:
            assert await response.json() == {"AKIACI": arn}
    sts = await signed("sts", emulator, key="AKIACI")
    assert (await sts.get_caller_identity())["Arn"] == arn
