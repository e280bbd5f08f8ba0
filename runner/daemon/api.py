"""The daemon's HTTP API (aiohttp): runs under ``/v1``, SSE, probes, metrics, the web view.

Every route but the probes and the web view's static files needs the bearer
token when the daemon has one (compared in constant time); a request without
it gets a bare 401. Errors are JSON ``{"error": ..., "errors": [...]}``; an
invalid manifest is 422 with the messages ``smrun validate`` prints.

Server-sent events are read from the store, so their ids are the store's: a
client that reconnects with ``Last-Event-ID`` gets every event after it and
none twice, from this daemon or another one sharing the database, before or
after a restart. A stream waits until the run's events are written: by this
daemon, or by another one on the same PostgreSQL, whose writes the store's
``listen`` announces (while that connection is down, a stream of a run driven
elsewhere looks again every ``remote_poll``). It sends a comment every
``keepalive`` seconds so proxies keep it open.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

from smrun.daemon.metrics import Metrics
from smrun.daemon.openapi import openapi_document
from smrun.daemon.service import Daemon
from smrun.daemon.views import TIMELINE_TYPES, job_views, run_view, sse_block
from smrun.errors import describe
from smrun.manifest import ManifestError
from smrun.store import RunConflict, RunRecord, RunStatus
from smrun.types import Outcome

MAX_BODY = 5 * 1024 * 1024  # a manifest of 10,000 matrix items is well under this
KEEPALIVE = 15.0
PAGE_MAX = 500
MAX_EVENT_ID = 2**63 - 1  # the stores' event ids are 64-bit integers
OPEN_PATHS = ("/healthz", "/readyz", "/", "/static/app.js", "/static/app.css", "/favicon.ico")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DAEMON_KEY = web.AppKey("daemon", Daemon)
METRICS_KEY = web.AppKey("metrics", Metrics)


def static_dir() -> Path:
    return Path(str(resources.files("smrun.daemon").joinpath("static")))


def error(status: int, message: str, errors: Sequence[str] = ()) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if errors:
        body["errors"] = list(errors)
    return web.json_response(body, status=status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def auth_middleware(token: str | None) -> Any:
    expected = token.encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or request.path in OPEN_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), expected
        ):
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check


def create_app(daemon: Daemon, *, token: str | None, metrics: Metrics,
               region: str = "us-east-1") -> web.Application:
    """The daemon's aiohttp application."""
    app = web.Application(middlewares=[auth_middleware(token)], client_max_size=MAX_BODY)
    app[DAEMON_KEY] = daemon
    app[METRICS_KEY] = metrics
    api = _Api(daemon, metrics, region)
    static = static_dir()
    app.add_routes([
        web.get("/healthz", api.healthz),
        web.get("/readyz", api.readyz),
        web.get("/metrics", api.metrics),
        web.get("/openapi.json", api.openapi),
        web.post("/v1/runs", api.submit),
        web.get("/v1/runs", api.list_runs),
        web.get("/v1/runs/{run_id}", api.get_run),
        web.post("/v1/runs/{run_id}/stop", api.stop_run),
        web.get("/v1/runs/{run_id}/events", api.run_events),
        web.get("/v1/runs/{run_id}/jobs/{job}", api.get_job),
        web.post("/v1/runs/{run_id}/jobs/{job}/stop", api.stop_job),
        web.get("/v1/runs/{run_id}/jobs/{job}/logs", api.job_logs),
        web.get("/v1/runs/{run_id}/jobs/{job}/trials", api.trials),
        web.get("/", api.index),
        # the page's files by name: nothing else under static/ is served
        *(web.get(f"/static/{path.name}", _file(path)) for path in sorted(static.iterdir())
          if path.suffix in (".js", ".css")),
    ])
    return app


def _file(path: Path) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path)
    return serve


