"""smrun.errors: one classification of AWS errors, and nobody else reads their codes."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from smrun.errors import (
    THROTTLING_CODES,
    ErrorClass,
    classify,
    describe,
    error_code,
    error_message,
    is_already_exists,
    is_already_terminal,
    is_aws_error,
    is_denied,
    is_expired,
    is_in_progress,
    is_missing_model,
    is_not_found,
    is_retryable,
    is_throttling,
)

ROOT = Path(__file__).resolve().parent.parent
ARN = "arn:aws:sagemaker:us-east-1:123456789012"


def aws(code: str, message: str = "", status: int = 400, operation: str = "Op") -> ClientError:
    """A ClientError as botocore builds it from a service's answer."""
    return ClientError(
        {"Error": {"Code": code, "Message": message},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


C = ErrorClass
CASES: list[tuple[str, BaseException, ErrorClass]] = [
    # throttling: the codes botocore's standard retry mode knows, and AWS's words
    ("sagemaker throttle", aws("ThrottlingException", "Rate exceeded"), C.THROTTLED),
    ("sts throttle", aws("Throttling", "Rate exceeded"), C.THROTTLED),
    ("logs throttle", aws("ThrottlingException", "Rate exceeded", operation="GetLogEvents"),
     C.THROTTLED),
    ("rate exceeded under another code", aws("ValidationException", "Rate exceeded"),
     C.THROTTLED),
    ("too many requests", aws("TooManyRequestsException", "slow down"), C.THROTTLED),
    # 5xx and dropped connections
    ("500", aws("InternalFailure", "We encountered an internal error.", 500), C.TRANSIENT),
    ("503", aws("ServiceUnavailable", "Service is unavailable.", 503), C.TRANSIENT),
    ("502 with an unknown code", aws("BadGateway", "", 502), C.TRANSIENT),
    ("internal error code on a 400", aws("InternalServerError", "oops", 400), C.TRANSIENT),
    ("endpoint connection", EndpointConnectionError(endpoint_url="https://x"), C.TRANSIENT),
    ("connection closed", ConnectionClosedError(endpoint_url="https://x"), C.TRANSIENT),
    ("connect timeout", ConnectTimeoutError(endpoint_url="https://x"), C.TRANSIENT),
    ("read timeout", ReadTimeoutError(endpoint_url="https://x"), C.TRANSIENT),
    ("aiohttp disconnect", aiohttp.ServerDisconnectedError(), C.TRANSIENT),
    ("connection reset", ConnectionResetError(104, "reset"), C.TRANSIENT),
    # not found: SageMaker says it in a ValidationException's message
    ("describe training job", aws("ValidationException", "Requested resource not found."),
     C.NOT_FOUND),
    ("describe endpoint", aws("ValidationException",
                              f'Could not find endpoint "{ARN}:endpoint/ep".'), C.NOT_FOUND),
    ("describe model", aws("ValidationException", f'Could not find model "{ARN}:model/m".'),
     C.NOT_FOUND),
    ("does not exist", aws("ValidationException", "Job tune-1 does not exist."), C.NOT_FOUND),
    ("labeling job", aws("ResourceNotFound", "Resource not found"), C.NOT_FOUND),
    ("logs group", aws("ResourceNotFoundException", "The specified log group does not exist."),
     C.NOT_FOUND),
    # already exists
    ("create endpoint twice", aws("ValidationException",
                                  f'Cannot create already existing endpoint "{ARN}:endpoint/e".'),
     C.ALREADY_EXISTS),
    ("training job name taken", aws("ResourceInUse", "Training job names must be unique"),
     C.ALREADY_EXISTS),
    # in progress
    ("delete while creating", aws("ValidationException",
                                  f'Cannot update in-progress endpoint "{ARN}:endpoint/e".'),
     C.IN_PROGRESS),
    ("in progress, spelled apart", aws("ValidationException",
                                       "Cannot delete endpoint e because it is in progress"),
     C.IN_PROGRESS),
    # access denied (JSON services and STS)
    ("sagemaker denied", aws("AccessDeniedException",
                             "User: arn:aws:iam::1:user/u is not authorized to perform: "
                             "sagemaker:CreateTrainingJob"), C.DENIED),
    ("sts denied", aws("AccessDenied", "not authorized", 403), C.DENIED),
    # an account quota on resources is not a rate: not retried
    ("quota", aws("ResourceLimitExceeded", "The account-level service limit "
                  "'ml.p3.2xlarge for training job usage' is 0 Instances"), C.LIMIT_EXCEEDED),
    # credentials: none, or refused
    ("no credentials", NoCredentialsError(), C.CREDENTIALS),
    ("partial credentials", PartialCredentialsError(provider="env", cred_var="secret"),
     C.CREDENTIALS),
    ("unknown key", aws("UnrecognizedClientException",
                        "The security token included in the request is invalid."),
     C.CREDENTIALS),
    ("sts unknown key", aws("InvalidClientTokenId", "The security token ... invalid", 403),
     C.CREDENTIALS),
    ("expired", aws("ExpiredTokenException", "The security token included in the request is "
                    "expired"), C.CREDENTIALS),
    ("sts expired", aws("ExpiredToken", "expired", 403), C.CREDENTIALS),
    ("bad signature", aws("InvalidSignatureException", "The request signature we calculated "
                          "does not match"), C.CREDENTIALS),
    ("sts bad signature", aws("SignatureDoesNotMatch", "does not match", 403), C.CREDENTIALS),
    # region
    ("no region", NoRegionError(), C.REGION),
    ("invalid region", InvalidRegionError(region_name="us east"), C.REGION),
    # everything else is the request's fault, and not retried
    ("validation", aws("ValidationException", "1 validation error detected: Value 'x' at "
                       "'trainingJobName' failed to satisfy constraint"), C.INVALID),
    ("param validation", ParamValidationError(report="Missing required parameter"), C.INVALID),
    ("a bug", KeyError("TrainingJobStatus"), C.INVALID),
]


@pytest.mark.parametrize(("error", "expected"), [(e, c) for _, e, c in CASES],
                         ids=[name for name, _, _ in CASES])
def test_classify(error: BaseException, expected: ErrorClass) -> None:
    assert classify(error) is expected
    assert is_retryable(error) is (expected in (C.THROTTLED, C.TRANSIENT))
    assert is_throttling(error) is (expected is C.THROTTLED)
    assert is_not_found(error) is (expected is C.NOT_FOUND)
    assert is_already_exists(error) is (expected is C.ALREADY_EXISTS)
    assert is_in_progress(error) is (expected is C.IN_PROGRESS)
    assert is_denied(error) is (expected is C.DENIED)


@pytest.mark.parametrize("code", sorted(THROTTLING_CODES))
def test_every_throttling_code_is_throttling_whatever_the_message(code: str) -> None:
    assert classify(aws(code, "anything")) is C.THROTTLED


def test_the_kind_of_an_error_does_not_depend_on_its_status_alone() -> None:
    # a 5xx is transient whatever its code says; a 4xx is judged by its code
    assert classify(aws("AccessDeniedException", "", 500)) is C.TRANSIENT
    assert classify(aws("ValidationException", "Requested resource not found.", 404)) is (
        C.NOT_FOUND)


def test_only_sagemakers_expired_tokens_are_expired() -> None:
    assert is_expired(aws("ExpiredTokenException", "expired"))
    assert is_expired(aws("ExpiredToken", "expired", 403))
    assert not is_expired(aws("UnrecognizedClientException", "invalid"))
    assert not is_expired(NoCredentialsError())


def test_the_narrower_questions() -> None:
    assert is_already_terminal(aws("ValidationException", "The job is not in progress"))
    assert not is_already_terminal(aws("AccessDeniedException", "no"))
    assert is_missing_model(aws("ValidationException", f'Could not find model "{ARN}:model/m".'))
    assert not is_missing_model(aws("ValidationException", "Requested resource not found."))


def test_what_is_an_aws_error() -> None:
    assert is_aws_error(aws("ValidationException", "x"))
    assert is_aws_error(ParamValidationError(report="bad"))
    assert is_aws_error(EndpointConnectionError(endpoint_url="https://x"))
    assert is_aws_error(aiohttp.ServerDisconnectedError())
    assert not is_aws_error(KeyError("x"))
    assert not is_aws_error(RuntimeError("bug"))


def test_describe_gives_the_code_and_aws_words_or_the_text() -> None:
    error = aws("ValidationException", "Requested resource not found.")
    assert (error_code(error), error_message(error)) == (
        "ValidationException", "Requested resource not found.")
    assert describe(error) == "ValidationException: Requested resource not found."
    assert describe(EndpointConnectionError(endpoint_url="https://x")) == (
        'Could not connect to the endpoint URL: "https://x"')
    assert describe(RuntimeError()) == "RuntimeError"
    assert error_code(RuntimeError("x")) == ""
    # an answer without a message still says something
    assert describe(aws("InternalFailure", "", 500)).startswith("InternalFailure: ")
    assert describe(aws("InternalFailure", "", 500)) != "InternalFailure: "


def test_nothing_raises_on_a_malformed_answer() -> None:
    odd = ClientError({}, "Op")
    assert classify(odd) is C.INVALID
    assert error_code(odd) == ""
    assert describe(odd)


# --- nobody else reads an AWS error ---------------------------------------------

# what reading an error's code or message looks like
READS_ERROR = re.compile(r"""\[\s*["']Error["']\s*\]|\.get\(\s*["']Error["']""")


def code_only(source: str) -> str:
    """``source`` with its comments and docstrings blanked (their lines kept)."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(value.lineno, (value.end_lineno or value.lineno) + 1))
    lines = source.splitlines(keepends=True)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col] + "\n"
    return "".join("\n" if n in docstrings else line for n, line in enumerate(lines, 1))


def modules() -> list[Path]:
    found = [*sorted((ROOT / "runner").glob("*.py")), *sorted((ROOT / "handlers").glob("*.py"))]
    assert len(found) > 10 and not any("emulator" in p.parts for p in found)
    return found


def test_no_module_but_runner_errors_reads_an_aws_error() -> None:
    offenders = []
    for path in modules():
        if path == ROOT / "runner" / "errors.py":
            continue
        for n, line in enumerate(code_only(path.read_text()).splitlines(), 1):
            if READS_ERROR.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == [], "use runner.errors instead:\n" + "\n".join(offenders)


def test_the_scan_would_see_a_read() -> None:
    errors_module = code_only((ROOT / "runner" / "errors.py").read_text())
    assert READS_ERROR.search(errors_module)
    for text in ('code = error.response["Error"]["Code"]',
                 "code = exc.response.get('Error', {}).get('Code')",
                 "if e.response[ 'Error' ]['Message'].startswith('x'): pass"):
        assert READS_ERROR.search(code_only(text + "\n")), text
    assert not READS_ERROR.search(code_only('x = 1  # response["Error"]["Code"]\n'))
    assert not READS_ERROR.search(code_only('"""reads response["Error"]"""\n'))
