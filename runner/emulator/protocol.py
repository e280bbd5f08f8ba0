"""The AWS JSON 1.0 and 1.1 wire protocols, driven by botocore's service models.

Everything here is generic: what an operation accepts and returns comes from
``botocore``'s model of the service, never from a schema written by hand. A
request is decoded, its wire values turned into Python (epoch numbers into
datetimes, base64 into bytes), then validated twice: by botocore's own
``ParamValidator`` (types, required and unknown members, unions) and by the
checks a server does that botocore's client leaves out (max length, max value,
enums, patterns). Errors come back the way AWS sends them for JSON: a body of
``__type`` and ``message``, and, for a service that moved to JSON from the
query protocol (SQS, ``awsQueryCompatible`` in its model), an
``x-amzn-query-error`` header of ``Code;Sender`` from which botocore takes the
error code its callers see (``AWS.SimpleQueueService.NonExistentQueue`` for a
body's ``QueueDoesNotExist``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

Params = dict[str, Any]


class ApiError(Exception):
    """An error the emulated service returns to its caller, as AWS would.

    ``query_code`` is the code the service's older query protocol gave the
    error, where it differs from ``code`` (SQS's legacy codes)."""

    def __init__(
        self, code: str, message: str, status: int = 400, *, query_code: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.query_code = query_code

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message}).encode()

    def headers(self, request_id: str) -> dict[str, str]:
        return {
            "Content-Type": JSON_CONTENT_TYPE,
            "x-amzn-ErrorType": self.code,
            "x-amzn-RequestId": request_id,
        }


def validation_error(messages: list[str], code: str = "ValidationException") -> ApiError:
    """One error listing every violation, in AWS's words (CloudWatch Logs sends
    them as ``InvalidParameterException``, SageMaker as ``ValidationException``)."""
    count = len(messages)
    noun = "error" if count == 1 else "errors"
    return ApiError(code, f"{count} validation {noun} detected: " + "; ".join(messages))


@functools.cache
def load_service_model(service_name: str) -> ServiceModel:
    # Loading a model parses megabytes of JSON; models are read-only, so every
    # emulator in the process can share one copy without sharing any state.
    model: ServiceModel = botocore.session.get_session().get_service_model(service_name)
    return model


def _member_path(parent: str, member: str) -> str:
    # AWS names members in lowerCamelCase in its validation messages.
    name = member[:1].lower() + member[1:]
    return f"{parent}.{name}" if parent else name


