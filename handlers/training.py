"""Training jobs: everything special about them."""

from __future__ import annotations

from typing import Any

from runner.kind import Description, Kind


def outputs(d: Description) -> dict[str, Any]:
    algorithm = d.get("AlgorithmSpecification", {})
    return {
        "job_name": d.get("TrainingJobName", ""),
        "model_artifact_url": d.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),
        "training_image": algorithm.get("TrainingImage") or algorithm.get("AlgorithmName", ""),
    }


def details(d: Description) -> dict[str, Any]:
    """Billing and final metrics; spot savings = 1 - billable / training."""
    facts: dict[str, Any] = {}
    billable = d.get("BillableTimeInSeconds")
    training = d.get("TrainingTimeInSeconds")
    if billable is not None:
        facts["billable_seconds"] = int(billable)
        count = int(d.get("ResourceConfig", {}).get("InstanceCount", 1) or 1)
        facts["billable_instance_seconds"] = int(billable) * count
    if billable is not None and training:
        savings = 1.0 - float(billable) / float(training)
        if savings > 0:
            facts["spot_savings"] = round(savings, 3)
    metrics = {
        m["MetricName"]: m["Value"]
        for m in d.get("FinalMetricDataList", [])
        if "MetricName" in m and "Value" in m
    }
    if metrics:
        facts["metrics"] = metrics
    return facts


KIND = Kind(
    name="training",
    create="CreateTrainingJob",
    describe="DescribeTrainingJob",
    stop="StopTrainingJob",
    list_op="ListTrainingJobs",
    name_field="TrainingJobName",
    status_field="TrainingJobStatus",
    secondary_status_field="SecondaryStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed"}),
    stopped=frozenset({"Stopped"}),
    log_group="/aws/sagemaker/TrainingJobs",
    outputs=outputs,
    output_types={"job_name": str, "model_artifact_url": str, "training_image": str},
    details=details,
)
