"""The emulator in your own test suite: a pytest plugin.

Installing smrun registers this module with pytest (an entry point in the
``pytest11`` group), so a project needs no ``conftest.py`` and no ``-p`` flag:
a test that asks for the ``sagemaker_emulator`` fixture gets the emulator
(SageMaker, CloudWatch Logs, SQS, EventBridge and STS, see
:mod:`smrun.emulator`) on a free loopback port for the length of the test, and
an environment that points every AWS client at it:

- ``AWS_ENDPOINT_URL`` is the emulator's URL (botocore 1.31 and later, so
  boto3 and aiobotocore, honour it for every service); every
  ``AWS_ENDPOINT_URL_<SERVICE>`` and ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``
  are unset, since they would win over it;
- ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` are dummies
  (``testing``); ``AWS_SESSION_TOKEN``, ``AWS_SECURITY_TOKEN``, ``AWS_PROFILE``
  and ``AWS_DEFAULT_PROFILE`` are unset;
- ``AWS_DEFAULT_REGION`` (and ``AWS_REGION``) are ``us-east-1``;
- ``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE`` name an empty file,
  so nothing in ``~/.aws`` (a profile's retries, a credential process) reaches
  the test;
- ``NO_PROXY`` and ``no_proxy`` include ``127.0.0.1``, so an ``HTTP_PROXY``
  of the machine is not asked for the emulator.

All of it is undone after the test (pytest's ``monkeypatch``), and the emulator
is stopped. It runs in a thread of its own, on its own event loop, so it answers
synchronous code (boto3) as well as asynchronous code on the test's own loop
(aiobotocore, :class:`smrun.Runner`, under ``asyncio.run`` or pytest-asyncio).
The emulator's clock is the real one: a job of the default plan takes 6 s, so
tests usually make theirs shorter with :meth:`EmulatorHandle.script`.

The fixture's value is an :class:`EmulatorHandle`:

``handle.script(pattern, kind=..., duration=..., outcome=..., failure_reason=..., log_lines=...)``
    how the resources of a kind (training jobs unless said) whose names match
    the glob ``pattern`` behave, without ``smrun:emulator:*`` tags on their
    requests (a tag on the request still wins); ``log_lines`` is a number of
    numbered lines per instance, or for training jobs the very lines to write.
``handle.faults(throttle=..., errors=..., latency=..., drop=..., operations=...)``
    faults injected from now on (each call replaces the last; ``faults()``
    ends them), as :class:`smrun.emulator.FaultConfig` says.
``handle.requests(operation=None)`` and ``handle.count(operation)``
    the requests that arrived (``{"service", "operation", "params"}``, the
    params as sent on the wire), and how many for an operation.
``handle.url``, ``handle.client_kwargs()`` and ``handle.aws_config()``
    for clients that do not read the environment: ``boto3.client("sagemaker",
    **handle.client_kwargs())``, ``smrun.Runner(handle.aws_config())``.

Which to use for :class:`smrun.Runner`: ``Runner(settings=Settings.fast())``
reads the environment like any AWS client and so reaches the emulator;
``Runner(handle.aws_config(), settings=Settings.fast())`` names every endpoint
and the credentials itself, and so works whatever the environment says (from a
fixture of broader scope than the test, say). Either way give it
:meth:`smrun.Settings.fast`: the default timings, made for SageMaker, poll
every few seconds.

An example project needs nothing but smrun, pytest and boto3, and a test file::

    # tests/test_training.py
    import asyncio
    import time

    import boto3
    import pytest
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from smrun import Outcome, Runner, Settings

    REQUEST = {
        "AlgorithmSpecification": {"TrainingImage": "my/algo:1", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


    def test_my_code_sees_the_failure(sagemaker_emulator):
        sagemaker_emulator.script("train-*", duration=1, outcome="Failed",
                                  failure_reason="AlgorithmError: out of memory",
                                  log_lines=["epoch 1 loss=0.5", "Killed"])
        sagemaker = boto3.client("sagemaker")
        sagemaker.create_training_job(TrainingJobName="train-1", **REQUEST)
        deadline = time.monotonic() + 30
        while True:
            job = sagemaker.describe_training_job(TrainingJobName="train-1")
            if job["TrainingJobStatus"] != "InProgress":
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert job["FailureReason"] == "AlgorithmError: out of memory"
        [create] = sagemaker_emulator.requests("CreateTrainingJob")
        assert create["params"]["RoleArn"] == REQUEST["RoleArn"]


    def test_a_throttled_call(sagemaker_emulator):
        sagemaker_emulator.faults(throttle=1.0, operations=["ListTrainingJobs"])
        # one attempt: botocore's "max_attempts" counts the retries only
        sagemaker = boto3.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
        with pytest.raises(ClientError, match="ThrottlingException"):
            sagemaker.list_training_jobs()
        assert sagemaker_emulator.count("ListTrainingJobs") == 1


    def test_with_the_runner(sagemaker_emulator):
        sagemaker_emulator.script("*", duration=1, log_lines=3)

        async def main():
            async with Runner(settings=Settings.fast()) as runner:
                job = await runner.submit("train", "training", REQUEST)
                return await job.wait()

        assert asyncio.run(main()).outcome is Outcome.SUCCEEDED

The Runner names a job's SageMaker resource ``{key}-{hash}``: ``train-*`` matches
the job submitted as ``train``. An emulator for more than one test (a fixture of
module or session scope), or outside pytest: ``with EmulatorHandle.start() as
handle:`` gives the same handle without touching the environment
(:meth:`EmulatorHandle.environ` says what the fixture sets). A pytest run that
should not load the plugin at all: ``-p no:smrun``.
"""

