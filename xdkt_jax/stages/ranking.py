"""The stages after extract: recommend (every method × seed), evaluate (statistics over seeds
and users) and report (results.json, report.md, plots)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xdkt_jax.data import stats as data_stats
from xdkt_jax.stages.common import fingerprint, read_json, stage_dir, write_json


def recommend_stage(config, wd: Path, ds, split, knowledge: dict, log=print) -> dict:
  from xdkt_jax import recommend  # pylint: disable=import-outside-toplevel

  if len(split.targets) != 1:  # pipeline.run passes multi_domain one target view at a time
    raise ValueError(
      f"stage 'recommend' ranks one target domain; the split has "
      f"{split.targets} (splits.target_view makes one)"
    )
  target = split.targets[0]
  ctx = recommend.Context(
    ds=ds,
    split=split,
    target=target,
    config=config,
    item_knowledge=knowledge["item"],
    pretrained=knowledge["pretrained"],
    log=log,
  )
  fp = fingerprint(
    "recommend",
    knowledge["fingerprint"],
    split.fingerprint(),
    config.recommend.eval_part,
    config.recommend.ks,
  )
  runs = recommend.run_all(ctx, stage_dir(wd, "recommend"), fp=fp)
  write_json(wd / "recommend" / "runs.json", runs)
  return runs


def evaluate_stage(config, wd: Path, runs, log=print) -> dict:
  from xdkt_jax import recommend, report  # pylint: disable=import-outside-toplevel

  if runs is None:
    path = wd / "recommend" / "runs.json"
    if not path.exists():
      raise ValueError(f"{wd}: no finished recommend stage; add 'recommend' to config.stages")
    runs = read_json(path, "rerun with 'recommend' in config.stages")
  names = recommend.parse_methods(config.recommend.methods)
  runs = {n: r for n, r in runs.items() if recommend.base_method(n) in names}
  ev = config.eval
  stats_ = report.aggregate(runs, wd / "recommend", alpha=float(ev.alpha), n_boot=int(ev.n_boot))
  write_json(stage_dir(wd, "evaluate") / "stats.json", stats_)
  for w in stats_["warnings"]:
    log(w)
  g = stats_["transfer_gain"].get("ndcg@10")
  if g:
    log(
      f"transfer gain ndcg@10 (xdkt − target_only): {g['mean']:+.4f} "
      f"[{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}] ({g['ci_method']}), Holm-corrected "
      f"p = {g['p_value']:.2g} (t-test over {g['n_users']} users; Wilcoxon "
      f"{g['p_wilcoxon']:.2g}): "
      + ("significant" if g["significant"] else "not significant")
      + f" at alpha = {g['alpha']:g}"
    )
  return stats_


def _lm_curves(wd: Path) -> dict:
  from xdkt_jax.train.writers import read_jsonl  # pylint: disable=import-outside-toplevel

  curves = {}
  for stage, sub in (
    ("pretrain", "logs"),
    ("adapt", "head_warmup/logs"),
    ("adapt", "logs"),
    ("extract", "logs"),
  ):
    path = wd / stage / sub / "metrics.jsonl"
    if path.exists():
      ys = [r["train/loss"] for r in read_jsonl(path) if "train/loss" in r]
      label = {"pretrain": "LM L_p", "adapt": "LM L_t", "extract": "LM L_k"}[stage]
      curves[label + (" (head warm-up)" if "head" in sub else "")] = ys
  return curves


def protocol_label(split) -> str:
  """The protocol as results.json and report.md name it, with its one parameter."""
  if split.protocol == "cold_start":
    return f"cold_start k={split.k}"
  if split.protocol == "target_fraction":
    return f"target_fraction fraction={split.info['target_fraction']:g}"
  return split.protocol


def report_stage(
  config, wd: Path, ds, tok, split, stats_, timings, log=print, *, lm_dir: Path | None = None
) -> None:
  from xdkt_jax import report  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data import splits  # pylint: disable=import-outside-toplevel

  if stats_ is None:
    path = wd / "evaluate" / "stats.json"
    if not path.exists():
      raise ValueError(f"{wd}: no finished evaluate stage; add 'evaluate' to config.stages")
    stats_ = read_json(path, "rerun with 'evaluate' in config.stages")
  runs = read_json(wd / "recommend" / "runs.json", "rerun with 'recommend' in config.stages")
  curves = _lm_curves(lm_dir or wd)
  for name in ("xdkt", "target_only", "sasrec", "unisrec_style"):
    if name in runs and runs[name][0].get("train_losses"):
      curves[name] = runs[name][0]["train_losses"]
  views = None
  vpath = wd / "recommend" / "xdkt" / "seed_0" / "alignment_views.npz"
  results = {
    "config": json.loads(config.to_json_best_effort()),
    "dataset": data_stats.dataset_stats(ds, tok),
    "protocol": protocol_label(split),
    "targets": split.targets,
    "sources": split.sources,
    "split": splits.summary(split),
    "n_items": ds.domains[split.targets[0]].n_items,
    "n_test": next(iter(runs.values()))[0]["n"],
    "eval_part": str(config.recommend.eval_part),
    "tuning": bool(config.recommend.get("tuning", False)),
    **stats_,
    "timings_s": timings,
  }
  if vpath.exists():
    views = dict(np.load(vpath))
    results["alignment"] = report.alignment_numbers(views)
  files = report.write(wd, results, curves, views)
  log(f"report: {', '.join(str(wd / f) for f in files)}")
