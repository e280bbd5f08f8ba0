"""One module per SageMaker resource kind; ``KINDS`` maps a manifest ``kind:`` to it.

A handler module exposes ``KIND`` (or ``KINDS``, a tuple, when one file holds
closely tied kinds). Adding a kind is adding a module: this registry finds it.
"""

from __future__ import annotations

import importlib
import pkgutil

from runner.kind import Kind


def _discover() -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found = list(getattr(module, "KINDS", ()))
        if hasattr(module, "KIND"):
            found.append(module.KIND)
        for kind in found:
            if kind.name in kinds:
                raise RuntimeError(f"kind {kind.name!r} is defined twice")
            kinds[kind.name] = kind
    return kinds


KINDS: dict[str, Kind] = _discover()

__all__ = ["KINDS"]
