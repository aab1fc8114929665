"""The README's Python blocks run as written (each in a fresh interpreter, in a scratch folder),
except a block whose first line is a comment ``# not run: <reason>``; and its first example
passes ``mypy --strict``, as a user's IDE would check it."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        code = match.group(1)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, code))
    return blocks


BLOCKS = python_blocks()


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all blocks, in README order: a later block may load a file an earlier one
    saved (as a reader following the README would have it)."""
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_block_runs_as_written(line, code, workdir):
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    if first.startswith("# not run:"):
        pytest.skip(first)
    env = {**os.environ, "MPLBACKEND": "Agg"}  # History.plot() on a machine without a screen
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, f"README block at line {line} failed:\n{result.stderr[-3000:]}"


def _mypy():
    """This interpreter's mypy, so the checks run without an activated venv on PATH."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the test extra)")
    return [sys.executable, "-m", "mypy"]


def test_first_example_passes_mypy_strict(tmp_path):
    mypy = _mypy()
    first = next(code for _, code in BLOCKS if not code.lstrip().startswith("# not run:"))
    path = tmp_path / "first_example.py"
    path.write_text(first)
    result = subprocess.run([*mypy, "--strict", "--disable-error-code", "import-untyped", "--no-incremental",
                             str(path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_api_passes_mypy_strict():
    mypy = _mypy()
    here = pathlib.Path(__file__).resolve().parent
    result = subprocess.run([*mypy, "--strict", "--disable-error-code", "import-untyped", "--no-incremental",
                             str(here / "typecheck" / "public_api.py")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_passes_mypy():
    mypy = _mypy()
    root = pathlib.Path(__file__).resolve().parent.parent
    result = subprocess.run([*mypy, "--no-incremental"], cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
