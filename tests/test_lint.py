"""The code keeps its style: ruff (pinned in the dev extra; rules in pyproject.toml) finds nothing.

Unused and undefined names, import order, line length: the checks a reviewer would otherwise
make by hand after every move of a module.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ruff_command() -> list[str]:
    """ruff from this Python's environment (the dev extra installs it), else from PATH."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    return [found]


def test_ruff_finds_nothing():
    out = subprocess.run([*ruff_command(), "check", "src", "tests", "benchmarks", "configs"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def test_ruff_fails_on_an_unused_import(tmp_path):
    # The check can fail: a file with an unused import is reported (same rules, same settings).
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    out = subprocess.run([*ruff_command(), "check", "--config", str(ROOT / "pyproject.toml"), str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "F401" in out.stdout
