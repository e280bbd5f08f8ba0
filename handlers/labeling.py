"""Ground Truth labeling jobs: everything special about them.

A labeling job is a plain job (create, follow, stop); what it adds is its
outputs (the output manifest, and the final model of auto-labeling) and its
LabelCounters. ``active_learning_model_arn`` is an empty string unless the
job ran with ``LabelingJobAlgorithmsConfig`` and completed.

The v1 ``ground_truth`` component (at the bottom) builds the request from v1's
arguments; the built-in task types use the region's AWS-owned annotation
Lambda functions, a table of facts kept here.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from smrun.kind import Kind
from smrun.types import Description, Request
from smrun.v1 import (
    Args,
    ArgumentError,
    Component,
    Input,
    InputType,
    Output,
    non_empty,
)

# LabelCounters members as the summary names them
COUNTERS = {
    "TotalLabeled": "total_labeled",
    "HumanLabeled": "human_labeled",
    "MachineLabeled": "machine_labeled",
    "FailedNonRetryableError": "failed_non_retryable",
    "Unlabeled": "unlabeled",
}


def outputs(d: Description) -> dict[str, Any]:
    output = d.get("LabelingJobOutput") or {}
    return {
        "output_manifest_location": output.get("OutputDatasetS3Uri", ""),
        "active_learning_model_arn": output.get("FinalActiveLearningModelArn", ""),
    }


def details(d: Description) -> dict[str, Any]:
    counters = d.get("LabelCounters") or {}
    facts: dict[str, Any] = {
        "label_counters": {
            ours: int(counters[theirs]) for theirs, ours in COUNTERS.items() if theirs in counters
        }
    }
    if d.get("JobReferenceCode"):
        facts["job_reference_code"] = d["JobReferenceCode"]
    return facts


KIND = Kind(
    name="labeling",
    console_path="labeling-jobs",
    list_operation="ListLabelingJobs",
    summaries_field="LabelingJobSummaryList",
    event_type="SageMaker Ground Truth Labeling Job State Change",
    create="CreateLabelingJob",
    describe="DescribeLabelingJob",
    stop="StopLabelingJob",
    name_field="LabelingJobName",
    arn_field="LabelingJobArn",
    status_field="LabelingJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed"}),
    stopped=frozenset({"Stopped"}),
    log_group="/aws/sagemaker/LabelingJobs",
    outputs=outputs,
    output_types={"output_manifest_location": str, "active_learning_model_arn": str},
    details=details,
)


# ---------------------------------------------------------------------------
# the KFP v1 "ground_truth" component

# The AWS accounts that own Ground Truth's pre-annotation (PRE-<task>) and
# annotation-consolidation (ACS-<task>) Lambda functions of the built-in task
# types, by region (from the CreateLabelingJob API reference, as v1 had them).
ANNOTATION_ACCOUNTS = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}
# v1 task_type (any case) -> the suffix of the built-in Lambda functions
BUILT_IN_TASKS = {
    "bounding box": "BoundingBox",
    "image classification": "ImageMultiClass",
    "semantic segmentation": "SemanticSegmentation",
    "text classification": "TextMultiClass",
}
# the task types auto-labeling supports -> their labeling algorithm
AUTO_LABELING_ALGORITHMS = {
    "bounding box": "object-detection",
    "image classification": "image-classification",
    "text classification": "text-classification",
}
AUTO_LABELING_ACCOUNT = "027400017018"
PUBLIC_WORKFORCE_ACCOUNT = "394669845002"
WORKER_TYPES = ("public", "private", "vendor")


def annotation_functions(task: str, args: Args) -> tuple[str, str]:
    """The pre-annotation and consolidation Lambda ARNs of ``task``: the region's
    AWS-owned functions for a built-in task type, the given ones for ``custom``."""
    if task in BUILT_IN_TASKS:
        region = args["region"]
        account = ANNOTATION_ACCOUNTS.get(region)
        if account is None:
            raise ArgumentError(
                "task_type",
                f"Ground Truth's built-in {task} functions are not known for region {region} "
                f"(known: {', '.join(ANNOTATION_ACCOUNTS)}); use task_type custom with "
                "pre_human_task_function and post_human_task_function",
            )
        base = f"arn:aws:lambda:{region}:{account}:function"
        return f"{base}:PRE-{BUILT_IN_TASKS[task]}", f"{base}:ACS-{BUILT_IN_TASKS[task]}"
    if task == "custom":
        pre, post = args["pre_human_task_function"], args["post_human_task_function"]
        if not pre or not post:
            missing = "pre_human_task_function" if not pre else "post_human_task_function"
            raise ArgumentError(missing, "is required with task_type custom")
        return pre, post
    raise ArgumentError(
        "task_type", f"{args['task_type']!r} is not one of: {', '.join(BUILT_IN_TASKS)}, custom"
    )


def label_attribute_name(task: str, args: Args) -> str:
    """v1's rule: semantic segmentation labels end in ``-ref``, others end in neither
    ``-ref`` nor ``-metadata``; left empty, the label attribute is the job name."""
    name = args["label_attribute_name"]
    if not name:
        if not args["job_name"]:
            raise ArgumentError(
                "label_attribute_name", "is required when job_name is empty (it defaults to it)"
            )
        return str(args["job_name"])
    suffix = name.split("-")[-1]
    if task == "semantic segmentation" and suffix != "ref":
        raise ArgumentError("label_attribute_name", "must end in -ref for semantic segmentation")
    if task != "semantic segmentation" and suffix in ("ref", "metadata"):
        raise ArgumentError("label_attribute_name", "must not end in -ref or -metadata")
    return str(name)


def task_price(text: str) -> dict[str, int]:
    """``"0.036"`` (USD) as AmountInUsd; exact, to the tenth of a cent."""
    try:
        price = Decimal(text.strip())
    except InvalidOperation:
        raise ArgumentError("workforce_task_price", f"expected a price like 0.036, got {text!r}")\
            from None
    if not price.is_finite() or price < 0 or price != price.quantize(Decimal("0.001")):
        raise ArgumentError(
            "workforce_task_price", f"must be in USD to the tenth of a cent, got {text!r}"
        )
    tenths = int(price * 1000)
    return {"Dollars": tenths // 1000, "Cents": tenths // 10 % 100,
            "TenthFractionsOfACent": tenths % 10}


def human_task_config(task: str, worker_type: str, args: Args) -> dict[str, Any]:
    pre, post = annotation_functions(task, args)
    config: dict[str, Any] = {
        "UiConfig": {"UiTemplateS3Uri": args["ui_template"]},
        "PreHumanTaskLambdaArn": pre,
        "TaskTitle": args["title"],
        "TaskDescription": args["description"],
        "NumberOfHumanWorkersPerDataObject": args["num_workers_per_object"],
        "TaskTimeLimitInSeconds": args["time_limit"],
        "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": post},
        **non_empty(
            TaskAvailabilityLifetimeInSeconds=args["task_availibility"] or None,
            MaxConcurrentTaskCount=args["max_concurrent_tasks"] or None,
            TaskKeywords=[w.strip() for w in args["task_keywords"].split(",") if w.strip()],
        ),
    }
    if worker_type == "public":
        config["WorkteamArn"] = (
            f"arn:aws:sagemaker:{args['region']}:{PUBLIC_WORKFORCE_ACCOUNT}:"
            "workteam/public-crowd/default"
        )
        price = task_price(args["workforce_task_price"])
        config["PublicWorkforceTaskPrice"] = {"AmountInUsd": price}
    elif args["workteam_arn"]:
        config["WorkteamArn"] = args["workteam_arn"]
    else:
        raise ArgumentError("workteam_arn", f"is required with worker_type {worker_type}")
    return config


def to_request(args: Args) -> Request:
    """The CreateLabelingJob request for the v1 ground_truth component's arguments."""
    task = args["task_type"].strip().lower()
    worker_type = args["worker_type"].strip().lower()
    if worker_type not in WORKER_TYPES:
        raise ArgumentError(
            "worker_type", f"{args['worker_type']!r} is not one of {', '.join(WORKER_TYPES)}"
        )
    data_source: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"ManifestS3Uri": args["manifest_location"]}}
    }
    if worker_type == "public":  # content classifiers are for the public workforce only
        classifiers = [name for name, flag in (
            ("FreeOfAdultContent", args["no_adult_content"]),
            ("FreeOfPersonallyIdentifiableInformation", args["no_ppi"]),
        ) if flag]
        data_source["DataAttributes"] = {"ContentClassifiers": classifiers}
    request: Request = {
        "LabelAttributeName": label_attribute_name(task, args),
        "InputConfig": data_source,
        "OutputConfig": non_empty(
            S3OutputPath=args["output_location"], KmsKeyId=args["output_encryption_key"]
        ),
        "RoleArn": args["role"],
        "HumanTaskConfig": human_task_config(task, worker_type, args),
        **non_empty(LabelCategoryConfigS3Uri=args["label_category_config"]),
    }
    stopping = non_empty(
        MaxHumanLabeledObjectCount=args["max_human_labeled_objects"] or None,
        MaxPercentageOfInputDatasetLabeled=args["max_percent_objects"] or None,
    )
    if stopping:
        request["StoppingConditions"] = stopping
    if args["enable_auto_labeling"]:
        algorithm = AUTO_LABELING_ALGORITHMS.get(task)
        if algorithm is None:
            raise ArgumentError(
                "enable_auto_labeling",
                f"auto-labeling is for {', '.join(AUTO_LABELING_ALGORITHMS)} only, not {task}",
            )
        request["LabelingJobAlgorithmsConfig"] = {
            "LabelingJobAlgorithmSpecificationArn": (
                f"arn:aws:sagemaker:{args['region']}:{AUTO_LABELING_ACCOUNT}:"
                f"labeling-job-algorithm-specification/{algorithm}"
            ),
            **non_empty(
                InitialActiveLearningModelArn=args["initial_model_arn"],
                LabelingJobResourceConfig=non_empty(
                    VolumeKmsKeyId=args["resource_encryption_key"]
                ),
            ),
        }
    return request


