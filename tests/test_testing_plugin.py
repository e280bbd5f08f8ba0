"""smrun.testing, the pytest plugin for users' own suites: temporary user
projects (pytester, each run in a process of its own) that use the
``sagemaker_emulator`` fixture with boto3, aiobotocore and smrun.Runner; its
scripts, faults and request log; the example of its documentation; the plugin
loaded by its entry point from the installed wheel alone. And the emulator's
hook under it: scripts of behaviour by job name (SageMaker.behaviour)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import smrun.testing
from smrun import Outcome, Runner, Settings, requests
from smrun.emulator import Emulator, FakeClock
from smrun.emulator.resources import Script, TagReader
from smrun.testing import EmulatorHandle
from tests.conftest import ClientFactory

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
# Plugins of this environment that the temporary projects don't need and that
# take seconds to load; the wheel's run (which must look like a user's) keeps them.
QUICK = ("-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio",
         "-p", "no:cacheprovider")
# Set around every user run: the fixture must override or unset each for the test
# (a service's own endpoint, a profile that doesn't exist) and restore it after.
OUTER_ENV = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9",
    "AWS_PROFILE": "no-such-profile",
}

# What every user test file starts with: a request, a way to wait for a job and
# to read its CloudWatch lines (polls with a deadline, no fixed sleep).
PRELUDE = '''
import asyncio
import os
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
GROUP = "/aws/sagemaker/TrainingJobs"
REQUEST = {
    "AlgorithmSpecification": {"TrainingImage": "my/algo:1", "TrainingInputMode": "File"},
    "RoleArn": ROLE,
    "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
}


def request(name, **tags):
    return {
        "TrainingJobName": name,
        **REQUEST,
        "Tags": [{"Key": f"smrun:emulator:{k}", "Value": str(v)} for k, v in tags.items()],
    }


def wait_done(sagemaker, name):
    deadline = time.monotonic() + 20
    while True:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def messages(logs, name):
    try:
        streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=name + "/")
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return []
        raise
    return [
        event["message"]
        for stream in streams["logStreams"]
        for event in logs.get_log_events(
            logGroupName=GROUP, logStreamName=stream["logStreamName"], startFromHead=True
        )["events"]
    ]


def wait_lines(logs, name, count):
    """The job's lines once ``count`` are there (a stream's last line reaches
    CloudWatch 0.5 s after the job ended); never more than ``count``."""
    deadline = time.monotonic() + 20
    while len(lines := messages(logs, name)) < count:
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    assert len(lines) == count, lines
    return lines
'''

# After a user test, in the same process: the environment is as it was, and the
# emulator's thread is gone.
AFTER = '''

def test_after_the_fixture_everything_is_restored():
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] == "http://127.0.0.1:9"
    assert os.environ["AWS_PROFILE"] == "no-such-profile"
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    assert not [t for t in threading.enumerate() if t.name == "smrun-emulator"]
'''


def run_user_tests(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, body: str,
                   *extra: str) -> pytest.RunResult:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in OUTER_ENV.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_user=PRELUDE + textwrap.dedent(body) + AFTER)
    return pytester.runpytest_subprocess(*QUICK, "-s", *extra, timeout=120)


def emulator_urls(result: pytest.RunResult) -> list[str]:
    return re.findall(r"EMULATOR (http://\S+)", result.stdout.str())


def assert_refused(url: str) -> None:
    where = urlsplit(url)
    assert where.hostname is not None and where.port is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((where.hostname, where.port), timeout=2).close()


# -- user projects --------------------------------------------------------------


def test_boto3_trains_and_reads_the_logs_and_the_emulator_stops_after(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, '''
        def test_boto3(sagemaker_emulator):
            print("EMULATOR", sagemaker_emulator.url)
            assert os.environ["AWS_ENDPOINT_URL"] == sagemaker_emulator.url
            assert "AWS_ENDPOINT_URL_SAGEMAKER" not in os.environ
            assert "AWS_PROFILE" not in os.environ
            sagemaker, logs = boto3.client("sagemaker"), boto3.client("logs")
            assert sagemaker.meta.endpoint_url == sagemaker_emulator.url
            assert sagemaker.meta.region_name == "us-east-1"
            sagemaker.create_training_job(**request("train-sync", duration=0.5, **{"log-lines": 4}))
            assert sagemaker.describe_training_job(TrainingJobName="train-sync")[
                "TrainingJobStatus"] == "InProgress"
            job = wait_done(sagemaker, "train-sync")
            assert job["TrainingJobStatus"] == "Completed", job
            lines = wait_lines(logs, "train-sync", 4)
            assert [line.split(":")[0] for line in lines] == [
                f"[algo-1] line {i}/4" for i in range(1, 5)]
            assert lines[-1].endswith("training complete")
    ''')
    result.assert_outcomes(passed=2)
    [url] = emulator_urls(result)
    assert url.startswith("http://127.0.0.1:")
    assert_refused(url)


def test_aiobotocore_on_the_tests_own_loop(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, '''
        from aiobotocore.session import get_session


        def test_aiobotocore(sagemaker_emulator):
            async def main():
                session = get_session()
                async with session.create_client("sagemaker") as sagemaker, \\
                        session.create_client("logs") as logs:
                    assert sagemaker.meta.endpoint_url == sagemaker_emulator.url
                    await sagemaker.create_training_job(
                        **request("train-async", duration=0.5, **{"log-lines": 3}))
                    deadline = time.monotonic() + 20
                    while (job := await sagemaker.describe_training_job(
                            TrainingJobName="train-async"))["TrainingJobStatus"] == "InProgress":
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.05)
                    assert job["TrainingJobStatus"] == "Completed", job
                    [stream] = (await logs.describe_log_streams(
                        logGroupName=GROUP, logStreamNamePrefix="train-async/"))["logStreams"]
                    while len(events := (await logs.get_log_events(
                            logGroupName=GROUP, logStreamName=stream["logStreamName"],
                            startFromHead=True))["events"]) < 3:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.05)
                    return [event["message"] for event in events]

            lines = asyncio.run(main())
            assert [line.split(":")[0] for line in lines] == [
                f"[algo-1] line {i}/3" for i in range(1, 4)]


        @pytest.mark.asyncio
        async def test_aiobotocore_under_pytest_asyncio(sagemaker_emulator):
            async with get_session().create_client("sagemaker") as sagemaker:
                await sagemaker.create_training_job(**request("train-marked"))
                summaries = (await sagemaker.list_training_jobs())["TrainingJobSummaries"]
            assert [s["TrainingJobName"] for s in summaries] == ["train-marked"]
    ''')
    result.assert_outcomes(passed=3)


def test_the_runner_from_the_environment_and_from_aws_config(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, '''
        import re

        from smrun import LogLine, Outcome, Runner, Settings


        def run_one(aws=None):
            lines = []

            def sink(event):
                if isinstance(event, LogLine):
                    lines.append(event.message)

            async def main():
                async with Runner(aws, settings=Settings.fast(), sinks=[sink]) as runner:
                    job = await runner.submit("train", "training", REQUEST)
                    return await job.wait()

            return asyncio.run(main()), lines


        def test_runner_from_the_environment(sagemaker_emulator):
            sagemaker_emulator.script("train-*", duration=0.5, log_lines=3)
            result, lines = run_one()
            assert result.outcome is Outcome.SUCCEEDED, result
            assert result.status == "Completed"
            assert re.fullmatch(r"train-[0-9a-z]+", result.name), result.name
            assert sorted(line.split(":")[0] for line in lines) == [
                f"[algo-1] line {i}/3" for i in range(1, 4)]
            [create] = sagemaker_emulator.requests("CreateTrainingJob")
            assert create["params"]["TrainingJobName"] == result.name
            assert sagemaker_emulator.count("GetCallerIdentity") == 1  # the pre-flight, here


        def test_runner_with_aws_config_whatever_the_environment(sagemaker_emulator, monkeypatch):
            monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            monkeypatch.delenv("AWS_ACCESS_KEY_ID")
            sagemaker_emulator.script("train-*", duration=0.5, failure_reason="OutOfMemory: 64 GiB",
                                      log_lines=["epoch 1 loss=0.5", "Killed"])
            result, lines = run_one(sagemaker_emulator.aws_config())
            assert result.outcome is Outcome.FAILED, result
            assert result.failure_reason == "OutOfMemory: 64 GiB"
            assert lines == ["epoch 1 loss=0.5", "Killed"]
    ''')
    result.assert_outcomes(passed=3)


def test_scripts_set_outcome_duration_and_lines_by_name_without_tags(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, '''
        def test_script(sagemaker_emulator):
            sagemaker_emulator.script("*", duration=0.5, log_lines=2)
            scripted = ["epoch 1 loss=0.5", "epoch 2 loss=0.4", "boom"]
            sagemaker_emulator.script("TRAIN-*", outcome="Failed",
                                      failure_reason="AlgorithmError: boom", log_lines=scripted)
            sagemaker, logs = boto3.client("sagemaker"), boto3.client("logs")
            sent = [request("train-1"), request("other-1"), request("train-2", outcome="Completed")]
            for job in sent:
                sagemaker.create_training_job(**job)
            assert not any(job["Tags"] for job in sent[:2])

            failed = wait_done(sagemaker, "train-1")
            assert failed["TrainingJobStatus"] == "Failed"
            assert failed["FailureReason"] == "AlgorithmError: boom"
            ran = failed["TrainingEndTime"] - failed["CreationTime"]
            assert 0.4 < ran.total_seconds() < 0.6, ran
            assert wait_lines(logs, "train-1", 3) == scripted

            assert wait_done(sagemaker, "other-1")["TrainingJobStatus"] == "Completed"
            assert [line.split(":")[0] for line in wait_lines(logs, "other-1", 2)] == [
                "[algo-1] line 1/2", "[algo-1] line 2/2"]
            # the request's own tag wins over the script
            assert wait_done(sagemaker, "train-2")["TrainingJobStatus"] == "Completed"

            sagemaker_emulator.clear_scripts()
            sagemaker.create_training_job(**request("train-3"))
            assert sagemaker.describe_training_job(TrainingJobName="train-3")[
                "TrainingJobStatus"] == "InProgress"
            with pytest.raises(ValueError, match="outcome"):
                sagemaker_emulator.script("x", outcome="Exploded")
            with pytest.raises(TypeError, match="log_lines"):
                sagemaker_emulator.script("x", log_lines="one line")
    ''')
    result.assert_outcomes(passed=2)


def test_faults_break_the_calls_they_name_and_requests_are_recorded_as_sent(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_user_tests(pytester, monkeypatch, '''
        def test_faults(sagemaker_emulator):
            # one attempt each: botocore's "max_attempts" would count the retries only
            sagemaker = boto3.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
            sagemaker.create_training_job(**request("train-f"))
            config = sagemaker_emulator.faults(throttle=1.0, operations=["DescribeTrainingJob"])
            assert config.throttle == 1.0 and config.operations == {"DescribeTrainingJob"}
            with pytest.raises(ClientError) as raised:
                sagemaker.describe_training_job(TrainingJobName="train-f")
            assert raised.value.response["Error"]["Code"] == "ThrottlingException"
            assert sagemaker_emulator.count("DescribeTrainingJob") == 1
            assert sagemaker_emulator.faulted() == [("DescribeTrainingJob", "throttle")]
            assert sagemaker.list_training_jobs()["TrainingJobSummaries"]  # not named: served

            sagemaker_emulator.faults(errors=1.0, operations="ListTrainingJobs")
            with pytest.raises(ClientError) as raised:
                sagemaker.list_training_jobs()
            assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)

            sagemaker_emulator.faults()
            assert sagemaker.describe_training_job(TrainingJobName="train-f")["TrainingJobName"]
            with pytest.raises(ValueError, match="probability"):
                sagemaker_emulator.faults(throttle=2.0)


        def test_requests(sagemaker_emulator, monkeypatch):
            monkeypatch.delenv("AWS_ENDPOINT_URL")  # an explicit client needs none of it
            sagemaker = boto3.client("sagemaker", **sagemaker_emulator.client_kwargs())
            sent = request("train-r", duration=0.5)
            sagemaker.create_training_job(**sent)
            sagemaker.describe_training_job(TrainingJobName="train-r")
            [create] = sagemaker_emulator.requests("CreateTrainingJob")
            assert create == {"service": "sagemaker", "operation": "CreateTrainingJob",
                              "params": sent}
            assert [r["operation"] for r in sagemaker_emulator.requests()] == [
                "CreateTrainingJob", "DescribeTrainingJob"]
            assert sagemaker_emulator.count("CreateTrainingJob") == 1
            create["params"]["RoleArn"] = "changed"  # a copy: the record stays
            assert sagemaker_emulator.requests("CreateTrainingJob")[0]["params"]["RoleArn"] == ROLE
    ''')
    result.assert_outcomes(passed=3)


def test_the_documented_example_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = smrun.testing.__doc__
    assert doc is not None
    block = doc.split("and a test file::\n", 1)[1].split("\nThe Runner names", 1)[0]
    example = textwrap.dedent(block)
    assert "def test_with_the_runner" in example
    for name, value in OUTER_ENV.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_training=example)
    result = pytester.runpytest_subprocess(*QUICK, timeout=120)
    result.assert_outcomes(passed=3)


# -- the installed wheel alone ----------------------------------------------------


def test_the_wheel_alone_loads_the_plugin_by_its_entry_point(tmp_path: Path) -> None:
    """The repository is nowhere in sight: the wheel is built, installed with
    --no-deps into a new venv whose dependencies are this environment's, and
    a project with one test file and no conftest runs the fixture.

    A venv made from this venv's python is based on the interpreter under it,
    so --system-site-packages would show that one's site-packages, not this
    one's. The new venv gets this environment's packages by a .pth naming a
    folder of links to each of them, less smrun's own (the editable install's
    dist-info and link tree): the only smrun there, and the only entry point
    that can load the plugin, are the wheel's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PYTEST_", "VIRTUAL_ENV"))}
    # From a copy: an in-tree build shares ROOT/build with any other build running now.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("runner", "handlers"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--wheel-dir", str(wheels), str(source)],
                   check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    [wheel] = wheels.glob("smrun-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                   check=True, capture_output=True, text=True, env=env)
    python = venv / "bin" / "python"
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, env=env).stdout.strip())
    ours = {Path(sysconfig.get_path("purelib")), Path(sysconfig.get_path("platlib"))}
    dependencies = tmp_path / "dependencies"
    dependencies.mkdir()
    for folder in ours:
        for entry in folder.iterdir():
            if entry.suffix == ".pth" or entry.name.lower().startswith(
                    ("smrun", "__editable__.smrun", "__editable___smrun")):
                continue
            link = dependencies / entry.name
            if not link.exists():
                link.symlink_to(entry)
    (site_packages / "dependencies.pth").write_text(f"{dependencies}\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    str(wheel)], check=True, capture_output=True, text=True, env=env)

    project = tmp_path / "project"
    project.mkdir()
    (project / "test_with_the_wheel.py").write_text(textwrap.dedent('''
        import importlib.metadata
        import os
        import sys
        import time

        import boto3

        import smrun


        def test_the_fixture(sagemaker_emulator):
            dists = [d for d in importlib.metadata.distributions()
                     if d.metadata["Name"] == "smrun"]
            print(f"SMRUN={smrun.__file__}")
            print(f"PLUGIN={sys.modules['smrun.testing'].__file__}")
            print("DISTS=" + os.pathsep.join(str(d.locate_file("")) for d in dists))
            print("PATH=" + os.pathsep.join(sys.path))
            sagemaker_emulator.script("wheel-*", duration=0.3, log_lines=["from the wheel"])
            sagemaker = boto3.client("sagemaker")
            sagemaker.create_training_job(
                TrainingJobName="wheel-1",
                AlgorithmSpecification={"TrainingImage": "a:1", "TrainingInputMode": "File"},
                RoleArn="arn:aws:iam::123456789012:role/R",
                OutputDataConfig={"S3OutputPath": "s3://b/o/"},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                "VolumeSizeInGB": 1},
                StoppingCondition={"MaxRuntimeInSeconds": 60},
            )
            deadline = time.monotonic() + 20
            while sagemaker.describe_training_job(TrainingJobName="wheel-1")[
                    "TrainingJobStatus"] == "InProgress":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert sagemaker_emulator.count("CreateTrainingJob") == 1
    '''))
    run = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-s",
                          "test_with_the_wheel.py"],
                         capture_output=True, text=True, cwd=project, env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    found = dict(re.findall(r"\b(SMRUN|PLUGIN|DISTS|PATH)=(\S*)", run.stdout))
    assert Path(found["SMRUN"]) == site_packages / "smrun" / "__init__.py"
    assert Path(found["PLUGIN"]) == site_packages / "smrun" / "testing.py"
    assert [Path(d) for d in found["DISTS"].split(os.pathsep)] == [site_packages]
    path = found["PATH"].split(os.pathsep)
    assert str(project) in path  # what pytest put there (rootdir-based imports)
    assert not [p for p in path if p.startswith(str(ROOT))], path


