"""Endpoint configs and endpoints: everything special about deploying a model.

Deploying is three resources, three manifest jobs chained by references: a
``model`` (handlers/model.py), an ``endpoint_config`` (the CreateEndpointConfig
request, any number of production variants; synchronous, done once it
describes; an identical existing config is reused) and an ``endpoint`` (the
CreateEndpoint request), which succeeds when the endpoint is InService.

Create or update. An endpoint job whose endpoint already exists fails, as a
second CreateEndpoint would, unless the job says so with ``options:
{update: true}``: then the endpoint is updated in place to the job's
EndpointConfigName (UpdateEndpoint; CreateEndpoint's DeploymentConfig is passed
on, its Tags are not: an update can't change them) and the job follows the
update. Without the endpoint, ``update: true`` creates it. Once the update is
InService, the endpoint config it replaced is deleted, unless ``options:
{keep_replaced_config: true}``; only a config this job replaced, never after a
rollback.

Terminal states: InService succeeds, Failed and UpdateRollbackFailed fail. An
update that SageMaker rolls back ends InService too, on the old config: that is
a failure, with the FailureReason.

Endpoints can't be stopped. On cancellation the job tells what it leaves
behind; with ``on_cancel=delete-endpoints`` it deletes an endpoint it created
(SageMaker refuses while the endpoint is Creating, so it retries for up to
``stop_grace``). An endpoint it was updating existed before the run and is never
deleted.

Logs: group ``/aws/sagemaker/Endpoints/{endpoint}``, one stream
``{variant}/{instance-id}`` per instance; the job follows the variants of the
config it deploys, shown as ``variant:instance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from smrun.errors import describe, is_denied, is_in_progress, is_not_found
from smrun.handlers.model import differences, settled
from smrun.kind import JobContext, Kind
from smrun.settings import OnCancel
from smrun.types import Description, JobError, LogSource, Phase, Request
from smrun.v1 import (
    REQUIRED,
    Args,
    ArgumentError,
    Component,
    ComponentJob,
    Input,
    InputType,
    Output,
    non_empty,
)

SUCCESS = frozenset({"InService"})
# Deleting: someone is deleting the endpoint; it will never be InService
FAILURE = frozenset({"Failed", "UpdateRollbackFailed", "Deleting"})

# what makes two endpoint configs the same config
CONFIG_COMPARED = (
    "ProductionVariants",
    "ShadowProductionVariants",
    "DataCaptureConfig",
    "KmsKeyId",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
    "MetricsConfig",
)
VARIANT_DEFAULTS = {"InitialVariantWeight": 1.0}


def log_group(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def delete_command(endpoint: str) -> str:
    return f"aws sagemaker delete-endpoint --endpoint-name {endpoint}"


# --------------------------------------------------------------- endpoint configs


def adopt_config(description: Description, request: Request) -> bool:
    differ = differences(request, description, CONFIG_COMPARED, VARIANT_DEFAULTS)
    if differ:
        raise JobError(
            f"endpoint config {description.get('EndpointConfigName')} already exists and "
            f"differs from this request in {', '.join(differ)}; choose another "
            "EndpointConfigName (an update needs a new config)"
        )
    return True


def config_outputs(d: Description) -> dict[str, Any]:
    return {"endpoint_config_name": d.get("EndpointConfigName", "")}


def config_details(d: Description) -> dict[str, Any]:
    return {
        "variants": {
            v["VariantName"]: {
                "model": v.get("ModelName"),
                "instance_type": v.get("InstanceType"),
                "instances": v.get("InitialInstanceCount"),
            }
            for v in d.get("ProductionVariants", [])
        }
    }


CONFIG_KIND = Kind(
    name="endpoint_config",
    console_path="endpointConfig",
    create="CreateEndpointConfig",
    describe="DescribeEndpointConfig",
    name_field="EndpointConfigName",
    arn_field="EndpointConfigArn",
    status_field="",
    success=frozenset(),
    failure=frozenset(),
    phase_hook=settled,
    adopt=adopt_config,
    outputs=config_outputs,
    output_types={"endpoint_config_name": str},
    details=config_details,
)


# --------------------------------------------------------------- endpoints


def phase(d: Description, state: Mapping[str, Any]) -> Phase:
    """InService counts only on the config this job deploys: an update that was
    rolled back is InService on the old one, and has failed."""
    status = str(d.get("EndpointStatus", ""))
    if status in SUCCESS:
        wanted = state.get("config")
        if wanted is None or d.get("EndpointConfigName") == wanted:
            return Phase.SUCCEEDED
        if "modified_before" in state and d.get("LastModifiedTime") == state["modified_before"]:
            return Phase.RUNNING  # our update has not shown in the description yet
        return Phase.FAILED
    if status in FAILURE:
        return Phase.FAILED
    return Phase.RUNNING


async def create(ctx: JobContext, request: Request) -> None:
    ctx.state["config"] = request["EndpointConfigName"]
    await ctx.call("sagemaker", "CreateEndpoint", **request)
    ctx.state["created"] = True


async def update_in_place(ctx: JobContext, existing: Description) -> bool:
    """With ``update: true``, point the existing endpoint at this job's config."""
    wanted = str(ctx.request["EndpointConfigName"])
    ctx.state["config"] = wanted
    if not ctx.options.get("update"):
        return False  # a restarted create finds its own endpoint, or the name is taken
    name = ctx.name
    current = existing.get("EndpointConfigName")
    pending = (existing.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    if pending == wanted or (current == wanted and pending is None):
        # an earlier attempt of this job got this far; what it replaced is not known here
        ctx.notice(
            "info",
            f"endpoint {name} already {'deploys' if pending else 'serves'} endpoint config "
            f"{wanted}; following it (no endpoint config will be deleted)",
            endpoint=name, config=wanted,
        )
        return True
    params: dict[str, Any] = {"EndpointName": name, "EndpointConfigName": wanted}
    if "DeploymentConfig" in ctx.request:
        params["DeploymentConfig"] = ctx.request["DeploymentConfig"]
    await ctx.call("sagemaker", "UpdateEndpoint", **params)
    ctx.state["replaces"] = current
    ctx.state["modified_before"] = existing.get("LastModifiedTime")
    ctx.notice(
        "info",
        f"updating endpoint {name} in place: endpoint config {current} -> {wanted}",
        endpoint=name, old_config=current, config=wanted,
    )
    return True


async def log_sources(ctx: JobContext, d: Description) -> list[LogSource]:
    """The streams of the variants of the config this job deploys."""
    variants = await _deployed_variants(ctx)
    if not variants:  # the config can't be read: the variants the endpoint shows
        pending = (d.get("PendingDeploymentSummary") or {}).get("ProductionVariants") or []
        variants = [v["VariantName"] for v in [*pending, *d.get("ProductionVariants", [])]]
    group = log_group(ctx.name)
    return [LogSource(group, f"{v}/", label=v) for v in dict.fromkeys(variants)]


async def _deployed_variants(ctx: JobContext) -> list[str]:
    if "variants" not in ctx.state:
        config = ctx.state.get("config") or ctx.request.get("EndpointConfigName")
        try:
            described = await ctx.call(
                "sagemaker", "DescribeEndpointConfig", EndpointConfigName=config
            )
        except Exception as error:
            # deleted already: the endpoint's own variants say where its logs are
            if is_not_found(error):
                return []
            if not is_denied(error):
                raise
            # not allowed: say so once, and follow the endpoint's variants instead
            if not ctx.state.get("config_denied"):
                ctx.state["config_denied"] = True
                ctx.notice("warning", f"cannot read endpoint config {config} "
                           f"({describe(error)}); following the variants the endpoint shows")
            return []
        ctx.state["variants"] = [v["VariantName"] for v in described["ProductionVariants"]]
    return list(ctx.state["variants"])


async def finish(ctx: JobContext, d: Description) -> Description:
    """Explain a rollback; after a successful update, retire the replaced config."""
    result = dict(d)
    outcome = phase(d, ctx.state)
    status = d.get("EndpointStatus")
    wanted = ctx.state.get("config")
    if outcome is Phase.FAILED and status in SUCCESS:
        result["FailureReason"] = (
            f"the update to endpoint config {wanted} was rolled back; {ctx.name} still "
            f"serves {d.get('EndpointConfigName')}: {d.get('FailureReason') or 'no reason given'}"
        )
    elif status == "Deleting":
        result["FailureReason"] = f"endpoint {ctx.name} is being deleted"
    replaced = ctx.state.get("replaces")
    if outcome is Phase.SUCCEEDED and replaced and replaced != wanted:
        result["ReplacedEndpointConfig"] = await _retire(ctx, str(replaced))
    return result


async def _retire(ctx: JobContext, old: str) -> dict[str, Any]:
    if ctx.options.get("keep_replaced_config"):
        ctx.notice("info", f"kept endpoint config {old}, which this update replaced", config=old)
        return {"name": old, "deleted": False}
    if not ctx.state.get("retired"):
        try:
            await ctx.call("sagemaker", "DeleteEndpointConfig", EndpointConfigName=old)
            ctx.notice(
                "info",
                f"deleted endpoint config {old}: this job's update of endpoint {ctx.name} "
                "replaced it and is InService",
                config=old,
            )
        except Exception as error:
            if not is_not_found(error):
                ctx.notice("warning", f"could not delete endpoint config {old}: {describe(error)}")
                return {"name": old, "deleted": False}
        ctx.state["retired"] = True
    return {"name": old, "deleted": True}


async def on_cancel(ctx: JobContext, d: Description) -> str:
    name, status = ctx.name, d.get("EndpointStatus")
    if "replaces" in ctx.state:
        return (
            f"endpoint {name} is still {status} to endpoint config {ctx.state.get('config')}; "
            "it existed before this run and is left alone: SageMaker finishes the update or "
            "rolls it back"
        )
    if not ctx.state.get("created"):
        return f"endpoint {name} is still {status}; this job did not create it: left as it is"
    if ctx.settings.on_cancel is not OnCancel.DELETE_ENDPOINTS:
        return (
            f"endpoint {name} is still {status}; it keeps running (and billing) until "
            f"deleted: {delete_command(name)}"
        )
    with anyio.move_on_after(ctx.settings.stop_grace):
        while True:
            try:
                await ctx.call("sagemaker", "DeleteEndpoint", EndpointName=name)
                return f"deleted endpoint {name}, which was {status} when the run was cancelled"
            except Exception as error:
                if is_not_found(error):
                    return f"endpoint {name} is already gone"
                if not is_in_progress(error):
                    return (f"could not delete endpoint {name} ({describe(error)}); "
                            f"{delete_command(name)}")
            await anyio.sleep(ctx.settings.poll_min)
    return (
        f"endpoint {name} was still {status} after {ctx.settings.stop_grace:.0f}s and "
        f"SageMaker deletes no endpoint in progress; delete it later: {delete_command(name)}"
    )


def outputs(d: Description) -> dict[str, Any]:
    return {"endpoint_name": d.get("EndpointName", "")}


def details(d: Description) -> dict[str, Any]:
    facts: dict[str, Any] = {"endpoint_config": d.get("EndpointConfigName")}
    variants = {
        v["VariantName"]: {
            "instances": v.get("CurrentInstanceCount"),
            "weight": v.get("CurrentWeight"),
            "images": [i.get("ResolvedImage") or i.get("SpecifiedImage")
                       for i in v.get("DeployedImages", [])],
        }
        for v in d.get("ProductionVariants", [])
    }
    if variants:
        facts["variants"] = variants
    if "ReplacedEndpointConfig" in d:
        facts["replaced_config"] = d["ReplacedEndpointConfig"]
    return facts


KIND = Kind(
    name="endpoint",
    console_path="endpoints",
    list_operation="ListEndpoints",
    summaries_field="Endpoints",
    event_type="SageMaker Endpoint State Change",
    create="CreateEndpoint",
    describe="DescribeEndpoint",
    name_field="EndpointName",
    arn_field="EndpointArn",
    status_field="EndpointStatus",
    success=SUCCESS,
    failure=FAILURE,
    phase_hook=phase,
    create_hook=create,
    update_hook=update_in_place,
    log_sources=log_sources,
    logs_end=False,
    enrich=finish,
    cancel_hook=on_cancel,
    outputs=outputs,
    output_types={"endpoint_name": str},
    details=details,
    option_types={"update": bool, "keep_replaced_config": bool},
    extra_operations=(
        "UpdateEndpoint", "DescribeEndpointConfig", "DeleteEndpointConfig", "DeleteEndpoint",
    ),
)



# ---------------------------------------------------------------------------
# the KFP v1 "deploy" component: an endpoint config, then the endpoint

VARIANTS = (1, 2, 3)  # v1's fixed variant slots
ACCELERATORS = ("ml.eia1.medium", "ml.eia1.large", "ml.eia1.xlarge")
CONFIG_JOB = "endpoint-config"  # the key of the config job beside the endpoint's ("deploy")


def production_variant(args: Args, n: int) -> dict[str, Any]:
    """Variant ``n`` as v1 built it; an instance count of 0 means v1's default of 1."""
    weight_text = args[f"initial_variant_weight_{n}"]
    try:
        weight = float(weight_text)
    except ValueError:
        raise ArgumentError(
            f"initial_variant_weight_{n}", f"expected a number, got {weight_text!r}"
        ) from None
    return {
        "VariantName": args[f"variant_name_{n}"],
        "ModelName": args[f"model_name_{n}"],
        "InitialInstanceCount": args[f"initial_instance_count_{n}"] or 1,
        "InstanceType": args[f"instance_type_{n}"],
        "InitialVariantWeight": weight,
        **non_empty(AcceleratorType=args[f"accelerator_type_{n}"]),
    }


def deploy_jobs(args: Args) -> dict[str, ComponentJob]:
    """The CreateEndpointConfig and CreateEndpoint (or UpdateEndpoint) of v1's deploy.

    Variant 1 always, variants 2 and 3 when their model is named. With
    ``update_endpoint`` an existing endpoint is updated in place (and the config
    it served is deleted once the update is InService); v1 then always named the
    new config itself, so as not to collide with the one in use: so do we. The
    ``tags`` input goes on the endpoint, ``endpoint_config_tags`` on the config.
    """
    config: Request = {
        "ProductionVariants": [
            production_variant(args, n) for n in VARIANTS if n == 1 or args[f"model_name_{n}"]
        ],
        **non_empty(KmsKeyId=args["resource_encryption_key"]),
    }
    if args["endpoint_config_name"] and not args["update_endpoint"]:
        config["EndpointConfigName"] = args["endpoint_config_name"]
    tags = args["endpoint_config_tags"]
    if tags:
        config["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    endpoint: Request = {
        "EndpointConfigName": f"{{{{ jobs.{CONFIG_JOB}.outputs.endpoint_config_name }}}}"
    }
    return {
        CONFIG_JOB: ComponentJob("endpoint_config", config),
        "deploy": ComponentJob(
            "endpoint", endpoint, options={"update": True} if args["update_endpoint"] else {}
        ),
    }


S, INT, B, OBJ = InputType.STRING, InputType.INTEGER, InputType.BOOL, InputType.JSON_OBJECT


def _variant_inputs(n: int) -> tuple[Input, ...]:
    return (
        Input(f"variant_name_{n}", S, f"variant-name-{n}", "The name of the production variant."),
        Input(f"model_name_{n}", S, REQUIRED if n == 1 else "",
              "The model name used for endpoint deployment."),
        Input(f"initial_instance_count_{n}", INT, 1, "Number of instances to launch initially."),
        Input(f"instance_type_{n}", S, "ml.m4.xlarge", "The ML compute instance type."),
        # a String in v1's interface (a number as text)
        Input(f"initial_variant_weight_{n}", S, "1.0", "Determines initial traffic "
              "distribution among all of the models that you specify in the endpoint "
              "configuration."),
        Input(f"accelerator_type_{n}", S, "", "The size of the Elastic Inference (EI) instance "
              "to use for the production variant.", choices=ACCELERATORS),
    )


COMPONENT = Component(
    name="deploy",
    kind="endpoint",
    title="SageMaker - Deploy Model",
    description="Deploy Machine Learning Model Endpoint in SageMaker",
    name_input="endpoint_name",
    console_path="endpoints",
    to_jobs=deploy_jobs,
    inputs=(
        Input("endpoint_name", S, "", "The name of the endpoint."),
        Input("endpoint_config_name", S, "", "The name of the endpoint configuration. If an "
              "existing endpoint is being updated, a suffix is automatically added if this "
              "config name exists."),
        Input("endpoint_config_tags", OBJ, {}, "An array of key-value pairs, to categorize AWS "
              "resources."),
        Input("resource_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt data on the storage volume attached to the ML compute instance(s)."),
        Input("update_endpoint", B, False, "Update endpoint if it exists."),
        *(spec for n in VARIANTS for spec in _variant_inputs(n)),
    ),
    outputs=(Output("endpoint_name", "The created endpoint name."),),
)
