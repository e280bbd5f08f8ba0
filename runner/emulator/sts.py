"""STS ``GetCallerIdentity`` in the AWS query protocol, on the emulator's port.

The runner checks its credentials with ``GetCallerIdentity`` before it creates
anything, so the emulator must answer it, and must fail it the way STS does
when a key is refused or a call denied. STS does not speak JSON 1.1 like
SageMaker and Logs: a request is a form-encoded POST (``Action=...&Version=...``)
and answers are XML. Shapes come from botocore's STS model (operation names,
result wrapper, namespace, output members); error codes and statuses are
STS's own, checked against captures of real answers:

* ``InvalidClientTokenId`` (403) -- the raw body in
  aws-azure-login/aws-azure-login#251, statuses in
  hashicorp/terraform-provider-aws#13695. AWS has been seen both with and
  without a final full stop on "The security token included in the request
  is invalid"; the emulator uses the full stop, as the JSON services do.
* ``ExpiredToken`` (403, not 400) -- pulumi/pulumi-aws#2560 ("StatusCode: 403
  ... api error ExpiredToken") and aws/aws-sdk-java-v2#1649.
* ``SignatureDoesNotMatch`` (403) -- message from apancutt/deploy-aws-s3-cloudfront#25
  (a GetCallerIdentity answer); 403 as moto sends it and as STS's other
  authentication errors are. No capture with the status was found.
* ``AccessDenied`` (403) -- ``sts:AssumeRole`` denials quoted with
  "StatusCode: 403". Real STS never denies GetCallerIdentity (no permission is
  needed to call it); denying it here is a test device.
* ``InvalidAction`` (400) "Could not find operation X for version Y" -- the
  wording AWS query services use (aws/aws-cli#37, fog/fog-aws#368).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from botocore.model import OperationModel

from smrun.emulator.auth import Identities
from smrun.emulator.protocol import ApiError, load_service_model

XML_CONTENT_TYPE = "text/xml"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

Result = dict[str, str]

# JSON-protocol codes raised by the shared checks -> (STS code, STS status).
_QUERY_CODES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "UnrecognizedClientException": ("InvalidClientTokenId", 403),
        "ExpiredTokenException": ("ExpiredToken", 403),
        "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
        "AccessDeniedException": ("AccessDenied", 403),
        "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
        "ThrottlingException": ("Throttling", 400),
    }
)


class QueryError(ApiError):
    """An error in the query protocol's XML ``ErrorResponse``."""

    def __init__(self, code: str, message: str, status: int = 400, request_id: str = "") -> None:
        super().__init__(code, message, status)
        self.request_id = request_id
        self.namespace = sts_model_namespace()

    def body(self) -> bytes:
        root = ET.Element("ErrorResponse", {"xmlns": self.namespace})
        error = ET.SubElement(root, "Error")
        fault = "Receiver" if self.status >= 500 else "Sender"
        for tag, text in (("Type", fault), ("Code", self.code), ("Message", self.message)):
            ET.SubElement(error, tag).text = text
        ET.SubElement(root, "RequestId").text = self.request_id
        return _xml(root)

    def headers(self, request_id: str) -> dict[str, str]:
        return {"Content-Type": XML_CONTENT_TYPE, "x-amzn-RequestId": request_id}


def as_query_error(error: ApiError, request_id: str) -> QueryError:
    """``error`` as STS would send it: its code translated, its request id set."""
    code, status = _QUERY_CODES.get(error.code, (error.code, error.status))
    return QueryError(code, error.message, status, request_id)


def sts_model_namespace() -> str:
    namespace: str = load_service_model("sts").metadata["xmlNamespace"]
    return namespace


def parse_form(body: bytes) -> dict[str, str]:
    """A form-encoded request body; repeated names keep their last value."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise QueryError("MalformedQueryString", "The request body is not UTF-8.") from None
    return dict(parse_qsl(text, keep_blank_values=True))


class StsService:
    """The STS actions the emulator serves, answered for a calling access key."""

    name = "sts"

    def __init__(self, identities: Identities) -> None:
        self.model = load_service_model("sts")
        self.version: str = self.model.api_version
        self.identities = identities
        self.actions: Mapping[str, Callable[[str], Result]] = {
            "GetCallerIdentity": self._get_caller_identity,
        }

    def operation(self, form: Mapping[str, str]) -> OperationModel:
        """The operation a request names; ``MissingAction``/``InvalidAction`` if none."""
        action = form.get("Action", "")
        version = form.get("Version", "")
        if not action:
            # AWS's documented meaning of the code; its exact wording is unconfirmed.
            raise QueryError("MissingAction", "The request is missing an action.")
        if action not in self.model.operation_names or version != self.version:
            raise QueryError(
                "InvalidAction", f"Could not find operation {action} for version {version}"
            )
        if action not in self.actions:
            raise QueryError("InvalidAction", f"{action} is not an action this emulator serves")
        operation: OperationModel = self.model.operation_model(action)
        return operation

    def answer(self, operation: OperationModel, caller: str, request_id: str) -> bytes:
        result = self.actions[operation.name](caller)
        return serialize(operation, result, request_id)

    def _get_caller_identity(self, caller: str) -> Result:
        identity = self.identities.of(caller)
        # AWS's order, as in its documentation's example answer.
        return {"Arn": identity.arn, "UserId": identity.user_id, "Account": identity.account}


def serialize(operation: OperationModel, result: Result, request_id: str) -> bytes:
    """``<{Op}Response><{Op}Result>...</{Op}Result><ResponseMetadata>...``, checked
    against the operation's output shape (its members are strings here)."""
    shape = operation.output_shape
    members: Mapping[str, Any] = shape.members if shape is not None else {}
    unknown = set(result) - set(members)
    missing = set(shape.metadata.get("required", ()) if shape is not None else ()) - set(result)
    if unknown or missing:
        raise ApiError(
            "InternalFailure",
            f"emulator produced an invalid {operation.name} result: "
            f"unknown {sorted(unknown)}, missing {sorted(missing)}",
            500,
        )
    root = ET.Element(f"{operation.name}Response", {"xmlns": sts_model_namespace()})
    wrapper = shape.serialization.get("resultWrapper") if shape is not None else None
    parent = ET.SubElement(root, wrapper) if wrapper else root
    for member, value in result.items():
        ET.SubElement(parent, member).text = value
    metadata = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(metadata, "RequestId").text = request_id
    return _xml(root)


def _xml(root: ET.Element) -> bytes:
    # No <?xml ...?> declaration: STS sends none.
    text: str = ET.tostring(root, encoding="unicode")
    return text.encode()
