"""A v1-style pipeline on the generated components: train K-Means on MNIST, then
run a manifest step that trains again from the first model's location.

``python -m components.examples.mnist_kmeans out.yaml`` compiles it. (No
``from __future__ import annotations``: kfp reads the annotations as types.)
"""

import sys
from pathlib import Path
from typing import Any

from kfp import compiler, components, dsl

HERE = Path(__file__).resolve().parent.parent
train_op = components.load_component_from_file(str(HERE / "train.yaml"))
manifest_op = components.load_component_from_file(str(HERE / "run.yaml"))

MANIFEST = """
defaults:
  role: {role}
jobs:
  - name: refit
    kind: training
    request:
      AlgorithmSpecification:
        TrainingImage: {image}
        TrainingInputMode: File
      HyperParameters: {{k: "10", feature_dim: "784"}}
      InputDataConfig:
        - ChannelName: train
          DataSource: {{S3DataSource: {{S3Uri: {data}, S3DataType: S3Prefix}}}}
      OutputDataConfig: {{S3OutputPath: {output}}}
      ResourceConfig: {{InstanceType: ml.m5.xlarge, InstanceCount: 1, VolumeSizeInGB: 50}}
      StoppingCondition: {{MaxRuntimeInSeconds: 3600}}
"""


@dsl.pipeline(name="mnist-kmeans", description="Train K-Means on MNIST with SageMaker")
def mnist_kmeans(
    region: str = "us-east-1",
    role: str = "arn:aws:iam::123456789012:role/SageMakerRole",
) -> None:
    channels: list[dict[str, Any]] = [{
        "ChannelName": "train",
        "DataSource": {"S3DataSource": {
            "S3Uri": "s3://my-bucket/mnist_kmeans_example/data",
            "S3DataType": "S3Prefix",
            "S3DataDistributionType": "FullyReplicated",
        }},
        "InputMode": "File",
    }]
    train = train_op(
        region=region,
        role=role,
        algorithm_name="K-Means",
        hyperparameters={"k": "10", "feature_dim": "784"},
        channels=channels,
        instance_type="ml.m5.xlarge",
        volume_size=50,
        max_run_time=3600,
        model_artifact_path="s3://my-bucket/mnist_kmeans_example/output",
    )
    manifest_op(
        manifest=MANIFEST.format(
            role="arn:aws:iam::123456789012:role/SageMakerRole",
            image="382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
            data="s3://my-bucket/mnist_kmeans_example/data",
            output="s3://my-bucket/mnist_kmeans_example/refit",
        ),
        region=region,
        tags={"model": "mnist"},
    ).after(train)


if __name__ == "__main__":
    compiler.Compiler().compile(mnist_kmeans, sys.argv[1] if len(sys.argv) > 1 else "mnist.yaml")
