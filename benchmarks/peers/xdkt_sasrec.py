"""xdkt_jax SASRec on the Amazon Scientific UniSRec split: the JAX side of
benchmarks/vs_recbole.py, with the same flags as benchmarks/peers/recbole_sasrec.py.

  .venv/bin/python benchmarks/peers/xdkt_sasrec.py \
      --data-dir ../shared/data/amazon_scientific --epochs 1

Data: the project's own path (configs/amazon_scientific.py, data.load, protocols.make_split,
the given split kept).  Training is `sequential.train_sasrec` (mode id, CE over the full
catalogue) set up as RecBole's SASRec is: post-LN, gelu FFN without dropout after the
activation, dropout on the attention probabilities (= --dropout), no gradient clipping
(--act relu / --inner-dropout / --attn-dropout 0 give the project's own defaults; measured at
2 epochs they move R@10 by < 0.001, benchmarks/RESULTS.md).  It predicts every transition of a user's
training sequence in one causal pass, packs several users' windows into one row of max_len
tokens, and also predicts each user's FIRST item from a learnt BOS, which RecBole's rows never
do.  `train_transitions_with_history` (those minus the BOS ones) matches RecBole's train rows
except for users with more than 52 items: the project rebuilds each sequence from the test line,
whose history UniSRec capped at 50, so their oldest items are gone (full data: 34,058 vs 34,101).
The shipped split keeps repeat purchases (a test target the user also bought earlier);
make_split counts them in split.info and `repeat_targets` reports them.

Task: the project's, which also predicts each user's first item from a learnt BOS (RecBole's
rows never do); `--no-first-item-loss` gives those transitions no loss, so xdkt trains exactly
RecBole's transitions.  Batch: --batch counts trained transitions, as RecBole's rows do; one
packed row holds `transitions_per_row` of them (measured on the packed data; those with a
history only under --no-first-item-loss), so the run uses `batch_rows` = round(batch /
transitions_per_row) rows per step.  The Batcher drops the last
partial batch of an epoch, so `train_examples` (transitions trained per epoch, the throughput
numerator) is steps_per_epoch x batch_rows x transitions_per_row.

Timing (wall clock, seconds):
  first_step_s       the first train step: trace + XLA compile + one step (blocked on)
  train_s_per_epoch  steady state: (end of training - end of step 1) / (steps - 1) x steps per
                     epoch, i.e. compile excluded.  With a single step in the whole run
                     (tiny smoke data) nothing is left to measure, so it falls back to the
                     whole loop, compile included, and says so (`per_epoch_includes_compile`)
  train_total_s      the whole train_sasrec call: windows, packing, init, compile, all steps
  eval_first_s       the first full TEST evaluation (compiles the scorer and ranking step)
  eval_s             a second, identical pass: the steady-state time
Evaluation is `xdkt_jax.evaluate.evaluate` with exclude="history" (the project's protocol;
RecBole's sequential full ranking keeps history items rankable; --exclude none matches it).
Its batch is xdkt's own: at most --xdkt-eval-batch rows (default 256, the project's
recommend.eval_batch_size), sized to the data so the fixed-shape padding stays under 8 rows a
batch.  The evaluator batches users in history-length order and the scorer runs each batch at
the power-of-two width of its longest history and computes the last block at the last token
only (exact: tests/test_sasrec.py), so a narrow batch is cheap; on this split the median
history is 5 items.  Measured (1 epoch, 2 cores): 2,816 rows 3.97 s, 1,024 2.63 s, 512 1.89 s,
256 1.37 s.  RecBole keeps its own --eval-batch (4096, its default).

Stdout ends with ONE JSON line, {"impl": "xdkt", "train_s_per_epoch", "train_examples",
"eval_s", "recall@10", "ndcg@10", "epochs", ...}; logs go to stderr.
"""

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import amazon_scientific, common  # noqa: E402
from recbole_sasrec import DATASET, add_common_args, prepare_data  # noqa: E402  (stdlib only)
from xdkt_jax import evaluate as evaluate_lib  # noqa: E402
from xdkt_jax.data import inputs, load, protocols, splits  # noqa: E402
from xdkt_jax.data import windows as windows_lib  # noqa: E402
from xdkt_jax.recommenders import sequential  # noqa: E402
from xdkt_jax.train import steps as steps_lib  # noqa: E402


def load_split(folder: Path):
  cfg = amazon_scientific.get_config()
  with cfg.unlocked():
    cfg.data.path = str(folder)
    cfg.data.tokenize = False
  ds, _ = load.load(cfg.data, tokenize=False)
  return ds, protocols.make_split(ds, cfg)


