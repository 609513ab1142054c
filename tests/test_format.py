"""The repository has one formatter setting (pyproject.toml [tool.ruff]): every Python file
is as `ruff format` writes it.  Fix a failure with `ruff format .` at the repository root."""

import subprocess
import sys

from conftest import ROOT


def test_every_python_file_is_formatted():
  done = subprocess.run(
    [sys.executable, "-m", "ruff", "format", "--check", "--diff", "."],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert "No module named ruff" not in done.stderr, (
    "ruff is a test dependency: pip install -e '.[test]'"
  )
  assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
