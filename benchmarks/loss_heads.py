"""The cross-entropy heads of the train steps: xdkt_jax.losses against the textbook form.

Times value_and_grad (with the accuracy metric, as a train step computes it) of
  transfer   L_f over the full catalogue: [M, D] users · [N, D] items → logits [M, N]
  lm         L_p / L_t / L_k over V classes: logits [M, V] given
in two formulations:
  textbook   log_softmax, then take_along_axis of the target, accuracy by argmax
  losses     what xdkt_jax.losses ships (logsumexp − target logit; the target logit of L_f
             from the gathered item row; accuracy from the row maximum)
and checks that both give the same loss and gradients.  Prints one line per head plus the
cores other processes kept busy (a shared CPU makes timings meaningless unless that is ~0).

  .venv/bin/python benchmarks/loss_heads.py                  # the default recommender's shape
  .venv/bin/python benchmarks/loss_heads.py --m 512 --v 30522
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import encoder as encoder_bench  # noqa: E402  (benchmarks/encoder.py: timed_calls)
from xdkt_jax import losses  # noqa: E402


def textbook_lm(logits, y, w):
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), y[:, None], -1)[:, 0]
  acc = jnp.sum((jnp.argmax(logits, -1) == y) * w) / jnp.sum(w)
  return jnp.sum(nll * w) / jnp.sum(w), acc


def textbook_transfer(u, e, y, w):
  return textbook_lm(u @ e.T, y, w)


def shipped_transfer(u, e, y, w):
  loss, m = losses.transfer_loss(user_repr_BxD=u, item_emb_NxD=e, target_B=y, weights_B=w)
  return loss, m["accuracy"]


def shipped_lm(logits, y, w):
  loss, m = losses.lm_loss(logits_BxLxV=logits[None], targets_BxL=y[None], weights_BxL=w[None])
  return loss, m["accuracy"]


def run(name, fns, args_, argnums, steps):
  out = {}
  for label, fn in fns:
    vg = jax.jit(jax.value_and_grad(fn, argnums=argnums, has_aux=True))
    _, med, _, extra = encoder_bench.timed_calls(lambda i: vg(*args_), 1, steps=steps, warmup=3)
    out[label] = (med, vg(*args_), extra.get("other_cores"))
  (la, aa), ga = out["textbook"][1]
  (lb, ab), gb = out["losses"][1]
  gdiff = max(
    float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb))
  )
  t0, t1 = out["textbook"][0], out["losses"][0]
  busy = [o for _, _, o in out.values()]
  others = float("nan") if None in busy else max(busy)
  print(
    f"{name:9s} textbook {t0 * 1e3:8.2f} ms  losses {t1 * 1e3:8.2f} ms  speed-up "
    f"{t0 / t1:5.2f}x  |loss diff| {abs(float(la - lb)):.1e}  |grad diff| {gdiff:.1e}  "
    f"accuracy {float(aa):.4f} / {float(ab):.4f}  others {others:.2f}"
  )


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--m", type=int, default=3200, help="rows: predicted positions per step")
  ap.add_argument("--d", type=int, default=64, help="D of the transfer head")
  ap.add_argument("--n", type=int, default=1000, help="N catalogue items (transfer head)")
  ap.add_argument("--v", type=int, default=30522, help="V classes (lm head; 0 skips it)")
  ap.add_argument("--lm-m", type=int, default=512, help="rows of the lm head")
  ap.add_argument("--steps", type=int, default=20)
  a = ap.parse_args(argv)
  rng = np.random.default_rng(0)
  print(f"backend={jax.default_backend()} jax={jax.__version__}")
  u = jnp.asarray(rng.normal(size=(a.m, a.d)), jnp.float32)
  e = jnp.asarray(rng.normal(size=(a.n, a.d)) * 0.1, jnp.float32)
  y = jnp.asarray(rng.integers(0, a.n, a.m), jnp.int32)
  w = jnp.asarray(rng.random(a.m) < 0.9, jnp.float32)
  print(f"transfer: M={a.m} D={a.d} N={a.n}")
  run(
    "transfer",
    [("textbook", textbook_transfer), ("losses", shipped_transfer)],
    (u, e, y, w),
    (0, 1),
    a.steps,
  )
  if a.v:
    logits = jnp.asarray(rng.normal(size=(a.lm_m, a.v)), jnp.float32)
    yl = jnp.asarray(rng.integers(0, a.v, a.lm_m), jnp.int32)
    wl = jnp.asarray(rng.random(a.lm_m) < 0.9, jnp.float32)
    print(f"lm: M={a.lm_m} V={a.v}")
    run("lm", [("textbook", textbook_lm), ("losses", shipped_lm)], (logits, yl, wl), 0, a.steps)


if __name__ == "__main__":
  main()
