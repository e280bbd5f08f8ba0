"""The container image, checked from its Dockerfile (no image is built here): it
installs the runtime dependencies of pyproject.toml and nothing else, from a build
stage, and runs `smrun` as a non-root user."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "git", "cargo", "rustc", "apt-get",
               "apk", "yum", "setup.py", "pip wheel", "poetry")
NOT_AT_RUNTIME = ("kfp", "moto", "pytest", "hypothesis", "ruff", "mypy", "[test", "[dev",
                  "[kfp")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> list[Stage]:
    """Dockerfile instructions by stage: comments dropped, continued lines joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


def pip_requirements(command: str, verb: str) -> list[list[str]]:
    """The requirement arguments (not options) of every ``pip <verb>`` in a RUN command."""
    found = []
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        if "pip" in words and verb in words[words.index("pip"):]:
            rest = words[words.index(verb) + 1:]
            options_with_value = {"--wheel-dir", "-w", "--find-links", "-f", "--target", "-t"}
            args, skip = [], False
            for word in rest:
                if skip:
                    skip = False
                elif word in options_with_value:
                    skip = True
                elif not word.startswith("-"):
                    args.append(word)
            found.append(args)
    return found


def test_it_is_multi_stage_and_the_runtime_stage_has_no_build_tools(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.name, "the build stage is named, for --from"
    assert runtime.base.endswith("-slim") or "distroless" in runtime.base
    for keyword, args in runtime.instructions:
        for tool in BUILD_TOOLS:
            assert tool not in args, f"runtime stage: {keyword} {args} uses {tool}"
    # the sources reach the runtime stage only as wheels built in the build stage
    for copy in runtime.all("COPY"):
        assert f"--from={build.name}" in copy and "runner" not in copy and "handlers" not in copy
    assert any(f"from={build.name}" in run for run in runtime.all("RUN"))


def test_it_installs_exactly_the_runtime_dependencies(
    stages: list[Stage], project: dict[str, Any]
) -> None:
    build, runtime = stages[0], stages[-1]
    [wheel] = [r for run in build.all("RUN") for r in pip_requirements(run, "wheel")]
    assert wheel == ["."], "the project itself, without extras: its [project] dependencies"
    installs = [(run, r) for run in runtime.all("RUN") for r in pip_requirements(run, "install")]
    assert [r for _, r in installs] == [[project["project"]["name"]]]
    [(command, _)] = installs
    assert "--no-index" in command, "only the build stage's wheels, nothing from an index"
    instructions = " ".join(args for stage in stages for _, args in stage.instructions)
    for name in NOT_AT_RUNTIME:
        assert name not in instructions.lower(), f"{name} must stay out of the image"
    runtime_names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower()
                     for d in project["project"]["dependencies"]}
    assert not runtime_names & {"kfp", "moto", "pytest"}
    assert {"aiobotocore", "anyio"} <= runtime_names


def test_it_copies_what_the_wheel_is_built_from(
    stages: list[Stage], project: dict[str, Any]
) -> None:
    copied = {word.rstrip("/") for copy in stages[0].all("COPY") for word in copy.split()[:-1]
              if not word.startswith("--")}
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages == {"runner", "handlers"}
    assert packages <= copied
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "the build context holds only what the image needs (no .venv)"
    assert {f"!{p}/" for p in packages} <= set(ignore)


def test_it_runs_smrun_as_a_non_root_user(stages: list[Stage], project: dict[str, Any]) -> None:
    runtime = stages[-1]
    keywords = [kw for kw, _ in runtime.instructions]
    last_user = max(i for i, kw in enumerate(keywords) if kw == "USER")
    assert "RUN" not in keywords[last_user:], "nothing runs as root after USER"
    user = runtime.instructions[last_user][1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric UID lets Kubernetes check runAsNonRoot"
    [entrypoint] = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["smrun"]
    assert project["project"]["scripts"]["smrun"] == "runner.cli:entry"
