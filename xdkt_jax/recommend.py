"""Recommend + evaluate: every method of `config.recommend.methods` on ONE split, once per seed,
scored by ONE evaluator over the full target catalogue.

Methods (the keys of results.json):

  xdkt           the full method: SASRec over the target sequence, items = ID ⊕ adapted item
                 knowledge (L_k stage), the user's source knowledge fused in, alignment term
                 (models/xdkt.py), trained with L_f + λ·L_align
  target_only    the control: the SAME recommender and item knowledge, trained on target data
                 only — no source interactions, no user knowledge, no alignment.  In a
                 protocol without source domains (in_domain) xdkt is the knowledge-fused
                 recommender and target_only the same with PRE-TRAINED (not adapted) W_p
                 vectors: the transfer measured is then the LM adaptation's alone
  sasrec         SASRec with ID embeddings only
  unisrec_style  frozen PRE-TRAINED text encoder (W_p, not adapted) + MoE whitening adaptor +
                 SASRec, text-only items (UniSRec's inductive setting)
  pop itemknn userknn bpr_mf text_knn hybrid emcdr cmf
                 recommenders/baselines (TF-IDF text for text_knn / hybrid)

Seeds: a method with training randomness runs with seeds 0..S−1.  pop, itemknn, userknn,
text_knn and hybrid are deterministic functions of the split, so ONE run is their result for
every seed (recorded as `deterministic`); their CI is then a bootstrap over test users.

Neighbourhood fusion (`recommend.neighbour_blend`, off by default): a sequential method's score
becomes z(its score) + w · z(item-kNN score), z per user row over the catalogue, the item-kNN
of this split's training rows (`itemknn`'s own similarity).  w is picked per run on the VALID
users from the listed weights (0 always among them, so the data can turn it off) by
`sequential.select_metric`.  Every sequential method gets it alike, so the transfer gain still
compares xdkt with the same recommender without transfer.

Ranking: every method of a run is evaluated under ONE exclusion rule (`recommend.
exclude_history` under `eval.convention`, conventions.py), the valid users of early stopping
and fusion included; the rule is written in each summary.json and in results.json.

Every (method, seed) leaves `<dir>/<method>/seed_<s>/` with per_user.npz (per-example
metrics), summary.json, MANIFEST.json and DONE (fingerprint of its inputs; artifacts.py), so a
rerun skips finished ones whose files still verify.
A fused run also evaluates its model without fusion (per_user_unfused.npz, the summary's
`unfused`): the same trained parameters, so the two rows isolate what fusion adds.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from xdkt_jax import artifacts, conventions, stopping
from xdkt_jax import evaluate as evaluate_lib
from xdkt_jax.data import inputs, leakage
from xdkt_jax.recommenders import baselines, neighbour_fusion, scoring, sequential
from xdkt_jax.report import UNFUSED  # the row of a fused method's model without fusion

SEQUENTIAL = ("xdkt", "target_only", "sasrec", "unisrec_style")
DETERMINISTIC = ("pop", "itemknn", "userknn", "text_knn", "hybrid")
METHODS = SEQUENTIAL + tuple(b for b in baselines.BASELINES if b not in SEQUENTIAL)


@dataclasses.dataclass
class Context:
  """What the methods may read: the split's training data and the extracted knowledge."""

  ds: Any
  split: Any
  target: str
  config: Any
  item_knowledge: dict[str, np.ndarray]  # domain → [n_items, T] (L_k stage)
  pretrained: dict[str, np.ndarray]  # domain → [n_items, D] W_p pooled vectors
  log: Any = print
  rule: conventions.EvalRule = dataclasses.field(init=False)
  # [n_users] bool: has training rows in a source domain (the overlap groups of the report).
  user_has: np.ndarray = dataclasses.field(init=False)
  _itemknn: Any = dataclasses.field(default=None, init=False, repr=False)
  _lock: Any = dataclasses.field(default_factory=threading.Lock, init=False, repr=False)

  def __post_init__(self):
    self.rule = conventions.rule_for(self.config, self.ds, self.target)
    offsets, _ = inputs.source_sequences(self.ds, self.split)
    self.user_has = np.diff(offsets) > 0

  def eval_arrays(self, part: str) -> dict:
    """The `part` examples as the evaluator sees them, under this run's exclusion rule."""
    return inputs.eval_arrays(
      self.ds, self.split, self.target, part, exclude_history=self.rule.exclude_history
    )

  def itemknn(self):
    """The split's item-kNN (deterministic), fitted once per context (runs may be threads)."""
    with self._lock:
      if self._itemknn is None:
        self._itemknn = baselines.fit("itemknn", self.ds, self.split, target=self.target)
      return self._itemknn

  def source_item_knowledge(self) -> np.ndarray:
    srcs = [s for s in self.split.sources if s in self.item_knowledge]
    if not srcs:
      return np.zeros((0, self.item_knowledge[self.target].shape[1]), np.float32)
    return np.concatenate([self.item_knowledge[s] for s in srcs])


