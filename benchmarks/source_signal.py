"""How much does a user's SOURCE-domain history say about their next TARGET item?  A diagnosis
of transfer, independent of any neural model: if the plain co-consumption statistics between
the domains cannot rank the target item above popularity, no transfer method has much to
carry over.

On the split of a config (its own protocol, k, valid/test users; training rows only):

  C[a, t]   = training users who consumed source item a AND target item t
  cooc(u)   = sum over u's training source items a of C[a, :] / sqrt(deg(a) deg(t))
              (item-based CF across the domains, cosine; deg = training users per item)
  raw(u)    = sum over u's source items a of C[a, :] (unnormalised: what the co-consumers
              of u's source items consume most, i.e. popularity among them)

and it ranks the full target catalogue (the project's evaluator, seen items excluded, ties
pessimistic) four ways: `pop`, `cooc` and `raw` (source co-consumption alone; users whose
source items co-occur with no target item get all-zero scores and rank their target last), and
`cooc+pop` (cosine co-consumption, ties broken by popularity).  It also prints how often the test
target co-occurs with any of the user's source items at all (the signal's reach), and, where
the split gives the test users a target history, whether the source adds to item-kNN over that
history (blend weight chosen on the valid users).

  .venv/bin/python benchmarks/source_signal.py --config=configs/amazon_art_office.py \
      --protocol=cold_start --k=0 [--part=test] [--target=Office] [--set data.max_users=6000]

Prints one line per measurement; results go to benchmarks/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xdkt_jax import conventions  # noqa: E402
from xdkt_jax import evaluate as evaluate_lib  # noqa: E402
from xdkt_jax import main as cli  # noqa: E402
from xdkt_jax import significance  # noqa: E402
from xdkt_jax.data import inputs, load, protocols, splits  # noqa: E402
from xdkt_jax.recommenders.baselines import common as baseline_common  # noqa: E402


def load_config(path: str, protocol: str, k: int, sets: list[str]):
  """The config as `xdkt run` would read it: the CLI's parser, `--set a.b=v` as
  `--config.a.b=v` (typed and checked by ml_collections)."""
  argv = ["xdkt", "stats", f"--config={path}"] + [f"--config.{x}" for x in sets]
  argv += [f"--config.protocol={protocol}"] if protocol else []
  argv += [f"--config.protocol_k={k}"] if k >= 0 else []
  return cli.parse(argv)[1]


def measure(ds, split, target: str, part: str, log=print, *, exclude_history: str) -> dict:
  n_t = ds.domains[target].n_items
  # binary user × item, training rows
  td = baseline_common.train_data(ds, split, target, consumer="source_signal")
  S, T = td.source, td.target
  if S.shape[1] == 0:
    raise ValueError(f"the split has no source domains for {target!r}")
  t0 = time.perf_counter()
  C = (S.T @ T).tocsr()  # [n_s, n_t] co-consumption
  deg_s = np.asarray(S.sum(0)).ravel()
  deg_t = np.asarray(T.sum(0)).ravel()
  Cn = (
    sp.diags(1.0 / np.sqrt(np.maximum(deg_s, 1)))
    @ C
    @ sp.diags(1.0 / np.sqrt(np.maximum(deg_t, 1)))
  )
  Cn = Cn.tocsr()
  arrays = dict(inputs.eval_arrays(ds, split, target, part, exclude_history=exclude_history))
  users = arrays["user"]
  src = S[users]  # [n_eval, n_s]
  cooc = np.asarray((src @ Cn).todense(), np.float32)  # [n_eval, n_t]
  raw = np.asarray((src @ C).todense(), np.float32)
  log(
    f"co-consumption: {C.nnz} (source item, target item) pairs from "
    f"{int((np.diff(S.indptr) > 0).sum())} users with source history; "
    f"{time.perf_counter() - t0:.1f} s"
  )
  arrays["row"] = np.arange(len(users), dtype=np.int32)  # batch row -> eval row
  pop = deg_t.astype(np.float32)
  pop_tb = pop / (pop.max() + 1.0)  # < 1: a pure tie-breaker
  top = cooc.max(1, keepdims=True)
  unit = cooc / np.where(top > 0, top, 1.0)

  def scorer(kind):
    def score(batch):
      rows = batch["row"]
      if kind == "pop":
        return np.broadcast_to(pop, (len(rows), n_t))
      if kind == "cooc":
        return cooc[rows]
      if kind == "raw":
        return raw[rows]
      # co-consumption first (those items score >= 2, the rest < 1), popularity breaks ties
      return np.where(cooc[rows] > 0, 2.0 + 2.0 * unit[rows], 0.0) + pop_tb

    return score

  res, pvals = {}, {}
  for kind in ("pop", "cooc", "raw", "cooc+pop"):
    r = evaluate_lib.evaluate(
      score_fn=scorer(kind), arrays=arrays, n_items=n_t, batch_size=256, ks=[10, 50]
    )
    res[kind] = r
    if kind != "pop":
      pvals[kind] = significance.paired_user_test(
        r.per_example["ndcg@10"] - res["pop"].per_example["ndcg@10"], "wilcoxon"
      )
    p = f"  p (ndcg@10 vs pop, paired Wilcoxon) {pvals[kind]:.2g}" if kind in pvals else ""
    log(
      f"{kind:9s} ndcg@10 {r.means['ndcg@10']:.4f}  recall@10 {r.means['recall@10']:.4f}  "
      f"recall@50 {r.means['recall@50']:.4f}{p}"
    )
  blend = (
    blend_check(ds, split, target, S, C, part, log, exclude_history=exclude_history)
    if arrays["hist_mask"].any()
    else None
  )
  tgt = arrays["target"]
  has_src = np.diff(S.indptr)[users] > 0
  reach = np.array([cooc[j, t] > 0 for j, t in enumerate(tgt)])
  log(
    f"{part} users: {len(users)}; with source history {has_src.mean():.3f}; target "
    f"co-occurs with one of their source items: {reach.mean():.3f}"
  )
  return {
    "reach": float(reach.mean()),
    "has_source": float(has_src.mean()),
    "p_vs_pop": pvals,
    "blend": blend,
    **{k: r.means for k, r in res.items()},
  }


def _unit(x: np.ndarray) -> np.ndarray:
  """Each row scaled to max 1 (all-zero rows stay 0)."""
  m = x.max(1, keepdims=True)
  return x / np.where(m > 0, m, 1.0)


def blend_check(
  ds, split, target: str, S, C, part: str, log=print, *, exclude_history: str
) -> dict:
  """Does the source add anything to a model of the TARGET history?  item-kNN over the
  user's target history (the `itemknn` baseline, the best non-sequential model on Art →
  Office warm) blended with the `raw` source co-consumption, each scaled per user to max 1:
  score = knn + λ·raw.  λ is picked on the VALID users, then the test users are scored."""
  from xdkt_jax.recommenders import baselines  # pylint: disable=import-outside-toplevel

  knn = baselines.fit("itemknn", ds, split, target=target)
  n_t = ds.domains[target].n_items
  lams = (0.0, 0.03, 0.1, 0.3, 1.0)

  def prepare(p: str):
    arrays = dict(inputs.eval_arrays(ds, split, target, p, exclude_history=exclude_history))
    arrays["row"] = np.arange(len(arrays["user"]), dtype=np.int32)
    return arrays, _unit(np.asarray((S[arrays["user"]] @ C).todense(), np.float32))

  prepared = {p: prepare(p) for p in {"valid", part}}

  def run(p: str, lam: float):
    arrays, src = prepared[p]

    def score(batch):
      out = _unit(np.asarray(knn.score(batch), np.float32))
      return out + lam * src[batch["row"]] * batch["example_mask"][:, None]

    return evaluate_lib.evaluate(
      score_fn=score, arrays=arrays, n_items=n_t, batch_size=256, ks=[10]
    )

  valid = {lam: run("valid", lam).means["ndcg@10"] for lam in lams}
  best = max(lams, key=lambda lam: (valid[lam], -lam))  # ties: the smaller λ
  base, blend = run(part, 0.0), run(part, best)
  p = significance.paired_user_test(
    blend.per_example["ndcg@10"] - base.per_example["ndcg@10"], "wilcoxon"
  )
  log(
    "itemknn + λ·source, valid ndcg@10 by λ: "
    + ", ".join(f"{lam:g}: {v:.4f}" for lam, v in valid.items())
    + f"; picked λ = {best:g}"
  )
  log(
    f"{part}: itemknn ndcg@10 {base.means['ndcg@10']:.4f} recall@10 "
    f"{base.means['recall@10']:.4f}; + {best:g}·source ndcg@10 {blend.means['ndcg@10']:.4f} "
    f"recall@10 {blend.means['recall@10']:.4f} (p {p:.2g})"
  )
  return {"lambda": best, "valid": valid, "itemknn": base.means, "blended": blend.means, "p": p}


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--config", required=True)
  ap.add_argument("--protocol", default="")
  ap.add_argument("--k", type=int, default=-1)
  ap.add_argument("--part", default="test", choices=("valid", "test"))
  ap.add_argument("--target", default="", help="multi_domain: the domain ranked")
  ap.add_argument("--set", action="append", default=[], help="config override key=value")
  a = ap.parse_args(argv)
  c = load_config(a.config, a.protocol, a.k, a.set)
  t0 = time.perf_counter()
  ds, _ = load.load(c.data, tokenize=False)
  split = protocols.make_split(ds, c)
  target = a.target or split.targets[0]
  if len(split.targets) > 1 or target not in split.targets:
    split = splits.target_view(split, target)
  print(
    f"{a.config} protocol={split.protocol} k={split.k} target={target} "
    f"sources={split.sources} (data + split {time.perf_counter() - t0:.1f} s)",
    flush=True,
  )
  rule = conventions.rule_for(c, ds, target)
  print(rule.describe(), flush=True)
  return measure(ds, split, target, a.part, exclude_history=rule.exclude_history)


if __name__ == "__main__":
  main()
