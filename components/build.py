"""Generate the KFP v2 component YAML files from the components the handlers declare.

``python -m components.build`` (``make components``) writes ``components/<name>.yaml``
for every ``COMPONENT`` of a handler module, plus ``components/run.yaml`` (a whole
manifest in one step). The files are built with the kfp SDK: a ComponentSpec per
component, compiled by ``kfp.compiler.Compiler``. ``--check`` only reports stale
files; ``--image`` (or ``SMRUN_IMAGE``) sets the container image.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import placeholders, structures
from kfp.dsl.container_component_class import ContainerComponent

from smrun.handlers import COMPONENTS
from smrun.v1 import COMMON_INPUTS, Component, Input, InputType

DEFAULT_IMAGE = "smrun:latest"
HERE = Path(__file__).resolve().parent
UI_SUMMARY = "ui_summary"
MARKDOWN = "system.Markdown@0.0.1"

# KFP v2 parameter types; a CsvList stays text ("sg-1,sg-2") as in v1
KFP_TYPES: Mapping[InputType, str] = {
    InputType.STRING: "String",
    InputType.INTEGER: "Integer",
    InputType.FLOAT: "Float",
    InputType.BOOL: "Boolean",
    InputType.JSON_OBJECT: "Dict",
    InputType.JSON_ARRAY: "List",
    InputType.CSV_LIST: "String",
}

# the KFP run and task ids, so that a restarted pod names (and attaches to) the same job
KFP_IDS: Mapping[str, str] = {
    "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    "task_id": dsl.PIPELINE_TASK_ID_PLACEHOLDER,
}

RUN_INPUTS: tuple[Input, ...] = (
    Input("manifest", description="The smrun manifest: YAML text with 'jobs:'."),
    Input("region", default="", description="The region of the jobs (default: the "
          "manifest's defaults.region)."),
    *(spec for spec in COMMON_INPUTS if spec.name != "region"),
)


def _input_spec(spec: Input) -> structures.InputSpec:
    if spec.required:
        return structures.InputSpec(type=KFP_TYPES[spec.type], description=spec.description)
    default: Any = spec.default
    if spec.type is InputType.CSV_LIST:
        default = ",".join(default)
    return structures.InputSpec(
        type=KFP_TYPES[spec.type], default=default, optional=True, description=spec.description
    )


def _container(
    name: str,
    description: str,
    inputs: Sequence[Input],
    outputs: Mapping[str, structures.OutputSpec],
    command: list[str],
    args: list[Any],
) -> ContainerComponent:
    spec = structures.ComponentSpec(
        name=name,
        description=description,
        inputs={i.name: _input_spec(i) for i in inputs},
        outputs=dict(outputs),
        implementation=structures.Implementation(
            container=structures.ContainerSpecImplementation(
                image="", command=command, args=args
            )
        ),
    )
    return ContainerComponent(spec, pipeline_func=lambda: None)


def kind_component(component: Component, image: str = DEFAULT_IMAGE) -> ContainerComponent:
    """``smrun <name> --<input> ...`` with v1's input and output names."""
    args: list[Any] = []
    for spec in component.all_inputs:
        args += [f"--{spec.name}", placeholders.InputValuePlaceholder(spec.name)]
    for output in component.outputs:
        args += [f"--{output.name}_output_path",
                 placeholders.OutputParameterPlaceholder(output.name)]
    args += ["--ui_summary_output_path", placeholders.OutputPathPlaceholder(UI_SUMMARY)]
    for flag, value in KFP_IDS.items():
        args += [f"--{flag}", value]
    outputs = {
        o.name: structures.OutputSpec(type=KFP_TYPES[o.type], description=o.description)
        for o in component.outputs
    }
    outputs[UI_SUMMARY] = structures.OutputSpec(
        type=MARKDOWN, description="Links to the job in the SageMaker console and its logs."
    )
    built = _container(component.title, component.description, component.all_inputs,
                       outputs, ["smrun", component.name], args)
    return _with_image(built, image)


def run_component(image: str = DEFAULT_IMAGE) -> ContainerComponent:
    """``smrun run`` as a step: every job of a manifest, outputs of all of them."""
    args: list[Any] = ["--manifest-text", placeholders.InputValuePlaceholder("manifest")]
    for spec in RUN_INPUTS[1:]:
        args += [f"--{spec.name.replace('_', '-')}", placeholders.InputValuePlaceholder(spec.name)]
    args += [
        "--outputs-path", placeholders.OutputParameterPlaceholder("outputs"),
        "--ui-summary-path", placeholders.OutputPathPlaceholder(UI_SUMMARY),
    ]
    for flag, value in KFP_IDS.items():
        args += [f"--{flag.replace('_', '-')}", value]
    outputs = {
        "outputs": structures.OutputSpec(
            type="Dict", description="Every job's outputs: {job: {output: value}}."
        ),
        UI_SUMMARY: structures.OutputSpec(
            type=MARKDOWN, description="Each job's outcome, console and log links, outputs."
        ),
    }
    built = _container("smrun - Manifest", "Run every job of an smrun manifest in one step: "
                       "many SageMaker jobs, concurrently, in dependency order.",
                       RUN_INPUTS, outputs, ["smrun", "run"], args)
    return _with_image(built, image)


def _with_image(component: ContainerComponent, image: str) -> ContainerComponent:
    container = component.component_spec.implementation.container
    assert container is not None
    container.image = image
    return component


def render(component: ContainerComponent) -> str:
    """The component compiled to YAML by the kfp compiler."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "component.yaml"
        compiler.Compiler().compile(component, str(path))
        return path.read_text()


def generate(image: str = DEFAULT_IMAGE) -> dict[str, str]:
    """File name → YAML text of every component."""
    files = {f"{c.name}.yaml": render(kind_component(c, image))
             for c in COMPONENTS.values()}
    files["run.yaml"] = render(run_component(image))
    return files


def stale(directory: Path = HERE, image: str = DEFAULT_IMAGE) -> list[str]:
    """The files in ``directory`` that differ from what would be generated now."""
    return [
        name for name, text in generate(image).items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.build", description=__doc__)
    parser.add_argument("--image", default=os.environ.get("SMRUN_IMAGE", DEFAULT_IMAGE))
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        old = stale(args.out, args.image)
        for name in old:
            print(f"stale: {args.out / name} (run make components)", file=sys.stderr)
        return 1 if old else 0
    for name, text in generate(args.image).items():
        target = args.out / name
        if not target.is_file() or target.read_text() != text:
            target.write_text(text)
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
