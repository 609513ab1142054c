"""Config and workdir mistakes at the CLI boundary, table-driven: each is refused before any
work with exit code 2 and one line naming the field (no traceback).  The table runs in
process (`main.main` raises what `main.cli` prints as its one line); two cases go through the
real command to pin the printing and the exit code."""

import subprocess
import sys

import pytest

from conftest import ROOT
from xdkt_jax import main as cli

CASES = [
  # (overrides, words the one line must hold)
  (["--config.nope=1"], "--config.nope: unknown config field"),
  (
    ["--config.data.source_domain=Art"],
    "unknown config field (did you mean 'data.source_domains'?)",
  ),
  (["--config.recommend.sequentail.lr=0.1"], "did you mean 'recommend.sequential.lr'"),
  (["--config.recommend.seeds=abc"], "invalid literal for int()"),
  (["--config.protocol_k=-1"], "config.protocol_k must be >= 0, got -1"),
  (["--config.protocol_cold_frac=2"], "config.protocol_cold_frac must be in (0, 1)"),
  (["--config.protocol_cold_frac=-1"], "config.protocol_cold_frac must be in (0, 1)"),
  (["--config.protocol_fraction=0"], "config.protocol_fraction must be in (0, 1], got 0"),
  (["--config.data.max_text_len=0"], "config.data.max_text_len must be > 0, got 0"),
  (["--config.recommend.ks=5,x"], "config.recommend.ks must be comma-separated positive"),
  (["--config.data.dedup=none"], "config.data.dedup must be one of first, last, all"),
  (["--config.recommend.sequential.dropout=1.5"], "sequential.dropout must be in [0, 1)"),
  (["--config.eval.alpha=0"], "config.eval.alpha must be in (0, 1)"),
  (["--config.eval.convention=recbole"], "config.eval.convention must be one of"),
  (["--config.recommend.exclude_history=seen"], "config.recommend.exclude_history must be"),
  (
    ["--config.data.text_fields=titel"],
    "config.data.text_fields: 'titel' is not a text field of any domain",
  ),
]


def xdkt(*args):
  return subprocess.run(
    [sys.executable, "-m", "xdkt_jax.main", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )


@pytest.mark.parametrize("overrides, words", CASES, ids=[c[0][0] for c in CASES])
def test_a_config_mistake_is_one_line(tmp_path, overrides, words):
  argv = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={tmp_path / 'run'}",
    "--config.stages=data,recommend",
    f"--config.data.cache_dir={tmp_path / 'c'}",
    *overrides,
  ]
  with pytest.raises((ValueError, cli.flags.Error)) as e:
    cli.main(argv)
  assert words in str(e.value).splitlines()[0], str(e.value)
  assert not (tmp_path / "run" / "recommend").exists()


def test_the_command_prints_one_line_and_exits_2(tmp_path):
  for over, words in (CASES[1], CASES[-1]):
    r = xdkt(
      "run",
      "--config=configs/tiny.py",
      f"--workdir={tmp_path / 'run'}",
      "--config.stages=data",
      f"--config.data.cache_dir={tmp_path / 'c'}",
      *over,
    )
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr[-1500:]
    assert err[0].startswith("xdkt: error: ") and words in err[0], err[0]


def test_missing_config_file_and_a_workdir_under_a_file(tmp_path):
  r = xdkt("stats", "--config=configs/nope.py")
  assert r.returncode == 2 and r.stderr.strip() == (
    "xdkt: error: --config=configs/nope.py: no such config file"
  )
  (tmp_path / "f").write_text("x")
  for wd, words in ((tmp_path / "f", "is a file"), (tmp_path / "f" / "run", "lies under a file")):
    r = xdkt("run", "--config=configs/tiny.py", f"--workdir={wd}")
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_cache_dir_that_is_a_file_and_embed_out_naming_a_folder(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(ValueError, match="cache_dir=.* is a file"):
    cli.main(
      ["xdkt", "stats", "--config=configs/tiny.py", f"--config.data.cache_dir={tmp_path / 'f'}"]
    )
  (tmp_path / "t.txt").write_text("a red pen\n")
  with pytest.raises(ValueError, match="is a folder; give a file name"):
    cli.main(
      [
        "xdkt",
        "embed",
        "--config=configs/tiny.py",
        f"--texts={tmp_path / 't.txt'}",
        f"--out={tmp_path}",
        "--config.encoder.init_from=minilm",
      ]
    )


def test_a_full_disk_is_one_line_naming_the_path(tmp_path):
  """ENOSPC injected into the first artifact write (the data stage's stats.json)."""
  code = (
    "import errno, pathlib, sys\n"
    "def full(self, *a, **k):\n"
    "  raise OSError(errno.ENOSPC, 'No space left on device', str(self))\n"
    "pathlib.Path.write_text = full\n"
    "from xdkt_jax.main import cli\n"
    f"sys.argv = ['xdkt', 'run', '--config=configs/tiny.py', '--workdir={tmp_path / 'run'}',"
    f" '--config.stages=data', '--config.data.cache_dir={tmp_path / 'c'}']\n"
    "cli()\n"
  )
  r = subprocess.run(
    [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
  )
  err = r.stderr.strip().splitlines()
  assert r.returncode == 2 and len(err) == 1, r.stderr[-1500:]
  assert "stats.json" in err[0] and "No space left on device; free some space" in err[0]
