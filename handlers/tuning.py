"""Hyperparameter tuning jobs: everything special about them.

A tuning job runs child training jobs. Their logs are followed as they appear
(each line labelled with its child), at most ``Settings.tuning_log_tails``
children at a time, preferring the running and the most recent ones; a child
that drops out of that set is still read to its end, and one that ended before
it could be followed is taken up later, so no line is lost or repeated. The
outputs are those of the v1 component: the best child's name, hyperparameters
(without ``_tuning_objective_metric``), model artifacts and training image,
read from its DescribeTrainingJob.

The v1 ``hyperparameter_tuning`` component (at the bottom) builds the request
as v1 did; its training image or algorithm comes from the training handler's
rules (``image`` wins, else a built-in ``algorithm_name`` for the region).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smrun.errors import describe, is_aws_error
from smrun.handlers.training import algorithm_specification
from smrun.kind import JobContext, Kind
from smrun.types import Description, LogSource, Request
from smrun.v1 import (
    VPC_INPUTS,
    Args,
    ArgumentError,
    Component,
    Input,
    InputType,
    Output,
    non_empty,
    spot_fields,
    vpc_fields,
)

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
OBJECTIVE_KEY = "_tuning_objective_metric"
RUNNING = frozenset({"InProgress", "Stopping"})
# a key of our own on the enriched description: the best child's DescribeTrainingJob
BEST_JOB = "smrun:BestTrainingJobDescription"


def outputs(d: Description) -> dict[str, Any]:
    best = d.get("BestTrainingJob") or {}
    described = d.get(BEST_JOB) or {}
    algorithm = described.get("AlgorithmSpecification", {})
    hyperparameters = described.get("HyperParameters") or best.get("TunedHyperParameters", {})
    return {
        "hpo_job_name": d.get("HyperParameterTuningJobName", ""),
        "best_job_name": best.get("TrainingJobName", ""),
        "best_hyperparameters": {k: v for k, v in hyperparameters.items() if k != OBJECTIVE_KEY},
        "model_artifact_url": described.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),
        "training_image": algorithm.get("TrainingImage") or algorithm.get("AlgorithmName", ""),
    }


def details(d: Description) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if d.get("TrainingJobStatusCounters"):
        facts["training_jobs"] = dict(d["TrainingJobStatusCounters"])
    metric = (d.get("BestTrainingJob") or {}).get("FinalHyperParameterTuningJobObjectiveMetric")
    if metric:
        facts["best_objective"] = {
            "metric": metric.get("MetricName"),
            "type": metric.get("Type"),
            "value": metric.get("Value"),
        }
    return facts


async def enrich(ctx: JobContext, d: Description) -> Description:
    """Describe the best child: its hyperparameters, artifacts and image are outputs."""
    best = (d.get("BestTrainingJob") or {}).get("TrainingJobName")
    if not best:
        return d
    try:
        described = await ctx.call("sagemaker", "DescribeTrainingJob", TrainingJobName=best)
    except Exception as error:
        if not is_aws_error(error):
            raise
        ctx.notice("warning", f"cannot describe the best training job {best} "
                   f"({describe(error)}); its outputs are missing")
        return d
    algorithm = described.get("AlgorithmSpecification", {})
    if not algorithm.get("TrainingImage") and algorithm.get("AlgorithmName"):
        # an algorithm resource's image is in its training specification
        try:
            found = await ctx.call(
                "sagemaker", "DescribeAlgorithm", AlgorithmName=algorithm["AlgorithmName"]
            )
        except Exception as error:
            if not is_aws_error(error):
                raise
            ctx.notice("warning", f"cannot describe algorithm {algorithm['AlgorithmName']} "
                       f"({describe(error)}); the training_image output is its name")
            found = {}
        image = found.get("TrainingSpecification", {}).get("TrainingImage")
        if image:
            algorithm = {**algorithm, "TrainingImage": image}
            described = {**described, "AlgorithmSpecification": algorithm}
    return {**d, BEST_JOB: described}


def choose_tails(
    children: Sequence[Mapping[str, Any]], drained: set[str], limit: int, *, final: bool
) -> list[str]:
    """Which children's logs to follow now, from ListTrainingJobsForHyperParameterTuningJob
    summaries (any order); ``drained`` are the children followed at some point
    after they ended (the follower reads a dropped source to its end).

    Running children first, newest first; then ended children not drained yet
    (their lines are owed), oldest first; then the most recent of the rest; up
    to ``limit``. Once the tuning job has ended, every owed child is taken."""
    newest = sorted(children, key=lambda c: (c["CreationTime"], c["TrainingJobName"]), reverse=True)
    running = [c["TrainingJobName"] for c in newest if c["TrainingJobStatus"] in RUNNING]
    ended = [c["TrainingJobName"] for c in newest if c["TrainingJobStatus"] not in RUNNING]
    owed = [name for name in reversed(ended) if name not in drained]
    rest = [name for name in ended if name in drained]
    if final:
        limit = max(limit, len(running) + len(owed))
    return [*running, *owed, *rest][:limit]


async def list_children(ctx: JobContext) -> list[dict[str, Any]]:
    children: list[dict[str, Any]] = []
    params: dict[str, Any] = {"HyperParameterTuningJobName": ctx.name, "MaxResults": 100}
    while True:
        page = await ctx.call("sagemaker", "ListTrainingJobsForHyperParameterTuningJob", **params)
        children.extend(page.get("TrainingJobSummaries", []))
        if not page.get("NextToken"):
            return children
        params["NextToken"] = page["NextToken"]


async def log_sources(ctx: JobContext, d: Description) -> list[LogSource]:
    """The children to follow now; asks SageMaker only when the counters moved."""
    state = ctx.state
    final = str(d.get("HyperParameterTuningJobStatus")) not in RUNNING
    counters = (dict(d.get("TrainingJobStatusCounters") or {}), final)
    if state.get("counters") != counters:
        try:
            children = await list_children(ctx)
        except Exception as error:
            if not is_aws_error(error):
                raise
            ctx.notice("warning", f"cannot list the training jobs of {ctx.name} "
                       f"({describe(error)}); asking again at the next status poll")
            children = None
        if children is not None:
            state["counters"] = counters
            known: set[str] = state.setdefault("known", set())
            for child in children:
                if child["TrainingJobName"] not in known:
                    known.add(child["TrainingJobName"])
                    ctx.notice(
                        "info",
                        f"training job {child['TrainingJobName']} started",
                        child=child["TrainingJobName"],
                    )
            drained: set[str] = state.setdefault("drained", set())
            tails = choose_tails(children, drained, ctx.settings.tuning_log_tails, final=final)
            ended = {
                c["TrainingJobName"] for c in children if c["TrainingJobStatus"] not in RUNNING
            }
            drained.update(ended.intersection(tails))
            state["tails"] = tails
    return [
        LogSource(TRAINING_LOG_GROUP, f"{child}/", label=child) for child in state.get("tails", [])
    ]


KIND = Kind(
    name="tuning",
    console_path="hyper-tuning-jobs",
    list_operation="ListHyperParameterTuningJobs",
    summaries_field="HyperParameterTuningJobSummaries",
    event_type="SageMaker HyperParameter Tuning Job State Change",
    role_field="TrainingJobDefinition.RoleArn",
    create="CreateHyperParameterTuningJob",
    describe="DescribeHyperParameterTuningJob",
    stop="StopHyperParameterTuningJob",
    name_field="HyperParameterTuningJobName",
    arn_field="HyperParameterTuningJobArn",
    end_field="HyperParameterTuningEndTime",
    status_field="HyperParameterTuningJobStatus",
    success=frozenset({"Completed"}),
    # DeleteFailed never changes by itself; Deleting ends in "not found"
    failure=frozenset({"Failed", "DeleteFailed"}),
    stopped=frozenset({"Stopped"}),
    max_name_length=32,
    outputs=outputs,
    output_types={
        "hpo_job_name": str,
        "best_job_name": str,
        "best_hyperparameters": dict,
        "model_artifact_url": str,
        "training_image": str,
    },
    details=details,
    log_sources=log_sources,
    enrich=enrich,
    extra_operations=(
        "ListTrainingJobsForHyperParameterTuningJob", "DescribeTrainingJob", "DescribeAlgorithm",
    ),
)


# ---------------------------------------------------------------------------
# the KFP v1 "hyperparameter_tuning" component


def static_hyperparameters(args: Args) -> dict[str, str]:
    """v1 wanted strings; numbers are turned into text, anything else is refused."""
    values: dict[str, str] = {}
    for key, value in args["static_parameters"].items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ArgumentError(
                "static_parameters", f"the value of {key!r} must be a string, got {value!r}"
            )
        values[str(key)] = str(value)
    return values


def warm_start_config(args: Args) -> dict[str, Any]:
    """``warm_start_type`` and ``parent_hpo_jobs`` go together, or not at all."""
    kind, parents = args["warm_start_type"], args["parent_hpo_jobs"]
    if not kind and not parents:
        return {}
    if not kind:
        raise ArgumentError(
            "warm_start_type", "give IdenticalDataAndAlgorithm or TransferLearning "
            "together with parent_hpo_jobs"
        )
    if not parents:
        raise ArgumentError("parent_hpo_jobs", f"warm start {kind} needs at least one parent job")
    return {
        "WarmStartConfig": {
            "WarmStartType": kind,
            "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": name} for name in parents
            ],
        }
    }


def to_request(args: Args) -> Request:
    """The CreateHyperParameterTuningJob request for the v1 component's arguments."""
    if not args["channels"]:
        raise ArgumentError("channels", "at least one input channel is required")
    definition: dict[str, Any] = {
        "AlgorithmSpecification": algorithm_specification(args),
        "RoleArn": args["role"],
        "InputDataConfig": args["channels"],
        "OutputDataConfig": non_empty(
            S3OutputPath=args["output_location"], KmsKeyId=args["output_encryption_key"]
        ),
        "ResourceConfig": non_empty(
            InstanceType=args["instance_type"],
            # v1 fell back to its template's 1 for a 0
            InstanceCount=args["instance_count"] or 1,
            VolumeSizeInGB=args["volume_size"] or 1,
            VolumeKmsKeyId=args["resource_encryption_key"],
        ),
        "EnableNetworkIsolation": args["network_isolation"],
        "EnableInterContainerTrafficEncryption": args["traffic_encryption"],
        **spot_fields(args),
        **non_empty(StaticHyperParameters=static_hyperparameters(args)),
    }
    definition.update(vpc_fields(args))
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": args["strategy"],
            "HyperParameterTuningJobObjective": {
                "Type": args["metric_type"],
                "MetricName": args["metric_name"],
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": args["max_num_jobs"],
                "MaxParallelTrainingJobs": args["max_parallel_jobs"],
            },
            "ParameterRanges": non_empty(
                IntegerParameterRanges=args["integer_parameters"],
                ContinuousParameterRanges=args["continuous_parameters"],
                CategoricalParameterRanges=args["categorical_parameters"],
            ),
            "TrainingJobEarlyStoppingType": args["early_stopping_type"],
        },
        "TrainingJobDefinition": definition,
        **warm_start_config(args),
    }


