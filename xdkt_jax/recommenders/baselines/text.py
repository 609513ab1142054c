"""Content-based baselines: `text_knn` and the TF-IDF item vectors it uses by default.

Text lives in ONE space across domains (the same words, or the same LM), so a user's source
items say something about target items even when the catalogues share no ids: the profile is
the mean of the user's target-history item vectors and (weighted) source-history ones.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import scipy.sparse as sp

from xdkt_jax.recommenders.baselines import common

DEFAULTS = dict(seed=0, use_source=True, source_weight=1.0, fields=None, max_features=4096)

_TOKEN = re.compile(r"[a-z0-9]+")


def tfidf_vectors(
  ds, *, fields=None, max_features: int | None = 4096, domains=None
) -> dict[str, np.ndarray]:
  """Per domain, [n_items, V] float32 L2-normalised TF-IDF of the items' joined text.

  ONE vocabulary and IDF over the items of all `domains` together (default: every domain),
  so vectors are comparable across domains.  tf = 1 + log(count); idf = log((1+n)/(1+df)) + 1
  (the smoothed sklearn form); the vocabulary keeps the `max_features` most frequent words.
  """
  names = list(ds.domains) if domains is None else list(domains)
  docs = {
    n: [_TOKEN.findall(str(t).lower()) for t in ds.domains[n].items.joined_text(fields)]
    for n in names
  }
  df: dict[str, int] = {}
  for toks in (t for n in names for t in docs[n]):
    for w in set(toks):
      df[w] = df.get(w, 0) + 1
  vocab_words = sorted(df, key=lambda w: (-df[w], w))[: max_features or None]
  vocab = {w: j for j, w in enumerate(vocab_words)}
  n_docs = sum(len(docs[n]) for n in names)
  idf = np.array([np.log((1 + n_docs) / (1 + df[w])) + 1 for w in vocab_words], np.float32)
  out = {}
  for n in names:
    rows, cols = [], []
    for r, toks in enumerate(docs[n]):
      js = [vocab[w] for w in toks if w in vocab]
      rows += [r] * len(js)
      cols += js
    tf = sp.csr_matrix(
      (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(docs[n]), len(vocab))
    )
    tf.sum_duplicates()
    tf.data = 1.0 + np.log(tf.data)
    out[n] = common.l2_normalize(tf.multiply(idf[None, :]).toarray())
  return out


@dataclasses.dataclass
class TextKNN:
  """score(u, j) = cos(profile(u), v_j), profile = mean(v_hist) + source_weight * mean(v_src)."""

  train: common.TrainData
  target_vec: np.ndarray  # [n_items, D] unit rows
  source_vec: np.ndarray | None  # [n_source_items, D] unit rows (global source ids)
  source_weight: float

  def profile(self, batch) -> np.ndarray:
    prof, _ = common.mean_rows(self.target_vec, batch["hist"], batch["hist_mask"])
    if self.source_vec is not None:
      s, _ = common.mean_rows(self.source_vec, batch["src_hist"], batch["src_mask"])
      prof = prof + self.source_weight * s
    return common.l2_normalize(prof)

  def score(self, batch) -> np.ndarray:
    return (self.profile(batch) @ self.target_vec.T + self.train.tie_break()[None, :]).astype(
      np.float32
    )


def fit(ds, split, *, target: str, cfg=None, item_vectors=None) -> TextKNN:
  """item_vectors: {domain: [n_items, D]} in one space (e.g. LM embeddings); default TF-IDF
  of the item text.  Training rows are used only for the popularity tie-break."""
  o = common.options(cfg, DEFAULTS, "text_knn")
  td = common.train_data(ds, split, target, consumer="text_knn")
  use_src = bool(o.use_source) and bool(split.sources)
  need = [target] + (list(split.sources) if use_src else [])
  if item_vectors is None:
    item_vectors = tfidf_vectors(
      ds, fields=o.fields, max_features=o.max_features, domains=[target, *split.sources]
    )
  for n in need:
    if n not in item_vectors:
      raise ValueError(f"text_knn: item_vectors has no entry for domain {n!r}")
    v = np.asarray(item_vectors[n])
    if v.ndim != 2 or v.shape[0] != ds.domains[n].n_items:
      raise ValueError(
        f"text_knn: item_vectors[{n!r}] has shape {v.shape}; expected [{ds.domains[n].n_items}, D]"
      )
  dims = {np.asarray(item_vectors[n]).shape[1] for n in need}
  if len(dims) != 1:
    raise ValueError(f"text_knn: item vector widths differ across domains: {dims}")
  tv = common.l2_normalize(np.asarray(item_vectors[target], np.float32))
  sv = None
  if use_src:  # global source ids are the sources concatenated in split.sources order
    sv = common.l2_normalize(
      np.concatenate([np.asarray(item_vectors[s], np.float32) for s in split.sources])
    )
  return TextKNN(td, tv, sv, float(o.source_weight))
