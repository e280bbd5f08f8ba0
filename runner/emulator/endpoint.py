"""Endpoint configs and endpoints: create, update, roll back, delete, on the clock.

Endpoint configs are synchronous: Create, Describe, Delete and List. Creating
one checks that the model of every production variant exists.

An endpoint moves through deployments. CreateEndpoint starts one: Creating,
then InService (or Failed). UpdateEndpoint (only from InService or
UpdateRollbackFailed) starts another: Updating, then InService on the new
config, or RollingBack and then InService on the OLD config with a
FailureReason (or UpdateRollbackFailed). While a deployment runs, DescribeEndpoint
shows it in ``PendingDeploymentSummary``; ``EndpointConfigName`` and
``ProductionVariants`` are those of the config being served. DeleteEndpoint is
refused while a deployment runs (``Cannot update in-progress endpoint``), as
SageMaker does; otherwise the endpoint is Deleting for a moment, then gone.
Deleting a config or a model never touches an endpoint that uses it.

Every instance of a deployment writes numbered lines to its own stream
``{variant}/{instance-id}`` of the group ``/aws/sagemaker/Endpoints/{endpoint}``
(``[blue/i-0a1b...] line 2/4: loading model m1``); the last line of each is
written when the deployment ends. An update starts new instances, with new ids.

Behaviour tags, read from the endpoint config being deployed and then from the
endpoint (the config's win; AddTags on either applies to the next deployment):

``smrun:emulator:duration``
    seconds a deployment (Creating or Updating) lasts (float, default 4).
``smrun:emulator:outcome``
    how creating the endpoint ends: ``InService`` (default) or ``Failed``.
``smrun:emulator:update-outcome``
    how an update to this config ends: ``InService`` (default), ``RollingBack``
    (back to the old config, InService, with FailureReason) or
    ``UpdateRollbackFailed``.
``smrun:emulator:failure-reason``
    the FailureReason of a failed deployment.
``smrun:emulator:rollback-duration``
    seconds spent RollingBack (default 1).
``smrun:emulator:log-lines``
    lines per instance and deployment (default 4; 0 writes no logs).
``smrun:emulator:delete-delay``
    seconds an endpoint stays Deleting (default 1).

Every change of EndpointStatus is announced (EventBridge, "SageMaker Endpoint
State Change") and moves the endpoint in the ListEndpoints index.

Instances count against the account's quotas (:mod:`smrun.emulator.quotas`):
each variant's InitialInstanceCount of its InstanceType. CreateEndpoint and
UpdateEndpoint are refused (ResourceLimitExceeded) when the config to deploy
would go over one; an update counts the new fleet on top of the one serving,
which is let go when the update ends (the new one if it was rolled back). A
failed creation lets its instances go when it fails, a deletion when the
endpoint is gone.

Errors are SageMaker's (all ValidationException): ``Cannot create already
existing endpoint configuration "<arn>".``, ``Could not find endpoint
configuration "<arn>".``, ``Cannot create already existing endpoint "<arn>".``,
``Could not find endpoint "<arn>".``, ``Could not find model "<arn>".``,
``Cannot update in-progress endpoint "<arn>".``; updating a Failed endpoint
is refused too (SageMaker allows only DeleteEndpoint then; the wording of that
message is this emulator's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from smrun.emulator.listing import ListIndex
from smrun.emulator.model import Models
from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.quotas import Demand
from smrun.emulator.resources import Result, SageMaker, StateChange, TagReader, paginate

DEFAULT_DURATION = 4.0
DEFAULT_ROLLBACK_DURATION = 1.0
DEFAULT_DELETE_DELAY = 1.0
DEFAULT_LOG_LINES = 4
CREATE_OUTCOMES = ("InService", "Failed")
UPDATE_OUTCOMES = ("InService", "RollingBack", "UpdateRollbackFailed")
IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
UPDATABLE = frozenset({"InService", "UpdateRollbackFailed"})
DETAIL_TYPE = "SageMaker Endpoint State Change"


def log_group(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def _seconds(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


@dataclass
class EndpointConfig:
    name: str
    arn: str
    request: Params
    created: float

    @property
    def variants(self) -> list[Params]:
        return list(self.request["ProductionVariants"])

    def demand(self) -> Demand:
        """The instances serving this config takes (serverless variants take none)."""
        return Demand.of(
            "endpoint",
            [
                (v["InstanceType"], int(v.get("InitialInstanceCount", 1)))
                for v in self.variants
                if "ServerlessConfig" not in v and "InstanceType" in v
            ],
        )


@dataclass
class Deployment:
    """One endpoint config being brought up on an endpoint."""

    config: EndpointConfig
    started: float
    serial: int  # the endpoint's n-th deployment: new instances get new ids
    images: dict[str, list[str]]  # variant -> images of its model, as of the deployment
    ended: bool = False

    def instances(self, endpoint: str, variant: Params) -> list[str]:
        count = 1 if "ServerlessConfig" in variant else int(variant.get("InitialInstanceCount", 1))
        return [
            "i-" + _digest(endpoint.lower(), variant["VariantName"], self.serial, n)[:17]
            for n in range(1, max(1, count) + 1)
        ]

    def variant_summaries(self, now: float, *, pending: bool) -> list[Result]:
        summaries = []
        for variant in self.config.variants:
            name = variant["VariantName"]
            summary: Result = {
                "VariantName": name,
                "DeployedImages": [
                    {
                        "SpecifiedImage": image,
                        "ResolvedImage": f"{image.split(':')[0]}@sha256:{_digest(image)}",
                        "ResolutionTime": self.started,
                    }
                    for image in self.images.get(name, [])
                ],
                "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
            }
            if "ServerlessConfig" in variant:
                summary["DesiredServerlessConfig"] = variant["ServerlessConfig"]
                if not pending:
                    summary["CurrentServerlessConfig"] = variant["ServerlessConfig"]
            else:
                count = int(variant.get("InitialInstanceCount", 1))
                summary["DesiredInstanceCount"] = count
                summary["CurrentInstanceCount"] = 0 if pending else count
            if pending:
                if "InstanceType" in variant:
                    summary["InstanceType"] = variant["InstanceType"]
                summary["VariantStatus"] = [{"Status": "Creating", "StartTime": self.started}]
            else:
                summary["CurrentWeight"] = summary["DesiredWeight"]
            summaries.append(summary)
        return summaries


@dataclass
class Endpoint:
    name: str
    arn: str
    config_name: str  # the config it serves (or is being created with)
    created: float
    status: str
    modified: float
    serving: Deployment | None = None  # the config answering requests
    pending: Deployment | None = None  # the config being deployed
    failure_reason: str | None = None
    deployments: int = 0
    deleted: bool = False
    deployment_config: Params | None = None
    history: list[tuple[float, str]] = field(default_factory=list)
    held: set[int] = field(default_factory=set)  # deployments holding instances, by serial

    def move(self, status: str, at: float) -> None:
        self.status = status
        self.modified = at
        self.history.append((at, status))


class Endpoints:
    """Endpoint configs and endpoints, and the operations on them."""

    def __init__(self, sagemaker: SageMaker) -> None:
        self.sagemaker = sagemaker
        self.configs: dict[str, EndpointConfig] = {}  # by lower-cased name
        self.endpoints: dict[str, Endpoint] = {}  # by lower-cased name
        self.index: ListIndex[Endpoint] = ListIndex(
            summaries="Endpoints",
            summary=lambda e, now: {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.created,
                "LastModifiedTime": e.modified,
                "EndpointStatus": e.status,
            },
            default_order="Descending",  # as ListEndpoints documents it
        )

    def install(self) -> None:
        for operation, handler in (
            ("CreateEndpointConfig", self.create_config),
            ("DescribeEndpointConfig", self.describe_config),
            ("DeleteEndpointConfig", self.delete_config),
            ("ListEndpointConfigs", self.list_configs),
            ("CreateEndpoint", self.create),
            ("DescribeEndpoint", self.describe),
            ("UpdateEndpoint", self.update),
            ("DeleteEndpoint", self.delete),
            ("ListEndpoints", self.list_endpoints),
        ):
            self.sagemaker.register(operation, handler)

    # -- lookups -------------------------------------------------------------

    @property
    def models(self) -> Models | None:
        models = self.sagemaker.kinds.get("model")
        return models if isinstance(models, Models) else None

    def exists(self, name: str) -> bool:
        return name.lower() in self.endpoints

    def config(self, name: str) -> EndpointConfig:
        found = self.configs.get(name.lower())
        if found is None:
            arn = self.sagemaker.arn("endpoint-config", name)
            raise ApiError("ValidationException", f'Could not find endpoint configuration "{arn}".')
        return found

    def endpoint(self, name: str) -> Endpoint:
        found = self.endpoints.get(name.lower())
        if found is None:
            arn = self.sagemaker.arn("endpoint", name)
            raise ApiError("ValidationException", f'Could not find endpoint "{arn}".')
        return found

    def _check_models(self, variants: list[Params]) -> dict[str, list[str]]:
        """Every variant's model must exist; returns each variant's images."""
        models = self.models
        images: dict[str, list[str]] = {}
        for variant in variants:
            model_name = variant.get("ModelName")
            if model_name is None:
                continue
            if models is None or not models.exists(model_name):
                arn = self.sagemaker.arn("model", model_name)
                raise ApiError("ValidationException", f'Could not find model "{arn}".')
            request = models.model(model_name).request
            containers = (
                [request["PrimaryContainer"]] if "PrimaryContainer" in request
                else request.get("Containers", [])
            )
            images[variant["VariantName"]] = [c["Image"] for c in containers if c.get("Image")]
        return images

    # -- endpoint configs ----------------------------------------------------

    def create_config(self, params: Params) -> Result:
        name = params["EndpointConfigName"]
        arn = self.sagemaker.arn("endpoint-config", name)
        if name.lower() in self.configs:
            raise ApiError(
                "ValidationException",
                f'Cannot create already existing endpoint configuration "{arn}".',
            )
        self._check_models(params["ProductionVariants"])
        stored = dict(params)
        stored["ProductionVariants"] = [
            {"InitialVariantWeight": 1.0, **v} if "ServerlessConfig" not in v else dict(v)
            for v in params["ProductionVariants"]
        ]
        self.configs[name.lower()] = EndpointConfig(name, arn, stored, self.sagemaker.now)
        self.sagemaker.add_resource(arn, params.get("Tags"))
        return {"EndpointConfigArn": arn}

    def describe_config(self, params: Params) -> Result:
        config = self.config(params["EndpointConfigName"])
        result = {k: v for k, v in config.request.items() if k != "Tags"}
        result.update(
            EndpointConfigName=config.name,
            EndpointConfigArn=config.arn,
            CreationTime=config.created,
        )
        return result

    def delete_config(self, params: Params) -> Result:
        config = self.config(params["EndpointConfigName"])
        del self.configs[config.name.lower()]
        self.sagemaker.tags.pop(config.arn, None)
        return {}

    def list_configs(self, params: Params) -> Result:
        summaries = [
            {
                "EndpointConfigName": c.name,
                "EndpointConfigArn": c.arn,
                "CreationTime": c.created,
            }
            for c in self.configs.values()
        ]
        return self._page(params, summaries, "EndpointConfigs", "EndpointConfigName", {})

    # -- endpoints -----------------------------------------------------------

    def _behaviour(self, endpoint: Endpoint, config: EndpointConfig) -> TagReader:
        tags = self.sagemaker.tags
        return self.sagemaker.behaviour(
            "endpoint", endpoint.name, [*tags.get(endpoint.arn, []), *tags.get(config.arn, [])])

    def create(self, params: Params) -> Result:
        name = params["EndpointName"]
        arn = self.sagemaker.arn("endpoint", name)
        if self.exists(name):
            raise ApiError(
                "ValidationException", f'Cannot create already existing endpoint "{arn}".'
            )
        config = self.config(params["EndpointConfigName"])
        images = self._check_models(config.variants)
        self.sagemaker.concurrency.admit(config.demand())
        now = self.sagemaker.now
        endpoint = Endpoint(name, arn, config.name, now, "Creating", now)
        endpoint.history.append((now, "Creating"))
        endpoint.deployment_config = params.get("DeploymentConfig")
        self.sagemaker.add_resource(arn, params.get("Tags"))
        behaviour = self._behaviour(endpoint, config)
        outcome = behaviour.choice("outcome", "InService", CREATE_OUTCOMES)
        duration = behaviour.number("duration", DEFAULT_DURATION, minimum=0.001)
        reason = behaviour.text(
            "failure-reason",
            f"The primary container for production variant {config.variants[0]['VariantName']} "
            "did not pass the ping health check. Please check CloudWatch logs for this endpoint.",
        )
        self.endpoints[name.lower()] = endpoint
        self.index.add(endpoint, name, now, endpoint.status, now)
        self._announce(endpoint)
        deployment = self._deploy(endpoint, config, images, duration, behaviour, outcome, reason)

        def settle() -> None:
            if endpoint.deleted or endpoint.pending is not deployment:
                return
            deployment.ended = True
            endpoint.pending = None
            at = deployment.started + duration
            if outcome == "InService":
                endpoint.serving = deployment
                self._move(endpoint, "InService", at)
            else:
                endpoint.failure_reason = reason
                self._move(endpoint, "Failed", at)

        self.sagemaker.scheduler.at(now + duration, settle)
        return {"EndpointArn": arn}

    def update(self, params: Params) -> Result:
        endpoint = self.endpoint(params["EndpointName"])
        if endpoint.status in IN_PROGRESS:
            raise ApiError(
                "ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".'
            )
        if endpoint.status not in UPDATABLE:
            raise ApiError(
                "ValidationException",
                f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.status}; '
                "delete it and create it again.",
            )
        config = self.config(params["EndpointConfigName"])
        images = self._check_models(config.variants)
        # the new fleet comes up while the old one serves: both count
        self.sagemaker.concurrency.admit(config.demand())
        now = self.sagemaker.now
        behaviour = self._behaviour(endpoint, config)
        outcome = behaviour.choice("update-outcome", "InService", UPDATE_OUTCOMES)
        duration = behaviour.number("duration", DEFAULT_DURATION, minimum=0.001)
        rollback = behaviour.number("rollback-duration", DEFAULT_ROLLBACK_DURATION, minimum=0.001)
        first = config.variants[0]["VariantName"]
        reason = behaviour.text(
            "failure-reason",
            f"Failed to update endpoint: the primary container for production variant {first} "
            "did not pass the ping health check. The endpoint was rolled back to its previous "
            "endpoint configuration.",
        )
        if "DeploymentConfig" in params:
            endpoint.deployment_config = params["DeploymentConfig"]
        self._move(endpoint, "Updating", now)
        deployment = self._deploy(endpoint, config, images, duration, behaviour, outcome, reason)
        end = now + duration

        def settle() -> None:
            if endpoint.deleted or endpoint.pending is not deployment:
                return
            if outcome == "InService":
                deployment.ended = True
                endpoint.pending = None
                endpoint.serving = deployment
                endpoint.config_name = config.name
                endpoint.failure_reason = None
                self._move(endpoint, "InService", end)
                return
            endpoint.failure_reason = reason
            self._move(endpoint, "RollingBack", end)

            def rolled_back() -> None:
                if endpoint.deleted or endpoint.pending is not deployment:
                    return
                deployment.ended = True
                endpoint.pending = None
                final = "InService" if outcome == "RollingBack" else "UpdateRollbackFailed"
                self._move(endpoint, final, end + rollback)

            self.sagemaker.scheduler.at(end + rollback, rolled_back)

        self.sagemaker.scheduler.at(end, settle)
        return {"EndpointArn": endpoint.arn}

    def _deploy(
        self,
        endpoint: Endpoint,
        config: EndpointConfig,
        images: dict[str, list[str]],
        duration: float,
        behaviour: TagReader,
        outcome: str,
        reason: str,
    ) -> Deployment:
        now = self.sagemaker.now
        end = now + duration
        endpoint.deployments += 1
        deployment = Deployment(config, now, endpoint.deployments, images)
        endpoint.pending = deployment
        key = (endpoint.arn, deployment.serial)
        self.sagemaker.concurrency.hold(key, endpoint.arn, config.demand())
        endpoint.held.add(deployment.serial)
        lines = behaviour.integer("log-lines", DEFAULT_LOG_LINES)
        ok = outcome == "InService"
        for variant in config.variants:
            model = variant.get("ModelName", "")
            for number, instance in enumerate(deployment.instances(endpoint.name, variant)):
                stream = f"{variant['VariantName']}/{instance}"
                for i in range(1, lines + 1):
                    # instances write a millisecond apart so a merge by time is unambiguous;
                    # the last lines are written as the deployment ends
                    at = now + duration * i / lines + number / 1000 if i < lines else end
                    if i == lines:
                        text = "ping health check passed; serving" if ok else f"ERROR {reason}"
                    elif i == 1:
                        text = f"starting the model server for model {model}"
                    else:
                        text = f"loading model {model} ({i - 1}/{lines - 2})"
                    message = f"[{stream}] line {i}/{lines}: {text}"
                    self.sagemaker.scheduler.at(
                        at, self._writer(endpoint, stream, at, message)
                    )
        return deployment

    def _writer(
        self, endpoint: Endpoint, stream: str, at: float, message: str
    ) -> Callable[[], None]:
        def write() -> None:
            if not endpoint.deleted:
                self.sagemaker.logs.put(
                    log_group(endpoint.name),
                    stream,
                    [(round(at * 1000), message)],
                    ingestion_time=round(at * 1000),
                )

        return write

    def _let_go(self, endpoint: Endpoint) -> None:
        """Free the instances of every deployment the endpoint no longer serves
        nor brings up (all of them once it is gone)."""
        deployments = () if endpoint.deleted else (endpoint.serving, endpoint.pending)
        kept = {d.serial for d in deployments if d is not None}
        for serial in endpoint.held - kept:
            self.sagemaker.concurrency.release((endpoint.arn, serial))
        endpoint.held &= kept

    def _move(self, endpoint: Endpoint, status: str, at: float) -> None:
        endpoint.move(status, at)
        self._let_go(endpoint)
        if self.index.item(endpoint.name) is endpoint:
            self.index.move(endpoint.name, status, at)
        self._announce(endpoint)

    def _announce(self, endpoint: Endpoint) -> None:
        at = endpoint.modified
        self.sagemaker.state_changed(
            StateChange(
                detail_type=DETAIL_TYPE,
                arn=endpoint.arn,
                at=at,
                describe="DescribeEndpoint",
                detail=lambda: self._describe(endpoint, at),
                # Deleting is the last change announced: the endpoint is then gone
                settled=endpoint.status not in IN_PROGRESS or endpoint.status == "Deleting",
            )
        )

    def describe(self, params: Params) -> Result:
        endpoint = self.endpoint(params["EndpointName"])
        return self._describe(endpoint, self.sagemaker.now)

    def _describe(self, endpoint: Endpoint, now: float) -> Result:
        result: Result = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointStatus": endpoint.status,
            "CreationTime": endpoint.created,
            "LastModifiedTime": endpoint.modified,
        }
        result["EndpointConfigName"] = endpoint.config_name
        if endpoint.serving is not None:
            result["ProductionVariants"] = endpoint.serving.variant_summaries(now, pending=False)
        if endpoint.pending is not None:
            result["PendingDeploymentSummary"] = {
                "EndpointConfigName": endpoint.pending.config.name,
                "ProductionVariants": endpoint.pending.variant_summaries(now, pending=True),
                "StartTime": endpoint.pending.started,
            }
        if endpoint.failure_reason:
            result["FailureReason"] = endpoint.failure_reason
        if endpoint.deployment_config is not None:
            result["LastDeploymentConfig"] = endpoint.deployment_config
        return result

    def delete(self, params: Params) -> Result:
        endpoint = self.endpoint(params["EndpointName"])
        if endpoint.status in IN_PROGRESS:
            raise ApiError(
                "ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".'
            )
        now = self.sagemaker.now
        delay = self._behaviour_of(endpoint).number("delete-delay", DEFAULT_DELETE_DELAY)
        endpoint.pending = None
        self._move(endpoint, "Deleting", now)

        def gone() -> None:
            endpoint.deleted = True
            self._let_go(endpoint)
            if self.endpoints.get(endpoint.name.lower()) is endpoint:
                del self.endpoints[endpoint.name.lower()]
                self.sagemaker.tags.pop(endpoint.arn, None)
            if self.index.item(endpoint.name) is endpoint:
                self.index.remove(endpoint.name)

        self.sagemaker.scheduler.at(now + delay, gone)
        return {}

    def _behaviour_of(self, endpoint: Endpoint) -> TagReader:
        return self.sagemaker.behaviour(
            "endpoint", endpoint.name, self.sagemaker.tags.get(endpoint.arn, []))

    def list_endpoints(self, params: Params) -> Result:
        return self.index.answer(params, self.sagemaker.now)

    def _page(
        self,
        params: Params,
        summaries: list[Result],
        member: str,
        name_member: str,
        other_sorts: dict[str, str],
    ) -> Result:
        contains = params.get("NameContains", "").lower()
        after = params.get("CreationTimeAfter")
        before = params.get("CreationTimeBefore")
        chosen = [
            s
            for s in summaries
            if contains in s[name_member].lower()
            and (after is None or s["CreationTime"] > _seconds(after))
            and (before is None or s["CreationTime"] < _seconds(before))
        ]
        sort_by = params.get("SortBy", "CreationTime")
        key: Callable[[Result], Any]
        if sort_by == "Name":
            key = lambda s: s[name_member]  # noqa: E731
        elif sort_by in other_sorts:
            key = lambda s: (s[other_sorts[sort_by]], s["CreationTime"], s[name_member])  # noqa: E731
        else:
            key = lambda s: (s["CreationTime"], s[name_member])  # noqa: E731
        page, token = paginate(
            chosen,
            key=key,
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            descending=params.get("SortOrder", "Descending") == "Descending",
        )
        result: Result = {member: page}
        if token is not None:
            result["NextToken"] = token
        return result


def install_kind(sagemaker: SageMaker) -> None:
    endpoints = Endpoints(sagemaker)
    endpoints.install()
    sagemaker.kinds["endpoint"] = endpoints
    sagemaker.kinds["endpoint_config"] = endpoints
