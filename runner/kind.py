"""What a handler tells the engine about one SageMaker resource kind.

A handler module (``handlers/<kind>.py``) builds one :class:`Kind`: mostly a
table of facts (operations, fields, terminal states, log layout, outputs).
Generic code in :mod:`smrun.job` drives every kind's lifecycle with it. A kind
adds code only where it really differs, through the optional hooks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from smrun.settings import Settings
from smrun.types import Description, LogSource, Phase, Request


class JobContext(Protocol):
    """What a kind's hooks may use of the job they serve (:mod:`smrun.job`
    implements it)."""

    @property
    def key(self) -> str: ...  # the job's key in its run

    @property
    def name(self) -> str: ...  # the SageMaker resource name

    @property
    def settings(self) -> Settings: ...

    @property
    def request(self) -> Request: ...  # the job's Create* request, tags included

    @property
    def options(self) -> Mapping[str, Any]: ...  # the job's `options:`

    # a dict the hooks may use to remember things between calls (e.g. which
    # endpoint config an update asked for)
    @property
    def state(self) -> dict[str, Any]: ...

    async def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """An AWS call through the runner's budgets and retries."""
        ...

    def notice(self, level: str, message: str, **fields: Any) -> None:
        """Tell the person running the job something ("info", "warning", "error")."""
        ...


@dataclass(frozen=True)
class Kind:
    """Everything the engine needs to drive one resource kind."""

    name: str  # manifest `kind:` value, e.g. "training"
    create: str  # botocore operation names, e.g. "CreateTrainingJob"
    describe: str
    name_field: str  # request/describe member holding the resource name
    arn_field: str  # describe member holding the resource's own ARN
    status_field: str  # describe member holding the status ("" for resources without one)
    success: frozenset[str]
    failure: frozenset[str]
    stopped: frozenset[str] = frozenset()
    stop: str | None = None
    secondary_status_field: str | None = None
    failure_reason_field: str = "FailureReason"
    # the describe member holding when the resource ended (else LastModifiedTime)
    end_field: str = "LastModifiedTime"
    # the Describe* response member that holds the resource, when it is wrapped in one
    # (DescribeWorkteam answers {"Workteam": {...}}); the engine and hooks see that member
    describe_member: str | None = None
    max_name_length: int = 63
    # the resource's page in the SageMaker console: ...#/<console_path>/<name>
    console_path: str | None = None
    # the request member that a manifest's `defaults.role` fills (when the shape has
    # it); a dotted path reaches into a nested structure
    role_field: str = "RoleArn"
    # the List* operation whose summaries report this kind's status (None: watched
    # by describing each resource), and the response member that holds them
    list_operation: str | None = None
    summaries_field: str = ""
    # the EventBridge detail-type of this kind's state changes (None: it sends none)
    event_type: str | None = None
    # the CloudWatch group whose streams `{name}/...` belong to this job
    log_group: str | None = None
    # whether the streams end when the resource is terminal (jobs: drain to the last
    # line) or go on (endpoints serve and log forever: stop after a bounded drain)
    logs_end: bool = True
    # turns a Describe* response into the component outputs (v1 names)
    outputs: Callable[[Description], dict[str, Any]] = field(default=lambda d: {})
    # the type of each output, so that a manifest reference can be type-checked at load time
    output_types: Mapping[str, type] = field(default_factory=dict)
    # facts for the summary beyond outputs (billing, metrics); plain JSON values
    details: Callable[[Description], dict[str, Any]] = field(default=lambda d: {})
    # hooks for kinds that differ; None means the generic behaviour.
    # `JobContext.state` is a dict a kind's hooks may use to remember things
    # between calls (e.g. which endpoint config an update asked for).

    # the log sources to follow now (called on every status poll), e.g. a tuning
    # job's children; default: `log_group` with prefix `{name}/`
    log_sources: Callable[[JobContext, Description], Awaitable[list[LogSource]]] | None = None
    # creates the resource instead of one `create` call (e.g. config + endpoint, or update)
    create_hook: Callable[[JobContext, Request], Awaitable[None]] | None = None
    # classifies a description when the status table alone can't (endpoint rollback,
    # resources without a status); gets the job's `state` dict too
    phase_hook: Callable[[Description, Mapping[str, Any]], Phase] | None = None
    # adds facts to a terminal description before outputs are read (e.g. the best
    # training job of a tuning job); the result is what `outputs` and `details` see
    enrich: Callable[[JobContext, Description], Awaitable[Description]] | None = None
    # on cancellation, for kinds without a stop operation: clean up or report what is
    # left behind; returns the sentence to show
    cancel_hook: Callable[[JobContext, Description], Awaitable[str]] | None = None
    # whether an existing resource not created by this run may be used as is
    # (e.g. an identical model); default: never
    adopt: Callable[[Description, Request], bool] | None = None
    # called when the resource already exists before this job creates it: may change
    # it in place to the job's request (an endpoint's UpdateEndpoint) and return True,
    # after which the job follows it as its own; False keeps the rules above
    update_hook: Callable[[JobContext, Description], Awaitable[bool]] | None = None
    # job-level options a manifest may give this kind (`options:` beside `request:`),
    # by name and type; hooks read them from `JobContext.options`
    option_types: Mapping[str, type] = field(default_factory=dict)
    # whether this kind takes `Tags` in its create request
    taggable: bool = True
    # the operations the hooks call beyond create/describe/stop (botocore
    # names, e.g. "UpdateEndpoint"); `smrun iam-policy` grants exactly these, so a
    # hook that calls a new operation declares it here
    extra_operations: tuple[str, ...] = ()

    def phase(self, description: Description, state: Mapping[str, Any] | None = None) -> Phase:
        """Classify a Describe* response by the kind's terminal-state table."""
        if self.phase_hook is not None:
            return self.phase_hook(description, state or {})
        return self.phase_of(str(description.get(self.status_field, "")))

    def end_time(self, description: Description) -> datetime | None:
        """When the resource ended (or last changed, for kinds without an end)."""
        for name in (self.end_field, "LastModifiedTime"):
            value = description.get(name)
            if isinstance(value, datetime):
                return value
        return None

    def option_problems(self, options: Mapping[str, Any]) -> list[str]:
        """What is wrong with a job's ``options`` for this kind (nothing: an empty list)."""
        problems: list[str] = []
        known = ", ".join(sorted(self.option_types)) or "none"
        for name, value in options.items():
            expected = self.option_types.get(name)
            if expected is None:
                problems.append(f"kind {self.name!r} has no option {name!r} (options: {known})")
            elif not isinstance(value, expected) or (
                isinstance(value, bool) and expected is not bool  # YAML's yes is not a number
            ):
                problems.append(f"option {name!r} must be a {expected.__name__}, not {value!r}")
        return problems

    def phase_of(self, status: str) -> Phase:
        if status in self.success:
            return Phase.SUCCEEDED
        if status in self.stopped:
            return Phase.STOPPED
        if status in self.failure:
            return Phase.FAILED
        return Phase.RUNNING

    def default_log_sources(self, job_name: str) -> list[LogSource]:
        if self.log_group is None:
            return []
        return [LogSource(self.log_group, f"{job_name}/")]