def parse_methods(spec: str) -> list[str]:
  names = [m.strip() for m in str(spec).split(",") if m.strip()]
  unknown = [m for m in names if m not in METHODS]
  if unknown:
    raise ValueError(
      f"config.recommend.methods: unknown method(s) {unknown}; known: {', '.join(METHODS)}"
    )
  if len(set(names)) != len(names):
    raise ValueError(f"config.recommend.methods lists a method twice: {spec!r}")
  return names


def check_config(config) -> None:
  """The recommend settings that would fail late or mislead: checked before any stage runs."""
  rc = config.recommend
  parse_methods(rc.methods)
  ev = config.get("eval", None)
  conventions.resolve(
    ev.get("convention", "xdkt") if ev is not None else "xdkt",
    rc.get("exclude_history", "auto"),
    target_has_given_split=False,
  )
  # Settings that pick something per run on the VALID split: reporting on it would select
  # the numbers on themselves, and their metric must parse before hours of training.
  on_valid = [
    (key, what)
    for key, what, on in (
      (
        "neighbour_blend",
        "weight",
        bool(neighbour_fusion.neighbour_weights(rc.get("neighbour_blend", ""))),
      ),
      ("sequential.select_epoch", "epoch", bool(rc.sequential.get("select_epoch", False))),
    )
    if on
  ]
  tuning = bool(rc.get("tuning", False))
  if tuning and str(rc.eval_part) != "valid":
    raise ValueError(
      "config.recommend.tuning=True scores the valid split only (launch/tune.py); "
      "it needs eval_part='valid'"
    )
  for key, what in on_valid:
    if str(rc.eval_part) != "test" and not tuning:
      raise ValueError(
        f"config.recommend.{key} picks each run's {what} on the valid split, "
        f"so it needs eval_part='test' (with 'valid' the numbers would be "
        f"selected on themselves; launch/tune.py marks a tuning run)"
      )
  if on_valid:
    evaluate_lib.selection_metric(
      rc.sequential.get("select_metric", "ndcg@10"), "config.recommend.sequential"
    )


def seeds_for(name: str, n_seeds: int) -> list[int]:
  return [0] if name in DETERMINISTIC else list(range(n_seeds))


def fit(name: str, ctx: Context, seed: int):
  """Trains method `name` with `seed`; returns a model with score(batch) -> [B, N]."""
  rc = ctx.config.recommend
  seq = dict(rc.sequential.to_dict(), seed=seed, exclude_history=ctx.rule.exclude_history)
  kw = dict(target=ctx.target, log_fn=ctx.log)
  if name == "sasrec":
    return sequential.train_sasrec(ctx.ds, ctx.split, cfg=dict(seq, mode="id"), **kw)
  if name == "target_only":
    # Without source domains (in_domain: transfer reaches the target only through the LM
    # adapted on other domains' text) the control drops that: pre-trained W_p vectors.
    vectors = ctx.item_knowledge if ctx.split.sources else ctx.pretrained
    return sequential.train_sasrec(
      ctx.ds, ctx.split, cfg=dict(seq, mode="fused"), item_vectors=vectors, **kw
    )
  if name == "unisrec_style":
    return sequential.train_sasrec(
      ctx.ds,
      ctx.split,
      cfg=dict(seq, mode="text", adaptor="moe"),
      item_vectors=ctx.pretrained,
      **kw,
    )
  if name == "xdkt":
    if not ctx.split.sources:  # no source users: the knowledge-fused recommender alone
      return sequential.train_sasrec(
        ctx.ds, ctx.split, cfg=dict(seq, mode="fused"), item_vectors=ctx.item_knowledge, **kw
      )
    return sequential.train_sasrec(
      ctx.ds,
      ctx.split,
      cfg=dict(seq, mode="fused", **rc.xdkt.to_dict()),
      item_vectors=ctx.item_knowledge,
      transfer=True,
      source_vectors=ctx.item_knowledge,
      **kw,
    )
  cfg = {} if name in DETERMINISTIC else {"seed": seed}
  return baselines.fit(name, ctx.ds, ctx.split, target=ctx.target, cfg=cfg)


