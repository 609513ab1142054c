"""The transfer report: statistics over seeds and users (evaluate stage) → results.json,
report.md and PNG plots (report stage).

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


# ---------------------------------------------------------------------------------------------
# report.md


def _fmt(x, digits=4):
  return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _cell(d):
  if d is None:
    return "—"
  ci = d.get("ci95")
  return _fmt(d["mean"]) + ("" if not ci else f" [{_fmt(ci[0])}, {_fmt(ci[1])}]")


def rule_line(rule: dict | None) -> str:
  """The report's first line: the rule every number below was ranked under."""
  if not rule:
    return "Evaluation rule: not recorded (runs from before conventions.py)."
  from xdkt_jax import conventions  # pylint: disable=import-outside-toplevel

  return "Evaluation rule: " + conventions.EvalRule(**rule).describe() + "."


GAIN_HEADER = (
  "| metric | gain | 95% CI | relative | p (t, Holm) | p (t) | p (Wilcoxon) | significant |"
)


def gain_rows(gains: dict, cols, first: str = "") -> list[str]:
  """One markdown row per metric of a transfer-gain dict (GAIN_HEADER's columns, after an
  optional leading cell `first`)."""
  lead = f"| {first} " if first else ""
  out = []
  for m in cols:
    g = gains.get(m)
    if g:
      out.append(
        f"{lead}| {m} | {_fmt(g['mean'])} | [{_fmt(g['ci95'][0])}, "
        f"{_fmt(g['ci95'][1])}] | {g['relative']:+.1%} | {g['p_holm']:.2g} | "
        f"{g['p_ttest']:.2g} | {g['p_wilcoxon']:.2g} | "
        f"{'yes' if g['significant'] else 'no'} |"
      )
  return out


def _gain_table(gains: dict, cols) -> list[str]:
  return [GAIN_HEADER, "|---" * (GAIN_HEADER.count("|") - 1) + "|", *gain_rows(gains, cols)]


def _levels(stats: dict, n_test) -> str:
  n_seeds = max(len(v) for v in stats["seeds"].values())
  return (
    f"Intervals: 95% two-level bootstrap over {n_seeds} seeds × {n_test} test users "
    f"(over users alone for methods run once).  p: paired t-test over the {n_test} users "
    "on seed-averaged differences, Holm-corrected over the table's family (the metrics "
    "of a gain table; the methods of a column); Wilcoxon signed-rank as a secondary "
    f"column.  Significant = corrected p < {stats.get('alpha', 0.05):g} and the interval "
    "excludes 0."
  )


def _header(results: dict) -> list[str]:
  """The rule line, the tuning/valid banner, the title, what was ranked, ties, warnings."""
  lines = [rule_line(results.get("eval_rule")), ""]
  if results.get("tuning"):
    lines += [
      "> **TUNING RUN on the valid split (launch/tune.py): these numbers select a "
      "setting; they are not results.**",
      "",
    ]
  elif results.get("eval_part") == "valid":
    lines += ["> **Numbers of the VALID split.**", ""]
  lines += [f"# xdkt report — {results.get('title', '')}".rstrip(" —"), ""]
  lines.append(
    f"Protocol: **{results['protocol']}**; targets {results.get('targets')}, "
    f"sources {results.get('sources')}; {results.get('n_test', '?')} test examples; "
    f"full ranking over {results.get('n_items', '?')} items; seeds "
    f"{max(len(v) for v in results['seeds'].values())} (deterministic methods run "
    f"once: {', '.join(results['deterministic']) or 'none'})."
  )
  lines += ["", _levels(results, results.get("n_test", "?")), ""]
  tied = {n: t for n, t in results.get("ties", {}).items() if t}
  if tied:
    lines += [
      "Test examples whose target ties with another item (counted against the "
      "target): " + ", ".join(f"{n} {t}" for n, t in tied.items()) + ".",
      "",
    ]
  for w in results["warnings"]:
    lines += [f"> **{w}**", ""]
  return lines


