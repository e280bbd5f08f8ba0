"""The wheel: it installs `smrun` (and `smrun.handlers`) and no other top-level
name, carries the type marker and the web view, and its console script is
`smrun`. Built here from the repository, as a user's pip would."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    [built] = out.glob("smrun-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    [path] = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_the_wheel_installs_smrun_and_no_other_top_level_name(wheel: zipfile.ZipFile) -> None:
    assert dist_info(wheel, "top_level.txt").split() == ["smrun"]
    tops = {name.split("/", 1)[0] for name in wheel.namelist()
            if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"smrun"}


def test_the_wheel_holds_every_module_under_its_installed_name(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder, package in (("runner", "smrun"), ("handlers", "smrun/handlers")):
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{relative}" in names, relative
    assert {"smrun/py.typed", "smrun/handlers/py.typed"} <= names
    assert {"smrun/daemon/static/index.html", "smrun/daemon/static/app.js",
            "smrun/daemon/static/app.css"} <= names
    assert not any(name.startswith(("tests/", "bench/", "examples/", "components/"))
                   for name in names)


def test_the_console_script_and_the_pytest_plugin_are_declared(wheel: zipfile.ZipFile) -> None:
    entry_points = dist_info(wheel, "entry_points.txt")
    assert "smrun = smrun.cli:entry" in entry_points
