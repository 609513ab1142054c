"""Preprocessing: text normalisation, user subsample, dedup, dropping text-less items, k-core.

Each step is a function `dataset -> dataset` that records what it removed in
`dataset.log.dropped[domain][step]`; nothing is removed silently.  Domains that ship their own
split (UniSRec files) are never filtered: removing a row there would change the given split, so
every step passes them through unchanged.
"""

from __future__ import annotations

import dataclasses
import html
import re
import unicodedata

import numpy as np

from xdkt_jax.data.schema import CrossDomainDataset, DataError, Domain

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]{0,200}>")


def normalize_text(s) -> str:
  """Unicode NFKC, HTML entities and tags out, control chars out, whitespace collapsed.

  None / NaN / non-strings become '' (a missing field), never the string 'None'.
  """
  if s is None or not isinstance(s, str):
    return ""
  s = html.unescape(s)
  s = _TAG.sub(" ", s)
  s = unicodedata.normalize("NFKC", s)
  s = _CONTROL.sub(" ", s)
  return _SPACE.sub(" ", s).strip()


def _replace(ds: CrossDomainDataset, domains: dict[str, Domain]) -> CrossDomainDataset:
  return dataclasses.replace(ds, domains=domains, log=ds.log)


def normalize(ds: CrossDomainDataset) -> CrossDomainDataset:
  """Normalises every text field; counts items whose whole text is empty as `missing_text`.

  Nothing is dropped here; the count tells how many items `drop_items_without_text` would hit.
  """
  out = {}
  for name, d in ds.domains.items():
    text = {
      f: np.array([normalize_text(x) for x in col], dtype=object) for f, col in d.items.text.items()
    }
    items = dataclasses.replace(d.items, text=text)
    empty = int(sum(1 for s in items.joined_text() if not s)) if text else len(items)
    ds.log.notes.setdefault(name, {})["missing_text"] = empty
    out[name] = dataclasses.replace(d, items=items)
  return _replace(ds, out)


def dedup(ds: CrossDomainDataset, keep: str = "first") -> CrossDomainDataset:
  """Repeated (user, item) pairs within a domain: keep the first, the last, or all of them.

  First/last are by the order key (ties by file row).  Counted as `dedup` (interactions).
  """
  if keep not in ("first", "last", "all"):
    raise ValueError(f"config.data.dedup: expected first|last|all, got {keep!r}")
  if keep == "all":
    return ds
  out = {}
  for name, d in ds.domains.items():
    if d.given_split is not None:
      out[name] = d
      continue
    perm = d.inter.sorted_by_user_order()
    if keep == "last":
      perm = perm[::-1]
    key = d.inter.user[perm].astype(np.int64) * (d.n_items + 1) + d.inter.item[perm]
    _, first = np.unique(key, return_index=True)
    rows = np.sort(perm[first])
    ds.log.drop(name, "dedup", len(d.inter) - len(rows))
    out[name] = dataclasses.replace(d, inter=d.inter.take(rows))
  return _replace(ds, out)


def _reindex_items(d: Domain, keep_items: np.ndarray) -> Domain:
  """Keeps the items flagged in the boolean `keep_items`; drops their interactions; compacts ids."""
  new_id = np.full(d.n_items, -1, dtype=np.int32)
  new_id[keep_items] = np.arange(int(keep_items.sum()), dtype=np.int32)
  rows = np.nonzero(keep_items[d.inter.item])[0]
  inter = d.inter.take(rows)
  inter = dataclasses.replace(inter, item=new_id[inter.item])
  return dataclasses.replace(d, items=d.items.take(np.nonzero(keep_items)[0]), inter=inter)


def drop_items_without_text(ds: CrossDomainDataset) -> CrossDomainDataset:
  """Removes items whose text is empty, and their interactions.

  Counted as `no_text_items` (items) and `no_text_interactions` (interactions).
  """
  out = {}
  for name, d in ds.domains.items():
    has_text = np.array([bool(s) for s in d.items.joined_text()], dtype=bool)
    if has_text.all() or d.given_split is not None:
      out[name] = d
      continue
    nd = _reindex_items(d, has_text)
    ds.log.drop(name, "no_text_items", d.n_items - nd.n_items)
    ds.log.drop(name, "no_text_interactions", len(d.inter) - len(nd.inter))
    out[name] = nd
  return _replace(ds, out)


