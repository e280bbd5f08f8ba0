"""Manifests: many SageMaker jobs, their dependencies and the references between them.

A manifest is YAML (or :meth:`Manifest.from_jobs` for Python callers). Each job
carries the native Create* request of its kind. Before anything is created the
whole manifest is validated: its structure, the dependency graph, the references
between jobs, and every request against botocore's own service model. All
problems are collected and raised together as one :class:`ManifestError`.

References are the only expressions: a string that is exactly
``{{ jobs.<key>.outputs.<output> }}`` becomes that output's value (type kept);
a reference among other text is interpolated; ``{{ run.id }}`` is the run id.

A job with ``matrix:`` is a template run once per item (see :mod:`smrun.matrix`
for how items are made): ``{{ matrix.<name> }}`` in its request is the item's
value, put in at load time (a number or boolean becomes text where the member
is a string). The items are jobs of their own, keyed ``<key>[<i>]`` and
validated one by one; ``fail_fast``, ``min_succeeded`` and ``max_parallel``
say how the engine runs them. Other jobs refer to

* ``{{ jobs.<key>[<i>].outputs.<output> }}``: one item's output;
* ``{{ jobs.<key>.outputs.<output> }}``: the list of the succeeded items'
  outputs, in item order (only where the member takes a list);
* ``{{ jobs.<key>.best("<metric>", "min"|"max").outputs.<output> }}``: the
  output of the succeeded item with the lowest (default) or highest final
  metric (training and tuning matrices only; see :data:`BEST_KINDS`);

and ``after: [<key>]`` waits for every item. Dependencies are between
matrices as a whole when the manifest is ordered and checked for cycles: an
item of a matrix can't refer to its own matrix, and two matrices can't wait for
each other even through different items.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import difflib
import functools
import heapq
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeGuard

import yaml
from botocore.loaders import create_loader
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator, ValidationErrors

from smrun.identity import resource_name
from smrun.kind import Kind
from smrun.matrix import (
    BEST_KINDS,
    DEFAULT_MAX_MATRIX,
    Matrix,
    MatrixSpec,
    ResultLike,
    expand,
    final_metrics,
    item_key,
    item_label,
    substitute,
    uses_matrix,
)

__all__ = [
    "BEST_KINDS",
    "DEFAULT_MAX_MATRIX",
    "JOB_KEY_PATTERN",
    "Defaults",
    "JobSpec",
    "Limits",
    "Manifest",
    "ManifestError",
    "Matrix",
    "MatrixSpec",
    "Reference",
    "ResultLike",
    "UnresolvedReference",
    "load_manifest",
    "parse_template",
    "references_in",
    "sagemaker_model",
]

# The same rule as SageMaker resource names, so that a key can be a name's readable part.
JOB_KEY_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_NAME_PATTERN = JOB_KEY_PATTERN
# an item of a matrix job, as `after:` and references name it (never a job's own key)
_ITEM_KEY = re.compile(r"(?P<matrix>[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})\[(?P<index>[0-9]+)\]")

_TOP_LEVEL_KEYS = ("defaults", "jobs")
_DEFAULTS_KEYS = ("region", "role", "tags", "timeout", "max_parallel")
_MATRIX_KEYS = ("fail_fast", "min_succeeded", "max_parallel")
_JOB_KEYS = ("name", "kind", "after", "timeout", "options", "request", "matrix", *_MATRIX_KEYS)
# per matrix job, at most this many messages about its items (then one line for the rest)
_ITEM_ERRORS = 20

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_JOB_OUTPUT_EXPR = re.compile(
    r"jobs\.(?P<job>[A-Za-z0-9-]+)"
    r"(?:\[(?P<index>[0-9]+)\]"
    r"|\.best\(\s*(?P<metric>\"[^\"]*\"|'[^']*')\s*(?:,\s*(?P<direction>\"[^\"]*\"|'[^']*')\s*)?\))?"
    r"\.outputs\.(?P<output>[A-Za-z0-9_-]+)"
)
_RUN_ID_EXPR = "run.id"
_DIRECTIONS = ("min", "max")
_SCALARS = (str, int, float, bool)
_MERGE_TAG = "tag:yaml.org,2002:merge"

# A position in the YAML document: mapping keys and list indexes from the root.
YamlPath = tuple[str | int, ...]


class ManifestError(Exception):
    """A manifest that can't be run; ``errors`` holds every problem found."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class UnresolvedReference(LookupError):
    """A reference whose job has not produced the output (at run time)."""


@dataclass(frozen=True)
class Reference:
    """One ``{{ ... }}`` expression: an output of a job, or the run id (``job`` is None).

    An item reference (``jobs.sweep[3]...``) has ``job`` ``"sweep[3]"`` and
    ``index`` 3. ``aggregate`` is ``"best"`` for ``jobs.sweep.best(...)``
    (``job`` is the matrix's key, with ``metric`` and ``direction``), and
    ``"all"`` for ``jobs.sweep.outputs...`` when sweep is a matrix: only
    :meth:`Manifest.references` knows that, :func:`parse_template` leaves it None.
    """

    text: str  # as written, braces included
    job: str | None = None
    output: str | None = None
    index: int | None = None
    aggregate: str | None = None  # "all" or "best"
    metric: str | None = None
    direction: str | None = None  # "min" or "max"


Template = tuple[str | Reference, ...]


@dataclass(frozen=True)
class Defaults:
    region: str | None = None
    role: str | None = None  # fills the role member of requests that lack one
    tags: Mapping[str, str] = field(default_factory=dict)  # request tags win on the same key
    timeout: float | None = None  # seconds from the resource's CreationTime
    # jobs at once: an int for the whole run, or kind name -> int (and "run"); see Limits
    max_parallel: int | Mapping[str, int] | None = None


@dataclass(frozen=True)
class Limits:
    """How many jobs may run at once: in the whole run, and of each kind (None: no limit)."""

    run: int | None = None
    kinds: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """One job of a manifest; ``request`` is the native Create* request.

    The resource name member may be absent: the engine then names the resource
    with :func:`resource_name`. ``after`` lists the explicit dependencies; those
    implied by references are added in :attr:`needs`. ``options`` are the kind's
    job-level options (what the request can't say, e.g. an endpoint's ``update``),
    checked against ``Kind.option_types``.

    An item of a matrix job has ``matrix`` (the matrix's key), ``item`` (its
    index) and ``values``; its key is ``<matrix>[<item>]``. A template built in
    Python carries ``matrix_spec`` and is expanded by :meth:`Manifest.from_jobs`;
    items keep it, so that they can be validated again as the same matrix.
    """

    key: str
    kind: str
    request: dict[str, Any]
    after: tuple[str, ...] = ()
    timeout: float | None = None
    line: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    matrix: str | None = None
    item: int | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    matrix_spec: MatrixSpec | None = None

    @property
    def label(self) -> str:
        """How messages name the job: its key, and an item's values (``sweep[3] (lr=0.1)``)."""
        return item_label(self.key, self.values) if self.item is not None else self.key

    @cached_property
    def references(self) -> tuple[Reference, ...]:
        """Every well-formed reference of the request, in document order."""
        return references_in(self.request)

    @cached_property
    def needs(self) -> tuple[str, ...]:
        """What must succeed first, as written: ``after`` plus the referenced jobs
        (plain job keys, matrix keys, item keys)."""
        keys = [*self.after, *(ref.job for ref in self.references if ref.job is not None)]
        return tuple(dict.fromkeys(keys))

    def resolve(self, outputs: Mapping[str, Mapping[str, Any]], run_id: str) -> dict[str, Any]:
        """The request with every reference replaced; ``outputs`` maps job key to outputs.

        Item references find their item's outputs under its key; a matrix's
        list and ``best(...)`` need the results: :meth:`Manifest.resolve`."""

        def value_of(ref: Reference, path: YamlPath) -> Any:
            if ref.job is None:
                return run_id
            if ref.aggregate == "best":
                raise UnresolvedReference(
                    f"job {self.label!r}: {_field(('request', *path))}: {ref.text}: "
                    "best() needs the items' results (Manifest.resolve)"
                )
            return _output_of(self.label, ref, path, outputs.get(ref.job))

        return _substitute_references(self.label, self.request, value_of)


