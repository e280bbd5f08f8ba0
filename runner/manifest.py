"""Manifests: many SageMaker jobs, their dependencies and the references between them.

A manifest is YAML (or :meth:`Manifest.from_jobs` for Python callers). Each job
carries the native Create* request of its kind. Before anything is created the
whole manifest is validated: its structure, the dependency graph, the references
between jobs, and every request against botocore's own service model. All
problems are collected and raised together as one :class:`ManifestError`.

References are the only expressions: a string that is exactly
``{{ jobs.<key>.outputs.<output> }}`` becomes that output's value (type kept);
a reference among other text is interpolated; ``{{ run.id }}`` is the run id.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import functools
import heapq
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from botocore.loaders import create_loader
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator, ValidationErrors

from runner.identity import resource_name
from runner.kind import Kind

__all__ = [
    "JOB_KEY_PATTERN",
    "Defaults",
    "JobSpec",
    "Manifest",
    "ManifestError",
    "Reference",
    "UnresolvedReference",
    "load_manifest",
    "parse_template",
    "references_in",
    "sagemaker_model",
]

# The same rule as SageMaker resource names, so that a key can be a name's readable part.
JOB_KEY_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_NAME_PATTERN = JOB_KEY_PATTERN

_TOP_LEVEL_KEYS = ("defaults", "jobs")
_DEFAULTS_KEYS = ("region", "role", "tags", "timeout")
_JOB_KEYS = ("name", "kind", "after", "timeout", "options", "request")

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_JOB_OUTPUT_EXPR = re.compile(r"jobs\.(?P<job>[A-Za-z0-9-]+)\.outputs\.(?P<output>[A-Za-z0-9_-]+)")
_RUN_ID_EXPR = "run.id"
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
    """One ``{{ ... }}`` expression: an output of a job, or the run id (``job`` is None)."""

    text: str  # as written, braces included
    job: str | None = None
    output: str | None = None


Template = tuple[str | Reference, ...]


@dataclass(frozen=True)
class Defaults:
    region: str | None = None
    role: str | None = None  # fills the role member of requests that lack one
    tags: Mapping[str, str] = field(default_factory=dict)  # request tags win on the same key
    timeout: float | None = None  # seconds from the resource's CreationTime


@dataclass(frozen=True)
class JobSpec:
    """One job of a manifest; ``request`` is the native Create* request.

    The resource name member may be absent: the engine then names the resource
    with :func:`resource_name`. ``after`` lists the explicit dependencies; those
    implied by references are added in :attr:`needs`. ``options`` are the kind's
    job-level options (what the request can't say, e.g. an endpoint's ``update``),
    checked against ``Kind.option_types``.
    """

    key: str
    kind: str
    request: dict[str, Any]
    after: tuple[str, ...] = ()
    timeout: float | None = None
    line: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def references(self) -> tuple[Reference, ...]:
        """Every well-formed reference of the request, in document order."""
        return references_in(self.request)

    @cached_property
    def needs(self) -> tuple[str, ...]:
        """The jobs that must succeed first: ``after`` plus the referenced jobs."""
        keys = [*self.after, *(ref.job for ref in self.references if ref.job is not None)]
        return tuple(dict.fromkeys(keys))

    def resolve(self, outputs: Mapping[str, Mapping[str, Any]], run_id: str) -> dict[str, Any]:
        """The request with every reference replaced; ``outputs`` maps job key to outputs."""

        def value_of(ref: Reference, path: YamlPath) -> Any:
            if ref.job is None:
                return run_id
            assert ref.output is not None
            produced = outputs.get(ref.job)
            if produced is None or ref.output not in produced:
                known = ", ".join(sorted(produced or {})) or "none"
                raise UnresolvedReference(
                    f"job {self.key!r}: {_field(('request', *path))}: {ref.text}: "
                    f"job {ref.job!r} has no output {ref.output!r} (it has: {known})"
                )
            return produced[ref.output]

        def substitute(value: Any, path: YamlPath) -> Any:
            if isinstance(value, dict):
                return {k: substitute(v, (*path, k)) for k, v in value.items()}
            if isinstance(value, list):
                return [substitute(v, (*path, i)) for i, v in enumerate(value)]
            if isinstance(value, str) and "{{" in value:
                template = parse_template(value)
                if isinstance(template, str):
                    raise UnresolvedReference(f"job {self.key!r}: {template}")
                if len(template) == 1 and isinstance(template[0], Reference):
                    # deep copy: the caller may mutate the request it gets
                    return copy.deepcopy(value_of(template[0], path))
                return "".join(
                    part if isinstance(part, str) else self._as_text(value_of(part, path), path)
                    for part in template
                )
            return copy.deepcopy(value)

        resolved: dict[str, Any] = substitute(self.request, ())
        return resolved

    def _as_text(self, value: Any, path: YamlPath) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)):
            return json.dumps(value)  # true/false, as configuration files spell them
        raise TypeError(
            f"job {self.key!r}: {_field(('request', *path))}: "
            f"a {type(value).__name__} output can't be put into text"
        )


@dataclass(frozen=True)
class Manifest:
    """A validated set of jobs; build it with :func:`load_manifest` or :meth:`from_jobs`."""

    source: str
    region: str | None
    defaults: Defaults
    jobs: dict[str, JobSpec]

    @classmethod
    def from_jobs(
        cls,
        jobs: Iterable[JobSpec],
        *,
        kinds: Mapping[str, Kind],
        defaults: Defaults | None = None,
        source: str = "<python>",
    ) -> Manifest:
        """Validate jobs built in Python exactly as a YAML manifest would be.

        Defaults are applied to the requests (role, tags, timeout).
        """
        errors = _Errors(source, {})
        specs = list(jobs)
        for index, spec in enumerate(specs):
            where = ("jobs", index)
            if not isinstance(spec.key, str) or not JOB_KEY_PATTERN.fullmatch(spec.key):
                errors.add(f"job key {spec.key!r} {_KEY_RULE}", where=(*where, "name"))
            if not isinstance(spec.request, dict):
                errors.add("request must be a mapping", where=(*where, "request"), job=spec.key)
            if isinstance(spec.after, str) or not all(isinstance(a, str) for a in spec.after):
                errors.add("must be a tuple of job keys", where=(*where, "after"), job=spec.key)
            if not isinstance(spec.options, Mapping):
                errors.add("options must be a mapping", where=(*where, "options"), job=spec.key)
        if errors:
            raise ManifestError(errors.messages)
        return _build(source, defaults or Defaults(), list(enumerate(specs)), kinds, errors)

    def order(self) -> list[str]:
        """Job keys with every job after the jobs it needs; ties keep manifest order."""
        ordered, _ = _topological(list(self.jobs), {k: j.needs for k, j in self.jobs.items()})
        return ordered

    def dependencies(self, key: str) -> tuple[str, ...]:
        return self.jobs[key].needs


def load_manifest(
    path_or_text: str | os.PathLike[str],
    *,
    kinds: Mapping[str, Kind],
    source: str | None = None,
) -> Manifest:
    """Load and validate a manifest, raising :class:`ManifestError` with every problem.

    A ``str`` holding a newline (or starting with ``{``, or blank) is YAML text; any other
    ``str`` or path-like is a file. ``kinds`` are the kinds a job may name (the
    entry points pass the built-in handlers' ``KINDS``).
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
    return _build(source, defaults, specs, kinds, errors, broken)


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
            parts.append(Reference(match.group(0), found["job"], found["output"]))
        elif expression == _RUN_ID_EXPR:
            parts.append(Reference(match.group(0)))
        else:
            return (
                f"unsupported expression {match.group(0)!r}: only "
                "'{{ jobs.<job>.outputs.<output> }}' and '{{ run.id }}' are allowed"
            )
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def references_in(request: Mapping[str, Any]) -> tuple[Reference, ...]:
    """Every well-formed reference in a request, in document order."""
    return tuple(ref for _, _, template in _templates(request) for ref in _refs(template))


# ---------------------------------------------------------------------------
# reading the YAML document

_KEY_RULE = "must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$ (letters, digits, hyphens)"


class _Errors:
    """Collects messages as ``file:line: job 'key': field: problem``."""

    def __init__(self, source: str, lines: Mapping[YamlPath, int]) -> None:
        self.source = source
        self.lines = lines
        self._entries: list[tuple[float, int, str]] = []

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def messages(self) -> list[str]:
        """In document order, so that a reader goes through the file once."""
        return [message for _, _, message in sorted(self._entries)]

    def line(self, where: YamlPath) -> int | None:
        # the nearest enclosing node with a known line: a missing member is
        # reported at the mapping that lacks it
        for end in range(len(where), -1, -1):
            found = self.lines.get(where[:end])
            if found is not None:
                return found
        return None

    def add(
        self,
        problem: str,
        *,
        where: YamlPath = (),
        job: str | None = None,
        field_name: str | None = None,
        line: int | None = None,
    ) -> None:
        line = line if line is not None else self.line(where)
        parts = [f"{self.source}:{line}" if line is not None else self.source]
        if job is not None:
            parts.append(f"job {job!r}")
        inner = where[2:] if where[:1] == ("jobs",) and len(where) >= 2 else where
        name = field_name if field_name is not None else _field(inner)
        if name:
            parts.append(name)
        parts.append(problem)
        order = float(line) if line is not None else float("inf")
        self._entries.append((order, len(self._entries), ": ".join(parts)))


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
    )


# ---------------------------------------------------------------------------
# validating jobs: graph, references, requests


@functools.cache
def sagemaker_model() -> ServiceModel:
    # Loading the model takes a third of a second and it never changes within a
    # process, so it is read once; a ServiceModel is not mutated after loading.
    return ServiceModel(create_loader().load_service_model("sagemaker", "service-2"), "sagemaker")


def _build(
    source: str,
    defaults: Defaults,
    specs: list[tuple[int, JobSpec]],
    kinds: Mapping[str, Kind],
    errors: _Errors,
    broken: frozenset[str] = frozenset(),
) -> Manifest:
    """Validate the jobs and apply the defaults; ``broken`` names jobs already reported."""
    by_key: dict[str, tuple[int, JobSpec]] = {}
    for index, spec in specs:
        if spec.key in by_key:
            first = by_key[spec.key][1].line
            where_first = f" (first at line {first})" if first is not None else ""
            errors.add(
                f"duplicate job name{where_first}", where=("jobs", index, "name"), job=spec.key
            )
        else:
            by_key[spec.key] = (index, spec)

    jobs: dict[str, JobSpec] = {}
    for key, (index, spec) in by_key.items():
        _check_dependencies(index, spec, by_key, broken, errors)
        kind = kinds.get(spec.kind)
        if kind is None:
            close = difflib.get_close_matches(spec.kind, list(kinds), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(sorted(kinds)) or "none"
            errors.add(
                f"unknown kind {spec.kind!r}; {hint}known kinds: {known}",
                where=("jobs", index, "kind"),
                job=key,
            )
            continue
        request = _apply_defaults(spec.request, kind, defaults)
        _check_request(index, spec, request, kind, kinds, by_key, broken, errors)
        for problem in kind.option_problems(spec.options):
            errors.add(problem, where=("jobs", index, "options"), job=key)
        jobs[key] = JobSpec(
            key=key,
            kind=spec.kind,
            request=request,
            after=tuple(spec.after),
            timeout=spec.timeout if spec.timeout is not None else defaults.timeout,
            line=spec.line,
            options=dict(spec.options),
        )
    _check_cycles({key: spec for key, (_, spec) in by_key.items()}, by_key, errors)
    if errors:
        raise ManifestError(errors.messages)
    return Manifest(source=source, region=defaults.region, defaults=defaults, jobs=jobs)


def _check_dependencies(
    index: int,
    spec: JobSpec,
    by_key: Mapping[str, tuple[int, JobSpec]],
    broken: frozenset[str],
    errors: _Errors,
) -> None:
    for position, other in enumerate(spec.after):
        where = ("jobs", index, "after", position)
        if other == spec.key:
            errors.add("a job can't run after itself", where=where, job=spec.key)
        elif other not in by_key and other not in broken:
            errors.add(_no_such_job(other, by_key, spec.key), where=where, job=spec.key)


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
    kinds: Mapping[str, Kind],
    by_key: Mapping[str, tuple[int, JobSpec]],
    broken: frozenset[str],
    errors: _Errors,
) -> None:
    base: YamlPath = ("jobs", index, "request")
    shape = _input_shape(kind)
    if shape is None:
        errors.add(
            f"kind {kind.name!r} names {kind.create!r}, which is not a SageMaker operation",
            where=("jobs", index, "kind"),
            job=spec.key,
        )
        return

    reference_paths: list[YamlPath] = []
    for path, text, template in _templates(request):
        where = (*base, *path)
        if isinstance(template, str):
            errors.add(template, where=where, job=spec.key)
            continue
        whole = len(template) == 1 and isinstance(template[0], Reference)
        if whole:
            reference_paths.append(path)
        for ref in _refs(template):
            target = _shape_at(shape, path)
            problem = _check_reference(ref, spec, whole, target, kinds, by_key, broken)
            if problem:
                errors.add(f"{text!r}: {problem}", where=where, job=spec.key)

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
            errors.add(problem, where=(*base, kind.name_field), job=spec.key)

    report = ParamValidator().validate(checked, shape)
    for reason, botocore_name, details in _report_entries(report):
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
        errors.add(
            message, where=(*base, *path), job=spec.key, field_name=_field(("request", *path))
        )


def _check_reference(
    ref: Reference,
    spec: JobSpec,
    whole: bool,
    target: Shape | None,
    kinds: Mapping[str, Kind],
    by_key: Mapping[str, tuple[int, JobSpec]],
    broken: frozenset[str],
) -> str | None:
    if ref.job is None or ref.job in broken:
        return None
    if ref.job == spec.key:
        return "a job can't refer to its own outputs"
    if ref.job not in by_key:
        return _no_such_job(ref.job, by_key, spec.key)
    other_kind = kinds.get(by_key[ref.job][1].kind)
    if other_kind is None:
        return None  # reported on that job
    types: Mapping[str, type] = getattr(other_kind, "output_types", {})
    if ref.output is None or ref.output not in types:
        known = ", ".join(sorted(types)) or "none declared"
        return f"kind {other_kind.name!r} has no output {ref.output!r} (outputs: {known})"
    output_type = types[ref.output]
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
    specs: Mapping[str, JobSpec], by_key: Mapping[str, tuple[int, JobSpec]], errors: _Errors
) -> None:
    needs = {
        key: tuple(n for n in spec.needs if n in specs and n != key) for key, spec in specs.items()
    }
    _, cycles = _topological(list(specs), needs)
    for cycle in cycles:
        first = cycle[0]
        errors.add(
            f"dependency cycle: {' -> '.join([*cycle, first])} (each waits for the next)",
            where=("jobs", by_key[first][0]),
            job=first,
        )


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
