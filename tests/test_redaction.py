"""Secrets never reach the console, the JSON logs or the journal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from smrun import LogLine, Runner
from smrun.cli import main
from smrun.console import Console, redact, redact_text
from smrun.emulator import Emulator
from smrun.journal import Journal
from tests.test_runner import local_runner, training_request

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJHMEUCIQDexampletokenvalue"


def test_redact_hides_keys_tokens_and_secret_named_fields() -> None:
    text = f"id={ACCESS_KEY} secret={SECRET_KEY} token={SESSION_TOKEN}"
    cleaned = redact_text(text)
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
        assert secret not in cleaned
    env = redact({"Environment": {"DB_PASSWORD": "hunter2", "MODE": "fast"}})
    assert env == {"Environment": {"DB_PASSWORD": "***", "MODE": "fast"}}


def test_redact_keeps_ordinary_text_and_hex_digests() -> None:
    digest = "0123456789abcdef0123456789abcdef01234567"  # 40 hex chars, like a git sha
    assert redact_text(f"commit {digest} epoch=3 loss=0.25") == f"commit {digest} epoch=3 loss=0.25"


def test_json_console_redacts_log_lines() -> None:
    out = io.StringIO()
    console = Console(out, fmt="json")
    console(LogLine("job", stream="s", instance="algo-1", timestamp=0,
                    message=f"export AWS_SECRET_ACCESS_KEY={SECRET_KEY}"))
    console.flush()
    assert SECRET_KEY not in out.getvalue()
    assert json.loads(out.getvalue())["event"] == "log"


def test_invalid_manifest_message_hides_secret_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "jobs:\n  - name: t\n    kind: training\n    request:\n"
        "      RoleArn: arn:aws:iam::123456789012:role/R\n"
        "      OutputDataConfig: {S3OutputPath: 's3://b/o'}\n"
        "      Environment: {DB_PASSWORD: 987654321}\n"
    )
    assert main(["validate", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "DB_PASSWORD" in err and "987654321" not in err


async def test_failure_reasons_with_secrets_are_redacted_everywhere(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = io.StringIO()
    journal = Journal(tmp_path / "journal.sqlite")
    runner: Runner = local_runner(emulator, sinks=[Console(out, fmt="json")], journal=journal)
    async with runner:
        job = await runner.submit(
            "leaky", "training",
            training_request(outcome="Failed", reason=f"AlgorithmError: bad key {ACCESS_KEY}"),
        )
        result = await job.wait()
    journal.close()
    assert ACCESS_KEY in (result.failure_reason or "")  # the library result is the raw truth
    assert ACCESS_KEY not in out.getvalue()
    assert "AlgorithmError" in out.getvalue()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert ACCESS_KEY.encode() not in raw
