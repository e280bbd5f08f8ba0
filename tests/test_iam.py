"""`smrun iam-policy`: policies derived from the handlers' data, checked against
botocore's models and against every call a run on the emulator makes."""

from __future__ import annotations

import ast
import importlib
import json
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from botocore.session import get_session

from smrun import Runner, cli, handlers, load_manifest
from smrun.aws import AwsConfig
from smrun.emulator import Emulator
from smrun.events import StatusChanged
from smrun.handlers import COMPONENTS, KINDS
from smrun.iam import (
    BUCKET_PLACEHOLDER,
    DAEMON_ROLE_NAME,
    DAEMON_SERVICE_ACCOUNT,
    EXECUTION_ROLE_PLACEHOLDER,
    LOG_OPERATIONS,
    MANIFEST_BUCKET_PLACEHOLDER,
    SUBMISSIONS_QUEUE_PLACEHOLDER,
    TAG_OPERATIONS,
    allowed_actions,
    daemon_policies,
    daemon_policy,
    execution_policy,
    is_allowed,
    kind_operations,
    logs_followed,
    pod_policy,
    policies,
    queue_arn,
    resolve_kinds,
    usage_of,
)
from smrun.manifest import Manifest
from smrun.settings import Settings
from smrun.types import Outcome
from tests.helpers import emulator_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
ARN = "arn:aws:{service}:us-east-1:123456789012:{rest}"
# the top-level request members that name a SageMaker resource, and its ARN type:
# written out here, independently of runner.iam, to check its derivation
NAMES = {
    "TrainingJobName": "training-job",
    "HyperParameterTuningJobName": "hyper-parameter-tuning-job",
    "ProcessingJobName": "processing-job",
    "TransformJobName": "transform-job",
    "ModelName": "model",
    "EndpointConfigName": "endpoint-config",
    "EndpointName": "endpoint",
    "LabelingJobName": "labeling-job",
    "WorkteamName": "workteam",
    "AlgorithmName": "algorithm",
}


def operations_of(service: str) -> set[str]:
    return set(get_session().get_service_model(service).operation_names)


def pod_statement_actions(policy: dict[str, Any], prefix: str) -> set[str]:
    return {a.split(":", 1)[1] for a in allowed_actions(policy) if a.startswith(f"{prefix}:")}


# --- the operations: declared, real, and all granted ---------------------------


def test_every_operation_a_kind_declares_exists_in_botocores_models() -> None:
    sagemaker = operations_of("sagemaker")
    for kind in KINDS.values():
        missing = set(kind_operations(kind)) - sagemaker
        assert not missing, f"kind {kind.name}: {missing} are not SageMaker operations"
    assert set(TAG_OPERATIONS) <= sagemaker
    assert set(LOG_OPERATIONS) <= operations_of("logs")


CALL_NAMES = ("call", "_call")


def literal_calls_in(source: str) -> set[tuple[str, str]]:
    """``(service, operation)`` of every ``call("service", "Operation", ...)`` in ``source``:
    a method (``self._aws.call``, ``ctx.call``, ``self._call``) or a plain function
    (a ``LogsCall`` passed in as ``call``), wherever its arguments are split over lines."""
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or len(node.args) < 2:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in CALL_NAMES and all(
            isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[:2]
        ):
            service, operation = (a.value for a in node.args[:2])  # type: ignore[attr-defined]
            found.add((service, operation))
    return found


def literal_calls(path: Path) -> set[tuple[str, str]]:
    return literal_calls_in(path.read_text())


def code_modules() -> list[Path]:
    """Every module of the runner (the emulator is not the runner) and of the handlers."""
    runner = [p for p in sorted((ROOT / "runner").rglob("*.py")) if "emulator" not in p.parts]
    paths = [*runner, *sorted((ROOT / "handlers").glob("*.py"))]
    assert ROOT / "runner" / "logs" / "__init__.py" in paths
    assert ROOT / "runner" / "watch" / "status.py" in paths and ROOT / "runner" / "job.py" in paths
    return paths


