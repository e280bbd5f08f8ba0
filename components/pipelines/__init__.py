"""Example Kubeflow Pipelines built from the generated components (compiled by the tests).

``python -m components.pipelines.<module> [out.yaml]`` compiles one to a pipeline spec.
"""

from __future__ import annotations

from pathlib import Path

COMPONENTS = Path(__file__).resolve().parent.parent
