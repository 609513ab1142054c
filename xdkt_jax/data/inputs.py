"""Model-facing arrays from a split: what a recommender may see for each example.

Source domains are concatenated into one source catalogue: source item (domain s, item i) has
global id `source_offsets[s] + i`, so a model over several sources sees one vocabulary.
"""

from __future__ import annotations

import numpy as np

from xdkt_jax.data.batching import pad_sequences
from xdkt_jax.data.splits import Split, train_sequences
from xdkt_jax.data.schema import CrossDomainDataset


def source_offsets(ds: CrossDomainDataset, split: Split) -> dict[str, int]:
  off, n = {}, 0
  for s in split.sources:
    off[s] = n
    n += ds.domains[s].n_items
  return off


def source_sequences(ds: CrossDomainDataset, split: Split):
  """Each user's TRAINING source items (all source domains, global source ids), CSR over users.

  Within a domain items are in order; across domains they are grouped by domain (not
  interleaved), because cross-domain order is not real in general.
  """
  offs = source_offsets(ds, split)
  per_user: list[list[np.ndarray]] = [[] for _ in range(ds.n_users)]
  for s in split.sources:
    o, items = train_sequences(ds, split, s, consumer="source histories")
    nz = np.nonzero(np.diff(o))[0]
    for u in nz:
      per_user[u].append(items[o[u] : o[u + 1]] + offs[s])
  lens = np.array([sum(len(a) for a in p) for p in per_user], dtype=np.int64)
  offsets = np.zeros(ds.n_users + 1, dtype=np.int64)
  np.cumsum(lens, out=offsets[1:])
  flat = [a for p in per_user for a in p]
  items = np.concatenate(flat).astype(np.int32) if flat else np.zeros(0, np.int32)
  return offsets, items


def exclusion_lists(
  ds: CrossDomainDataset, split: Split, domain: str, part: str, rule: str
) -> tuple[np.ndarray, np.ndarray]:
  """The items each example of split.eval[domain][part] must not be ranked with, as padded
  id lists ([n, L] int32 + int8 mask), under `rule` (conventions.EXCLUDE_RULES):

    none   nothing (one empty column)
    train  the items of the user's training rows in `domain` (all of them, not a window)
    all    the example's whole input history (not cut to the model's max_len)

  The lists are built from the user's inputs only; the example's target is never read, so a
  user's mask is the same whatever their target is.
  """
  es = split.eval[domain][part]
  n = len(es)
  if rule == "none":
    return np.zeros((n, 1), np.int32), np.zeros((n, 1), np.int8)
  if rule == "all":
    offsets, items = es.hist_offsets, es.hist_items
  elif rule == "train":
    u_off, u_items = train_sequences(ds, split, domain, consumer="evaluation mask (train)")
    lens = u_off[es.user + 1] - u_off[es.user]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    idx = (
      np.concatenate([np.arange(u_off[u], u_off[u + 1]) for u in es.user])
      if n
      else np.zeros(0, np.int64)
    )
    items = u_items[idx.astype(np.int64)]
  else:
    raise ValueError(f"exclusion_lists: rule must be none|train|all, got {rule!r}")
  width = max(1, int(np.diff(offsets).max(initial=0)))
  return pad_sequences(offsets, items, width)


def eval_arrays(
  ds: CrossDomainDataset,
  split: Split,
  domain: str,
  part: str,
  *,
  exclude_history: str,
  max_len: int = 50,
  src_max_len: int = 50,
) -> dict[str, np.ndarray]:
  """Every example of split.eval[domain][part] as fixed-shape arrays:

  user [n], target [n], hist [n, max_len] + hist_mask (target-domain input, most recent
  max_len, right-padded with 0), src_hist [n, src_max_len] + src_mask (the user's training
  source items, global source ids; empty for in_domain / multi_domain), exclude_items +
  exclude_mask (what the evaluator leaves out of the ranking, `exclusion_lists` under
  `exclude_history`; no default: every caller states its rule).
  """
  es = split.eval[domain][part]
  hist, hmask = pad_sequences(es.hist_offsets, es.hist_items, max_len)
  out = {
    "user": es.user.astype(np.int32),
    "target": es.target.astype(np.int32),
    "hist": hist,
    "hist_mask": hmask,
  }
  s_off, s_items = source_sequences(ds, split)
  if len(es):
    o = np.zeros(len(es) + 1, np.int64)
    lens = s_off[es.user + 1] - s_off[es.user]
    np.cumsum(lens, out=o[1:])
    idx = np.concatenate([np.arange(s_off[u], s_off[u + 1]) for u in es.user])
    src, smask = pad_sequences(o, s_items[idx.astype(np.int64)], src_max_len)
  else:
    src = np.zeros((0, src_max_len), np.int32)
    smask = np.zeros((0, src_max_len), np.int8)
  out["src_hist"], out["src_mask"] = src, smask
  out["exclude_items"], out["exclude_mask"] = exclusion_lists(
    ds, split, domain, part, exclude_history
  )
  return out