def time_span(d: Description, start: str, end: str) -> tuple[dict[str, str], int | None]:
    """The ``start_time``/``end_time`` facts (ISO 8601) from the description
    members ``start`` and ``end``, and the whole seconds between them when both
    are there."""
    started, ended = d.get(start), d.get(end)
    facts: dict[str, str] = {}
    if isinstance(started, datetime):
        facts["start_time"] = started.isoformat()
    if isinstance(ended, datetime):
        facts["end_time"] = ended.isoformat()
    if isinstance(started, datetime) and isinstance(ended, datetime):
        return facts, max(0, round((ended - started).total_seconds()))
    return facts, None


def console_links(region: str, kind: Kind, name: str, console_path: str = "") -> dict[str, str]:
    """Links to a resource in the SageMaker console (``kind.console_path``
    unless ``console_path`` is given) and to its CloudWatch logs."""
    links: dict[str, str] = {}
    base = f"https://{region}.console.aws.amazon.com"
    path = console_path or kind.console_path
    if path:
        links["SageMaker console"] = f"{base}/sagemaker/home?region={region}#/{path}/{name}"
    if kind.log_group:
        links["CloudWatch logs"] = (
            f"{base}/cloudwatch/home?region={region}#logStream:group={kind.log_group};"
            f"prefix={name}/;streamFilter=typeLogStreamPrefix"
        )
    return links
