"""Non-LM baselines for cross-domain recommendation, one family per file.

Every baseline: `fit(ds, split, *, target, cfg) -> model`, `model.score(batch) -> [B, N]`
float32 numpy over the FULL target catalogue (N = ds.domains[target].n_items), where batch is a
slice of `data.inputs.eval_arrays` (user, target, hist, hist_mask, src_hist, src_mask).  Models
read only `split.train_rows` (via `common.train_data`, kept as `model.train`) and never
`batch['target']`.  Scores are raw: excluding history items is the evaluator's job.

  pop       training popularity in the target domain                  pop.py
  itemknn   item-item cosine over target training rows                knn.py
  userknn   user-user cosine (target + source blocks)                 knn.py
  bpr_mf    BPR matrix factorisation, target only (JAX)                mf.py
  cmf       collective BPR-MF, user factors shared across domains      mf.py
  emcdr     per-domain BPR-MF + source→target user-factor mapping      emcdr.py
  text_knn  cosine to the mean item-text vector of the user's items    text.py
  hybrid    z-scored blend of itemknn (or bpr_mf) and text_knn         hybrid.py

cfg is None, a dict or a ConfigDict of the baseline's own options (each file's DEFAULTS;
an unknown key raises).  `text_knn`/`hybrid` also take `item_vectors={domain: [n_items, D]}`
(default: TF-IDF of the item text).
"""

from __future__ import annotations

from xdkt_jax.recommenders.baselines import emcdr, hybrid, knn, mf, pop, text
from xdkt_jax.recommenders.baselines.common import TrainData, train_data
from xdkt_jax.recommenders.baselines.text import tfidf_vectors

BASELINES = {
  "pop": pop.fit,
  "itemknn": knn.fit_itemknn,
  "userknn": knn.fit_userknn,
  "bpr_mf": mf.fit_bpr_mf,
  "cmf": mf.fit_cmf,
  "emcdr": emcdr.fit,
  "text_knn": text.fit,
  "hybrid": hybrid.fit,
}
TEXT_BASELINES = ("text_knn", "hybrid")  # the ones that accept item_vectors=


def fit(name: str, ds, split, *, target: str, cfg=None, **kw):
  """Fit baseline `name` (a key of BASELINES)."""
  if name not in BASELINES:
    raise ValueError(f"unknown baseline {name!r}; one of {sorted(BASELINES)}")
  if kw and name not in TEXT_BASELINES:
    raise TypeError(f"baseline {name!r} takes no extra arguments {sorted(kw)}")
  return BASELINES[name](ds, split, target=target, cfg=cfg, **kw)


__all__ = ["BASELINES", "TEXT_BASELINES", "TrainData", "fit", "tfidf_vectors", "train_data"]