from __future__ import annotations

import asyncio
import copy
import math
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TypeVar

import pytest

from smrun.aws import AwsConfig
from smrun.emulator import (
    Emulator,
    FaultConfig,
    endpoint,
    labeling,
    processing,
    training,
    transform,
    tuning,
)
from smrun.emulator.resources import Script

__all__ = ["EmulatorHandle", "sagemaker_emulator"]

T = TypeVar("T")

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
HOST = "127.0.0.1"
# how long a call into the emulator's thread may take (starting, stopping, a look)
CALL_TIMEOUT = 30.0
# unset for the test: each would take precedence over what the fixture sets
UNSET = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@dataclass(frozen=True)
class _Scriptable:
    """What :meth:`EmulatorHandle.script` takes for one kind."""

    outcomes: tuple[str, ...]
    options: frozenset[str]


_JOB_OPTIONS = frozenset({"duration", "outcome", "failure_reason", "log_lines", "stop_delay"})
_SCRIPTED = {
    "training": _Scriptable(training.OUTCOMES, _JOB_OPTIONS | {"stream_delay"}),
    "processing": _Scriptable(processing.OUTCOMES, _JOB_OPTIONS),
    "transform": _Scriptable(transform.OUTCOMES, _JOB_OPTIONS),
    "labeling": _Scriptable(labeling.OUTCOMES, _JOB_OPTIONS),
    "tuning": _Scriptable(tuning.CHILD_OUTCOMES, _JOB_OPTIONS | {"stream_delay"}),
    "endpoint": _Scriptable(endpoint.CREATE_OUTCOMES, _JOB_OPTIONS - {"stop_delay"}),
}


