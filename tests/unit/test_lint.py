"""The code stays ruff-clean and the package mypy-clean (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff():
    result = run("ruff", "check", "workflowable", "tests", "examples", "workers")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    result = run("mypy", "workflowable")
    assert result.returncode == 0, result.stdout + result.stderr