def _show(value: Any) -> str:
    """A value the way AWS's (Java) validation messages print it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _botocore_path(name: str) -> str:
    """botocore's ``.A.B[0].C`` path in AWS's ``a.b.1.member.c`` form."""
    out: list[str] = []
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", name):
        member, index = part
        if member:
            out.append(member[:1].lower() + member[1:])
        else:
            out.append(f"{int(index) + 1}.member")
    return ".".join(out)


class ServiceProtocol:
    """Parsing, validation and serialization for one service model."""

    def __init__(
        self,
        model: ServiceModel,
        *,
        validation_code: str = "ValidationException",
        check_enums: bool = True,
    ) -> None:
        self.model = model
        self.validation_code = validation_code  # the error code a constraint violation gets
        # False for a service that checks names itself, in its own words (SQS's
        # attribute names: InvalidAttributeName)
        self.check_enums = check_enums
        self.service_name: str = model.service_name
        self.target_prefix: str = model.metadata.get("targetPrefix", "")
        self.content_type = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.1')}"
        self.query_compatible = "awsQueryCompatible" in model.metadata
        self._validator = ParamValidator()
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    @classmethod
    def for_service(
        cls,
        service_name: str,
        *,
        validation_code: str = "ValidationException",
        check_enums: bool = True,
    ) -> ServiceProtocol:
        return cls(
            load_service_model(service_name),
            validation_code=validation_code,
            check_enums=check_enums,
        )

    def operation(self, name: str) -> OperationModel | None:
        if name not in self.model.operation_names:
            return None
        op: OperationModel = self.model.operation_model(name)
        return op

    # -- requests --------------------------------------------------------

    def parse(self, operation: OperationModel, wire: Params) -> Params:
        """Convert and validate a decoded request body; raise :class:`ApiError`."""
        shape = operation.input_shape
        if shape is None:
            return {}
        params = self.from_wire(wire, shape)
        self.validate(params, shape)
        assert isinstance(params, dict)
        return params

    def from_wire(self, value: Any, shape: Shape) -> Any:
        """JSON values into the Python types botocore's shapes describe.

        Values of the wrong JSON type are passed through untouched so that
        validation reports them instead of this conversion failing on them.
        """
        kind = shape.type_name
        if kind == "structure" and isinstance(value, dict):
            members = shape.members
            return {
                key: (self.from_wire(item, members[key]) if key in members else item)
                for key, item in value.items()
            }
        if kind == "list" and isinstance(value, list):
            return [self.from_wire(item, shape.member) for item in value]
        if kind == "map" and isinstance(value, dict):
            return {key: self.from_wire(item, shape.value) for key, item in value.items()}
        if kind == "timestamp" and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ApiError("SerializationException", f"Invalid timestamp value {value!r}")
            return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
        if kind == "blob" and isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ApiError("SerializationException", "Base64 encoded blob is invalid") from exc
        return value

    def validate(self, params: Any, shape: Shape) -> None:
        report = self._validator.validate(params, shape)
        messages: list[str] = []
        # Reaching into the report's raw entries: they carry the reason and
        # the member path, which is what AWS-style messages need.
        for reason, name, extra in report._errors:
            path = _botocore_path(name)
            if reason == "invalid type":
                # AWS fails such a body while deserializing, before validation.
                raise ApiError(
                    "SerializationException",
                    f"Unexpected value {_show(extra['param'])!s} for "
                    f"'{path or 'input'}': expected {shape_kind(name, shape)}",
                )
            if reason == "missing required field":
                where = _member_path(path, extra["required_name"])
                messages.append(
                    f"Value null at '{where}' failed to satisfy constraint: Member must not be null"
                )
            elif reason == "unknown field":
                messages.append(
                    f"Unknown member '{extra['unknown_param']}' at '{path or 'input'}': "
                    f"must be one of: {', '.join(extra['valid_names'])}"
                )
            elif reason in ("invalid length", "invalid range"):
                continue  # reported below with the value itself, as AWS does
            else:
                messages.append(f"Invalid value at '{path or 'input'}': {reason}")
        self._check(params, shape, "", messages)
        if messages:
            raise validation_error(messages, self.validation_code)

    def _pattern(self, pattern: str) -> re.Pattern[str] | None:
        if pattern not in self._patterns:
            try:
                self._patterns[pattern] = re.compile(pattern)
            except re.error:
                # Java-only syntax (\p{L}, surrogate ranges): not checkable here.
                self._patterns[pattern] = None
        return self._patterns[pattern]

    def _scalar_violations(self, value: Any, shape: Shape) -> list[str]:
        meta = shape.metadata
        out: list[str] = []
        kind = shape.type_name
        if kind in ("string", "list", "map", "blob") and isinstance(
            value, (str, list, dict, bytes)
        ):
            size = len(value)
            if "min" in meta and size < meta["min"]:
                out.append(f"Member must have length greater than or equal to {meta['min']}")
            if "max" in meta and size > meta["max"]:
                out.append(f"Member must have length less than or equal to {meta['max']}")
        elif kind in ("integer", "long", "double", "float") and isinstance(value, (int, float)):
            if "min" in meta and value < meta["min"]:
                out.append(f"Member must have value greater than or equal to {meta['min']}")
            if "max" in meta and value > meta["max"]:
                out.append(f"Member must have value less than or equal to {meta['max']}")
        if kind == "string" and isinstance(value, str):
            enum = meta.get("enum") if self.check_enums else None
            if enum and value not in enum:
                out.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
            pattern = meta.get("pattern")
            if pattern:
                compiled = self._pattern(pattern)
                if compiled is not None and compiled.fullmatch(value) is None:
                    out.append(f"Member must satisfy regular expression pattern: {pattern}")
        return out

    def _check(self, value: Any, shape: Shape, path: str, out: list[str]) -> None:
        for violation in self._scalar_violations(value, shape):
            out.append(
                f"Value '{_show(value)}' at '{path or 'input'}' failed to satisfy "
                f"constraint: {violation}"
            )
        kind = shape.type_name
        if kind == "structure" and isinstance(value, dict):
            members = shape.members
            for key, item in value.items():
                if key in members and item is not None:
                    self._check(item, members[key], _member_path(path, key), out)
        elif kind == "list" and isinstance(value, list):
            for index, item in enumerate(value, start=1):
                self._check(item, shape.member, f"{path}.{index}.member", out)
        elif kind == "map" and isinstance(value, dict):
            key_problems: list[str] = []
            value_problems: list[str] = []
            for key, item in value.items():
                for problem in self._scalar_violations(key, shape.key):
                    if problem not in key_problems:
                        key_problems.append(problem)
                for problem in self._scalar_violations(item, shape.value):
                    if problem not in value_problems:
                        value_problems.append(problem)
                if shape.value.type_name in ("structure", "list", "map"):
                    self._check(item, shape.value, f"{path}.{key}", out)
            for label, problems in (("Map keys", key_problems), ("Map value", value_problems)):
                if problems:
                    out.append(
                        f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: "
                        f"{label} must satisfy constraint: [{', '.join(problems)}]"
                    )

    # -- responses -------------------------------------------------------

    def error_headers(self, error: ApiError, request_id: str) -> dict[str, str]:
        """The headers of ``error`` as this service sends them: its JSON version's
        content type and, if the service came from the query protocol, the
        ``x-amzn-query-error`` header (``Code;Sender`` or ``Code;Receiver``)."""
        headers = {**error.headers(request_id), "Content-Type": self.content_type}
        if self.query_compatible:
            fault = "Receiver" if error.status >= 500 else "Sender"
            headers["x-amzn-query-error"] = f"{error.query_code or error.code};{fault}"
        return headers

    def serialize(self, operation: OperationModel, result: Mapping[str, Any] | None) -> bytes:
        """A handler's result as the JSON body of the operation's output shape."""
        shape = operation.output_shape
        if shape is None or result is None:
            return b"{}"
        return json.dumps(self.to_wire(result, shape, shape.name), separators=(",", ":")).encode()

    def to_wire(self, value: Any, shape: Shape, path: str, *, epoch_ms: bool = False) -> Any:
        """``value`` as JSON of ``shape``; timestamps in epoch seconds, or in
        whole milliseconds with ``epoch_ms`` (as EventBridge events carry them)."""
        kind = shape.type_name
        if kind == "structure":
            if not isinstance(value, Mapping):
                raise _emulator_bug(f"{path} must be a structure, got {type(value).__name__}")
            members = shape.members
            out = {
                key: self.to_wire(item, members[key], f"{path}.{key}", epoch_ms=epoch_ms)
                for key, item in value.items()
                if key in members and item is not None
            }
            for required in shape.metadata.get("required", ()):
                if required not in out:
                    raise _emulator_bug(f"response member {path}.{required} is required")
            return out
        if kind == "list":
            return [
                self.to_wire(item, shape.member, f"{path}[]", epoch_ms=epoch_ms) for item in value
            ]
        if kind == "map":
            return {
                str(key): self.to_wire(item, shape.value, f"{path}.{key}", epoch_ms=epoch_ms)
                for key, item in value.items()
            }
        if kind == "timestamp":
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    value = value.replace(tzinfo=dt.timezone.utc)
                value = value.timestamp()
            return round(float(value) * 1000) if epoch_ms else float(value)
        if kind == "blob":
            raw = value.encode() if isinstance(value, str) else bytes(value)
            return base64.b64encode(raw).decode("ascii")
        if kind in ("integer", "long"):
            return int(value)
        if kind in ("double", "float"):
            return float(value)
        if kind == "boolean":
            return bool(value)
        if kind == "string":
            return str(value)
        return value  # documents pass through as JSON


def shape_kind(name: str, root: Shape) -> str:
    """The expected type of the member botocore's path ``name`` points at."""
    shape: Shape | None = root
    for member, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", name):
        if shape is None:
            break
        if member and shape.type_name == "structure":
            shape = shape.members.get(member)
        elif member and shape.type_name == "map":
            shape = shape.value
        elif index and shape.type_name == "list":
            shape = shape.member
    return shape.type_name if shape is not None else "unknown"


def decode_body(body: bytes) -> Params:
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError("SerializationException", "Could not parse the request body") from exc
    if not isinstance(decoded, dict):
        raise ApiError("SerializationException", "The request body must be a JSON object")
    return decoded


def _emulator_bug(message: str) -> ApiError:
    # A response that would not parse is the emulator's fault; fail loudly
    # rather than send it.
    return ApiError("InternalFailure", f"emulator produced an invalid response: {message}", 500)
