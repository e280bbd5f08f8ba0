"""The OpenAPI 3.1 document of the daemon's API (served at ``/openapi.json``).

Written by hand beside the routes of :mod:`smrun.daemon.api`; a test runs
the server against it (schemathesis), so the two can't drift apart unseen.
"""

from __future__ import annotations

from typing import Any

from smrun.store import RunStatus

VERSION = "1"

_NULL_STRING = {"type": ["string", "null"]}
_NULL_NUMBER = {"type": ["number", "null"]}
_OBJECT = {"type": "object"}


def _event_stream(types: list[str]) -> dict[str, Any]:
    """A stream of server-sent events. Before OpenAPI 3.2 (``itemSchema``), a
    sequential media type's ``schema`` describes each event: its id (none on
    ``end``), its type and its record as JSON."""
    return {"text/event-stream": {"schema": {
        "type": "object", "required": ["event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"enum": [*types, "end"]},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": {"type": "object"}},
        },
    }}}


_RUN_EVENTS = _event_stream(["submitted", "status", "notice", "finished", "run", "log"])
_LOG_EVENTS = _event_stream(["log"])


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "An error")
_UNAUTHORIZED = {"description": "No or wrong bearer token (no body)"}
_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
_JOB = {"name": "job", "in": "path", "required": True, "schema": {"type": "string"}}
_LAST_EVENT_ID = {
    "name": "Last-Event-ID", "in": "header", "required": False,
    "description": "The id of the last event received: the stream resumes after it",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
_FOLLOW = {
    "name": "follow", "in": "query", "required": False,
    "description": "0: send what exists, then `end`; 1 (default): wait for more until the end",
    "schema": {"enum": ["0", "1", "true", "false"]},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"},
                       "errors": {"type": "array", "items": {"type": "string"}}},
    },
    "Run": {
        "type": "object",
        "required": ["run_id", "status", "source", "created", "updated", "ended", "owner",
                     "stop_requested", "jobs_total", "counts"],
        "properties": {
            "run_id": {"type": "string"},
            "status": {"enum": [s.value for s in RunStatus]},
            "source": {"type": "string"},
            "created": {"type": "number"},
            "updated": {"type": "number"},
            "ended": _NULL_NUMBER,
            "owner": _NULL_STRING,
            "stop_requested": {"type": "boolean"},
            "options": _OBJECT,
            "jobs_total": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "summary": _OBJECT,
            "jobs": {"type": "array", "items": _ref("Job")},
        },
    },
    "Job": {
        "type": "object",
        "required": ["job", "kind", "name", "state", "status", "outcome", "failure_reason",
                     "outputs", "details", "timeline", "links", "needs"],
        "properties": {
            "job": {"type": "string"},
            "kind": {"type": "string"},
            "name": _NULL_STRING,
            "state": {"type": "string",
                      "description": "waiting, running, or the outcome once ended"},
            "status": _NULL_STRING,
            "secondary": _NULL_STRING,
            "outcome": _NULL_STRING,
            "failure_reason": _NULL_STRING,
            "outputs": _OBJECT,
            "details": _OBJECT,
            "arn": _NULL_STRING,
            "submitted": _NULL_NUMBER,
            "ended": _NULL_NUMBER,
            "attached": {"type": "boolean"},
            "needs": {"type": "array", "items": {"type": "string"}},
            "timeline": {"type": "array", "items": {
                "type": "object", "required": ["time", "status"],
                "properties": {"time": {"type": "number"}, "status": {"type": "string"},
                               "secondary": _NULL_STRING},
            }},
            "links": {"type": "object", "properties": {"console": _NULL_STRING,
                                                        "logs": _NULL_STRING}},
        },
    },
    "RunList": {
        "type": "object", "required": ["runs", "next"],
        "properties": {"runs": {"type": "array", "items": _ref("Run")}, "next": _NULL_STRING},
    },
    "Submission": {
        "type": "object", "required": ["manifest"],
        "properties": {
            "manifest": {"description": "The manifest: YAML or JSON text, or an object",
                         "type": ["string", "object"]},
            "run_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9-]{0,39}$",
                       "description": "Makes the submission idempotent"},
            "on_cancel": {"enum": ["stop", "detach"]},
        },
    },
    "Trials": {
        "type": "object", "required": ["objective", "trials"],
        "properties": {
            "objective": {"type": ["object", "null"],
                          "properties": {"name": {"type": "string"},
                                         "type": {"type": "string"}}},
            "trials": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "status": _NULL_STRING,
                               "value": _NULL_NUMBER, "ended": _NULL_NUMBER},
            }},
        },
    },
    "Stop": {"type": "object", "required": ["stop_requested"],
             "properties": {"stop_requested": {"type": "boolean"}}},
}


