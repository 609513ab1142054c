"""The transfer report, one module per concern:

  statistics.py  over seeds and users (evaluate stage): intervals, paired tests, transfer
                 gain, the evaluation rule, the alignment numbers
  tables.py      report.md, one function per section
  plots.py       the PNG plots

This module writes them (report stage): results.json, report.md and the plots.
"""

from __future__ import annotations

import json
from pathlib import Path

from xdkt_jax.report.tables import markdown, multi_domain_markdown
from xdkt_jax.report.plots import plots
from xdkt_jax.report.statistics import UNFUSED, aggregate, alignment_numbers, eval_rule

__all__ = [
  "UNFUSED",
  "aggregate",
  "alignment_numbers",
  "eval_rule",
  "markdown",
  "plots",
  "write",
  "write_multi_domain",
]


def _write_pair(out_dir: Path, results: dict, md: str) -> list[str]:
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=float))
  (out_dir / "report.md").write_text(md)
  return ["results.json", "report.md"]


def write(out_dir: Path, results: dict, curves: dict, views: dict | None) -> list[str]:
  return _write_pair(out_dir, results, markdown(results)) + plots(out_dir, results, curves, views)


def write_multi_domain(out_dir: Path, summary: dict) -> list[str]:
  return _write_pair(out_dir, summary, multi_domain_markdown(summary))
