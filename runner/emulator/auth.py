"""Who is calling, and whether AWS would let them: the emulator's stand-in for IAM.

The emulator checks no signature. What it can do is what tests of credential
handling need: answer STS ``GetCallerIdentity`` with an identity per access
key, turn away chosen access keys the way AWS turns away an unknown key, an
expired session token or a bad signature, and deny chosen operations with the
``AccessDenied`` message IAM writes, naming the resource the request was for.

Codes, messages and statuses, and where they were checked:

* ``UnrecognizedClientException`` (400) "The security token included in the
  request is invalid." -- SageMaker and CloudWatch Logs answers quoted in
  aws/amazon-sagemaker-operator-for-k8s#99 (status 400) and in
  fluent-plugin-cloudwatch-logs#117; the raw JSON body in
  ArranJacques/laravel-aws-cognito-auth#25.
* ``ExpiredTokenException`` (400) "The security token included in the request
  is expired" -- the message as Secrets Manager, Lambda and other JSON
  services send it (cloud-custodian/cloud-custodian#9216). The status is 400
  by analogy with the other JSON-protocol credential errors; no capture of a
  SageMaker or Logs answer was found to confirm it.
* ``InvalidSignatureException`` (400) "The request signature we calculated
  does not match ..." -- teralytics/prometheus-ecs-discovery#7 (status 400),
  aws/aws-sdk-js#168 (message).
* ``AccessDeniedException`` (400) -- AWS's common-errors pages (e.g. the RDS
  and EMR API references) give 400; the message form is quoted in
  aws-samples/aws-modern-application-workshop#253 and
  philschmid/cdk-samples#2 (``... because no identity-based policy allows
  the sagemaker:InvokeEndpoint action``). SQS, which came from the query
  protocol, also names it ``AccessDenied`` in its ``x-amzn-query-error``
  header, and botocore reports that code.

The STS (query protocol) equivalents are in :mod:`smrun.emulator.sts`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from smrun.emulator.protocol import ApiError, load_service_model

KeyRefusal = Literal["invalid_key", "expired_token", "bad_signature"]
KEY_REFUSALS: tuple[str, ...] = get_args(KeyRefusal)

# The services whose operations can be denied, by IAM service prefix.
DENIABLE_SERVICES = ("sagemaker", "logs", "sts", "sqs", "events")

# (code, message), each sent with HTTP 400.
_REFUSALS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "invalid_key": (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        "expired_token": (
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        "bad_signature": (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details.",
        ),
    }
)


def refusal_error(how: str) -> ApiError:
    """The JSON-protocol error AWS sends for a key refused ``how``."""
    code, message = _REFUSALS[how]
    return ApiError(code, message, 400)


def check_refusal(how: str) -> KeyRefusal:
    if how not in KEY_REFUSALS:
        raise ValueError(f"a key is refused as one of {', '.join(KEY_REFUSALS)}, not {how!r}")
    return cast(KeyRefusal, how)


# -- identities ------------------------------------------------------------

_IDENTITY_ARN = re.compile(r"arn:(aws[a-z-]*):(iam|sts)::(\d{12}):(\S+)")
_USER_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


@dataclass(frozen=True)
class Identity:
    """What ``GetCallerIdentity`` says about one caller."""

    arn: str
    user_id: str
    account: str

    @classmethod
    def from_arn(cls, arn: str) -> Identity:
        match = _IDENTITY_ARN.fullmatch(arn)
        if match is None:
            raise ValueError(
                f"{arn!r} is not an identity ARN (arn:aws:iam::<12 digits>:user/NAME, "
                "...:root, or arn:aws:sts::<12 digits>:assumed-role/ROLE/SESSION)"
            )
        account, resource = match.group(3), match.group(4)
        return cls(arn=arn, user_id=_user_id(account, resource), account=account)


def _unique_id(prefix: str, seed: str) -> str:
    # IAM's unique ids: a 4-letter kind prefix and 17 upper-case characters.
    digest = hashlib.sha256(seed.encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:17]


def _user_id(account: str, resource: str) -> str:
    """The ``UserId`` AWS reports for a principal, in AWS's form for its kind."""
    kind, _, rest = resource.partition("/")
    if resource == "root":
        return account
    if kind == "assumed-role":
        role, _, session = rest.partition("/")
        return f"{_unique_id('AROA', f'{account}:role/{role}')}:{session}"
    if kind == "federated-user":
        return f"{account}:{rest}"
    if kind == "role":
        return _unique_id("AROA", f"{account}:{resource}")
    return _unique_id("AIDA", f"{account}:{resource}")


def default_user_arn(account: str, access_key_id: str) -> str:
    """An IAM user named after the key, so that two keys are two callers."""
    name = _USER_NAME_UNSAFE.sub("-", access_key_id)[:64] or "emulator"
    return f"arn:aws:iam::{account}:user/{name}"