def _paths() -> dict[str, Any]:
    run_found = {"404": _ERROR, "401": _UNAUTHORIZED}
    return {
        "/healthz": {"get": {
            "summary": "Liveness: the process answers", "security": [],
            "responses": {"200": _json(_OBJECT, "Alive")},
        }},
        "/readyz": {"get": {
            "summary": "Readiness: holding runs, and the store answers", "security": [],
            "responses": {"200": _json(_OBJECT, "Ready"), "503": _json(_OBJECT, "Not ready")},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text format)",
            "responses": {"200": {"description": "Metrics",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "401": _UNAUTHORIZED},
        }},
        "/openapi.json": {"get": {
            "summary": "This document",
            "responses": {"200": _json(_OBJECT, "The OpenAPI document"), "401": _UNAUTHORIZED},
        }},
        "/v1/runs": {
            "post": {
                "summary": "Submit a run",
                "description": "A JSON body {manifest, run_id, on_cancel}, or the manifest "
                               "itself as YAML (run_id in the query). Validated as `smrun "
                               "validate` does; nothing is created when it is invalid.",
                "parameters": [{"name": "run_id", "in": "query", "required": False,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("Submission")},
                    "application/yaml": {"schema": {"type": "string"}},
                }},
                "responses": {
                    "201": _json(_ref("Run"), "Recorded"),
                    "200": _json(_ref("Run"), "The same run was submitted before"),
                    "400": _ERROR, "401": _UNAUTHORIZED,
                    "409": _json(_ref("Error"), "The run id names another manifest's run"),
                    "413": {"description": "The body is too large"},
                    "422": _json(_ref("Error"), "The manifest is not valid"),
                },
            },
            "get": {
                "summary": "List runs, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "required": False,
                     "description": "Comma-separated statuses",
                     "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "before", "in": "query", "required": False,
                     "description": "The `next` of the previous page",
                     "schema": {"type": "string"}},
                ],
                "responses": {"200": _json(_ref("RunList"), "A page of runs"),
                              "400": _ERROR, "401": _UNAUTHORIZED},
            },
        },
        "/v1/runs/{run_id}": {"get": {
            "summary": "A run and every job's status, outputs, billing and failure reason",
            "parameters": [_RUN_ID],
            "responses": {"200": _json(_ref("Run"), "The run"), **run_found},
        }},
        "/v1/runs/{run_id}/stop": {"post": {
            "summary": "Stop a run's jobs (whichever daemon drives it)",
            "parameters": [_RUN_ID],
            "responses": {"202": _json(_ref("Stop"), "Asked"), **run_found},
        }},
        "/v1/runs/{run_id}/events": {"get": {
            "summary": "The run's events as server-sent events",
            "description": "Types: submitted, status, notice, finished, run (and log with "
                           "logs=1). Each has an id; ends once the run has ended.",
            "parameters": [_RUN_ID, _LAST_EVENT_ID, _FOLLOW,
                           {"name": "logs", "in": "query", "required": False,
                            "schema": {"enum": ["0", "1", "true", "false"]}},
                           {"name": "after", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "An event stream", "content": _RUN_EVENTS},
                          "400": _ERROR, **run_found},
        }},
        "/v1/runs/{run_id}/jobs/{job}": {"get": {
            "summary": "One job of a run",
            "parameters": [_RUN_ID, _JOB],
            "responses": {"200": _json(_ref("Job"), "The job"), **run_found},
        }},
        "/v1/runs/{run_id}/jobs/{job}/stop": {"post": {
            "summary": "Stop one job",
            "parameters": [_RUN_ID, _JOB],
            "responses": {"202": _json(_ref("Stop"), "Asked"), **run_found},
        }},
        "/v1/runs/{run_id}/jobs/{job}/logs": {"get": {
            "summary": "A job's log lines as server-sent events, ending with `end`",
            "parameters": [_RUN_ID, _JOB, _LAST_EVENT_ID, _FOLLOW,
                           {"name": "after", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "An event stream", "content": _LOG_EVENTS},
                          "400": _ERROR, **run_found},
        }},
        "/v1/runs/{run_id}/jobs/{job}/trials": {"get": {
            "summary": "A tuning job's trials and their objective metric",
            "parameters": [_RUN_ID, _JOB],
            "responses": {"200": _json(_ref("Trials"), "The trials"), "400": _ERROR,
                          "502": _ERROR, **run_found},
        }},
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "smrun daemon", "version": VERSION,
                 "description": "Runs of SageMaker jobs: submit, follow, stop."},
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
