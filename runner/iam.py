"""Least-privilege IAM policies for the three identities of SageMaker on Kubeflow Pipelines.

- **setup**: the person or CI job that creates the two roles below and links the
  pod role to the KFP service account (a small, explained set of IAM and EKS
  actions);
- **pod**: the role the KFP pods (or any ``smrun`` process) use to call SageMaker
  and CloudWatch Logs. Its actions come from the handlers' data: each
  :class:`~smrun.kind.Kind`'s create/describe/stop/list operations and its
  ``extra_operations``, the tagging calls every job makes, and the log follower's
  two reads. Resources are the ARN types of the kinds in use, found in botocore's
  model (an operation without required members is a List* call: ``*``);
- **execution**: the role SageMaker itself assumes to run the jobs: a trust policy
  for ``sagemaker.amazonaws.com``, and S3, ECR, CloudWatch, KMS, VPC and Lambda
  access derived from a manifest's requests when one is given.

``smrun daemon`` runs as a fourth identity in place of the pods (:func:`daemon_policies`):
the pod policy for every kind it may run, plus its submissions queue, that queue's
dead-letter queue and the buckets it fetches manifests from, trusted through IRSA by the
``smrun-daemon`` service account of ``deploy/kubernetes``.

Everything here is a pure function over kinds and manifests; nothing calls AWS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from smrun.kind import Kind
from smrun.manifest import Manifest, sagemaker_model
from smrun.v1 import Component, InputType
from smrun.watch.events import CONSUME_ACTIONS

Policy = dict[str, Any]
Statement = dict[str, Any]

VERSION = "2012-10-17"
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
# every job is tagged at creation (AddTags) and its tags read on attach (ListTags)
TAG_OPERATIONS = ("AddTags", "ListTags")
# what runner.logs calls
LOG_OPERATIONS = ("DescribeLogStreams", "FilterLogEvents", "GetLogEvents")
SAGEMAKER_LOG_GROUPS = "arn:aws:logs:*:*:log-group:/aws/sagemaker/*"
ACCOUNT = "<ACCOUNT_ID>"
EXECUTION_ROLE_PLACEHOLDER = f"arn:aws:iam::{ACCOUNT}:role/<SAGEMAKER_EXECUTION_ROLE>"
POD_ROLE_NAME = "<KFP_POD_ROLE>"
BUCKET_PLACEHOLDER = "<BUCKET>"
# the daemon (``smrun daemon``): its service account in deploy/kubernetes and its role
DAEMON_SERVICE_ACCOUNT = "smrun-daemon"
DAEMON_ROLE_NAME = "<SMRUN_DAEMON_ROLE>"
SUBMISSIONS_QUEUE_PLACEHOLDER = f"arn:aws:sqs:<REGION>:{ACCOUNT}:<SUBMISSIONS_QUEUE>"
MANIFEST_BUCKET_PLACEHOLDER = "<MANIFEST_BUCKET>"
# what the daemon does with its submissions queue: receive a message, keep it invisible
# while the run is taken on, delete it once the run is stored
SUBMISSION_ACTIONS = (
    "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
)
# a message that cannot become a run is moved by the daemon itself to the dead-letter queue
DEAD_LETTER_ACTIONS = ("sqs:GetQueueUrl", "sqs:SendMessage")
DEAD_LETTER_SUFFIX = "-dlq"  # the queue's name plus this, as `smrun events setup` names its own

_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/|$)")
_ROLE_ARN = re.compile(r"arn:aws[a-z\-]*:iam::(\d{12}):role/[\w+=,.@/\-]+$")
_LAMBDA_ARN = re.compile(
    r"arn:aws[a-z\-]*:lambda:[a-z0-9\-]+:\d{12}:function:[\w\-]+(?::[\w\-]+)?$"
)
_ECR_IMAGE = re.compile(
    r"(\d{12})\.dkr\.ecr\.([a-z0-9\-]+)\.amazonaws\.com(?:\.cn)?/([a-z0-9][a-z0-9._/\-]*)"
)
_KMS_ARN = re.compile(r"arn:aws[a-z\-]*:kms:")
_QUEUE_NAME = re.compile(r"[\w\-]{1,80}(?:\.fifo)?$")
_QUEUE_ARN = re.compile(
    r"arn:aws[a-z\-]*:sqs:(?:[a-z0-9\-]+|\*):(?:\d{12}|\*):[\w\-]{1,80}(?:\.fifo)?$"
)
_REGION = re.compile(r"(?:^|\.)([a-z]{2}(?:-[a-z]+)+-\d+)\.")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_VPC_MEMBERS = ("VpcConfig", "NetworkConfig")
_IMAGE_MEMBERS = ("Image", "TrainingImage", "ImageUri")


# ---------------------------------------------------------------------------
# what a policy is for


@dataclass(frozen=True)
class Usage:
    """The facts a set of policies is derived from: the kinds in use and what
    their requests name. Build it with :func:`usage_of` or by hand."""

    kinds: tuple[Kind, ...]
    roles: tuple[str, ...] = ()  # execution roles the pod passes to SageMaker
    buckets: tuple[str, ...] = ()
    images: tuple[str, ...] = ()  # ECR image URIs
    kms_keys: tuple[str, ...] = ()  # ARNs, key ids or alias names
    lambdas: tuple[str, ...] = ()  # function ARNs (Ground Truth pre/post processing)
    vpc: bool = False
    assume_role: str | None = None  # the role the pod assumes (``--assume-role``)
    # the SQS queue the pods read SageMaker's events from (``--watch events``): a name or ARN
    events_queue: str | None = None
    from_manifest: bool = False  # whether buckets/images were looked for in requests


def usage_of(
    kinds: Iterable[Kind],
    manifest: Manifest | None = None,
    *,
    known: Mapping[str, Kind] | None = None,
    role_arn: str | None = None,
    assume_role: str | None = None,
    events_queue: str | None = None,
) -> Usage:
    """The usage of ``kinds`` plus every kind of ``manifest`` (looked up in
    ``known``) and what its requests name."""
    chosen = {k.name: k for k in kinds}
    found = _Found()
    if manifest is not None:
        for spec in manifest.jobs.values():
            chosen.setdefault(spec.kind, (known or {})[spec.kind])
            found.scan(spec.request, ())
        if manifest.defaults.role:
            found.roles.append(manifest.defaults.role)
    if role_arn:
        found.roles.append(role_arn)
    return Usage(
        kinds=tuple(chosen[name] for name in sorted(chosen)),
        roles=_unique(found.roles),
        buckets=_unique(found.buckets),
        images=_unique(found.images),
        kms_keys=_unique(found.kms_keys),
        lambdas=_unique(found.lambdas),
        vpc=found.vpc,
        assume_role=assume_role,
        events_queue=events_queue,
        from_manifest=manifest is not None,
    )


@dataclass
class _Found:
    roles: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    kms_keys: list[str] = field(default_factory=list)
    lambdas: list[str] = field(default_factory=list)
    vpc: bool = False

    def scan(self, value: Any, path: tuple[str, ...]) -> None:
        member = path[-1] if path else ""
        if isinstance(value, Mapping):
            for key, item in value.items():
                if str(key) in _VPC_MEMBERS and _has_vpc(str(key), item):
                    self.vpc = True
                self.scan(item, (*path, str(key)))
        elif isinstance(value, list):
            for item in value:
                self.scan(item, path)
        elif isinstance(value, str) and "{{" not in value:
            self._text(member, value.strip())

    def _text(self, member: str, text: str) -> None:
        if text.startswith("s3://"):
            match = _S3_URI.match(text)
            if match:
                self.buckets.append(match.group(1))
        elif _ROLE_ARN.match(text):
            self.roles.append(text)
        elif _LAMBDA_ARN.match(text):
            self.lambdas.append(text)
        elif member.endswith(("KmsKeyId", "KmsKey", "KmsKeyArn")) and text:
            self.kms_keys.append(text)
        elif member in _IMAGE_MEMBERS and _ECR_IMAGE.match(text):
            self.images.append(text)


def _has_vpc(member: str, value: Any) -> bool:
    if not isinstance(value, Mapping):
        return False
    if member == "NetworkConfig":  # processing jobs nest it
        return bool(value.get("VpcConfig"))
    return bool(value.get("Subnets"))


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(dict.fromkeys(values)))


def resolve_kinds(
    names: Iterable[str], kinds: Mapping[str, Kind], components: Mapping[str, Component]
) -> list[Kind]:
    """Kinds by manifest kind name or v1 component name (``train``, ``deploy``: every
    kind the component's jobs are); :class:`ValueError` names an unknown one."""
    found: dict[str, Kind] = {}
    for name in names:
        if name in kinds:
            found[name] = kinds[name]
        elif name in components:
            found.update((k, kinds[k]) for k in sorted(component_kinds(components[name])))
        else:
            known = ", ".join(sorted({*kinds, *components}))
            raise ValueError(f"unknown kind {name!r} (known: {known})")
    return list(found.values())


def component_kinds(component: Component) -> set[str]:
    """The kinds of the jobs a v1 component runs (deploy: endpoint config and endpoint),
    found by building its jobs for sample arguments."""
    if component.to_jobs is None:
        return {component.kind}
    samples = {InputType.STRING: "sample", InputType.INTEGER: 1, InputType.FLOAT: 1.0,
               InputType.BOOL: False, InputType.JSON_OBJECT: {}, InputType.JSON_ARRAY: [],
               InputType.CSV_LIST: "sample"}
    raw = {i.name: samples[i.type] for i in component.all_inputs if i.required}
    return {component.kind, *(job.kind for job in component.jobs(component.parse(raw)).values())}


# ---------------------------------------------------------------------------
# the operations of the kinds, and the resources they act on


def kind_operations(kind: Kind) -> tuple[str, ...]:
    """Every SageMaker operation the engine and the kind's hooks call for ``kind``."""
    ops = (kind.create, kind.describe, kind.stop, kind.list_operation, *kind.extra_operations)
    return tuple(dict.fromkeys(op for op in ops if op))


def arn_type(name_member: str) -> str:
    """The SageMaker ARN resource type a ``*Name`` member names:
    ``HyperParameterTuningJobName`` -> ``hyper-parameter-tuning-job``."""
    stem = name_member.removesuffix("Name")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", stem).lower()


def sagemaker_arn(resource_type: str) -> str:
    return f"arn:aws:sagemaker:*:*:{resource_type}/*"


def _input_shape(operation: str) -> Any:
    return sagemaker_model().operation_model(operation).input_shape


def _named_types(operation: str) -> set[str]:
    shape = _input_shape(operation)
    required = shape.required_members if shape is not None else []
    return {arn_type(m) for m in required if m.endswith("Name")}


def _is_unscoped(operation: str) -> bool:
    """List* calls name no resource: IAM grants them on ``*`` only."""
    shape = _input_shape(operation)
    return shape is None or not shape.required_members


def sagemaker_grants(kinds: Sequence[Kind]) -> dict[str, set[str]]:
    """Each SageMaker operation the kinds call, with the ARN types it acts on
    (an empty set: the operation takes ``*``)."""
    own = {arn_type(k.name_field) for k in kinds}
    grants: dict[str, set[str]] = {}

    def grant(op: str, types: Iterable[str]) -> None:
        grants.setdefault(op, set()).update(() if _is_unscoped(op) else types)

    for kind in kinds:
        mine = arn_type(kind.name_field)
        for op in (kind.create, kind.describe, kind.stop, kind.list_operation):
            if op:  # a create that names another resource of ours needs it too (endpoint config)
                grant(op, {mine} | (_named_types(op) & own))
        for op in kind.extra_operations:  # hooks reach other resources (a tuning job's children)
            grant(op, _named_types(op) or {mine})
    for op in TAG_OPERATIONS:
        grant(op, own)
    return grants


def passes_role(kind: Kind) -> bool:
    """Whether creating ``kind`` can hand SageMaker a role (so the pod needs iam:PassRole):
    its request has a role member, at any depth (a tuning job's is in its training
    job definition)."""
    names = {kind.role_field, "RoleArn", "ExecutionRoleArn"}
    seen: set[str] = set()

    def has_role(shape: Any) -> bool:
        if shape is None or shape.name in seen:
            return False
        seen.add(shape.name)
        if shape.type_name == "structure":
            return any(n in names or has_role(m) for n, m in shape.members.items())
        if shape.type_name == "list":
            return bool(has_role(shape.member))
        if shape.type_name == "map":
            return bool(has_role(shape.value))
        return False

    return has_role(_input_shape(kind.create))


def logs_followed(kind: Kind) -> bool:
    return kind.log_group is not None or kind.log_sources is not None


# ---------------------------------------------------------------------------
# the three identities


def pod_policy(usage: Usage) -> Policy:
    """What the KFP pods' role needs: exactly the calls the runner makes for these kinds."""
    grants = sagemaker_grants(usage.kinds)
    statements: list[Statement] = []
    anywhere = sorted(op for op, types in grants.items() if not types)
    if anywhere:
        statements.append(_allow("SageMakerList", [f"sagemaker:{op}" for op in anywhere], ["*"]))
    by_types: dict[frozenset[str], list[str]] = {}
    for op, arn_types in grants.items():
        if arn_types:
            by_types.setdefault(frozenset(arn_types), []).append(op)
    sids: set[str] = set()
    for types, ops in sorted(by_types.items(), key=lambda item: sorted(item[0])):
        sid = "SageMakerTags" if set(ops) <= set(TAG_OPERATIONS) else _sid(types)
        while sid in sids:
            sid += "X"
        sids.add(sid)
        actions = [f"sagemaker:{op}" for op in sorted(ops)]
        statements.append(_allow(sid, actions, [sagemaker_arn(t) for t in sorted(types)]))
    if any(logs_followed(k) for k in usage.kinds):
        statements.append(_allow(
            "ReadJobLogs", [f"logs:{op}" for op in LOG_OPERATIONS], [SAGEMAKER_LOG_GROUPS]
        ))
    if any(passes_role(k) for k in usage.kinds):
        statement = _allow(
            "PassExecutionRole", ["iam:PassRole"], list(usage.roles or [EXECUTION_ROLE_PLACEHOLDER])
        )
        statement["Condition"] = {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}}
        statements.append(statement)
    if usage.events_queue:
        queue = usage.events_queue
        arn = queue if queue.startswith("arn:") else f"arn:aws:sqs:*:*:{queue}"
        statements.append(_allow("ReadEventsQueue", list(CONSUME_ACTIONS), [arn]))
    if usage.assume_role:
        statements.append(_allow("AssumeRunnerRole", ["sts:AssumeRole"], [usage.assume_role]))
    return {"Version": VERSION, "Statement": statements}


