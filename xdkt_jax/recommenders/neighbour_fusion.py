"""Neighbourhood fusion of a sequential model with item-kNN: score = z(model) + w · z(item-kNN),
z the per-row z-score, w picked per run on the valid users (config.recommend.neighbour_blend)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from xdkt_jax import evaluate as evaluate_lib
from xdkt_jax.recommenders.baselines import common


def neighbour_weights(spec) -> list[float]:
  """`recommend.neighbour_blend` ("0.1,0.3,1") → sorted weights with 0 first; "" → []."""
  text = str(spec or "").strip()
  if not text:
    return []
  try:
    ws = [float(x) for x in text.split(",") if x.strip()]
  except ValueError:
    raise ValueError(
      f"config.recommend.neighbour_blend must be comma-separated numbers, got {spec!r}"
    ) from None
  if not ws or any(not np.isfinite(w) or w < 0 for w in ws):
    raise ValueError(
      f"config.recommend.neighbour_blend weights must be finite and >= 0, got {spec!r}"
    )
  return sorted(set([0.0] + ws))


@dataclasses.dataclass
class NeighbourFused:
  """A sequential model with neighbourhood fusion: score = z(model) + weight · z(item-kNN)."""

  model: Any
  knn: Any
  weight: float
  info: dict

  @property
  def losses(self):
    return self.model.losses

  def score(self, batch) -> np.ndarray:
    if self.weight == 0.0:  # exactly the model's own ranking
      return self.model.score(batch)
    s = common.zscore_rows(self.model.score(batch))
    return (s + self.weight * common.zscore_rows(self.knn.score(batch))).astype(np.float32)


def fuse_neighbours(model, ctx, weights: list[float], *, metric: str) -> NeighbourFused:
  """Picks the fusion weight on the valid users (full ranking under the run's exclusion rule:
  the reported numbers' evaluator); ties go to the smaller weight.  `ctx`: the recommend
  stage's Context (its valid arrays, its item-kNN, its log)."""
  evaluate_lib.selection_metric(metric, "neighbour_blend")
  valid = ctx.eval_arrays("valid")
  if len(valid["target"]) == 0:
    raise ValueError(
      f"config.recommend.neighbour_blend needs valid examples, and the "
      f"{ctx.split.protocol!r} split has none in {ctx.target!r}"
    )
  fused = NeighbourFused(model, ctx.itemknn(), 0.0, dict(getattr(model, "info", {})))
  curve = {}
  # One evaluator pass per weight re-scores the valid users each time: memory stays one batch
  # (keeping both [n_valid, N] score matrices would not); the time is small beside training
  # (benchmarks/RESULTS.md).
  for w in weights:
    fused.weight = w
    curve[w] = evaluate_lib.valid_score(
      fused.score, valid, metric=metric, n_items=ctx.ds.domains[ctx.target].n_items
    )
  fused.weight = max(weights, key=lambda w: (curve[w], -w))
  fused.info.update(
    neighbour_weight=fused.weight,
    neighbour_metric=metric,
    neighbour_valid=[{"weight": w, metric: v} for w, v in curve.items()],
  )
  ctx.log(
    f"neighbourhood fusion: weight {fused.weight:g} (valid {metric} "
    + ", ".join(f"{w:g}: {v:.4f}" for w, v in curve.items())
    + ")"
  )
  return fused