def repeat_targets(ds, split, part: str = "test") -> int:
  """Eval examples whose target the same user also has among TRAINING items."""
  offsets, items = splits.train_sequences(ds, split, DATASET, consumer="benchmark batches")
  es = split.eval[DATASET][part]
  return sum(int(t in items[offsets[u] : offsets[u + 1]]) for u, t in zip(es.user, es.target))


def packing_stats(ds, split, max_len: int, pack: bool = True) -> dict:
  """The packed training rows train_sasrec will build (same functions, same arguments), to
  size the batch in rows from a batch in transitions."""
  n_items = ds.domains[DATASET].n_items
  offsets, items = splits.train_sequences(ds, split, DATASET, consumer="benchmark batches")
  windows = windows_lib.training_windows(offsets, items, n_items=n_items, max_len=max_len)
  packed = windows_lib.pack_windows(windows, max_len=max_len) if pack else windows
  transitions = int(windows["mask"].astype(np.int64).sum())
  # A window whose first input is BOS predicts the user's first item from nothing.
  bos = int(((windows["inputs"][:, 0] == n_items) & (windows["mask"][:, 0] == 1)).sum())
  rows = len(packed["inputs"])
  return {
    "transitions": transitions,
    "bos_transitions": bos,
    "windows": len(windows["inputs"]),
    "rows": rows,
    "per_row": transitions / rows,
    "per_row_with_history": (transitions - bos) / rows,
  }


@contextlib.contextmanager
def first_step_clock():
  """Times train_sasrec's first step apart from the rest: it traces and compiles.  Wraps the
  step that steps.make_train_step returns (train_sasrec looks it up on the module at call
  time); only the first call is blocked on, so the steady-state pipelining is untouched."""
  marks = {}
  original = steps_lib.make_train_step

  def make(*args, **kwargs):
    step = original(*args, **kwargs)

    def timed(*a, **kw):
      if "first_done" in marks:
        return step(*a, **kw)
      marks["first_start"] = time.perf_counter()
      out = jax.block_until_ready(step(*a, **kw))
      marks["first_done"] = time.perf_counter()
      return out

    return timed

  steps_lib.make_train_step = make
  try:
    yield marks
  finally:
    steps_lib.make_train_step = original


def eval_batch_size(n: int, cap: int) -> int:
  """As many batches as a cap-sized batcher needs, each the smallest multiple of 8 that
  covers n: evaluate() pads the last batch to full shape, so this wastes < 8 rows a batch."""
  n_batches = max(1, math.ceil(n / cap))
  return max(8, math.ceil(n / n_batches / 8) * 8)


def train(args, ds, split, stats) -> tuple:
  # Transitions that carry loss per packed row: without first-item loss (RecBole's task) the
  # BOS transitions train nothing, so they do not count toward the batch or the throughput.
  per_row = stats["per_row"] if args.first_item_loss else stats["per_row_with_history"]
  batch_rows = max(1, round(args.batch / per_row))
  # The run config's recommender settings, then this benchmark's peer-matched ones on top.
  cfg = dict(
    common.sequential_config().to_dict(),
    mode="id",
    hidden=args.hidden,
    layers=args.layers,
    heads=args.heads,
    mlp=args.inner,
    max_len=args.max_len,
    dropout=args.dropout,
    lr=args.lr,
    batch=batch_rows,
    epochs=args.epochs,
    norm="post",
    clip_norm=0.0,
    weight_decay=0.0,
    loss="full_softmax",
    seed=args.seed,
    first_item_loss=args.first_item_loss,
    act=args.act,
    attn_dropout=args.dropout if args.attn_dropout is None else args.attn_dropout,
    inner_dropout=args.inner_dropout,
    pack=args.pack,
  )
  with first_step_clock() as marks:
    t0 = time.perf_counter()
    model = sequential.train_sasrec(
      ds, split, target=DATASET, cfg=cfg, log_fn=lambda m: print(m, file=sys.stderr, flush=True)
    )
    t1 = time.perf_counter()
  info = model.info
  steps_per_epoch = info["steps"] // args.epochs
  bsz = info["batch"]  # train_sasrec clamps it to the rows there are
  timing = {
    "train_total_s": t1 - t0,
    "train_loop_s": info["train_seconds"],
    "first_step_s": marks["first_done"] - marks["first_start"],
  }
  if info["steps"] > 1:
    per_step = (t1 - marks["first_done"]) / (info["steps"] - 1)
    timing.update(
      train_s_per_epoch=per_step * steps_per_epoch,
      train_s_per_step=per_step,
      per_epoch_includes_compile=False,
    )
  else:
    timing.update(
      train_s_per_epoch=info["train_seconds"] / args.epochs, per_epoch_includes_compile=True
    )
  shape = {
    "batch_rows": bsz,
    "steps_per_epoch": steps_per_epoch,
    "steps": info["steps"],
    "train_examples": round(steps_per_epoch * bsz * per_row),
    "trained_transitions_per_row": per_row,
    "final_loss": info["final_loss"],
  }
  return model, {**timing, **shape}


