"""The MNIST pipeline of ``mnist_classification`` as one step: ``components/run.yaml``
runs every job of ``examples/mnist-pipeline.yaml`` (processing, tuning, training,
model, endpoint and batch transform) from one pod, concurrently where the jobs
allow, and reattaches to all of them if the pod restarts.

``python -m components.pipelines.mnist_manifest_step [out.yaml]`` compiles it.
(No ``from __future__ import annotations``: kfp reads the annotations as types.)
"""

import sys

from kfp import compiler, components, dsl

from components.pipelines import COMPONENTS

run_op = components.load_component_from_file(str(COMPONENTS / "run.yaml"))

EXAMPLE = COMPONENTS.parent / "examples" / "mnist-pipeline.yaml"
# used when the examples directory is not beside the components (an installed copy)
FALLBACK = """
defaults:
  region: us-east-1
  role: arn:aws:iam::123456789012:role/SageMakerExecution
jobs:
  - name: train
    kind: training
    request:
      AlgorithmSpecification:
        TrainingImage: 382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1
        TrainingInputMode: File
      HyperParameters: {k: "10", feature_dim: "784"}
      InputDataConfig:
        - ChannelName: train
          DataSource:
            S3DataSource:
              S3DataType: S3Prefix
              S3Uri: s3://my-bucket/mnist_kmeans_example/train_data
      OutputDataConfig: {S3OutputPath: "s3://my-bucket/mnist_kmeans_example/output"}
      ResourceConfig: {InstanceType: ml.m5.2xlarge, InstanceCount: 1, VolumeSizeInGB: 50}
      StoppingCondition: {MaxRuntimeInSeconds: 3600}
  - name: model
    kind: model
    request:
      PrimaryContainer:
        Image: "{{ jobs.train.outputs.training_image }}"
        ModelDataUrl: "{{ jobs.train.outputs.model_artifact_url }}"
"""
MANIFEST = EXAMPLE.read_text() if EXAMPLE.is_file() else FALLBACK


@dsl.pipeline(
    name="mnist-manifest-step",
    description="The MNIST K-Means pipeline (prepare, tune, train, model, deploy, "
    "batch transform) as one smrun manifest step",
)
def mnist_manifest_step(region: str = "us-east-1") -> None:
    run_op(manifest=MANIFEST, region=region, tags={"pipeline": "mnist-manifest-step"})


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "mnist_manifest_step.yaml"
    compiler.Compiler().compile(mnist_manifest_step, target)