# -- the handle, in this process -------------------------------------------------


def test_the_handle_checks_what_it_is_given_and_is_done_once_stopped() -> None:
    with EmulatorHandle.start() as handle:
        for wrong, error in (
            ({"duration": 0}, ValueError),
            ({"duration": "2"}, TypeError),
            ({"outcome": "Exploded"}, ValueError),
            ({"log_lines": -1}, ValueError),
            ({"log_lines": "one"}, TypeError),
            ({"log_lines": ["two\nlines"]}, ValueError),
            ({"log_lines": [""]}, ValueError),
            ({"stop_delay": float("inf")}, ValueError),
        ):
            with pytest.raises(error):
                handle.script("x", **wrong)
        assert handle.call(lambda emulator: emulator.sagemaker.scripts) == []
        handle.script("x", failure_reason="no space left")  # a reason alone: Failed
        [script] = handle.call(lambda emulator: list(emulator.sagemaker.scripts))
        assert script.values == {"failure-reason": "no space left", "outcome": "Failed"}
        assert handle.client_kwargs() == {
            "endpoint_url": handle.url, "region_name": "us-east-1",
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        config = handle.aws_config(read_timeout=5.0)
        assert (config.endpoint_url, config.logs_endpoint_url, config.sts_endpoint_url) == (
            handle.url, handle.url, handle.url)
        assert config.static_credentials == ("testing", "testing") and config.read_timeout == 5
    with pytest.raises(RuntimeError, match="stopped"):
        handle.count("CreateTrainingJob")
    assert_refused(handle.url)
    handle.stop()  # again: nothing


# -- the emulator's hook: scripts ------------------------------------------------


def training_request(name: str, *, instances: int = 1, **tags: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "algo:1", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": instances,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [{"Key": f"smrun:emulator:{k}", "Value": v} for k, v in tags.items()],
    }


async def stream_messages(logs: Any, job: str) -> list[list[str]]:
    group = "/aws/sagemaker/TrainingJobs"
    streams = await logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=job + "/")
    return [
        [e["message"] for e in (await logs.get_log_events(
            logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True))["events"]]
        for s in streams["logStreams"]
    ]