def evaluate(args, ds, split, model) -> dict:
  arrays = inputs.eval_arrays(
    ds, split, DATASET, "test", max_len=args.max_len, exclude_history=args.exclude
  )
  n = len(arrays["target"])
  bsz = eval_batch_size(n, args.xdkt_eval_batch)
  run = lambda: evaluate_lib.evaluate(
    score_fn=model.score,
    arrays=arrays,
    n_items=ds.domains[DATASET].n_items,
    batch_size=bsz,
    ks=(10,),
  )
  times = []
  for _ in range(2):  # the first call compiles; the second is the steady state
    t = time.perf_counter()
    result = run()
    times.append(time.perf_counter() - t)
  return {
    "eval_s": times[1],
    "eval_first_s": times[0],
    "eval_batch": bsz,
    "test_examples": n,
    "recall@10": result.means["recall@10"],
    "ndcg@10": result.means["ndcg@10"],
  }


def main():
  ap = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
  ap.add_argument(
    "--no-first-item-loss",
    dest="first_item_loss",
    action="store_false",
    help="train RecBole's transitions only (no first item from BOS); measured "
    "at 2 epochs: R@10 0.0399 vs 0.0417 with it (benchmarks/RESULTS.md)",
  )
  ap.add_argument(
    "--act",
    choices=("relu", "gelu"),
    default="gelu",
    help="FFN activation (RecBole's SASRec: gelu; the project default: relu)",
  )
  ap.add_argument(
    "--attn-dropout",
    type=float,
    default=None,
    help="dropout on attention probabilities (default: --dropout, as RecBole)",
  )
  ap.add_argument(
    "--inner-dropout",
    action=argparse.BooleanOptionalAction,
    default=False,
    help="dropout after the FFN activation too (original SASRec; RecBole: no)",
  )
  ap.add_argument(
    "--pack",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="pack several users' windows into one max_len row (default); "
    "--no-pack: one window a row, so a batch spans more users",
  )
  ap.add_argument(
    "--xdkt-eval-batch",
    type=int,
    default=256,
    help="rows per evaluation batch on the xdkt side (RecBole: --eval-batch)",
  )
  ap.add_argument(
    "--exclude",
    choices=("none", "train", "all"),
    default="none",
    help="exclude_history rule (xdkt_jax/conventions.py); 'none' ranks as "
    "RecBole does for sequential models",
  )
  args = ap.parse_args()
  with tempfile.TemporaryDirectory(prefix="xdkt_sasrec_") as work:
    folder = prepare_data(args.data_dir, work, args.max_rows)
    t = time.perf_counter()
    ds, split = load_split(folder)
    load_s = time.perf_counter() - t
  stats = packing_stats(ds, split, args.max_len, pack=args.pack)
  model, tr = train(args, ds, split, stats)
  ev = evaluate(args, ds, split, model)
  out = {
    "impl": "xdkt",
    "train_s_per_epoch": tr.pop("train_s_per_epoch"),
    "train_examples": tr.pop("train_examples"),
    "eval_s": ev.pop("eval_s"),
    "recall@10": ev.pop("recall@10"),
    "ndcg@10": ev.pop("ndcg@10"),
    "epochs": args.epochs,
    **tr,
    **ev,
    "train_transitions": stats["transitions"],
    "train_transitions_with_history": stats["transitions"] - stats["bos_transitions"],
    "packed_rows": stats["rows"],
    "windows": stats["windows"],
    "transitions_per_row": stats["per_row"],
    "batch_transitions": args.batch,
    "n_items": ds.domains[DATASET].n_items,
    "load_s": load_s,
    "repeat_targets": repeat_targets(ds, split),
    "backend": jax.default_backend(),
    "devices": jax.device_count(),
    "max_rows": args.max_rows,
    "exclude_history": args.exclude,
  }
  print(json.dumps(out), flush=True)


if __name__ == "__main__":
  main()
