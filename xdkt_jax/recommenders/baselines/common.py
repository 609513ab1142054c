"""What every baseline shares: options, training matrices, and batch rows as sparse vectors.

The leakage discipline lives here: `train_data` is the ONLY door from a split to a baseline,
and it takes its rows through `leakage.training_rows` (never `split.eval`, never the withheld
rows, and never a row the split's evaluation examples forbid), so no baseline can see an
evaluation target unless it digs into `ds` itself.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import scipy.sparse as sp

from xdkt_jax.data import leakage
from xdkt_jax.data.inputs import source_offsets
from xdkt_jax.data.splits import Split
from xdkt_jax.data.schema import CrossDomainDataset

# Ties are broken by training popularity at this scale (scores are similarities or logits of
# order 1e-2 .. 1e1).  Why: the evaluator ranks ties pessimistically, so a user with no
# usable input (all-zero row) would otherwise rank every target last instead of falling back
# to popularity, the standard CF fallback.
TIE_EPS = 1e-5


def options(cfg, defaults: dict, name: str) -> types.SimpleNamespace:
  """cfg (None, dict or ConfigDict) over `defaults`; an unknown key raises (typos are silent
  otherwise, and a silently ignored hyper-parameter poisons a comparison table)."""
  cfg = {} if cfg is None else (cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg))
  unknown = sorted(set(cfg) - set(defaults))
  if unknown:
    raise ValueError(f"baseline {name!r}: unknown option(s) {unknown}; known: {sorted(defaults)}")
  return types.SimpleNamespace(**{**defaults, **cfg})


@dataclasses.dataclass
class TrainData:
  """A baseline's whole view of the training data of one target domain.

  target  csr [n_users, n_items] float32, 1 where the user has a TRAINING row with the item
  source  csr [n_users, n_source_items] float32, the same over all source domains with global
          source ids (`inputs.source_offsets`); 0 columns when the split has no sources
  pop     [n_items] float32, training row count per target item
  """

  target: sp.csr_matrix
  source: sp.csr_matrix
  pop: np.ndarray
  source_offsets: dict[str, int]

  @property
  def n_users(self) -> int:
    return self.target.shape[0]

  @property
  def n_items(self) -> int:
    return self.target.shape[1]

  def pairs(self) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) of every distinct training pair in the target domain."""
    c = self.target.tocoo()
    return c.row.astype(np.int32), c.col.astype(np.int32)

  def source_block(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of the source domain each global source id belongs to (negatives for a
    source positive must come from its own domain)."""
    starts = np.array(sorted(self.source_offsets.values()) + [self.source.shape[1]], np.int64)
    b = np.searchsorted(starts, cols, side="right") - 1
    return starts[b], starts[b + 1]

  def tie_break(self) -> np.ndarray:
    """[n_items] float32 in [0, TIE_EPS]: popularity, scaled to only break ties."""
    m = float(self.pop.max()) if len(self.pop) else 0.0
    return (TIE_EPS * self.pop / m if m > 0 else np.zeros_like(self.pop)).astype(np.float32)


def _binary(users, items, n_users, n_cols) -> sp.csr_matrix:
  x = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_cols))
  x.sum_duplicates()
  x.data[:] = 1.0
  return x


def train_data(
  ds: CrossDomainDataset, split: Split, target: str, *, consumer: str = "baseline"
) -> TrainData:
  if target not in ds.domains:
    raise ValueError(f"target {target!r} is not a domain of the dataset {ds.domain_names}")
  d = ds.domains[target]
  rows = leakage.training_rows(ds, split, target, consumer=f"{consumer} (target matrix)")
  u, i = d.inter.user[rows], d.inter.item[rows]
  offs = source_offsets(ds, split)
  su, si, n_src = [], [], 0
  for s in split.sources:
    sd = ds.domains[s]
    r = leakage.training_rows(ds, split, s, consumer=f"{consumer} (source matrix)")
    su.append(sd.inter.user[r])
    si.append(sd.inter.item[r].astype(np.int64) + offs[s])
    n_src += sd.n_items
  cat = lambda a: np.concatenate(a) if a else np.zeros(0, np.int64)
  return TrainData(
    target=_binary(u, i, ds.n_users, d.n_items),
    source=_binary(cat(su), cat(si), ds.n_users, n_src),
    pop=np.bincount(i, minlength=d.n_items).astype(np.float32),
    source_offsets=offs,
  )


def rows_csr(ids_BxL, mask_BxL, n_cols: int) -> sp.csr_matrix:
  """Padded id rows + mask → binary csr [B, n_cols] (repeats collapse to 1)."""
  ids, m = np.asarray(ids_BxL), np.asarray(mask_BxL).astype(bool)
  r = np.nonzero(m)[0]
  return _binary(r, ids[m].astype(np.int64), ids.shape[0], n_cols)


def mean_rows(vec_NxD: np.ndarray, ids_BxL, mask_BxL) -> tuple[np.ndarray, np.ndarray]:
  """Masked mean of vec rows per example: ([B, D] float32, [B] number of valid ids)."""
  m = np.asarray(mask_BxL).astype(np.float32)
  n = m.sum(1)
  s = np.einsum("bl,bld->bd", m, vec_NxD[np.asarray(ids_BxL)])
  return (s / np.maximum(n, 1.0)[:, None]).astype(np.float32), n


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
  n = np.linalg.norm(x, axis=axis, keepdims=True)
  return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


def zscore_rows(x_BxN: np.ndarray) -> np.ndarray:
  """Per-row z-score; a constant row becomes 0 (it carries no preference)."""
  x = np.asarray(x_BxN, np.float32)
  mu, sd = x.mean(1, keepdims=True), x.std(1, keepdims=True)
  return ((x - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
