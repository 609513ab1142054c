"""The report's PNG plots: training curves, headline metrics per method, and the source and
target item knowledge before and after the shared adaptor (2-D PCA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
