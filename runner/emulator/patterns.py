"""EventBridge event patterns: checked when a rule is put, matched for each event.

A pattern is a JSON object shaped like the events it matches. Each of its
members names a field of the event and holds either an object (a pattern for
that field's object, as ``detail`` usually has) or a non-empty array of
matchers, any one of which must match the field's value; when the value is an
array, any one of its elements will do. Every member must match. Matchers, as
EventBridge documents them:

- a string, number, ``true``, ``false`` or ``null``: that exact value
  (numbers compare as numbers, so ``5`` matches ``5.0``);
- ``{"prefix": "x"}``, ``{"suffix": "x"}`` (either may hold
  ``{"equals-ignore-case": "x"}``), ``{"equals-ignore-case": "x"}``;
- ``{"anything-but": v}``: any value except ``v``, a list of values, or a
  ``prefix``/``suffix``/``equals-ignore-case`` matcher;
- ``{"exists": true|false}``: whether the field is there at all (a field of a
  missing object is missing);
- ``{"numeric": [">", 0, "<=", 5]}``: one or two comparisons, numbers only;
- ``{"wildcard": "a*b"}``: ``*`` matches any run of characters, ``\\*`` a star;
- ``"$or": [pattern, ...]``: any of two or more patterns.

``cidr`` is not implemented: a rule using it is refused, as is any other
matcher EventBridge does not know. The wording of the reasons a pattern is
refused for (``InvalidEventPatternException``) is this emulator's.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

NUMERIC_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ABSENT = object()  # the value of a field the event does not have

Pattern = Mapping[str, Any]


class PatternError(ValueError):
    """Why an event pattern is not valid."""


def parse_pattern(text: str) -> Pattern:
    """The pattern in ``text``, checked; :class:`PatternError` if it is not one."""
    try:
        pattern = json.loads(text)
    except ValueError as error:
        raise PatternError(f"the pattern is not JSON ({error})") from None
    if not isinstance(pattern, dict):
        raise PatternError("Filter is not an object")
    _check_object(pattern, "")
    return pattern


def matches(pattern: Pattern, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` (a JSON object) matches ``pattern`` (as parsed)."""
    for key, rule in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in rule):
                return False
            continue
        value = event.get(key, _ABSENT)
        if isinstance(rule, dict):
            if not matches(rule, value if isinstance(value, dict) else {}):
                return False
        elif not _field_matches(rule, value):
            return False
    return True


# -- checking ------------------------------------------------------------------


def _check_object(pattern: Mapping[str, Any], path: str) -> None:
    for key, rule in pattern.items():
        where = f"{path}.{key}" if path else key
        if key == "$or":
            _check_or(rule, path)
        elif isinstance(rule, dict):
            _check_object(rule, where)
        elif isinstance(rule, list):
            if not rule:
                raise PatternError(f'Empty arrays are not allowed (at "{where}")')
            for matcher in rule:
                _check_matcher(matcher, where)
        else:
            raise PatternError(f'"{where}" must be an object or an array')


def _check_or(alternatives: Any, path: str) -> None:
    if not isinstance(alternatives, list) or len(alternatives) < 2:
        raise PatternError("$or must be an array of at least two patterns")
    for alternative in alternatives:
        if not isinstance(alternative, dict):
            raise PatternError("each pattern of $or must be an object")
        _check_object(alternative, path)


def _check_matcher(matcher: Any, where: str) -> None:
    if _is_value(matcher):
        return
    if not isinstance(matcher, dict) or len(matcher) != 1:
        raise PatternError(f'"{where}" holds a matcher that is not a value or a one-member object')
    (kind, operand), = matcher.items()
    if kind in ("prefix", "suffix"):
        _check_text(operand, kind, where, ignore_case_allowed=True)
    elif kind in ("equals-ignore-case", "wildcard"):
        _check_text(operand, kind, where, ignore_case_allowed=False)
    elif kind == "anything-but":
        _check_anything_but(operand, where)
    elif kind == "exists":
        if not isinstance(operand, bool):
            raise PatternError(f'exists match pattern must be either true or false (at "{where}")')
    elif kind == "numeric":
        _check_numeric(operand, where)
    else:
        raise PatternError(f'Unrecognized match type {kind} (at "{where}")')


