"""The full method's recommender (xdkt: SASRec + source fusion, models/xdkt.py) trained by
`sequential.train_sasrec` on 4 fake CPU devices (data-parallel mesh) equals the same run on 1
device — including early stopping on the valid split, which scores the sharded parameters
between epochs (subprocesses: the device count is fixed at jax import)."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from conftest import ROOT

WORKER = textwrap.dedent("""
  import os, sys, json
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={sys.argv[1]}"
  sys.path.insert(0, "tests")
  import jax, numpy as np
  from conftest import sequential_settings, small_world_config
  from xdkt_jax.data import load, protocols
  from xdkt_jax.recommenders import sequential
  cfg = small_world_config()
  ds, _ = load.load(cfg.data, tokenize=False)
  split = protocols.make_split(ds, cfg)                       # cold_start, k = 1
  r = np.random.default_rng(0)
  vecs = {d: r.normal(size=(ds.domains[d].n_items, 8)).astype(np.float32) for d in ds.domains}
  m = sequential.train_sasrec(
      ds, split, target="Movies", item_vectors=vecs, source_vectors=vecs, transfer=True, seed=0,
      cfg=sequential_settings(hidden=16, layers=1, heads=2, mlp=32, max_len=12, batch=16,
                              epochs=3, mode="fused", align="infonce", lr=1e-3,
                              select_epoch=True, patience=1))
  emb = m.params["item_embedding"]
  print("RESULT " + json.dumps({
      "devices": jax.device_count(), "losses": [float(x) for x in m.losses],
      "curve": [c["ndcg@10"] for c in m.info["valid_curve"]], "best": m.info["best_epoch"],
      "run": m.info["epochs_run"], "emb": np.asarray(emb).ravel()[:64].tolist()}))
""")


def _run(n):
  r = subprocess.run(
    [sys.executable, "-c", WORKER, str(n)], cwd=ROOT, capture_output=True, text=True, timeout=600
  )
  assert r.returncode == 0, r.stderr[-3000:]
  return json.loads(next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))[7:])


def test_xdkt_recommender_on_4_devices_matches_1_device():
  one, four = _run(1), _run(4)
  assert (one["devices"], four["devices"]) == (1, 4)
  assert len(one["losses"]) == len(four["losses"]) > 0
  # Data-parallel gradients are summed in another order: float noise, nothing more.
  np.testing.assert_allclose(four["losses"], one["losses"], rtol=2e-4, atol=2e-4)
  np.testing.assert_allclose(four["emb"], one["emb"], atol=1e-4)
  assert (four["best"], four["run"]) == (one["best"], one["run"])
  np.testing.assert_allclose(four["curve"], one["curve"], atol=1e-3)
