"""Typed builders of the Create* requests, one per built-in kind.

Each function takes the members a job commonly needs as keyword arguments
(snake_case) and returns the request in the API's own shape: PascalCase
members, as boto3 and the SageMaker API reference have them. The result is
what :meth:`Runner.submit` takes (``runner.submit(key, kind, request)``,
``kind`` being the function's name) and what a manifest's ``request:`` holds:

```python
from smrun import Runner, requests

request = requests.training(
    image="382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
    role="arn:aws:iam::123456789012:role/SageMakerExecution",
    instance_type="ml.m5.large",
    output_path="s3://my-bucket/mnist/output",
    inputs={"train": "s3://my-bucket/mnist/train"},
    hyperparameters={"k": 10, "feature_dim": 784},
)
async with Runner() as runner:
    job = await runner.submit("kmeans", "training", request)
    result = await job.wait()
```

The builders are thin. They refuse at once only what the API would refuse
later and Python makes easy to write (a string where a list of strings is
meant, a spot wait shorter than the run, both or neither of two alternatives);
the rest is validated against botocore's service model when a manifest is
loaded (:meth:`Manifest.from_jobs`), and by boto3 when the request is sent.
They never look anything up in the account. Common to all of them:

* ``name``: the resource name. Left out (None), the request has no name
  member and the engine names the resource from the run and the job's key,
  the same name every time the run is attached to again.
* ``tags``: the resource's tags, key to value (``Tags`` as a list of
  ``{"Key": ..., "Value": ...}``).
* ``extra``: any other members of the request, in the API's shape, merged
  last: where both the built request and ``extra`` hold a mapping, ``extra``'s
  members are merged into it member by member; anything else in ``extra`` (a
  list, a string, a number) replaces what was built. So
  ``extra={"ResourceConfig": {"VolumeKmsKeyId": key}}`` adds one member to the
  built ``ResourceConfig``, and ``extra={"Tags": [...]}`` replaces the tags.

Where the API takes one of a few words, the argument's type is a
:data:`~typing.Literal` of those words (e.g. :data:`InputMode`); the values
are checked against botocore's enums by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "AssembleWith",
    "BatchStrategy",
    "Compression",
    "ContentClassifier",
    "ContinuousRange",
    "EarlyStopping",
    "InputMode",
    "IntegerRange",
    "ObjectiveType",
    "ProcessingInputMode",
    "S3DataType",
    "ScalingType",
    "SplitType",
    "TuningStrategy",
    "UploadMode",
    "endpoint",
    "endpoint_config",
    "labeling",
    "model",
    "processing",
    "training",
    "transform",
    "tuning",
    "workteam",
]

# ---------------------------------------------------------------------------
# the API's small enums (tests/test_requests.py checks them against botocore)

InputMode = Literal["File", "Pipe", "FastFile"]
"""How a training job reads its input channels (``TrainingInputMode``)."""

S3DataType = Literal["S3Prefix", "ManifestFile", "AugmentedManifestFile"]
"""What an S3 input URI names: a prefix, or a manifest listing the objects."""

Compression = Literal["None", "Gzip"]
"""How input data is compressed."""

ProcessingInputMode = Literal["File", "Pipe"]
"""How a processing job reads its S3 inputs (``S3InputMode``)."""

UploadMode = Literal["EndOfJob", "Continuous"]
"""When a processing job's outputs are uploaded (``S3UploadMode``)."""

SplitType = Literal["None", "Line", "RecordIO", "TFRecord"]
"""How a transform job splits an input object into records."""

BatchStrategy = Literal["MultiRecord", "SingleRecord"]
"""How many records a transform job sends per request to the model."""

AssembleWith = Literal["None", "Line"]
"""How a transform job joins the results of one input object."""

TuningStrategy = Literal["Bayesian", "Random", "Hyperband", "Grid"]
"""How a tuning job chooses the hyperparameters of its next training job."""

ObjectiveType = Literal["Maximize", "Minimize"]
"""Whether a tuning job looks for the highest or the lowest objective metric."""

EarlyStopping = Literal["Off", "Auto"]
"""Whether a tuning job stops training jobs that are unlikely to do better."""

ScalingType = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]
"""The scale on which a tuning job searches a numeric hyperparameter range."""

