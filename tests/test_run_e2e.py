"""`xdkt run` end to end on configs/tiny.py (2 steps per trained stage): every stage, every
method, the results.json schema, report.md, plots, and reuse on rerun."""

import json

import numpy as np
import pytest

from xdkt_jax import main as cli
from xdkt_jax import pipeline, recommend

METHODS = (
  "xdkt",
  "target_only",
  "pop",
  "itemknn",
  "userknn",
  "bpr_mf",
  "sasrec",
  "text_knn",
  "hybrid",
  "emcdr",
  "cmf",
  "unisrec_style",
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("e2e")
  argv = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={tmp / 'run'}",
    f"--config.data.cache_dir={tmp / 'cache'}",
  ]
  assert cli.main(argv) == 0
  return tmp, argv


def test_results_json_schema(tiny_run):
  tmp, _ = tiny_run
  wd = tmp / "run"
  r = json.loads((wd / "results.json").read_text())
  assert set(METHODS) == set(r["metrics"]) == set(recommend.METHODS)
  assert r["protocol"] == "cold_start k=1"
  assert r["config"]["data"]["source"] == "synthetic"
  assert r["dataset"]["domains"]
  for m in METHODS:
    for k in (5, 10, 20, 50):
      for name in ("recall", "ndcg", "mrr"):
        cell = r["metrics"][m][f"{name}@{k}"]
        lo, hi = cell["ci95"]
        assert lo <= cell["mean"] + 1e-9 and cell["mean"] <= hi + 1e-9, (m, name, k)
    assert {"coverage@10", "diversity@10", "novelty@10", "pop_bias@10"} <= set(r["beyond"][m])
  # seeds: trained methods twice (tiny.py), deterministic ones once
  assert len(r["metrics"]["xdkt"]["ndcg@10"]["per_seed"]) == 2
  assert len(r["metrics"]["pop"]["ndcg@10"]["per_seed"]) == 1
  g = r["transfer_gain"]["ndcg@10"]
  assert 0.0 <= g["p_value"] <= 1.0 and len(g["ci95"]) == 2
  assert g["mean"] == pytest.approx(
    r["metrics"]["xdkt"]["ndcg@10"]["mean"] - r["metrics"]["target_only"]["ndcg@10"]["mean"],
    abs=1e-9,
  )
  assert set(r["compared_to_xdkt"]) == set(METHODS) - {"xdkt"}
  # one rule for every method, recorded; the two-level intervals and the Holm family
  assert r["eval_rule"] == {"convention": "xdkt", "exclude_history": "all", "ties": "pessimistic"}
  assert (
    g["family_size"] == 6 and g["p_holm"] >= g["p_ttest"] and "seeds x users" in (g["ci_method"])
  )
  assert r["metrics"]["pop"]["ndcg@10"]["ci_method"].startswith("bootstrap over users")
  assert {"data", "adapt", "extract", "recommend", "evaluate", "report"} <= set(r["timings_s"])
  if g["mean"] < 0:
    assert any("NEGATIVE TRANSFER" in w for w in r["warnings"])
  assert r["alignment"]["mmd_linear_before"] >= 0


def test_report_and_plots(tiny_run):
  tmp, _ = tiny_run
  wd = tmp / "run"
  md = (wd / "report.md").read_text()
  assert md.splitlines()[0].startswith(
    "Evaluation rule: evaluation convention `xdkt`: the "
    "user's whole target-domain input history masked"
  )
  assert "| xdkt |" in md and "Transfer gain" in md and "| unisrec_style |" in md
  assert "paired t-test over the" in md and "Holm" in md
  for png in ("training_curves.png", "metrics.png", "alignment.png"):
    assert (wd / png).read_bytes()[:8] == PNG, png
  # per-user arrays behind every number
  z = np.load(wd / "recommend" / "xdkt" / "seed_1" / "per_user.npz")
  r = json.loads((wd / "results.json").read_text())
  assert z["ndcg@10"].mean() == pytest.approx(r["metrics"]["xdkt"]["ndcg@10"]["per_seed"][1])


def test_rerun_reuses_every_stage(tiny_run):
  tmp, argv = tiny_run
  wd = tmp / "run"
  before = (wd / "results.json").read_text()
  stamp = {p: p.stat().st_mtime_ns for p in (wd / "recommend").rglob("per_user.npz")}
  lines = []
  command, config, _ = cli.parse(argv)
  assert command == "run"
  pipeline.run(config, str(wd), log=lines.append)
  assert any("adapt: reusing" in l for l in lines)
  assert any("extract: reusing" in l for l in lines)
  assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing retrained
  after = json.loads((wd / "results.json").read_text())
  assert after["metrics"] == json.loads(before)["metrics"]


