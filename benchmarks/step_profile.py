"""Where the recommender's train step spends its time, kernel by kernel.

Builds the SASRec train step exactly as benchmarks/roofline.py does (id mode, packed rows),
runs it under jax.profiler with a Perfetto trace, maps every executed kernel back to the jaxpr
op that produced it (the `op_name` metadata of the optimized HLO) and sums the kernel time per
part of the model:

  projections   q / k / v / out einsums of the attention      attention    scores, softmax
  ffn           mlp_in / mlp_out                             layer_norm   every LayerNorm
  dropout       random bits and masks                        loss_head    logits, L_f, accuracy
  embed         item / position gathers                      optimizer    AdamW, clipping
  other         masks, residual adds, input copies

forward and backward together (a jaxpr op under `transpose(...)` is the backward).  Kernel
times overlap when XLA:CPU runs independent kernels at once, so the sum can exceed the wall
time per step; both are printed.

  .venv/bin/python benchmarks/step_profile.py                    # the default's shape
  .venv/bin/python benchmarks/step_profile.py --batch 48 --hidden 300 --mlp 256 --n-items 4385
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peak_flops  # noqa: E402
import roofline  # noqa: E402
from xdkt_jax.train import mesh as mesh_lib  # noqa: E402

# First match wins: (part, regex over the jaxpr op path).
PARTS = (
  ("dropout", r"Dropout|in_drop|random_bits|threefry|/while"),
  ("layer_norm", r"_ln/|in_ln"),
  ("projections", r"/attn/(bld,dhk|blhk,hkd)"),
  ("attention", r"/attn/"),
  ("ffn", r"/mlp_(in|out)/|relu|gelu"),
  ("embed", r"SASRec\.encode/(gather|add|concatenate)|item_embedding|pos_embedding"),
  ("loss_head", r"^(jvp|transpose\(jvp)\(\)\)?/|logsumexp|log_softmax|transfer_loss"),
  # Outside value_and_grad (no jvp / transpose prefix): the AdamW update and clipping.
  ("optimizer", r"^(?!jvp\(|transpose\(|batch\[)"),
)


def part_of(op: str) -> str:
  for name, pattern in PARTS:
    if re.search(pattern, op):
      return name
  return "other"


def kernel_ops(compiled_text: str) -> dict[str, str]:
  """HLO instruction name → the jaxpr op path in its metadata."""
  out = {}
  for line in compiled_text.splitlines():
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name=\"([^\"]*)\"", line)
    if m:
      out.setdefault(m.group(1), re.sub(r"^jit\([^)]*\)/", "", m.group(2)))
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--seq", type=int, default=50)
  ap.add_argument("--hidden", type=int, default=64)
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--heads", type=int, default=2)
  ap.add_argument("--mlp", type=int, default=128)
  ap.add_argument("--n-items", dest="n_items", type=int, default=1000)
  ap.add_argument("--segments", type=int, default=8)
  ap.add_argument("--dropout", type=float, default=0.2)
  ap.add_argument("--steps", type=int, default=10)
  ap.add_argument("--top", type=int, default=12, help="also list the N costliest ops")
  a = ap.parse_args(argv)
  size = dict(
    batch=a.batch,
    seq=a.seq,
    hidden=a.hidden,
    layers=a.layers,
    heads=a.heads,
    mlp=a.mlp,
    n_items=a.n_items,
  )
  step, state, bs = roofline.build_sasrec_step(size, dropout=a.dropout)
  batch = mesh_lib.shard_batch(
    roofline.packed_rows(0, batch=a.batch, seq=a.seq, n_items=a.n_items, segments=a.segments), bs
  )
  rng = jax.random.PRNGKey(1)
  ops = kernel_ops(step.jitted.lower(state, batch, rng).compile().as_text())
  for _ in range(3):
    state, m = step(state, batch, rng)
    jax.block_until_ready(m)
  with tempfile.TemporaryDirectory() as d:
    with peak_flops.CpuShare() as share:
      t0 = time.perf_counter()
      with jax.profiler.trace(d, create_perfetto_trace=True):
        for _ in range(a.steps):
          state, m = step(state, batch, rng)
          jax.block_until_ready(m)
      wall = (time.perf_counter() - t0) / a.steps
    path = sorted(glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True))[-1]
    with gzip.open(path) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  by_part, by_op = collections.Counter(), collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("name") in ops:
      op = ops[e["name"]]
      by_part[part_of(op)] += e.get("dur", 0) / 1e3 / a.steps
      by_op[op] += e.get("dur", 0) / 1e3 / a.steps
  total = sum(by_part.values())
  print(
    f"backend={jax.default_backend()} jax={jax.__version__} "
    f"B={a.batch} L={a.seq} D={a.hidden} layers={a.layers} F={a.mlp} N={a.n_items} "
    f"dropout={a.dropout}"
  )
  print(
    f"wall {wall * 1e3:.1f} ms/step (under the profiler), kernels {total:.1f} ms/step, "
    f"others {share.other_cores if share.other_cores is not None else float('nan'):.2f} "
    f"cores busy"
  )
  for name, ms in by_part.most_common():
    print(f"  {name:12s} {ms:7.2f} ms  {100 * ms / total:5.1f}%")
  if a.top:
    print(f"costliest {a.top} ops (fwd + bwd each):")
    for op, ms in by_op.most_common(a.top):
      print(f"  {ms:7.2f} ms  {op[:100]}")
  return by_part


if __name__ == "__main__":
  main()
