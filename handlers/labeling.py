"""Ground Truth labeling jobs: everything special about them.

A labeling job is a plain job (create, follow, stop); what it adds is its
outputs (the output manifest, and the final model of auto-labeling) and its
LabelCounters. ``active_learning_model_arn`` is an empty string unless the
job ran with ``LabelingJobAlgorithmsConfig`` and completed.
"""

from __future__ import annotations

from typing import Any

from runner.kind import Description, Kind

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
    create="CreateLabelingJob",
    describe="DescribeLabelingJob",
    stop="StopLabelingJob",
    list_op="ListLabelingJobs",
    name_field="LabelingJobName",
    status_field="LabelingJobStatus",
    success=frozenset({"Completed"}),
    failure=frozenset({"Failed"}),
    stopped=frozenset({"Stopped"}),
    log_group="/aws/sagemaker/LabelingJobs",
    outputs=outputs,
    output_types={"output_manifest_location": str, "active_learning_model_arn": str},
    details=details,
)
