"""Deploy the best model of a small sweep behind an endpoint, then update
that endpoint in place to the runner-up (a blue/green swap SageMaker rolls
back if the new variant fails).

    python examples/library/deploy_best.py          # on the embedded emulator
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import smrun

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
METRIC = "validation:rmse"
FAST = [{"Key": "smrun:emulator:duration", "Value": "1"},  # the emulator's pace
        {"Key": "smrun:emulator:log-lines", "Value": "2"}]


def training(eta: str) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE, "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": METRIC, "Regex": r"validation-rmse:([0-9\.]+)"}],
        },
        "RoleArn": ROLE,
        "HyperParameters": {"num_round": "20", "eta": eta},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://my-bucket/abalone/train"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://my-bucket/abalone/deploy"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": FAST,
    }


async def deploy(runner: smrun.Runner, trial: smrun.JobResult, variant: str,
                 endpoint: str | None) -> str:
    """Model, endpoint config and endpoint for ``trial``: created, or (with
    ``endpoint``) updated in place. The endpoint's name."""
    model = await (await runner.submit(f"model-{variant}", "model", {
        "PrimaryContainer": {"Image": IMAGE,
                             "ModelDataUrl": trial.outputs["model_artifact_url"]},
        "ExecutionRoleArn": ROLE,
    })).wait()
    config = await (await runner.submit(f"config-{variant}", "endpoint_config", {
        "ProductionVariants": [{"VariantName": variant,
                                "ModelName": model.outputs["model_name"],
                                "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    })).wait()
    request: dict[str, Any] = {"EndpointConfigName": config.outputs["endpoint_config_name"],
                               "Tags": FAST}
    if endpoint is not None:
        request["EndpointName"] = endpoint
    served = await (await runner.submit(f"endpoint-{variant}", "endpoint", request,
                                        options={"update": endpoint is not None})).wait()
    if not served.ok:
        raise SystemExit(f"{served.key}: {served.outcome.value}: {served.failure_reason}")
    name = str(served.outputs["endpoint_name"])
    print(f"{'updated' if endpoint else 'created'} {name}: variant {variant} serves "
          f"{trial.key} ({METRIC}={trial.details['metrics'][METRIC]})")
    return name


async def main(*, local: bool) -> str:
    async with smrun.Runner(local=local) as runner:
        trials = [await runner.submit(f"eta{eta}", "training", training(eta))
                  for eta in ("0.05", "0.1", "0.3")]
        results = [job.result async for job in runner.as_completed(trials) if job.result]
        ranked = sorted((r for r in results if r.ok),
                        key=lambda r: float(r.details["metrics"][METRIC]))
        if len(ranked) < 2:
            raise SystemExit("fewer than two trials succeeded")
        endpoint = await deploy(runner, ranked[0], "blue", None)
        return await deploy(runner, ranked[1], "green", endpoint)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aws", action="store_true", help="run on SageMaker, not the emulator")
    asyncio.run(main(local=not parser.parse_args().aws))