def _accuracy(results: dict, cols: list[str]) -> list[str]:
  """The accuracy table (each method against xdkt) and the transfer gains."""
  methods = list(results["metrics"])
  comp = next((v for k, v in results.items() if k.startswith("compared_to_")), {})
  lines = ["## Accuracy (mean [95% CI])", ""]
  lines.append("| method | " + " | ".join(cols) + " | ndcg@10 vs xdkt: diff, p (Holm) |")
  lines.append("|---" * (len(cols) + 2) + "|")
  for n in methods:
    c = comp.get(n, {}).get("ndcg@10")
    vs = "—" if c is None else f"{c['mean']:+.4f}, {c['p_holm']:.2g}"
    lines.append(
      f"| {n} | " + " | ".join(_cell(results["metrics"][n].get(m)) for m in cols) + f" | {vs} |"
    )
  lines += ["", "## Transfer gain: xdkt − target_only", ""]
  if results["transfer_gain"]:
    lines += _gain_table(results["transfer_gain"], cols)
  else:
    lines.append("(xdkt or target_only not run)")
  if results.get("transfer_gain_unfused"):
    lines += [
      "",
      "## Transfer gain without neighbourhood fusion: xdkt-nofusion − "
      "target_only-nofusion (the same trained models)",
      "",
    ]
    lines += _gain_table(results["transfer_gain_unfused"], cols)
  return lines


def _beyond_and_groups(results: dict) -> list[str]:
  methods = list(results["metrics"])
  lines = ["", "## Beyond accuracy", ""]
  bcols = [m for m in BEYOND_HEADLINE if m in results["beyond"][methods[0]]]
  lines.append("| method | " + " | ".join(bcols) + " |")
  lines.append("|---" * (len(bcols) + 1) + "|")
  for n in methods:
    lines.append(f"| {n} | " + " | ".join(_cell(results["beyond"][n].get(m)) for m in bcols) + " |")
  groups = list(next(iter(results["groups"].values()), {}))
  if groups:
    lines += ["", "## NDCG@10 by user group (mean over seeds; n = users)", ""]
    g0 = results["groups"][methods[0]]
    lines.append("| method | " + " | ".join(f"{g} (n={int(g0[g]['n'])})" for g in groups) + " |")
    lines.append("|---" * (len(groups) + 1) + "|")
    for n in methods:
      lines.append(
        f"| {n} | "
        + " | ".join(_fmt(results["groups"][n][g].get("ndcg@10")) for g in groups)
        + " |"
      )
  return lines


def _selection(results: dict) -> list[str]:
  """What was picked on the valid split: the kept epochs and the fusion weights."""
  lines = []
  if results.get("selected_epochs"):
    sel = results["selected_epochs"]
    metric = next(iter(sel.values()))[0]["metric"]
    lines += [
      "",
      f"## Epochs kept on the valid split (early stopping on {metric})",
      "",
      f"| method | kept epoch / epochs run, per seed | valid {metric} of the kept epoch |",
      "|---|---|---|",
    ]
    for n, r in sel.items():
      lines.append(
        f"| {n} | "
        + ", ".join(f"{x['best_epoch']}/{x['epochs_run']}" for x in r)
        + " | "
        + ", ".join(_fmt(x["best_valid"]) for x in r)
        + " |"
      )
  if results.get("neighbour_fusion"):
    fus = results["neighbour_fusion"]
    metric = next(iter(fus.values()))[0]["metric"]
    lines += [
      "",
      "## Neighbourhood fusion: z(model) + w·z(item-kNN), w picked on the valid split",
      "",
      f"| method | w per seed | valid {metric} at w = 0 | valid {metric} at the picked w |",
      "|---|---|---|---|",
    ]
    at = lambda x, w: next(v[metric] for v in x["valid"] if v["weight"] == w)
    for n, r in fus.items():
      lines.append(
        f"| {n} | "
        + ", ".join(f"{x['weight']:g}" for x in r)
        + " | "
        + ", ".join(_fmt(at(x, 0.0)) for x in r)
        + " | "
        + ", ".join(_fmt(at(x, x["weight"])) for x in r)
        + " |"
      )
  return lines