def kcore(
  ds: CrossDomainDataset, user_k: int, item_k: int, prune_catalogue: bool = True
) -> CrossDomainDataset:
  """Iterative k-core per domain: repeat until every user has >= user_k and every item
  >= item_k interactions in that domain.

  Counted as `kcore_interactions`; with `prune_catalogue`, items left with fewer than item_k
  interactions (including never-used catalogue items) leave the catalogue: `kcore_items`.
  """
  if user_k <= 1 and item_k <= 1:
    return ds
  out = {}
  for name, d in ds.domains.items():
    if d.given_split is not None:
      out[name] = d
      continue
    alive = np.ones(len(d.inter), dtype=bool)
    n_users = int(d.inter.user.max()) + 1 if len(d.inter) else 0
    while True:
      u_cnt = np.bincount(d.inter.user[alive], minlength=n_users)
      i_cnt = np.bincount(d.inter.item[alive], minlength=d.n_items)
      bad = alive & ((u_cnt[d.inter.user] < user_k) | (i_cnt[d.inter.item] < item_k))
      if not bad.any():
        break
      alive &= ~bad
    ds.log.drop(name, "kcore_interactions", int((~alive).sum()))
    nd = dataclasses.replace(d, inter=d.inter.take(np.nonzero(alive)[0]))
    if prune_catalogue:
      i_cnt = np.bincount(nd.inter.item, minlength=d.n_items)
      keep = i_cnt >= max(item_k, 1)
      if not keep.all():
        before = nd.n_items
        nd = _reindex_items(nd, keep)
        ds.log.drop(name, "kcore_items", before - nd.n_items)
    out[name] = nd
  return _replace(ds, out)


SUBSAMPLE_MODES = ("uniform", "overlap_first")


def subsample_users(
  ds: CrossDomainDataset, max_users: int, *, mode: str = "uniform", seed: int = 0
) -> CrossDomainDataset:
  """Keeps at most `max_users` users (0 = all) with ALL their rows in every domain, so a
  large dataset can be tried on a laptop with its cross-domain structure intact: a user is
  kept or dropped in every domain at once, and a kept user's sequences are whole.

  mode 'uniform': a uniform random sample of the users with >= 1 row (seeded).
  mode 'overlap_first': users active in >= 2 domains first (the ones transfer acts on; a
  uniform sample of them if they alone exceed max_users), the rest filled uniformly.  A
  BIASED sample, named as such in the stats.
  Items left with no row leave the catalogue.  Counted per domain as `subsample_interactions`
  and `subsample_items`; notes `subsample_users_dropped`.  Domains with a given split are kept
  whole, as in the other steps.
  """
  if mode not in SUBSAMPLE_MODES:
    raise ValueError(f"config.data.subsample: expected one of {SUBSAMPLE_MODES}, got {mode!r}")
  if max_users < 0:
    raise ValueError(f"config.data.max_users: expected >= 0 (0 = every user), got {max_users}")
  filt = {n: d for n, d in ds.domains.items() if d.given_split is None}
  n_users = ds.n_users
  domains_per_user = np.zeros(n_users, np.int64)
  for d in filt.values():
    active = np.zeros(n_users, bool)
    active[d.inter.user] = True
    domains_per_user += active
  users = np.nonzero(domains_per_user > 0)[0]
  if max_users == 0 or len(users) <= max_users:
    return ds
  rng = np.random.default_rng(seed)
  if mode == "uniform":
    keep_users = rng.choice(users, max_users, replace=False)
  else:
    multi = np.nonzero(domains_per_user >= 2)[0]
    single = np.nonzero(domains_per_user == 1)[0]
    if len(multi) >= max_users:
      keep_users = rng.choice(multi, max_users, replace=False)
    else:
      keep_users = np.concatenate(
        [multi, rng.choice(single, max_users - len(multi), replace=False)]
      )
  keep = np.zeros(n_users, bool)
  keep[keep_users] = True
  out = dict(ds.domains)
  for name, d in filt.items():
    rows = np.nonzero(keep[d.inter.user])[0]
    nd = dataclasses.replace(d, inter=d.inter.take(rows))
    ds.log.drop(name, "subsample_interactions", len(d.inter) - len(rows))
    ds.log.notes.setdefault(name, {})["subsample_users_dropped"] = int(
      len(np.unique(d.inter.user)) - len(np.unique(nd.inter.user))
    )
    used = np.bincount(nd.inter.item, minlength=d.n_items) > 0
    if not used.all():
      nd = _reindex_items(nd, used)
      ds.log.drop(name, "subsample_items", d.n_items - nd.n_items)
    out[name] = nd
  return _replace(ds, out)


def preprocess(ds: CrossDomainDataset, data_cfg) -> CrossDomainDataset:
  """The configured pipeline, in a fixed order: normalise → user subsample → dedup → no-text
  → k-core."""
  ds = dataclasses.replace(ds, log=ds.log.copy())
  ds = normalize(ds)
  ds = subsample_users(
    ds,
    int(data_cfg.get("max_users", 0)),
    mode=str(data_cfg.get("subsample", "uniform")),
    seed=int(data_cfg.get("subsample_seed", 0)),
  )
  ds = dedup(ds, data_cfg.get("dedup", "first"))
  if data_cfg.get("drop_items_without_text", True):
    ds = drop_items_without_text(ds)
  k = int(data_cfg.get("kcore", 0))
  user_k, item_k = int(data_cfg.get("user_k", -1)), int(data_cfg.get("item_k", -1))
  ds = kcore(
    ds,
    k if user_k < 0 else user_k,
    k if item_k < 0 else item_k,
    prune_catalogue=data_cfg.get("kcore_prune_catalogue", True),
  )
  for name, d in ds.domains.items():
    if len(d.inter) == 0:
      raise DataError(
        d.source or name,
        f"domain '{name}' has no interactions left after "
        f"preprocessing (dropped: {ds.log.dropped.get(name, {})})",
      )
  return ds
