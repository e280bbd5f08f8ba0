"""First contact with AWS: a bad environment is told before anything is created.

Each case runs the real CLI in a subprocess with a controlled environment:
no ``AWS_*`` variable but those the case sets, and ``HOME`` in a temporary
directory, so that no real configuration or credentials are found. The
emulator that the cases point at runs in its own process (``emulator_url``);
it is told what to refuse through its admin endpoint. Every case must end
within seconds with exit code 2 and three lines on stderr: ``smrun: <problem>``,
``  fix: <fix>``, ``  nothing was created`` -- never a traceback or an
exception group -- and the emulator must have seen no SageMaker call.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smrun import Notice, Runner
from smrun.emulator import Emulator
from tests.conftest import SMRUN
from tests.helpers import emulator_config

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
DEADLINE = 30.0  # seconds: a misconfigured environment is told well within this


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def message(self) -> tuple[str, str]:
        """(problem, fix) from the three lines an environment problem prints."""
        lines = self.stderr.strip("\n").splitlines()
        assert len(lines) == 3, self.stderr
        first, fix, created = lines
        assert first.startswith("smrun") and ": " in first, self.stderr
        assert fix.startswith("  fix: "), self.stderr
        assert created == "  nothing was created", self.stderr
        return first.split(": ", 1)[1], fix.removeprefix("  fix: ")


def smrun(tmp_path: Path, *args: str, **env: str) -> Outcome:
    """Run the CLI with no AWS configuration but ``env``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(HOME=str(home), PYTHONUNBUFFERED="1", **env)
    clean.pop("SMRUN_DEBUG", None)
    clean.pop("SMRUN_STATE_DIR", None)
    started = time.monotonic()
    proc = subprocess.run([*SMRUN, *args], capture_output=True, text=True, env=clean,
                          cwd=ROOT, timeout=2 * DEADLINE)
    outcome = Outcome(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    for text in (outcome.stdout, outcome.stderr):
        assert "Traceback" not in text, text
        assert "ExceptionGroup" not in text, text
    return outcome


def run(tmp_path: Path, *args: str, manifest: Path = QUICKSTART, **env: str) -> Outcome:
    return smrun(tmp_path, "run", str(manifest), "--state-dir", str(tmp_path / "state"),
                 "--timing", "fast", *args, **env)


def assert_environment_problem(outcome: Outcome) -> tuple[str, str]:
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    assert outcome.elapsed < DEADLINE
    return outcome.message


def admin(url: str, path: str, body: Any = None) -> Any:
    """GET (or with ``body``, POST as JSON) an admin endpoint of the emulator."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/_emulator/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def calls(url: str) -> list[tuple[str, str]]:
    return [(r["service"], r["operation"]) for r in admin(url, "requests")]


def assert_nothing_created(url: str) -> None:
    """Nothing but the pre-flight's STS call reached the emulator."""
    assert {service for service, _ in calls(url)} <= {"sts"}, calls(url)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def keys(access_key_id: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": "not-checked"}


# --- the cases ----------------------------------------------------------------


def test_no_credentials(tmp_path: Path, emulator_url: str) -> None:
    outcome = run(tmp_path, AWS_ENDPOINT_URL=emulator_url)
    problem, fix = assert_environment_problem(outcome)
    assert problem == "no AWS credentials found"
    assert "AWS_ACCESS_KEY_ID" in fix and "AWS_PROFILE" in fix
    assert calls(emulator_url) == []  # not even the pre-flight's STS call can be signed


@pytest.mark.parametrize(("how", "words", "code"), [
    ("invalid_key", "AWS rejected the credentials", "InvalidClientTokenId"),
    ("expired_token", "the AWS credentials have expired", "ExpiredToken"),
    ("bad_signature", "AWS rejected the credentials", "SignatureDoesNotMatch"),
])
def test_rejected_credentials(
    tmp_path: Path, emulator_url: str, how: str, words: str, code: str
) -> None:
    admin(emulator_url, "faults", {"refused_keys": {"AKIDREFUSED": how}})
    outcome = run(tmp_path, AWS_ENDPOINT_URL=emulator_url, **keys("AKIDREFUSED"))
    problem, fix = assert_environment_problem(outcome)
    assert problem.startswith(words) and code in problem, problem
    if how == "expired_token":
        assert "fresh" in fix
    else:
        assert "AWS_ACCESS_KEY_ID" in fix
    assert calls(emulator_url) == [("sts", "GetCallerIdentity")]


def test_an_unreachable_endpoint(tmp_path: Path) -> None:
    port = closed_port()
    outcome = run(tmp_path, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", **keys("AKIDCLOSED"))
    problem, fix = assert_environment_problem(outcome)
    assert problem.startswith("cannot reach ") and f"127.0.0.1:{port}" in problem, problem
    assert "AWS_ENDPOINT_URL" in fix and "port" in fix


def test_access_denied_on_get_caller_identity(tmp_path: Path, emulator_url: str) -> None:
    admin(emulator_url, "faults", {"deny_for": {"AKIDDENIED": ["GetCallerIdentity"]}})
    outcome = run(tmp_path, AWS_ENDPOINT_URL=emulator_url, **keys("AKIDDENIED"))
    problem, fix = assert_environment_problem(outcome)
    assert problem.startswith("access denied to sts:GetCallerIdentity (AccessDenied: "), problem
    assert "AKIDDENIED" in problem  # IAM's words name the caller
    assert "policy" in fix
    assert_nothing_created(emulator_url)


def test_no_region(tmp_path: Path, emulator_url: str) -> None:
    manifest = tmp_path / "no-region.yaml"
    text = QUICKSTART.read_text()
    assert "  region: us-east-1\n" in text
    manifest.write_text(text.replace("  region: us-east-1\n", ""))
    outcome = run(tmp_path, manifest=manifest, AWS_ENDPOINT_URL=emulator_url, **keys("AKIDOK"))
    problem, fix = assert_environment_problem(outcome)
    assert problem == "no AWS region is set"
    assert "--region" in fix and "AWS_REGION" in fix
    assert calls(emulator_url) == []


@pytest.mark.parametrize(("region", "words"), [
    ("us-east-7", "SageMaker is not in a region called 'us-east-7'"),
    ("useast1", "'useast1' is not an AWS region name"),
])
def test_a_region_that_is_not_one(tmp_path: Path, region: str, words: str) -> None:
    # no endpoint configured: the check needs no network (there is none to real AWS here)
    outcome = run(tmp_path, "--region", region, **keys("AKIDOK"))
    problem, fix = assert_environment_problem(outcome)
    assert problem == words
    assert "us-east-" in fix and "--region" in fix


CALLER_ROLE = "arn:aws:iam::123456789012:role/SageMakerCaller"
REFRESH_LOGGED = (
    "aiobotocore logs a failed credential refresh with exc_info ('Refreshing temporary "
    "credentials failed during mandatory refresh period.') and the CLI configures no "
    "logging, so Python's last-resort handler prints that traceback on stderr"
)


def test_a_denied_assume_role(tmp_path: Path, emulator_url: str) -> None:
    admin(emulator_url, "faults", {"deny": ["sts:AssumeRole"]})
    outcome = run(tmp_path, "--assume-role", CALLER_ROLE, AWS_ENDPOINT_URL=emulator_url,
                  **keys("AKIDPOD"))
    problem, fix = assert_environment_problem(outcome)
    assert "sts:AssumeRole" in problem and "GetCallerIdentity" not in problem, problem
    assert "--assume-role" in fix
    assert_nothing_created(emulator_url)


def test_an_assume_role_that_is_not_a_role_arn(tmp_path: Path, emulator_url: str) -> None:
    outcome = run(tmp_path, "--assume-role", "not-a-role", AWS_ENDPOINT_URL=emulator_url,
                  **keys("AKIDPOD"))
    problem, fix = assert_environment_problem(outcome)
    assert "not-a-role" in problem or "--assume-role" in fix, (problem, fix)
    assert calls(emulator_url) == []


def test_validate_needs_no_credentials_and_no_network(tmp_path: Path) -> None:
    outcome = smrun(tmp_path, "validate", str(QUICKSTART),
                    AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}")
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.strip() == f"{QUICKSTART}: 3 jobs, valid"
    assert outcome.elapsed < DEADLINE


TRAIN_ARGS = [
    "--region", "us-east-1",
    "--image", "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
    "--channels", json.dumps([{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3Uri": "s3://data-bucket/train", "S3DataType": "S3Prefix"}}}]),
    "--instance_type", "ml.m5.xlarge",
    "--model_artifact_path", "s3://data-bucket/output",
    "--role", ROLE,
]


def test_a_component_command_without_credentials(tmp_path: Path, emulator_url: str) -> None:
    outcome = smrun(tmp_path, "train", *TRAIN_ARGS, "--timing", "fast",
                    AWS_ENDPOINT_URL=emulator_url)
    problem, fix = assert_environment_problem(outcome)
    assert problem == "no AWS credentials found"
    assert outcome.stderr.startswith("smrun train: no AWS credentials found\n")
    assert "AWS_ACCESS_KEY_ID" in fix
    assert calls(emulator_url) == []


def test_a_component_command_with_an_unreachable_endpoint(tmp_path: Path) -> None:
    port = closed_port()
    outcome = smrun(tmp_path, "train", *TRAIN_ARGS, "--timing", "fast",
                    AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", **keys("AKIDCLOSED"))
    problem, fix = assert_environment_problem(outcome)
    assert outcome.stderr.startswith("smrun train: cannot reach ")
    assert f"127.0.0.1:{port}" in problem and "AWS_ENDPOINT_URL" in fix


# --- in process: who and where ------------------------------------------------


async def test_the_runner_says_who_and_where_before_anything_runs(emulator: Emulator) -> None:
    caller = "arn:aws:sts::210987654321:assumed-role/PipelineRunner/smrun-ci"
    emulator.identities["testing"] = caller
    notices: list[Notice] = []

    def sink(event: object) -> None:
        if isinstance(event, Notice):
            notices.append(event)

    async with Runner(emulator_config(emulator), sinks=[sink]) as runner:
        assert runner.identity is not None
        assert runner.identity.account == "210987654321"
        assert runner.identity.arn == caller
        assert runner.identity.region == "us-east-1"
        assert runner.identity.endpoints == {
            "sts": emulator.url, "sagemaker": emulator.url, "logs": emulator.url,
        }
    [notice] = notices
    assert (notice.job, notice.level) == ("", "info")
    for fact in ("210987654321", caller, "us-east-1", f"sagemaker {emulator.url}",
                 f"logs {emulator.url}", f"sts {emulator.url}"):
        assert fact in notice.message, (fact, notice.message)
    assert [op for _, op, _ in emulator.requests] == ["GetCallerIdentity"]
    assert emulator.callers == ["testing"]


async def test_without_preflight_nothing_is_asked(emulator: Emulator) -> None:
    notices: list[Notice] = []
    async with Runner(emulator_config(emulator), preflight=False,
                      sinks=[lambda e: notices.append(e) if isinstance(e, Notice) else None]
                      ) as runner:
        assert runner.identity is None
    assert notices == [] and emulator.requests == []
