"""One classification of AWS errors, used everywhere.

Whether an error is retried, ends a job, or is an environment problem to
report before anything is created is decided here and nowhere else: no other
module reads an AWS error's code or message text. Codes come from botocore's
``ClientError`` (``response["Error"]["Code"]``); a few SageMaker answers can
only be told apart by their message, and those rules live here too.

Error handling: nothing here raises; every function takes any exception.
"""

from __future__ import annotations

import enum
import sys

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class ErrorClass(enum.Enum):
    """What an error means to the runner."""

    THROTTLED = "throttled"  # over a rate quota: wait and retry, never fail
    TRANSIENT = "transient"  # 5xx or a dropped connection: retry, never fail by itself
    NOT_FOUND = "not found"  # the resource (or one it names) does not exist
    ALREADY_EXISTS = "already exists"  # a create found the name taken
    IN_PROGRESS = "in progress"  # the resource is busy (an endpoint being created)
    DENIED = "access denied"  # IAM (or an endpoint policy) does not allow the call
    LIMIT_EXCEEDED = "limit exceeded"  # an account quota on resources (not a rate)
    CREDENTIALS = "credentials"  # none found, or rejected: invalid, expired, bad signature
    REGION = "region"  # no region set, or not a region name
    UNREACHABLE = "unreachable"  # the endpoint can't be reached (refused, DNS, TLS, timeout)
    INVALID = "invalid"  # the request itself is wrong (validation and everything else)


# The codes botocore's standard retry mode treats as throttling.
THROTTLING_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
})
TRANSIENT_CODES = frozenset({
    "InternalFailure", "InternalServerError", "InternalError", "ServiceUnavailable",
    "RequestTimeout", "RequestTimeoutException",
})
CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException",  # JSON services: unknown access key
    "InvalidClientTokenId",  # STS: unknown access key
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "AuthFailure",
})
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
EXISTS_CODES = frozenset({"ResourceInUse", "ResourceInUseException",
                          "ResourceAlreadyExistsException"})
LIMIT_CODES = frozenset({"ResourceLimitExceeded"})

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    EndpointConnectionError,  # refused, and DNS failures (botocore wraps both)
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
    SSLError,
    aiohttp.ClientConnectionError,
    ConnectionError,
)
CREDENTIAL_ERRORS: tuple[type[BaseException], ...] = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
    ProfileNotFound,
)
REGION_ERRORS: tuple[type[BaseException], ...] = (NoRegionError, InvalidRegionError)


def error_code(error: BaseException) -> str:
    """The AWS error code of a failed call; "" for anything but a service's answer."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(error: BaseException) -> str:
    """The service's own message (AWS's words), or the exception's text."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message", "")) or str(error)
    return str(error)


def http_status(error: BaseException) -> int:
    if isinstance(error, ClientError):
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def classify(error: BaseException) -> ErrorClass:
    """What ``error`` means; anything not recognised is ``INVALID`` (not retried)."""
    if isinstance(error, CONNECTION_ERRORS):
        return ErrorClass.TRANSIENT
    if isinstance(error, CREDENTIAL_ERRORS):
        return ErrorClass.CREDENTIALS
    if isinstance(error, REGION_ERRORS):
        return ErrorClass.REGION
    if not isinstance(error, ClientError):
        return ErrorClass.INVALID
    code, message = error_code(error), error_message(error).lower()
    if code in THROTTLING_CODES or "rate exceeded" in message:
        return ErrorClass.THROTTLED
    if code in TRANSIENT_CODES or http_status(error) >= 500:
        return ErrorClass.TRANSIENT
    if code in CREDENTIAL_CODES:
        return ErrorClass.CREDENTIALS
    if code in DENIED_CODES:
        return ErrorClass.DENIED
    if code in LIMIT_CODES:
        return ErrorClass.LIMIT_EXCEEDED
    if code in NOT_FOUND_CODES:
        return ErrorClass.NOT_FOUND
    if code in EXISTS_CODES or "already exist" in message:
        return ErrorClass.ALREADY_EXISTS
    if code == "ValidationException":
        # SageMaker answers a Describe* of a missing resource, and a create that
        # names a missing one, with a ValidationException
        if any(text in message for text in ("not found", "could not find", "does not exist")):
            return ErrorClass.NOT_FOUND
        # "Cannot delete endpoint ... because it is in-progress" and the like
        if "in-progress" in message or "in progress" in message:
            return ErrorClass.IN_PROGRESS
    return ErrorClass.INVALID


def leaves(error: BaseException) -> list[BaseException]:
    """The errors inside a (nested) exception group, or ``[error]``."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def is_aws_error(error: BaseException) -> bool:
    """An answer from AWS or a failure to reach it, as opposed to a bug of ours
    (a task group's errors count when every one of them is)."""
    return all(isinstance(leaf, (ClientError, BotoCoreError, *CONNECTION_ERRORS))
               for leaf in leaves(error))


def is_retryable(error: BaseException) -> bool:
    """Throttling and transient faults: retried for as long as the caller lets it."""
    return classify(error) in (ErrorClass.THROTTLED, ErrorClass.TRANSIENT)


def is_throttling(error: BaseException) -> bool:
    return classify(error) is ErrorClass.THROTTLED


def is_not_found(error: BaseException) -> bool:
    return classify(error) is ErrorClass.NOT_FOUND


def is_already_exists(error: BaseException) -> bool:
    return classify(error) is ErrorClass.ALREADY_EXISTS


def is_limit_exceeded(error: BaseException) -> bool:
    """ResourceLimitExceeded: an account quota on resources, not a rate."""
    return classify(error) is ErrorClass.LIMIT_EXCEEDED


def is_in_progress(error: BaseException) -> bool:
    return classify(error) is ErrorClass.IN_PROGRESS


def is_denied(error: BaseException) -> bool:
    return classify(error) is ErrorClass.DENIED


def is_expired(error: BaseException) -> bool:
    return error_code(error) in EXPIRED_CODES


def is_already_terminal(error: BaseException) -> bool:
    """A Stop* of a resource that has already ended (SageMaker answers it with a
    ValidationException): the next describe tells the outcome."""
    return error_code(error) == "ValidationException"


def is_missing_model(error: BaseException) -> bool:
    """A CreateTransformJob whose model does not exist."""
    return is_not_found(error) and "model" in error_message(error).lower()


def describe(error: BaseException) -> str:
    """One line for a person: the code and AWS's message, or the exception's text."""
    error = leaves(error)[0]
    code = error_code(error)
    if code:
        return f"{code}: {error_message(error)}"
    return str(error) or type(error).__name__
