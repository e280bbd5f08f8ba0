"""One module per SageMaker resource kind; the built-in set of kinds and components.

A handler module exposes ``KIND`` (and ``CONFIG_KIND``, when one file holds
closely tied kinds) and ``COMPONENT``, its KFP v1 interface. The entry points
(the CLI, the KFP step, the library) pass ``KINDS`` and ``COMPONENTS`` to the
engine and the manifest loader; the engine itself knows no kind by name.
Adding a kind is adding a module and naming it here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from smrun.handlers import (
    endpoint,
    labeling,
    model,
    processing,
    training,
    transform,
    tuning,
    workteam,
)
from smrun.kind import Kind
from smrun.v1 import Component

_MODULES = (endpoint, labeling, model, processing, training, transform, tuning, workteam)


Named = TypeVar("Named", Kind, Component)


def _by_name(items: Iterable[Named], what: str) -> dict[str, Named]:
    found: dict[str, Named] = {}
    for item in items:
        if item.name in found:
            raise RuntimeError(f"{what} {item.name!r} is defined twice")
        found[item.name] = item
    return found


KINDS: Mapping[str, Kind] = _by_name((endpoint.CONFIG_KIND, *(m.KIND for m in _MODULES)), "kind")
COMPONENTS: Mapping[str, Component] = _by_name((m.COMPONENT for m in _MODULES), "component")

__all__ = ["COMPONENTS", "KINDS"]
