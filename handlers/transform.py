"""Batch transform jobs: everything special about them.

SageMaker refuses the create when the model does not exist yet; the step says
so in plain words (usually a missing ``after:`` on the model job). Each
instance logs to two streams, the container's and its ``/data-log`` (one line
per record); both are under ``{job}/``, and the data log's lines are labelled
``{instance}/data-log``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from runner.aws import error_code
from runner.job import JobContext, JobError
from runner.kind import Description, Kind, Request


def outputs(d: Description) -> dict[str, Any]:
    return {"output_location": d.get("TransformOutput", {}).get("S3OutputPath", "")}


def details(d: Description) -> dict[str, Any]:
    resources = d.get("TransformResources", {})
    facts: dict[str, Any] = {
        "model_name": d.get("ModelName", ""),
        "instance_type": resources.get("InstanceType", ""),
        "instance_count": int(resources.get("InstanceCount", 1) or 1),
    }
    started, ended = d.get("TransformStartTime"), d.get("TransformEndTime")
    if isinstance(started, datetime):
        facts["start_time"] = started.isoformat()
    if isinstance(ended, datetime):
        facts["end_time"] = ended.isoformat()
    if isinstance(started, datetime) and isinstance(ended, datetime):
        seconds = max(0, round((ended - started).total_seconds()))
        facts["transform_seconds"] = seconds
        facts["instance_seconds"] = seconds * facts["instance_count"]
    return facts


def is_missing_model(error: ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) == "ValidationException" and "could not find model" in message


async def create(ctx: JobContext, request: Request) -> None:
    try:
        await ctx.call("sagemaker", "CreateTransformJob", **request)
    except ClientError as error:
        if not is_missing_model(error):
            raise
        message = error.response["Error"]["Message"]
        raise JobError(
            f"model {request['ModelName']!r} does not exist, so transform job {ctx.name} "
            f"was not created (SageMaker: {message}); create the model first"
        ) from error


KIND = Kind(
    name="transform",
    create="CreateTransformJob",
    describe="DescribeTransformJob",
    stop="StopTransformJob",
    list_op="ListTransformJobs",
    name_field="TransformJobName",
    status_field="TransformJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed"}),
    stopped=frozenset({"Stopped"}),
    log_group="/aws/sagemaker/TransformJobs",
    outputs=outputs,
    output_types={"output_location": str},
    details=details,
    create_hook=create,
)
