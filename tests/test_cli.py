"""The `xdkt` command as a user runs it: stats JSON on the real datasets, the run job on a
small synthetic world, and one-line errors (no traceback, exit 2) for user mistakes."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, shared_data_dir


def xdkt(*args, timeout=300):
  r = subprocess.run(
    [sys.executable, "-m", "xdkt_jax.main", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  return r.returncode, r.stdout, r.stderr


README_RAW = {
  "amazon_art_office": (
    {"Art": (9_577, 18_639, 110_877), "Office": (9_577, 19_757, 97_664)},
    {"Art|Office": 9_577},
  ),
  "amazon_scientific": ({"Scientific": (8_442, 4_385, 59_384)}, {}),
  "amazon14_beauty_sports_toys": (
    {
      "Beauty": (22_363, 12_101, 198_502),
      "Sports": (35_598, 18_357, 296_337),
      "Toys": (19_412, 11_924, 167_597),
    },
    {"Beauty|Sports": 1_625, "Beauty|Toys": 2_073, "Sports|Toys": 1_734},
  ),
}


@pytest.mark.parametrize("name", sorted(README_RAW))
def test_stats_json_matches_readme(name, tmp_path, shared_data):
  code, out, err = xdkt(
    "stats",
    f"--config=configs/{name}.py",
    "--json",
    f"--config.data.path={shared_data / name}",
    f"--config.data.cache_dir={tmp_path}",
  )
  assert code == 0, err[-2000:]
  st = json.loads(out)
  raw, overlap = README_RAW[name]
  for d, (u, i, n) in raw.items():
    assert st["domains"][d]["raw"] == {"users": u, "items": i, "interactions": n}
    assert set(st["domains"][d]) >= {"raw", "after", "dropped"}
  assert st["overlap"] == overlap


def test_stats_table_and_run_on_small_default(tmp_path):
  small = [
    "--config.data.synthetic.n_users=300",
    "--config.data.synthetic.interactions=5000",
    "--config.data.synthetic.items_per_domain=100",
    f"--config.data.cache_dir={tmp_path}",
  ]
  code, out, err = xdkt("stats", "--config=configs/default.py", *small)
  assert code == 0, err[-2000:]
  assert "Books raw" in out and "Movies after" in out and "dropped: dedup=" in out
  code, out, err = xdkt(
    "run",
    "--config=configs/default.py",
    f"--workdir={tmp_path}/run",
    "--config.stages=data",
    *small,
  )
  assert code == 0, err[-2000:]
  split = json.loads((tmp_path / "run" / "data" / "split.json").read_text())
  assert split["protocol"] == "cold_start" and split["k"] == 1 and split["dataset_fingerprint"]


def write(path, text):
  path.write_text(text)
  return path


@pytest.mark.parametrize(
  "setup,expect",
  [
    (lambda d: None, "folder not found"),  # missing folder
    (
      lambda d: (
        d.mkdir(),
        write(d / "A.inter", "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\tyesterday\n"),
        write(d / "A.item", "item_id:token\ttitle:token_seq\ni1\tred pen\n"),
      ),
      "A.inter:2: field 'timestamp'",
    ),
    (
      lambda d: (d.mkdir(), write(d / "A.inter", "user_id:token\titem_id:tokn\nu1\ti1\n")),
      "A.inter:1",
    ),
  ],
)
def test_cli_one_line_errors(tmp_path, setup, expect):
  folder = tmp_path / "data"
  setup(folder)
  code, out, err = xdkt(
    "stats",
    "--config=configs/recbole.py",
    f"--config.data.path={folder}",
    f"--config.data.cache_dir={tmp_path}/c",
  )
  assert code == 2
  assert "Traceback" not in err
  lines = [l for l in err.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("xdkt: error:"), err
  assert expect in lines[0], lines[0]


def test_cli_usage_errors(tmp_path):
  code, _, err = xdkt("fly", "--config=configs/default.py")
  assert code == 2 and "usage: xdkt" in err and "Traceback" not in err
  code, _, err = xdkt("run", "--config=configs/default.py")
  assert code == 2 and "--workdir" in err
  code, _, err = xdkt(
    "stats", "--config=configs/default.py", "--config.protocol=sideways", "--config.stages=data"
  )
  assert code == 0  # stats does not split; run does:
  code, _, err = xdkt(
    "run",
    "--config=configs/default.py",
    f"--workdir={tmp_path}",
    "--config.protocol=sideways",
    "--config.stages=data",
    "--config.data.synthetic.interactions=3000",
    "--config.data.synthetic.n_users=200",
  )
  assert code == 2 and "unknown protocol" in err and "Traceback" not in err