def test_unknown_method_is_a_one_line_error(tmp_path, capsys):
  import subprocess, sys  # pylint: disable=import-outside-toplevel,multiple-imports
  from conftest import ROOT  # pylint: disable=import-outside-toplevel

  p = subprocess.run(
    [
      sys.executable,
      "-m",
      "xdkt_jax.main",
      "run",
      "--config=configs/tiny.py",
      f"--workdir={tmp_path}",
      "--config.recommend.methods=xdkt,sasrecc",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  assert p.returncode == 2
  err = p.stderr.strip().splitlines()
  assert len(err) == 1 and "sasrecc" in err[0] and "unknown method" in err[0], p.stderr


def test_multi_domain_ranks_every_domain_with_the_others_as_sources(tiny_run, tmp_path):
  """protocol=multi_domain: each domain is a target in turn (its own recommend / evaluate /
  report under targets/<domain>/), the others its sources; one summary at the top.  It shares
  the tiny run's caches (tokens, item knowledge, compiled programs): only time is saved."""
  tmp, _ = tiny_run
  argv = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={tmp_path / 'run'}",
    f"--config.data.cache_dir={tmp / 'cache'}",
    "--config.protocol=multi_domain",
    "--config.recommend.methods=xdkt,target_only,pop",
    "--config.recommend.seeds=1",
  ]
  assert cli.main(argv) == 0
  wd = tmp_path / "run"
  top = json.loads((wd / "results.json").read_text())
  assert top["protocol"] == "multi_domain" and set(top["domains"]) == {"Books", "Movies"}
  for d, other in (("Books", "Movies"), ("Movies", "Books")):
    r = json.loads((wd / "targets" / d / "results.json").read_text())
    assert r["targets"] == [d] and r["sources"] == [other]
    assert set(r["metrics"]) == {"xdkt", "target_only", "pop"}
    assert top["domains"][d]["metrics"]["xdkt"]["ndcg@10"] == r["metrics"]["xdkt"]["ndcg@10"]
    assert "ndcg@10" in top["domains"][d]["transfer_gain"]
    assert r["n_items"] == 120  # configs/tiny.py: items per domain
  md = (wd / "report.md").read_text()
  assert "| Books |" in md and "| Movies |" in md and "| xdkt |" in md
  assert {"recommend/Books", "recommend/Movies"} <= set(top["timings_s"])


def test_runs_in_worker_threads_give_the_same_numbers(tiny_run, tmp_path):
  """recommend.workers=2 runs (method, seed) pairs two at a time in threads; every number is
  the one the sequential run produced."""
  tmp, _ = tiny_run
  argv = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={tmp_path / 'run'}",
    f"--config.data.cache_dir={tmp / 'cache'}",
    "--config.recommend.workers=2",
    "--config.recommend.methods=xdkt,target_only,pop",
  ]
  assert cli.main(argv) == 0
  seq = json.loads((tmp / "run" / "results.json").read_text())["metrics"]
  par = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
  for m in ("xdkt", "target_only", "pop"):
    for k in ("ndcg@10", "recall@10", "mrr@50"):
      assert par[m][k]["per_seed"] == seq[m][k]["per_seed"], (m, k)


def test_changing_sasrec_settings_retrains_only_the_sequential_methods(tiny_run, tmp_path):
  """The SASRec settings are part of the sequential methods' run fingerprints only: a
  baseline's finished runs are reused when they change, the sequential ones are retrained."""
  import shutil  # pylint: disable=import-outside-toplevel

  tmp, _ = tiny_run
  wd = tmp_path / "run"
  shutil.copytree(tmp / "run", wd)
  stamp = lambda m: {p: p.stat().st_mtime_ns for p in (wd / "recommend" / m).rglob("*.npz")}
  before = {m: stamp(m) for m in ("sasrec", "bpr_mf", "pop")}
  argv = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={wd}",
    f"--config.data.cache_dir={tmp / 'cache'}",
    "--config.recommend.methods=sasrec,bpr_mf,pop",
    "--config.recommend.sequential.dropout=0.35",
  ]
  assert cli.main(argv) == 0
  assert stamp("bpr_mf") == before["bpr_mf"] and stamp("pop") == before["pop"]
  after = stamp("sasrec")
  assert after.keys() == before["sasrec"].keys()
  assert all(after[p] != before["sasrec"][p] for p in after)  # every seed retrained