async def test_a_script_plans_the_training_jobs_its_glob_matches(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: ClientFactory
) -> None:
    fake_emulator.sagemaker.scripts.append(Script("Train-*", {
        "duration": "2", "outcome": "Failed", "failure-reason": "AlgorithmError: boom",
        "log-text": "epoch 1 loss=0.5\nboom",
    }))
    sagemaker = await aws_client("sagemaker", fake_emulator)
    logs = await aws_client("logs", fake_emulator)
    await sagemaker.create_training_job(**training_request("train-a", instances=2))
    await sagemaker.create_training_job(**training_request("other-a"))
    fake_clock.advance(2.0)
    failed = await sagemaker.describe_training_job(TrainingJobName="train-a")
    assert (failed["TrainingJobStatus"], failed["FailureReason"]) == (
        "Failed", "AlgorithmError: boom")
    other = await sagemaker.describe_training_job(TrainingJobName="other-a")
    assert other["TrainingJobStatus"] == "InProgress"  # the default 6 s, unscripted
    fake_clock.advance(0.5)  # the streams' last lines
    assert await stream_messages(logs, "train-a") == [["epoch 1 loss=0.5", "boom"]] * 2


async def test_a_tag_wins_over_scripts_and_a_later_script_over_an_earlier(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: ClientFactory
) -> None:
    fake_emulator.sagemaker.scripts += [
        Script("*", {"duration": "1", "log-lines": "2"}),
        Script("job-b*", {"duration": "3"}),
    ]
    sagemaker = await aws_client("sagemaker", fake_emulator)
    logs = await aws_client("logs", fake_emulator)
    for request in (training_request("job-a"), training_request("job-b"),
                    training_request("job-b2", duration="5")):
        await sagemaker.create_training_job(**request)
    ended: dict[str, int] = {}
    for _ in range(5):
        fake_clock.advance(1.0)
        for name in ("job-a", "job-b", "job-b2"):
            job = await sagemaker.describe_training_job(TrainingJobName=name)
            if job["TrainingJobStatus"] == "Completed":
                ended.setdefault(name, round(fake_clock.now - job["CreationTime"].timestamp()))
    assert ended == {"job-a": 1, "job-b": 3, "job-b2": 5}
    fake_clock.advance(0.5)
    [lines] = await stream_messages(logs, "job-b2")
    assert [line.split(":")[0] for line in lines] == ["[algo-1] line 1/2", "[algo-1] line 2/2"]


