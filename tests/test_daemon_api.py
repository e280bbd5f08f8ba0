"""The daemon's HTTP API against a real daemon in this process on the emulator:
its OpenAPI document (schemathesis), auth, submissions, runs and jobs, stops,
metrics, tuning trials, server-sent events, and the ``smrun submit | status |
logs | stop`` commands as subprocesses."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from smrun.daemon.client import SseParser
from smrun.daemon.server import DaemonConfig, DaemonError, check_token, run_daemon
from smrun.emulator import Emulator
from smrun.handlers import KINDS
from smrun.manifest import ManifestError, load_manifest
from smrun.store.sqlite import SqliteStore
from tests.conftest import ClientFactory
from tests.daemon_helpers import TOKEN, DaemonHandle, daemon_on

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1"
METRIC = "validation:loss"
RUN_TYPES = {"submitted", "status", "notice", "finished", "run"}
FINISHED = ("succeeded", "failed", "stopped")


# --- manifests ---------------------------------------------------------------


def emulator_tags(**tags: object) -> list[dict[str, str]]:
    return [{"Key": f"smrun:emulator:{name.replace('_', '-')}", "Value": str(value)}
            for name, value in tags.items()]


def training(duration: float = 1.0, *, lines: int = 2, **tags: object) -> dict[str, Any]:
    """A training request the emulator runs for ``duration`` seconds."""
    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": emulator_tags(duration=duration, log_lines=lines, stop_delay=0.2, **tags),
    }


def tuning(max_jobs: int = 2) -> dict[str, Any]:
    """A tuning request whose children the emulator runs in under a second each."""
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": METRIC},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs,
                               "MaxParallelTrainingJobs": max_jobs},
            "ParameterRanges": {"ContinuousParameterRanges": [
                {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1"}]},
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE, "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": METRIC, "Regex": "loss=(\\S+)"}],
            },
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/hpo/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        "Tags": emulator_tags(child_duration="0.6,0.8", log_lines=1),
    }


def job(name: str, request: dict[str, Any], *, kind: str = "training",
        after: Sequence[str] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "kind": kind, "request": request}
    if after:
        spec["after"] = list(after)
    return spec


def manifest(*jobs: dict[str, Any]) -> str:
    return yaml.safe_dump({"defaults": {"role": ROLE, "region": "us-east-1"}, "jobs": list(jobs)},
                          sort_keys=False)


# a manifest with three problems, each of them found by `smrun validate`
INVALID = manifest(
    job("good", training()),
    job("typo", {"AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
                 "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
                 "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": "two",
                                    "VolumeSizeInGB": 10},
                 "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}),
    job("odd", {}, kind="trainin", after=["missing"]),
)


# --- a daemon and its API ----------------------------------------------------


@dataclass
class Stream:
    events: list[tuple[int, str, dict[str, Any]]]
    ended: bool  # the stream's last event was `end`
    content_type: str

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [record for _, kind, record in self.events if kind in types]


@dataclass
class Api:
    """The daemon's HTTP API, with its token."""

    daemon: DaemonHandle
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.daemon.url

    async def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                      **options: Any) -> tuple[int, Any]:
        sent = self.daemon.headers() if headers is None else headers
        async with self.session.request(method, self.url + path, headers=sent,
                                        **options) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, json.loads(text)
            return response.status, text

    async def get(self, path: str, **options: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> tuple[int, Any]:
        return await self.request("POST", path, **options)

    async def submit(self, text: str, **fields: Any) -> tuple[int, Any]:
        return await self.post("/v1/runs", json={"manifest": text, **fields})

    async def started(self, text: str, **fields: Any) -> str:
        status, run = await self.submit(text, **fields)
        assert status == 201, run
        return str(run["run_id"])

    async def run(self, run_id: str) -> dict[str, Any]:
        status, run = await self.get(f"/v1/runs/{run_id}")
        assert status == 200, run
        return dict(run)

    async def until(self, run_id: str, ready: Callable[[dict[str, Any]], bool], *,
                    timeout: float = 30) -> dict[str, Any]:
        """The run once ``ready(run)`` (polling its view until the deadline)."""
        with anyio.fail_after(timeout):
            while True:
                run = await self.run(run_id)
                if ready(run):
                    return run
                await anyio.sleep(0.05)

    async def finished(self, run_id: str, *, timeout: float = 30) -> dict[str, Any]:
        return await self.until(run_id, lambda run: run["status"] in FINISHED, timeout=timeout)

    async def stream(self, path: str, *, headers: dict[str, str] | None = None,
                     timeout: float = 30) -> Stream:
        """Every event of a stream until it closes."""
        events: list[tuple[int, str, dict[str, Any]]] = []
        parser = SseParser()
        sent = {**self.daemon.headers(), **(headers or {})}
        with anyio.fail_after(timeout):
            async with self.session.get(self.url + path, headers=sent) as response:
                assert response.status == 200, await response.text()
                async for chunk in response.content.iter_any():
                    for event_id, kind, data in parser.feed(chunk):
                        if kind == "end":
                            assert data == "{}"
                            return Stream(events, True, response.content_type)
                        assert event_id is not None, (kind, data)
                        events.append((int(event_id), kind, json.loads(data)))
        return Stream(events, False, response.content_type)


@asynccontextmanager
async def serving(emulator: Emulator, state: Path, *, token: str | None = TOKEN,
                  ) -> AsyncIterator[Api]:
    async with daemon_on(emulator, state, token=token) as daemon, \
            aiohttp.ClientSession() as session:
        yield Api(daemon, session)


def job_of(run: dict[str, Any], key: str) -> dict[str, Any]:
    [found] = [j for j in run["jobs"] if j["job"] == key]
    return dict(found)


def created(run: dict[str, Any], *keys: str) -> bool:
    """Every one of the jobs has its SageMaker resource (and has not ended)."""
    return all(job_of(run, key)["state"] == "running" for key in keys)


def strictly_increasing(ids: Sequence[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


# --- the API against its OpenAPI document -------------------------------------

# every route of the API (the web view's files aside), as the document must name them
ROUTES = {
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("get", "/openapi.json"),
    ("post", "/v1/runs"), ("get", "/v1/runs"), ("get", "/v1/runs/{run_id}"),
    ("post", "/v1/runs/{run_id}/stop"), ("get", "/v1/runs/{run_id}/events"),
    ("get", "/v1/runs/{run_id}/jobs/{job}"), ("post", "/v1/runs/{run_id}/jobs/{job}/stop"),
    ("get", "/v1/runs/{run_id}/jobs/{job}/logs"), ("get", "/v1/runs/{run_id}/jobs/{job}/trials"),
}
STREAMS = ("/v1/runs/{run_id}/events", "/v1/runs/{run_id}/jobs/{job}/logs")
RESPONSE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance]


async def test_the_document_is_openapi_3_1_and_names_every_route(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with serving(emulator, tmp_path / "state") as api:
        status, document = await api.get("/openapi.json")
    assert status == 200
    validate(document, cls=OpenAPIV31SpecValidator)
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == ROUTES
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer"}
    # the probes need no token; everything else does
    for path, item in document["paths"].items():
        for operation in item.values():
            open_route = path in ("/healthz", "/readyz")
            assert (operation.get("security") == []) is open_route, path
            assert open_route or "401" in operation["responses"], path
    for path in STREAMS:
        get = document["paths"][path]["get"]
        assert list(get["responses"]["200"]["content"]) == ["text/event-stream"]
        names = {p["name"] for p in get["parameters"]}
        assert {"Last-Event-ID", "after", "follow"} <= names, path


@dataclass(frozen=True)
class Known:
    """A request about what exists, and the status it must get."""

    label: str
    status: int
    path: dict[str, str] | None = None
    query: dict[str, Any] | None = None
    body: dict[str, Any] | None = None


def fuzz(operation: Any, mode: GenerationMode, url: str, auth: dict[str, str], runs: list[str],
         jobs: list[str], seen: set[int]) -> None:
    """Generated requests of one operation; ``seen`` gets their statuses."""

    @settings(max_examples=15, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode),
           run=st.sampled_from([None, *runs]), key=st.sampled_from([None, *jobs]))
    def check(case: Any, run: str | None, key: str | None) -> None:
        # some requests name runs and jobs that exist, not only random ones
        if run is not None and "run_id" in case.path_parameters:
            case.path_parameters["run_id"] = run
        if key is not None and "job" in case.path_parameters:
            case.path_parameters["job"] = key
        if operation.path in STREAMS:  # what exists, then the end
            case.query = {**(case.query or {}), "follow": "0"}
        response = case.call(base_url=url, headers=auth, timeout=20)
        seen.add(response.status_code)
        case.validate_response(response, checks=RESPONSE_CHECKS)

    check()


def conformance(document: dict[str, Any], url: str, known: list[Known], runs: list[str],
                jobs: list[str]) -> dict[str, set[int]]:
    """The known requests, then generated ones (positive and negative) for
    every operation: each answer is documented and matches its schema. Runs
    in a worker thread while the daemon serves in the test's event loop; the
    statuses seen, by operation."""
    schema = schemathesis.openapi.from_dict(document)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    operations = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}
    tally: dict[str, set[int]] = {}
    for request in known:
        operation = operations[request.label]
        options: dict[str, Any] = {"path_parameters": request.path, "query": request.query}
        if request.body is not None:
            options.update(body=request.body, media_type="application/json")
        case = operation.Case(**options)
        response = case.call(base_url=url, headers=auth, timeout=20)
        case.validate_response(response, checks=RESPONSE_CHECKS)
        assert response.status_code == request.status, (request, response.text[:500])
    for operation in operations.values():
        written = document["paths"][operation.path][operation.method.lower()]
        modes = [GenerationMode.POSITIVE]
        if written.get("parameters") or written.get("requestBody"):  # something to get wrong
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            fuzz(operation, mode, url, auth, runs, jobs, tally.setdefault(operation.label, set()))
    return tally


async def test_the_api_answers_as_its_document_says(emulator: Emulator, tmp_path: Path) -> None:
    text = manifest(job("train", training(0.5, lines=1)), job("tune", tuning(), kind="tuning"))
    run = {"run_id": "known-1"}
    train, tune = {**run, "job": "train"}, {**run, "job": "tune"}
    known = [
        Known("GET /healthz", 200), Known("GET /readyz", 200), Known("GET /metrics", 200),
        Known("GET /openapi.json", 200),
        Known("POST /v1/runs", 200, body={"manifest": text, **run}),  # the same run again
        Known("POST /v1/runs", 409, body={"manifest": manifest(job("x", training())), **run}),
        Known("POST /v1/runs", 422, body={"manifest": INVALID}),
        Known("GET /v1/runs", 200), Known("GET /v1/runs", 200, query={"limit": 1}),
        Known("GET /v1/runs", 200, query={"status": "succeeded,failed", "before": "known-1"}),
        Known("GET /v1/runs/{run_id}", 200, path=run),
        Known("GET /v1/runs/{run_id}/jobs/{job}", 200, path=train),
        Known("GET /v1/runs/{run_id}/jobs/{job}/trials", 200, path=tune),
        Known("GET /v1/runs/{run_id}/jobs/{job}/trials", 400, path=train),
        Known("GET /v1/runs/{run_id}/events", 200, path=run, query={"follow": "0"}),
        Known("GET /v1/runs/{run_id}/events", 200, path=run, query={"logs": "1", "after": 3}),
        Known("GET /v1/runs/{run_id}/jobs/{job}/logs", 200, path=train),
        Known("GET /v1/runs/{run_id}/jobs/{job}/logs", 404, path={**run, "job": "nope"}),
        Known("POST /v1/runs/{run_id}/jobs/{job}/stop", 202, path=train),
        Known("POST /v1/runs/{run_id}/stop", 202, path=run),
        Known("POST /v1/runs/{run_id}/stop", 404, path={"run_id": "nope"}),
    ]
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(text, **run)
        assert (await api.finished(run_id))["status"] == "succeeded"
        status, document = await api.get("/openapi.json")
        assert status == 200
        tally = await anyio.to_thread.run_sync(conformance, document, api.url, known, [run_id],
                                               ["train", "tune", "nope"])
    # the generated requests reached both what exists and what doesn't
    assert {200, 404} <= tally["GET /v1/runs/{run_id}"]
    assert {400, 422} <= tally["POST /v1/runs"]
    assert {200, 400} <= tally["GET /v1/runs"]
    assert emulator.count("CreateHyperParameterTuningJob") == 1  # no other run was made


async def test_a_stream_is_an_event_stream_and_its_errors_are_json(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(manifest(job("a", training(0.3, lines=1))))
        await api.finished(run_id)
        for path in (f"/v1/runs/{run_id}/events", f"/v1/runs/{run_id}/jobs/a/logs"):
            async with api.session.get(api.url + path, headers=api.daemon.headers()) as response:
                assert response.status == 200
                assert response.content_type == "text/event-stream"
                assert response.headers["Cache-Control"] == "no-cache"
                assert (await response.text()).endswith("event: end\ndata: {}\n\n")
        for path in ("/v1/runs/nope/events", f"/v1/runs/{run_id}/jobs/nope/logs"):
            status, body = await api.get(path)
            assert status == 404 and isinstance(body, dict) and body["error"], (path, body)
        for bad in ("x", "-1", "99999999999999999999999"):
            status, body = await api.get(f"/v1/runs/{run_id}/events",
                                         headers={**api.daemon.headers(), "Last-Event-ID": bad})
            assert status == 400 and "Last-Event-ID" in body["error"], (bad, body)


# --- auth ----------------------------------------------------------------------


async def test_a_non_loopback_address_needs_a_token(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_token(host, None)  # loopback: no token needed
    for host in ("0.0.0.0", "::", "10.0.0.5", "daemon.example.com"):
        with pytest.raises(DaemonError, match="needs a bearer token"):
            check_token(host, None)
        check_token(host, TOKEN)
    with pytest.raises(DaemonError, match="shorter than 16"):
        check_token("0.0.0.0", "short")
    # run_daemon itself refuses, before it makes or binds anything
    state = tmp_path / "state"
    with pytest.raises(DaemonError, match="needs a bearer token"):
        await run_daemon(DaemonConfig(kinds=KINDS, host="0.0.0.0", port=0, state=str(state)))
    assert not state.exists()


def cli_env(**overrides: str | None) -> dict[str, str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1"}
    for name in ("SMRUN_TOKEN", "SMRUN_DAEMON_URL", "SMRUN_DEBUG", "SMRUN_DATABASE_URL"):
        env.pop(name, None)
    for name, value in overrides.items():
        if value is not None:
            env[name] = value
    return env


async def smrun(*args: str, env: dict[str, str], timeout: float = 60,
                ) -> subprocess.CompletedProcess[str]:
    """``smrun ARGS`` in a subprocess; the daemon of the test keeps serving meanwhile."""
    with anyio.fail_after(timeout):
        done = await anyio.run_process([sys.executable, "-m", "smrun.cli", *args], env=env,
                                       cwd=ROOT, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


async def test_smrun_daemon_on_a_public_address_without_a_token_exits_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = await smrun("daemon", "--listen", "0.0.0.0:0", "--state-dir", str(state),
                       env=cli_env())
    assert done.returncode == 2, done.stderr
    assert "listening on 0.0.0.0 needs a bearer token" in done.stderr
    assert "fix: --token-file FILE, or SMRUN_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert not state.exists()  # refused before anything was made


async def test_without_the_token_a_request_gets_a_bare_401(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with serving(emulator, tmp_path / "state") as api:
        guarded = [("GET", "/v1/runs"), ("POST", "/v1/runs"), ("GET", "/metrics"),
                   ("GET", "/openapi.json"), ("GET", "/v1/runs/r1"), ("POST", "/v1/runs/r1/stop"),
                   ("GET", "/v1/runs/r1/events"), ("GET", "/v1/runs/r1/jobs/a/logs"),
                   ("GET", "/v1/runs/r1/jobs/a/trials")]
        refused = [{}, {"Authorization": "Bearer wrong-token-0123456789"},
                   {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Basic {TOKEN}"},
                   {"Authorization": TOKEN}]
        for method, path in guarded:
            for headers in refused:
                async with api.session.request(method, api.url + path, headers=headers,
                                               json={"manifest": manifest(job("a", training()))},
                                               ) as response:
                    assert response.status == 401, (method, path, headers)
                    assert await response.read() == b"", (method, path)
                    assert response.headers["WWW-Authenticate"] == "Bearer"
        for path in ("/healthz", "/readyz", "/"):
            status, _ = await api.get(path, headers={})
            assert status == 200, path
        status, ready = await api.get("/readyz", headers={})
        assert ready["ready"] is True
        # the scheme's case does not matter, the token's does
        status, page = await api.get("/v1/runs", headers={"Authorization": f"bearer {TOKEN}"})
        assert status == 200 and page["runs"] == []  # none of the refused POSTs made a run
        status, _ = await api.get("/v1/runs", headers={"Authorization": f"Bearer {TOKEN.upper()}"})
        assert status == 401
    assert emulator.count("CreateTrainingJob") == 0


# --- submissions ---------------------------------------------------------------


async def test_an_invalid_manifest_is_422_with_the_messages_of_validate_and_nothing_is_made(
    emulator: Emulator, tmp_path: Path
) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(INVALID, kinds=KINDS, source="<submitted>")
    expected = caught.value.errors
    for problem in ("'typo': request.ResourceConfig.InstanceCount: Invalid type",
                    "'odd': kind: unknown kind 'trainin'", "'odd': after[0]: no job named"):
        assert any(problem in message for message in expected), problem
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID)
    validated = await smrun("validate", str(path), env=cli_env())
    assert validated.returncode == 2
    printed = validated.stderr.splitlines()
    assert printed[0] == "smrun: invalid manifest"
    assert [m.replace(str(path), "<submitted>") for m in printed[1:]] == expected
    async with serving(emulator, tmp_path / "state") as api:
        status, body = await api.submit(INVALID, run_id="bad-1")
        assert status == 422
        assert body == {"error": "the manifest is not valid", "errors": expected}
        # the manifest itself as the body, YAML: the same answer
        status, body = await api.post("/v1/runs?run_id=bad-2", data=INVALID,
                                      headers={**api.daemon.headers(),
                                               "Content-Type": "application/yaml"})
        assert status == 422 and body["errors"] == expected
        for empty in ("", "  \n"):
            status, body = await api.submit(empty)
            assert status == 422 and body["errors"] == ["the manifest is empty"]
        status, body = await api.post("/v1/runs", data="{not json",
                                      headers={**api.daemon.headers(),
                                               "Content-Type": "application/json"})
        assert status == 400 and "not JSON" in body["error"]
        for content_type, raw in (("application/yaml", b"\xff\xfejobs: []\n"),
                                  ("application/yaml; charset=bogus", INVALID.encode())):
            status, body = await api.post("/v1/runs", data=raw,
                                          headers={**api.daemon.headers(),
                                                   "Content-Type": content_type})
            assert status == 400 and "the body" in body["error"], content_type
        huge = "# " + "x" * (6 * 1024 * 1024) + "\n" + manifest(job("a", training()))
        status, _ = await api.submit(huge, run_id="huge-1")
        assert status == 413
        status, page = await api.get("/v1/runs")
        assert status == 200 and page == {"runs": [], "next": None}
        for run_id in ("bad-1", "bad-2", "huge-1"):
            status, _ = await api.get(f"/v1/runs/{run_id}")
            assert status == 404
    assert emulator.count("CreateTrainingJob") == 0


async def test_the_same_run_id_and_manifest_is_the_same_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    text = manifest(job("a", training(0.5, lines=1)))
    async with serving(emulator, tmp_path / "state") as api:
        status, first = await api.submit(text, run_id="same-1")
        assert status == 201 and first["run_id"] == "same-1"
        status, again = await api.submit(text, run_id="same-1")
        assert status == 200
        assert (again["run_id"], again["created"]) == ("same-1", first["created"])
        # the manifest itself as a YAML body, the run id in the query: the same run too
        status, yaml_again = await api.post("/v1/runs?run_id=same-1", data=text,
                                            headers={**api.daemon.headers(),
                                                     "Content-Type": "application/yaml"})
        assert status == 200 and yaml_again["created"] == first["created"]
        status, conflict = await api.submit(manifest(job("b", training(0.5))), run_id="same-1")
        assert status == 409 and "same-1" in conflict["error"]
        for bad in ("has space", "-leading", "x" * 41, "a/b", "ünï", "a_b", ""):
            status, body = await api.submit(text, run_id=bad)
            # an empty run id is no run id: the daemon names the run
            expected = 201 if bad == "" else 400
            assert status == expected, (bad, body)
            if expected == 400:
                assert "run_id" in body["error"]
        status, body = await api.submit(text, run_id="ok-2", on_cancel="explode")
        assert status == 400 and "on_cancel" in body["error"]
        run = await api.finished("same-1")
        assert run["status"] == "succeeded"
        status, after = await api.submit(text, run_id="same-1")  # after it ended, too
        assert status == 200 and after["status"] == "succeeded"
        status, page = await api.get("/v1/runs")
        ids = [r["run_id"] for r in page["runs"]]
        assert ids.count("same-1") == 1 and "ok-2" not in ids and len(ids) == 2
        await api.finished(next(i for i in ids if i != "same-1"))
    assert emulator.count("CreateTrainingJob") == 2  # same-1 once, and the unnamed run


# --- runs and jobs -------------------------------------------------------------


async def test_runs_are_listed_newest_first_by_pages_and_by_status(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = manifest(job("a", training(0.3, lines=0)))
    bad = manifest(job("a", training(0.3, lines=0, outcome="Failed")))
    async with serving(emulator, tmp_path / "state") as api:
        submitted = [await api.started(text, run_id=f"list-{n}")
                     for n, text in enumerate([good, bad, good, bad, good])]
        for run_id in submitted:
            await api.finished(run_id)
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            query = "?limit=2" + (f"&before={cursor}" if cursor else "")
            status, page = await api.get("/v1/runs" + query)
            assert status == 200
            pages.append([r["run_id"] for r in page["runs"]])
            cursor = page["next"]
            if cursor is None:
                break
            assert cursor == pages[-1][-1]
        assert [len(p) for p in pages] == [2, 2, 1]
        assert list(itertools.chain(*pages)) == submitted[::-1]  # newest first, each once
        status, page = await api.get("/v1/runs?status=failed")
        assert [r["run_id"] for r in page["runs"]] == ["list-3", "list-1"]
        assert {r["status"] for r in page["runs"]} == {"failed"}
        status, page = await api.get("/v1/runs?status=failed&limit=1")
        assert [r["run_id"] for r in page["runs"]] == ["list-3"] and page["next"] == "list-3"
        status, page = await api.get("/v1/runs?status=failed&limit=1&before=list-3")
        assert [r["run_id"] for r in page["runs"]] == ["list-1"] and page["next"] is None
        status, page = await api.get("/v1/runs?status=succeeded,failed")
        assert len(page["runs"]) == 5
        status, page = await api.get("/v1/runs?status=running,pending")
        assert page["runs"] == []
        # a listing counts states from the job rows: it reads no run's events
        read: list[str] = []
        events = SqliteStore.events

        async def counted(store: SqliteStore, run_id: str, **options: Any) -> Any:
            read.append(run_id)
            return await events(store, run_id, **options)

        monkeypatch.setattr(SqliteStore, "events", counted)
        listed = (await api.get("/v1/runs?limit=1"))[1]["runs"][0]
        assert "jobs" not in listed and listed["jobs_total"] == 1
        assert listed["counts"] == {"Succeeded": 1}
        assert read == []
        assert (await api.get(f"/v1/runs/{listed['run_id']}"))[1]["counts"] == listed["counts"]
        assert read == [listed["run_id"]]  # a run's own view has its jobs' timelines
        for query in ("status=bogus", "limit=0", "limit=501", "limit=many"):
            status, body = await api.get(f"/v1/runs?{query}")
            assert status == 400 and body["error"], query


async def test_a_run_shows_every_job_with_its_outputs_timeline_and_failure_reason(
    emulator: Emulator, tmp_path: Path, aws_client: ClientFactory
) -> None:
    reason = "AlgorithmError: the data ran out"
    text = manifest(
        job("ok", training(0.6, lines=1)),
        job("broken", training(0.6, lines=1, outcome="Failed", failure_reason=reason)),
        job("later", training(0.5), after=["broken"]),
    )
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(text, run_id="views-1")
        pending = await api.run(run_id)
        assert [j["job"] for j in pending["jobs"]] == ["ok", "broken", "later"]
        assert job_of(pending, "later")["needs"] == ["broken"]
        run = await api.finished(run_id)
        assert run["status"] == "failed"
        assert run["counts"] == {"Succeeded": 1, "Failed": 1, "NotStarted": 1}
        assert run["summary"]["counts"] == run["counts"]
        assert run["jobs_total"] == 3 and run["ended"] >= run["created"]
        keys = {"job", "kind", "name", "state", "status", "outcome", "failure_reason", "outputs",
                "details", "timeline", "links", "needs"}
        for view in run["jobs"]:
            assert keys <= set(view), view["job"]
        ok, broken, later = (job_of(run, k) for k in ("ok", "broken", "later"))
        assert (ok["state"], ok["status"], ok["failure_reason"]) == ("Succeeded", "Completed", None)
        assert ok["outputs"]["job_name"] == ok["name"]
        assert ok["outputs"]["model_artifact_url"].endswith(f"/{ok['name']}/output/model.tar.gz")
        assert ok["details"]["billable_seconds"] >= 1
        statuses = [step["status"] for step in ok["timeline"]]
        assert statuses[0] == "Created" and statuses[-1] == "Completed"
        times = [step["time"] for step in ok["timeline"]]
        assert times == sorted(times)
        # each phase at when it began in SageMaker, whenever a poll saw it
        # (the first, Starting, began at the create: before Created was told)
        sagemaker = await aws_client("sagemaker", emulator)
        described = await sagemaker.describe_training_job(TrainingJobName=ok["name"])
        began = {t["Status"]: t["StartTime"].timestamp()
                 for t in described["SecondaryStatusTransitions"]}
        phases = [step for step in ok["timeline"] if step["secondary"] not in (None, "Starting")]
        assert [step["secondary"] for step in phases] == list(began)[1:]
        for step in phases:
            assert step["time"] == pytest.approx(began[step["secondary"]], abs=0.01), step
        assert ok["name"] in ok["links"]["console"]
        assert "/aws/sagemaker/TrainingJobs" in ok["links"]["logs"]
        assert (broken["state"], broken["status"]) == ("Failed", "Failed")
        assert broken["failure_reason"] == reason
        assert broken["timeline"][-1]["status"] == "Failed"
        assert later["state"] == "NotStarted" and later["name"] is None
        assert later["timeline"] == [] and later["links"] == {"console": None, "logs": None}
        for key in ("ok", "broken", "later"):
            status, alone = await api.get(f"/v1/runs/{run_id}/jobs/{key}")
            assert status == 200 and alone == job_of(run, key)
        for path in ("/v1/runs/nope", "/v1/runs/nope/jobs/ok", f"/v1/runs/{run_id}/jobs/nope",
                     f"/v1/runs/{run_id}/jobs/nope/trials"):
            status, body = await api.get(path)
            assert status == 404 and body["error"], path
        for path in ("/v1/runs/nope/stop", f"/v1/runs/{run_id}/jobs/nope/stop"):
            status, body = await api.post(path)
            assert status == 404 and body["error"], path
        status, body = await api.get(f"/v1/runs/{run_id}/jobs/ok/trials")
        assert status == 400 and "not a tuning job" in body["error"]
    assert emulator.count("CreateTrainingJob") == 2  # `later` never started


async def test_stopping_a_run_stops_its_jobs(emulator: Emulator, tmp_path: Path) -> None:
    text = manifest(job("a", training(60)), job("b", training(60)))
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(text)
        running = await api.until(run_id, lambda run: created(run, "a", "b"))
        assert running["status"] == "running"
        # follow=0: what exists now, then the end, though the run goes on
        now = await api.stream(f"/v1/runs/{run_id}/events?follow=0", timeout=5)
        assert now.ended and {r["job"] for r in now.of("submitted")} == {"a", "b"}
        assert not now.of("finished")
        assert emulator.count("StopTrainingJob") == 0
        status, body = await api.post(f"/v1/runs/{run_id}/stop")
        assert status == 202 and body == {"stop_requested": True}
        run = await api.finished(run_id)
        assert run["status"] == "stopped"
        assert {j["outcome"] for j in run["jobs"]} == {"StoppedByUs"}
        assert {j["status"] for j in run["jobs"]} == {"Stopped"}
        status, _ = await api.post(f"/v1/runs/{run_id}/stop")  # an ended run: nothing to do
        assert status == 202
    assert emulator.count("StopTrainingJob") == 2


async def test_stopping_a_job_stops_that_job_only(emulator: Emulator, tmp_path: Path) -> None:
    text = manifest(job("long", training(60)), job("short", training(4, lines=1)))
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(text)
        await api.until(run_id, lambda run: created(run, "long", "short"))
        status, body = await api.post(f"/v1/runs/{run_id}/jobs/long/stop")
        assert status == 202 and body == {"stop_requested": True}
        stopped = await api.until(run_id, lambda run: job_of(run, "long")["outcome"] is not None)
        assert job_of(stopped, "long")["outcome"] == "StoppedByUs"
        assert job_of(stopped, "short")["outcome"] is None  # still going
        run = await api.finished(run_id)
        assert job_of(run, "short")["outcome"] == "Succeeded"
        assert run["status"] == "failed"  # not every job succeeded; nobody stopped the run
    assert emulator.count("StopTrainingJob") == 1


async def test_a_job_stopped_before_it_starts_never_starts(
    emulator: Emulator, tmp_path: Path
) -> None:
    text = manifest(job("first", training(3, lines=1)),
                    job("then", training(1, lines=1), after=["first"]))
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(text)
        await api.until(run_id, lambda run: created(run, "first"))
        assert job_of(await api.run(run_id), "then")["state"] == "waiting"
        status, _ = await api.post(f"/v1/runs/{run_id}/jobs/then/stop")
        assert status == 202
        run = await api.finished(run_id)
    assert job_of(run, "first")["outcome"] == "Succeeded"
    assert job_of(run, "then")["outcome"] == "NotStarted"
    assert job_of(run, "then")["failure_reason"] == "stopped before it started"
    assert emulator.count("CreateTrainingJob") == 1  # "then" was never created


# --- metrics -------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


async def test_metrics_count_jobs_calls_log_lines_and_lags(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(manifest(job("a", training(0.8, lines=3)),
                                            job("b", training(0.8, lines=2))))
        status, _ = await api.submit("jobs: nope\n")  # an invalid one is counted as such
        assert status == 422
        await api.finished(run_id)
        async with api.session.get(api.url + "/metrics", headers=api.daemon.headers()) as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            text = await response.text()
    found = samples(text)

    def value(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    assert value("smrun_jobs", kind="training", state="Succeeded") == 2
    assert value("smrun_jobs", kind="training", state="running") == 0
    assert value("smrun_aws_calls_total", operation="CreateTrainingJob") == 2
    assert value("smrun_aws_calls_total", operation="DescribeTrainingJob") >= 2
    assert value("smrun_aws_calls_total", operation="GetLogEvents") >= 1
    assert value("smrun_log_lines_total", kind="training") == 5
    assert value("smrun_log_latency_seconds_count") == 5
    assert value("smrun_log_latency_seconds_sum") >= 0
    assert value("smrun_log_latency_seconds_bucket", le="+Inf") == 5
    assert value("smrun_detection_lag_seconds_count") >= 2  # each job's end at least
    assert value("smrun_runs_held") == 0
    assert value("smrun_store_listening") == 0  # SQLite: no other daemon to hear from
    assert value("smrun_submissions_total", source="api", result="created") == 1
    assert value("smrun_submissions_total", source="api", result="invalid") == 1


# --- tuning trials -------------------------------------------------------------


async def test_a_tuning_job_has_its_objective_and_trials(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(manifest(job("hpo", tuning(max_jobs=3), kind="tuning")))
        run = await api.finished(run_id, timeout=45)
        assert run["status"] == "succeeded", job_of(run, "hpo")["failure_reason"]
        hpo = job_of(run, "hpo")
        status, trials = await api.get(f"/v1/runs/{run_id}/jobs/hpo/trials")
    assert status == 200
    assert trials["objective"] == {"name": METRIC, "type": "Minimize"}
    assert len(trials["trials"]) == 3
    listed = emulator.sagemaker.kinds["tuning"].job(hpo["name"]).children  # type: ignore[attr-defined]
    assert sorted(t["name"] for t in trials["trials"]) == sorted(c.name for c in listed)
    for trial in trials["trials"]:
        assert trial["name"].startswith(hpo["name"])
        assert trial["status"] == "Completed"
        assert isinstance(trial["value"], float)
        assert isinstance(trial["ended"], float)
    best = min(trials["trials"], key=lambda t: t["value"])
    assert hpo["outputs"]["best_job_name"] == best["name"]


# --- server-sent events --------------------------------------------------------


async def test_the_events_of_a_run_come_in_order_and_end_after_the_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    text = manifest(job("a", training(1.0, lines=3)), job("b", training(1.2, lines=2)))
    async with serving(emulator, tmp_path / "state") as api:
        run_id = await api.started(text)
        streams: dict[str, Stream] = {}

        async def read(name: str, path: str) -> None:
            streams[name] = await api.stream(path)

        async with anyio.create_task_group() as tg:  # opened while the run is young
            tg.start_soon(read, "run", f"/v1/runs/{run_id}/events")
            tg.start_soon(read, "logs", f"/v1/runs/{run_id}/events?logs=1")
            tg.start_soon(read, "a", f"/v1/runs/{run_id}/jobs/a/logs")
            tg.start_soon(read, "b", f"/v1/runs/{run_id}/jobs/b/logs")
        run = await api.run(run_id)
        assert run["status"] == "succeeded"
        events = streams["run"]
        assert events.ended and events.content_type == "text/event-stream"
        assert strictly_increasing([i for i, _, _ in events.events])
        assert {kind for _, kind, _ in events.events} <= RUN_TYPES
        assert {r["job"] for r in events.of("finished")} == {"a", "b"}
        assert events.events[-1][1] == "run" and events.events[-1][2]["status"] == "succeeded"
        assert not events.of("log")

        everything = streams["logs"]
        assert everything.ended
        assert strictly_increasing([i for i, _, _ in everything.events])
        lines = everything.of("log")
        assert sorted(r["job"] for r in lines) == ["a"] * 3 + ["b"] * 2
        # without the lines, the same events with the same ids
        assert [e for e in everything.events if e[1] != "log"] == events.events
        for key, count in (("a", 3), ("b", 2)):
            only = streams[key]
            assert only.ended and {kind for _, kind, _ in only.events} == {"log"}
            assert [r["job"] for r in only.of("log")] == [key] * count
            assert [r["message"] for r in only.of("log")] == [
                r["message"] for r in lines if r["job"] == key]
            assert all(f"line {n + 1}/{count}" in r["message"]
                       for n, r in enumerate(only.of("log")))

        # resuming: after an id (the header, or `after`), the rest, each once
        middle = everything.events[len(everything.events) // 2][0]
        for resumed in (
            await api.stream(f"/v1/runs/{run_id}/events?logs=1",
                             headers={"Last-Event-ID": str(middle)}),
            await api.stream(f"/v1/runs/{run_id}/events?logs=1&after={middle}"),
        ):
            assert resumed.ended
            assert resumed.events == [e for e in everything.events if e[0] > middle]
        # an ended run's stream with follow=0 is the same as with follow
        again = await api.stream(f"/v1/runs/{run_id}/events?follow=0")
        assert again.ended and again.events == events.events


# --- the command line against the daemon ---------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def concurrently(commands: dict[str, tuple[list[str], dict[str, str]]],
                       ) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each ``name: (args, env)`` as an ``smrun`` subprocess, all at once."""
    done: dict[str, subprocess.CompletedProcess[str]] = {}

    async def one(name: str, args: list[str], env: dict[str, str]) -> None:
        done[name] = await smrun(*args, env=env)

    async with anyio.create_task_group() as tg:
        for name, (args, env) in commands.items():
            tg.start_soon(one, name, args, env)
    return done


async def test_the_client_commands_submit_follow_show_logs_and_stop(
    emulator: Emulator, tmp_path: Path
) -> None:
    short = tmp_path / "short.yaml"
    short.write_text(manifest(job("a", training(0.8, lines=3))))
    failing = tmp_path / "failing.yaml"
    failing.write_text(manifest(job("f", training(0.5, lines=1, outcome="Failed"))))
    long = tmp_path / "long.yaml"
    long.write_text(manifest(job("slow", training(60, lines=1))))
    async with serving(emulator, tmp_path / "state") as api:
        env = cli_env(SMRUN_DAEMON_URL=api.url, SMRUN_TOKEN=TOKEN)
        done = await concurrently({
            "submit": (["submit", str(long), "--json", "--run-id", "cli-slow"], env),
            "follow": (["submit", str(short), "--follow", "--json", "--run-id", "cli-short"], env),
            "failing": (["submit", str(failing), "--follow", "--json", "--run-id", "cli-bad"],
                        env),
        })
        for result in done.values():
            assert "Traceback" not in result.stderr, result.stderr
        submitted = done["submit"]
        assert submitted.returncode == 0, submitted.stderr
        slow = json.loads(submitted.stdout)
        assert slow["run_id"] == "cli-slow" and slow["jobs_total"] == 1
        assert slow["status"] in ("pending", "running")

        ok = done["follow"]
        assert ok.returncode == 0, ok.stderr
        assert "run cli-short submitted" in ok.stderr
        records = json_lines(ok.stdout)
        [finished] = [r for r in records if r["event"] == "finished"]
        assert (finished["job"], finished["outcome"]) == ("a", "Succeeded")
        messages = [r["message"] for r in records if r["event"] == "log"]
        assert [f"line {n}/3" in m for n, m in enumerate(messages, 1)] == [True] * 3
        summary = records[-1]
        assert summary["event"] == "summary" and summary["ok"] is True
        assert [(j["job"], j["outcome"]) for j in summary["jobs"]] == [("a", "Succeeded")]
        bad = done["failing"]
        assert bad.returncode == 1, bad.stderr
        assert json_lines(bad.stdout)[-1]["ok"] is False

        await api.until("cli-slow", lambda run: created(run, "slow"))
        done = await concurrently({
            "list": (["status", "--json"], env),
            "one": (["status", "cli-short", "--json"], env),
            "logs": (["logs", "cli-short", "a"], env),
            "stop": (["stop", "cli-slow"], env),
        })
        for result in done.values():
            assert result.returncode == 0, result.stderr
        runs = {r["run_id"]: r["status"] for r in json.loads(done["list"].stdout)}
        assert set(runs) == {"cli-slow", "cli-short", "cli-bad"}
        assert (runs["cli-short"], runs["cli-bad"]) == ("succeeded", "failed")
        shown = json.loads(done["one"].stdout)
        assert shown["run_id"] == "cli-short" and job_of(shown, "a")["state"] == "Succeeded"
        lines = done["logs"].stdout.splitlines()
        assert len(lines) == 3 and all(line.startswith("a [algo-1] ") for line in lines)
        assert [f"line {n}/3" in line for n, line in enumerate(lines, 1)] == [True] * 3
        assert "asked cli-slow to stop" in done["stop"].stderr
        run = await api.finished("cli-slow")
        assert run["status"] == "stopped"
    assert emulator.count("StopTrainingJob") == 1


async def test_the_client_commands_say_what_went_wrong(emulator: Emulator, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID)
    with pytest.raises(ManifestError) as caught:
        load_manifest(INVALID, kinds=KINDS, source="<submitted>")
    closed = f"http://127.0.0.1:{free_port()}"
    async with serving(emulator, tmp_path / "state") as api:
        done = await concurrently({
            "unreachable": (["status"], cli_env(SMRUN_DAEMON_URL=closed, SMRUN_TOKEN=TOKEN)),
            "wrong-token": (["status", "--json"],
                            cli_env(SMRUN_DAEMON_URL=api.url, SMRUN_TOKEN="not-the-token-at-all")),
            "invalid": (["submit", str(bad)], cli_env(SMRUN_DAEMON_URL=api.url, SMRUN_TOKEN=TOKEN)),
            "no-run": (["stop", "nope"], cli_env(SMRUN_DAEMON_URL=api.url, SMRUN_TOKEN=TOKEN)),
            # no route: aiohttp's own 404, not JSON
            "no-route": (["status", "a/b"], cli_env(SMRUN_DAEMON_URL=api.url, SMRUN_TOKEN=TOKEN)),
        })
        status, page = await api.get("/v1/runs")
        assert status == 200 and page["runs"] == []
    for name, result in done.items():
        assert result.returncode == 2, (name, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, name
        assert result.stdout == "", name
    assert f"can't reach the daemon at {closed}" in done["unreachable"].stderr
    assert "fix: start it (`smrun daemon`), or pass --daemon URL" in done["unreachable"].stderr
    assert "the daemon refused the token" in done["wrong-token"].stderr
    assert "fix: set SMRUN_TOKEN to the daemon's token" in done["wrong-token"].stderr
    invalid = done["invalid"].stderr.splitlines()
    assert invalid[0] == "smrun submit: the manifest is not valid"
    assert invalid[1:] == caught.value.errors
    assert done["no-run"].stderr.startswith("smrun stop: no such run")
    assert done["no-route"].stderr.startswith("smrun status: HTTP 404: 404: Not Found")
    assert emulator.count("CreateTrainingJob") == 0
