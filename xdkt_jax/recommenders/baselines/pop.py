"""`pop`: training popularity in the target domain — the floor every recommender must clear."""

from __future__ import annotations

import dataclasses

import numpy as np

from xdkt_jax.recommenders.baselines import common

DEFAULTS = dict(seed=0)  # seed: accepted for a uniform interface; pop is deterministic


@dataclasses.dataclass
class PopModel:
  train: common.TrainData

  def score(self, batch) -> np.ndarray:
    b = len(np.asarray(batch["user"]))
    return np.broadcast_to(self.train.pop, (b, self.train.n_items)).astype(np.float32)


def fit(ds, split, *, target: str, cfg=None) -> PopModel:
  common.options(cfg, DEFAULTS, "pop")
  return PopModel(common.train_data(ds, split, target, consumer="pop"))