def test_the_tag_reader_reads_lines_over_its_defaults() -> None:
    tags = TagReader([{"Key": "smrun:emulator:log-text", "Value": "a\nb"}],
                     defaults={"log-text": "x", "duration": "2"})
    assert tags.lines("log-text") == ["a", "b"]
    assert tags.number("duration", 6.0) == 2.0
    assert TagReader(None, defaults={"log-text": ""}).lines("log-text") == []
    assert TagReader(None).lines("log-text") is None


# -- scripts of every kind, through the handle and the runner ----------------------

ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerRole"


async def test_scripts_reach_each_kind_and_only_their_own() -> None:
    """A script is for one kind: the processing script's failure is not the
    training job's, and each kind's script decides how its resource ends."""
    image, role = "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1", ROLE_ARN
    with EmulatorHandle.start() as handle:
        handle.script("*", duration=0.3, log_lines=1)
        handle.script("*", kind="processing", duration=0.3, failure_reason="prep: disk full")
        handle.script("*", kind="transform", duration=0.3, log_lines=2)
        handle.script("*", kind="tuning", duration=0.3, outcome="Failed")
        handle.script("*", kind="endpoint", duration=0.3,
                      failure_reason="the container did not pass the ping health check")
        async with Runner(handle.aws_config(), settings=Settings.fast()) as runner:
            jobs = [
                await runner.submit("train", "training", requests.training(
                    image=image, role=role, instance_type="ml.m5.large",
                    output_path="s3://bucket/out")),
                await runner.submit("prep", "processing", requests.processing(
                    image=image, role=role, instance_type="ml.m5.large")),
                await runner.submit("search", "tuning", requests.tuning(
                    image=image, role=role, instance_type="ml.m5.large",
                    output_path="s3://bucket/out", objective_metric="validation:rmse",
                    objective_type="Minimize", max_jobs=2, max_parallel=2,
                    integer_ranges={"max_depth": (2, 5)})),
                await runner.submit("model", "model", requests.model(
                    image=image, role=role, model_data="s3://bucket/model.tar.gz",
                    name="scripted-model")),
            ]
            await jobs[-1].wait()
            jobs += [
                await runner.submit("score", "transform", requests.transform(
                    model_name="scripted-model", input_uri="s3://bucket/in",
                    output_path="s3://bucket/scored", instance_type="ml.m5.large")),
                await runner.submit("config", "endpoint_config", requests.endpoint_config(
                    model_name="scripted-model", instance_type="ml.m5.large",
                    name="scripted-config")),
            ]
            await jobs[-1].wait()
            jobs.append(await runner.submit("serve", "endpoint", requests.endpoint(
                config_name="scripted-config", name="scripted-endpoint")))
            results = {job.key: await job.wait() for job in jobs}
        scripts = handle.call(lambda emulator: list(emulator.sagemaker.scripts))
    outcomes = {key: result.outcome for key, result in results.items()}
    assert outcomes == {
        "train": Outcome.SUCCEEDED, "prep": Outcome.FAILED, "search": Outcome.FAILED,
        "model": Outcome.SUCCEEDED, "score": Outcome.SUCCEEDED, "config": Outcome.SUCCEEDED,
        "serve": Outcome.FAILED,
    }
    assert (results["prep"].failure_reason or "").startswith("prep: disk full")
    assert "ping health check" in (results["serve"].failure_reason or "")
    assert [s.kind for s in scripts] == ["training", "processing", "transform", "tuning",
                                         "endpoint"]
    assert scripts[3].values == {"child-duration": "0.3", "outcome": "Failed"}


def test_a_script_takes_only_what_its_kind_does() -> None:
    with EmulatorHandle.start() as handle:
        for kind, wrong, error in (
            ("batch", {}, ValueError),
            ("processing", {"outcome": "MaxRuntimeExceeded"}, ValueError),
            ("endpoint", {"outcome": "Completed"}, ValueError),
            ("endpoint", {"stop_delay": 1.0}, ValueError),
            ("transform", {"stream_delay": 1.0}, ValueError),
            ("processing", {"log_lines": ["verbatim"]}, TypeError),
        ):
            with pytest.raises(error):
                handle.script("x", kind=kind, **wrong)
        assert handle.call(lambda emulator: emulator.sagemaker.scripts) == []
        handle.script("x", kind="labeling", outcome="Failed", log_lines=3)
        [script] = handle.call(lambda emulator: list(emulator.sagemaker.scripts))
        assert (script.kind, dict(script.values)) == (
            "labeling", {"outcome": "Failed", "log-lines": "3"})
