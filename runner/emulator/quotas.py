"""Account-level service quotas, and a record of how much of them is in use.

SageMaker limits how many instances of each type an account may run at once,
per kind of use, and how many instances (and tuning jobs) it may run in all.
A create that would go over a quota is refused with ``ResourceLimitExceeded``
(HTTP 400), in SageMaker's words::

    The account-level service limit 'ml.m5.large for training job usage' is 2
    Instances, with current utilization of 2 Instances and a request delta of 1
    Instances. Please use AWS Service Quotas to request an increase for this
    quota. If AWS Service Quotas is not available, contact AWS support to
    request an increase for this quota.

and nothing is created. The emulator enforces the quotas it is given
(:class:`Quotas`, by their Service Quotas names) and no others: a quota that
is not set is no limit; one set to 0 refuses every request that needs it, as
AWS does. With none set (the default) nothing is ever refused.

Which resources count, and for what (a :class:`Family` each; ``<type>`` is an
instance type such as ``ml.m5.large``):

training
    ``<type> for training job usage``, ``Number of instances across all
    training jobs``, ``Number of concurrent training jobs`` (1 a job).
spot training (``EnableManagedSpotTraining``)
    ``<type> for spot training job usage``, ``Number of instances across all
    spot training jobs``, ``Number of concurrent training jobs``.
processing
    ``<type> for processing job usage``, ``Number of instances across all
    processing jobs``, ``Number of concurrent processing jobs``.
transform
    ``<type> for transform job usage``, ``Number of instances across all
    transform jobs``, ``Number of concurrent transform jobs``.
endpoint
    ``<type> for endpoint usage``, ``Number of instances across active
    endpoints``.
hyperparameter tuning
    ``Number of concurrent hyperparameter tuning jobs`` (1 a tuning job).

A request is checked against them in that order (per type first) and refused
by the first it would go over.

The per-type names, the ``Number of instances across ...`` names and
``Number of concurrent hyperparameter tuning jobs`` are the names AWS Service
Quotas gives them. AWS documents no account-level quota on the *number* of
concurrent training, processing or transform jobs under a name we could
confirm: ``Number of concurrent training jobs``, ``... processing jobs`` and
``... transform jobs`` are this emulator's names (a guess in AWS's style), in
``Jobs``, one per job.

A training job counts its ``ResourceConfig`` (``InstanceType`` and
``InstanceCount``, or each of its ``InstanceGroups``), as spot training when
``EnableManagedSpotTraining`` is set; a processing job its
``ProcessingResources.ClusterConfig``; a transform job its
``TransformResources``; an endpoint each production variant's
``InitialInstanceCount`` of its ``InstanceType`` (serverless variants hold no
instances). A job holds its instances from its creation until it is
Completed, Failed or Stopped, on the emulator's clock. An endpoint holds the
instances of the config it serves, and while it is being created or updated
also those of the config being deployed (an update brings up the new fleet
before the old one goes); a failed deployment lets its instances go when it
ends, a deleted endpoint when it is gone. A tuning job holds its one
``Jobs`` until it ends; its training jobs count as training jobs, and one that
a quota refuses fails the tuning job (``ClientError: <the message above>``).

:class:`Concurrency` keeps, per family, the current and peak number of
resources holding instances and of instances (in all and per type) since its
last reset, and how many requests each quota refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from smrun.emulator.protocol import ApiError

INSTANCES = "Instances"
JOBS = "Jobs"


@dataclass(frozen=True)
class Family:
    """A kind of use of instances, and the quotas it counts against."""

    name: str  # as in the concurrency record, e.g. "training"
    usage: str | None  # what follows the instance type in a per-type quota's name
    instances: str | None  # the quota on its instances in all
    jobs: str | None  # the quota on how many run at once (one a resource)

    def per_type(self, instance_type: str) -> str | None:
        return f"{instance_type} {self.usage}" if self.usage else None


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "training",
            "for training job usage",
            "Number of instances across all training jobs",
            "Number of concurrent training jobs",
        ),
        Family(
            "spot training",
            "for spot training job usage",
            "Number of instances across all spot training jobs",
            "Number of concurrent training jobs",
        ),
        Family(
            "processing",
            "for processing job usage",
            "Number of instances across all processing jobs",
            "Number of concurrent processing jobs",
        ),
        Family(
            "transform",
            "for transform job usage",
            "Number of instances across all transform jobs",
            "Number of concurrent transform jobs",
        ),
        Family(
            "endpoint", "for endpoint usage", "Number of instances across active endpoints", None
        ),
        Family(
            "hyperparameter tuning", None, None, "Number of concurrent hyperparameter tuning jobs"
        ),
    )
}

# quota name -> its unit, for the names that name no instance type
FIXED_QUOTAS: dict[str, str] = {
    **{f.instances: INSTANCES for f in FAMILIES.values() if f.instances},
    **{f.jobs: JOBS for f in FAMILIES.values() if f.jobs},
}
PER_TYPE_QUOTA = re.compile(
    r"ml\.[a-z0-9-]+\.[a-z0-9-]+ ("
    + "|".join(re.escape(f.usage) for f in FAMILIES.values() if f.usage)
    + ")"
)


def quota_unit(name: str) -> str | None:
    """``Instances`` or ``Jobs`` for a quota this emulator enforces, else None."""
    if name in FIXED_QUOTAS:
        return FIXED_QUOTAS[name]
    return INSTANCES if PER_TYPE_QUOTA.fullmatch(name) else None


class Quotas(Mapping[str, float]):
    """Limits by Service Quotas name, e.g. ``{"ml.m5.large for training job
    usage": 2, "Number of concurrent training jobs": 3}``; immutable.

    Raises ValueError for a name the emulator does not enforce (a typo would
    otherwise limit nothing) or a limit that is not a finite number >= 0.
    """

    def __init__(self, limits: Mapping[str, float] | None = None) -> None:
        checked: dict[str, float] = {}
        for name, limit in (limits or {}).items():
            if not isinstance(name, str) or quota_unit(name) is None:
                raise ValueError(f"unknown quota {name!r}: {KNOWN_QUOTAS}")
            if (
                isinstance(limit, bool)
                or not isinstance(limit, (int, float))
                or not math.isfinite(limit)
                or limit < 0
            ):
                raise ValueError(
                    f"the limit of quota {name!r} must be a number >= 0, not {limit!r}"
                )
            checked[name] = limit
        self._limits = checked

    @classmethod
    def defaults(cls) -> Quotas:
        """No quota at all. AWS applies account-specific defaults (a new account
        often gets 0 for many instance types, older ones more), so there is no
        set of values every account starts with; set the ones a test needs."""
        return cls()

    @classmethod
    def from_json(cls, data: Any) -> Quotas:
        if not isinstance(data, dict):
            raise ValueError("quotas are a JSON object of quota name -> limit")
        return cls(data)

    def to_json(self) -> dict[str, float]:
        return dict(self._limits)

    def __getitem__(self, name: str) -> float:
        return self._limits[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._limits)

    def __len__(self) -> int:
        return len(self._limits)

    def __repr__(self) -> str:
        return f"Quotas({self._limits!r})"


KNOWN_QUOTAS = (
    "the emulator enforces '<instance type> "
    + "', '<instance type> ".join(f.usage for f in FAMILIES.values() if f.usage)
    + "', '"
    + "', '".join(FIXED_QUOTAS)
    + "'"
)


@dataclass(frozen=True)
class Demand:
    """What one resource asks for: instances of each type, in one family."""

    family: str
    instances: tuple[tuple[str, int], ...] = ()  # (instance type, count), one per type

    @classmethod
    def of(cls, family: str, instances: Iterable[tuple[str, int]] = ()) -> Demand:
        if family not in FAMILIES:
            raise ValueError(f"no family {family!r}")
        merged: dict[str, int] = {}
        for instance_type, count in instances:
            if count > 0:
                merged[instance_type] = merged.get(instance_type, 0) + count
        return cls(family, tuple(merged.items()))

    @property
    def total(self) -> int:
        return sum(count for _type, count in self.instances)

    def claims(self) -> list[tuple[str, int, str]]:
        """(quota name, amount, unit) of every quota this demand counts against,
        in the order they are checked: per type, instances in all, jobs."""
        family = FAMILIES[self.family]
        claims: list[tuple[str, int, str]] = []
        for instance_type, count in self.instances:
            name = family.per_type(instance_type)
            if name is not None:
                claims.append((name, count, INSTANCES))
        if family.instances is not None and self.total:
            claims.append((family.instances, self.total, INSTANCES))
        if family.jobs is not None:
            claims.append((family.jobs, 1, JOBS))
        return claims


def limit_exceeded(name: str, limit: float, usage: float, delta: float, unit: str) -> ApiError:
    return ApiError(
        "ResourceLimitExceeded",
        f"The account-level service limit '{name}' is {_number(limit)} {unit}, with current "
        f"utilization of {_number(usage)} {unit} and a request delta of {_number(delta)} "
        f"{unit}. Please use AWS Service Quotas to request an increase for this quota. If "
        "AWS Service Quotas is not available, contact AWS support to request an increase "
        "for this quota.",
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class _Holding:
    resource: str  # the ARN of the resource holding it
    demand: Demand
    claims: list[tuple[str, int, str]]


class _Gauge:
    """A current value and its peak since the last reset."""

    __slots__ = ("current", "peak")

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0

    def add(self, amount: int) -> None:
        self.current += amount
        self.peak = max(self.peak, self.current)

    def to_json(self) -> dict[str, int]:
        return {"current": self.current, "peak": self.peak}


class _FamilyRecord:
    def __init__(self) -> None:
        self.holders: dict[str, int] = {}  # resource ARN -> how many holdings it has
        self.jobs = _Gauge()
        self.instances = _Gauge()
        self.types: dict[str, _Gauge] = {}

    def change(self, holding: _Holding, sign: int) -> None:
        held = self.holders.get(holding.resource, 0) + sign
        if held > 0:
            self.holders[holding.resource] = held
        else:
            self.holders.pop(holding.resource, None)
        self.jobs.add(len(self.holders) - self.jobs.current)
        self.instances.add(sign * holding.demand.total)
        for instance_type, count in holding.demand.instances:
            self.types.setdefault(instance_type, _Gauge()).add(sign * count)

    def reset(self) -> None:
        for gauge in (self.jobs, self.instances, *self.types.values()):
            gauge.peak = gauge.current
        self.types = {t: g for t, g in self.types.items() if g.current}

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs.to_json(),
            "instances": self.instances.to_json(),
            "instance_types": {t: g.to_json() for t, g in sorted(self.types.items())},
        }


class Concurrency:
    """What every resource holds, checked against :attr:`quotas` at creation.

    A kind calls :meth:`admit` with a new resource's :class:`Demand` before it
    creates anything, :meth:`hold` once it exists and :meth:`release` the
    moment (on the emulator's clock) it lets its instances go. ``now``
    brings the world up to the clock and tells the time: :meth:`report` and
    :meth:`reset` call it, so what they tell is as of now.
    """

    def __init__(self, now: Callable[[], float], quotas: Quotas | None = None) -> None:
        self._now = now
        self.quotas = quotas if quotas is not None else Quotas()
        self._holdings: dict[Hashable, _Holding] = {}
        self._usage: dict[str, int] = {}  # quota name -> amount held
        self._families = {name: _FamilyRecord() for name in FAMILIES}
        self.refused: dict[str, int] = {}  # quota name -> requests it refused
        self.since: float | None = None  # world time of the last reset

    def usage(self, quota: str) -> int:
        """How much of ``quota`` is held now (whether or not it is set)."""
        return self._usage.get(quota, 0)

    def admit(self, demand: Demand) -> None:
        """Raise ResourceLimitExceeded if ``demand`` would go over a quota."""
        if not self.quotas:
            return
        for name, amount, unit in demand.claims():
            limit = self.quotas.get(name)
            if limit is not None and self.usage(name) + amount > limit:
                self.refused[name] = self.refused.get(name, 0) + 1
                raise limit_exceeded(name, limit, self.usage(name), amount, unit)

    def hold(self, key: Hashable, resource: str, demand: Demand) -> None:
        """``resource`` holds ``demand`` under ``key`` (a job's ARN, or one
        deployment of an endpoint) until :meth:`release`."""
        self.release(key)
        holding = _Holding(resource, demand, demand.claims())
        self._holdings[key] = holding
        for name, amount, _unit in holding.claims:
            self._usage[name] = self._usage.get(name, 0) + amount
        self._families[demand.family].change(holding, +1)

    def release(self, key: Hashable) -> None:
        """What ``key`` holds is free again (nothing happens if it holds nothing)."""
        holding = self._holdings.pop(key, None)
        if holding is None:
            return
        for name, amount, _unit in holding.claims:
            left = self._usage[name] - amount
            if left:
                self._usage[name] = left
            else:
                del self._usage[name]
        self._families[holding.demand.family].change(holding, -1)

    def holds(self, key: Hashable) -> bool:
        return key in self._holdings

    def reset(self) -> None:
        """Peaks start again from the current values; refusals from zero."""
        self.since = self._now()
        for record in self._families.values():
            record.reset()
        self.refused = {}

    def report(self) -> dict[str, Any]:
        """Per family the current and peak resources holding instances
        (``jobs``), instances, and instances per type; the usage of every quota
        held; refusals per quota; what ``GET /_emulator/concurrency`` answers."""
        self._now()
        return {
            "since": self.since,
            "families": {name: record.to_json() for name, record in self._families.items()},
            "usage": dict(sorted(self._usage.items())),
            "refused": dict(sorted(self.refused.items())),
        }