class Identities(MutableMapping[str, str]):
    """Access key id -> the ARN of the principal it belongs to.

    Keys not in the mapping belong to an IAM user of ``account`` named after
    the key. ARNs are checked as they are set.
    """

    def __init__(self, account: str) -> None:
        self.account = account
        self._arns: dict[str, str] = {}

    def __getitem__(self, access_key_id: str) -> str:
        return self._arns[access_key_id]

    def __setitem__(self, access_key_id: str, arn: str) -> None:
        Identity.from_arn(arn)
        self._arns[access_key_id] = arn

    def __delitem__(self, access_key_id: str) -> None:
        del self._arns[access_key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arns)

    def __len__(self) -> int:
        return len(self._arns)

    def of(self, access_key_id: str) -> Identity:
        arn = self._arns.get(access_key_id) or default_user_arn(self.account, access_key_id)
        return Identity.from_arn(arn)

    def replace(self, arns: Mapping[str, Any]) -> None:
        """Set the whole mapping, or (if any ARN is bad) change nothing."""
        checked: dict[str, str] = {}
        for key, arn in arns.items():
            if not isinstance(arn, str):
                raise ValueError(f"the identity of {key!r} must be an ARN string")
            Identity.from_arn(arn)
            checked[key] = arn
        self._arns = checked


# -- authorization ---------------------------------------------------------


def check_deny_entry(entry: Any) -> str:
    """``Operation``, ``service:Operation`` or ``service:*``, for a known operation."""
    if not isinstance(entry, str):
        raise ValueError(f"a denied operation is a string, not {entry!r}")
    service, _, operation = entry.rpartition(":")
    services = (service,) if service else DENIABLE_SERVICES
    if ":" in entry and service not in DENIABLE_SERVICES:
        raise ValueError(f"{entry!r}: the service is one of {', '.join(DENIABLE_SERVICES)}")
    if operation == "*" and service:
        return entry
    if not any(operation in load_service_model(s).operation_names for s in services):
        raise ValueError(f"{entry!r} names no operation of {' or '.join(services)}")
    return entry


def denies(entry: str, service: str, operation: str) -> bool:
    prefix, _, name = entry.rpartition(":")
    return prefix in ("", service) and name in ("*", operation)


def access_denied(principal_arn: str, service: str, operation: str, resource: str) -> ApiError:
    """``AccessDeniedException`` as IAM words it for an action no policy allows."""
    action = f"{service}:{operation}"
    return ApiError(
        "AccessDeniedException",
        f"User: {principal_arn} is not authorized to perform: {action} on resource: "
        f"{resource} because no identity-based policy allows the {action} action",
        query_code="AccessDenied",  # what SQS calls it
    )


def _kebab(noun: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", noun).lower()


def _sagemaker_resource(operation: str, wire: Mapping[str, Any], region: str, account: str) -> str:
    arn = wire.get("ResourceArn")
    if isinstance(arn, str) and arn:
        return arn
    noun = re.sub(r"^[A-Z][a-z]+", "", operation)  # CreateTrainingJob -> TrainingJob
    name = wire.get(f"{noun}Name")
    if not isinstance(name, str) or not name:
        return "*"
    # SageMaker ARNs carry names lower-cased, as the emulator's own do.
    return f"arn:aws:sagemaker:{region}:{account}:{_kebab(noun)}/{name.lower()}"


def _sqs_resource(wire: Mapping[str, Any], region: str) -> str:
    # a queue URL ends in /{account}/{name}
    parts = str(wire.get("QueueUrl", "")).rstrip("/").split("/")
    if len(parts) < 2 or not parts[-2].isdigit():
        return "*"
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


def _logs_resource(operation: str, wire: Mapping[str, Any], region: str, account: str) -> str:
    group = wire.get("logGroupName") or wire.get("logGroupIdentifier")
    if not isinstance(group, str) or not group:
        return "*"
    if group.startswith("arn:"):
        arn = group.removesuffix(":*")
    else:
        arn = f"arn:aws:logs:{region}:{account}:log-group:{group}"
    stream = wire.get("logStreamName")
    if isinstance(stream, str) or "LogStream" in operation:
        # IAM names a stream action's resource with the stream, empty for
        # DescribeLogStreams: "...:log-group:NAME:log-stream:".
        return f"{arn}:log-stream:{stream if isinstance(stream, str) else ''}"
    return arn


def resource_arn(
    service: str, operation: str, wire: Mapping[str, Any], *, region: str, account: str
) -> str:
    """The resource an AccessDenied message names: from the request's name, else ``*``."""
    if service == "sagemaker":
        return _sagemaker_resource(operation, wire, region, account)
    if service == "logs":
        return _logs_resource(operation, wire, region, account)
    if service == "sqs":
        return _sqs_resource(wire, region)
    return "*"
