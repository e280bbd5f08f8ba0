"""The container images, checked from their Dockerfile (no image is built here): the
default one installs the runtime dependencies of pyproject.toml and nothing else, from a
build stage, and runs `smrun` as a non-root user; the `daemon` target is the same plus the
[postgres] extra, and runs `smrun daemon` on port 8080."""

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


def lineage(stages: list[Stage], stage: Stage) -> list[Stage]:
    """``stage`` and the stages it is built on (``FROM <stage name>``), nearest first."""
    named = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[-1].base in named:
        chain.append(named[chain[-1].base])
        assert len(chain) <= len(stages), "a cycle of FROM"
    return chain


def named(stages: list[Stage], name: str) -> Stage:
    [stage] = [s for s in stages if s.name == name]
    return stage


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
    image = lineage(stages, runtime)
    assert build not in image, "the runtime image is not built on the build stage"
    base = image[-1].base
    assert base.endswith("-slim") or "distroless" in base
    for stage in image:
        for keyword, args in stage.instructions:
            for tool in BUILD_TOOLS:
                assert tool not in args, f"runtime stage: {keyword} {args} uses {tool}"
        # the sources reach the runtime stage only as wheels built in the build stage
        for copy in stage.all("COPY"):
            assert f"--from={build.name}" in copy
            assert "runner" not in copy and "handlers" not in copy
    assert any(f"from={build.name}" in run for run in runtime.all("RUN"))


def test_it_installs_exactly_the_runtime_dependencies(
    stages: list[Stage], project: dict[str, Any]
) -> None:
    build, runtime = stages[0], stages[-1]
    [wheel] = [r for run in build.all("RUN") for r in pip_requirements(run, "wheel")]
    assert wheel == ["."], "the project itself, without extras: its [project] dependencies"
    installs = [(run, r) for stage in lineage(stages, runtime) for run in stage.all("RUN")
                for r in pip_requirements(run, "install")]
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
    # the folders the installed packages are mapped from (smrun <- runner, ...)
    packages = set(project["tool"]["setuptools"]["package-dir"].values())
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
    assert project["project"]["scripts"]["smrun"] == "smrun.cli:entry"


# --- the daemon target (`docker build --target daemon`) --------------------------------

DAEMON = "daemon"
EXTRA = "postgres"


def effective(stages: list[Stage], stage: Stage, keyword: str) -> str | None:
    """The ``ENTRYPOINT``/``CMD``/``USER`` an image of ``stage`` has: its own last one, or
    the one of the stage it is built on."""
    for ancestor in lineage(stages, stage):
        found = ancestor.all(keyword)
        if found:
            return found[-1]
    return None


def test_the_daemon_target_installs_the_postgres_extra_from_wheels_built_for_it(
    stages: list[Stage], project: dict[str, Any]
) -> None:
    extra = project["project"]["optional-dependencies"][EXTRA]
    assert any(re.match(r"asyncpg\b", d) for d in extra)
    build, daemon = stages[0], named(stages, DAEMON)
    image = lineage(stages, daemon)
    assert build not in image, "the daemon image is not built on the build stage either"
    installs = [(run, r) for stage in image for run in stage.all("RUN")
                for r in pip_requirements(run, "install")]
    assert [r for _, r in installs] == [[f"{project['project']['name']}[{EXTRA}]"]]
    [(command, _)] = installs
    assert "--no-index" in command, "only wheels built in the image's build stages"
    [source] = re.findall(r"\bfrom=([\w.\-]+)", command)
    wheels = named(stages, source)
    assert build in lineage(stages, wheels), "the build stage's wheels, and the extra's"
    assert [r for run in wheels.all("RUN") for r in pip_requirements(run, "wheel")] == [
        [f".[{EXTRA}]"]]
    for stage in image:
        for keyword, args in stage.instructions:
            for tool in BUILD_TOOLS:
                assert tool not in args, f"daemon stage: {keyword} {args} uses {tool}"
        assert not stage.all("COPY"), "the sources reach the daemon only as wheels"


def test_the_extra_stays_out_of_the_default_image(stages: list[Stage]) -> None:
    runtime, daemon = stages[-1], named(stages, DAEMON)
    # `docker build .` builds the last stage: the KFP step image, not the daemon
    assert runtime is not daemon and daemon not in lineage(stages, runtime)
    wheel_stages = {s.name for s in stages if any(
        f".[{EXTRA}]" in r for run in s.all("RUN") for r in pip_requirements(run, "wheel"))}
    assert wheel_stages and stages[0].name not in wheel_stages
    for stage in lineage(stages, runtime):
        text = " ".join(args for _, args in stage.instructions)
        assert EXTRA not in text and "asyncpg" not in text
        assert not any(f"from={name}" in text for name in wheel_stages)


def test_the_daemon_runs_smrun_daemon_on_8080_as_a_non_root_user(stages: list[Stage]) -> None:
    daemon = named(stages, DAEMON)
    keywords = [kw for kw, _ in daemon.instructions]
    assert "USER" in keywords
    last_user = max(i for i, kw in enumerate(keywords) if kw == "USER")
    assert "RUN" not in keywords[last_user:], "nothing runs as root after USER"
    user = effective(stages, daemon, "USER")
    assert user is not None
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    exposed = {p.split("/")[0] for e in daemon.all("EXPOSE") for p in e.split()}
    assert exposed == {"8080"}
    entrypoint, cmd = effective(stages, daemon, "ENTRYPOINT"), effective(stages, daemon, "CMD")
    assert entrypoint is not None and cmd is not None
    argv = [*json.loads(entrypoint), *json.loads(cmd)]
    assert argv[:2] == ["smrun", "daemon"]
    listen = argv[argv.index("--listen") + 1]
    assert listen.rpartition(":")[2] in exposed
    # the Deployment in deploy/kubernetes runs it as that user, with the same entrypoint
    yaml = pytest.importorskip("yaml")
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    [container] = pod["containers"]
    assert "command" not in container and container["args"][0] == "daemon"
