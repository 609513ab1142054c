"""report.md: the numbers of results.json a reader needs, in tables (one function per
section), and the multi-domain summary."""

from __future__ import annotations

import numpy as np

from xdkt_jax.report.statistics import BEYOND_HEADLINE, HEADLINE


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