def test_a_tuning_run_scores_valid_only_and_says_so(tiny_run, tmp_path):
  """launch/tune.py's runs: eval_part=valid with early stopping allowed, a loud banner; a
  tuning flag on a test run is refused before any stage."""
  tmp, _ = tiny_run
  base = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={tmp_path / 'run'}",
    f"--config.data.cache_dir={tmp / 'cache'}",
    "--config.recommend.methods=target_only",
    "--config.recommend.seeds=1",
    "--config.recommend.sequential.select_epoch=True",
    "--config.recommend.tuning=True",
  ]
  with pytest.raises(ValueError, match="tuning=True scores the valid split only"):
    cli.main(base)
  assert cli.main(base + ["--config.recommend.eval_part=valid"]) == 0
  r = json.loads((tmp_path / "run" / "results.json").read_text())
  assert r["eval_part"] == "valid" and r["tuning"]
  assert "TUNING RUN on the valid split" in (tmp_path / "run" / "report.md").read_text()


def test_select_epoch_in_a_run_and_its_guard(tiny_run, tmp_path):
  """recommend.sequential.select_epoch: each sequential run records its valid curve and the
  epoch it kept; asking for it while reporting on the valid split is a one-line error."""
  tmp, _ = tiny_run
  base = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={tmp_path / 'run'}",
    f"--config.data.cache_dir={tmp / 'cache'}",
    "--config.recommend.methods=xdkt,target_only",
    "--config.recommend.seeds=1",
    "--config.recommend.sequential.steps=0",
    "--config.recommend.sequential.epochs=3",
    "--config.recommend.sequential.select_epoch=True",
    "--config.recommend.sequential.patience=1",
  ]
  assert cli.main(base) == 0
  for m in ("xdkt", "target_only"):
    info = json.loads((tmp_path / "run" / "recommend" / m / "seed_0" / "summary.json").read_text())[
      "info"
    ]
    curve = [c["ndcg@10"] for c in info["valid_curve"]]
    assert 1 <= info["best_epoch"] <= info["epochs_run"] == len(curve) <= 3, m
    assert info["best_valid"] == max(curve), m
    kept = json.loads((tmp_path / "run" / "results.json").read_text())["selected_epochs"][m]
    assert kept == [
      {
        "seed": 0,
        "best_epoch": info["best_epoch"],
        "epochs_run": info["epochs_run"],
        "best_valid": info["best_valid"],
        "metric": "ndcg@10",
      }
    ]
  md = (tmp_path / "run" / "report.md").read_text()
  assert "## Epochs kept on the valid split (early stopping on ndcg@10)" in md
  with pytest.raises(ValueError, match="select_epoch .* needs eval_part='test'"):
    cli.main(base + ["--config.recommend.eval_part=valid", f"--workdir={tmp_path / 'never'}"])
  assert not (tmp_path / "never" / "data").exists()  # refused before any stage ran


def test_neighbour_fusion_in_a_run_and_its_guard(tiny_run, tmp_path):
  """recommend.neighbour_blend: every sequential run records the weight it picked on valid
  (the best valid score among the candidates, 0 included), results.json and report.md show
  it, baselines are untouched; reporting on the valid split with it is a one-line error."""
  tmp, _ = tiny_run
  base = [
    "xdkt",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={tmp_path / 'run'}",
    f"--config.data.cache_dir={tmp / 'cache'}",
    "--config.recommend.methods=xdkt,target_only,itemknn",
    "--config.recommend.seeds=1",
    "--config.recommend.neighbour_blend=0.5,2",
  ]
  assert cli.main(base) == 0
  r = json.loads((tmp_path / "run" / "results.json").read_text())
  assert set(r["neighbour_fusion"]) == {"xdkt", "target_only"}
  for m in ("xdkt", "target_only"):
    info = json.loads((tmp_path / "run" / "recommend" / m / "seed_0" / "summary.json").read_text())[
      "info"
    ]
    curve = {v["weight"]: v["ndcg@10"] for v in info["neighbour_valid"]}
    assert sorted(curve) == [0.0, 0.5, 2.0]
    assert curve[info["neighbour_weight"]] == max(curve.values()), m
    assert r["neighbour_fusion"][m] == [
      {
        "seed": 0,
        "weight": info["neighbour_weight"],
        "metric": "ndcg@10",
        "valid": info["neighbour_valid"],
      }
    ]
  md = (tmp_path / "run" / "report.md").read_text()
  assert "## Neighbourhood fusion: z(model) + w·z(item-kNN), w picked on the valid split" in md
  # the same trained models without fusion: their own rows and their own transfer gain
  for m in ("xdkt", "target_only"):
    plain = np.load(tmp_path / "run" / "recommend" / m / "seed_0" / "per_user_unfused.npz")
    assert r["metrics"][m + "-nofusion"]["ndcg@10"]["mean"] == pytest.approx(
      plain["ndcg@10"].mean()
    )
  assert "itemknn-nofusion" not in r["metrics"]
  assert set(r["transfer_gain_unfused"]) == set(r["transfer_gain"])
  assert "without neighbourhood fusion" in md
  with pytest.raises(ValueError, match="neighbour_blend picks .* needs eval_part='test'"):
    cli.main(base + ["--config.recommend.eval_part=valid", f"--workdir={tmp_path / 'never'}"])
  assert not (tmp_path / "never" / "data").exists()
  with pytest.raises(ValueError, match="neighbour_blend must be comma-separated numbers"):
    cli.main(
      base[:-1] + ["--config.recommend.neighbour_blend=a,b", f"--workdir={tmp_path / 'never'}"]
    )