def _check_text(operand: Any, kind: str, where: str, *, ignore_case_allowed: bool) -> None:
    if ignore_case_allowed and isinstance(operand, dict) and set(operand) == {
        "equals-ignore-case"
    }:
        operand = operand["equals-ignore-case"]
    if not isinstance(operand, str):
        raise PatternError(f'{kind} match pattern must be a string (at "{where}")')


def _check_anything_but(operand: Any, where: str) -> None:
    if _is_value(operand):
        return
    if isinstance(operand, list) and operand and all(_is_value(v) for v in operand):
        return
    if isinstance(operand, dict) and len(operand) == 1:
        (kind, inner), = operand.items()
        if kind in ("prefix", "suffix", "equals-ignore-case"):
            _check_text(inner, kind, where, ignore_case_allowed=False)
            return
    raise PatternError(
        f'anything-but takes a value, a list of values, or a prefix, suffix or '
        f'equals-ignore-case matcher (at "{where}")'
    )


def _check_numeric(operand: Any, where: str) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise PatternError(f'numeric takes one or two comparisons (at "{where}")')
    for name, number in zip(operand[::2], operand[1::2], strict=True):
        if name not in NUMERIC_OPERATORS:
            raise PatternError(f'Unrecognized numeric range operator: {name} (at "{where}")')
        if not _is_number(number):
            raise PatternError(f'Value of {name} must be numeric (at "{where}")')


def _is_value(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- matching ------------------------------------------------------------------


def _field_matches(matchers: list[Any], value: Any) -> bool:
    if value is _ABSENT:
        return any(isinstance(m, dict) and m.get("exists") is False for m in matchers)
    values = value if isinstance(value, list) else [value]
    return any(_matches(m, v) for m in matchers for v in values) or any(
        isinstance(m, dict) and m.get("exists") is True for m in matchers
    )


def _matches(matcher: Any, value: Any) -> bool:
    """Whether ``matcher`` admits ``value``, a field that is present."""
    if not isinstance(matcher, dict):
        return _same(matcher, value)
    (kind, operand), = matcher.items()
    if kind == "anything-but":
        return not _excluded(operand, value)
    if kind == "numeric":
        return _is_number(value) and _in_range(operand, value)
    if kind == "exists":
        return False  # decided by _field_matches, for the field as a whole
    return isinstance(value, str) and _text_matches(kind, operand, value)


def _same(expected: Any, value: Any) -> bool:
    if _is_number(expected) and _is_number(value):
        return float(expected) == float(value)
    return type(expected) is type(value) and expected == value


def _excluded(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        (kind, inner), = operand.items()
        return isinstance(value, str) and _text_matches(kind, inner, value)
    excluded = operand if isinstance(operand, list) else [operand]
    return any(_same(v, value) for v in excluded)


def _text_matches(kind: str, operand: Any, value: str) -> bool:
    if isinstance(operand, dict):  # {"prefix": {"equals-ignore-case": "x"}}
        operand, value = operand["equals-ignore-case"].casefold(), value.casefold()
    if kind == "prefix":
        return value.startswith(operand)
    if kind == "suffix":
        return value.endswith(operand)
    if kind == "equals-ignore-case":
        return value.casefold() == str(operand).casefold()
    return _wildcard(str(operand)).fullmatch(value) is not None


def _wildcard(text: str) -> re.Pattern[str]:
    parts = re.split(r"(\\\*|\*)", text)
    return re.compile("".join(
        ".*" if part == "*" else re.escape("*" if part == "\\*" else part) for part in parts
    ), re.DOTALL)


def _in_range(comparisons: list[Any], value: float) -> bool:
    return all(
        NUMERIC_OPERATORS[name](value, bound)
        for name, bound in zip(comparisons[::2], comparisons[1::2], strict=True)
    )