def train_losses(model) -> list[float]:
  if isinstance(model, (scoring.SASRecModel, neighbour_fusion.NeighbourFused)):
    return [float(x) for x in model.losses]
  return []


def item_popularity(ds, split, target: str) -> np.ndarray:
  inter = ds.domains[target].inter
  rows = leakage.training_rows(ds, split, target, consumer="popularity counts")
  return np.bincount(inter.item[rows], minlength=ds.domains[target].n_items).astype(np.float32)


def eval_groups(ctx: Context, arrays: dict) -> dict[str, np.ndarray]:
  g = dict(evaluate_lib.history_length_groups(arrays["hist_mask"]))
  if ctx.split.sources:
    g.update(evaluate_lib.overlap_groups(user=arrays["user"], has_source_U=ctx.user_has))
  return g


def run_one(
  name: str,
  seed: int,
  ctx: Context,
  out: Path,
  arrays: dict,
  *,
  fp: str,
  popularity: np.ndarray,
  groups: dict,
) -> dict:
  """Fit + evaluate one (method, seed); reuses a finished one with the same fingerprint."""
  out.mkdir(parents=True, exist_ok=True)
  if artifacts.is_done(out, fp, ctx.log, f"{name}[seed {seed}]"):
    return json.loads((out / "summary.json").read_text())
  rc = ctx.config.recommend
  t0 = time.time()
  trained = model = fit(name, ctx, seed)
  weights = neighbour_fusion.neighbour_weights(rc.get("neighbour_blend", ""))
  if name in SEQUENTIAL and weights:
    model = neighbour_fusion.fuse_neighbours(
      trained, ctx, weights, metric=str(rc.sequential.select_metric)
    )
  fit_s = time.time() - t0
  t1 = time.time()
  evaluate = lambda m: evaluate_lib.evaluate(
    score_fn=m.score,
    arrays=arrays,
    n_items=ctx.ds.domains[ctx.target].n_items,
    batch_size=int(rc.eval_batch_size),
    item_vectors=ctx.item_knowledge[ctx.target],
    item_popularity=popularity,
    ks=[int(k) for k in str(rc.ks).split(",")],
    groups=groups,
  )
  res = evaluate(model)
  eval_s = time.time() - t1
  np.savez(out / "per_user.npz", user=arrays["user"], **res.per_example)
  summary = {
    "method": name,
    "seed": seed,
    "deterministic": name in DETERMINISTIC,
    **res.to_dict(),
    "fit_seconds": fit_s,
    "eval_seconds": eval_s,
    "eval_rule": ctx.rule.to_dict(),
    "per_user_file": f"{name}/seed_{seed}/per_user.npz",
    "train_losses": train_losses(model),
    "info": getattr(model, "info", {}),
  }
  if model is not trained:
    plain = evaluate(trained)
    np.savez(out / "per_user_unfused.npz", user=arrays["user"], **plain.per_example)
    summary["unfused"] = {
      **plain.to_dict(),
      "per_user_file": f"{name}/seed_{seed}/per_user_unfused.npz",
    }
  (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
  if name == "xdkt" and seed == 0 and ctx.split.sources:
    save_alignment_views(trained, ctx, out)
  artifacts.finish(out, fp)
  ctx.log(
    f"{name}[seed {seed}]: ndcg@10 {res.means.get('ndcg@10', float('nan')):.4f} "
    f"recall@10 {res.means.get('recall@10', float('nan')):.4f} "
    f"(fit {fit_s:.1f} s, eval {eval_s:.1f} s)"
  )
  return summary


def save_alignment_views(model, ctx: Context, out: Path, n: int = 500) -> None:
  """Source and target item knowledge before (raw k) and after the shared adaptor A(k), for the
  report's projection plot; a fixed sample of at most n items per domain."""
  import jax  # pylint: disable=import-outside-toplevel
  from xdkt_jax.models import xdkt as xdkt_lib  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  src, tgt = ctx.source_item_knowledge(), ctx.item_knowledge[ctx.target]
  pick = lambda x: x[np.sort(rng.choice(len(x), min(n, len(x)), replace=False))]
  src, tgt = pick(src), pick(tgt)
  variables = {"params": model.params, **(model.consts or {})}
  adapt = jax.jit(lambda v, x: model.module.apply(v, x, method=xdkt_lib.XDKTRec.adapt))
  np.savez(
    out / "alignment_views.npz",
    source_before=src,
    target_before=tgt,
    source_after=np.asarray(adapt(variables, src)),
    target_after=np.asarray(adapt(variables, tgt)),
  )


def _run_jobs(run, jobs: list, workers: int) -> list[dict]:
  if workers > 1 and jax.device_count() == 1:
    # Independent (method, seed) runs in threads (the numbers are identical to a sequential
    # run: tests/test_run_e2e.py).  On a 2-core CPU two small loops at once gain little
    # (benchmarks/RESULTS.md), so the default is 1; hosts with more cores than one small
    # model can use gain more.  One device only: sharded steps from several threads could
    # interleave their collectives.
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      return list(pool.map(run, jobs))
  return [run(job) for job in jobs]


def run_all(ctx: Context, out_dir: Path, *, fp: str) -> dict[str, list[dict]]:
  """Every configured method × seed; returns {method: [summary per seed]}."""
  rc = ctx.config.recommend
  check_config(ctx.config)
  conventions.check_rule_fits_split(ctx.rule, ctx.split, ctx.target)
  arrays = ctx.eval_arrays(str(rc.eval_part))
  if len(arrays["target"]) == 0:
    raise ValueError(f"the split has no {rc.eval_part!r} examples in {ctx.target!r}")
  popularity = item_popularity(ctx.ds, ctx.split, ctx.target)  # the same for every run
  groups = eval_groups(ctx, arrays)
  jobs = []
  for name in parse_methods(rc.methods):
    # The method's own settings: a baseline is not retrained when only SASRec's change.
    own = rc.sequential.to_json() if name in SEQUENTIAL else ""
    own += rc.xdkt.to_json() if name == "xdkt" else ""
    blend = str(rc.get("neighbour_blend", ""))
    own += f"|neighbour_blend={blend}" if name in SEQUENTIAL and blend else ""
    rule = json.dumps(ctx.rule.to_dict(), sort_keys=True)
    jobs += [(name, s, f"{fp}|{rule}|{name}|{s}|{own}") for s in seeds_for(name, int(rc.seeds))]
  done = []

  stopped = lambda: (
    f"recommend: stopped on SIGTERM; {len(done)} of {len(jobs)} (method, "
    "seed) runs are finished and kept; rerun the same command to resume"
  )

  def run(job):
    summary = run_one(
      job[0],
      job[1],
      ctx,
      out_dir / job[0] / f"seed_{job[1]}",
      arrays,
      fp=job[2],
      popularity=popularity,
      groups=groups,
    )
    done.append(job)
    stopping.check(stopped)  # a request whose exception was swallowed mid-run
    return summary

  # SIGTERM stops the stage at once: each finished (method, seed) run is kept (sealed last),
  # an unfinished one is redone on the rerun; with worker threads, after the runs in flight.
  with stopping.on_sigterm(stopped):
    ctx.log(ctx.rule.describe())
    summaries = _run_jobs(run, jobs, int(rc.get("workers", 1)))
  results: dict[str, list[dict]] = {}
  for job, summary in zip(jobs, summaries):
    results.setdefault(job[0], []).append(summary)
  for name in list(results):
    if all("unfused" in s for s in results[name]):
      results[name + UNFUSED] = [
        {
          "method": name + UNFUSED,
          "seed": s["seed"],
          "deterministic": s["deterministic"],
          "eval_rule": s["eval_rule"],
          **s["unfused"],
        }
        for s in results[name]
      ]
  return results


def base_method(name: str) -> str:
  """'xdkt-nofusion' → 'xdkt': the configured method a reported row belongs to."""
  return name[: -len(UNFUSED)] if name.endswith(UNFUSED) else name