def test_sigterm_in_the_recommend_stage_exits_0_and_resumes(tiny_run, tmp_path):
  """SIGTERM while the recommend stage trains: one line, exit 0, finished runs kept; the
  rerun finishes the rest with the numbers an uninterrupted run gave."""
  import os, shutil, signal, subprocess, sys  # pylint: disable=import-outside-toplevel,multiple-imports
  from conftest import ROOT  # pylint: disable=import-outside-toplevel

  tmp, _ = tiny_run
  wd = tmp_path / "run"
  shutil.copytree(tmp / "run", wd)
  shutil.rmtree(wd / "recommend" / "sasrec")
  argv = [
    sys.executable,
    "-m",
    "xdkt_jax.main",
    "run",
    "--config=configs/tiny.py",
    f"--workdir={wd}",
    f"--config.data.cache_dir={tmp / 'cache'}",
    "--config.recommend.methods=sasrec,pop",
  ]
  p = subprocess.Popen(
    argv,
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, "PYTHONUNBUFFERED": "1"},
  )
  for line in p.stdout:
    if line.startswith("evaluation convention"):  # the recommend stage has begun
      p.send_signal(signal.SIGTERM)
      break
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err[-2000:]
  assert "recommend: stopped on SIGTERM" in err and "rerun the same command" in err
  assert len(err.strip().splitlines()) == 1, err[-2000:]
  assert (
    cli.main(
      [
        "xdkt",
        "run",
        "--config=configs/tiny.py",
        f"--workdir={wd}",
        f"--config.data.cache_dir={tmp / 'cache'}",
        "--config.recommend.methods=sasrec,pop",
      ]
    )
    == 0
  )
  seq = json.loads((tmp / "run" / "results.json").read_text())["metrics"]["sasrec"]
  got = json.loads((wd / "results.json").read_text())["metrics"]["sasrec"]
  assert got["ndcg@10"]["per_seed"] == seq["ndcg@10"]["per_seed"]


def test_damaged_artifacts_are_named_and_recomputed(tiny_run, tmp_path):
  """Truncated knowledge.npz, per_user.npz and the tokenisation cache: the rerun names each
  file, recomputes what it belongs to and ends with the same numbers."""
  import shutil  # pylint: disable=import-outside-toplevel

  tmp, _ = tiny_run
  wd, cache = tmp_path / "run", tmp_path / "cache"
  shutil.copytree(tmp / "run", wd)
  shutil.copytree(tmp / "cache", cache)
  damaged = [
    wd / "extract" / "knowledge.npz",
    wd / "recommend" / "pop" / "seed_0" / "per_user.npz",
    next(cache.glob("tok-*.npz")),
  ]
  for p in damaged:
    p.write_bytes(p.read_bytes()[:100])
  lines = []
  _, config, _ = cli.parse(
    [
      "xdkt",
      "run",
      "--config=configs/tiny.py",
      f"--workdir={wd}",
      f"--config.data.cache_dir={cache}",
      "--config.recommend.methods=xdkt,target_only,pop",
    ]
  )
  import logging  # pylint: disable=import-outside-toplevel

  logging.getLogger("xdkt_jax.data.tokenization").addHandler(
    type("H", (logging.Handler,), {"emit": lambda self, r: lines.append(r.getMessage())})()
  )
  pipeline.run(config, str(wd), log=lines.append)
  for p in damaged[:2]:
    assert any(str(p) in l and "damaged" in l for l in lines), (p, lines[-20:])
  assert any(str(damaged[2]) in l and "cannot be read" in l for l in lines)
  before = json.loads((tmp / "run" / "results.json").read_text())["metrics"]
  after = json.loads((wd / "results.json").read_text())["metrics"]
  for m in ("xdkt", "target_only", "pop"):
    assert after[m]["ndcg@10"]["per_seed"] == before[m]["ndcg@10"]["per_seed"], m
