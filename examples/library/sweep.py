"""A parameter sweep from a script: twelve training jobs at once, their log
lines as they come, and the best by its final validation:rmse.

    python examples/library/sweep.py            # on the embedded emulator
    python examples/library/sweep.py --aws      # on SageMaker (fix ROLE, IMAGE, BUCKET)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from typing import Any

import anyio

import smrun

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "s3://my-bucket/abalone"
METRIC = "validation:rmse"


def training(eta: str, max_depth: str) -> dict[str, Any]:
    """One trial's CreateTrainingJob request (the name is left to smrun)."""
    return {
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": METRIC, "Regex": r"validation-rmse:([0-9\.]+)"}],
        },
        "RoleArn": ROLE,
        "HyperParameters": {"num_round": "50", "objective": "reg:squarederror",
                            "eta": eta, "max_depth": max_depth},
        "InputDataConfig": [
            {"ChannelName": channel, "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"{BUCKET}/{channel}"}}}
            for channel in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/sweep"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        # how long the emulator runs it and how much it logs; SageMaker keeps them as tags
        "Tags": [{"Key": "smrun:emulator:duration", "Value": "2"},
                 {"Key": "smrun:emulator:log-lines", "Value": "4"}],
    }


async def print_lines(job: smrun.Job) -> None:
    async for line in job.logs():
        print(f"{job.key:<16} [{line.instance}] {line.message}")


async def sweep(*, local: bool) -> smrun.JobResult:
    """Run the sweep; the best trial's result."""
    results: list[smrun.JobResult] = []
    async with smrun.Runner(local=local) as runner, anyio.create_task_group() as printing:
        jobs = []
        for eta, depth in itertools.product(["0.05", "0.1", "0.2", "0.3"], ["4", "6", "8"]):
            job = await runner.submit(f"eta{eta}-depth{depth}", "training", training(eta, depth))
            printing.start_soon(print_lines, job)  # from its first line on
            jobs.append(job)
        async for job in runner.as_completed(jobs):
            assert job.result is not None
            print(f"{job.key:<16} {job.result.outcome.value}")
            results.append(job.result)
    succeeded = [r for r in results if r.ok and METRIC in r.details.get("metrics", {})]
    if not succeeded:
        raise SystemExit("no trial succeeded")
    best = min(succeeded, key=lambda r: float(r.details["metrics"][METRIC]))
    print(f"best: {best.key} ({best.name}) {METRIC}={best.details['metrics'][METRIC]}")
    print(f"model: {best.outputs['model_artifact_url']}")
    return best


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aws", action="store_true", help="run on SageMaker, not the emulator")
    asyncio.run(sweep(local=not parser.parse_args().aws))