class _LoopThread:
    """An event loop of its own, run by a daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="smrun-emulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def inside(self) -> bool:
        """Whether the caller is the loop's own thread (where waiting for it would hang)."""
        return threading.current_thread() is self._thread

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop; its result (or exception), from any other thread."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(CALL_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """End whatever still runs on the loop, stop it and wait for the thread."""
        if self._thread.is_alive():
            try:
                self.run(self._drain())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(CALL_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()

    async def _drain(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()


class EmulatorHandle:
    """An emulator running in a thread of its own: where it is, and what a test
    scripts, breaks and reads there.

    The ``sagemaker_emulator`` fixture makes one per test. ``EmulatorHandle.start()``
    makes one anywhere else (``with EmulatorHandle.start() as handle: ...``,
    or :meth:`stop` it); its keyword arguments go to :class:`~smrun.emulator.Emulator`
    (``quotas=``, ``faults=``...). Every method may be called from any thread
    and from async code; each is a short call into the emulator's loop.
    """

    def __init__(self, loop: _LoopThread, emulator: Emulator) -> None:
        self._loop = loop
        self._emulator: Emulator | None = emulator
        self.url = emulator.url
        self.region = emulator.region
        self.account = emulator.account
        self.access_key_id = ACCESS_KEY_ID
        self.secret_access_key = SECRET_ACCESS_KEY

    @classmethod
    def start(cls, **emulator_options: Any) -> EmulatorHandle:
        """Start an emulator on a free loopback port, in a new thread with its own loop."""
        emulator_options.setdefault("region", REGION)
        loop = _LoopThread()

        async def started() -> Emulator:
            # made on its loop, so that whatever it creates belongs to that loop
            emulator = Emulator(**emulator_options)
            await emulator.start(HOST, 0)
            return emulator

        try:
            return cls(loop, loop.run(started()))
        except BaseException:
            loop.close()
            raise

    def stop(self) -> None:
        """Stop the emulator and its thread (again: nothing)."""
        emulator, self._emulator = self._emulator, None
        if emulator is None:
            return
        try:
            self._loop.run(emulator.stop())
        finally:
            self._loop.close()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is -------------------------------------------------------

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments of ``boto3.client(service, ...)`` (or aiobotocore's
        ``session.create_client``) for a client of the emulator."""
        return {
            "endpoint_url": self.url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }

    def aws_config(self, **overrides: Any) -> AwsConfig:
        """A :class:`smrun.AwsConfig` that names the emulator for every service
        smrun calls, and the dummy credentials: ``smrun.Runner(handle.aws_config())``
        reaches it whatever the environment says. ``overrides`` are AwsConfig fields."""
        config = AwsConfig(
            region=self.region,
            endpoint_url=self.url,
            logs_endpoint_url=self.url,
            sts_endpoint_url=self.url,
            sqs_endpoint_url=self.url,
            events_endpoint_url=self.url,
            static_credentials=(self.access_key_id, self.secret_access_key),
        )
        return replace(config, **overrides)

    def environ(self) -> dict[str, str | None]:
        """What the fixture does to the environment: each variable's value, or
        None for one it unsets."""
        return _environment(self.url, self.region)

    # -- what it does ------------------------------------------------------

    def script(
        self,
        pattern: str = "*",
        *,
        kind: str = "training",
        duration: float | None = None,
        outcome: str | None = None,
        failure_reason: str | None = None,
        log_lines: int | Sequence[str] | None = None,
        stream_delay: float | None = None,
        stop_delay: float | None = None,
    ) -> None:
        """How the ``kind`` resources whose names match ``pattern`` (a glob,
        case-insensitive: ``"train-*"``) behave from now on, as the
        ``smrun:emulator:*`` tags of the emulator's module for the kind
        (:mod:`smrun.emulator.training`, ...) would make them, without tags on
        their requests. Only what is given is scripted; a later script over an
        earlier one, a tag on the request over both.

        ``kind``: ``"training"`` (the default), ``"processing"``,
        ``"transform"``, ``"labeling"``, ``"tuning"`` or ``"endpoint"``. A tuning
        job's children are training jobs: a training script that matches their
        names applies to them too. ``duration``: seconds from creation to the
        end (default 6; for a tuning job, each child's). ``outcome``: the
        terminal status, ``"Completed"`` or ``"Failed"`` (a training job can
        also end ``"MaxRuntimeExceeded"``; an endpoint is ``"InService"`` or
        ``"Failed"``; a tuning job's outcome is its children's); a
        ``failure_reason`` alone means ``"Failed"``. ``log_lines``: how many
        numbered lines each instance writes (``[algo-1] line 2/5: ...``), or for
        a training job the lines themselves (each instance writes each,
        verbatim; none may be empty or hold a newline). ``stream_delay``
        (training, tuning): seconds before the last instance's stream appears.
        ``stop_delay`` (all but endpoints): seconds from the Stop call to Stopped.
        Raises ValueError or TypeError for a value the emulator would refuse.
        """
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("pattern is a glob of job names, such as 'train-*'")
        scripted = _SCRIPTED.get(kind)
        if scripted is None:
            raise ValueError(f"kind is one of {', '.join(_SCRIPTED)}, not {kind!r}")
        given = {"duration": duration, "outcome": outcome, "failure_reason": failure_reason,
                 "log_lines": log_lines, "stream_delay": stream_delay, "stop_delay": stop_delay}
        for option, value in given.items():
            if value is not None and option not in scripted.options:
                raise ValueError(f"a {kind} script takes no {option}")
        values: dict[str, str] = {}
        if duration is not None:
            duration_tag = "child-duration" if kind == "tuning" else "duration"
            values[duration_tag] = _number("duration", duration, minimum=0.001)
        if failure_reason is not None:
            if not isinstance(failure_reason, str):
                raise TypeError("failure_reason is a string")
            values["failure-reason"] = failure_reason
            outcome = "Failed" if outcome is None else outcome
        if outcome is not None:
            if outcome not in scripted.outcomes:
                raise ValueError(f"the outcome of a {kind} script is one of "
                                 f"{', '.join(scripted.outcomes)}, not {outcome!r}")
            values["outcome"] = outcome
        if log_lines is not None:
            if kind != "training" and not isinstance(log_lines, int):
                raise TypeError(f"log_lines of a {kind} script is a number of lines")
            values.update(_log_lines(log_lines))
        if stream_delay is not None:
            values["stream-delay"] = _number("stream_delay", stream_delay, minimum=0.0)
        if stop_delay is not None:
            values["stop-delay"] = _number("stop_delay", stop_delay, minimum=0.0)
        script = Script(pattern, values, kind=kind)
        self.call(lambda emulator: emulator.sagemaker.scripts.append(script))

    def clear_scripts(self) -> None:
        """Forget every script: jobs created from now on follow their tags alone."""
        self.call(lambda emulator: emulator.sagemaker.scripts.clear())

    def faults(
        self,
        *,
        throttle: float = 0.0,
        errors: float = 0.0,
        latency: float = 0.0,
        drop: float = 0.0,
        operations: Iterable[str] | None = None,
        seed: int | None = None,
        **more: Any,
    ) -> FaultConfig:
        """Inject faults into the requests from now on, in place of any before;
        ``faults()`` ends them. Each fault of an affected request is drawn at
        random: ``throttle`` is the probability of a ThrottlingException (HTTP
        400), ``errors`` of an InternalFailure (500) or ServiceUnavailable (503),
        ``drop`` of a connection closed without an answer; ``latency`` is seconds
        added to each. ``operations`` (names such as ``"CreateTrainingJob"``)
        limits them to those; ``seed`` makes the draws repeatable. ``more``:
        the other fields of :class:`~smrun.emulator.FaultConfig` (``deny``,
        ``refused_keys``, ``empty_page_every``...). The config in force is returned.
        """
        if isinstance(operations, str):
            operations = [operations]
        config = FaultConfig(
            throttle=throttle,
            server_error=errors,
            latency=latency,
            drop=drop,
            operations=None if operations is None else frozenset(operations),
            seed=seed,
            **more,
        )
        config = FaultConfig.from_json(config.to_json())  # its checks of each value

        def apply(emulator: Emulator) -> None:
            emulator.faults = config

        self.call(apply)
        return config

    # -- what happened -----------------------------------------------------

    def requests(self, operation: str | None = None) -> list[dict[str, Any]]:
        """The requests that arrived, oldest first (those of ``operation`` only,
        if given): ``{"service": "sagemaker", "operation": "CreateTrainingJob",
        "params": {...}}``, the params as the client sent them (JSON, so times
        are epoch seconds). Faulted requests are there too."""

        def read(emulator: Emulator) -> list[dict[str, Any]]:
            return [
                {"service": service, "operation": name, "params": copy.deepcopy(params)}
                for service, name, params in emulator.requests
                if operation is None or name == operation
            ]

        return self.call(read)

    def count(self, operation: str) -> int:
        """How many requests for ``operation`` arrived, faulted ones included."""
        return self.call(lambda emulator: emulator.count(operation))

    def faulted(self) -> list[tuple[str, str]]:
        """``(operation, fault)`` for each fault injected so far (``"throttle"``, ...)."""
        return self.call(lambda emulator: list(emulator.faulted))

    def call(self, function: Callable[[Emulator], T]) -> T:
        """``function(emulator)`` on the emulator's own thread, and its result:
        the way to look at or change anything of :class:`~smrun.emulator.Emulator`
        that the handle has no method for (its state belongs to that thread)."""
        emulator = self._emulator
        if emulator is None:
            raise RuntimeError("the emulator is stopped")
        if self._loop.inside:
            return function(emulator)

        async def on_its_loop() -> T:
            return function(emulator)

        return self._loop.run(on_its_loop())


