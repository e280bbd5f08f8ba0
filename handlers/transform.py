"""Batch transform jobs: everything special about them.

SageMaker refuses the create when the model does not exist yet; the step says
so in plain words (usually a missing ``after:`` on the model job). Each
instance logs to two streams, the container's and its ``/data-log`` (one line
per record); both are under ``{job}/``, and the data log's lines are labelled
``{instance}/data-log``. The v1 ``batch_transform`` component is at the bottom.
"""

from __future__ import annotations

from typing import Any

from smrun.errors import error_message, is_missing_model
from smrun.kind import JobContext, Kind, time_span
from smrun.types import Description, JobError, Request
from smrun.v1 import Args, Component, Input, InputType, Output, non_empty


def outputs(d: Description) -> dict[str, Any]:
    return {"output_location": d.get("TransformOutput", {}).get("S3OutputPath", "")}


def details(d: Description) -> dict[str, Any]:
    resources = d.get("TransformResources", {})
    facts: dict[str, Any] = {
        "model_name": d.get("ModelName", ""),
        "instance_type": resources.get("InstanceType", ""),
        "instance_count": int(resources.get("InstanceCount", 1) or 1),
    }
    times, seconds = time_span(d, "TransformStartTime", "TransformEndTime")
    facts.update(times)
    if seconds is not None:
        facts["transform_seconds"] = seconds
        facts["instance_seconds"] = seconds * facts["instance_count"]
    return facts


async def create(ctx: JobContext, request: Request) -> None:
    try:
        await ctx.call("sagemaker", "CreateTransformJob", **request)
    except Exception as error:
        if not is_missing_model(error):
            raise
        raise JobError(
            f"model {request['ModelName']!r} does not exist, so transform job {ctx.name} "
            f"was not created (SageMaker: {error_message(error)}); create the model first"
        ) from error


KIND = Kind(
    name="transform",
    console_path="transform-jobs",
    list_operation="ListTransformJobs",
    summaries_field="TransformJobSummaries",
    event_type="SageMaker Transform Job State Change",
    create="CreateTransformJob",
    describe="DescribeTransformJob",
    stop="StopTransformJob",
    name_field="TransformJobName",
    arn_field="TransformJobArn",
    end_field="TransformEndTime",
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


# ---------------------------------------------------------------------------
# the KFP v1 "batch_transform" component


def to_request(args: Args) -> Request:
    """The CreateTransformJob request for the v1 batch_transform component's arguments.

    As in v1: MaxConcurrentTransforms only when not 0 (0 lets SageMaker choose),
    MaxPayloadInMB always, DataProcessing always (JoinSource ``None`` unless
    asked), empty strings left out."""
    return {
        "ModelName": args["model_name"],
        "MaxPayloadInMB": args["max_payload"],
        "TransformInput": non_empty(
            DataSource={
                "S3DataSource": {"S3DataType": args["data_type"], "S3Uri": args["input_location"]}
            },
            ContentType=args["content_type"],
            CompressionType=args["compression_type"],
            SplitType=args["split_type"],
        ),
        "TransformOutput": non_empty(
            S3OutputPath=args["output_location"],
            Accept=args["accept"],
            AssembleWith=args["assemble_with"],
            KmsKeyId=args["output_encryption_key"],
        ),
        "TransformResources": non_empty(
            InstanceType=args["instance_type"],
            InstanceCount=args["instance_count"],
            VolumeKmsKeyId=args["resource_encryption_key"],
        ),
        "DataProcessing": non_empty(
            InputFilter=args["input_filter"],
            OutputFilter=args["output_filter"],
            JoinSource=args["join_source"],
        ),
        **non_empty(
            MaxConcurrentTransforms=args["max_concurrent"] or None,
            BatchStrategy=args["batch_strategy"],
            Environment=args["environment"],
        ),
    }


S, INT, OBJ = InputType.STRING, InputType.INTEGER, InputType.JSON_OBJECT

COMPONENT = Component(
    name="batch_transform",
    kind="transform",
    title="SageMaker - Batch Transformation",
    description="Batch Transformation Jobs in SageMaker",
    console_path="transform-jobs",
    to_request=to_request,
    inputs=(
        Input("job_name", S, "", "The name of the transform job."),
        Input("model_name", S, description="The name of the model that you want to use for "
              "the transform job."),
        Input("max_concurrent", INT, 0, "The maximum number of parallel requests that can be "
              "sent to each instance in a transform job."),
        Input("max_payload", INT, 6, "The maximum allowed size of the payload, in MB."),
        Input("batch_strategy", S, "", "The number of records to include in a mini-batch for "
              "an HTTP inference request.", choices=("MultiRecord", "SingleRecord")),
        Input("environment", OBJ, {}, "The dictionary of the environment variables to set in "
              "the Docker container. Up to 16 key-value entries in the map."),
        Input("input_location", S, description="The S3 location of the data source that is "
              "associated with a channel."),
        Input("data_type", S, "S3Prefix", "Data type of the input. Can be ManifestFile, "
              "S3Prefix, or AugmentedManifestFile.",
              choices=("ManifestFile", "S3Prefix", "AugmentedManifestFile")),
        Input("content_type", S, "", "The multipurpose internet mail extension (MIME) type of "
              "the data."),
        Input("split_type", S, "None", "The method to use to split the transform job data "
              "files into smaller batches.", choices=("None", "Line", "RecordIO", "TFRecord")),
        Input("compression_type", S, "None", "If the transform data is compressed, the "
              "specification of the compression type.", choices=("None", "Gzip")),
        Input("output_location", S, description="The Amazon S3 path where you want Amazon "
              "SageMaker to store the results of the transform job."),
        Input("accept", S, "", "The MIME type used to specify the output data."),
        Input("assemble_with", S, "", "Defines how to assemble the results of the transform "
              "job as a single S3 object. Either None or Line.", choices=("None", "Line")),
        Input("output_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt the model artifacts."),
        Input("input_filter", S, "", "A JSONPath expression used to select a portion of the "
              "input data to pass to the algorithm."),
        Input("output_filter", S, "", "A JSONPath expression used to select a portion of the "
              "joined dataset to save in the output file for a batch transform job."),
        Input("join_source", S, "None", "Specifies the source of the data to join with the "
              "transformed data.", choices=("None", "Input")),
        Input("instance_type", S, "ml.m4.xlarge", "The ML compute instance type for the "
              "transform job."),
        Input("instance_count", INT, 1, "The number of ML compute instances to use in the "
              "transform job."),
        Input("resource_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt data on the storage volume attached to the ML compute instance(s)."),
    ),
    outputs=(Output("output_location", "S3 URI of the transform job results."),),
)
