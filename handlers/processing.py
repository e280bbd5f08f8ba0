"""Processing jobs: everything special about them.

A failed processing job's FailureReason is often only "See job logs"; what the
container said on its way out is in ExitMessage, so the reason shown joins both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runner.job import JobContext
from runner.kind import Description, Kind


def outputs(d: Description) -> dict[str, Any]:
    """v1 outputs: the job name, and each output's S3 URI by its OutputName."""
    artifacts = {
        o["OutputName"]: o["S3Output"]["S3Uri"]
        for o in d.get("ProcessingOutputConfig", {}).get("Outputs", [])
        if "S3Output" in o
    }
    return {"job_name": d.get("ProcessingJobName", ""), "output_artifacts": artifacts}


def details(d: Description) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if d.get("ExitMessage"):
        facts["exit_message"] = d["ExitMessage"]
    started, ended = d.get("ProcessingStartTime"), d.get("ProcessingEndTime")
    if isinstance(started, datetime):
        facts["start_time"] = started.isoformat()
    if isinstance(ended, datetime):
        facts["end_time"] = ended.isoformat()
    if isinstance(started, datetime) and isinstance(ended, datetime):
        seconds = max(0, round((ended - started).total_seconds()))
        count = int(
            d.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1) or 1
        )
        facts["processing_seconds"] = seconds
        facts["instance_seconds"] = seconds * count
    return facts


def failure_with_exit_message(d: Description) -> Description:
    reason, exit_message = d.get("FailureReason"), d.get("ExitMessage")
    if d.get("ProcessingJobStatus") != "Failed" or not exit_message:
        return d
    if reason and exit_message in reason:
        return d
    joined = f"{reason}; exit message: {exit_message}" if reason else exit_message
    return {**d, "FailureReason": joined}


async def enrich(ctx: JobContext, d: Description) -> Description:
    return failure_with_exit_message(d)


KIND = Kind(
    name="processing",
    create="CreateProcessingJob",
    describe="DescribeProcessingJob",
    stop="StopProcessingJob",
    list_op="ListProcessingJobs",
    name_field="ProcessingJobName",
    status_field="ProcessingJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed"}),
    stopped=frozenset({"Stopped"}),
    log_group="/aws/sagemaker/ProcessingJobs",
    outputs=outputs,
    output_types={"job_name": str, "output_artifacts": dict},
    details=details,
    enrich=enrich,
)