def _alignment_and_times(results: dict) -> list[str]:
  lines = []
  if results.get("alignment"):
    a = results["alignment"]
    lines += [
      "",
      "## Alignment (xdkt, seed 0)",
      "",
      f"Linear MMD² between source and target item knowledge: before the adaptor "
      f"{_fmt(a['mmd_linear_before'], 5)}, after {_fmt(a['mmd_linear_after'], 5)} "
      f"(multi-kernel RBF, the training term's estimator: "
      f"{_fmt(a['mmd_rbf_before'], 5)} → {_fmt(a['mmd_rbf_after'], 5)}; each space "
      f"standardised by its pooled scale; unstandardised after the adaptor, the value "
      f"L_align minimises with align = mmd: {_fmt(a.get('mmd_rbf_after_raw'), 5)}).  "
      f"Plot: alignment.png.",
    ]
  t = results.get("timings_s", {})
  if t:
    lines += [
      "",
      "## Stage wall times (s)",
      "",
      "| " + " | ".join(t) + " |",
      "|---" * len(t) + "|",
      "| " + " | ".join(f"{v:.1f}" for v in t.values()) + " |",
    ]
  return lines


def markdown(results: dict) -> str:
  """report.md: every number of results.json a reader needs, in tables."""
  first = next(iter(results["metrics"]))
  cols = [m for m in HEADLINE if m in results["metrics"][first]]
  lines = (
    _header(results)
    + _accuracy(results, cols)
    + _beyond_and_groups(results)
    + _selection(results)
    + _alignment_and_times(results)
  )
  lines += ["", "Plots: training_curves.png, metrics.png, alignment.png.", ""]
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Alignment numbers and plots.


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
    colors = [
      "tab:red" if n == "xdkt" else "tab:gray" if n == "target_only" else "tab:blue"
      for n in methods
    ]
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
      a.scatter(p[: len(s), 0], p[: len(s), 1], s=4, alpha=0.5, label="source items")
      a.scatter(p[len(s) :, 0], p[len(s) :, 1], s=4, alpha=0.5, label="target items")
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
  lines = [
    rule_line(summary.get("eval_rule")),
    "",
    "# xdkt report — multi_domain",
    "",
    f"Every domain ranked in turn, the other domains as its sources "
    f"({', '.join(summary['targets'])}).  Full reports: targets/<domain>/report.md.",
    "",
  ]
  for d, r in summary["domains"].items():
    for w in r.get("warnings", []):
      lines += [f"> **{d}: {w}**", ""]
  lines += ["## NDCG@10 / Recall@10 per target domain (mean [95% CI])", ""]
  methods = list(dict.fromkeys(m for r in summary["domains"].values() for m in r["metrics"]))
  lines.append(
    "| method | " + " | ".join(f"{d} ndcg@10 | {d} recall@10" for d in summary["domains"]) + " |"
  )
  lines.append("|---" * (2 * len(summary["domains"]) + 1) + "|")
  for n in methods:
    cells = []
    for r in summary["domains"].values():
      m = r["metrics"].get(n, {})
      cells += [_cell(m.get("ndcg@10")), _cell(m.get("recall@10"))]
    lines.append(f"| {n} | " + " | ".join(cells) + " |")
  lines += [
    "",
    "## Transfer gain xdkt − target_only, NDCG@10 (Holm over each domain's headline metrics)",
    "",
    "| target | gain | 95% CI | p (t, Holm) | significant |",
    "|---|---|---|---|---|",
  ]
  for d, r in summary["domains"].items():
    g = r["transfer_gain"].get("ndcg@10")
    if g:
      lines.append(
        f"| {d} | {_fmt(g['mean'])} | [{_fmt(g['ci95'][0])}, {_fmt(g['ci95'][1])}]"
        f" | {g['p_value']:.2g} | {'yes' if g.get('significant') else 'no'} |"
      )
  return "\n".join(lines + [""])


def write_multi_domain(out_dir: Path, summary: dict) -> list[str]:
  return _write_pair(out_dir, summary, multi_domain_markdown(summary))
