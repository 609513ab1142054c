"""Leakage checks: nothing evaluated reaches anything that is fitted, and every input history is
what the protocol says it is.

Three doors, each checked where data passes through it:

  * the split (`check_split`, run by `protocols.make_split`): valid/test targets are not
    training rows and not each other's; no evaluated (user, target) pair is among the user's
    training pairs (a shipped split's genuine repeats are counted, not refused); every input
    history is the user's own earlier rows — traced by row id, or, for a split the dataset
    ships (no row ids), by (user, item, position) in the user's sequence; no training row of
    an evaluated user lies at or after their earliest target (the future);
  * every consumer of interactions (`training_rows`): the sequential recommenders' batches,
    item-kNN / user-kNN / popularity counts, the MF / EMCDR / CMF matrices, source histories
    and user knowledge take their rows through this door, which refuses any row that is an
    evaluation target or lies in an evaluated user's future — whatever `split.train_rows`
    says, so a tampered split fails here too, naming the consumer;
  * text-only stages: the LM corpus must hold each catalogue item's text at most as often as
    the catalogue does (`check_text_corpus`: no interaction-weighted text), and the knowledge
    labels are built from `text_only(ds)`, a view whose interactions raise when read.
"""

from __future__ import annotations

import dataclasses

import numpy as np


class LeakageError(AssertionError):
  pass


# ---------------------------------------------------------------------------------------------
# Positions and the rows nothing may fit on.


def row_positions(d) -> np.ndarray:
  """[n_rows] int64: each row's 0-based position in its user's sequence (order key, then
  file row), the order every protocol uses."""
  perm = d.inter.sorted_by_user_order()
  users = d.inter.user[perm]
  start = np.r_[True, users[1:] != users[:-1]] if len(perm) else np.zeros(0, bool)
  first = np.maximum.accumulate(np.where(start, np.arange(len(perm)), 0)) if len(perm) else perm
  pos = np.empty(len(perm), np.int64)
  pos[perm] = np.arange(len(perm)) - first
  return pos


def _user_sequences(d):
  """(offsets [n_users+1], rows ordered by user then position) for tracing by position."""
  perm = d.inter.sorted_by_user_order()
  n_users = int(d.inter.user.max(initial=-1)) + 1
  off = np.zeros(n_users + 1, np.int64)
  np.cumsum(np.bincount(d.inter.user, minlength=n_users), out=off[1:])
  return off, perm


def _trace_given(d, es, dname: str, part: str) -> np.ndarray:
  """Target positions of a shipped split's examples, found by (user, item, position): the
  latest position p of the user's sequence holding the target whose preceding items are the
  example's history (a history longer than what precedes p, as when the data capped it, must
  match on the overlap).  An example that cannot be traced is refused."""
  off, perm = _user_sequences(d)
  items = d.inter.item[perm]
  out = np.empty(len(es), np.int64)
  for j in range(len(es)):
    u = int(es.user[j])
    if u + 1 >= len(off):
      raise LeakageError(f"{dname}/{part}: example {j} (user {u}) has no rows in the domain")
    seq = items[off[u] : off[u + 1]]
    hist = es.history(j)
    found = -1
    for p in np.nonzero(seq == es.target[j])[0][::-1]:
      h = min(len(hist), int(p))
      if np.array_equal(seq[p - h : p], hist[len(hist) - h :]):
        found = int(p)
        break
    if found < 0:
      raise LeakageError(
        f"{dname}/{part}: example {j} (user {u}, item {int(es.target[j])}) cannot be traced "
        "in the user's sequence: its history is not the items before its target"
      )
    out[j] = found
  return out


def _in_range(rows: np.ndarray, n: int, what: str) -> None:
  if len(rows) and (rows.min() < 0 or rows.max() >= n):
    raise LeakageError(f"{what} out of range")


