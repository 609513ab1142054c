"""The report's statistics over seeds and users (evaluate stage), which results.json holds.

Statistics (xdkt_jax/significance.py; every method alike, from its [seeds, users] per-example
metrics):
  * per method and metric: the mean with a 95% two-level bootstrap interval (seeds × users;
    over users alone for a one-run method — `ci_method` says which);
  * full method vs each other method, per headline metric: the mean difference with its
    two-level interval, a paired t-test over users on seed-averaged differences (Wilcoxon as
    a secondary column), Holm-corrected over the methods compared;
  * transfer gain = xdkt − target_only (the no-transfer control) per headline metric, the same
    way, Holm-corrected over the headline metrics; `significant` only when the corrected p <
    alpha and the interval excludes 0.  A negative mean gain raises a loud NEGATIVE TRANSFER
    warning in the log, results.json and report.md.
The evaluation rule every run used (conventions.py) must be one and the same; it is written
into results.json and the first line of report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xdkt_jax import significance

HEADLINE = ("recall@10", "ndcg@10", "mrr@10", "recall@20", "ndcg@20", "recall@50")


BEYOND_HEADLINE = ("coverage@10", "diversity@10", "novelty@10", "pop_bias@10")


UNFUSED = "-nofusion"


def _per_user(rec_dir: Path, summaries: list[dict], metric: str) -> np.ndarray | None:
  """[seeds, users] of one metric, from each run's per-user file."""
  rows = []
  for s in summaries:
    rel = s.get("per_user_file") or f"{s['method']}/seed_{s['seed']}/per_user.npz"
    z = np.load(rec_dir / rel)
    if metric not in z:
      return None
    rows.append(np.asarray(z[metric], np.float64))
  return np.stack(rows)


def eval_rule(runs: dict[str, list[dict]]) -> dict | None:
  """The one exclusion rule of every run; mixing rules in one table is refused."""
  rules = {json.dumps(s.get("eval_rule"), sort_keys=True) for r in runs.values() for s in r}
  if len(rules) > 1:
    raise ValueError(
      f"the runs were evaluated under different rules ({sorted(rules)}); "
      "rerun the recommend stage so that every method shares one"
    )
  return json.loads(rules.pop()) if rules else None


def _comparisons(runs, rec_dir, a_name, names, metrics, *, alpha, n_boot) -> dict:
  """{other: {metric: compare(a, other)}}, Holm over the `names` compared, per metric."""
  out = {n: {} for n in names}
  for m in metrics:
    a = _per_user(rec_dir, runs[a_name], m)
    family = {}
    for n in names:
      b = _per_user(rec_dir, runs[n], m)
      if a is not None and b is not None:
        family[n] = significance.compare(a, b, n_boot=n_boot)
    for n, c in significance.correct(family, alpha=alpha).items():
      out[n][m] = c
  return out


def _gain(runs, rec_dir, full, control, metrics, *, alpha, n_boot) -> dict:
  """{metric: transfer_gain(full, control)}, Holm over the metrics."""
  family = {}
  for m in metrics:
    a, b = _per_user(rec_dir, runs[full], m), _per_user(rec_dir, runs[control], m)
    if a is not None and b is not None:
      family[m] = significance.transfer_gain(a, b, n_boot=n_boot)
  return significance.correct(family, alpha=alpha)