S, INT, B = InputType.STRING, InputType.INTEGER, InputType.BOOL
OBJ, ARR, CSV = InputType.JSON_OBJECT, InputType.JSON_ARRAY, InputType.CSV_LIST

COMPONENT = Component(
    name="hyperparameter_tuning",
    kind="tuning",
    title="SageMaker - Hyperparameter Tuning",
    description="Hyperparameter Tuning Jobs in SageMaker",
    spot=True,
    console_path="hyper-tuning-jobs",
    to_request=to_request,
    inputs=(
        Input("job_name", S, "", "The name of the tuning job. Must be unique within the same "
              "AWS account and AWS region."),
        Input("role", S, description="The Amazon Resource Name (ARN) that Amazon SageMaker "
              "assumes to perform tasks on your behalf."),
        Input("image", S, "", "The registry path of the Docker image that contains the "
              "training algorithm."),
        Input("algorithm_name", S, "", "The name of the resource algorithm to use for the "
              "hyperparameter tuning job."),
        Input("training_input_mode", S, "File", "The input mode that the algorithm supports. "
              "File or Pipe.", choices=("File", "Pipe", "FastFile")),
        Input("metric_definitions", OBJ, {}, "The dictionary of name-regex pairs specify the "
              "metrics that the algorithm emits."),
        Input("strategy", S, "Bayesian", "How hyperparameter tuning chooses the combinations "
              "of hyperparameter values to use for the training job it launches.",
              choices=("Bayesian", "Random", "Hyperband", "Grid")),
        Input("metric_name", S, description="The name of the metric to use for the objective "
              "metric."),
        Input("metric_type", S, description="Whether to minimize or maximize the objective "
              "metric.", choices=("Maximize", "Minimize")),
        Input("early_stopping_type", S, "Off", "Whether to minimize or maximize the objective "
              "metric.", choices=("Off", "Auto")),
        Input("static_parameters", OBJ, {}, "The values of hyperparameters that do not change "
              "for the tuning job."),
        Input("integer_parameters", ARR, [], "The array of IntegerParameterRange objects that "
              "specify ranges of integer hyperparameters that you want to search."),
        Input("continuous_parameters", ARR, [], "The array of ContinuousParameterRange objects "
              "that specify ranges of continuous hyperparameters that you want to search."),
        Input("categorical_parameters", ARR, [], "The array of CategoricalParameterRange "
              "objects that specify ranges of categorical hyperparameters that you want to "
              "search."),
        Input("channels", ARR, description="A list of dicts specifying the input channels. "
              "Must have at least one."),
        Input("output_location", S, description="The Amazon S3 path where you want Amazon "
              "SageMaker to store the results of the transform job."),
        Input("output_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt the model artifacts."),
        Input("instance_type", S, "ml.m4.xlarge", "The ML compute instance type."),
        Input("instance_count", INT, 1, "The number of ML compute instances to use in each "
              "training job."),
        Input("volume_size", INT, 30, "The size of the ML storage volume that you want to "
              "provision."),
        Input("max_num_jobs", INT, description="The maximum number of training jobs that a "
              "hyperparameter tuning job can launch."),
        Input("max_parallel_jobs", INT, description="The maximum number of concurrent training "
              "jobs that a hyperparameter tuning job can launch."),
        Input("resource_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt data on the storage volume attached to the ML compute instance(s)."),
        *VPC_INPUTS,
        Input("network_isolation", B, True, "Isolates the training container."),
        Input("traffic_encryption", B, False, "Encrypts all communications between ML compute "
              "instances in distributed training."),
        Input("warm_start_type", S, "", 'Specifies either "IdenticalDataAndAlgorithm" or '
              '"TransferLearning"', choices=("IdenticalDataAndAlgorithm", "TransferLearning")),
        Input("parent_hpo_jobs", CSV, [], "List of previously completed or stopped "
              "hyperparameter tuning jobs to be used as a starting point."),
    ),
    outputs=(
        Output("hpo_job_name", "The name of the hyper parameter tuning job."),
        Output("model_artifact_url", "The output model artifacts S3 url."),
        Output("best_job_name", "Best training job in the hyper parameter tuning job."),
        Output("best_hyperparameters", "The resulting tuned hyperparameters.", OBJ),
        Output("training_image", "The registry path of the Docker image that contains the "
               "training algorithm."),
    ),
)