def _check_row_traced(d, es, pos, dname: str, part: str) -> np.ndarray:
  """Target positions of a row-traced part; its histories must be the user's earlier rows."""
  rows = es.row
  _in_range(rows, len(d.inter), f"{dname}/{part}: target row")
  bad = (d.inter.user[rows] != es.user) | (d.inter.item[rows] != es.target)
  if bad.any():
    j = int(np.nonzero(bad)[0][0])
    raise LeakageError(
      f"{dname}/{part}: {int(bad.sum())} targets are not the user's own row "
      f"(first: example {j}, row {int(rows[j])})"
    )
  hrows = getattr(es, "hist_rows", None)
  if hrows is None:
    raise LeakageError(f"{dname}/{part}: the examples carry target rows but no history rows")
  if len(hrows) != len(es.hist_items):
    raise LeakageError(
      f"{dname}/{part}: {len(hrows)} history rows for {len(es.hist_items)} history items"
    )
  ex = np.repeat(np.arange(len(es)), np.diff(es.hist_offsets))
  if len(hrows):
    _in_range(hrows, len(d.inter), f"{dname}/{part}: history row")
    wrong = (
      (d.inter.user[hrows] != es.user[ex])
      | (d.inter.item[hrows] != es.hist_items)
      | (pos[hrows] >= pos[rows[ex]])
    )
    if wrong.any():
      j = int(ex[np.nonzero(wrong)[0][0]])
      raise LeakageError(
        f"{dname}/{part}: {int(wrong.sum())} history entries are not the user's own earlier "
        f"rows (first: example {j}, user {int(es.user[j])}, target item "
        f"{int(es.target[j])}) — an input history may only hold what came before its target"
      )
  return pos[rows]


def _guarded_eval(split) -> dict:
  return getattr(split, "heldout", None) or split.eval


def forbidden_rows(ds, split, dname: str) -> np.ndarray:
  """[n_rows] bool: the rows of `dname` nothing may fit on — every row of an evaluated user at
  or after their earliest evaluation target (targets included).  Computed from the split's
  evaluation examples alone, never from `train_rows`, and cached on the split."""
  cache = split.__dict__.setdefault("_forbidden", {})
  if dname in cache:
    return cache[dname]
  d = ds.domains[dname]
  parts = _guarded_eval(split).get(dname, {})
  pos = row_positions(d)
  first = np.full(ds.n_users, np.iinfo(np.int64).max, np.int64)
  for part, es in parts.items():
    if not len(es):
      continue
    traced = es.row >= 0
    p = np.empty(len(es), np.int64)
    if traced.all():
      p[:] = _check_row_traced(d, es, pos, dname, part)
    elif not traced.any():
      p[:] = _trace_given(d, es, dname, part)
    else:
      raise LeakageError(f"{dname}/{part}: some targets carry rows and some do not")
    np.minimum.at(first, es.user.astype(np.int64), p)
  out = pos >= first[d.inter.user]
  cache[dname] = out
  return out


def training_rows(ds, split, dname: str, *, consumer: str) -> np.ndarray:
  """The rows of `dname` that `consumer` may fit on: `split.train_rows[dname]`, refused (one
  line naming the consumer) if any of them is an evaluation target or an evaluated user's
  later row."""
  rows = np.asarray(split.train_rows.get(dname, np.zeros(0, np.int64)), np.int64)
  d = ds.domains[dname]
  _in_range(rows, len(d.inter), f"{consumer}: a training row of {dname}")
  if dname in _guarded_eval(split):
    bad = forbidden_rows(ds, split, dname)[rows]
    if bad.any():
      r = int(rows[np.nonzero(bad)[0][0]])
      raise LeakageError(
        f"{consumer}: {int(bad.sum())} of the rows it would fit on in {dname} are "
        f"evaluation targets or later rows of an evaluated user (first: row {r}, user "
        f"{int(d.inter.user[r])}, item {int(d.inter.item[r])})"
      )
  return rows


# ---------------------------------------------------------------------------------------------
# The split.