def pod_trust_policy(namespace: str = "<NAMESPACE>",
                     service_account: str = "<SERVICE_ACCOUNT>") -> Policy:
    """IAM roles for service accounts (IRSA): the pods of one KFP service account may
    assume the pod role. Fill in the cluster's OIDC issuer (without ``https://``)."""
    issuer = "<OIDC_ISSUER>"
    return {
        "Version": VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": "sts.amazonaws.com",
            }},
        }],
    }


def execution_trust_policy() -> Policy:
    return {
        "Version": VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": SAGEMAKER_SERVICE},
            "Action": "sts:AssumeRole",
        }],
    }


def execution_policy(usage: Usage) -> Policy:
    """What SageMaker needs, as the execution role, to run the jobs of ``usage``."""
    statements: list[Statement] = []
    buckets = usage.buckets or (() if usage.from_manifest else (BUCKET_PLACEHOLDER,))
    if buckets:
        statements.append(_allow(
            "ListDataBuckets", ["s3:ListBucket", "s3:GetBucketLocation"],
            [f"arn:aws:s3:::{b}" for b in buckets],
        ))
        statements.append(_allow(
            "ReadWriteData", ["s3:GetObject", "s3:PutObject"],
            [f"arn:aws:s3:::{b}/*" for b in buckets],
        ))
    statements.append(_allow("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"]))
    repositories = sorted({_repository_arn(i) for i in usage.images}) or [
        "arn:aws:ecr:*:*:repository/*"
    ]
    statements.append(_allow(
        "PullImages",
        ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        repositories,
    ))
    statements.append(_allow(
        "WriteJobLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams",
         "logs:PutLogEvents"],
        [SAGEMAKER_LOG_GROUPS],
    ))
    metrics = _allow("PutJobMetrics", ["cloudwatch:PutMetricData"], ["*"])
    metrics["Condition"] = {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
    statements.append(metrics)
    if usage.kms_keys:
        statements.append(_allow(
            "UseKmsKeys",
            ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt",
             "kms:GenerateDataKey"],
            sorted({_kms_arn(k) for k in usage.kms_keys}),
        ))
    if usage.vpc:
        statements.append(_allow(
            "RunInVpc",
            ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
             "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
             "ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces",
             "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"],
            ["*"],
        ))
    if usage.lambdas:
        statements.append(_allow("InvokeLabelingFunctions", ["lambda:InvokeFunction"],
                                 list(usage.lambdas)))
    return {"Version": VERSION, "Statement": statements}


