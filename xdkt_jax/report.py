"""The transfer report: statistics over seeds (evaluate stage) → results.json, report.md and
PNG plots (report stage).

Statistics (xdkt_jax/significance.py):
  * per method and metric: mean over seeds with a 95% Student-t CI; a deterministic method
    (one run) gets a bootstrap-over-test-users CI instead (`ci_method` says which);
  * paired test, full method vs each other method: Wilcoxon signed-rank over test users of the
    per-user metric averaged over seeds (the same users, so pairs are exact);
  * transfer gain = xdkt − target_only (the no-transfer control) per metric, CI over per-seed
    gains, p-value from the paired test; a negative mean gain raises a loud NEGATIVE TRANSFER
    warning in the log, results.json and report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xdkt_jax import significance

HEADLINE = ("recall@10", "ndcg@10", "mrr@10", "recall@20", "ndcg@20", "recall@50")
BEYOND_HEADLINE = ("coverage@10", "diversity@10", "novelty@10", "pop_bias@10")


def _per_user(method_dir: Path, seeds: list[int], metric: str) -> np.ndarray | None:
  rows = []
  for s in seeds:
    z = np.load(method_dir / f"seed_{s}" / "per_user.npz")
    if metric not in z:
      return None
    rows.append(np.asarray(z[metric], np.float64))
  return np.stack(rows)


def aggregate(runs: dict[str, list[dict]], rec_dir: Path, *, full: str = "xdkt",
              control: str = "target_only", test: str = "wilcoxon") -> dict:
  """runs: {method: [summary per seed]} (recommend.run_all) → the statistics of results.json."""
  metrics, beyond, paired, groups = {}, {}, {}, {}
  for name, summaries in runs.items():
    seeds = [s["seed"] for s in summaries]
    metrics[name], beyond[name] = {}, {}
    for m in summaries[0]["means"]:
      vals = [s["means"][m] for s in summaries]
      pu = _per_user(rec_dir / name, seeds, m)
      ci = significance.mean_ci(vals, per_user_values=None if pu is None else pu[0])
      metrics[name][m] = {"mean": ci.mean, "ci95": [ci.lo, ci.hi], "ci_method": ci.method,
                          "per_seed": vals}
    for m in summaries[0]["beyond"]:
      vals = [s["beyond"][m] for s in summaries]
      pu = _per_user(rec_dir / name, seeds, m)
      if len(vals) < 2 and pu is None:   # a set-level metric of one run: no interval
        beyond[name][m] = {"mean": float(vals[0]), "ci95": None, "per_seed": vals}
        continue
      ci = significance.mean_ci(vals, per_user_values=None if pu is None else pu[0])
      beyond[name][m] = {"mean": ci.mean, "ci95": [ci.lo, ci.hi], "ci_method": ci.method,
                         "per_seed": vals}
    groups[name] = {g: {k: float(np.mean([s["groups"][g][k] for s in summaries]))
                        for k in summaries[0]["groups"][g]}
                    for g in summaries[0].get("groups", {})}
  gain, warnings = {}, []
  if full in runs:
    fseeds = [s["seed"] for s in runs[full]]
    for name in runs:
      if name == full:
        continue
      seeds = [s["seed"] for s in runs[name]]
      paired[name] = {}
      for m in runs[full][0]["means"]:
        a, b = _per_user(rec_dir / full, fseeds, m), _per_user(rec_dir / name, seeds, m)
        if a is None or b is None:
          continue
        paired[name][m] = significance.paired_test(a.mean(0), b.mean(0), method=test)
    if control in runs:
      cseeds = [s["seed"] for s in runs[control]]
      n = min(len(fseeds), len(cseeds))
      for m in runs[full][0]["means"]:
        a = _per_user(rec_dir / full, fseeds[:n], m)
        b = _per_user(rec_dir / control, cseeds[:n], m)
        g = significance.transfer_gain(
            [s["means"][m] for s in runs[full][:n]],
            [s["means"][m] for s in runs[control][:n]], a, b, test=test)
        gain[m] = g
      for m in ("ndcg@10", "recall@10"):
        w = significance.negative_transfer_warning(gain[m], metric=m) if m in gain else None
        if w:
          warnings.append(w)
  # Early stopping on valid (recommend.sequential.select_epoch): what each run kept.
  selected = {n: [{"seed": s["seed"], "best_epoch": s["info"]["best_epoch"],
                   "epochs_run": s["info"]["epochs_run"], "best_valid": s["info"]["best_valid"],
                   "metric": s["info"]["select_metric"]} for s in r]
              for n, r in runs.items()
              if r and all("best_epoch" in s.get("info", {}) for s in r)}
  # Neighbourhood fusion (recommend.neighbour_blend): the weight each run picked on valid.
  fusion = {n: [{"seed": s["seed"], "weight": s["info"]["neighbour_weight"],
                 "metric": s["info"]["neighbour_metric"],
                 "valid": s["info"]["neighbour_valid"]} for s in r]
            for n, r in runs.items()
            if r and all("neighbour_weight" in s.get("info", {}) for s in r)}
  return {"metrics": metrics, "beyond": beyond, "paired_p_vs_" + full: paired,
          "selected_epochs": selected, "neighbour_fusion": fusion,
          "transfer_gain": gain, "groups": groups, "warnings": warnings,
          "seeds": {n: [s["seed"] for s in r] for n, r in runs.items()},
          "deterministic": [n for n, r in runs.items() if r[0].get("deterministic")]}


# ---------------------------------------------------------------------------------------------
# report.md

def _fmt(x, digits=4):
  return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _cell(d):
  if d is None:
    return "—"
  ci = d.get("ci95")
  return _fmt(d["mean"]) + ("" if not ci else f" [{_fmt(ci[0])}, {_fmt(ci[1])}]")


def markdown(results: dict) -> str:
  stats = results
  methods = list(stats["metrics"])
  lines = [f"# xdkt report — {results.get('title', '')}".rstrip(" —"), ""]
  lines.append(f"Protocol: **{results['protocol']}**; targets {results.get('targets')}, "
               f"sources {results.get('sources')}; {results.get('n_test', '?')} test examples; "
               f"full ranking over {results.get('n_items', '?')} items; seeds "
               f"{max(len(v) for v in stats['seeds'].values())} (deterministic methods run "
               f"once: {', '.join(stats['deterministic']) or 'none'}).")
  lines.append("")
  for w in stats["warnings"]:
    lines += [f"> **{w}**", ""]
  pkey = next((k for k in stats if k.startswith("paired_p_vs_")), None)
  lines += ["## Accuracy (mean [95% CI])", ""]
  cols = [m for m in HEADLINE if m in stats["metrics"][methods[0]]]
  lines.append("| method | " + " | ".join(cols) + " | p (ndcg@10 vs xdkt) |")
  lines.append("|---" * (len(cols) + 2) + "|")
  for n in methods:
    p = stats.get(pkey, {}).get(n, {}).get("ndcg@10") if pkey else None
    lines.append(f"| {n} | " + " | ".join(_cell(stats["metrics"][n].get(m)) for m in cols)
                 + f" | {'—' if p is None else f'{p:.2g}'} |")
  lines += ["", "## Transfer gain: xdkt − target_only", ""]
  if stats["transfer_gain"]:
    lines.append("| metric | gain | 95% CI | relative | p |")
    lines.append("|---|---|---|---|---|")
    for m in cols:
      g = stats["transfer_gain"].get(m)
      if g:
        lines.append(f"| {m} | {_fmt(g['mean'])} | [{_fmt(g['ci95'][0])}, {_fmt(g['ci95'][1])}]"
                     f" | {g['relative']:+.1%} | {g['p_value']:.2g} |")
  else:
    lines.append("(xdkt or target_only not run)")
  lines += ["", "## Beyond accuracy", ""]
  bcols = [m for m in BEYOND_HEADLINE if m in stats["beyond"][methods[0]]]
  lines.append("| method | " + " | ".join(bcols) + " |")
  lines.append("|---" * (len(bcols) + 1) + "|")
  for n in methods:
    lines.append(f"| {n} | " + " | ".join(_cell(stats["beyond"][n].get(m)) for m in bcols) + " |")
  glist = list(next(iter(stats["groups"].values()), {}))
  if glist:
    lines += ["", "## NDCG@10 by user group (mean over seeds; n = users)", ""]
    g0 = stats["groups"][methods[0]]
    lines.append("| method | " + " | ".join(f"{g} (n={int(g0[g]['n'])})" for g in glist) + " |")
    lines.append("|---" * (len(glist) + 1) + "|")
    for n in methods:
      lines.append(f"| {n} | " + " | ".join(_fmt(stats["groups"][n][g].get("ndcg@10"))
                                             for g in glist) + " |")
  if stats.get("selected_epochs"):
    sel = stats["selected_epochs"]
    metric = next(iter(sel.values()))[0]["metric"]
    lines += ["", f"## Epochs kept on the valid split (early stopping on {metric})", "",
              f"| method | kept epoch / epochs run, per seed | valid {metric} of the kept epoch |",
              "|---|---|---|"]
    for n, r in sel.items():
      lines.append(f"| {n} | " + ", ".join(f"{x['best_epoch']}/{x['epochs_run']}" for x in r)
                   + " | " + ", ".join(_fmt(x["best_valid"]) for x in r) + " |")
  if stats.get("neighbour_fusion"):
    fus = stats["neighbour_fusion"]
    metric = next(iter(fus.values()))[0]["metric"]
    lines += ["", "## Neighbourhood fusion: z(model) + w·z(item-kNN), w picked on the valid split",
              "", f"| method | w per seed | valid {metric} at w = 0 | valid {metric} at the "
              "picked w |", "|---|---|---|---|"]
    at = lambda x, w: next(v[metric] for v in x["valid"] if v["weight"] == w)
    for n, r in fus.items():
      lines.append(f"| {n} | " + ", ".join(f"{x['weight']:g}" for x in r) + " | "
                   + ", ".join(_fmt(at(x, 0.0)) for x in r) + " | "
                   + ", ".join(_fmt(at(x, x["weight"])) for x in r) + " |")
  if results.get("alignment"):
    a = results["alignment"]
    lines += ["", "## Alignment (xdkt, seed 0)", "",
              f"Linear MMD² between source and target item knowledge: before the adaptor "
              f"{_fmt(a['mmd_linear_before'], 5)}, after {_fmt(a['mmd_linear_after'], 5)} "
              f"(RBF, median bandwidth: {_fmt(a['mmd_rbf_before'], 5)} → "
              f"{_fmt(a['mmd_rbf_after'], 5)}).  Plot: alignment.png."]
  t = results.get("timings_s", {})
  if t:
    lines += ["", "## Stage wall times (s)", "", "| " + " | ".join(t) + " |",
              "|---" * len(t) + "|", "| " + " | ".join(f"{v:.1f}" for v in t.values()) + " |"]
  lines += ["", "Plots: training_curves.png, metrics.png, alignment.png.", ""]
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Alignment numbers and plots.

def _mmd2(x, y, kind: str) -> float:
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if kind == "linear":
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2))
  z = np.concatenate([x, y])
  d2 = np.sum(z ** 2, 1)[:, None] + np.sum(z ** 2, 1)[None] - 2 * z @ z.T
  d2 = np.maximum(d2, 0)
  bw = np.median(d2[d2 > 0]) if np.any(d2 > 0) else 1.0
  k = np.exp(-d2 / bw)
  n = len(x)
  return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def alignment_numbers(views: dict) -> dict:
  """MMD² source vs target, raw knowledge vs after the shared adaptor.  The two spaces have
  different scales, so each is standardised by its pooled scale first."""
  out = {}
  for when in ("before", "after"):
    s, t = views[f"source_{when}"], views[f"target_{when}"]
    scale = np.sqrt(np.mean(np.var(np.concatenate([s, t]), 0).sum())) or 1.0
    out[f"mmd_linear_{when}"] = _mmd2(s / scale, t / scale, "linear")
    out[f"mmd_rbf_{when}"] = _mmd2(s / scale, t / scale, "rbf")
  return out


def _pca2(x: np.ndarray) -> np.ndarray:
  x = x - x.mean(0)
  _, _, vt = np.linalg.svd(x, full_matrices=False)
  return x @ vt[:2].T


def plots(out_dir: Path, results: dict, curves: dict[str, list[float]], views: dict | None):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  written = []

  fig, ax = plt.subplots(1, 2, figsize=(11, 4))
  for name, ys in curves.items():
    if not ys:
      continue
    target = ax[0] if name.startswith("LM") else ax[1]
    target.plot(np.arange(1, len(ys) + 1), ys, label=name)
  ax[0].set(title="language model (L_p / L_t / L_k)", xlabel="logged step", ylabel="loss")
  ax[1].set(title="recommenders, seed 0 (L_f [+ λ L_align])", xlabel="step", ylabel="loss")
  for a in ax:
    if a.lines:
      a.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out_dir / "training_curves.png", dpi=110)
  plt.close(fig)
  written.append("training_curves.png")

  methods = list(results["metrics"])
  fig, ax = plt.subplots(1, 2, figsize=(12, 4))
  for a, m in zip(ax, ("ndcg@10", "recall@10")):
    means = [results["metrics"][n][m]["mean"] for n in methods]
    lo = [results["metrics"][n][m]["ci95"][0] for n in methods]
    hi = [results["metrics"][n][m]["ci95"][1] for n in methods]
    err = np.array([np.subtract(means, lo), np.subtract(hi, means)])
    colors = ["tab:red" if n == "xdkt" else "tab:gray" if n == "target_only" else "tab:blue"
              for n in methods]
    a.bar(methods, means, yerr=np.maximum(err, 0), capsize=3, color=colors)
    a.set(title=f"{m} (95% CI)", ylabel=m)
    a.tick_params(axis="x", rotation=60)
  fig.tight_layout()
  fig.savefig(out_dir / "metrics.png", dpi=110)
  plt.close(fig)
  written.append("metrics.png")

  if views is not None:
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))
    for a, when in zip(ax, ("before", "after")):
      s, t = views[f"source_{when}"], views[f"target_{when}"]
      p = _pca2(np.concatenate([s, t]))
      a.scatter(p[:len(s), 0], p[:len(s), 1], s=4, alpha=0.5, label="source items")
      a.scatter(p[len(s):, 0], p[len(s):, 1], s=4, alpha=0.5, label="target items")
      a.set(title=f"item knowledge {when} alignment (PCA)")
      a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "alignment.png", dpi=110)
    plt.close(fig)
    written.append("alignment.png")
  return written


def _write_pair(out_dir: Path, results: dict, md: str) -> list[str]:
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=float))
  (out_dir / "report.md").write_text(md)
  return ["results.json", "report.md"]


def write(out_dir: Path, results: dict, curves: dict, views: dict | None) -> list[str]:
  return _write_pair(out_dir, results, markdown(results)) + plots(out_dir, results, curves, views)


def multi_domain_markdown(summary: dict) -> str:
  """The multi_domain run's top-level report: one row per evaluated domain (the others are its
  sources), linking each domain's full report."""
  lines = ["# xdkt report — multi_domain", "",
           f"Every domain ranked in turn, the other domains as its sources "
           f"({', '.join(summary['targets'])}).  Full reports: targets/<domain>/report.md.", ""]
  for d, r in summary["domains"].items():
    for w in r.get("warnings", []):
      lines += [f"> **{d}: {w}**", ""]
  lines += ["## NDCG@10 / Recall@10 per target domain (mean [95% CI])", ""]
  methods = list(dict.fromkeys(m for r in summary["domains"].values() for m in r["metrics"]))
  lines.append("| method | " + " | ".join(f"{d} ndcg@10 | {d} recall@10"
                                          for d in summary["domains"]) + " |")
  lines.append("|---" * (2 * len(summary["domains"]) + 1) + "|")
  for n in methods:
    cells = []
    for r in summary["domains"].values():
      m = r["metrics"].get(n, {})
      cells += [_cell(m.get("ndcg@10")), _cell(m.get("recall@10"))]
    lines.append(f"| {n} | " + " | ".join(cells) + " |")
  lines += ["", "## Transfer gain xdkt − target_only, NDCG@10", "",
            "| target | gain | 95% CI | p |", "|---|---|---|---|"]
  for d, r in summary["domains"].items():
    g = r["transfer_gain"].get("ndcg@10")
    if g:
      lines.append(f"| {d} | {_fmt(g['mean'])} | [{_fmt(g['ci95'][0])}, {_fmt(g['ci95'][1])}]"
                   f" | {g['p_value']:.2g} |")
  return "\n".join(lines + [""])


def write_multi_domain(out_dir: Path, summary: dict) -> list[str]:
  return _write_pair(out_dir, summary, multi_domain_markdown(summary))