@dataclass(frozen=True)
class Manifest:
    """A validated set of jobs; build it with :func:`load_manifest` or :meth:`from_jobs`.

    ``jobs`` holds the plain jobs and every matrix's items (``sweep[0]`` ...,
    at the template's place), never a template; ``matrices`` the matrices by key.
    """

    source: str
    region: str | None
    defaults: Defaults
    jobs: dict[str, JobSpec]
    matrices: dict[str, Matrix] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_jobs(
        cls,
        jobs: Iterable[JobSpec],
        *,
        kinds: Mapping[str, Kind],
        defaults: Defaults | None = None,
        source: str = "<python>",
        max_matrix: int = DEFAULT_MAX_MATRIX,
    ) -> Manifest:
        """Validate jobs built in Python exactly as a YAML manifest would be.

        Defaults are applied to the requests (role, tags, timeout). A spec with
        ``matrix_spec`` is a matrix template, expanded here; specs with
        ``matrix`` set are the items of that matrix (e.g. another manifest's
        ``jobs.values()``), taken as they are.
        """
        errors = _Errors(source, {})
        specs = list(jobs)
        for index, spec in enumerate(specs):
            where = ("jobs", index)
            if spec.matrix is not None:
                if (
                    not isinstance(spec.matrix, str)
                    or not JOB_KEY_PATTERN.fullmatch(spec.matrix)
                    or not isinstance(spec.item, int)
                    or spec.key != item_key(spec.matrix, spec.item)
                ):
                    errors.add(
                        f"an item of a matrix needs matrix set to a job key {_KEY_RULE}, "
                        f"item to its index, and key '<matrix>[<item>]', not key {spec.key!r}, "
                        f"matrix {spec.matrix!r}, item {spec.item!r}",
                        where=(*where, "name"),
                    )
            elif not isinstance(spec.key, str) or not JOB_KEY_PATTERN.fullmatch(spec.key):
                errors.add(f"job key {spec.key!r} {_KEY_RULE}", where=(*where, "name"))
            if not isinstance(spec.request, dict):
                errors.add("request must be a mapping", where=(*where, "request"), job=spec.key)
            if isinstance(spec.after, str) or not all(isinstance(a, str) for a in spec.after):
                errors.add("must be a tuple of job keys", where=(*where, "after"), job=spec.key)
            if not isinstance(spec.options, Mapping):
                errors.add("options must be a mapping", where=(*where, "options"), job=spec.key)
            if spec.matrix_spec is not None and not isinstance(spec.matrix_spec, MatrixSpec):
                errors.add(
                    "matrix_spec must be a MatrixSpec", where=(*where, "matrix"), job=spec.key
                )
        if errors:
            raise ManifestError(errors.messages)
        entries = _group_items(specs, errors)
        if errors:
            raise ManifestError(errors.messages)
        return _build(source, defaults or Defaults(), entries, kinds, errors, max_matrix=max_matrix)

    @cached_property
    def _order(self) -> tuple[str, ...]:
        nodes = _collapsed_needs(self.jobs)
        ordered, _ = _topological(list(nodes), nodes)
        return tuple(key for node in ordered for key in self.members(node))

    def order(self) -> list[str]:
        """Job keys (items, not matrices) with every job after what it needs; ties
        keep manifest order, and a matrix's items stand together in item order."""
        return list(self._order)

    def dependencies(self, key: str) -> tuple[str, ...]:
        """What job ``key`` needs, as written: plain job, matrix and item keys
        (see :meth:`members` and :meth:`satisfied`)."""
        return self.jobs[key].needs

    def members(self, name: str) -> tuple[str, ...]:
        """The jobs a name stands for: a matrix's items, else the job (or item) itself."""
        matrix = self.matrices.get(name)
        if matrix is not None:
            return matrix.items
        if name in self.jobs:
            return (name,)
        raise KeyError(f"no job or matrix named {name!r}")

    def satisfied(self, name: str, results: Mapping[str, ResultLike]) -> bool:
        """Whether a dependency is met: a matrix's ``min_succeeded`` items, else
        the job (a missing result is not)."""
        matrix = self.matrices.get(name)
        if matrix is not None:
            return matrix.succeeded(results)
        result = results.get(name)
        return result is not None and result.ok

    def references(self, key: str) -> tuple[Reference, ...]:
        """Job ``key``'s references, a matrix's list marked ``aggregate="all"``."""
        return tuple(
            dataclasses.replace(ref, aggregate="all")
            if ref.job in self.matrices and ref.index is None and ref.aggregate is None
            else ref
            for ref in self.jobs[key].references
        )

    def resolve(
        self, key: str, results: Mapping[str, ResultLike], run_id: str
    ) -> dict[str, Any]:
        """Job ``key``'s request with every reference replaced from ``results``
        (by job key): item outputs, a matrix's list and best item, the run id.
        Raises :class:`UnresolvedReference` for what the results don't give."""
        spec = self.jobs[key]

        def value_of(ref: Reference, path: YamlPath) -> Any:
            if ref.job is None:
                return run_id
            matrix = self.matrices.get(ref.job)
            if matrix is None or ref.index is not None:
                result = results.get(ref.job)
                return _output_of(spec.label, ref, path, None if result is None else result.outputs)
            where = f"job {spec.label!r}: {_field(('request', *path))}: {ref.text}"
            succeeded = [
                (item, result)
                for item in matrix.items
                if (result := results.get(item)) is not None and result.ok
            ]
            if ref.aggregate == "best":
                succeeded = [_best(where, ref, matrix, succeeded)]
            values = []
            for item, result in succeeded:
                if ref.output is None or ref.output not in result.outputs:
                    known = ", ".join(sorted(result.outputs)) or "none"
                    raise UnresolvedReference(
                        f"{where}: item {item!r} has no output {ref.output!r} (it has: {known})"
                    )
                values.append(result.outputs[ref.output])
            return values[0] if ref.aggregate == "best" else values

        return _substitute_references(spec.label, spec.request, value_of)


def _best(
    where: str, ref: Reference, matrix: Matrix, succeeded: list[tuple[str, ResultLike]]
) -> tuple[str, ResultLike]:
    """The succeeded item with the best final ``ref.metric``; the first of equals."""
    assert ref.metric is not None
    scored = []
    for position, (item, result) in enumerate(succeeded):
        metrics = final_metrics(result.details)
        if ref.metric in metrics:
            value = metrics[ref.metric]
            scored.append((value if ref.direction != "max" else -value, position, item, result))
    if not scored:
        raise UnresolvedReference(
            f"{where}: no succeeded item of matrix {matrix.key!r} has the final metric "
            f"{ref.metric!r} ({len(succeeded)} of {len(matrix.items)} items succeeded)"
        )
    _, _, item, result = min(scored, key=lambda s: (s[0], s[1]))
    return item, result


