"""Containment: a fault stays with the job it belongs to, and nothing is swallowed.

In process, on the emulator: AccessDenied on one job's create, credentials
that rotate mid-run, a sink that raises, an endpoint that outlives its
timeout, the ARN of a job, the errors the hooks used to hide, a botocore
error outside SageMaker's answers, and an outage that ends.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession

from smrun import Finished, LogLine, Notice, OnCancel, Outcome, Runner, Settings, StatusChanged
from smrun.emulator import Emulator, FaultConfig
from smrun.emulator.endpoint import Endpoints
from smrun.emulator.jobs import LATE_INGESTION
from smrun.events import Event
from smrun.handlers import KINDS
from smrun.kind import JobContext
from smrun.types import Description, LogSource
from tests.helpers import emulator_config, local_runner
from tests.test_endpoint import config_request, emulated, endpoint_request
from tests.test_endpoint import model_request as endpoint_model_request
from tests.test_model import model_request
from tests.test_processing import request as processing_request
from tests.test_runner import training_request
from tests.test_tuning import tuning_request

TRAINING_LOGS = "/aws/sagemaker/TrainingJobs"
# as tests.helpers.local_runner: the drain outlasts the emulator's late last line
DRAINING = Settings.fast(drain_grace=LATE_INGESTION + 0.2)


class Recorder:
    """A sink that keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._waiting: list[tuple[Callable[[Event], bool], anyio.Event]] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        for accept, seen in self._waiting:
            if accept(event):
                seen.set()

    async def wait_for(self, accept: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        seen = anyio.Event()
        self._waiting.append((accept, seen))
        if not any(accept(e) for e in self.events):
            with anyio.fail_after(timeout):
                await seen.wait()
        return next(e for e in self.events if accept(e))

    def notices(self, level: str | None = None, job: str | None = None) -> list[Notice]:
        return [e for e in self.events if isinstance(e, Notice)
                and (level is None or e.level == level) and (job is None or e.job == job)]

    def internal_errors(self) -> list[Notice]:
        return [n for n in self.notices("error") if "traceback" in n.fields]


def status(name: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, StatusChanged) and e.job == name


def stops(emulator: Emulator) -> list[str]:
    return [op for _, op, _ in emulator.requests if op.startswith("Stop")]


def denied(*operations: str) -> FaultConfig:
    return FaultConfig(deny=frozenset(operations))


# --- 1. AccessDenied on one job's create --------------------------------------


@pytest.mark.parametrize("scope", ["every caller", "this key"])
async def test_access_denied_on_create_fails_that_job_only(emulator: Emulator, scope: str) -> None:
    if scope == "every caller":
        emulator.faults = denied("CreateTrainingJob")
    else:
        emulator.faults = FaultConfig(deny_for={"testing": frozenset({"CreateTrainingJob"})})
    recorder = Recorder()
    async with local_runner(emulator, sinks=[recorder]) as runner:
        train = await runner.submit("train", "training", training_request(duration=0.5, lines=2))
        prepare = await runner.submit(
            "prepare", "processing", processing_request(None, duration="1", log_lines="2"))
        trained, prepared = await train.wait(), await prepare.wait()

    assert trained.outcome is Outcome.FAILED
    assert trained.failure_reason == (
        "AccessDeniedException: User: arn:aws:iam::123456789012:user/testing is not authorized "
        "to perform: sagemaker:CreateTrainingJob on resource: arn:aws:sagemaker:us-east-1:"
        f"123456789012:training-job/{train.name.lower()} because no identity-based policy "
        "allows the sagemaker:CreateTrainingJob action"
    )
    assert prepared.outcome is Outcome.SUCCEEDED, prepared.failure_reason
    assert stops(emulator) == []
    assert recorder.internal_errors() == []
    assert ("CreateTrainingJob", "access_denied") in emulator.faulted


# --- 2. credentials that rotate mid-run ---------------------------------------


class KeyWatchingEmulator(Emulator):
    """Remembers which access keys have passed authentication (nothing else changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.authenticated: set[str] = set()

    def _authenticate(self, caller: str, operation: str) -> None:
        super()._authenticate(caller, operation)
        self.authenticated.add(caller)


class RotatingProvider:
    """A credential provider whose credentials are refreshed on every use (their
    expiry is always inside botocore's mandatory refresh window), each refresh
    handing out a new access key id. A key is refused by the emulator once a
    newer one exists and it has been used: only a runner that asks the session
    for credentials on every call keeps working."""

    METHOD = "rotating-test-keys"
    CANONICAL_NAME = "rotating-test-keys"

    def __init__(self, emulator: KeyWatchingEmulator) -> None:
        self.emulator = emulator
        self.issued: list[str] = []
        self._numbers = itertools.count(1)

    def _expiry(self) -> datetime:
        # botocore refreshes credentials that expire within 10 minutes before every use
        return datetime.now(timezone.utc) + timedelta(minutes=5)

    def _next_key(self) -> str:
        key = f"AKIDROTATING{next(self._numbers):04d}"
        for old in self.issued:
            if old in self.emulator.authenticated:
                self.emulator.refuse_key(old, "expired_token")
        self.issued.append(key)
        return key

    async def _refresh(self) -> dict[str, str]:
        return {"access_key": self._next_key(), "secret_key": "rotating-secret",
                "token": "rotating-token", "expiry_time": self._expiry().isoformat()}

    async def load(self) -> AioRefreshableCredentials:
        return AioRefreshableCredentials(
            access_key=self._next_key(), secret_key="rotating-secret", token="rotating-token",
            expiry_time=self._expiry(), refresh_using=self._refresh, method=self.METHOD,
        )


async def test_credentials_that_rotate_mid_run_are_picked_up_on_every_call() -> None:
    async with KeyWatchingEmulator() as emulator:
        provider = RotatingProvider(emulator)
        session = AioSession()
        session.get_component("credential_provider").insert_before("env", provider)
        config = dataclasses.replace(emulator_config(emulator), static_credentials=None)
        recorder = Recorder()
        async with Runner(config, session=session, settings=DRAINING, sinks=[recorder]) as runner:
            job = await runner.submit("train", "training", training_request(duration=1.5, lines=4))
            result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    rotating = [key for key in emulator.callers if key.startswith("AKIDROTATING")]
    assert len(set(rotating)) >= 5, rotating  # a new key for (nearly) every call
    assert "testing" not in emulator.callers
    refusals = [f for f in emulator.faulted if f[1] == "expired_token"]
    assert refusals == [], refusals  # no call was signed with a key that had been replaced
    assert emulator.faults.refused_keys  # the old keys really were refused
    lines = [e for e in recorder.events if isinstance(e, LogLine)]
    assert len(lines) == 4


# --- 3. a sink that raises ----------------------------------------------------


async def test_a_raising_sink_is_removed_once_and_every_job_still_finishes(
    emulator: Emulator,
) -> None:
    raised: list[Event] = []

    def fragile_sink(event: Event) -> None:
        if isinstance(event, StatusChanged) and not raised:
            raised.append(event)
            raise RuntimeError("the dashboard is down")

    recorder = Recorder()
    async with local_runner(emulator, sinks=[fragile_sink, recorder]) as runner:
        jobs = [await runner.submit(f"j{n}", "training", training_request(duration=0.8, lines=2))
                for n in range(3)]
        results = [await job.wait() for job in jobs]

    assert [r.outcome for r in results] == [Outcome.SUCCEEDED] * 3
    finished = [e.job for e in recorder.events if isinstance(e, Finished)]
    assert sorted(finished) == ["j0", "j1", "j2"]
    assert stops(emulator) == []
    [notice] = recorder.notices("error")
    assert "fragile_sink" in notice.message and "RuntimeError" in notice.message
    assert "the dashboard is down" in notice.message
    assert "Traceback" in notice.fields["traceback"]
    assert "fragile_sink" in notice.fields["traceback"]
    # the event that raised still reached the other sink
    assert raised[0] in recorder.events


# --- 4. an endpoint that outlives its timeout ---------------------------------


async def endpoint_stack(emulator: Emulator) -> None:
    await emulated(emulator, "CreateModel", **endpoint_model_request("m-1"))
    await emulated(emulator, "CreateEndpointConfig", **config_request("c1", {"blue": ("m-1", 1)}))


def endpoints_of(emulator: Emulator) -> Endpoints:
    endpoints = emulator.sagemaker.kinds["endpoint"]
    assert isinstance(endpoints, Endpoints)
    return endpoints


@pytest.mark.parametrize("on_cancel", [OnCancel.STOP, OnCancel.DELETE_ENDPOINTS])
async def test_an_endpoint_past_its_timeout_fails_and_is_deleted_when_asked(
    emulator: Emulator, on_cancel: OnCancel
) -> None:
    await endpoint_stack(emulator)
    settings = Settings.fast(drain_grace=0.2, drain_limit=1.0, on_cancel=on_cancel)
    async with local_runner(emulator, settings=settings) as runner:
        job = await runner.submit(
            "serve", "endpoint",
            endpoint_request("c1", duration="2.5", log_lines="0", delete_delay="0.1"),
            timeout=1,
        )
        with anyio.fail_after(9):
            result = await job.wait()

    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None
    assert result.failure_reason.startswith("timed out: still Creating 1s after creation; ")
    endpoints = endpoints_of(emulator)
    if on_cancel is OnCancel.STOP:
        assert f"aws sagemaker delete-endpoint --endpoint-name {job.name}" in result.failure_reason
        assert emulator.count("DeleteEndpoint") == 0 and endpoints.exists(job.name)
        return
    assert f"deleted endpoint {job.name}" in result.failure_reason
    with anyio.fail_after(5):
        while endpoints.exists(job.name):
            await anyio.sleep(0.05)
            emulator.advance()


# --- 5. the ARN of a job --------------------------------------------------------


async def test_the_arn_is_the_models_own_whatever_else_names_it(emulator: Emulator) -> None:
    request = model_request("xgboost")
    request["ExecutionRoleArn"] = "arn:aws:iam::123456789012:role/xgboost-execution"
    async with local_runner(emulator) as runner:
        result = await (await runner.submit("xgboost", "model", request)).wait()
    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    assert result.arn == "arn:aws:sagemaker:us-east-1:123456789012:model/xgboost"


# --- 6. the errors that used to be swallowed ----------------------------------


async def test_denied_endpoint_config_is_told_once_and_the_endpoint_still_deploys(
    emulator: Emulator,
) -> None:
    await endpoint_stack(emulator)
    emulator.faults = denied("DescribeEndpointConfig")
    recorder = Recorder()
    async with local_runner(emulator, sinks=[recorder]) as runner:
        job = await runner.submit("serve", "endpoint",
                                  endpoint_request("c1", duration="1.5", log_lines="3"))
        result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    assert emulator.count("DescribeEndpointConfig") >= 3  # asked at every poll
    [warning] = recorder.notices("warning", "serve")
    assert warning.message.startswith("cannot read endpoint config c1 (AccessDeniedException: ")
    assert "following the variants the endpoint shows" in warning.message
    # the variants the endpoint shows are followed instead
    lines = [e for e in recorder.events if isinstance(e, LogLine)]
    assert len(lines) == 3 and all(line.instance.startswith("blue:") for line in lines)


def algorithm_tuning_request() -> dict[str, Any]:
    request = tuning_request(None, max_jobs=2, parallel=2, child_duration="0.3", log_lines="1")
    request["TrainingJobDefinition"]["AlgorithmSpecification"] = {
        "AlgorithmName": "my-algorithm", "TrainingInputMode": "File",
    }
    return request


@pytest.mark.parametrize(("operation", "words", "output", "value"), [
    ("DescribeAlgorithm", "cannot describe algorithm my-algorithm (AccessDeniedException: ",
     "training_image", "my-algorithm"),
    ("DescribeTrainingJob", "cannot describe the best training job ",
     "model_artifact_url", ""),
])
async def test_tuning_tells_what_it_could_not_describe(
    emulator: Emulator, operation: str, words: str, output: str, value: str
) -> None:
    emulator.faults = denied(operation)
    recorder = Recorder()
    async with local_runner(emulator, sinks=[recorder]) as runner:
        result = await (await runner.submit("hpo", "tuning", algorithm_tuning_request())).wait()

    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    [warning] = recorder.notices("warning", "hpo")
    assert warning.message.startswith(words), warning.message
    assert "AccessDeniedException" in warning.message
    assert result.outputs.get(output, "") == value
    assert emulator.count(operation) == 1


async def test_tuning_tells_when_its_children_cannot_be_listed(emulator: Emulator) -> None:
    emulator.faults = denied("ListTrainingJobsForHyperParameterTuningJob")
    recorder = Recorder()
    request = tuning_request(None, max_jobs=2, parallel=2, child_duration="0.3", log_lines="1")
    async with local_runner(emulator, sinks=[recorder]) as runner:
        result = await (await runner.submit("hpo", "tuning", request)).wait()
    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    # told at each status poll that asks again (the endpoint's denied config is told once)
    warnings = recorder.notices("warning", "hpo")
    assert warnings, "the listing failure was swallowed"
    assert len(warnings) <= emulator.count("ListTrainingJobsForHyperParameterTuningJob")
    assert all(w.message.startswith(f"cannot list the training jobs of {result.name} "
                                    "(AccessDeniedException: ") for w in warnings)


async def test_cancelled_while_it_cannot_be_described_the_job_is_still_stopped(
    emulator: Emulator,
) -> None:
    recorder = Recorder()
    with anyio.fail_after(20):
        async with local_runner(emulator, sinks=[recorder]) as runner:
            job = await runner.submit("train", "training", training_request(duration=60, lines=2))
            await recorder.wait_for(status("train"))
            emulator.faults = denied("DescribeTrainingJob")
            runner.cancel()

    result = job.result
    assert result is not None
    assert result.outcome is Outcome.UNKNOWN
    assert result.failure_reason is not None
    assert result.failure_reason.startswith(
        f"cancelled; could not describe {job.name}: AccessDeniedException: ")
    assert result.failure_reason.endswith("; StopTrainingJob was sent")
    assert emulator.count("StopTrainingJob") == 1
    described = await emulated(emulator, "DescribeTrainingJob", TrainingJobName=job.name)
    assert described["TrainingJobStatus"] in ("Stopping", "Stopped")


async def test_a_drain_whose_log_sources_cannot_be_listed_warns_and_drains_what_it_knows(
    emulator: Emulator,
) -> None:
    async def sources(ctx: JobContext, description: Description) -> list[LogSource]:
        # as a kind's hook would: ask SageMaker which streams belong to the job
        await ctx.call("sagemaker", "ListTrainingJobs", MaxResults=1)
        return [LogSource(TRAINING_LOGS, f"{ctx.name}/")]

    kind = dataclasses.replace(KINDS["training"], log_sources=sources)
    recorder = Recorder()
    request = training_request(duration=60, lines=2)
    request["Tags"].append({"Key": "smrun:emulator:stop-delay", "Value": "0.2"})
    with anyio.fail_after(20):
        async with local_runner(emulator, sinks=[recorder]) as runner:
            job = await runner.submit("train", kind, request)
            await recorder.wait_for(status("train"))
            emulator.faults = denied("ListTrainingJobs")
            runner.cancel()

    result = job.result
    assert result is not None and result.outcome is Outcome.STOPPED_BY_US, result
    warnings = [n.message for n in recorder.notices("warning", "train")]
    assert warnings == [
        next(w for w in warnings if w.startswith("cannot tell which log streams to drain"))
    ], warnings
    assert "AccessDeniedException" in warnings[0]
    assert warnings[0].endswith("; draining the 1 source(s) known so far")
    assert recorder.internal_errors() == []


@pytest.mark.parametrize("operation", ["logs:DescribeLogStreams", "logs:GetLogEvents"])
async def test_logs_that_cannot_be_read_do_not_turn_into_an_internal_error(
    emulator: Emulator, operation: str
) -> None:
    emulator.faults = denied(operation)
    recorder = Recorder()
    async with local_runner(emulator, sinks=[recorder]) as runner:
        result = await (await runner.submit(
            "train", "training", training_request(duration=1.0, lines=2))).wait()

    assert recorder.internal_errors() == []
    text = result.failure_reason or " ".join(n.message for n in recorder.notices("warning"))
    assert "AccessDeniedException" in text and operation.split(":")[1] in text, text
    if result.outcome is not Outcome.SUCCEEDED:
        assert result.outcome is Outcome.FAILED
        assert "TaskGroup" not in (result.failure_reason or "")


# --- 7. errors outside SageMaker's answers ------------------------------------


@pytest.mark.parametrize(("change", "words"), [
    (lambda r: r.pop("RoleArn"), 'Missing required parameter in input: "RoleArn"'),
    (lambda r: r["ResourceConfig"].update(InstanceCount="two"),
     "Invalid type for parameter ResourceConfig.InstanceCount"),
])
async def test_a_request_botocore_refuses_fails_its_job_with_botocores_words(
    emulator: Emulator, change: Callable[[dict[str, Any]], object], words: str
) -> None:
    request = training_request(duration=0.5, lines=1)
    change(request)
    recorder = Recorder()
    async with local_runner(emulator, sinks=[recorder]) as runner:
        result = await (await runner.submit("bad", "training", request)).wait()
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None and words in result.failure_reason
    assert "Parameter validation failed" in result.failure_reason
    assert emulator.count("CreateTrainingJob") == 0  # refused before it was sent
    assert recorder.internal_errors() == []  # botocore's refusal is not a bug of ours


async def test_a_bug_in_a_hook_fails_the_job_with_a_traceback(emulator: Emulator) -> None:
    async def enrich(ctx: JobContext, description: Description) -> Description:
        return {**description, "Metric": description["NoSuchMember"]}

    kind = dataclasses.replace(KINDS["training"], enrich=enrich)
    recorder = Recorder()
    async with local_runner(emulator, sinks=[recorder]) as runner:
        other = await runner.submit("other", "training", training_request(duration=1.0, lines=1))
        result = await (await runner.submit("buggy", kind, training_request(
            duration=0.3, lines=1))).wait()
        assert (await other.wait()).outcome is Outcome.SUCCEEDED
    assert result.outcome is Outcome.FAILED
    assert result.failure_reason == "'NoSuchMember'"
    [notice] = recorder.internal_errors()
    assert notice.job == "buggy" and "internal error" in notice.message
    assert "KeyError" in notice.fields["traceback"] and "enrich" in notice.fields["traceback"]


# --- 8. an outage that ends ---------------------------------------------------


@pytest.mark.parametrize(("fault", "error"), [
    (FaultConfig(server_error=1.0, operations=frozenset({"DescribeTrainingJob"})), "Service"),
    (FaultConfig(drop=1.0, operations=frozenset({"DescribeTrainingJob"})), "Connection"),
])
async def test_an_outage_is_told_with_the_endpoint_and_its_end_too(
    emulator: Emulator, fault: FaultConfig, error: str
) -> None:
    config = dataclasses.replace(emulator_config(emulator), fault_warn_after=0.3,
                                 retry_base=0.05, retry_cap=0.2)
    recorder = Recorder()
    async with Runner(config, settings=DRAINING, sinks=[recorder]) as runner:
        job = await runner.submit("train", "training", training_request(duration=2.0, lines=2))
        await recorder.wait_for(status("train"))
        emulator.faults = fault
        warning = await recorder.wait_for(
            lambda e: isinstance(e, Notice) and e.level == "warning" and e.job == "")
        emulator.faults = FaultConfig()
        recovered = await recorder.wait_for(
            lambda e: isinstance(e, Notice) and e.level == "info" and "again" in e.message)
        result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED, result.failure_reason
    assert isinstance(warning, Notice) and isinstance(recovered, Notice)
    assert warning.message.startswith(f"sagemaker at {emulator.url} has failed for ")
    assert warning.message.endswith("; still retrying")
    if error == "Service":
        assert ("InternalFailure" in warning.message
                or "ServiceUnavailable" in warning.message), warning.message
    else:
        assert "onnection" in warning.message or "disconnected" in warning.message.lower(), (
            warning.message)
    assert recovered.message.startswith("sagemaker answers again, after ")
    outage = [n for n in recorder.notices(job="") if n.level == "warning"]
    assert 1 <= len(outage) <= 2  # not one per failed call
    assert any(f[0] == "DescribeTrainingJob" for f in emulator.faulted)
