"""The scripts of examples/library/ run as written against the embedded
emulator, the notebook's cells run with top-level await (as IPython runs
them, in a loop that is already running), and mypy --strict passes on them."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "examples" / "library"


def run_script(name: str) -> str:
    done = subprocess.run([sys.executable, str(LIBRARY / name)], capture_output=True, text=True,
                          timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_the_sweep_prints_lines_as_they_come_and_picks_the_best() -> None:
    out = run_script("sweep.py")
    ended = re.findall(r"^(eta[\d.]+-depth\d+)\s+Succeeded$", out, re.M)
    assert len(ended) == 12 and len(set(ended)) == 12
    assert len(re.findall(r"\[algo-1\] .*line \d/4", out)) == 12 * 4  # every line, once
    best = re.search(r"^best: (\S+) \(\S+\) validation:rmse=([\d.]+)$", out, re.M)
    assert best and best.group(1) in ended
    model = re.search(r"^model: (s3://\S+/output/model\.tar\.gz)$", out, re.M)
    assert model


def test_deploy_best_creates_the_endpoint_then_updates_it_in_place() -> None:
    out = run_script("deploy_best.py").splitlines()
    created = re.fullmatch(r"created (\S+): variant blue serves (\S+) .*", out[-2])
    updated = re.fullmatch(r"updated (\S+): variant green serves (\S+) .*", out[-1])
    assert created and updated
    assert created.group(1) == updated.group(1)  # the same endpoint, updated in place
    assert created.group(2) != updated.group(2)


def notebook_cells() -> list[str]:
    text = (LIBRARY / "notebook.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


async def test_the_notebook_cells_run_with_top_level_await_in_a_running_loop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cells = notebook_cells()
    assert len(cells) >= 5
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for cell in cells:  # as IPython does: compiled with top-level await, awaited in the loop
        code = compile(cell, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if result is not None:
            await result
    out = capsys.readouterr().out
    assert re.search(r"^best: eta[\d.]+ s3://\S+model\.tar\.gz$", out, re.M)
    assert len(re.findall(r"^eta[\d.]+ Succeeded", out, re.M)) == 3
    assert "Finished" in out


def test_mypy_strict_passes_on_the_library_examples() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         *map(str, sorted(LIBRARY.glob("*.py")))],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def readme_example(tmp_path: Path) -> Path:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using it as a library"):readme.index("## The emulator")]
    [code, *_] = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    return script


def test_the_readme_library_example_runs_as_written(tmp_path: Path) -> None:
    script = readme_example(tmp_path)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^train-\d0 Succeeded s3://\S+/model\.tar\.gz$", done.stdout,
                          re.M)) == 3
    checked = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                              str(script)], capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
    assert checked.returncode == 0, checked.stdout