def _output_of(
    label: str, ref: Reference, path: YamlPath, produced: Mapping[str, Any] | None
) -> Any:
    assert ref.output is not None
    if produced is None or ref.output not in produced:
        known = ", ".join(sorted(produced or {})) or "none"
        raise UnresolvedReference(
            f"job {label!r}: {_field(('request', *path))}: {ref.text}: "
            f"job {ref.job!r} has no output {ref.output!r} (it has: {known})"
        )
    return produced[ref.output]


def _substitute_references(
    label: str, request: Mapping[str, Any], value_of: Callable[[Reference, YamlPath], Any]
) -> dict[str, Any]:
    """``request`` with each reference replaced by ``value_of`` (types kept for a
    whole-string reference, interpolated otherwise)."""

    def substitute(value: Any, path: YamlPath) -> Any:
        if isinstance(value, dict):
            return {k: substitute(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "{{" in value:
            template = parse_template(value)
            if isinstance(template, str):
                raise UnresolvedReference(f"job {label!r}: {template}")
            if len(template) == 1 and isinstance(template[0], Reference):
                # deep copy: the caller may mutate the request it gets
                return copy.deepcopy(value_of(template[0], path))
            return "".join(
                part if isinstance(part, str) else _as_text(label, value_of(part, path), path)
                for part in template
            )
        return copy.deepcopy(value)

    resolved: dict[str, Any] = substitute(request, ())
    return resolved


def _as_text(label: str, value: Any, path: YamlPath) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)  # true/false, as configuration files spell them
    raise TypeError(
        f"job {label!r}: {_field(('request', *path))}: "
        f"a {type(value).__name__} output can't be put into text"
    )


def load_manifest(
    path_or_text: str | os.PathLike[str],
    *,
    kinds: Mapping[str, Kind],
    source: str | None = None,
    max_matrix: int = DEFAULT_MAX_MATRIX,
) -> Manifest:
    """Load and validate a manifest, raising :class:`ManifestError` with every problem.

    A ``str`` holding a newline (or starting with ``{``, or blank) is YAML text; any other
    ``str`` or path-like is a file. ``kinds`` are the kinds a job may name (the
    entry points pass the built-in handlers' ``KINDS``). A matrix job of more
    than ``max_matrix`` items is an error.
    """
    if isinstance(path_or_text, str) and (
        "\n" in path_or_text or path_or_text.lstrip().startswith("{") or not path_or_text.strip()
    ):
        text = path_or_text
        source = source or "<string>"
    else:
        source = source or os.fspath(path_or_text)
        try:
            text = Path(path_or_text).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError([f"{source}: no such manifest file"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError([f"{source}: can't read the manifest: {exc}"]) from None

    data, lines, duplicates = _parse_yaml(text, source)
    errors = _Errors(source, lines)
    for path, line, first_line in duplicates:
        errors.add(
            f"duplicate key {path[-1]!r} (first at line {first_line})",
            where=path,
            job=_job_label(data, path),
            line=line,
        )
    defaults, specs, broken = _read_document(data, errors)
    entries = [_Entry(index, spec, spec.matrix_spec) for index, spec in specs]
    return _build(source, defaults, entries, kinds, errors, broken, max_matrix=max_matrix)


def parse_template(text: str) -> Template | str:
    """Split a string into literal text and references, or return an error message."""
    parts: list[str | Reference] = []
    position = 0
    for match in _TEMPLATE.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        expression = match.group(1).strip()
        found = _JOB_OUTPUT_EXPR.fullmatch(expression)
        if found:
            reference = _reference(match.group(0), found)
            if isinstance(reference, str):
                return reference
            parts.append(reference)
        elif expression == _RUN_ID_EXPR:
            parts.append(Reference(match.group(0)))
        elif expression.startswith("matrix."):
            return f"{match.group(0)!r}: matrix values exist only in a job with 'matrix:'"
        else:
            return (
                f"unsupported expression {match.group(0)!r}: only "
                "'{{ jobs.<job>.outputs.<output> }}' (of a matrix job also "
                "'jobs.<job>[<index>]' and 'jobs.<job>.best(\"<metric>\", \"min\"|\"max\")'), "
                "'{{ run.id }}' and, in a matrix job, '{{ matrix.<name> }}' are allowed"
            )
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def _reference(text: str, found: re.Match[str]) -> Reference | str:
    job, output = found["job"], found["output"]
    if found["index"] is not None:
        index = int(found["index"])
        return Reference(text, item_key(job, index), output, index=index)
    if found["metric"] is None:
        return Reference(text, job, output)
    metric = found["metric"][1:-1]
    direction = found["direction"][1:-1] if found["direction"] else "min"
    if not metric:
        return f"{text!r}: best() needs the name of a final metric, e.g. best(\"validation:rmse\")"
    if direction not in _DIRECTIONS:
        return f"{text!r}: best()'s direction must be \"min\" or \"max\", not {direction!r}"
    return Reference(text, job, output, aggregate="best", metric=metric, direction=direction)


def references_in(request: Mapping[str, Any]) -> tuple[Reference, ...]:
    """Every well-formed reference in a request, in document order."""
    return tuple(ref for _, _, template in _templates(request) for ref in _refs(template))


# ---------------------------------------------------------------------------
# reading the YAML document

_KEY_RULE = "must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$ (letters, digits, hyphens)"


@dataclass(frozen=True)
class _Message:
    """A message and where it sorts; ``item`` is (matrix key, index) for an item's."""

    order: float
    seq: int
    message: str
    item: tuple[str, int] | None = None


class _Errors:
    """Collects messages as ``file:line: job 'key': field: problem``.

    The messages about a matrix's items are capped: the first ``_ITEM_ERRORS``
    in item order, then one line saying how many more items have errors."""

    def __init__(self, source: str, lines: Mapping[YamlPath, int]) -> None:
        self.source = source
        self.lines = lines
        self._entries: list[_Message] = []
        self._matrices: dict[str, int | None] = {}  # matrix key -> its line

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def messages(self) -> list[str]:
        """In document order, so that a reader goes through the file once."""
        kept = [e for e in self._entries if e.item is None]
        by_matrix: dict[str, list[_Message]] = {}
        for entry in self._entries:
            if entry.item is not None:
                by_matrix.setdefault(entry.item[0], []).append(entry)
        for key, entries in by_matrix.items():
            entries.sort(key=lambda e: (e.item, e.order, e.seq))
            shown, hidden = entries[:_ITEM_ERRORS], entries[_ITEM_ERRORS:]
            kept += shown
            if not hidden:
                continue
            unseen = {e.item for e in hidden} - {e.item for e in shown}
            more = (
                f"... and {len(unseen)} more items with errors"
                if unseen
                else f"... and {len(hidden)} more errors"
            )
            line = self._matrices.get(key)
            where = f"{self.source}:{line}" if line is not None else self.source
            last = max(shown, key=lambda e: (e.order, e.seq))
            kept.append(_Message(last.order, last.seq, f"{where}: job {key!r}: {more}"))
        return [e.message for e in sorted(kept, key=lambda e: (e.order, e.seq))]

    def line(self, where: YamlPath) -> int | None:
        # the nearest enclosing node with a known line: a missing member is
        # reported at the mapping that lacks it
        for end in range(len(where), -1, -1):
            found = self.lines.get(where[:end])
            if found is not None:
                return found
        return None

    def matrix(self, key: str, where: YamlPath) -> None:
        """Register a matrix job, so that its items' messages can be capped."""
        self._matrices[key] = self.line(where)

    def add(
        self,
        problem: str,
        *,
        where: YamlPath = (),
        job: str | None = None,
        field_name: str | None = None,
        line: int | None = None,
        item: tuple[str, int] | None = None,
    ) -> None:
        line = line if line is not None else self.line(where)
        parts = [f"{self.source}:{line}" if line is not None else self.source]
        if job is not None:
            parts.append(f"job {job!r}")
        inner = where[2:] if where[:1] == ("jobs",) and len(where) >= 2 else where
        name = field_name if field_name is not None else _field(inner)
        if name:
            parts.append(name)
        # one line a problem, whatever the document's keys hold (botocore quotes them raw)
        parts.append("".join(c if c.isprintable() else repr(c)[1:-1] for c in problem))
        order = float(line) if line is not None else float("inf")
        self._entries.append(_Message(order, len(self._entries), ": ".join(parts), item))


def _job_label(data: Any, path: YamlPath) -> str | None:
    """The name of the job a path lies in, as error messages show it."""
    if len(path) < 3 or path[0] != "jobs" or not isinstance(path[1], int):
        return None
    try:
        name = data["jobs"][path[1]]["name"]
    except (TypeError, KeyError, IndexError):
        name = None
    return name if isinstance(name, str) else f"#{path[1] + 1}"


def _field(path: YamlPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = str(part)
        if not name.isprintable() or not name:
            name = repr(name)  # a message is one line, whatever the key holds
        text += f".{name}" if text else name
    return text


def _parse_yaml(
    text: str, source: str
) -> tuple[Any, dict[YamlPath, int], list[tuple[YamlPath, int, int]]]:
    """The document, the line of every key and list item, and the duplicate keys."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader rejects control characters up front
        raise ManifestError([f"{source}: malformed YAML: {exc}"]) from None
    lines: dict[YamlPath, int] = {}
    duplicates: list[tuple[YamlPath, int, int]] = []
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, duplicates
        _index(loader, node, (), lines, duplicates, set())
        return loader.construct_document(node), lines, duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "unreadable"
        if exc.context and exc.problem:
            started = (
                f" that starts at line {exc.context_mark.line + 1}" if exc.context_mark else ""
            )
            problem += f" ({exc.context}{started})"
        raise ManifestError([f"{where}: malformed YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ManifestError([f"{source}: malformed YAML: {exc}"]) from None
    finally:
        loader.dispose()


def _index(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: YamlPath,
    lines: dict[YamlPath, int],
    duplicates: list[tuple[YamlPath, int, int]],
    open_nodes: set[int],
) -> None:
    if id(node) in open_nodes:
        # a recursive alias (`&a [*a]`) would send every later walk of the request round forever
        raise yaml.constructor.ConstructorError(
            problem="an alias refers to a node that contains it", problem_mark=node.start_mark
        )
    open_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int)):
                child = (*path, key)
                if key in seen:
                    duplicates.append((child, line, seen[key]))
                    continue
                seen[key] = line
                lines[child] = line
                _index(loader, value_node, child, lines, duplicates, open_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _index(loader, item, child, lines, duplicates, open_nodes)
    open_nodes.discard(id(node))


def _unknown(key: object, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key {key!r}{hint}"


def _timeout(value: object, where: YamlPath, job: str | None, errors: _Errors) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        errors.add(
            f"timeout must be a positive number of seconds, not {value!r}", where=where, job=job
        )
        return None
    return float(value)


def _read_document(
    data: Any, errors: _Errors
) -> tuple[Defaults, list[tuple[int, JobSpec]], frozenset[str]]:
    """The defaults, the well-formed jobs, and the names of the malformed ones."""
    if data is None:
        errors.add("the manifest is empty; it needs a 'jobs:' list")
        raise ManifestError(errors.messages)
    if not isinstance(data, dict):
        errors.add(f"the manifest must be a mapping with 'jobs:', not a {type(data).__name__}")
        raise ManifestError(errors.messages)
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            errors.add(_unknown(key, _TOP_LEVEL_KEYS), where=(key,))
    defaults = _read_defaults(data.get("defaults"), errors)

    jobs = data.get("jobs")
    if jobs is None or jobs == []:
        errors.add(
            "'jobs:' is missing or empty; a manifest needs at least one job", where=("jobs",)
        )
        jobs = []
    elif not isinstance(jobs, list):
        errors.add(f"'jobs:' must be a list of jobs, not a {type(jobs).__name__}", where=("jobs",))
        jobs = []

    specs: list[tuple[int, JobSpec]] = []
    broken: set[str] = set()
    for index, raw in enumerate(jobs):
        spec = _read_job(index, raw, errors)
        if spec is not None:
            specs.append((index, spec))
        elif isinstance(raw, dict) and isinstance(raw.get("name"), str):
            broken.add(raw["name"])
    return defaults, specs, frozenset(broken)


def _read_defaults(raw: Any, errors: _Errors) -> Defaults:
    if raw is None:
        return Defaults()
    if not isinstance(raw, dict):
        errors.add(f"must be a mapping, not a {type(raw).__name__}", where=("defaults",))
        return Defaults()
    for key in raw:
        if key not in _DEFAULTS_KEYS:
            errors.add(_unknown(key, _DEFAULTS_KEYS), where=("defaults", key))
    strings: dict[str, str | None] = {}
    for key in ("region", "role"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            errors.add(f"must be a string, not {value!r}", where=("defaults", key))
            value = None
        strings[key] = value
    tags: dict[str, str] = {}
    raw_tags = raw.get("tags")
    if isinstance(raw_tags, dict):
        for key, value in raw_tags.items():
            if isinstance(key, str) and isinstance(value, str):
                tags[key] = value
            else:
                errors.add(
                    f"tag {key!r}: {value!r}: keys and values must be strings (quote them in YAML)",
                    where=("defaults", "tags", key),
                )
    elif raw_tags is not None:
        errors.add("must be a mapping of tag keys to values", where=("defaults", "tags"))
    return Defaults(
        region=strings["region"],
        role=strings["role"],
        tags=tags,
        timeout=_timeout(raw.get("timeout"), ("defaults", "timeout"), None, errors),
        max_parallel=raw.get("max_parallel"),  # checked against the kinds when jobs are built
    )


def _read_job(index: int, raw: Any, errors: _Errors) -> JobSpec | None:
    where: YamlPath = ("jobs", index)
    label = f"#{index + 1}"
    if not isinstance(raw, dict):
        errors.add(f"job {label} must be a mapping, not {raw!r}", where=where)
        return None
    name = raw.get("name")
    if isinstance(name, str) and JOB_KEY_PATTERN.fullmatch(name):
        label = name
    elif name is None:
        errors.add("missing 'name'", where=where, job=label)
    else:
        errors.add(f"name {name!r} {_KEY_RULE}", where=(*where, "name"), job=label)
    for key in raw:
        if key not in _JOB_KEYS:
            errors.add(_unknown(key, _JOB_KEYS), where=(*where, key), job=label)
    for required in ("kind", "request"):
        if raw.get(required) is None:
            errors.add(f"missing {required!r}", where=where, job=label)
    kind = raw.get("kind")
    if kind is not None and not isinstance(kind, str):
        errors.add(f"must be a string, not {kind!r}", where=(*where, "kind"), job=label)
    request = raw.get("request")
    if request is not None and not isinstance(request, dict):
        errors.add(
            f"must be a mapping (the Create* request), not a {type(request).__name__}",
            where=(*where, "request"),
            job=label,
        )
    after = raw.get("after", ())
    if isinstance(after, str):
        after = [after]
    if after is None:
        after = ()
    if not isinstance(after, (list, tuple)) or not all(isinstance(a, str) for a in after):
        errors.add("must be a list of job names", where=(*where, "after"), job=label)
        after = ()
    timeout = _timeout(raw.get("timeout"), (*where, "timeout"), label, errors)
    options = raw.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        errors.add(
            "must be a mapping of option names to values", where=(*where, "options"), job=label
        )
        options = {}
    matrix_spec = _read_matrix_keys(raw, where, label, errors)
    if label != name or not isinstance(kind, str) or not isinstance(request, dict):
        return None
    return JobSpec(
        key=name,
        kind=kind,
        request=request,
        after=tuple(after),
        timeout=timeout,
        line=errors.line(where),
        options=options,
        matrix_spec=matrix_spec,
    )


def _read_matrix_keys(
    raw: Mapping[str, Any], where: YamlPath, label: str, errors: _Errors
) -> MatrixSpec | None:
    """A matrix job's ``matrix:`` and its settings (checked when the matrix is
    built); the settings on a job without ``matrix:`` are errors."""
    if "matrix" in raw:
        # an explicit null means the default, as for `options:`
        fail_fast = raw.get("fail_fast")
        return MatrixSpec(
            matrix=raw["matrix"],
            fail_fast=False if fail_fast is None else fail_fast,
            min_succeeded=raw.get("min_succeeded"),
            max_parallel=raw.get("max_parallel"),
        )
    for key in _MATRIX_KEYS:
        if key not in raw:
            continue
        if key == "max_parallel":
            problem = (
                "max_parallel limits the items of a matrix job (one with 'matrix:'); "
                "to limit other jobs use defaults.max_parallel (for the whole run, or per kind)"
            )
        else:
            problem = f"{key} is for a matrix job (one with 'matrix:'), and this job has none"
        errors.add(problem, where=(*where, key), job=label)
    return None


# ---------------------------------------------------------------------------
# validating jobs: graph, references, requests


@functools.cache
def sagemaker_model() -> ServiceModel:
    # Loading the model takes a third of a second and it never changes within a
    # process, so it is read once; a ServiceModel is not mutated after loading.
    return ServiceModel(create_loader().load_service_model("sagemaker", "service-2"), "sagemaker")


@dataclass
class _Entry:
    """A job as the manifest lists it: a plain job, or a matrix job (``matrix``
    set) whose items are expanded from ``spec`` or, from :meth:`Manifest.from_jobs`,
    ``given`` (each with its index in the list of specs)."""

    index: int
    spec: JobSpec
    matrix: MatrixSpec | None = None
    given: list[tuple[int, JobSpec]] | None = None

    @property
    def is_matrix(self) -> bool:
        return self.matrix is not None or self.given is not None


@dataclass
class _Context:
    """What checking one job needs to know of the others."""

    kinds: Mapping[str, Kind]
    entries: Mapping[str, _Entry]  # every job and matrix by key
    counts: Mapping[str, int]  # the item count of every matrix that expanded
    broken: frozenset[str]  # keys already reported as malformed: not checked again


Report = Callable[..., None]  # _Errors.add with the job (and item) filled in


def _group_items(specs: list[JobSpec], errors: _Errors) -> list[_Entry]:
    """From :meth:`Manifest.from_jobs`: the entries, a matrix's items together
    at its first item's place."""
    entries: list[_Entry] = []
    groups: dict[str, _Entry] = {}
    for index, spec in enumerate(specs):
        if spec.matrix is None:
            entries.append(_Entry(index, spec, spec.matrix_spec))
            continue
        group = groups.get(spec.matrix)
        if group is None:
            template = dataclasses.replace(spec, key=spec.matrix, matrix=None, item=None, values={})
            group = groups[spec.matrix] = _Entry(index, template, spec.matrix_spec, given=[])
            entries.append(group)
        assert group.given is not None
        if spec.kind != group.spec.kind:
            errors.add(
                f"the items of matrix {spec.matrix!r} must be of one kind: "
                f"{spec.kind!r} is not {group.spec.kind!r}",
                where=("jobs", index, "kind"),
                job=spec.label,
            )
        group.given.append((index, spec))
    for key, group in groups.items():
        assert group.given is not None
        group.given.sort(key=lambda given: given[1].item or 0)
        numbers = [spec.item for _, spec in group.given]
        if numbers != list(range(len(numbers))):
            errors.add(
                f"the items of matrix {key!r} must be numbered 0 to {len(numbers) - 1}, "
                f"each once; they are {', '.join(map(str, numbers))}",
                where=("jobs", group.index),
                job=key,
            )
    return entries


def _build(
    source: str,
    defaults: Defaults,
    entries: list[_Entry],
    kinds: Mapping[str, Kind],
    errors: _Errors,
    broken: frozenset[str] = frozenset(),
    *,
    max_matrix: int = DEFAULT_MAX_MATRIX,
) -> Manifest:
    """Validate the jobs, expand the matrices and apply the defaults; ``broken``
    names jobs already reported."""
    by_key: dict[str, _Entry] = {}
    for entry in entries:
        spec = entry.spec
        if spec.key in by_key:
            first = by_key[spec.key].spec.line
            where_first = f" (first at line {first})" if first is not None else ""
            errors.add(
                f"duplicate job name{where_first}",
                where=("jobs", entry.index, "name"),
                job=spec.key,
            )
        else:
            by_key[spec.key] = entry

    # every matrix's items first: references to them are checked against their count
    expanded: dict[str, list[tuple[int, Mapping[str, Any], JobSpec]]] = {}
    failed = set(broken)
    for key, entry in by_key.items():
        if not entry.is_matrix:
            continue
        errors.matrix(key, ("jobs", entry.index))
        if entry.given is not None:
            items = [(index, spec.values, spec) for index, spec in entry.given]
            if len(items) > max_matrix:
                errors.add(
                    f"matrix: has {len(items):,} items, more than the limit of {max_matrix:,}; "
                    "raise the limit with --max-matrix (max_matrix= in Python)",
                    where=("jobs", entry.index),
                    job=key,
                )
                failed.add(key)
                continue
            expanded[key] = items
            continue
        assert entry.matrix is not None
        values, problems = expand(entry.matrix.matrix, max_matrix)
        for path, problem in problems:
            errors.add(problem, where=("jobs", entry.index, "matrix", *path), job=key)
        if problems:
            failed.add(key)
        else:
            expanded[key] = [(entry.index, v, entry.spec) for v in values]
    context = _Context(
        kinds, by_key, {key: len(items) for key, items in expanded.items()}, frozenset(failed)
    )

    jobs: dict[str, JobSpec] = {}
    matrices: dict[str, Matrix] = {}
    for key, entry in by_key.items():
        spec = entry.spec
        given = entry.given or [(entry.index, spec)]
        for index, own in given:
            _check_dependencies(index, own, key, context, errors)
        kind = kinds.get(spec.kind)
        if kind is None:
            close = difflib.get_close_matches(spec.kind, list(kinds), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(sorted(kinds)) or "none"
            errors.add(
                f"unknown kind {spec.kind!r}; {hint}known kinds: {known}",
                where=("jobs", entry.index, "kind"),
                job=key,
            )
            continue
        for index, own in given:
            for problem in kind.option_problems(own.options):
                errors.add(problem, where=("jobs", index, "options"), job=key)
        timeout = spec.timeout if spec.timeout is not None else defaults.timeout
        if not entry.is_matrix:
            request = _apply_defaults(spec.request, kind, defaults)
            report = functools.partial(errors.add, job=key)
            _check_request(entry.index, spec, request, kind, context, report)
            jobs[key] = dataclasses.replace(
                spec, request=request, after=tuple(spec.after), timeout=timeout,
                options=dict(spec.options),
            )
            continue
        count = context.counts.get(key)
        settings = _check_settings(entry, count, errors)
        if count is None:
            continue  # its matrix: is reported
        specs = _expand_items(entry, expanded[key], kind, defaults, context, errors)
        if _check_item_names(entry, kind, errors):
            _check_distinct_names(entry, specs, kind, errors)
        jobs.update((item.key, item) for item in specs)
        fail_fast, min_succeeded, max_parallel = settings
        matrices[key] = Matrix(
            key=key,
            kind=spec.kind,
            items=tuple(item.key for item in specs),
            values=tuple(item.values for item in specs),
            fail_fast=fail_fast,
            min_succeeded=count if min_succeeded is None else min_succeeded,
            max_parallel=max_parallel,
            line=spec.line,
        )
    _check_cycles(by_key, jobs, errors)
    limits = _limits(defaults.max_parallel, kinds, errors)
    if errors:
        raise ManifestError(errors.messages)
    return Manifest(
        source=source,
        region=defaults.region,
        defaults=defaults,
        jobs=jobs,
        matrices=matrices,
        limits=limits,
    )


def _expand_items(
    entry: _Entry,
    items: list[tuple[int, Mapping[str, Any], JobSpec]],
    kind: Kind,
    defaults: Defaults,
    context: _Context,
    errors: _Errors,
) -> list[JobSpec]:
    """A matrix's items as jobs: ``{{ matrix.* }}`` put in, defaults applied, each
    validated as a plain job is (its messages name the item)."""
    key, template = entry.spec.key, entry.spec
    shape = _input_shape(kind)

    def takes_text(path: YamlPath) -> bool:
        target = _shape_at(shape, path) if shape is not None else None
        return target is not None and target.type_name == "string"

    jobs: list[JobSpec] = []
    for number, (index, values, own) in enumerate(items):
        key_of_item = item_key(key, number)
        report = functools.partial(
            errors.add, job=item_label(key_of_item, values), item=(key, number)
        )
        request, problems = substitute(own.request, values, takes_text)
        for path, problem in problems:
            report(problem, where=("jobs", index, "request", *path))
        item = JobSpec(
            key=key_of_item,
            kind=template.kind,
            request=_apply_defaults(request, kind, defaults),
            after=tuple(own.after),
            timeout=own.timeout if own.timeout is not None else defaults.timeout,
            line=own.line,
            options=dict(own.options),
            matrix=key,
            item=number,
            values=dict(values),
            matrix_spec=entry.matrix,
        )
        if not problems:  # else its expressions are still in it: reported once is enough
            _check_request(index, item, item.request, kind, context, report)
        jobs.append(item)
    return jobs


def _check_settings(
    entry: _Entry, count: int | None, errors: _Errors
) -> tuple[bool, int | None, int | None]:
    """A matrix job's fail_fast, min_succeeded and max_parallel (an invalid one
    reported, and its default used)."""
    settings = entry.matrix or MatrixSpec(None)
    key, where = entry.spec.key, ("jobs", entry.index)
    fail_fast = settings.fail_fast
    if not isinstance(fail_fast, bool):
        errors.add(
            f"fail_fast must be true or false, not {fail_fast!r}",
            where=(*where, "fail_fast"),
            job=key,
        )
        fail_fast = False
    least = settings.min_succeeded
    if least is not None and (
        not _is_int(least) or least < 0 or (count is not None and least > count)
    ):
        upper = f"to {count} (the matrix has {count} items)" if count is not None else "or more"
        errors.add(
            f"min_succeeded must be an integer from 0 {upper}, not {least!r}",
            where=(*where, "min_succeeded"),
            job=key,
        )
        least = None
    parallel = settings.max_parallel
    if parallel is not None and (not _is_int(parallel) or parallel < 1):
        errors.add(
            f"max_parallel must be a positive integer, not {parallel!r}",
            where=(*where, "max_parallel"),
            job=key,
        )
        parallel = None
    return fail_fast, least, parallel


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # YAML's yes is no number


def _check_item_names(entry: _Entry, kind: Kind, errors: _Errors) -> bool:
    """An explicit resource name must differ per item: a template's must use a
    matrix value (without one each item is named from its own key). False when
    it doesn't, which is reported."""
    if entry.given is not None:
        return True  # already expanded: the items' names are what counts
    name = entry.spec.request.get(kind.name_field)
    if name is not None and not (isinstance(name, str) and uses_matrix(name)):
        errors.add(
            "every item of a matrix job needs its own name: put a '{{ matrix.<name> }}' "
            "in it, or leave it out to name each item from its key",
            where=("jobs", entry.index, "request", kind.name_field),
            job=entry.spec.key,
        )
        return False
    return True


def _check_distinct_names(
    entry: _Entry, items: list[JobSpec], kind: Kind, errors: _Errors
) -> None:
    """Explicit names that two items share (reported once for the matrix)."""
    first: dict[str, str] = {}
    repeated: list[tuple[str, str, str]] = []
    for item in items:
        name = item.request.get(kind.name_field)
        if not isinstance(name, str) or "{{" in name:
            continue
        if name in first:
            repeated.append((first[name], item.key, name))
        else:
            first[name] = item.key
    if repeated:
        earlier, later, name = repeated[0]
        more = len(repeated) - 1
        rest = f", and {more} more item{'s' * (more != 1)} repeat an earlier name" if more else ""
        errors.add(
            f"items {earlier!r} and {later!r} would both be named {name!r}{rest}; "
            "every item needs its own name",
            where=("jobs", entry.index, "request", kind.name_field),
            job=entry.spec.key,
        )


def _limits(raw: object, kinds: Mapping[str, Kind], errors: _Errors) -> Limits:
    """``defaults.max_parallel``: an int for the whole run, or kind -> int (and ``run``)."""
    where: YamlPath = ("defaults", "max_parallel")
    if raw is None:
        return Limits()
    if _is_int(raw) and raw >= 1:
        return Limits(run=raw)
    if not isinstance(raw, Mapping):
        errors.add(
            "must be a positive integer (jobs at once in the whole run) or a mapping of kind "
            f"names to positive integers (and 'run' for the whole run), not {raw!r}",
            where=where,
        )
        return Limits()
    run: int | None = None
    per_kind: dict[str, int] = {}
    for name, value in raw.items():
        at = (*where, name)
        if name != "run" and name not in kinds:
            close = difflib.get_close_matches(str(name), list(kinds), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(sorted(kinds)) or "none"
            errors.add(
                f"unknown kind {name!r}; {hint}known kinds: {known} ('run' is the whole run)",
                where=at,
            )
        elif not _is_int(value) or value < 1:
            errors.add(f"must be a positive integer, not {value!r}", where=at)
        elif name == "run":
            run = value
        else:
            per_kind[name] = value
    return Limits(run=run, kinds=per_kind)


def _check_dependencies(
    index: int, spec: JobSpec, own: str, context: _Context, errors: _Errors
) -> None:
    """``after:`` of job (or matrix) ``own``: jobs, matrices and items that exist."""
    for position, other in enumerate(spec.after):
        where = ("jobs", index, "after", position)
        problem = _target_problem(other, own, context, "run after")
        if problem:
            errors.add(problem, where=where, job=own)


def _target_problem(name: str, own: str, context: _Context, verb: str) -> str | None:
    item = _ITEM_KEY.fullmatch(name)
    base = item["matrix"] if item else name
    if base == own:
        return f"a job can't {verb} itself"
    if base in context.broken:
        return None
    if base not in context.entries:
        return _no_such_job(base, context.entries, own)
    if item:
        return _item_problem(base, int(item["index"]), context)
    return None


def _item_problem(base: str, index: int, context: _Context) -> str | None:
    count = context.counts.get(base)
    if not context.entries[base].is_matrix:
        return f"job {base!r} is not a matrix job, so it has no item [{index}]"
    if count is not None and index >= count:
        return (
            f"index {index} is out of range: matrix {base!r} has {count} "
            f"item{'s' * (count != 1)} ({base}[0] to {base}[{count - 1}])"
        )
    return None


def _no_such_job(key: str, by_key: Mapping[str, object], asking: str) -> str:
    close = difflib.get_close_matches(key, [k for k in by_key if k != asking], n=1)
    return f"no job named {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")


def _apply_defaults(request: Mapping[str, Any], kind: Kind, defaults: Defaults) -> dict[str, Any]:
    filled = copy.deepcopy(dict(request))
    shape = _input_shape(kind)
    members: Mapping[str, Shape] = shape.members if shape is not None else {}
    if defaults.role is not None and shape is not None:
        _fill_role(filled, shape, kind.role_field.split("."), defaults.role)
    if defaults.tags and "Tags" in members:
        own = filled.get("Tags", [])
        if isinstance(own, list):
            own_keys = {t.get("Key") for t in own if isinstance(t, dict)}
            inherited = [
                {"Key": k, "Value": v} for k, v in defaults.tags.items() if k not in own_keys
            ]
            filled["Tags"] = inherited + own
    return filled


def _fill_role(request: dict[str, Any], shape: Shape, path: list[str], role: str) -> None:
    """Set the role at ``path`` (dotted, e.g. a tuning job's
    ``TrainingJobDefinition.RoleArn``) unless the request has one; only along
    members the operation's shape really has, and only into mappings the request
    already holds (a missing parent is the request's own validation error)."""
    head, rest = path[0], path[1:]
    members = getattr(shape, "members", {})
    if head not in members:
        return
    if not rest:
        request.setdefault(head, role)
        return
    child = request.get(head)
    if isinstance(child, dict):
        _fill_role(child, members[head], rest, role)


def _input_shape(kind: Kind) -> Shape | None:
    model = sagemaker_model()
    if kind.create not in model.operation_names:
        return None
    shape: Shape | None = model.operation_model(kind.create).input_shape
    return shape


def _check_request(
    index: int,
    spec: JobSpec,
    request: dict[str, Any],
    kind: Kind,
    context: _Context,
    report: Report,
) -> None:
    base: YamlPath = ("jobs", index, "request")
    shape = _input_shape(kind)
    if shape is None:
        report(
            f"kind {kind.name!r} names {kind.create!r}, which is not a SageMaker operation",
            where=("jobs", index, "kind"),
        )
        return

    reference_paths: list[YamlPath] = []
    for path, text, template in _templates(request):
        where = (*base, *path)
        if isinstance(template, str):
            report(template, where=where)
            continue
        whole = len(template) == 1 and isinstance(template[0], Reference)
        if whole:
            reference_paths.append(path)
        for ref in _refs(template):
            target = _shape_at(shape, path)
            problem = _check_reference(ref, spec, whole, target, context)
            if problem:
                report(f"{text!r}: {problem}", where=where)

    checked = dict(request)
    name = checked.get(kind.name_field)
    name_shape = shape.members.get(kind.name_field)
    max_length = min(kind.max_name_length, _shape_max(name_shape, kind.max_name_length))
    if name is None:
        # the engine names the resource at run time; validate with a name of the same form
        checked[kind.name_field] = resource_name("run", spec.key, max_length)
    elif isinstance(name, str) and "{{" not in name:
        problem = _check_name(name, name_shape, max_length)
        if problem:
            report(problem, where=(*base, kind.name_field))

    validation = ParamValidator().validate(checked, shape)
    for reason, botocore_name, details in _report_entries(validation):
        if any(_is_within(botocore_name, _botocore_name(p)) for p in reference_paths):
            continue  # a whole reference stands for a value whose type was checked above
        path = _path_of(botocore_name)
        if reason == "unknown field":
            path = (*path, details["unknown_param"])
        if reason:
            single = ValidationErrors()
            single.report(botocore_name, reason, **details)
            message = single.generate_report() + _quote_hint(reason, details)
        else:
            message = str(details["line"])
        report(message, where=(*base, *path), field_name=_field(("request", *path)))


def _check_reference(
    ref: Reference,
    spec: JobSpec,
    whole: bool,
    target: Shape | None,
    context: _Context,
) -> str | None:
    if ref.job is None:
        return None
    item = _ITEM_KEY.fullmatch(ref.job) if ref.index is not None else None
    base = item["matrix"] if item else ref.job
    own = spec.matrix or spec.key
    if base == own:
        if spec.matrix is not None:
            return (
                f"an item can't refer to its own matrix {own!r} "
                "(its items would wait for each other: a dependency cycle)"
            )
        return "a job can't refer to its own outputs"
    if base in context.broken:
        return None
    entry = context.entries.get(base)
    if entry is None:
        return _no_such_job(base, context.entries, own)
    if ref.index is not None:
        problem = _item_problem(base, ref.index, context)
        if problem:
            return problem
    elif ref.aggregate == "best" and not entry.is_matrix:
        return f"job {base!r} is not a matrix job; best() picks one of a matrix job's items"
    other_kind = context.kinds.get(entry.spec.kind)
    if other_kind is None:
        return None  # reported on that job
    if ref.aggregate == "best" and other_kind.name not in BEST_KINDS:
        return (
            f"best() compares final metrics, which only "
            f"{' and '.join(sorted(BEST_KINDS))} jobs report; "
            f"matrix {base!r} is of kind {other_kind.name!r}"
        )
    types: Mapping[str, type] = getattr(other_kind, "output_types", {})
    if ref.output is None or ref.output not in types:
        known = ", ".join(sorted(types)) or "none declared"
        return f"kind {other_kind.name!r} has no output {ref.output!r} (outputs: {known})"
    output_type = types[ref.output]
    if entry.is_matrix and ref.index is None and ref.aggregate is None:
        return _check_list_reference(ref, base, whole, target, output_type)
    if not whole:
        if output_type is not object and not issubclass(output_type, _SCALARS):
            return (
                f"output {ref.output!r} is {_a(output_type.__name__)}; "
                "only strings, numbers and booleans can be put into text"
            )
        return None
    if target is not None and not _accepts(target, output_type):
        return (
            f"output {ref.output!r} is {_a(output_type.__name__)}, "
            f"but this member takes {_a(target.type_name)}"
        )
    return None


def _check_list_reference(
    ref: Reference, matrix: str, whole: bool, target: Shape | None, output_type: type
) -> str | None:
    """``jobs.<matrix>.outputs.<output>``: the list of the succeeded items' outputs."""
    what = f"the list of output {ref.output!r} of matrix {matrix!r}'s succeeded items"
    if not whole:
        return (
            f"{what} can't be put into text; pick one item with "
            f"'jobs.{matrix}[<index>]' or 'jobs.{matrix}.best(\"<metric>\")'"
        )
    if target is None or getattr(target, "is_document_type", False):
        return None
    if target.type_name != "list":
        return f"{what} is a list, but this member takes {_a(target.type_name)}"
    if not _accepts(target.member, output_type):
        return (
            f"{what} is a list of {output_type.__name__}, but this member takes "
            f"a list of {target.member.type_name}"
        )
    return None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _accepts(shape: Shape, output_type: type) -> bool:
    """Whether botocore would accept a value of ``output_type`` for ``shape``."""
    if output_type is object or getattr(shape, "is_document_type", False):
        return True
    if shape.type_name == "timestamp":
        return issubclass(output_type, (str, datetime.datetime))
    if shape.type_name == "blob":
        return issubclass(output_type, (str, bytes, bytearray))
    valid = {**ParamValidator.SCALAR_TYPES, **ParamValidator.CONTAINER_TYPES}.get(shape.type_name)
    return valid is None or issubclass(output_type, valid)


def _check_name(name: str, shape: Shape | None, max_length: int) -> str | None:
    pattern: re.Pattern[str] = _NAME_PATTERN
    model_pattern = shape.metadata.get("pattern") if shape is not None else None
    if isinstance(model_pattern, str):
        try:
            pattern = re.compile(model_pattern)
        except re.error:
            pass  # a pattern Python can't read: fall back to the documented rule
    if len(name) > max_length:
        return f"name {name!r} is {len(name)} characters; at most {max_length} are allowed"
    if not pattern.fullmatch(name):
        return f"name {name!r} must match {pattern.pattern}"
    return None


def _shape_max(shape: Shape | None, fallback: int) -> int:
    found = shape.metadata.get("max") if shape is not None else None
    return found if isinstance(found, int) else fallback


def _shape_at(shape: Shape, path: YamlPath) -> Shape | None:
    current: Shape | None = shape
    for part in path:
        if current is None:
            return None
        if current.type_name == "structure":
            current = current.members.get(str(part))
        elif current.type_name == "list" and isinstance(part, int):
            current = current.member
        elif current.type_name == "map":
            current = current.value
        else:
            return None
    return current


def _report_entries(report: ValidationErrors) -> list[tuple[str, str, dict[str, Any]]]:
    # botocore keeps each error as (reason, name, details) before formatting;
    # reading them gives every error its own path instead of one joined text
    entries: list[tuple[str, str, dict[str, Any]]] | None = getattr(report, "_errors", None)
    if entries is None:  # a botocore that stores them otherwise: one entry per report line
        return [("", "", {"line": line}) for line in report.generate_report().splitlines()]
    return list(entries)


def _botocore_name(path: YamlPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _is_within(name: str, prefix: str) -> bool:
    if name == prefix:
        return True
    return any(name.startswith(prefix + sep) for sep in (".", "[", " (key:"))


def _path_of(botocore_name: str) -> YamlPath:
    name = botocore_name.split(" (key: ", 1)[0]
    path: list[str | int] = []
    for member, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", name):
        path.append(int(index) if index else member)
    return tuple(path)


def _quote_hint(reason: str, details: Mapping[str, Any]) -> str:
    # YAML reads 10, 0.1, yes and on as numbers and booleans; SageMaker often wants strings
    if reason == "invalid type" and str(str) in details.get("valid_types", ()):
        if isinstance(details.get("param"), (bool, int, float)):
            return " (quote the value in YAML to make it a string)"
    return ""


def _check_cycles(
    by_key: Mapping[str, _Entry], jobs: Mapping[str, JobSpec], errors: _Errors
) -> None:
    """Cycles between jobs and matrices (a matrix is one node: its items' needs)."""
    needs = _collapsed_needs(jobs)
    for key, entry in by_key.items():
        if key not in needs:  # not built (e.g. an unknown kind): what it says it needs
            nodes = (_node_of(n, jobs) for n in entry.spec.needs)
            needs[key] = tuple(dict.fromkeys(n for n in nodes if n in by_key and n != key))
    _, cycles = _topological(list(by_key), needs)
    for cycle in cycles:
        first = cycle[0]
        errors.add(
            f"dependency cycle: {' -> '.join([*cycle, first])} (each waits for the next)",
            where=("jobs", by_key[first].index),
            job=first,
        )


def _node_of(name: str, jobs: Mapping[str, JobSpec]) -> str:
    """The job or matrix a dependency belongs to (an item's matrix)."""
    spec = jobs.get(name)
    if spec is not None and spec.matrix is not None:
        return spec.matrix
    item = _ITEM_KEY.fullmatch(name)
    return item["matrix"] if item else name


def _collapsed_needs(jobs: Mapping[str, JobSpec]) -> dict[str, tuple[str, ...]]:
    """Per plain job and matrix, in manifest order, the jobs and matrices it
    waits for (not itself)."""
    found: dict[str, dict[str, None]] = {}
    for spec in jobs.values():
        node = spec.matrix or spec.key
        needs = found.setdefault(node, {})
        for name in spec.needs:
            other = _node_of(name, jobs)
            if other != node:
                needs[other] = None
    return {node: tuple(needs) for node, needs in found.items()}


def _topological(
    keys: list[str], needs: Mapping[str, Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Kahn's order, stable by position, and the cycles that block the rest."""
    position = {key: i for i, key in enumerate(keys)}
    waiting = {key: {n for n in needs[key] if n in position} for key in keys}
    dependents: dict[str, list[str]] = {key: [] for key in keys}
    for key in keys:
        for dependency in waiting[key]:
            dependents[dependency].append(key)
    done: set[str] = set()
    ordered: list[str] = []
    cycles: list[list[str]] = []

    def release(ready: list[int]) -> None:
        while ready:
            key = keys[heapq.heappop(ready)]
            if key in done:
                continue
            done.add(key)
            ordered.append(key)
            for dependent in dependents[key]:
                waiting[dependent].discard(key)
                if not waiting[dependent] and dependent not in done:
                    heapq.heappush(ready, position[dependent])

    release([position[k] for k in keys if not waiting[k]])
    while len(done) < len(keys):
        # every blocked job waits for another blocked job: walk until one repeats
        walk = [next(k for k in keys if k not in done)]
        while True:
            step = min(waiting[walk[-1]], key=position.__getitem__)
            if step in walk:
                cycles.append(walk[walk.index(step) :])
                break
            walk.append(step)
        # the cycle's jobs are set aside so that the jobs after them can be ordered
        for key in cycles[-1]:
            done.add(key)
            for dependent in dependents[key]:
                waiting[dependent].discard(key)
        release([position[k] for k in keys if k not in done and not waiting[k]])
    return ordered, cycles


# ---------------------------------------------------------------------------
# templates


def _templates(value: Any, path: YamlPath = ()) -> Iterator[tuple[YamlPath, str, Template | str]]:
    """Each string holding ``{{`` with its path, text and parse (or error message)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _templates(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _templates(item, (*path, index))
    elif isinstance(value, str) and "{{" in value:
        yield path, value, parse_template(value)


def _refs(template: Template | str) -> Iterator[Reference]:
    if isinstance(template, str):
        return
    for part in template:
        if isinstance(part, Reference):
            yield part
