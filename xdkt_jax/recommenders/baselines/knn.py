"""Neighbourhood CF: `itemknn` (item-item cosine) and `userknn` (user-user, cross-domain).

Both are memory-based, so they read the example's input (`hist`, `src_hist`) at score time
and need no per-user training state: a cold user is scored from whatever the batch reveals.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from xdkt_jax.recommenders.baselines import common

ITEMKNN_DEFAULTS = dict(seed=0, k=100, shrink=10.0)
USERKNN_DEFAULTS = dict(seed=0, k=50, use_source=True, source_weight=1.0)


def _top_k_rows(s: sp.csr_matrix, k: int) -> sp.csr_matrix:
  """Keep each row's k largest entries; dense work in row chunks so memory stays bounded."""
  n, m = s.shape
  step = max(1, (1 << 24) // max(m, 1))
  rows, cols, vals = [], [], []
  for lo in range(0, n, step):
    dense = s[lo : lo + step].toarray()
    kk = min(k, m)
    idx = np.argpartition(-dense, kk - 1, axis=1)[:, :kk]
    v = np.take_along_axis(dense, idx, 1)
    keep = v > 0
    rows.append((np.arange(lo, lo + len(dense))[:, None] + 0 * idx)[keep])
    cols.append(idx[keep])
    vals.append(v[keep])
  cat = lambda a, t: np.concatenate(a).astype(t) if a else np.zeros(0, t)
  return sp.csr_matrix(
    (cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))), shape=(n, m)
  )


@dataclasses.dataclass
class ItemKNN:
  """score(u, j) = sum over i in hist(u) of sim_k(i, j); sim = shrunk cosine of item columns
  of the training matrix, each item keeping its k nearest neighbours."""

  train: common.TrainData
  sim: sp.csr_matrix  # [n_items, n_items], row i = item i's top-k neighbours

  def score(self, batch) -> np.ndarray:
    h = common.rows_csr(batch["hist"], batch["hist_mask"], self.train.n_items)
    s = np.asarray((h @ self.sim).todense(), np.float32)
    return s + self.train.tie_break()[None, :]


def item_similarity(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
  """Top-k shrunk cosine between columns of a binary user×item matrix, diagonal removed."""
  xc = x.tocsc()
  co = (xc.T @ xc).tocsr().astype(np.float32)
  n = np.asarray(xc.sum(0)).ravel().astype(np.float32)
  co = co.tocoo()
  val = co.data / (np.sqrt(n[co.row] * n[co.col]) + shrink)
  val[co.row == co.col] = 0.0
  s = sp.csr_matrix((val.astype(np.float32), (co.row, co.col)), shape=co.shape)
  s.eliminate_zeros()
  return _top_k_rows(s, k)


def fit_itemknn(ds, split, *, target: str, cfg=None) -> ItemKNN:
  o = common.options(cfg, ITEMKNN_DEFAULTS, "itemknn")
  td = common.train_data(ds, split, target, consumer="itemknn")
  return ItemKNN(td, item_similarity(td.target, int(o.k), float(o.shrink)))


@dataclasses.dataclass
class UserKNN:
  """sim(q, v) = cos(q_target, v_target) + source_weight * cos(q_source, v_source), over
  training users v that have target rows (the only ones that can recommend a target item);
  score = sum of the k most similar users' target rows, weighted by sim.

  Why two cosines rather than one over the concatenated row: a cold user (0-1 target items)
  then still finds neighbours through the source block, and a heavy source history cannot
  drown the target signal of a warm user.  The example's own user is never its neighbour
  (its training row is its input, not a neighbour's opinion).
  """

  train: common.TrainData
  cand: np.ndarray  # [C] training users with >= 1 target row
  tgt_n: sp.csr_matrix  # [C, n_items] row-normalised target rows
  src_n: sp.csr_matrix | None  # [C, n_source_items] row-normalised source rows
  k: int
  source_weight: float

  @staticmethod
  def _cos(q: sp.csr_matrix, ref_n: sp.csr_matrix) -> np.ndarray:
    return np.asarray((_row_normalise(q) @ ref_n.T).todense(), np.float32)

  def score(self, batch) -> np.ndarray:
    sim = self._cos(
      common.rows_csr(batch["hist"], batch["hist_mask"], self.train.n_items), self.tgt_n
    )
    if self.src_n is not None:
      q = common.rows_csr(batch["src_hist"], batch["src_mask"], self.src_n.shape[1])
      sim += self.source_weight * self._cos(q, self.src_n)
    sim[np.asarray(batch["user"])[:, None] == self.cand[None, :]] = 0.0
    kk = min(self.k, sim.shape[1])
    idx = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
    w = np.zeros_like(sim)
    np.put_along_axis(w, idx, np.take_along_axis(sim, idx, 1), 1)
    s = np.asarray((sp.csr_matrix(w) @ self.train.target[self.cand]).todense(), np.float32)
    return s + self.train.tie_break()[None, :]


def _row_normalise(x: sp.csr_matrix) -> sp.csr_matrix:
  n = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
  return sp.csr_matrix(sp.diags(1.0 / np.where(n > 0, n, 1.0)) @ x, dtype=np.float32)


def fit_userknn(ds, split, *, target: str, cfg=None) -> UserKNN:
  o = common.options(cfg, USERKNN_DEFAULTS, "userknn")
  td = common.train_data(ds, split, target, consumer="userknn")
  cand = np.nonzero(np.diff(td.target.indptr))[0].astype(np.int32)
  use_src = bool(o.use_source) and td.source.shape[1] > 0
  return UserKNN(
    td,
    cand,
    _row_normalise(td.target[cand]),
    _row_normalise(td.source[cand]) if use_src else None,
    int(o.k),
    float(o.source_weight),
  )