def setup_policy(usage: Usage, *, pod_role: str = POD_ROLE_NAME) -> Policy:
    """What the person or CI job setting up SageMaker-on-KFP needs: create the pod (or
    daemon: ``pod_role``) and execution roles and their policies, link the pod role to
    the cluster (IRSA)."""
    account = _account(usage) or ACCOUNT
    roles = [*(usage.roles or [EXECUTION_ROLE_PLACEHOLDER]),
             f"arn:aws:iam::{account}:role/{pod_role}"]
    passing = _allow("TryAJobByHand", ["iam:PassRole"], list(usage.roles or
                                                              [EXECUTION_ROLE_PLACEHOLDER]))
    passing["Condition"] = {"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}}
    return {
        "Version": VERSION,
        "Statement": [
            _allow(
                "CreateTheTwoRoles",
                ["iam:CreateRole", "iam:GetRole", "iam:GetRolePolicy", "iam:PutRolePolicy",
                 "iam:TagRole", "iam:UpdateAssumeRolePolicy"],
                roles,
            ),
            _allow(
                "LinkPodRoleToCluster",
                ["iam:CreateOpenIDConnectProvider", "iam:GetOpenIDConnectProvider",
                 "iam:TagOpenIDConnectProvider"],
                [f"arn:aws:iam::{account}:oidc-provider/*"],
            ),
            _allow("ReadCluster", ["eks:DescribeCluster"],
                   [f"arn:aws:eks:*:{account}:cluster/<CLUSTER>"]),
            passing,
        ],
    }


def policies(usage: Usage) -> dict[str, Any]:
    """The three identities, each with what it is for and its policy documents."""
    kinds = ", ".join(k.name for k in usage.kinds)
    pod_note = (
        f"Attach to the role the KFP pods run as (kinds: {kinds}). It allows exactly the "
        "SageMaker calls smrun makes for these kinds (create, describe, stop, list, the "
        "kinds' own extra calls, tagging), reading their CloudWatch logs, and passing the "
        "execution role to SageMaker only."
    )
    if usage.assume_role:
        pod_note += (
            f" With --assume-role the pod only assumes {usage.assume_role}: give that role "
            "these SageMaker, logs and PassRole statements, and a trust policy that lets "
            "the pod role assume it."
        )
    if any(k.name == "workteam" for k in usage.kinds):
        pod_note += (
            " A private workteam's Amazon Cognito user pool and SNS topic are set up "
            "beforehand; their own permissions are not part of this policy."
        )
    execution_note = (
        "Create this role with the trust policy below; manifests give its ARN as "
        "defaults.role (components: the role argument). SageMaker assumes it to read "
        "data, pull images and write models, logs and metrics."
    )
    if not usage.from_manifest:
        execution_note += f" Replace {BUCKET_PLACEHOLDER} with your buckets (or pass a manifest)."
    return {
        "setup": {
            "description": (
                "For the person or CI job that sets up SageMaker on an existing EKS cluster "
                "with Kubeflow Pipelines: create the pod and execution roles (put the two "
                "policies below on them as inline policies), register the cluster's OIDC "
                "provider and link the pod role to the KFP service account (IRSA), and pass "
                "the execution role to "
                "try a job by hand. Creating the cluster and installing KFP need the cluster "
                "administrator's own permissions, which this does not cover. Replace the "
                "<...> placeholders."
            ),
            "policy": setup_policy(usage),
        },
        "pod": {
            "description": pod_note,
            "policy": pod_policy(usage),
            "trust_policy": pod_trust_policy(),
        },
        "execution": {
            "description": execution_note,
            "trust_policy": execution_trust_policy(),
            "policy": execution_policy(usage),
        },
    }


# ---------------------------------------------------------------------------
# the daemon


def queue_arn(queue: str) -> str:
    """An SQS queue's ARN from its ARN, its URL (what ``smrun daemon --queue`` takes) or
    its name (any region and account); :class:`ValueError` for anything else."""
    queue = queue.strip()
    if queue.startswith("arn:"):
        if not _QUEUE_ARN.match(queue):
            raise ValueError(f"not an SQS queue ARN: {queue!r}")
        return queue
    if queue.startswith(("https://", "http://")):
        url = urlsplit(queue)
        parts = [p for p in url.path.split("/") if p]
        host = url.hostname or ""
        if len(parts) != 2 or not re.fullmatch(r"\d{12}", parts[0]) \
                or not _QUEUE_NAME.match(parts[1]) or ".amazonaws.com" not in host:
            raise ValueError(f"not an SQS queue URL: {queue!r}")
        found = _REGION.search(host)
        region = found.group(1) if found else "*"
        partition = ("aws-cn" if host.endswith(".amazonaws.com.cn")
                     else "aws-us-gov" if region.startswith("us-gov-") else "aws")
        return f"arn:{partition}:sqs:{region}:{parts[0]}:{parts[1]}"
    if not _QUEUE_NAME.match(queue):
        raise ValueError(f"not an SQS queue name, URL or ARN: {queue!r}")
    return f"arn:aws:sqs:*:*:{queue}"


def dead_letter_arn(queue: str) -> str:
    """The dead-letter queue of ``queue`` (an ARN) by the project's naming: its name plus
    ``-dlq`` (a FIFO queue's before ``.fifo``, as SQS requires a FIFO one)."""
    if queue.endswith(".fifo"):
        return queue.removesuffix(".fifo") + DEAD_LETTER_SUFFIX + ".fifo"
    return queue + DEAD_LETTER_SUFFIX


def manifest_objects(location: str) -> str:
    """The S3 objects ``s3:GetObject`` is granted on for a manifest location: a bucket,
    ``bucket/prefix`` or ``s3://bucket/prefix``."""
    path = location.strip().removeprefix("s3://").strip("/")
    bucket, _, prefix = path.partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(f"not an S3 bucket (or s3://bucket/prefix): {location!r}")
    return f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"


def daemon_policy(
    usage: Usage,
    *,
    queue: str | None = None,
    dead_letter_queue: str | None = None,
    manifest_buckets: Sequence[str] = (),
) -> Policy:
    """What ``smrun daemon``'s role needs: the pod policy of ``usage`` (every kind the
    daemon may run), its submissions queue (an ARN, URL or name; a placeholder when
    ``None``) and that queue's dead-letter queue (by default its name plus ``-dlq``), and
    reading manifests from ``manifest_buckets`` (buckets or ``s3://bucket/prefix``; a
    placeholder when empty)."""
    submissions, dead_letter = _daemon_queues(queue, dead_letter_queue)
    objects = [manifest_objects(b) for b in manifest_buckets] or [
        f"arn:aws:s3:::{MANIFEST_BUCKET_PLACEHOLDER}/*"
    ]
    statements: list[Statement] = list(pod_policy(usage)["Statement"])
    statements.append(_allow("ReceiveSubmissions", SUBMISSION_ACTIONS, [submissions]))
    statements.append(_allow("DeadLetterSubmissions", DEAD_LETTER_ACTIONS, [dead_letter]))
    statements.append(_allow("ReadManifests", ["s3:GetObject"], list(dict.fromkeys(objects))))
    return {"Version": VERSION, "Statement": statements}


def _daemon_queues(queue: str | None, dead_letter_queue: str | None) -> tuple[str, str]:
    submissions = queue_arn(queue) if queue else SUBMISSIONS_QUEUE_PLACEHOLDER
    if dead_letter_queue:
        return submissions, queue_arn(dead_letter_queue)
    return submissions, dead_letter_arn(submissions)


def daemon_policies(
    usage: Usage,
    *,
    queue: str | None = None,
    dead_letter_queue: str | None = None,
    manifest_buckets: Sequence[str] = (),
) -> dict[str, Any]:
    """What :func:`policies` gives, for ``smrun daemon``: the setup identity (creating the
    daemon's role), the daemon's role (:func:`daemon_policy`, trusted by the
    ``smrun-daemon`` service account through IRSA) in place of the pods', and the
    execution role. ``usage`` names every kind the daemon may run, which is all of them
    (``usage_of(KINDS.values())``): it runs whatever manifest it is sent."""
    doc = policies(usage)
    policy = daemon_policy(usage, queue=queue, dead_letter_queue=dead_letter_queue,
                           manifest_buckets=manifest_buckets)
    submissions, dead_letter = _daemon_queues(queue, dead_letter_queue)
    kinds = ", ".join(k.name for k in usage.kinds)
    note = (
        "Attach to the role of the daemon's Kubernetes service account "
        f"{DAEMON_SERVICE_ACCOUNT} (deploy/kubernetes/serviceaccount.yaml, through IRSA; "
        f"kinds: {kinds}). It allows the SageMaker calls smrun makes for these kinds, "
        "reading their CloudWatch logs and passing the execution role to SageMaker only, "
        "as the pods' policy does; receiving, holding and deleting the messages of the "
        f"submissions queue {submissions}, moving a message that cannot be run to its "
        f"dead-letter queue {dead_letter}, and reading manifests from S3 "
        f"({', '.join(manifest_buckets) or MANIFEST_BUCKET_PLACEHOLDER}). Queues or buckets "
        "encrypted with a customer managed KMS key also need kms:Decrypt (and "
        "kms:GenerateDataKey for the dead-letter queue) on that key."
    )
    if queue is None:
        note += (
            " Replace <REGION> and <SUBMISSIONS_QUEUE> with the queue of the daemon's "
            "--queue; a daemon run without --queue reads no queue: drop ReceiveSubmissions "
            "and DeadLetterSubmissions."
        )
    if usage.assume_role:
        note += (
            f" With --assume-role the daemon assumes {usage.assume_role} for SageMaker: "
            "give that role the SageMaker, logs and PassRole statements."
        )
    if not usage.roles:
        note += " Replace <SAGEMAKER_EXECUTION_ROLE> with the roles manifests name."
    setup = (
        "For the person or CI job that sets up the smrun daemon on an existing EKS cluster: "
        "create the daemon and execution roles (put the two policies below on them as "
        "inline policies), register the cluster's OIDC provider, link the daemon role to "
        f"the {DAEMON_SERVICE_ACCOUNT} service account (IRSA: its trust policy below, and "
        "the role's ARN in the service account's eks.amazonaws.com/role-arn annotation), "
        "and pass the execution role to try a job by hand. Creating the cluster, the "
        "queues and the database needs other permissions, which this does not cover. "
        "Replace the <...> placeholders."
    )
    return {
        "setup": {"description": setup,
                  "policy": setup_policy(usage, pod_role=DAEMON_ROLE_NAME)},
        "daemon": {
            "description": note,
            "policy": policy,
            "trust_policy": pod_trust_policy(service_account=DAEMON_SERVICE_ACCOUNT),
        },
        "execution": doc["execution"],
    }


# ---------------------------------------------------------------------------
# reading policies


def is_allowed(policy: Policy, action: str, resource: str) -> bool:
    """Whether an Allow statement of ``policy`` matches ``action`` on ``resource``.

    Wildcards as IAM reads them (``*``, ``?``; actions case-insensitively);
    conditions are not evaluated, and there are no Deny statements to weigh."""
    for statement in _statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource"))
        if any(_matches(a, action, ignore_case=True) for a in actions) and any(
            _matches(r, resource) for r in resources
        ):
            return True
    return False


def allowed_actions(policy: Policy) -> set[str]:
    return {a for s in _statements(policy) for a in _as_list(s.get("Action"))}


def _statements(policy: Policy) -> Iterator[Statement]:
    yield from _as_list(policy.get("Statement"))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


# ---------------------------------------------------------------------------
# small helpers


def _allow(sid: str, actions: Sequence[str], resources: Sequence[str]) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}


def _sid(types: Iterable[str]) -> str:
    words = "-".join(sorted(types)).split("-")
    return "SageMaker" + "".join(w.capitalize() for w in words)


def _repository_arn(image: str) -> str:
    match = _ECR_IMAGE.match(image)
    assert match is not None  # images are kept only when they match
    account, region, path = match.groups()
    repository = re.split(r"[:@]", path, maxsplit=1)[0]
    return f"arn:aws:ecr:{region}:{account}:repository/{repository}"


def _kms_arn(key: str) -> str:
    if _KMS_ARN.match(key):
        return key
    if key.startswith("alias/"):
        return f"arn:aws:kms:*:*:{key}"
    return f"arn:aws:kms:*:*:key/{key}"


def _account(usage: Usage) -> str | None:
    for role in usage.roles:
        match = _ROLE_ARN.match(role)
        if match:
            return match.group(1)
    return None
