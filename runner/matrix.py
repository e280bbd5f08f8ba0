"""Matrix jobs: one job template that a manifest runs once per item.

A job's ``matrix:`` is, as in GitHub Actions' ``strategy.matrix``, either

* a mapping of names to non-empty lists of values: the items are their
  cartesian product, the first name varying slowest. Two keys are special:
  ``exclude:`` (a list of partial mappings: an item that matches every key of
  one entry is removed) and ``include:`` (a list of mappings, applied after
  ``exclude``: an entry extends every product item that it matches on the keys
  that are matrix names, adding its other keys and overwriting values an
  earlier entry added but never the product's own; an entry that extends no
  product item is added as an item of its own, after the product's);
* or a list of mappings: exactly those items, in that order.

A value may itself hold references (``{{ jobs.prep.outputs.x }}``): they are
the item's references once the value is put in.

Simplifications against GitHub Actions, all of them stricter: values are
compared whole (a mapping value matches only an equal mapping, and ``1`` and
``1.0`` or ``true`` are different values); an ``exclude`` key that is not a
matrix name, a matrix that yields no items, and more than ``max_matrix`` items
(10,000 unless raised with ``--max-matrix``) are errors at load time.

The item count is known before any item is built (:func:`expand` counts the
product and what ``exclude`` and ``include`` do to it), so a matrix far above
the limit costs nothing but its error message.

This module knows nothing of manifests: it expands definitions and
substitutes ``{{ matrix.NAME }}``, returning problems for :mod:`smrun.manifest`
to report with the file, line and job.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "BEST_KINDS",
    "DEFAULT_MAX_MATRIX",
    "MATRIX_NAME_PATTERN",
    "Matrix",
    "MatrixSpec",
    "ResultLike",
    "expand",
    "final_metrics",
    "item_key",
    "item_label",
    "substitute",
    "uses_matrix",
]

DEFAULT_MAX_MATRIX = 10_000
# the kinds whose results carry final metrics for `best(...)`: a training job's
# final metrics, a tuning job's best objective
BEST_KINDS = frozenset({"training", "tuning"})
# a name of a matrix value, as `{{ matrix.NAME }}` spells it
MATRIX_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SPECIAL = ("include", "exclude")
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# combinations the exact item count may look at before it gives up
_COUNT_WORK = 1_000_000
_LABEL_VALUE_LENGTH = 40

Path = tuple[str | int, ...]
Problem = tuple[Path, str]  # where (below `matrix:`, or in the request) and what is wrong


class ResultLike(Protocol):
    """What a matrix needs of a job's result (:class:`smrun.types.JobResult` is one)."""

    @property
    def ok(self) -> bool: ...

    @property
    def outputs(self) -> Mapping[str, Any]: ...

    @property
    def details(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class MatrixSpec:
    """What a template job says about its matrix: ``matrix`` is the definition
    as YAML writes it (a mapping, with ``include``/``exclude``, or a list of
    mappings); ``min_succeeded`` None means every item."""

    matrix: Any
    fail_fast: bool = False
    min_succeeded: int | None = None
    max_parallel: int | None = None


@dataclass(frozen=True)
class Matrix:
    """An expanded matrix job: its items' keys (``sweep[0]`` ...) and values, in order."""

    key: str
    kind: str
    items: tuple[str, ...]
    values: tuple[Mapping[str, Any], ...]
    fail_fast: bool
    min_succeeded: int
    max_parallel: int | None = None
    line: int | None = None

    def succeeded(self, results: Mapping[str, ResultLike]) -> bool:
        """Whether at least ``min_succeeded`` items succeeded (a missing result is no success)."""
        done = 0
        for item in self.items:
            result = results.get(item)
            if result is not None and result.ok:
                done += 1
        return done >= self.min_succeeded


def item_key(matrix: str, index: int) -> str:
    return f"{matrix}[{index}]"


def item_label(key: str, values: Mapping[str, Any]) -> str:
    """``sweep[3] (lr=0.1, depth=4)``: the item key and its values, each shortened."""
    if not values:
        return key
    shown = []
    for name, value in values.items():
        text = _text(value)
        if text is None:
            text = json.dumps(value, separators=(",", ":"), default=str)
        if len(text) > _LABEL_VALUE_LENGTH:
            text = text[: _LABEL_VALUE_LENGTH - 3] + "..."
        shown.append(f"{name}={text}")
    return f"{key} ({', '.join(shown)})"


def final_metrics(details: Mapping[str, Any]) -> dict[str, float]:
    """A result's final metrics by name: a training job's ``metrics``, and a
    tuning job's best objective under its metric's name."""
    found: dict[str, float] = {}
    best = details.get("best_objective")
    if isinstance(best, Mapping) and isinstance(best.get("metric"), str):
        if _is_number(best.get("value")):
            found[best["metric"]] = float(best["value"])
    metrics = details.get("metrics")
    if isinstance(metrics, Mapping):
        found.update({k: float(v) for k, v in metrics.items() if _is_number(v)})
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------
# expansion


def expand(definition: Any, limit: int) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The items of a matrix definition, or the problems that keep it from having them."""
    if isinstance(definition, list):
        return _expand_list(definition, limit)
    if isinstance(definition, Mapping):
        return _expand_mapping(definition, limit)
    return [], [((), "must be a mapping of names to lists of values, or a list of mappings, "
                 f"not {_a_type(definition)}")]


def _expand_list(entries: list[Any], limit: int) -> tuple[list[dict[str, Any]], list[Problem]]:
    problems: list[Problem] = []
    if not entries:
        problems.append(((), "is an empty list; a matrix needs at least one item"))
    for index, entry in enumerate(entries):
        problems += _entry_problems(entry, (index,), "a matrix item")
    if len(entries) > limit:
        problems.append(((), _over_limit(len(entries), limit)))
    if problems:
        return [], problems
    return [dict(entry) for entry in entries], []


def _expand_mapping(
    definition: Mapping[Any, Any], limit: int
) -> tuple[list[dict[str, Any]], list[Problem]]:
    problems: list[Problem] = []
    lists: dict[str, list[Any]] = {}
    for name, values in definition.items():
        if name in _SPECIAL:
            continue
        problem = _name_problem(name)
        if problem:
            problems.append(((name,) if isinstance(name, (str, int)) else (), problem))
        elif not isinstance(values, list) or not values:
            problems.append(((name,), f"must be a non-empty list of values, not {values!r}"))
        else:
            lists[name] = values
    include = _entries(definition, "include", problems)
    exclude = _entries(definition, "exclude", problems)
    names = list(lists)
    declared = [n for n in definition if isinstance(n, str) and n not in _SPECIAL]
    for index, entry in enumerate(exclude):
        if not entry:
            problems.append((("exclude", index), "an empty entry would exclude every item"))
        for key in entry:
            if key not in declared:
                close = difflib.get_close_matches(key, declared, n=1)
                known = ", ".join(declared) or "none"
                hint = f"did you mean {close[0]!r}?" if close else f"names: {known}"
                problems.append(
                    (("exclude", index, key), f"{key!r} is not a name of the matrix; {hint}")
                )
    if not lists and not include and not problems:
        problems.append(((), "has no values: give names with lists of values, or 'include:'"))
    if problems:
        return [], problems

    product = math.prod(len(values) for values in lists.values()) if names else 0
    if product + len(include) > limit:
        count = _count(names, lists, exclude, include)
        if count is None:
            message = (
                f"has {product:,} combinations before 'exclude', too many to expand "
                f"(the limit is {limit:,} items; raise it with --max-matrix)"
            )
            return [], [((), message)]
        if count > limit:
            return [], [((), _over_limit(count, limit))]
    items = list(_combinations(names, lists, exclude)) if names else []
    originals = len(items)
    for entry in include:
        extended = False
        for item in items[:originals]:
            if all(_same(item[k], v) for k, v in entry.items() if k in lists):
                item.update({k: v for k, v in entry.items() if k not in lists})
                extended = True
        if not extended:
            items.append(dict(entry))
    if not items:
        return [], [((), "has no items: 'exclude' removes every combination")]
    return items, []


def _entries(
    definition: Mapping[Any, Any], key: str, problems: list[Problem]
) -> list[Mapping[str, Any]]:
    raw = definition.get(key)
    if raw is None:
        if key in definition:
            problems.append(((key,), "must be a list of mappings, not null"))
        return []
    if not isinstance(raw, list):
        problems.append(((key,), f"must be a list of mappings, not {_a_type(raw)}"))
        return []
    found: list[Mapping[str, Any]] = []
    for index, entry in enumerate(raw):
        entry_problems = _entry_problems(entry, (key, index), f"an {key} entry")
        problems += entry_problems
        if not entry_problems:
            found.append(entry)
    return found


def _entry_problems(entry: Any, where: Path, what: str) -> list[Problem]:
    if not isinstance(entry, Mapping):
        return [(where, f"{what} must be a mapping of names to values, not {entry!r}")]
    problems: list[Problem] = []
    for name in entry:
        problem = _name_problem(name)
        if problem:
            problems.append(((*where, name) if isinstance(name, (str, int)) else where, problem))
    return problems


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not MATRIX_NAME_PATTERN.fullmatch(name):
        return (
            f"matrix name {name!r} must match ^{MATRIX_NAME_PATTERN.pattern}$ "
            "(a letter or underscore, then letters, digits, underscores, hyphens)"
        )
    if name in _SPECIAL:
        return f"{name!r} can't be a name of a value here"
    return None


def _over_limit(count: int, limit: int) -> str:
    return (
        f"has {count:,} items, more than the limit of {limit:,}; "
        "raise the limit with --max-matrix (max_matrix= in Python)"
    )


def _combinations(
    names: Sequence[str], lists: Mapping[str, Sequence[Any]], exclude: Sequence[Mapping[str, Any]]
) -> Iterator[dict[str, Any]]:
    """The product, first name slowest, without the excluded items; a branch is
    cut as soon as an exclude entry's keys are all set and match."""
    depth_of = {name: depth for depth, name in enumerate(names)}
    # each entry is checked at the depth where its last key gets a value
    checks: dict[int, list[Mapping[str, Any]]] = {}
    for entry in exclude:
        checks.setdefault(max(depth_of[k] for k in entry), []).append(entry)

    def walk(depth: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if depth == len(names):
            yield dict(item)
            return
        name = names[depth]
        for value in lists[name]:
            item[name] = value
            if not any(_matches(item, entry) for entry in checks.get(depth, ())):
                yield from walk(depth + 1, item)
        del item[name]

    return walk(0, {})


def _count(
    names: Sequence[str],
    lists: Mapping[str, Sequence[Any]],
    exclude: Sequence[Mapping[str, Any]],
    include: Sequence[Mapping[str, Any]],
) -> int | None:
    """How many items there are, without building them: the product over the
    names that ``exclude`` uses, each surviving combination weighted by the
    product of the other lists; None when that product is too large to walk."""
    used = [n for n in names if any(n in entry for entry in exclude)]
    free = math.prod(len(lists[n]) for n in names if n not in used)
    if math.prod(len(lists[n]) for n in used) * (1 + len(exclude) + len(include)) > _COUNT_WORK:
        return None
    survivors = 0
    extends = [False] * len(include)
    if names:
        for combination in itertools.product(*(lists[n] for n in used)):
            fixed = dict(zip(used, combination, strict=True))
            if any(_matches(fixed, entry) for entry in exclude):
                continue
            survivors += free
            for index, entry in enumerate(include):
                if not extends[index] and all(
                    _same(fixed[k], v) if k in fixed else any(_same(x, v) for x in lists[k])
                    for k, v in entry.items()
                    if k in lists
                ):
                    extends[index] = True
    return survivors + extends.count(False)


def _matches(item: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(k in item and _same(item[k], v) for k, v in entry.items())


def _same(a: Any, b: Any) -> bool:
    # YAML's 1, 1.0 and true are equal in Python; as matrix values they are not
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _a_type(value: object) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


# ---------------------------------------------------------------------------
# {{ matrix.NAME }}


def uses_matrix(text: str) -> bool:
    """Whether a string holds a ``{{ matrix.NAME }}`` expression."""
    return any(m.group(1).strip().startswith("matrix.") for m in _EXPRESSION.finditer(text))


def substitute(
    request: Mapping[str, Any],
    values: Mapping[str, Any],
    takes_text: Callable[[Path], bool],
) -> tuple[dict[str, Any], list[Problem]]:
    """``request`` with every ``{{ matrix.NAME }}`` replaced by the item's value.

    A string that is exactly one expression becomes the value itself, except
    that a number or boolean becomes text where ``takes_text(path)`` says the
    member is a string; an expression among other text is interpolated. Other
    expressions (``{{ jobs... }}``, ``{{ run.id }}``) are left as they are.
    Problems are given with the request path of the string.
    """
    problems: list[Problem] = []

    def value_of(name: str, text: str, path: Path) -> tuple[bool, Any]:
        if name in values:
            return True, values[name]
        close = difflib.get_close_matches(name, list(values), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        has = ", ".join(values) or "no values"
        problems.append((path, f"{text!r}: no matrix value {name!r}; {hint}this item has: {has}"))
        return False, None

    def replace(text: str, path: Path) -> Any:
        matches = [m for m in _EXPRESSION.finditer(text) if _matrix_name(m) is not None]
        if not matches:
            return text
        if len(matches) == 1 and matches[0].span() == (0, len(text)):
            found, value = value_of(_matrix_name(matches[0]) or "", text, path)
            if not found:
                return text
            shown = _text(value) if takes_text(path) else None
            return shown if shown is not None else copy.deepcopy(value)
        parts: list[str] = []
        position = 0
        for match in matches:
            parts.append(text[position : match.start()])
            name = _matrix_name(match) or ""
            found, value = value_of(name, text, path)
            if not found:
                return text
            shown = _text(value)
            if shown is None:
                problems.append((path, (
                    f"{text!r}: matrix value {name!r} is {_a_type(value)}; "
                    "only strings, numbers and booleans can be put into text"
                )))
                return text
            parts.append(shown)
            position = match.end()
        parts.append(text[position:])
        return "".join(parts)

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str):
            return replace(value, path) if "{{" in value else value
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return copy.deepcopy(value)

    result: dict[str, Any] = walk(request, ())
    return result, problems


def _matrix_name(match: re.Match[str]) -> str | None:
    expression = match.group(1).strip()
    return expression[len("matrix.") :] if expression.startswith("matrix.") else None


def _text(value: Any) -> str | None:
    """A value as text the way a reference puts it into text, or None for a container."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)  # true/false, as configuration files spell them
    return None

