"""A trained sequential recommender as the evaluator sees it: `score(batch) -> [B, N]`, the
baselines' interface, jit-compiled once per scoring width (data/windows.bucket_width)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax.data.windows import score_inputs
from xdkt_jax.models.sasrec import SASRec
from xdkt_jax.objectives import model_variables

# Incremented at trace time only: lets tests prove the scorer compiles once per width.
TRACE_COUNTS = {"score": 0}


@dataclasses.dataclass
class SASRecModel:
  """A trained SASRec: `score(batch) -> scores_BxN` (the baselines' interface)."""

  module: SASRec
  params: Any
  consts: Any  # {'consts': {'item_vectors': ...}} or None: never trained
  n_items: int
  losses: np.ndarray  # per-step training loss
  info: dict

  def __post_init__(self):
    module = self.module

    @jax.jit
    def user_and_items(params, consts, tokens, mask, users):
      TRACE_COUNTS["score"] += 1
      users = None if users is None else jnp.broadcast_to(users[:, None], tokens.shape)
      last = jnp.maximum(jnp.sum(mask, axis=1).astype(jnp.int32) - 1, 0)
      h, items = module.apply(
        model_variables(params, consts), tokens, mask, users_BxL=users, last_B=last
      )
      return h[:, 0], items

    @jax.jit
    def scores(params, consts, tokens, mask, users):  # one dispatch: B×N stays on device
      u, items = user_and_items(params, consts, tokens, mask, users)
      return u @ items.T

    self._scores = scores
    self._needs_users = getattr(module, "n_source_items", 0) > 0

  def _users(self, batch, b: int):
    if not self._needs_users:
      return None
    return np.asarray(batch["user"], np.int32) if "user" in batch else np.zeros(b, np.int32)

  def score(self, batch) -> np.ndarray:
    tokens, mask = score_inputs(
      batch["hist"],
      batch["hist_mask"],
      n_items=self.n_items,
      max_len=self.module.max_len,
      bucket=True,
    )
    return np.asarray(
      self._scores(self.params, self.consts, tokens, mask, self._users(batch, len(tokens))),
      np.float32,
    )
