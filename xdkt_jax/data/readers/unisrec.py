"""UniSRec downstream files: per domain `<D>.text`, `<D>.user2index`, `<D>.item2index` and
the shipped split `<D>.train.inter` / `<D>.valid.inter` / `<D>.test.inter`.

The index files map original ids to integer indices; the `.inter` files hold indices, one
example per line (`user_id`, history `item_id_list`, target `item_id`); `.text` rows name
items by original id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xdkt_jax.data.readers.common import (
  catalogue_index,
  check_options,
  encode_users,
  int_column,
  lookup_items,
  make_domain,
  no_empty,
  object_array,
  select_domains,
)
from xdkt_jax.data.readers.recbole import read_table, require_column, text_columns
from xdkt_jax.data.schema import (
  CrossDomainDataset,
  DataError,
  Domain,
  GivenSplit,
  ItemTable,
  PrepLog,
  UserIndex,
  build_dataset,
)
from xdkt_jax.data.textio import open_text, require_dir, require_file

_UNISREC_SUFFIXES = (
  ".text",
  ".user2index",
  ".item2index",
  ".train.inter",
  ".valid.inter",
  ".test.inter",
)
_UNISREC_PARTS = ("train", "valid", "test")


def read_index_file(path, field: str) -> list[str]:
  """`<orig id>\\t<int>` lines (no header) -> original ids ordered by index 0..n-1."""
  require_file(path)
  ids, idx, lns = [], [], []
  for ln, line in open_text(path):
    if not line:
      continue
    parts = line.split("\t")
    if len(parts) != 2:
      raise DataError(
        path,
        f"expected 2 tab-separated columns (original id, integer index; "
        f"no header), got {len(parts)}",
        line=ln,
        field=field,
      )
    ids.append(parts[0])
    idx.append(parts[1])
    lns.append(ln)
  if not ids:
    raise DataError(path, "empty index file", line=1)
  no_empty(path, ids, lns, field)
  index = int_column(path, idx, lns, field + " index")
  n = len(ids)
  bad = (index < 0) | (index >= n)
  if bad.any():
    i = int(np.argmax(bad))
    raise DataError(
      path,
      f"index {index[i]} out of range: {n} ids need indices 0..{n - 1}",
      line=lns[i],
      field=field + " index",
    )
  out = [None] * n
  for k, j in enumerate(index.tolist()):
    if out[j] is not None:
      raise DataError(path, f"index {j} given twice", line=lns[k], field=field + " index")
    out[j] = ids[k]
  if len(set(ids)) != n:
    catalogue_index(path, ids, lns, field)  # raises, naming both lines
  return out


def _read_unisrec_part(path, n_users: int, n_items: int, index_names: tuple[str, str]):
  """One `<D>.<part>.inter` -> (user idx, offsets, history items, targets, line numbers)."""
  header, cols, lns = read_table(path, what="interaction file")
  ui = require_column(path, header, "user_id")
  hi = require_column(path, header, "item_id_list", ("token_seq",))
  ti = require_column(path, header, "item_id")
  if not lns:
    raise DataError(path, "no example rows after the header", line=1)
  user = int_column(path, cols[ui], lns, "user_id")
  target = int_column(path, cols[ti], lns, "item_id")
  toks, lengths = [], []
  for s in cols[hi]:
    t = s.split()
    toks.extend(t)
    lengths.append(len(t))
  offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
  np.cumsum(lengths, out=offsets[1:])
  tok_lns = np.repeat(np.asarray(lns), lengths).tolist()
  hist = int_column(path, toks, tok_lns, "item_id_list")
  for arr, field, n, src, row_ln in (
    (user, "user_id", n_users, index_names[0], lns),
    (target, "item_id", n_items, index_names[1], lns),
    (hist, "item_id_list", n_items, index_names[1], tok_lns),
  ):
    bad = (arr < 0) | (arr >= n)
    if bad.any():
      i = int(np.argmax(bad))
      raise DataError(
        path,
        f"index {arr[i]} out of range: not in {src} (indices 0..{n - 1})",
        line=row_ln[i],
        field=field,
      )
  return user, offsets, hist.astype(np.int32), target.astype(np.int32), lns


def _read_unisrec_text(
  path,
  catalogue: dict[str, int],
  n_items: int,
  name: str,
  on_unknown_item: str,
  log: PrepLog,
  index_name: str,
) -> dict[str, np.ndarray]:
  """`<D>.text` rows (original ids) placed at their item index; '' for items without a row."""
  header, cols, lns = read_table(path, what="text file")
  ii = require_column(path, header, "item_id")
  ids = cols[ii]
  no_empty(path, ids, lns, "item_id")
  catalogue_index(path, ids, lns, "item_id")
  idx = lookup_items(ids, catalogue)
  unknown = idx < 0
  if unknown.any():
    n = int(unknown.sum())
    i = int(np.argmax(unknown))
    if on_unknown_item == "error":
      raise DataError(
        path,
        f"unknown item '{ids[i]}': not in {index_name}; {n} text row(s) "
        "name unknown items (on_unknown_item='drop' drops and counts them)",
        line=lns[i],
        field="item_id",
      )
    log.drop(name, "text_unknown_item", n)
  keep = np.flatnonzero(~unknown)
  text = {}
  for field, col in text_columns(header, cols, ii).items():
    full = np.full(n_items, "", dtype=object)
    full[idx[keep]] = col[keep]
    text[field] = full
  return text


def _read_unisrec_domain(
  folder: Path, name: str, users: UserIndex, log: PrepLog, on_unknown_item: str
) -> Domain:
  f = {s: folder / f"{name}{s}" for s in _UNISREC_SUFFIXES}
  for p in f.values():
    require_file(p, "UniSRec file")
  user_orig = read_index_file(f[".user2index"], "user_id")
  item_orig = read_index_file(f[".item2index"], "item_id")
  catalogue = {x: i for i, x in enumerate(item_orig)}
  text = _read_unisrec_text(
    f[".text"], catalogue, len(item_orig), name, on_unknown_item, log, f[".item2index"].name
  )
  index_names = (f[".user2index"].name, f[".item2index"].name)
  raw = {
    p: _read_unisrec_part(f[f".{p}.inter"], len(user_orig), len(item_orig), index_names)
    for p in _UNISREC_PARTS
  }

  # Interactions: each user's full sequence once = the test line's history plus its target.
  t_user, t_off, t_hist, t_target, t_lns = raw["test"]
  first: dict[int, int] = {}
  for k, u in enumerate(t_user.tolist()):
    if u in first:
      raise DataError(
        f[".test.inter"],
        f"user {u} has two test lines (first on line "
        f"{first[u]}); the test split holds one line per user",
        line=t_lns[k],
        field="user_id",
      )
    first[u] = t_lns[k]
  for p in ("valid", "train"):  # the files must describe the same users
    u, _, _, _, p_lns = raw[p]
    stray = np.nonzero(~np.isin(u, t_user))[0]
    if len(stray):
      k = int(stray[0])
      raise DataError(
        f[f".{p}.inter"],
        f"user {int(u[k])} has no line in {name}.test.inter "
        f"({len(stray)} such lines); the UniSRec files disagree",
        line=p_lns[k],
        field="user_id",
      )
  lengths = np.diff(t_off) + 1
  n = int(lengths.sum())
  seq_start = np.cumsum(lengths) - lengths
  is_target = np.zeros(n, dtype=bool)
  is_target[seq_start + lengths - 1] = True
  item = np.empty(n, dtype=np.int32)
  item[is_target] = t_target
  item[~is_target] = t_hist
  order = (np.arange(n) - np.repeat(seq_start, lengths)).astype(np.float64)
  user_names = [user_orig[u] for u in np.repeat(t_user, lengths).tolist()]

  # Users enter the shared index in test order, then any only in valid / train.
  for p in ("test", "valid", "train"):
    users.encode([user_orig[u] for u in raw[p][0].tolist()])
  parts = {}
  for p in _UNISREC_PARTS:
    u, off, hist, tgt, _ = raw[p]
    shared = encode_users(users, [user_orig[x] for x in u.tolist()])
    parts[p] = (shared, off, hist, tgt)
  items = ItemTable(ids=object_array(item_orig), text=text)
  dom = make_domain(name, items, user_names, item, order, None, None, users, log, f[".test.inter"])
  dom.given_split = GivenSplit(parts=parts)
  return dom


def read_unisrec(
  path,
  *,
  domains: list[str] | None = None,
  on_unknown_item: str = "error",
  real_timestamps: bool = False,
) -> CrossDomainDataset:
  """A folder of UniSRec downstream files, one set per domain.

  The shipped train/valid/test split is kept exactly in `Domain.given_split`.  Out-of-range
  indices in the `.inter` files are always errors (even with on_unknown_item='drop'):
  dropping lines would silently change a published split; on_unknown_item applies to `.text`
  rows naming items absent from item2index.
  """
  folder = require_dir(path)
  wanted = check_options(folder, domains, on_unknown_item)
  present = set()
  for p in folder.iterdir():
    for s in _UNISREC_SUFFIXES:
      if p.name.endswith(s) and len(p.name) > len(s) and p.is_file():
        present.add(p.name[: -len(s)])
  names = select_domains(folder, present, wanted, "<D>.test.inter / <D>.item2index")
  users, log = UserIndex(), PrepLog()
  doms = {n: _read_unisrec_domain(folder, n, users, log, on_unknown_item) for n in names}
  return build_dataset(doms, users, real_timestamps=real_timestamps, name=folder.name, log=log)
