import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "launch"))
import sweep  # noqa: E402


def test_sweep_expands_product_and_lists(tmp_path):
  cfg = tmp_path / "exp.py"
  cfg.write_text(
    "def get_sweep():\n  return {'protocol_k': [0, 1], 'data.dedup': ['first', 'all']}\n"
  )
  cmds = sweep.commands(str(cfg), sweep.load_sweep(str(cfg)), "runs/s", ["--config.seed=3"])
  assert len(cmds) == 4
  assert cmds[0] == [
    "xdkt",
    "run",
    f"--config={cfg}",
    "--workdir=runs/s/protocol_k=0_dedup=first",
    "--config.protocol_k=0",
    "--config.data.dedup=first",
    "--config.seed=3",
  ]
  cfg.write_text("def get_sweep():\n  return [{'seed': 1}, {'seed': 2, 'protocol': 'warm'}]\n")
  cmds = sweep.commands(str(cfg), sweep.load_sweep(str(cfg)), "r", [])
  assert [c[-1] for c in cmds] == ["--config.seed=1", "--config.protocol=warm"]


def test_sweep_cli_prints_the_art_office_sweep():
  r = subprocess.run(
    [sys.executable, "launch/sweep.py", "--config=configs/amazon_art_office.py"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert r.returncode == 0, r.stderr
  lines = r.stdout.strip().splitlines()
  assert len(lines) == 3 and all("--config.protocol=cold_start" in l for l in lines)
  assert "--config.protocol_k=3" in lines[-1]


def _valid_results(path, method, values, eval_part="valid"):
  import json  # pylint: disable=import-outside-toplevel

  path.mkdir(parents=True, exist_ok=True)
  (path / "results.json").write_text(
    json.dumps(
      {
        "eval_part": eval_part,
        "metrics": {
          method: {
            "ndcg@10": {
              "mean": sum(values) / len(values),
              "ci95": [min(values), max(values)],
              "per_seed": values,
            }
          }
        },
      }
    )
  )


def test_tune_runs_each_point_on_valid_and_picks_the_best(tmp_path, monkeypatch):
  """The selection itself: every point is an `xdkt run` on the valid split (eval_part=valid,
  tuning=True, the chosen method only); the best mean valid score wins, ties go to the
  earlier point, and selection.json holds the test command.  (A real tuning run is
  tests/test_run_e2e.py::test_a_tuning_run_scores_valid_only_and_says_so.)"""
  import json  # pylint: disable=import-outside-toplevel
  import tune  # pylint: disable=import-outside-toplevel

  calls = []
  scores = {"fused": [0.20, 0.22], "text": [0.25, 0.23], "sum": [0.25, 0.23]}

  def fake_call(cmd):
    calls.append(cmd)
    wd = next(c.split("=", 1)[1] for c in cmd if c.startswith("--workdir="))
    point = next((c.rsplit("=", 1)[1] for c in cmd if "source_repr=" in c), None)
    if point:
      _valid_results(tmp_path / "t" / f"source_repr={point}", "xdkt", scores[point])
    return 0 if wd else 1

  monkeypatch.setattr(tune, "call", fake_call)
  rc = tune.main(
    [
      "--config=configs/default.py",
      f"--root={tmp_path / 't'}",
      "--grid=recommend.xdkt.source_repr=fused,text,sum",
      "--method=xdkt",
      "--run",
      "--config.recommend.seeds=2",
    ]
  )
  assert rc == 0
  base, *points = calls
  assert "--config.stages=data,pretrain,adapt,extract" in base  # upstream once
  for c in points:
    assert {
      "--config.recommend.eval_part=valid",
      "--config.recommend.tuning=True",
      "--config.recommend.methods=xdkt",
    } <= set(c)
  sel = json.loads((tmp_path / "t" / "selection.json").read_text())
  assert sel["chosen"] == {"recommend.xdkt.source_repr": "text"}  # tie with 'sum': earlier
  assert sel["test_command"].endswith("--config.recommend.xdkt.source_repr=text")
  assert "eval_part" not in sel["test_command"]


def test_tune_refuses_a_test_split_result_and_its_own_settings(tmp_path):
  import pytest  # pylint: disable=import-outside-toplevel
  import tune  # pylint: disable=import-outside-toplevel

  _valid_results(tmp_path / "p", "xdkt", [0.3], eval_part="test")
  with pytest.raises(SystemExit, match="not a valid-split run"):
    tune.score(tmp_path / "p", "xdkt", "ndcg@10")
  with pytest.raises(SystemExit, match="set by tune itself"):
    tune.main(["--config=configs/default.py", "--config.recommend.eval_part=test"])
  with pytest.raises(SystemExit, match="key=v1,v2"):
    tune.parse_grid(["recommend.xdkt.source_repr"])
  assert tune.config_grid("configs/default.py") == {"recommend.xdkt.source_repr": ["fused", "text"]}
