"""MNIST with K-Means, one SageMaker job per step, on the v1-compatible components:

    process -> hyperparameter_tuning -> train (best hyperparameters) -> model
        -> deploy               } in parallel
        -> batch_transform      }

The processing job writes the train/test/batch splits to fixed S3 prefixes that
the later steps read, so those steps are ordered with ``.after``; the rest of the
wiring passes outputs (best hyperparameters, image, artifacts, model name).

``python -m components.pipelines.mnist_classification [out.yaml]`` compiles it.
(No ``from __future__ import annotations``: kfp reads the annotations as types.)
"""

import sys
from typing import Any

from kfp import compiler, components, dsl

from components.pipelines import COMPONENTS

process_op = components.load_component_from_file(str(COMPONENTS / "process.yaml"))
tuning_op = components.load_component_from_file(str(COMPONENTS / "hyperparameter_tuning.yaml"))
train_op = components.load_component_from_file(str(COMPONENTS / "train.yaml"))
model_op = components.load_component_from_file(str(COMPONENTS / "model.yaml"))
deploy_op = components.load_component_from_file(str(COMPONENTS / "deploy.yaml"))
transform_op = components.load_component_from_file(str(COMPONENTS / "batch_transform.yaml"))

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SCRIPT = "/opt/ml/processing/code/kmeans_preprocessing.py"
SPLITS = ("train_data", "test_data", "valid_data")
# where the data and the results live: change it to your bucket (a pipeline parameter
# can't be spliced into the list and dict arguments below)
BASE = "s3://my-bucket/mnist_kmeans_example"


def s3_input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {
        "S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File",
    }}


def s3_output(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {"OutputName": name, "S3Output": {
        "S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob",
    }}


def channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {
            "S3Uri": uri, "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
        }},
        "ContentType": "application/x-recordio-protobuf",
        "CompressionType": "None",
        "RecordWrapperType": "None",
        "InputMode": "File",
    }


@dsl.pipeline(
    name="mnist-classification",
    description="Prepare MNIST, tune and train K-Means, then deploy and batch-transform it",
)
def mnist_classification(
    role: str,
    region: str = "us-east-1",
    instance_type: str = "ml.m5.2xlarge",
) -> None:
    base = BASE
    prepare = process_op(
        region=region,
        role=role,
        image=SKLEARN_IMAGE,
        container_entrypoint=["python3", SCRIPT],
        input_config=[
            s3_input("code", f"{base}/processing_code/kmeans_preprocessing.py",
                     "/opt/ml/processing/code"),
            s3_input("mnist", f"{base}/mnist.pkl.gz", "/opt/ml/processing/input"),
        ],
        output_config=[
            *(s3_output(split, f"{base}/{split}", f"/opt/ml/processing/output_{split[:-5]}")
              for split in SPLITS),
            s3_output("batch_input", f"{base}/input", "/opt/ml/processing/output_batch"),
        ],
        instance_type="ml.m5.xlarge",
        volume_size=20,
        max_run_time=3600,
    )
    channels = [channel("train", f"{base}/train_data"), channel("test", f"{base}/test_data")]
    tune = tuning_op(
        region=region,
        role=role,
        algorithm_name="K-Means",
        strategy="Bayesian",
        metric_name="test:msd",
        metric_type="Minimize",
        early_stopping_type="Off",
        static_parameters={"k": "10", "feature_dim": "784"},
        integer_parameters=[
            {"Name": "mini_batch_size", "MinValue": "450", "MaxValue": "550"},
            {"Name": "extra_center_factor", "MinValue": "10", "MaxValue": "20"},
        ],
        categorical_parameters=[{"Name": "init_method", "Values": ["kmeans++", "random"]}],
        channels=channels,
        output_location=f"{base}/output",
        instance_type=instance_type,
        volume_size=50,
        max_num_jobs=6,
        max_parallel_jobs=3,
        max_run_time=3600,
    ).after(prepare)
    train = train_op(
        region=region,
        role=role,
        image=tune.outputs["training_image"],
        hyperparameters=tune.outputs["best_hyperparameters"],
        channels=channels,
        instance_type=instance_type,
        volume_size=50,
        max_run_time=3600,
        model_artifact_path=f"{base}/output",
    )
    model = model_op(
        region=region,
        role=role,
        model_name=train.outputs["job_name"],
        image=train.outputs["training_image"],
        model_artifact_url=train.outputs["model_artifact_url"],
    )
    deploy_op(
        region=region,
        model_name_1=model.outputs["model_name"],
        instance_type_1="ml.m5.large",
    )
    transform_op(
        region=region,
        model_name=model.outputs["model_name"],
        input_location=f"{base}/input",
        output_location=f"{base}/output",
        content_type="text/csv",
        split_type="Line",
        accept="text/csv",
        assemble_with="Line",
        batch_strategy="MultiRecord",
        max_concurrent=4,
        instance_type="ml.m4.xlarge",
    ).after(prepare)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "mnist_classification.yaml"
    compiler.Compiler().compile(mnist_classification, target)