def calls_in_code(extra: str = "") -> dict[str, set[str]]:
    """service -> the operations the code calls by name (``extra``: more source, as if
    it were in a module)."""
    calls: set[tuple[str, str]] = set()
    for path in code_modules():
        calls |= literal_calls(path)
    if extra:
        calls |= literal_calls_in(extra)
    by_service: dict[str, set[str]] = {}
    for service, operation in calls:
        by_service.setdefault(service, set()).add(operation)
    return by_service


def engine_calls(extra: str = "") -> dict[str, set[str]]:
    """What runner/ calls by name for every kind (the handlers' calls are per kind)."""
    calls: set[tuple[str, str]] = set()
    for path in code_modules():
        # the events setup is the setup identity's work, not the pods'; the
        # daemon's own calls are its role's (the daemon policy's test covers them)
        if "handlers" not in path.parts and path.name != "setup.py" \
                and "daemon" not in path.parts:
            calls |= literal_calls(path)
    calls |= literal_calls_in(extra) if extra else set()
    by_service: dict[str, set[str]] = {}
    for service, operation in calls:
        by_service.setdefault(service, set()).add(operation)
    return by_service


# operations whose IAM action has another name (SQS authorizes a batch as its single call)
IAM_ACTIONS = {"DeleteMessageBatch": "DeleteMessage", "SendMessageBatch": "SendMessage",
               "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def ungranted(policy: dict[str, Any], calls: dict[str, set[str]]) -> set[str]:
    return {f"{service}:{op}" for service, ops in calls.items() for op in ops
            if IAM_ACTIONS.get(op, op) not in pod_statement_actions(policy, service)}


def test_every_call_a_handler_makes_is_declared_by_its_kinds() -> None:
    seen = 0
    for path in sorted(Path(handlers.__file__).parent.glob("[!_]*.py")):
        module = importlib.import_module(f"smrun.handlers.{path.stem}")
        kinds = [*getattr(module, "KINDS", ()), *filter(None, [getattr(module, "KIND", None)])]
        declared = {op for k in kinds for op in kind_operations(k)}
        for service, operation in literal_calls(path):
            seen += 1
            assert service == "sagemaker", f"{path.name} calls {service}:{operation}"
            assert operation in declared, (
                f"{path.name} calls {operation}: add it to its Kind's extra_operations"
            )
    assert seen >= 5  # the scan does find the hooks' calls (tuning, endpoint, transform)


def test_the_pod_policy_grants_exactly_the_operations_of_the_kinds() -> None:
    # the logs operations are those the code calls, not the constant the policy is built from
    logs_calls = calls_in_code()["logs"]
    assert {"DescribeLogStreams", "GetLogEvents"} <= logs_calls  # the scan reads runner/logs.py
    for names in (["training"], ["tuning"], ["endpoint"], list(KINDS)):
        kinds = [KINDS[n] for n in names]
        policy = pod_policy(usage_of(kinds))
        expected = {op for k in kinds for op in kind_operations(k)} | set(TAG_OPERATIONS)
        assert pod_statement_actions(policy, "sagemaker") == expected
        assert pod_statement_actions(policy, "logs") == logs_calls


def test_the_pod_policy_grants_every_call_the_engine_makes_for_any_kind() -> None:
    engine = engine_calls()
    assert set(engine) == {"sagemaker", "logs", "sqs"}, engine
    assert "ListTags" in engine["sagemaker"]  # runner/job.py, when it attaches
    assert "ReceiveMessage" in engine["sqs"]  # runner/watch/events.py
    for kind in KINDS.values():
        policy = pod_policy(usage_of([kind], events_queue="smrun-events"))
        calls = dict(engine) if logs_followed(kind) else {
            "sagemaker": engine["sagemaker"], "sqs": engine["sqs"]}
        assert ungranted(policy, calls) == set(), kind.name
        without = pod_policy(usage_of([kind]))
        assert not pod_statement_actions(without, "sqs")  # no queue, no SQS


def test_the_events_queue_is_granted_by_name_to_the_pods() -> None:
    policy = pod_policy(usage_of([KINDS["training"]], events_queue="team-a-events"))
    queue = ARN.format(service="sqs", rest="team-a-events")
    assert is_allowed(policy, "sqs:ReceiveMessage", queue)
    assert is_allowed(policy, "sqs:DeleteMessage", queue)
    assert not is_allowed(policy, "sqs:ReceiveMessage", queue + "-dlq")
    assert not is_allowed(policy, "sqs:SendMessage", queue)


def test_a_new_call_in_the_log_follower_would_be_caught() -> None:
    """What the two tests above see if runner/logs.py starts calling another operation."""
    more = textwrap.dedent("""
        async def filter(self, group):
            return await self._call(
                "logs",
                "StartQuery",
                logGroupName=group,
            )
    """)
    policy = pod_policy(usage_of(list(KINDS.values()), events_queue="q"))
    assert ungranted(policy, engine_calls(more)) == {"logs:StartQuery"}
    assert calls_in_code(more)["logs"] != pod_statement_actions(policy, "logs")


def test_the_pod_policy_scopes_resources_to_the_kinds_used() -> None:
    policy = pod_policy(usage_of([KINDS["training"]]))
    job = ARN.format(service="sagemaker", rest="training-job/train-1")
    endpoint = ARN.format(service="sagemaker", rest="endpoint/serve")
    assert is_allowed(policy, "sagemaker:CreateTrainingJob", job)
    assert is_allowed(policy, "sagemaker:ListTags", job)
    assert not is_allowed(policy, "sagemaker:CreateTrainingJob", "*")
    assert not is_allowed(policy, "sagemaker:CreateEndpoint", endpoint)
    assert not is_allowed(policy, "sagemaker:ListTags", endpoint)
    assert is_allowed(policy, "sagemaker:ListTrainingJobs", "*")  # the list watcher
    assert not is_allowed(policy, "sagemaker:ListEndpoints", "*")
    group = ARN.format(service="logs", rest="log-group:/aws/sagemaker/TrainingJobs")
    assert is_allowed(policy, "logs:GetLogEvents", f"{group}:log-stream:train-1/algo-1-1")
    assert not is_allowed(policy, "logs:GetLogEvents", ARN.format(service="logs",
                                                                  rest="log-group:/other"))
    [passing] = [s for s in policy["Statement"] if s["Action"] == ["iam:PassRole"]]
    assert passing["Resource"] == [EXECUTION_ROLE_PLACEHOLDER]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert not any("sts:AssumeRole" in s["Action"] for s in policy["Statement"])


def test_kinds_that_pass_no_role_and_read_no_logs_get_neither() -> None:
    policy = pod_policy(usage_of([KINDS["workteam"]]))
    actions = allowed_actions(policy)
    assert "iam:PassRole" not in actions and not any(a.startswith("logs:") for a in actions)


def test_assume_role_adds_sts_on_that_role_only() -> None:
    target = "arn:aws:iam::123456789012:role/SageMakerCaller"
    policy = pod_policy(usage_of([KINDS["training"]], assume_role=target))
    assert is_allowed(policy, "sts:AssumeRole", target)
    assert not is_allowed(policy, "sts:AssumeRole", ROLE)


# --- the execution role: what a manifest names ---------------------------------

MANIFEST = """
defaults:
  region: us-east-1
  role: arn:aws:iam::123456789012:role/SageMakerExecution
jobs:
  - name: train
    kind: training
    request:
      AlgorithmSpecification:
        TrainingImage: 111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/trainer:2.1
        TrainingInputMode: File
      InputDataConfig:
        - ChannelName: train
          DataSource:
            S3DataSource: {S3DataType: S3Prefix, S3Uri: "s3://raw-data/mnist/train"}
      OutputDataConfig:
        S3OutputPath: s3://model-artifacts/mnist
        KmsKeyId: 1234abcd-12ab-34cd-56ef-1234567890ab
      ResourceConfig: {InstanceType: ml.m5.large, InstanceCount: 1, VolumeSizeInGB: 10}
      StoppingCondition: {MaxRuntimeInSeconds: 3600}
      VpcConfig: {SecurityGroupIds: [sg-0123456789abcdef0], Subnets: [subnet-0123456789abcdef0]}
  - name: model
    kind: model
    request:
      PrimaryContainer:
        Image: "{{ jobs.train.outputs.training_image }}"
        ModelDataUrl: "{{ jobs.train.outputs.model_artifact_url }}"
"""


def test_a_manifests_buckets_images_keys_and_role_appear() -> None:
    manifest = load_manifest(MANIFEST)
    usage = usage_of([], manifest, known=KINDS)
    assert [k.name for k in usage.kinds] == ["model", "training"]
    assert usage.buckets == ("model-artifacts", "raw-data")
    execution = execution_policy(usage)
    for bucket in ("raw-data", "model-artifacts"):
        assert is_allowed(execution, "s3:GetObject", f"arn:aws:s3:::{bucket}/mnist/x")
        assert is_allowed(execution, "s3:PutObject", f"arn:aws:s3:::{bucket}/mnist/x")
        assert is_allowed(execution, "s3:ListBucket", f"arn:aws:s3:::{bucket}")
    assert not is_allowed(execution, "s3:GetObject", "arn:aws:s3:::someone-else/x")
    repository = "arn:aws:ecr:eu-west-1:111122223333:repository/team/trainer"
    assert is_allowed(execution, "ecr:BatchGetImage", repository)
    assert not is_allowed(execution, "ecr:BatchGetImage",
                          "arn:aws:ecr:eu-west-1:111122223333:repository/other")
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert is_allowed(execution, "kms:GenerateDataKey", key)
    assert is_allowed(execution, "ec2:CreateNetworkInterface", "*")
    assert is_allowed(execution, "logs:PutLogEvents", ARN.format(
        service="logs", rest="log-group:/aws/sagemaker/TrainingJobs:log-stream:x"))
    pod = pod_policy(usage)
    assert is_allowed(pod, "iam:PassRole", ROLE)
    assert not is_allowed(pod, "iam:PassRole", "arn:aws:iam::123456789012:role/Admin")


def test_without_a_manifest_the_execution_role_has_placeholders_and_nothing_optional() -> None:
    execution = execution_policy(usage_of(KINDS.values()))
    assert is_allowed(execution, "s3:GetObject", f"arn:aws:s3:::{BUCKET_PLACEHOLDER}/x")
    actions = allowed_actions(execution)
    assert not any(a.startswith(("kms:", "ec2:", "lambda:")) for a in actions)
    assert is_allowed(execution, "ecr:BatchGetImage", "arn:aws:ecr:us-east-1:1:repository/x")


def test_the_three_identities_and_the_trust_policy() -> None:
    doc = policies(usage_of([], load_manifest(EXAMPLES / "ground-truth.yaml"), known=KINDS))
    assert set(doc) == {"setup", "pod", "execution"}
    trust = doc["execution"]["trust_policy"]["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    setup = doc["setup"]["policy"]
    assert is_allowed(setup, "iam:CreateRole", ROLE)
    assert not is_allowed(setup, "iam:CreateRole", "arn:aws:iam::123456789012:role/Admin")
    assert is_allowed(setup, "eks:DescribeCluster",
                      "arn:aws:eks:us-east-1:123456789012:cluster/<CLUSTER>")
    assert not any(a.startswith("sagemaker:") for a in allowed_actions(setup))
    lambdas = [s for s in doc["execution"]["policy"]["Statement"]
               if s["Action"] == ["lambda:InvokeFunction"]]
    assert lambdas and all(":function:" in r for r in lambdas[0]["Resource"])
    for identity in doc.values():
        assert identity["description"]


def test_component_names_stand_for_every_kind_their_jobs_make() -> None:
    deploy = resolve_kinds(["deploy"], KINDS, COMPONENTS)
    assert {k.name for k in deploy} == {"endpoint", "endpoint_config"}
    for name, component in COMPONENTS.items():
        assert component.kind in {k.name for k in resolve_kinds([name], KINDS, COMPONENTS)}
    with pytest.raises(ValueError, match="unknown kind 'nonsense'"):
        resolve_kinds(["training", "nonsense"], KINDS, COMPONENTS)


def test_cli_prints_json_and_rejects_unknown_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["iam-policy", "--kinds", "train,deploy",
                     "--role-arn", ROLE]) == cli.EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    pod = doc["pod"]["policy"]
    assert is_allowed(pod, "sagemaker:CreateTrainingJob",
                      ARN.format(service="sagemaker", rest="training-job/x"))
    assert is_allowed(pod, "iam:PassRole", ROLE)
    assert is_allowed(pod, "sagemaker:CreateEndpointConfig",
                      ARN.format(service="sagemaker", rest="endpoint-config/x"))
    assert cli.main(["iam-policy", "--kinds", "training,nonsense"]) == cli.EXIT_BAD_INPUT
    assert "nonsense" in capsys.readouterr().err
    assert cli.main(["iam-policy", str(EXAMPLES / "update-endpoint.yaml")]) == cli.EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert is_allowed(doc["execution"]["policy"], "s3:GetObject", "arn:aws:s3:::my-bucket/a")


# --- the policy covers every call of real runs on the emulator ----------------


def resources_of(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """The ARNs an IAM check of this call would look at (``*`` when it names none)."""
    if service == "logs":
        group = params.get("logGroupName") or params.get("logGroupIdentifier")
        arn = ARN.format(service="logs", rest=f"log-group:{group}")
        stream = params.get("logStreamName")
        return [f"{arn}:log-stream:{stream}" if stream else arn]
    found = [ARN.format(service="sagemaker", rest=f"{kind}/{params[member]}")
             for member, kind in NAMES.items() if isinstance(params.get(member), str)]
    if "ResourceArn" in params:
        found.append(params["ResourceArn"])
    return found or ["*"]


# calls AWS lets every identity make, whatever its policies say: the pre-flight's
# "who am I" ("No permissions are required to perform this operation", STS API reference)
NEEDS_NO_PERMISSION = {("sts", "GetCallerIdentity")}


def uncovered(policy: dict[str, Any], requests: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    problems = []
    for service, operation, params in requests:
        if (service, operation) in NEEDS_NO_PERMISSION:
            continue
        for resource in resources_of(service, operation, params):
            if not is_allowed(policy, f"{service}:{operation}", resource):
                problems.append(f"{service}:{operation} on {resource}")
    return sorted(set(problems))


def local_config(emulator: Emulator) -> AwsConfig:
    return emulator_config(emulator)


async def run(
    manifest: Manifest, times: int = 1
) -> tuple[list[Any], list[tuple[str, str, dict[str, Any]]]]:
    """Run a manifest ``times`` times with one run id (the second run attaches: ListTags)."""
    async with Emulator() as emulator:
        outcomes = []
        for _ in range(times):
            async with Runner(local_config(emulator), settings=Settings.fast(drain_grace=0.2),
                              run_id="iam-check") as runner:
                results = await runner.run_manifest(manifest)
            outcomes.append({k: r.outcome for k, r in results.items()})
        return outcomes, list(emulator.requests)


LONG = [{"Key": "smrun:emulator:duration", "Value": "60"},
        {"Key": "smrun:emulator:log-lines", "Value": "50"}]


async def stop_jobs() -> tuple[list[Any], list[tuple[str, str, dict[str, Any]]]]:
    """Start a training and a processing job and stop each once it runs."""
    mnist = load_manifest(EXAMPLES / "mnist-pipeline.yaml").jobs
    requests = {
        "train": ("training", dict(mnist["train"].request)),
        "prepare": ("processing", dict(mnist["prepare"].request)),
    }
    requests["train"][1].update(
        AlgorithmSpecification={"TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com"
                                "/kmeans:1", "TrainingInputMode": "File"},
        HyperParameters={"k": "10"},
    )
    for _, request in requests.values():
        request["Tags"] = LONG
    async with Emulator() as emulator:
        async with Runner(local_config(emulator), settings=Settings.fast(drain_grace=0.2)) as r:
            jobs = [await r.submit(key, kind, request) for key, (kind, request) in requests.items()]
            for job in jobs:
                async for event in job.events():
                    if isinstance(event, StatusChanged):
                        break
                await job.stop()
            outcomes = [(await job.wait()).outcome for job in jobs]
        return outcomes, list(emulator.requests)


async def test_the_pod_policy_of_a_manifest_covers_every_call_its_run_makes() -> None:
    names = ("mnist-pipeline.yaml", "update-endpoint.yaml", "ground-truth.yaml")
    manifests = {name: load_manifest(EXAMPLES / name) for name in names}
    runs: dict[str, tuple[list[Any], list[tuple[str, str, dict[str, Any]]]]] = {}
    stopped: list[Any] = []

    async def one(name: str) -> None:
        # Ground Truth again: its labeling job is attached to, not created twice
        runs[name] = await run(manifests[name], 2 if name == "ground-truth.yaml" else 1)

    async def stops() -> None:
        outcomes, calls = await stop_jobs()
        stopped.extend(outcomes)
        runs["stops"] = ([], calls)

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(one, name)
        tg.start_soon(stops)

    called: set[str] = set()
    for name in names:
        outcomes, calls = runs[name]
        for outcome in outcomes:
            assert set(outcome.values()) == {Outcome.SUCCEEDED}, (name, outcome)
        policy = pod_policy(usage_of([], manifests[name], known=KINDS))
        assert uncovered(policy, calls) == [], name
        called |= {op for _, op, _ in calls}
    assert stopped == [Outcome.STOPPED_BY_US] * 2
    stop_policy = pod_policy(usage_of([KINDS["training"], KINDS["processing"]]))
    assert uncovered(stop_policy, runs["stops"][1]) == []
    called |= {op for _, op, _ in runs["stops"][1]}
    # the runs exercised the pre-flight, the hooks' extra calls, attaching, stopping and the logs
    assert ("sts", "GetCallerIdentity") in {(s, op) for s, op, _ in runs[names[0]][1]}
    assert {
        "ListTrainingJobsForHyperParameterTuningJob", "DescribeTrainingJob", "UpdateEndpoint",
        "DeleteEndpointConfig", "DescribeEndpointConfig", "ListTags", "StopTrainingJob",
        "StopProcessingJob", "GetLogEvents", "DescribeLogStreams",
    } <= called


# --- the daemon (`smrun iam-policy --daemon`) ---------------------------------------------

SUBMISSIONS = ARN.format(service="sqs", rest="smrun-submissions")
DEAD_LETTER = ARN.format(service="sqs", rest="smrun-submissions-dlq")
SUBMISSION_CALLS = ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility",
                    "GetQueueAttributes")


def every_kind() -> Any:
    """The usage `smrun iam-policy --daemon` derives: every kind, as without --kinds."""
    return usage_of(resolve_kinds([], KINDS, COMPONENTS) or list(KINDS.values()), None,
                    known=KINDS)


def test_the_daemon_may_do_everything_the_pods_may_for_every_kind() -> None:
    usage = every_kind()
    assert {k.name for k in usage.kinds} == set(KINDS)
    pod = pod_policy(usage)
    daemon = daemon_policies(usage, queue=SUBMISSIONS)["daemon"]["policy"]
    assert daemon["Statement"][:len(pod["Statement"])] == pod["Statement"]
    for statement in pod["Statement"]:
        for action in statement["Action"]:
            for resource in statement["Resource"]:
                assert is_allowed(daemon, action, resource), (action, resource)
    for kind, rest in (("CreateTrainingJob", "training-job/t"), ("UpdateEndpoint", "endpoint/e"),
                       ("CreateLabelingJob", "labeling-job/l")):
        assert is_allowed(daemon, f"sagemaker:{kind}", ARN.format(service="sagemaker", rest=rest))
    assert is_allowed(daemon, "iam:PassRole", EXECUTION_ROLE_PLACEHOLDER)
    # and nothing more on SageMaker, logs or IAM than the pods
    for prefix in ("sagemaker", "logs", "iam"):
        assert pod_statement_actions(daemon, prefix) == pod_statement_actions(pod, prefix)


def test_the_daemon_takes_submissions_from_its_queue_only() -> None:
    daemon = daemon_policy(every_kind(), queue=SUBMISSIONS)
    other = ARN.format(service="sqs", rest="someone-elses-queue")
    for call in SUBMISSION_CALLS:
        assert is_allowed(daemon, f"sqs:{call}", SUBMISSIONS), call
        assert not is_allowed(daemon, f"sqs:{call}", other), call
        assert not is_allowed(daemon, f"sqs:{call}", DEAD_LETTER), call
    # a poison message goes to the dead-letter queue, by the daemon's own SendMessage
    # (its URL found with GetQueueUrl, from the queue's redrive policy)
    assert is_allowed(daemon, "sqs:SendMessage", DEAD_LETTER)
    assert is_allowed(daemon, "sqs:GetQueueUrl", DEAD_LETTER)
    assert not is_allowed(daemon, "sqs:SendMessage", SUBMISSIONS)
    assert not is_allowed(daemon, "sqs:SendMessage", other)
    assert not is_allowed(daemon, "sqs:PurgeQueue", SUBMISSIONS)
    assert not is_allowed(daemon, "sqs:DeleteQueue", SUBMISSIONS)
    assert pod_statement_actions(daemon, "sqs") == {*SUBMISSION_CALLS, "SendMessage",
                                                    "GetQueueUrl"}


def test_the_queue_may_be_given_as_the_daemon_takes_it() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/smrun-submissions"
    assert queue_arn(url) == SUBMISSIONS == queue_arn(SUBMISSIONS)
    assert queue_arn("https://eu-west-1.queue.amazonaws.com/123456789012/q") == (
        "arn:aws:sqs:eu-west-1:123456789012:q")
    assert queue_arn("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q") == (
        "arn:aws-cn:sqs:cn-north-1:123456789012:q")
    assert queue_arn("smrun-submissions") == "arn:aws:sqs:*:*:smrun-submissions"
    for bad in ("https://example.com/123456789012/q", "https://sqs.us-east-1.amazonaws.com/q",
                "arn:aws:s3:::bucket", "no spaces please"):
        with pytest.raises(ValueError):
            queue_arn(bad)
    by_url = daemon_policy(every_kind(), queue=url)
    assert is_allowed(by_url, "sqs:ReceiveMessage", SUBMISSIONS)
    assert is_allowed(by_url, "sqs:SendMessage", DEAD_LETTER)
    fifo = daemon_policy(every_kind(), queue=SUBMISSIONS + ".fifo")
    assert is_allowed(fifo, "sqs:SendMessage", DEAD_LETTER + ".fifo")
    named = daemon_policy(every_kind(), queue=SUBMISSIONS, dead_letter_queue="poison")
    assert is_allowed(named, "sqs:SendMessage", ARN.format(service="sqs", rest="poison"))
    assert not is_allowed(named, "sqs:SendMessage", DEAD_LETTER)


def test_the_daemon_reads_manifests_from_the_buckets_given_only() -> None:
    daemon = daemon_policy(every_kind(), queue=SUBMISSIONS,
                           manifest_buckets=["team-manifests", "s3://shared/pipelines/"])
    assert is_allowed(daemon, "s3:GetObject", "arn:aws:s3:::team-manifests/a/run.yaml")
    assert is_allowed(daemon, "s3:GetObject", "arn:aws:s3:::shared/pipelines/run.yaml")
    assert not is_allowed(daemon, "s3:GetObject", "arn:aws:s3:::shared/secrets.yaml")
    assert not is_allowed(daemon, "s3:GetObject", "arn:aws:s3:::someone-else/run.yaml")
    assert not is_allowed(daemon, "s3:PutObject", "arn:aws:s3:::team-manifests/run.yaml")
    assert pod_statement_actions(daemon, "s3") == {"GetObject"}
    with pytest.raises(ValueError):
        daemon_policy(every_kind(), manifest_buckets=["Not A Bucket"])


def test_without_a_queue_or_buckets_the_daemon_policy_has_placeholders() -> None:
    doc = daemon_policies(every_kind())
    daemon = doc["daemon"]["policy"]
    assert is_allowed(daemon, "sqs:ReceiveMessage", SUBMISSIONS_QUEUE_PLACEHOLDER)
    assert is_allowed(daemon, "sqs:SendMessage", SUBMISSIONS_QUEUE_PLACEHOLDER + "-dlq")
    assert is_allowed(daemon, "s3:GetObject", f"arn:aws:s3:::{MANIFEST_BUCKET_PLACEHOLDER}/x")
    assert not is_allowed(daemon, "sqs:ReceiveMessage", SUBMISSIONS)
    assert not is_allowed(daemon, "s3:GetObject", "arn:aws:s3:::any-bucket/x")
    json.dumps(doc)  # printable as the CLI prints it


def test_the_daemon_role_is_trusted_by_its_service_account_through_irsa() -> None:
    usage = every_kind()
    doc = daemon_policies(usage, queue=SUBMISSIONS)
    assert set(doc) == {"setup", "daemon", "execution"}
    assert all(identity["description"] for identity in doc.values())
    [trust] = doc["daemon"]["trust_policy"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    [subject] = [v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert subject == f"system:serviceaccount:<NAMESPACE>:{DAEMON_SERVICE_ACCOUNT}"
    assert DAEMON_SERVICE_ACCOUNT == "smrun-daemon"  # deploy/kubernetes/serviceaccount.yaml
    role = f"arn:aws:iam::<ACCOUNT_ID>:role/{DAEMON_ROLE_NAME}"
    assert is_allowed(doc["setup"]["policy"], "iam:CreateRole", role)
    assert not is_allowed(doc["setup"]["policy"], "iam:CreateRole",
                          "arn:aws:iam::<ACCOUNT_ID>:role/<KFP_POD_ROLE>")
    assert doc["execution"] == policies(usage)["execution"]
    assert SUBMISSIONS in doc["daemon"]["description"]


def test_the_daemon_policy_grants_every_call_the_runner_makes() -> None:
    """Every call runner/ makes by name (the daemon's queue and manifest reads among them,
    once they are there), for every kind, with an events queue."""
    usage = usage_of(list(KINDS.values()), events_queue="smrun-events")
    daemon = daemon_policy(usage, queue=SUBMISSIONS)
    assert ungranted(daemon, engine_calls()) == set()
    more = textwrap.dedent("""
        async def poison(call, url, body):
            await call("sqs", "SendMessage", QueueUrl=url, MessageBody=body)
            await call("s3", "GetObject", Bucket="b", Key="k")
            await call("s3", "PutObject", Bucket="b", Key="k")
    """)
    assert ungranted(daemon, engine_calls(more)) == {"s3:PutObject"}


def test_smrun_iam_policy_daemon_prints_the_daemons_policies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/smrun-submissions"
    assert cli.main(["iam-policy", "--daemon", "--queue", queue,
                     "--manifest-bucket", "s3://manifests/runs"]) == cli.EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    daemon = printed["daemon"]["policy"]
    submissions = "arn:aws:sqs:us-east-1:123456789012:smrun-submissions"
    assert is_allowed(daemon, "sqs:ReceiveMessage", submissions)
    assert is_allowed(daemon, "s3:GetObject", "arn:aws:s3:::manifests/runs/nightly.yaml")
    assert not is_allowed(daemon, "s3:GetObject", "arn:aws:s3:::manifests/other.yaml")
    assert set(printed) == {"setup", "daemon", "execution"}
