"""Scaling curves: SASRec training time per epoch vs data size, full-ranking eval time vs
catalogue size, each with its log-log slope (1.0 = linear).

(a) train  ``train_sasrec`` (xdkt_jax/recommenders/sequential.py, id mode, the project's sequential
    config ``configs/default.py`` -> ``recommend.sequential``) on the synthetic world loaded by
    ``data.load.load(cfg.data, tokenize=False)`` and split by ``protocols.make_split``
    (``--protocol`` warm | in_domain; target Movies).  Per point, ``synthetic.interactions`` is
    the point's size and ``synthetic.n_users`` scales with it (``--interactions-per-user``,
    default the config's 150,000 / 3,000 = 50), so each user's history length -- hence the
    windows per user and the packed row mix -- stays the same; ``items_per_domain`` stays at
    the config's 1,000 so the full-softmax output, the per-example cost, is constant.  Only the
    number of packed rows (steps per epoch) grows.

    Time per epoch, by subtraction.  ``train_sasrec`` reports ``train_seconds``: the training
    loop only (window building / packing / state init excluded).  A run of 1 step costs
    overhead + 1 step; a run of E epochs (S steps each) costs overhead + E·S steps.  So one
    steady step = (t_E - t_1) / (E·S - 1) and an epoch = S times that; the overhead, which does
    not grow with the data, cancels.  The overhead is mostly compiling the step (seconds here,
    and noisy on a shared machine), so the two runs must pay the SAME overhead: JAX's
    persistent compilation cache (``pipeline.enable_compilation_cache`` on a temporary folder)
    is filled by an untimed 1-step run first, and both timed runs then load the same
    executable.  E is raised per point until E·S >= ``--min-steps``, so the difference spans
    enough steps to dwarf what is left of the overhead's noise (an epoch at 1e4 interactions
    is ONE step, tens of ms on a CPU).  Host-side batching (``Batcher.batch_at``) and the loop's
    lagged metric fetch are inside both runs, as in real training.  ``outside_s`` = wall time
    of the E-epoch ``train_sasrec`` call minus its loop: windows + packing (python loops that
    grow with the data), state init, the final parameter fetch.  At small sizes an epoch is a
    single step (``batch`` is capped at the number of rows: 62 at 1e4 interactions), so the slope
    is best read between points with many steps per epoch (1e5: ~9, 1e6: ~90).

(b) eval   ``evaluate.evaluate_embeddings`` (chunked top-k: never a users x catalogue matrix)
    with random user and item embeddings (D = ``--dim``), ``--eval-users`` users in batches of
    ``--eval-batch`` (the recommend config's eval_batch_size, 256), each with a
    ``--hist-len`` history excluded from the ranking.  One warm-up call (compiles), then the
    median of ``--repeats`` timed calls; each call ends by fetching every result to the host.

Each curve ends with a line ``SLOPE <name>=<s>``, the least-squares slope of log(time) on
log(size).  ``others`` = cores other processes kept busy while timing (0 = quiet machine).

  .venv/bin/python benchmarks/scaling.py                      # defaults: 1e4,1e5,1e6 / 1e3..1e6
      # estimated (not yet run) on the 2-core CPU: train ~2 min, eval ~3-5 min (the 1e6
      # catalogue: ~30-65 s per call, 1 warm-up + 3 timed); --repeats 1 saves ~2 min
  .venv/bin/python benchmarks/scaling.py --json               # + one JSON object at the end
  .venv/bin/python benchmarks/scaling.py --interactions 2000,4000 --catalogue 1000,2000 \\
      --min-steps 20 --eval-users 64 --repeats 1               # smoke test
  .venv/bin/python benchmarks/scaling.py --interactions none  # eval curve only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import ml_collections  # noqa: E402
import peak_flops  # noqa: E402
from configs import default as default_config  # noqa: E402
from xdkt_jax import evaluate as evaluate_lib  # noqa: E402
from xdkt_jax import pipeline  # noqa: E402
from xdkt_jax.data import load as load_lib  # noqa: E402
from xdkt_jax.data import protocols  # noqa: E402
from xdkt_jax.recommenders import sequential  # noqa: E402


def parse_sizes(text: str) -> list[int]:
  """'1e4,1e5' -> [10000, 100000]; '' / 'none' -> [] (skip the curve)."""
  if text.strip().lower() in ("", "none"):
    return []
  return [int(float(x)) for x in text.split(",") if x.strip()]


def loglog_slope(sizes, times) -> float:
  """Least-squares slope of log(time) on log(size); nan with fewer than two points."""
  if len(sizes) < 2:
    return float("nan")
  return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


# ---- (a) training time per epoch -------------------------------------------------------------


def synthetic_world(interactions: int, per_user: float, protocol: str):
  """(cfg, ds, split) of the default config's synthetic world at `interactions`, users scaled
  to keep `per_user` interactions each, the catalogue fixed."""
  cfg = default_config.get_config()
  with cfg.unlocked():
    cfg.data.synthetic.interactions = int(interactions)
    cfg.data.synthetic.n_users = max(2, int(round(interactions / per_user)))
    cfg.protocol = protocol
  ds, _ = load_lib.load(cfg.data, tokenize=False)
  return cfg, ds, protocols.make_split(ds, cfg)


def timed_train(ds, split, target: str, seq_cfg: dict):
  """(model, wall seconds of the whole train_sasrec call, CpuShare of it)."""
  with peak_flops.CpuShare() as share:
    t = time.perf_counter()
    model = sequential.train_sasrec(ds, split, target=target, cfg=seq_cfg, log_fn=lambda _: None)
    wall = time.perf_counter() - t
  return model, wall, share


def train_point(interactions: int, args) -> dict:
  """One point of curve (a): an untimed 1-step run (fills the compilation cache), a timed
  1-step run and a timed E-epoch run on the same data."""
  t = time.perf_counter()
  cfg, ds, split = synthetic_world(interactions, args.interactions_per_user, args.protocol)
  data_s = time.perf_counter() - t
  target = cfg.data.target_domain
  seq = dict(cfg.recommend.sequential.to_dict(), mode="id", seed=0)
  warm, _, _ = timed_train(ds, split, target, dict(seq, steps=1))
  one, _, _ = timed_train(ds, split, target, dict(seq, steps=1))
  rows, batch = warm.info["rows"], warm.info["batch"]
  s_per_epoch = rows // batch  # Batcher with drop_remainder=True
  epochs = max(args.epochs, -(-args.min_steps // s_per_epoch))
  full, wall, share = timed_train(ds, split, target, dict(seq, steps=0, epochs=epochs))
  assert full.info["steps"] == epochs * s_per_epoch, (full.info, s_per_epoch)
  t1, te = one.info["train_seconds"], full.info["train_seconds"]
  step_s = (te - t1) / (full.info["steps"] - 1)
  return {
    "interactions": interactions,
    "users": int(ds.n_users),
    "target_train_rows": int(len(split.train_rows[target])),
    "windows": full.info["windows"],
    "packed_rows": rows,
    "batch": batch,
    "steps_per_epoch": s_per_epoch,
    "epochs": epochs,
    "steps": full.info["steps"],
    "cold_one_step_run_s": warm.info["train_seconds"],
    "one_step_run_s": t1,
    "epochs_run_s": te,
    "step_s": step_s,
    "epoch_s": step_s * s_per_epoch,
    "outside_s": wall - te,
    "data_s": data_s,
    "final_loss": full.info["final_loss"],
    "other_cores": share.other_cores,
    # The difference should dwarf the overhead it cancels, else noise dominates it.
    "noisy": bool(te - t1 < t1),
  }


def format_train(r: dict) -> str:
  others = "" if r["other_cores"] is None else f"{r['other_cores']:.2f}"
  return (
    f"train interactions={r['interactions']:>9,d} users={r['users']:>7,d} "
    f"rows={r['target_train_rows']:>8,d} packed={r['packed_rows']:>6,d} "
    f"batch={r['batch']:>3d} steps/epoch={r['steps_per_epoch']:>5d}  "
    f"epoch={r['epoch_s']:9.3f} s  step={r['step_s'] * 1e3:7.2f} ms  "
    f"(1-step run {r['one_step_run_s']:.2f} s [cold {r['cold_one_step_run_s']:.2f}], "
    f"{r['epochs']}-epoch run {r['epochs_run_s']:.2f} s; outside loop "
    f"{r['outside_s']:.2f} s, data {r['data_s']:.2f} s; others {others})"
    + ("  NOISY: E-epoch minus 1-step < the 1-step run; raise --min-steps" if r["noisy"] else "")
  )


# ---- (b) evaluation time vs catalogue --------------------------------------------------------


def eval_inputs(n_items: int, args, seed: int = 0):
  """Random embeddings and eval arrays: users on the device, items [N, D], targets and a
  full `hist_len` history per user (ids may repeat; the cost does not depend on it)."""
  rng = np.random.default_rng(seed)
  scale = 1.0 / math.sqrt(args.dim)
  users = jnp.asarray(rng.standard_normal((args.eval_users, args.dim), np.float32) * scale)
  items = jnp.asarray(rng.standard_normal((n_items, args.dim), np.float32) * scale)
  arrays = {
    "user": np.arange(args.eval_users, dtype=np.int32),
    "target": rng.integers(0, n_items, args.eval_users, dtype=np.int32),
    "hist": rng.integers(0, n_items, (args.eval_users, args.hist_len), dtype=np.int32),
    "hist_mask": np.ones((args.eval_users, args.hist_len), np.int8),
  }
  arrays["exclude_items"], arrays["exclude_mask"] = arrays["hist"], arrays["hist_mask"]
  return users, items, arrays


def eval_point(n_items: int, args) -> dict:
  users, items, arrays = eval_inputs(n_items, args)
  user_fn = lambda batch: users[jnp.asarray(batch["user"])]
  run = lambda: evaluate_lib.evaluate_embeddings(
    user_repr_fn=user_fn, item_emb_NxD=items, arrays=arrays, batch_size=args.eval_batch
  )
  t = time.perf_counter()
  res = run()  # warm-up: compiles the ranking step for this catalogue size
  first = time.perf_counter() - t
  times, others = [], []
  for _ in range(args.repeats):
    with peak_flops.CpuShare() as share:
      t = time.perf_counter()
      res = run()
      times.append(time.perf_counter() - t)
    others.append(share.other_cores)
  med = statistics.median(times)
  return {
    "catalogue": n_items,
    "users": args.eval_users,
    "dim": args.dim,
    "batch": args.eval_batch,
    "hist_len": args.hist_len,
    "median_s": med,
    "first_call_s": first,
    "times_s": [round(x, 4) for x in times],
    "users_per_s": args.eval_users / med,
    "score_flops": 2 * args.eval_users * n_items * args.dim,
    "ndcg@10": res.means.get("ndcg@10"),
    "other_cores": None if None in others else statistics.mean(others),
  }


def format_eval(r: dict) -> str:
  others = "" if r["other_cores"] is None else f"{r['other_cores']:.2f}"
  return (
    f"eval  catalogue={r['catalogue']:>9,d} users={r['users']:,d} D={r['dim']}  "
    f"time={r['median_s']:9.3f} s  ({r['users_per_s']:,.0f} users/s, "
    f"{r['score_flops'] / r['median_s'] / 1e9:.1f} GFLOP/s of scoring; first call "
    f"{r['first_call_s']:.2f} s; others {others})"
  )


# ---- driver ----------------------------------------------------------------------------------


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument(
    "--interactions",
    default="1e4,1e5,1e6",
    help="comma list of synthetic interaction counts; 'none' skips curve (a)",
  )
  ap.add_argument(
    "--interactions-per-user",
    type=float,
    default=None,
    help="default: the config's interactions / n_users (150000 / 3000 = 50)",
  )
  ap.add_argument("--protocol", default="warm", choices=["warm", "in_domain"])
  ap.add_argument("--epochs", type=int, default=3, help="E of the E-epoch run, at least")
  ap.add_argument(
    "--min-steps",
    type=int,
    default=200,
    help="E is raised until the E-epoch run has at least this many steps",
  )
  ap.add_argument(
    "--catalogue",
    default="1e3,1e4,1e5,1e6",
    help="comma list of catalogue sizes; 'none' skips curve (b)",
  )
  ap.add_argument("--eval-users", type=int, default=2048)
  ap.add_argument("--eval-batch", type=int, default=256)
  ap.add_argument("--dim", type=int, default=64)
  ap.add_argument("--hist-len", type=int, default=50)
  ap.add_argument("--repeats", type=int, default=3, help="timed eval calls per size")
  ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
  args = ap.parse_args(argv)
  if args.epochs < 1 or args.min_steps < 2:
    ap.error("need --epochs >= 1 and --min-steps >= 2 (else both timed runs are one step)")
  if args.interactions_per_user is None:
    syn = default_config.get_config().data.synthetic
    args.interactions_per_user = syn.interactions / syn.n_users

  cache = tempfile.TemporaryDirectory(prefix="scaling_jax_cache_")
  pipeline.enable_compilation_cache(ml_collections.ConfigDict({"data": {"cache_dir": cache.name}}))
  dev = jax.devices()[0]
  print(
    f"backend={jax.default_backend()} device={dev.device_kind} jax={jax.__version__} "
    f"cpus={os.cpu_count()}",
    flush=True,
  )
  train_rows, eval_rows = [], []
  for n in parse_sizes(args.interactions):
    train_rows.append(train_point(n, args))
    print(format_train(train_rows[-1]), flush=True)
  for n in parse_sizes(args.catalogue):
    eval_rows.append(eval_point(n, args))
    print(format_eval(eval_rows[-1]), flush=True)

  slopes = {
    "train_vs_interactions": loglog_slope(
      [r["interactions"] for r in train_rows], [r["epoch_s"] for r in train_rows]
    ),
    "eval_vs_catalogue": loglog_slope(
      [r["catalogue"] for r in eval_rows], [r["median_s"] for r in eval_rows]
    ),
  }
  record = {
    "bench": "scaling",
    "backend": jax.default_backend(),
    "device": dev.device_kind,
    "jax": jax.__version__,
    "protocol": args.protocol,
    "epochs": args.epochs,
    "interactions_per_user": args.interactions_per_user,
    "train": train_rows,
    "eval": eval_rows,
    "slopes": slopes,
  }
  if args.json:
    print(json.dumps(record))
  for name, s in slopes.items():
    print(f"SLOPE {name}={s:.3f}")
  cache.cleanup()
  return record


if __name__ == "__main__":
  main()