def _environment(url: str | None, region: str) -> dict[str, str | None]:
    """The variables that point AWS clients at ``url`` (None: unset), as of now."""
    no_proxy = {
        name: ",".join(
            dict.fromkeys([*filter(None, os.environ.get(name, "").split(",")), HOST, "localhost"])
        )
        for name in ("NO_PROXY", "no_proxy")
    }
    endpoints: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")
    }
    return {
        **endpoints,
        **dict.fromkeys(UNSET),
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **no_proxy,
    }


def _patch(monkeypatch: pytest.MonkeyPatch, environment: Mapping[str, str | None]) -> None:
    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def _number(name: str, value: float, *, minimum: float) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} is a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} is a number of seconds >= {minimum}, not {value!r}")
    return repr(float(value))


def _log_lines(log_lines: int | Sequence[str]) -> dict[str, str]:
    if isinstance(log_lines, bool) or isinstance(log_lines, str):
        raise TypeError("log_lines is a number of lines or a list of lines")
    if isinstance(log_lines, int):
        if log_lines < 0:
            raise ValueError("log_lines must not be negative")
        return {"log-lines": str(log_lines)}
    lines = list(log_lines)
    for line in lines:
        if not isinstance(line, str):
            raise TypeError(f"a log line is a string, not {line!r}")
        if not line or "\n" in line:
            raise ValueError(f"a log line is not empty and holds no newline: {line!r}")
    return {"log-text": "\n".join(lines)}


@pytest.fixture
def sagemaker_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    """The emulator on a free loopback port for this test, in a thread of its
    own, and the environment pointing AWS clients at it (see :mod:`smrun.testing`):
    an :class:`EmulatorHandle`. Stopped, and the environment restored, after."""
    # Before the start too: the emulator reads botocore's models through a
    # session, which refuses an AWS_PROFILE that doesn't exist.
    _patch(monkeypatch, _environment(None, REGION))
    with EmulatorHandle.start() as handle:
        _patch(monkeypatch, handle.environ())
        yield handle