def aggregate(
  runs: dict[str, list[dict]],
  rec_dir: Path,
  *,
  full: str = "xdkt",
  control: str = "target_only",
  alpha: float = 0.05,
  n_boot: int = significance.DEFAULT_N_BOOT,
) -> dict:
  """runs: {method: [summary per seed]} (recommend.run_all) → the statistics of results.json."""
  metrics, beyond, groups = {}, {}, {}
  for name, summaries in runs.items():
    metrics[name], beyond[name] = {}, {}
    for m in summaries[0]["means"]:
      pu = _per_user(rec_dir, summaries, m)
      metrics[name][m] = (
        significance.interval(pu, n_boot=n_boot)
        if pu is not None
        else significance.seed_t_interval([s["means"][m] for s in summaries])
      )
    for m in summaries[0]["beyond"]:
      pu = _per_user(rec_dir, summaries, m)
      beyond[name][m] = (
        significance.interval(pu, n_boot=n_boot)
        if pu is not None
        else significance.seed_t_interval([s["beyond"][m] for s in summaries])
      )
    groups[name] = {
      g: {
        k: float(np.mean([s["groups"][g][k] for s in summaries])) for k in summaries[0]["groups"][g]
      }
      for g in summaries[0].get("groups", {})
    }
  first = next(iter(runs.values()))[0]["means"] if runs else {}
  heads = [m for m in HEADLINE if m in first]
  compared, gain, gain_unfused, warnings = {}, {}, {}, []
  if full in runs:
    others = [n for n in runs if n != full]
    compared = _comparisons(runs, rec_dir, full, others, heads, alpha=alpha, n_boot=n_boot)
    if control in runs:
      gain = _gain(runs, rec_dir, full, control, heads, alpha=alpha, n_boot=n_boot)
      for m in ("ndcg@10", "recall@10"):
        w = significance.negative_transfer_warning(gain[m], metric=m) if m in gain else None
        if w:
          warnings.append(w)
    if full + UNFUSED in runs and control + UNFUSED in runs:
      gain_unfused = _gain(
        runs, rec_dir, full + UNFUSED, control + UNFUSED, heads, alpha=alpha, n_boot=n_boot
      )
  # Early stopping on valid (recommend.sequential.select_epoch): what each run kept.
  selected = {
    n: [
      {
        "seed": s["seed"],
        "best_epoch": s["info"]["best_epoch"],
        "epochs_run": s["info"]["epochs_run"],
        "best_valid": s["info"]["best_valid"],
        "metric": s["info"]["select_metric"],
      }
      for s in r
    ]
    for n, r in runs.items()
    if r and all("best_epoch" in s.get("info", {}) for s in r)
  }
  # Neighbourhood fusion (recommend.neighbour_blend): the weight each run picked on valid.
  fusion = {
    n: [
      {
        "seed": s["seed"],
        "weight": s["info"]["neighbour_weight"],
        "metric": s["info"]["neighbour_metric"],
        "valid": s["info"]["neighbour_valid"],
      }
      for s in r
    ]
    for n, r in runs.items()
    if r and all("neighbour_weight" in s.get("info", {}) for s in r)
  }
  ties = {
    n: max(s.get("ties", {}).get("examples_with_tied_target", 0) for s in r)
    for n, r in runs.items()
  }
  return {
    "eval_rule": eval_rule(runs),
    "metrics": metrics,
    "beyond": beyond,
    "compared_to_" + full: compared,
    "selected_epochs": selected,
    "neighbour_fusion": fusion,
    "transfer_gain": gain,
    "transfer_gain_unfused": gain_unfused,
    "groups": groups,
    "warnings": warnings,
    "ties": ties,
    "alpha": float(alpha),
    "significance": (
      "two-level bootstrap (seeds x users) 95% intervals; paired t-test "
      "over users on seed-averaged differences (Wilcoxon secondary); "
      "Holm over each table's family; significant = corrected p < "
      f"{alpha:g} and the interval excludes 0"
    ),
    "seeds": {n: [s["seed"] for s in r] for n, r in runs.items()},
    "deterministic": [n for n, r in runs.items() if r[0].get("deterministic")],
  }


def alignment_numbers(views: dict) -> dict:
  """MMD² between source and target item knowledge, raw (k) and after the shared adaptor (A(k)),
  with the training term's own estimator (losses.mmd: biased, multi-kernel RBF over its
  bandwidths, or linear).  The raw and adapted spaces have different scales, so for the
  before → after comparison each is standardised by its pooled scale first; `mmd_rbf_after_raw`
  is the unstandardised adapted space, the value L_align minimises when align = mmd."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from xdkt_jax import losses  # pylint: disable=import-outside-toplevel

  mmd = lambda x, y, kernel: float(
    losses.mmd(x_NxD=jnp.asarray(x, jnp.float32), y_MxD=jnp.asarray(y, jnp.float32), kernel=kernel)
  )
  out = {}
  for when in ("before", "after"):
    s, t = views[f"source_{when}"], views[f"target_{when}"]
    scale = np.sqrt(np.mean(np.var(np.concatenate([s, t]), 0).sum())) or 1.0
    out[f"mmd_linear_{when}"] = mmd(s / scale, t / scale, "linear")
    out[f"mmd_rbf_{when}"] = mmd(s / scale, t / scale, "rbf")
  out["mmd_rbf_after_raw"] = mmd(views["source_after"], views["target_after"], "rbf")
  return out