S, INT, B = InputType.STRING, InputType.INTEGER, InputType.BOOL

COMPONENT = Component(
    name="ground_truth",
    kind="labeling",
    title="SageMaker - Ground Truth",
    description="Ground Truth Jobs in SageMaker",
    console_path="labeling-jobs/details",
    to_request=to_request,
    inputs=(
        Input("role", S, description="The Amazon Resource Name (ARN) that Amazon SageMaker "
              "assumes to perform tasks on your behalf."),
        Input("job_name", S, "", "The name of the labeling job."),
        Input("label_attribute_name", S, "", "The attribute name to use for the label in the "
              "output manifest file. Default is the job name."),
        Input("manifest_location", S, description="The Amazon S3 location of the manifest file "
              "that describes the input data objects."),
        Input("output_location", S, description="The Amazon S3 location to write output data."),
        Input("output_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt the model artifacts."),
        Input("task_type", S, description="Built in image classification, bounding box, text "
              "classification, or semantic segmentation, or custom. If custom, please provide "
              "pre- and post-labeling task lambda functions."),
        Input("worker_type", S, description="The workteam for data labeling, either public, "
              "private, or vendor."),
        Input("workteam_arn", S, "", "The ARN of the work team assigned to complete the tasks."),
        Input("no_adult_content", B, False, "If true, your data is free of adult content."),
        Input("no_ppi", B, False, "If true, your data is free of personally identifiable "
              "information."),
        Input("label_category_config", S, "", "The S3 URL of the JSON structured file that "
              "defines the categories used to label the data objects."),
        Input("max_human_labeled_objects", INT, 0, "The maximum number of objects that can be "
              "labeled by human workers."),
        Input("max_percent_objects", INT, 0, "The maximum percentatge of input data objects "
              "that should be labeled."),
        Input("enable_auto_labeling", B, False, "Enables auto-labeling, only for bounding box, "
              "text classification, and image classification."),
        Input("initial_model_arn", S, "", "The ARN of the final model used for a previous "
              "auto-labeling job."),
        Input("resource_encryption_key", S, "", "The AWS KMS key that Amazon SageMaker uses to "
              "encrypt data on the storage volume attached to the ML compute instance(s)."),
        Input("ui_template", S, description="The Amazon S3 bucket location of the UI template."),
        Input("pre_human_task_function", S, "", "The ARN of a Lambda function that is run "
              "before a data object is sent to a human worker."),
        Input("post_human_task_function", S, "", "The ARN of a Lambda function implements the "
              "logic for annotation consolidation."),
        Input("task_keywords", S, "", "Keywords used to describe the task so that workers on "
              "Amazon Mechanical Turk can discover the task."),
        Input("title", S, description="A title for the task for your human workers."),
        Input("description", S, description="A description of the task for your human "
              "workers."),
        Input("num_workers_per_object", INT, description="The number of human workers that "
              "will label an object."),
        Input("time_limit", INT, description="The amount of time that a worker has to complete "
              "a task in seconds"),
        # sic: v1's spelling, which pipelines use
        Input("task_availibility", INT, 0, "The length of time that a task remains available "
              "for labelling by human workers."),
        Input("max_concurrent_tasks", INT, 0, "The maximum number of data objects that can be "
              "labeled by human workers at the same time."),
        # a String in v1's interface
        Input("workforce_task_price", S, "0.000", "The price that you pay for each task "
              "performed by a public worker in USD. Specify to the tenth fractions of a cent. "
              "Format as '0.000'."),
    ),
    outputs=(
        Output("output_manifest_location", "The Amazon S3 bucket location of the manifest file "
               "for labeled data."),
        Output("active_learning_model_arn", "The ARN for the most recent Amazon SageMaker model "
               "trained as part of automated data labeling."),
    ),
)