class _Api:
    def __init__(self, daemon: Daemon, metrics: Metrics, region: str) -> None:
        self.daemon = daemon
        self.store = daemon.store
        self.counters = metrics
        self.region = region

    # --- probes and documents ------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        if not self.daemon.ready:
            return _json({"ready": False, "reason": "starting or shutting down"}, 503)
        try:
            await self.store.get_run("-")
        except Exception as problem:
            return _json({"ready": False, "reason": f"store: {describe(problem)}"}, 503)
        return _json({"ready": True, "owner": self.daemon.owner,
                      "runs_held": len(self.daemon.held)})

    async def metrics(self, request: web.Request) -> web.Response:
        self.counters.runs.set(len(self.daemon.held))
        self.counters.listening.set(1 if self.store.pushing else 0)
        body, content_type = self.counters.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(static_dir() / "index.html")

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(openapi_document())

    # --- runs ----------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.Response:
        text, run_id, options, problem = await _submission(request)
        if problem is not None:
            return problem
        submissions = self.counters.submissions
        try:
            run, created = await self.daemon.submit(text, run_id=run_id, source="api",
                                                    options=options)
        except ManifestError as invalid:
            submissions.labels("api", "invalid").inc()
            return error(422, "the manifest is not valid", invalid.errors)
        except RunConflict:
            submissions.labels("api", "conflict").inc()
            return error(409, f"run {run_id} exists with another manifest")
        submissions.labels("api", "created" if created else "existing").inc()
        return _json(await self._run(run), 201 if created else 200)

    async def list_runs(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            statuses = [RunStatus(s) for s in query.get("status", "").split(",") if s]
            limit = int(query.get("limit", "50"))
        except ValueError:
            return error(400, "status must be one of "
                         + ", ".join(s.value for s in RunStatus) + "; limit an integer")
        if not 1 <= limit <= PAGE_MAX:
            return error(400, f"limit must be between 1 and {PAGE_MAX}")
        runs = await self.store.list_runs(status=statuses, limit=limit + 1,
                                          before=query.get("before") or None)
        page = runs[:limit]
        views = [await self._run(run, jobs=False) for run in page]
        more = len(runs) > limit
        return _json({"runs": views, "next": page[-1].run_id if more and page else None})

    async def get_run(self, request: web.Request) -> web.Response:
        run = await self.store.get_run(request.match_info["run_id"])
        if run is None:
            return error(404, "no such run")
        return _json(await self._run(run))

    async def stop_run(self, request: web.Request) -> web.Response:
        if not await self.daemon.stop(request.match_info["run_id"]):
            return error(404, "no such run")
        return _json({"stop_requested": True}, 202)

    # --- jobs ----------------------------------------------------------------

    async def get_job(self, request: web.Request) -> web.Response:
        found = await self._job(request)
        if isinstance(found, web.Response):
            return found
        return _json(found)

    async def stop_job(self, request: web.Request) -> web.Response:
        found = await self._job(request)
        if isinstance(found, web.Response):
            return found
        await self.daemon.stop(request.match_info["run_id"], found["job"])
        return _json({"stop_requested": True}, 202)

    async def trials(self, request: web.Request) -> web.Response:
        found = await self._job(request)
        if isinstance(found, web.Response):
            return found
        if found["kind"] != "tuning":
            return error(400, f"{found['job']} is a {found['kind']} job, not a tuning job")
        if not found["name"]:
            return _json({"objective": None, "trials": []})
        aws = self.daemon.engine.require_aws()
        name = found["name"]
        try:
            described = await aws.call("sagemaker", "DescribeHyperParameterTuningJob",
                                       HyperParameterTuningJobName=name)
            listed = await aws.call("sagemaker", "ListTrainingJobsForHyperParameterTuningJob",
                                    HyperParameterTuningJobName=name, MaxResults=100)
        except Exception as problem:
            return error(502, f"SageMaker: {describe(problem)}")
        config = described.get("HyperParameterTuningJobConfig", {})
        objective = config.get("HyperParameterTuningJobObjective")
        trials = []
        for summary in listed.get("TrainingJobSummaries", []):
            metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
            end = summary.get("TrainingEndTime")
            trials.append({
                "name": summary.get("TrainingJobName"),
                "status": summary.get("TrainingJobStatus"),
                "value": metric.get("Value"),
                "ended": end.timestamp() if hasattr(end, "timestamp") else None,
            })
        return _json({
            "objective": {"name": objective["MetricName"], "type": objective["Type"]}
            if objective else None,
            "trials": trials,
        })

    # --- streams -------------------------------------------------------------

    async def run_events(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        if await self.store.get_run(run_id) is None:
            return error(404, "no such run")
        logs = request.query.get("logs") in ("1", "true")
        types = () if logs else ("submitted", "status", "notice", "finished", "run")

        async def ended() -> bool:
            run = await self.store.get_run(run_id)
            return run is None or run.status.finished

        return await self._stream(request, run_id, None, types, ended)

    async def job_logs(self, request: web.Request) -> web.StreamResponse:
        found = await self._job(request)
        if isinstance(found, web.Response):
            return found
        run_id, job = request.match_info["run_id"], found["job"]

        async def ended() -> bool:
            rows = {row.job: row for row in await self.store.jobs(run_id)}
            row = rows.get(job)
            run = await self.store.get_run(run_id)
            if run is not None and run.status.finished:
                return True
            return row is not None and row.outcome not in (
                None, Outcome.DETACHED.value, Outcome.UNKNOWN.value)

        return await self._stream(request, run_id, job, ("log",), ended)

    async def _stream(
        self,
        request: web.Request,
        run_id: str,
        job: str | None,
        types: Sequence[str],
        ended: Callable[[], Awaitable[bool]],
    ) -> web.StreamResponse:
        """Events from the store, then those written later, until ``ended()``
        (or, with ``follow=0``, until caught up); the last event is ``end``,
        so a client tells the end from a dropped connection."""
        given = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
        if not (given.isascii() and given.isdigit()) or int(given) > MAX_EVENT_ID:
            return error(400, "Last-Event-ID (or after) must be an event id (an integer >= 0)")
        after = int(given)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        follow = request.query.get("follow", "1") not in ("0", "false")
        daemon = self.daemon
        self.counters.sse_clients.inc()
        try:
            quiet = 0.0
            while True:
                changed = daemon.changed(run_id)  # before reading: no wake-up is missed
                events = await self.store.events(run_id, after=after, job=job, types=types,
                                                 limit=PAGE_MAX)
                if events:
                    await response.write(b"".join(sse_block(e) for e in events))
                    after = events[-1].id
                    quiet = 0.0
                    continue  # look again at once: wait only when caught up
                if not follow or await ended():
                    # what was written before the end was recorded is in this read
                    rest = await self.store.events(run_id, after=after, job=job, types=types,
                                                   limit=PAGE_MAX)
                    if rest:
                        continue
                    await response.write(b"event: end\ndata: {}\n\n")
                    break
                told = daemon.holds(run_id) or self.store.pushing  # of every write
                wait = KEEPALIVE if told else daemon.settings.remote_poll
                with anyio.move_on_after(wait):
                    await changed.wait()
                quiet += wait if not changed.is_set() else 0.0
                if quiet >= KEEPALIVE:
                    await response.write(b": keepalive\n\n")
                    quiet = 0.0
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self.counters.sse_clients.dec()
        return response

    # --- helpers -------------------------------------------------------------

    async def _run(self, run: RunRecord, *, jobs: bool = True) -> dict[str, Any]:
        # a job's state is in its row: the listing reads no run's events
        views = await self._job_views(run, timelines=jobs)
        view = run_view(run, views)
        if jobs:
            view["jobs"] = views
        return view

    async def _job_views(self, run: RunRecord, *, timelines: bool = True) -> list[dict[str, Any]]:
        timeline = (await self.store.events(run.run_id, types=TIMELINE_TYPES, limit=1_000_000)
                    if timelines else [])
        return job_views(run, self.daemon.manifest_of(run), await self.store.jobs(run.run_id),
                         timeline, self.daemon.kinds, self.region)

    async def _job(self, request: web.Request) -> dict[str, Any] | web.Response:
        run = await self.store.get_run(request.match_info["run_id"])
        if run is None:
            return error(404, "no such run")
        job = request.match_info["job"]
        for view in await self._job_views(run):
            if view["job"] == job:
                return view
        return error(404, f"run {run.run_id} has no job {job!r}")


async def _submission(
    request: web.Request,
) -> tuple[str, str | None, dict[str, Any], web.Response | None]:
    """(manifest text, run id, options, problem): a JSON body ``{"manifest": ...,
    "run_id": ..., "on_cancel": ...}``, or the manifest itself (YAML or JSON)
    with ``?run_id=``."""
    try:
        body = await request.text()
    except UnicodeDecodeError:
        return "", None, {}, error(400, "the body is not UTF-8 text")
    except LookupError:  # Content-Type names a charset Python does not know
        return "", None, {}, error(400, f"the body's charset {request.charset!r} is unknown")
    run_id = request.query.get("run_id") or None
    options: dict[str, Any] = {}
    if request.content_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError as problem:
            return "", None, {}, error(400, f"the body is not JSON: {problem}")
        if isinstance(data, dict) and "manifest" in data:
            manifest = data["manifest"]
            body = manifest if isinstance(manifest, str) else json.dumps(manifest)
            run_id = data.get("run_id") or run_id
            if data.get("on_cancel") is not None:
                options["on_cancel"] = data["on_cancel"]
    if run_id is not None and not _valid_run_id(str(run_id)):
        return "", None, {}, error(400, "run_id: 1 to 40 letters, digits and hyphens")
    if options.get("on_cancel") not in (None, "stop", "detach"):
        return "", None, {}, error(400, "on_cancel must be 'stop' or 'detach'")
    if not body.strip():
        return "", None, {}, error(422, "the manifest is not valid", ["the manifest is empty"])
    return body, None if run_id is None else str(run_id), options, None


def _valid_run_id(run_id: str) -> bool:
    return 0 < len(run_id) <= 40 and run_id.isascii() \
        and all(c.isalnum() or c == "-" for c in run_id) and run_id[0].isalnum()