ContentClassifier = Literal["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"]
"""What a labeling job's data is declared free of (needed for a public workforce)."""

IntegerRange = tuple[int, int] | tuple[int, int, ScalingType]
"""An integer hyperparameter's range: ``(min, max)`` or ``(min, max, scaling)``."""

ContinuousRange = tuple[float, float] | tuple[float, float, ScalingType]
"""A continuous hyperparameter's range: ``(min, max)`` or ``(min, max, scaling)``."""

# where a processing job's inputs and outputs are, in its container
PROCESSING_INPUT_DIR = "/opt/ml/processing/input"
PROCESSING_OUTPUT_DIR = "/opt/ml/processing/output"

# SageMaker's own default run time limit (one day)
DEFAULT_MAX_RUNTIME = 86_400
DEFAULT_VOLUME_GB = 30

Values = Mapping[str, str | int | float]

# ---------------------------------------------------------------------------
# training


def training(
    *,
    image: str,
    role: str,
    instance_type: str,
    output_path: str,
    instance_count: int = 1,
    volume_gb: int = DEFAULT_VOLUME_GB,
    inputs: Mapping[str, str] | None = None,
    input_mode: InputMode = "File",
    hyperparameters: Values | None = None,
    metrics: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    max_runtime: int = DEFAULT_MAX_RUNTIME,
    spot: bool = False,
    max_wait: int | None = None,
    checkpoint_path: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateTrainingJob`` request (kind ``training``).

    Args:
        image: the training image's URI (``AlgorithmSpecification.TrainingImage``).
        role: the ARN of the IAM role the job runs as (``RoleArn``).
        instance_type: e.g. ``"ml.m5.large"``.
        output_path: the S3 URI under which the model artifacts are written.
        instance_count: how many instances the job runs on.
        volume_gb: the size of each instance's storage volume.
        inputs: channel name to S3 prefix (``InputDataConfig``), e.g.
            ``{"train": "s3://bucket/train"}``.
        input_mode: how the channels are read.
        hyperparameters: name to value; numbers are given to the API as text.
        metrics: metric name to the regular expression that finds its value
            in the logs (``MetricDefinitions``).
        environment: environment variables of the training container.
        max_runtime: seconds the job may run (``MaxRuntimeInSeconds``).
        spot: managed spot training (``EnableManagedSpotTraining``).
        max_wait: spot only: seconds the job may wait for spot capacity and
            run, at least ``max_runtime`` (which it is by default).
        checkpoint_path: the S3 URI where the job's checkpoints are kept
            (``CheckpointConfig``); spot jobs resume from it.
        name: ``TrainingJobName``; left out, the engine names the job.
        tags: the job's tags.
        extra: other members, merged last (see the module's description).

    Example:
        ```python
        request = requests.training(
            image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            role="arn:aws:iam::123456789012:role/SageMakerExecution",
            instance_type="ml.m5.xlarge",
            instance_count=2,
            output_path="s3://my-bucket/abalone/output",
            inputs={"train": "s3://my-bucket/abalone/train"},
            hyperparameters={"num_round": 50, "objective": "reg:squarederror"},
            spot=True,
            max_wait=7200,
            checkpoint_path="s3://my-bucket/abalone/checkpoints",
        )
        job = await runner.submit("xgboost", "training", request)
        ```
    """
    request = _training_job(
        image=image, role=role, instance_type=instance_type, output_path=output_path,
        instance_count=instance_count, volume_gb=volume_gb, inputs=inputs,
        input_mode=input_mode, metrics=metrics, environment=environment,
        max_runtime=max_runtime, spot=spot, max_wait=max_wait, checkpoint_path=checkpoint_path,
    )
    request.update(_some(HyperParameters=_text(hyperparameters, "hyperparameters")))
    return _finish(request, "TrainingJobName", name, tags, extra)


def _training_job(
    *, image: str, role: str, instance_type: str, output_path: str, instance_count: int,
    volume_gb: int, inputs: Mapping[str, str] | None, input_mode: InputMode,
    metrics: Mapping[str, str] | None, environment: Mapping[str, str] | None,
    max_runtime: int, spot: bool, max_wait: int | None, checkpoint_path: str | None,
) -> dict[str, Any]:
    """What a training job is given, alone or as a tuning job's definition."""
    return {
        "AlgorithmSpecification": _algorithm(image, input_mode, metrics),
        "RoleArn": role,
        **_some(InputDataConfig=_channels(inputs)),
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": _resources(instance_type, instance_count, volume_gb),
        **_some(Environment=_mapping(environment)),
        **_limits(max_runtime, spot, max_wait, checkpoint_path),
    }


# ---------------------------------------------------------------------------
# processing


def processing(
    *,
    image: str,
    role: str,
    instance_type: str,
    instance_count: int = 1,
    volume_gb: int = DEFAULT_VOLUME_GB,
    inputs: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    input_mode: ProcessingInputMode = "File",
    upload_mode: UploadMode = "EndOfJob",
    entrypoint: Sequence[str] | None = None,
    arguments: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
    max_runtime: int = DEFAULT_MAX_RUNTIME,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateProcessingJob`` request (kind ``processing``).

    Each input is downloaded to ``/opt/ml/processing/input/<name>`` in the
    container and each output uploaded from ``/opt/ml/processing/output/<name>``;
    other places, or other sources than S3, are for ``extra``
    (``ProcessingInputs``, ``ProcessingOutputConfig``).

    Args:
        image: the processing image's URI (``AppSpecification.ImageUri``).
        role: the ARN of the IAM role the job runs as (``RoleArn``).
        instance_type: e.g. ``"ml.m5.xlarge"``.
        instance_count: how many instances the job runs on.
        volume_gb: the size of each instance's storage volume.
        inputs: input name to S3 prefix.
        outputs: output name to S3 prefix.
        input_mode: how the inputs are read.
        upload_mode: when the outputs are uploaded.
        entrypoint: the container's entry point, e.g. ``["python3", "run.py"]``.
        arguments: the arguments given to the entry point.
        environment: environment variables of the container.
        max_runtime: seconds the job may run (``MaxRuntimeInSeconds``).
        name: ``ProcessingJobName``; left out, the engine names the job.
        tags: the job's tags.
        extra: other members, merged last (see the module's description).

    Example:
        ```python
        request = requests.processing(
            image="123456789012.dkr.ecr.us-east-1.amazonaws.com/prep:1",
            role="arn:aws:iam::123456789012:role/SageMakerExecution",
            instance_type="ml.m5.xlarge",
            inputs={"raw": "s3://my-bucket/raw"},
            outputs={"train": "s3://my-bucket/prepared/train"},
            entrypoint=["python3", "/opt/program/prepare.py"],
            arguments=["--split", "0.8"],
        )
        job = await runner.submit("prepare", "processing", request)
        ```
    """
    request: dict[str, Any] = {
        **_some(ProcessingInputs=[
            {
                "InputName": input_name,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": f"{PROCESSING_INPUT_DIR}/{input_name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": input_mode,
                },
            }
            for input_name, uri in (inputs or {}).items()
        ]),
        **_some(ProcessingOutputConfig={"Outputs": [
            {
                "OutputName": output_name,
                "S3Output": {
                    "S3Uri": uri,
                    "LocalPath": f"{PROCESSING_OUTPUT_DIR}/{output_name}",
                    "S3UploadMode": upload_mode,
                },
            }
            for output_name, uri in outputs.items()
        ]} if outputs else None),
        "ProcessingResources": {
            "ClusterConfig": _resources(instance_type, instance_count, volume_gb),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "AppSpecification": _some(
            ImageUri=image,
            ContainerEntrypoint=_strings(entrypoint, "entrypoint"),
            ContainerArguments=_strings(arguments, "arguments"),
        ),
        **_some(Environment=_mapping(environment)),
        "RoleArn": role,
    }
    return _finish(request, "ProcessingJobName", name, tags, extra)


# ---------------------------------------------------------------------------
# batch transform


def transform(
    *,
    model_name: str,
    input_uri: str,
    output_path: str,
    instance_type: str,
    instance_count: int = 1,
    data_type: S3DataType = "S3Prefix",
    content_type: str | None = None,
    split_type: SplitType | None = None,
    compression: Compression | None = None,
    accept: str | None = None,
    assemble_with: AssembleWith | None = None,
    batch_strategy: BatchStrategy | None = None,
    max_payload_mb: int | None = None,
    max_concurrent: int | None = None,
    environment: Mapping[str, str] | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateTransformJob`` request (kind ``transform``): batch inference
    with a model over the objects in S3.

    Args:
        model_name: the SageMaker model (e.g. a ``model`` job's
            ``{{ jobs.<key>.outputs.model_name }}`` in a manifest).
        input_uri: the S3 prefix (or manifest) of the input objects.
        output_path: the S3 URI under which the results are written.
        instance_type: e.g. ``"ml.m5.large"``.
        instance_count: how many instances the job runs on.
        data_type: what ``input_uri`` names.
        content_type: the MIME type of the input (``ContentType``).
        split_type: how an input object is split into records.
        compression: how the input objects are compressed.
        accept: the MIME type of the results (``Accept``).
        assemble_with: how the results of one object are joined.
        batch_strategy: records per request to the model.
        max_payload_mb: the largest request to the model (``MaxPayloadInMB``).
        max_concurrent: parallel requests per instance (``MaxConcurrentTransforms``).
        environment: environment variables of the model's container.
        name: ``TransformJobName``; left out, the engine names the job.
        tags: the job's tags.
        extra: other members, merged last (see the module's description).

    Example:
        ```python
        request = requests.transform(
            model_name="churn-model",
            input_uri="s3://my-bucket/churn/batch-input",
            output_path="s3://my-bucket/churn/predictions",
            instance_type="ml.m5.large",
            content_type="text/csv",
            split_type="Line",
            assemble_with="Line",
        )
        job = await runner.submit("score", "transform", request)
        ```
    """
    request: dict[str, Any] = {
        "ModelName": model_name,
        **_some(
            MaxConcurrentTransforms=max_concurrent,
            MaxPayloadInMB=max_payload_mb,
            BatchStrategy=batch_strategy,
            Environment=_mapping(environment),
        ),
        "TransformInput": _some(
            DataSource={"S3DataSource": {"S3DataType": data_type, "S3Uri": input_uri}},
            ContentType=content_type,
            CompressionType=compression,
            SplitType=split_type,
        ),
        "TransformOutput": _some(
            S3OutputPath=output_path, Accept=accept, AssembleWith=assemble_with
        ),
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
    }
    return _finish(request, "TransformJobName", name, tags, extra)


# ---------------------------------------------------------------------------
# hyperparameter tuning


def tuning(
    *,
    image: str,
    role: str,
    instance_type: str,
    output_path: str,
    objective_metric: str,
    objective_type: ObjectiveType,
    max_jobs: int,
    max_parallel: int = 1,
    integer_ranges: Mapping[str, IntegerRange] | None = None,
    continuous_ranges: Mapping[str, ContinuousRange] | None = None,
    categorical_ranges: Mapping[str, Sequence[str]] | None = None,
    strategy: TuningStrategy = "Bayesian",
    early_stopping: EarlyStopping | None = None,
    instance_count: int = 1,
    volume_gb: int = DEFAULT_VOLUME_GB,
    inputs: Mapping[str, str] | None = None,
    input_mode: InputMode = "File",
    static_hyperparameters: Values | None = None,
    metrics: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    max_runtime: int = DEFAULT_MAX_RUNTIME,
    spot: bool = False,
    max_wait: int | None = None,
    checkpoint_path: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateHyperParameterTuningJob`` request (kind ``tuning``) with one
    training job definition.

    The training jobs' arguments (``image``, ``role``, ``instance_type``,
    ``output_path``, ``instance_count``, ``volume_gb``, ``inputs``,
    ``input_mode``, ``metrics``, ``environment``, ``max_runtime``, ``spot``,
    ``max_wait``, ``checkpoint_path``) are those of :func:`training`; they make
    ``TrainingJobDefinition``, and the limits are per training job. A tuning
    job's name is at most 32 characters.

    Args:
        objective_metric: the metric the search optimizes: one of ``metrics``,
            or one a built-in algorithm reports (e.g. ``"validation:rmse"``).
        objective_type: whether to look for its highest or its lowest value.
        max_jobs: how many training jobs the search runs at most.
        max_parallel: how many of them run at once.
        integer_ranges: hyperparameter to ``(min, max)`` or ``(min, max, scaling)``.
        continuous_ranges: hyperparameter to ``(min, max)`` or ``(min, max, scaling)``.
        categorical_ranges: hyperparameter to the values to try.
        strategy: how the next hyperparameters are chosen.
        early_stopping: whether training jobs unlikely to do better are stopped.
        static_hyperparameters: the hyperparameters every training job gets.
        name: ``HyperParameterTuningJobName``; left out, the engine names the job.
        tags: the job's tags.
        extra: other members, merged last (see the module's description).

    Example:
        ```python
        request = requests.tuning(
            image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            role="arn:aws:iam::123456789012:role/SageMakerExecution",
            instance_type="ml.m5.xlarge",
            output_path="s3://my-bucket/abalone/tuning",
            inputs={"train": "s3://my-bucket/abalone/train",
                    "validation": "s3://my-bucket/abalone/validation"},
            static_hyperparameters={"num_round": 50, "objective": "reg:squarederror"},
            objective_metric="validation:rmse",
            objective_type="Minimize",
            integer_ranges={"max_depth": (2, 10)},
            continuous_ranges={"eta": (0.01, 0.5, "Logarithmic")},
            max_jobs=20,
            max_parallel=4,
        )
        job = await runner.submit("search", "tuning", request)
        ```
    """
    ranges = _some(
        IntegerParameterRanges=[_range(n, r) for n, r in (integer_ranges or {}).items()],
        ContinuousParameterRanges=[_range(n, r) for n, r in (continuous_ranges or {}).items()],
        CategoricalParameterRanges=[
            {"Name": n, "Values": _strings(values, f"categorical_ranges[{n!r}]")}
            for n, values in (categorical_ranges or {}).items()
        ],
    )
    config = _some(
        Strategy=strategy,
        HyperParameterTuningJobObjective={"Type": objective_type, "MetricName": objective_metric},
        ResourceLimits={
            "MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": max_parallel,
        },
        ParameterRanges=ranges,
        TrainingJobEarlyStoppingType=early_stopping,
    )
    definition = _training_job(
        image=image, role=role, instance_type=instance_type, output_path=output_path,
        instance_count=instance_count, volume_gb=volume_gb, inputs=inputs,
        input_mode=input_mode, metrics=metrics, environment=environment,
        max_runtime=max_runtime, spot=spot, max_wait=max_wait, checkpoint_path=checkpoint_path,
    )
    definition.update(
        _some(StaticHyperParameters=_text(static_hyperparameters, "static_hyperparameters")))
    request = {"HyperParameterTuningJobConfig": config, "TrainingJobDefinition": definition}
    return _finish(request, "HyperParameterTuningJobName", name, tags, extra)


# ---------------------------------------------------------------------------
# hosting: model, endpoint config, endpoint


def model(
    *,
    image: str,
    role: str,
    model_data: str | None = None,
    environment: Mapping[str, str] | None = None,
    network_isolation: bool = False,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateModel`` request (kind ``model``) with one container
    (``PrimaryContainer``).

    Args:
        image: the inference image's URI.
        role: the ARN of the IAM role the model runs as (``ExecutionRoleArn``).
        model_data: the S3 URI of the model artifacts (``ModelDataUrl``), e.g.
            a training job's ``{{ jobs.<key>.outputs.model_artifact_url }}``.
        environment: environment variables of the container.
        network_isolation: run the container without network access.
        name: ``ModelName``; left out, the engine names the model.
        tags: the model's tags.
        extra: other members, merged last (see the module's description).

    Example:
        ```python
        request = requests.model(
            image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            role="arn:aws:iam::123456789012:role/SageMakerExecution",
            model_data=result.outputs["model_artifact_url"],
        )
        job = await runner.submit("model", "model", request)
        ```
    """
    request: dict[str, Any] = {
        "PrimaryContainer": _some(
            Image=image, ModelDataUrl=model_data, Environment=_mapping(environment)
        ),
        "ExecutionRoleArn": role,
    }
    if network_isolation:
        request["EnableNetworkIsolation"] = True
    return _finish(request, "ModelName", name, tags, extra)


def endpoint_config(
    *,
    model_name: str,
    instance_type: str,
    instance_count: int = 1,
    variant_name: str = "AllTraffic",
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateEndpointConfig`` request (kind ``endpoint_config``) with one
    production variant that serves a model on instances.

    More variants, or serverless ones, are for ``extra``
    (``{"ProductionVariants": [...]}`` replaces the built one).

    Args:
        model_name: the SageMaker model the variant serves.
        instance_type: e.g. ``"ml.m5.large"``.
        instance_count: the variant's instances at first (``InitialInstanceCount``).
        variant_name: the variant's name.
        name: ``EndpointConfigName``; left out, the engine names the config.
        tags: the config's tags.
        extra: other members, merged last (see the module's description).

    Example:
        ```python
        request = requests.endpoint_config(model_name="churn-model", instance_type="ml.m5.large")
        job = await runner.submit("config", "endpoint_config", request)
        ```
    """
    variant = {
        "VariantName": variant_name,
        "ModelName": model_name,
        "InitialInstanceCount": instance_count,
        "InstanceType": instance_type,
    }
    return _finish({"ProductionVariants": [variant]}, "EndpointConfigName", name, tags, extra)


def endpoint(
    *,
    config_name: str,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateEndpoint`` request (kind ``endpoint``): an endpoint that
    serves an endpoint config; the job succeeds once it is InService.

    To move an existing endpoint to a new config rather than fail, submit the
    job with ``options={"update": True}`` (see :mod:`smrun.handlers.endpoint`).

    Args:
        config_name: the endpoint config to deploy (``EndpointConfigName``).
        name: ``EndpointName``; left out, the engine names the endpoint.
        tags: the endpoint's tags.
        extra: other members, merged last (see the module's description), e.g.
            ``DeploymentConfig``.

    Example:
        ```python
        request = requests.endpoint(config_name="churn-config-v2", name="churn")
        job = await runner.submit("serve", "endpoint", request, options={"update": True})
        ```
    """
    return _finish({"EndpointConfigName": config_name}, "EndpointName", name, tags, extra)


# ---------------------------------------------------------------------------
# Ground Truth: labeling jobs and work teams


def labeling(
    *,
    role: str,
    manifest_uri: str,
    output_path: str,
    label_attribute_name: str,
    workteam_arn: str,
    task_title: str,
    task_description: str,
    ui_template_uri: str | None = None,
    human_task_ui_arn: str | None = None,
    pre_human_task_lambda: str | None = None,
    annotation_consolidation_lambda: str | None = None,
    label_categories_uri: str | None = None,
    workers_per_object: int = 1,
    task_time_limit: int = 300,
    task_availability: int | None = None,
    max_concurrent_tasks: int | None = None,
    task_keywords: Sequence[str] | None = None,
    content_classifiers: Sequence[ContentClassifier] | None = None,
    max_labeled_objects: int | None = None,
    max_percent_labeled: int | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateLabelingJob`` request (kind ``labeling``): a Ground Truth job
    that has a work team label the objects of an input manifest.

    The workers' UI is a Liquid template in S3 (``ui_template_uri``) or a
    human task UI (``human_task_ui_arn``): exactly one of them.

    Args:
        role: the ARN of the IAM role the job runs as (``RoleArn``).
        manifest_uri: the S3 URI of the input manifest.
        output_path: the S3 URI under which the labels are written.
        label_attribute_name: the attribute that holds the labels in the
            output manifest.
        workteam_arn: the team that labels (e.g. a ``workteam`` job's
            ``{{ jobs.<key>.outputs.workteam_arn }}``).
        task_title: the title workers see.
        task_description: the description workers see.
        ui_template_uri: the S3 URI of the task's UI template.
        human_task_ui_arn: the ARN of a human task UI.
        pre_human_task_lambda: the ARN of the Lambda function that prepares
            each object for the workers.
        annotation_consolidation_lambda: the ARN of the Lambda function that
            joins the workers' answers.
        label_categories_uri: the S3 URI of the label category configuration.
        workers_per_object: how many workers label each object.
        task_time_limit: seconds a worker has for one task.
        task_availability: seconds a task stays available to workers.
        max_concurrent_tasks: how many objects are out to workers at once.
        task_keywords: words by which workers find the task.
        content_classifiers: what the data is declared free of.
        max_labeled_objects: stop after this many objects are labeled by people.
        max_percent_labeled: stop after this percentage of the input is labeled.
        name: ``LabelingJobName``; left out, the engine names the job.
        tags: the job's tags.
        extra: other members, merged last (see the module's description), e.g.
            ``LabelingJobAlgorithmsConfig`` for automated labeling.

    Example:
        ```python
        request = requests.labeling(
            role="arn:aws:iam::123456789012:role/SageMakerExecution",
            manifest_uri="s3://my-bucket/images/input.manifest",
            output_path="s3://my-bucket/images/labels",
            label_attribute_name="category",
            workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team",
            ui_template_uri="s3://my-bucket/images/template.liquid",
            pre_human_task_lambda="arn:aws:lambda:us-east-1:432418664414:function:PRE-ImageMultiClass",
            annotation_consolidation_lambda=(
                "arn:aws:lambda:us-east-1:432418664414:function:ACS-ImageMultiClass"
            ),
            label_categories_uri="s3://my-bucket/images/categories.json",
            task_title="What is in the picture?",
            task_description="Choose the category of the image",
        )
        job = await runner.submit("label", "labeling", request)
        ```
    """
    ui = _some(UiTemplateS3Uri=ui_template_uri, HumanTaskUiArn=human_task_ui_arn)
    if len(ui) != 1:
        raise ValueError("give the workers' UI as ui_template_uri or human_task_ui_arn, "
                         "exactly one of them")
    input_config: dict[str, Any] = {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest_uri}}}
    classifiers = _strings(content_classifiers, "content_classifiers")
    if classifiers:
        input_config["DataAttributes"] = {"ContentClassifiers": classifiers}
    consolidation = annotation_consolidation_lambda
    human_task = _some(
        WorkteamArn=workteam_arn,
        UiConfig=ui,
        PreHumanTaskLambdaArn=pre_human_task_lambda,
        TaskKeywords=_strings(task_keywords, "task_keywords"),
        TaskTitle=task_title,
        TaskDescription=task_description,
        NumberOfHumanWorkersPerDataObject=workers_per_object,
        TaskTimeLimitInSeconds=task_time_limit,
        TaskAvailabilityLifetimeInSeconds=task_availability,
        MaxConcurrentTaskCount=max_concurrent_tasks,
        AnnotationConsolidationConfig=(
            {"AnnotationConsolidationLambdaArn": consolidation} if consolidation else None
        ),
    )
    request: dict[str, Any] = {
        "LabelAttributeName": label_attribute_name,
        "InputConfig": input_config,
        "OutputConfig": {"S3OutputPath": output_path},
        "RoleArn": role,
        **_some(
            LabelCategoryConfigS3Uri=label_categories_uri,
            StoppingConditions=_some(
                MaxHumanLabeledObjectCount=max_labeled_objects,
                MaxPercentageOfInputDatasetLabeled=max_percent_labeled,
            ),
        ),
        "HumanTaskConfig": human_task,
    }
    return _finish(request, "LabelingJobName", name, tags, extra)


def workteam(
    *,
    description: str,
    user_pool: str | None = None,
    client_id: str | None = None,
    user_groups: Sequence[str] | None = None,
    oidc_groups: Sequence[str] | None = None,
    workforce_name: str | None = None,
    notification_topic: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``CreateWorkteam`` request (kind ``workteam``): a private work team.

    Its members are Amazon Cognito user groups (``user_groups``, all of the
    workforce's ``user_pool`` and app ``client_id``: one member definition each)
    or groups of an OIDC identity provider (``oidc_groups``), not both.

    Args:
        description: what the team is for.
        user_pool: the Cognito user pool of the workforce.
        client_id: the Cognito app client of the workforce.
        user_groups: the Cognito user groups that make the team.
        oidc_groups: the OIDC groups that make the team.
        workforce_name: the private workforce the team belongs to (the
            account's default one when left out).
        notification_topic: the ARN of the SNS topic that tells workers of
            new tasks.
        name: ``WorkteamName``; left out, the engine names the team.
        tags: the team's tags.
        extra: other members, merged last (see the module's description).

    Example:
        ```python
        request = requests.workteam(
            description="Image labelers",
            user_pool="us-east-1_abcd1234",
            client_id="1example23456789",
            user_groups=["labelers"],
            name="image-labelers",
        )
        job = await runner.submit("team", "workteam", request)
        ```
    """
    cognito = _strings(user_groups, "user_groups")
    oidc = _strings(oidc_groups, "oidc_groups")
    if cognito and oidc:
        raise ValueError("a team's members are Cognito user groups or OIDC groups, not both")
    if cognito:
        if user_pool is None or client_id is None:
            raise ValueError("Cognito user groups need the workforce's user_pool and client_id")
        members: list[dict[str, Any]] = [
            {"CognitoMemberDefinition": {
                "UserPool": user_pool, "UserGroup": group, "ClientId": client_id,
            }}
            for group in cognito
        ]
    elif oidc:
        members = [{"OidcMemberDefinition": {"Groups": oidc}}]
    else:
        raise ValueError("a team needs members: user_groups (Cognito) or oidc_groups (OIDC)")
    request: dict[str, Any] = {
        **_some(WorkforceName=workforce_name),
        "MemberDefinitions": members,
        "Description": description,
        **_some(NotificationConfiguration=(
            {"NotificationTopicArn": notification_topic} if notification_topic else None
        )),
    }
    return _finish(request, "WorkteamName", name, tags, extra)


# ---------------------------------------------------------------------------
# the parts


def _some(**members: Any) -> dict[str, Any]:
    """The members that are given: None and empty lists or mappings are left out
    (the API's lists and maps of these requests take at least one item, or mean
    nothing when empty)."""
    return {k: v for k, v in members.items() if v is not None and v != [] and v != {}}


def _finish(
    request: dict[str, Any],
    name_field: str,
    name: str | None,
    tags: Mapping[str, str] | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if name is not None:
        request = {name_field: name, **request}
    if tags:
        request["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    if extra:
        _merge(request, extra)
    return request


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge(current, value)
        else:
            into[key] = _plain(value)


def _plain(value: Any) -> Any:
    """A copy in plain dicts and lists, so that the request shares nothing with
    the caller's values."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _mapping(values: Mapping[str, str] | None) -> dict[str, str] | None:
    return dict(values) if values else None


def _text(values: Values | None, what: str) -> dict[str, str] | None:
    """Values the API takes as text; numbers are written out, anything else refused."""
    if not values:
        return None
    text: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(f"{what}: the value of {key!r} must be a string or a number, "
                            f"not {value!r}")
        text[key] = str(value)
    return text


def _strings(values: Sequence[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):  # a string is a sequence of strings: one letter each
        raise TypeError(f"{what} must be a list of strings, not the string {values!r}")
    return list(values) or None


def _algorithm(image: str, input_mode: str, metrics: Mapping[str, str] | None) -> dict[str, Any]:
    return _some(
        TrainingImage=image,
        TrainingInputMode=input_mode,
        MetricDefinitions=[{"Name": n, "Regex": regex} for n, regex in (metrics or {}).items()],
    )


def _channels(inputs: Mapping[str, str] | None) -> list[dict[str, Any]]:
    return [
        {
            "ChannelName": channel,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
        }
        for channel, uri in (inputs or {}).items()
    ]


def _resources(instance_type: str, instance_count: int, volume_gb: int) -> dict[str, Any]:
    return {
        "InstanceType": instance_type,
        "InstanceCount": instance_count,
        "VolumeSizeInGB": volume_gb,
    }


def _limits(
    max_runtime: int, spot: bool, max_wait: int | None, checkpoint_path: str | None
) -> dict[str, Any]:
    """``StoppingCondition`` and, for spot training, its members."""
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": max_runtime}
    members: dict[str, Any] = {"StoppingCondition": stopping}
    if spot:
        wait = max_runtime if max_wait is None else max_wait
        if wait < max_runtime:
            raise ValueError(f"max_wait ({wait}) must be at least max_runtime ({max_runtime}): "
                             "it is the time to wait for spot capacity and run")
        stopping["MaxWaitTimeInSeconds"] = wait
        members["EnableManagedSpotTraining"] = True
    elif max_wait is not None:
        raise ValueError("max_wait is for spot training only: give spot=True too")
    if checkpoint_path is not None:
        members["CheckpointConfig"] = {"S3Uri": checkpoint_path}
    return members


def _range(name: str, bounds: IntegerRange | ContinuousRange) -> dict[str, Any]:
    found: dict[str, Any] = {"Name": name, "MinValue": str(bounds[0]), "MaxValue": str(bounds[1])}
    if len(bounds) == 3:
        found["ScalingType"] = bounds[2]
    return found
