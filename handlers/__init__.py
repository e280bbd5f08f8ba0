"""One module per SageMaker resource kind; ``KINDS`` maps a manifest ``kind:`` to it."""

from __future__ import annotations

from handlers import training
from runner.kind import Kind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (training.KIND,)}

__all__ = ["KINDS"]
