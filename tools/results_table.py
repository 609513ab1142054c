"""Markdown tables for benchmarks/RESULTS.md, read straight from runs' results.json files, so
every number there can be traced back to a file and regenerated.

  python tools/results_table.py runs/sci                      # methods × R@10 / N@10
  python tools/results_table.py runs/cold1 runs/cold3 --gain  # + the transfer gains
  python tools/results_table.py runs/sci --metrics recall@10,ndcg@10,recall@50
  python tools/results_table.py runs/sci --ties   # what ties cost: pessimistic vs optimistic
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xdkt_jax.report import tables as report_tables


def cell(m: dict | None) -> str:
  if not m:
    return "—"
  ci = m.get("ci95")
  return f"{m['mean']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def methods_table(r: dict, metrics: list[str]) -> list[str]:
  comp = next((v for k, v in r.items() if k.startswith("compared_to_")), {})
  out = [
    "| method | " + " | ".join(metrics) + " | ndcg@10 vs xdkt: diff, p (Holm) |",
    "|---" * (len(metrics) + 2) + "|",
  ]
  for name, ms in r["metrics"].items():
    c = comp.get(name, {}).get("ndcg@10")
    vs = "—" if c is None else f"{c['mean']:+.4f}, {c['p_holm']:.2g}"
    out.append(f"| {name} | " + " | ".join(cell(ms.get(m)) for m in metrics) + f" | {vs} |")
  return out


def tie_rows(wd: Path, r: dict) -> list[str]:
  """Per method, R@10 / N@10 with ties counted against the target (the reported numbers) and
  in its favour (a bound on what another tie rule could give), from the per-user files."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  rows = []
  for name in r["metrics"]:
    base, unfused = (
      (name[: -len("-nofusion")], True) if name.endswith("-nofusion") else (name, False)
    )
    got = {"pess": [], "opt": []}
    for seed in r["seeds"][name]:
      z = np.load(
        wd
        / "recommend"
        / base
        / f"seed_{seed}"
        / ("per_user_unfused.npz" if unfused else "per_user.npz")
      )
      for key, rank in (("pess", z["rank"]), ("opt", z["rank"] - z["ties"])):
        got[key].append(
          ((rank < 10).mean(), np.where(rank < 10, 1 / np.log2(rank + 2.0), 0).mean())
        )
    (rp, npess), (ro, nopt) = np.mean(got["pess"], 0), np.mean(got["opt"], 0)
    rows.append(
      f"| {name} | {rp:.4f} / {npess:.4f} | {ro:.4f} / {nopt:.4f} | {r['ties'].get(name, 0)} |"
    )
  return [
    "| method | R@10 / N@10, ties against | ties in favour | test targets tied |",
    "|---|---|---|---|",
  ] + rows


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("workdirs", nargs="+")
  ap.add_argument("--metrics", default="recall@10,ndcg@10")
  ap.add_argument("--gain", action="store_true", help="also the transfer-gain rows")
  ap.add_argument("--ties", action="store_true", help="also what the tie rule costs")
  a = ap.parse_args(argv)
  metrics = a.metrics.split(",")
  gains = []
  for wd in a.workdirs:
    r = json.loads((Path(wd) / "results.json").read_text())
    rule = r.get("eval_rule") or {}
    print(
      f"\n{wd}: {r.get('protocol')}, {r.get('n_test')} test examples, rule "
      f"{rule.get('convention')}/{rule.get('exclude_history')}, seeds "
      f"{max(len(v) for v in r['seeds'].values())}\n"
    )
    print("\n".join(methods_table(r, metrics)))
    if a.ties:
      print("\n" + "\n".join(tie_rows(Path(wd), r)))
    gains += report_tables.gain_rows(r.get("transfer_gain", {}), metrics, first=f"{wd}")
    gains += report_tables.gain_rows(
      r.get("transfer_gain_unfused", {}), metrics, first=f"{wd} (no fusion)"
    )
  if a.gain and gains:
    print("\n| run " + report_tables.GAIN_HEADER)
    print("|---" * report_tables.GAIN_HEADER.count("|") + "|")  # one more column: run
    print("\n".join(gains))


if __name__ == "__main__":
  main()