def check_split(ds, split) -> None:
  """Raises LeakageError if any evaluation target is visible to training or any input history
  holds what it must not (module docstring).  Counts a shipped split's genuine repeat targets
  in `split.info`."""
  for dname, parts in split.eval.items():
    if split.protocol != "multi_domain" and dname not in split.targets:
      raise LeakageError(f"{dname}: evaluated but not a target")
    d = ds.domains[dname]
    tr = np.asarray(split.train_rows.get(dname, np.zeros(0, np.int64)), np.int64)
    _in_range(tr, len(d.inter), f"{dname}: training row")
    forbidden = forbidden_rows(ds, split, dname)  # traces every history on the way
    if forbidden[tr].any():
      train_mask = np.zeros(len(d.inter), bool)
      train_mask[tr] = True
      n_t = sum(int(train_mask[es.row[es.row >= 0]].sum()) for es in parts.values())
      what = (
        f"{n_t} target rows are also training rows"
        if n_t
        else f"{int(forbidden[tr].sum())} training rows lie at or after an evaluated user's "
        "target (the future)"
      )
      raise LeakageError(f"{dname}: {what}")
    key = lambda u, i: u.astype(np.int64) * (d.n_items + 1) + i.astype(np.int64)
    train_pairs = np.unique(key(d.inter.user[tr], d.inter.item[tr]))
    seen_rows = {}
    for part, es in parts.items():
      rows = es.row[es.row >= 0]
      for other, orow in seen_rows.items():
        if np.intersect1d(rows, orow).size:
          raise LeakageError(f"{dname}: {part} and {other} share target rows")
      seen_rows[part] = rows
      leaked = np.isin(key(es.user, es.target), train_pairs)
      given = es.row < 0
      if (leaked & given).any():
        # A split the dataset ships (UniSRec files) keeps genuine repeat purchases: the
        # published protocol evaluates them as they are, so they are counted, not refused.
        split.info[f"{dname}/{part}/given_split_repeat_targets"] = int((leaked & given).sum())
        leaked = leaked & ~given
      if leaked.any():
        j = int(np.nonzero(leaked)[0][0])
        raise LeakageError(
          f"{dname}/{part}: {int(leaked.sum())} targets appear in the same "
          f"user's training input (first: user {int(es.user[j])}, "
          f"item {int(es.target[j])})"
        )


# ---------------------------------------------------------------------------------------------
# Text-only stages.


def check_text_corpus(corpus, tok, *, consumer: str = "LM corpus") -> None:
  """The LM corpus holds item text only: per domain, its train + held-out rows are catalogue
  rows (`tok.ids`), each at most as often as in the catalogue — text weighted or chosen by
  interactions (which would carry test behaviour into the encoder) fails."""
  for d in set(corpus.train) | set(corpus.heldout):
    parts = [p[d] for p in (corpus.train, corpus.heldout) if d in p]
    for p in parts:
      if set(p) != {"ids", "mask"}:
        raise LeakageError(
          f"{consumer}: domain {d} carries {sorted(p)}; only item text "
          "(ids, mask) may reach the language model"
        )
    ids = np.concatenate([p["ids"] for p in parts])
    if ids.shape[1:] != tok.ids[d].shape[1:]:
      raise LeakageError(f"{consumer}: domain {d} rows are not catalogue token rows")
    cat_keys, cat_counts = np.unique(_row_keys(tok.ids[d]), return_counts=True)
    keys, counts = np.unique(_row_keys(ids), return_counts=True)
    at = np.searchsorted(cat_keys, keys)
    known = (at < len(cat_keys)) & (cat_keys[np.minimum(at, len(cat_keys) - 1)] == keys)
    if not known.all():
      raise LeakageError(
        f"{consumer}: {int((~known).sum())} text rows of domain {d} are not catalogue items"
      )
    over = counts > cat_counts[at]
    if over.any():
      raise LeakageError(
        f"{consumer}: {int(over.sum())} items of domain {d} appear more "
        "often than in the catalogue (text weighted by interactions?)"
      )


def _row_keys(a: np.ndarray) -> np.ndarray:
  a = np.ascontiguousarray(a)
  return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).reshape(-1)


class _NoInteractions:
  """Stands where a text-only view's interactions would be: any read raises."""

  def __init__(self, domain: str, consumer: str):
    self._where = (domain, consumer)

  def __getattr__(self, name):
    domain, consumer = object.__getattribute__(self, "_where")
    raise LeakageError(
      f"{consumer}: read the interactions of {domain} ({name}); it may read item text only"
    )

  def __len__(self):
    return self.__getattr__("__len__")


def text_only(ds, *, consumer: str):
  """A view of `ds` with the same items and no readable interactions: what the knowledge
  labels (L_k) are built from, so they cannot depend on who consumed what."""
  domains = {
    n: dataclasses.replace(d, inter=_NoInteractions(n, consumer), given_split=None)
    for n, d in ds.domains.items()
  }
  return dataclasses.replace(ds, domains=domains, user_split=None)
