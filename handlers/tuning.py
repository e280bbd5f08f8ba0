"""Hyperparameter tuning jobs: everything special about them.

A tuning job runs child training jobs. Their logs are followed as they appear
(each line labelled with its child), at most ``Settings.tuning_log_tails``
children at a time, preferring the running and the most recent ones; a child
that drops out of that set is still read to its end, and one that ended before
it could be followed is taken up later, so no line is lost or repeated. The
outputs are those of the v1 component: the best child's name, hyperparameters
(without ``_tuning_objective_metric``), model artifacts and training image,
read from its DescribeTrainingJob.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runner.kind import Description, Kind, LogSource

if TYPE_CHECKING:
    from runner.job import JobContext

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
OBJECTIVE_KEY = "_tuning_objective_metric"
RUNNING = frozenset({"InProgress", "Stopping"})
# a key of our own on the enriched description: the best child's DescribeTrainingJob
BEST_JOB = "smrun:BestTrainingJobDescription"


def outputs(d: Description) -> dict[str, Any]:
    best = d.get("BestTrainingJob") or {}
    described = d.get(BEST_JOB) or {}
    algorithm = described.get("AlgorithmSpecification", {})
    hyperparameters = described.get("HyperParameters") or best.get("TunedHyperParameters", {})
    return {
        "hpo_job_name": d.get("HyperParameterTuningJobName", ""),
        "best_job_name": best.get("TrainingJobName", ""),
        "best_hyperparameters": {k: v for k, v in hyperparameters.items() if k != OBJECTIVE_KEY},
        "model_artifact_url": described.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),
        "training_image": algorithm.get("TrainingImage") or algorithm.get("AlgorithmName", ""),
    }


def details(d: Description) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if d.get("TrainingJobStatusCounters"):
        facts["training_jobs"] = dict(d["TrainingJobStatusCounters"])
    metric = (d.get("BestTrainingJob") or {}).get("FinalHyperParameterTuningJobObjectiveMetric")
    if metric:
        facts["best_objective"] = {
            "metric": metric.get("MetricName"),
            "type": metric.get("Type"),
            "value": metric.get("Value"),
        }
    return facts


async def enrich(ctx: JobContext, d: Description) -> Description:
    """Describe the best child: its hyperparameters, artifacts and image are outputs."""
    best = (d.get("BestTrainingJob") or {}).get("TrainingJobName")
    if not best:
        return d
    try:
        described = await ctx.call("sagemaker", "DescribeTrainingJob", TrainingJobName=best)
    except ClientError as error:
        ctx.notice("warning", f"cannot describe the best training job {best}: {error}")
        return d
    algorithm = described.get("AlgorithmSpecification", {})
    if not algorithm.get("TrainingImage") and algorithm.get("AlgorithmName"):
        # an algorithm resource's image is in its training specification
        try:
            found = await ctx.call(
                "sagemaker", "DescribeAlgorithm", AlgorithmName=algorithm["AlgorithmName"]
            )
        except ClientError:
            found = {}
        image = found.get("TrainingSpecification", {}).get("TrainingImage")
        if image:
            algorithm = {**algorithm, "TrainingImage": image}
            described = {**described, "AlgorithmSpecification": algorithm}
    return {**d, BEST_JOB: described}


def choose_tails(
    children: Sequence[Mapping[str, Any]], drained: set[str], limit: int, *, final: bool
) -> list[str]:
    """Which children's logs to follow now, from ListTrainingJobsForHyperParameterTuningJob
    summaries (any order); ``drained`` are the children followed at some point
    after they ended (the follower reads a dropped source to its end).

    Running children first, newest first; then ended children not drained yet
    (their lines are owed), oldest first; then the most recent of the rest; up
    to ``limit``. Once the tuning job has ended, every owed child is taken."""
    newest = sorted(children, key=lambda c: (c["CreationTime"], c["TrainingJobName"]), reverse=True)
    running = [c["TrainingJobName"] for c in newest if c["TrainingJobStatus"] in RUNNING]
    ended = [c["TrainingJobName"] for c in newest if c["TrainingJobStatus"] not in RUNNING]
    owed = [name for name in reversed(ended) if name not in drained]
    rest = [name for name in ended if name in drained]
    if final:
        limit = max(limit, len(running) + len(owed))
    return [*running, *owed, *rest][:limit]


async def list_children(ctx: JobContext) -> list[dict[str, Any]]:
    children: list[dict[str, Any]] = []
    params: dict[str, Any] = {"HyperParameterTuningJobName": ctx.name, "MaxResults": 100}
    while True:
        page = await ctx.call("sagemaker", "ListTrainingJobsForHyperParameterTuningJob", **params)
        children.extend(page.get("TrainingJobSummaries", []))
        if not page.get("NextToken"):
            return children
        params["NextToken"] = page["NextToken"]


async def log_sources(ctx: JobContext, d: Description) -> list[LogSource]:
    """The children to follow now; asks SageMaker only when the counters moved."""
    state = ctx.state
    final = str(d.get("HyperParameterTuningJobStatus")) not in RUNNING
    counters = (dict(d.get("TrainingJobStatusCounters") or {}), final)
    if state.get("counters") != counters:
        try:
            children = await list_children(ctx)
        except ClientError as error:
            ctx.notice("warning", f"cannot list the training jobs of {ctx.name}: {error}")
            children = None
        if children is not None:
            state["counters"] = counters
            known: set[str] = state.setdefault("known", set())
            for child in children:
                if child["TrainingJobName"] not in known:
                    known.add(child["TrainingJobName"])
                    ctx.notice(
                        "info",
                        f"training job {child['TrainingJobName']} started",
                        child=child["TrainingJobName"],
                    )
            drained: set[str] = state.setdefault("drained", set())
            tails = choose_tails(children, drained, ctx.settings.tuning_log_tails, final=final)
            ended = {
                c["TrainingJobName"] for c in children if c["TrainingJobStatus"] not in RUNNING
            }
            drained.update(ended.intersection(tails))
            state["tails"] = tails
    return [
        LogSource(TRAINING_LOG_GROUP, f"{child}/", label=child) for child in state.get("tails", [])
    ]


KIND = Kind(
    name="tuning",
    create="CreateHyperParameterTuningJob",
    describe="DescribeHyperParameterTuningJob",
    stop="StopHyperParameterTuningJob",
    list_op="ListHyperParameterTuningJobs",
    name_field="HyperParameterTuningJobName",
    status_field="HyperParameterTuningJobStatus",
    success=frozenset({"Completed"}),
    # DeleteFailed never changes by itself; Deleting ends in "not found"
    failure=frozenset({"Failed", "DeleteFailed"}),
    stopped=frozenset({"Stopped"}),
    max_name_length=32,
    outputs=outputs,
    output_types={
        "hpo_job_name": str,
        "best_job_name": str,
        "best_hyperparameters": dict,
        "model_artifact_url": str,
        "training_image": str,
    },
    details=details,
    log_sources=log_sources,
    enrich=enrich,
)
