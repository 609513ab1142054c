"""Readers: RecBole atomic files, UniSRec downstream files, Amazon review dumps -> schema.

All three produce a `CrossDomainDataset` with one shared user index, columnar arrays, item
text per field, and `log.raw[domain]` holding the counts AS READ (before any preprocessing),
so a report can always say how far the data it trained on is from the files on disk.

A malformed file is a user mistake, not a bug: every problem is a `DataError` whose message is
one line `file:line: field 'x': what is wrong`.  Nothing is dropped silently; whatever a
reader is told to drop is counted in `log.dropped`.

Rows are kept in file order (sorting by user/time is preprocessing's job).  Parsing is one
`str.split` (or `json.loads`) per line into column lists, then vectorised numpy conversion;
only when a conversion fails do we walk the column again to find the offending line.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import operator
import re
from itertools import repeat
from pathlib import Path
from typing import Sequence

import numpy as np

from xdkt_jax.data.schema import (CrossDomainDataset, DataError, Domain, GivenSplit, Interactions,
                                  ItemTable, PrepLog, UserIndex, build_dataset)
from xdkt_jax.data.textio import open_text, read_blocks, require_dir, require_file

FORMATS = ("recbole", "unisrec", "amazon")
ON_UNKNOWN_ITEM = ("error", "drop")
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
AMAZON_TEXT_FIELDS = ("title", "categories", "brand", "description")
_count_tabs = operator.methodcaller("count", "\t")


def read(fmt: str, path: str, *, domains: list[str] | None = None,
         on_unknown_item: str = "error", real_timestamps: bool | None = None
         ) -> CrossDomainDataset:
  """Read the folder `path` in format `fmt` ('recbole' | 'unisrec' | 'amazon').

  domains: None = every domain found in the folder (sorted by name); otherwise exactly these,
    in this order (the order is the source -> target order downstream).
  on_unknown_item: 'error' (default) or 'drop' interactions naming items absent from the
    catalogue; drops are counted as log.dropped[domain]['unknown_item'].
  real_timestamps: override the format's default (False for RecBole / UniSRec, whose order
    keys are positions in the shared data; True for Amazon dumps, which carry unix times).
  """
  readers = {"recbole": read_recbole, "unisrec": read_unisrec, "amazon": read_amazon}
  if fmt not in readers:
    raise DataError(path, f"unknown data format '{fmt}' (expected one of {', '.join(FORMATS)})",
                    field="format")
  kw = {} if real_timestamps is None else {"real_timestamps": real_timestamps}
  return readers[fmt](path, domains=domains, on_unknown_item=on_unknown_item, **kw)


# ----------------------------------------------------------------------------------------------
# Shared helpers


def _check_options(folder: Path, domains, on_unknown_item: str) -> list[str] | None:
  """Validate the reader options; a bare string means one domain (not its characters)."""
  if on_unknown_item not in ON_UNKNOWN_ITEM:
    raise DataError(folder, f"on_unknown_item must be one of {', '.join(ON_UNKNOWN_ITEM)}, "
                    f"got '{on_unknown_item}'", field="on_unknown_item")
  if domains is None:
    return None
  if isinstance(domains, str):
    domains = [domains]
  domains = list(domains)
  if not domains:
    raise DataError(folder, "no domains configured (pass None to read every domain found)",
                    field="domains")
  seen = set()
  for d in domains:
    if not isinstance(d, str) or not d:
      raise DataError(folder, f"domain names must be non-empty strings, got {d!r}",
                      field="domains")
    if d in seen:
      raise DataError(folder, f"domain '{d}' is configured twice", field="domains")
    seen.add(d)
  return domains


def _select_domains(folder: Path, present: Sequence[str], wanted: list[str] | None,
                    what: str) -> list[str]:
  """The domains to read: all present (sorted) or exactly the configured ones."""
  present = sorted(set(present))
  if wanted is None:
    if not present:
      raise DataError(folder, f"no domains found: expected {what} files in this folder")
    return present
  listed = ", ".join(present) if present else "none"
  for d in wanted:
    if d not in present:
      raise DataError(folder, f"configured domain '{d}' not found: no {what.replace('<D>', d)} "
                      f"in this folder (domains present: {listed})", field="domains")
  return wanted


def _floats(path, col: list[str], lns: list[int], field: str, dtype=np.float64) -> np.ndarray:
  """Column of numbers; the first non-numeric or non-finite entry is a DataError at its line."""
  try:
    arr = np.array(col, dtype=np.float64)
  except ValueError:
    arr = None
  if arr is not None:
    bad = ~np.isfinite(arr)
    if not bad.any():
      return arr.astype(dtype, copy=False)
    i = int(np.argmax(bad))
    raise DataError(path, f"not a finite number: {col[i]!r}", line=lns[i], field=field)
  for i, x in enumerate(col):
    try:
      float(x)
    except ValueError:
      raise DataError(path, f"not a number: {x!r}", line=lns[i], field=field) from None
  raise DataError(path, "a value is not a number numpy can read", field=field)


def _ints(path, col: list[str], lns: list[int], field: str) -> np.ndarray:
  """Column of integer indices (int64); the first bad entry is a DataError at its line."""
  try:
    return np.array(col, dtype=np.int64)
  except (ValueError, OverflowError):
    pass
  big = np.iinfo(np.int64).max
  for i, x in enumerate(col):
    try:
      v = int(x)
    except ValueError:
      raise DataError(path, f"not an integer index: {x!r}", line=lns[i], field=field) from None
    if abs(v) > big:
      raise DataError(path, f"integer index {x[:20]}{'…' if len(x) > 20 else ''} is past the "
                      "64-bit range", line=lns[i], field=field)
  raise DataError(path, "integer index out of range", field=field)


def encode_users(users: UserIndex, names: list[str]) -> np.ndarray:
  """Same result as users.encode(names) (first-seen order), but one Python-level step per
  DISTINCT user instead of per row: the per-row lookup runs in C via map."""
  uniq = list(dict.fromkeys(names))
  ids = dict(zip(uniq, users.encode(uniq).tolist()))
  return np.fromiter(map(ids.__getitem__, names), dtype=np.int32, count=len(names))


def lookup_items(names: list[str], catalogue: dict[str, int]) -> np.ndarray:
  """schema.encode_items without the Python generator: catalogue index, -1 where unknown."""
  return np.fromiter(map(catalogue.get, names, repeat(-1)), dtype=np.int32, count=len(names))


def _no_empty(path, col: list[str], lns: list[int], field: str) -> None:
  if "" in col:
    i = col.index("")
    raise DataError(path, "empty value", line=lns[i], field=field)


def _object_array(values) -> np.ndarray:
  """1-D object array of str (np.array would build a 2-D array from equal-length lists)."""
  out = np.empty(len(values), dtype=object)
  out[:] = values
  return out


def _catalogue_index(path, ids: list[str], lns: list[int], field: str) -> dict[str, int]:
  """id -> row; a repeated id is an error naming both lines (which row would be meant?)."""
  cat = dict(zip(ids, range(len(ids))))
  if len(cat) != len(ids):
    first: dict[str, int] = {}
    for i, x in enumerate(ids):
      if x in first:
        raise DataError(path, f"duplicate item id '{x}' (first on line {lns[first[x]]})",
                        line=lns[i], field=field)
      first[x] = i
  return cat


def _unknown_items(path, domain: str, item_idx: np.ndarray, names, lns: list[int],
                   on_unknown_item: str, catalogue_name: str, n_catalogue: int,
                   log: PrepLog, field: str) -> np.ndarray | None:
  """Rows to keep (None = all); error on the first unknown item or drop and count them."""
  unknown = item_idx < 0
  if not unknown.any():
    return None
  n = int(unknown.sum())
  if on_unknown_item == "error":
    i = int(np.argmax(unknown))
    raise DataError(path, f"unknown item '{names[i]}': not in {catalogue_name} "
                    f"({n_catalogue} items); {n} row(s) of this file name unknown items "
                    "(on_unknown_item='drop' drops and counts them)", line=lns[i], field=field)
  if n == len(item_idx):  # An empty domain is never what the user meant.
    raise DataError(path, f"all {n} rows name items not in {catalogue_name}; wrong item file?",
                    line=lns[0], field=field)
  log.drop(domain, "unknown_item", n)
  return np.flatnonzero(~unknown)


def _make_domain(name: str, items: ItemTable, user_names: list[str], item_idx: np.ndarray,
                 order: np.ndarray, rating: np.ndarray | None, keep: np.ndarray | None,
                 users: UserIndex, log: PrepLog, source: Path) -> Domain:
  """Record raw counts (before dropping), encode users of kept rows, assemble the Domain."""
  log.raw[name] = {"users": len(set(user_names)), "items": len(items),
                   "interactions": len(user_names)}
  if keep is not None:
    user_names = [user_names[i] for i in keep]
    item_idx, order = item_idx[keep], order[keep]
    rating = None if rating is None else rating[keep]
  inter = Interactions(user=encode_users(users, user_names), item=item_idx.astype(np.int32),
                       order=order.astype(np.float64), rating=rating)
  return Domain(name=name, items=items, inter=inter, source=str(source))


# ----------------------------------------------------------------------------------------------
# RecBole atomic files


@dataclasses.dataclass
class Header:
  """Typed header of an atomic file: column names and RecBole types."""
  names: list[str]
  types: list[str]

  def find(self, name: str) -> int | None:
    return self.names.index(name) if name in self.names else None


def parse_header(path, line: str, line_no: int = 1) -> Header:
  """`name:type` columns; anything else names the bad column (RecBole would misread it)."""
  cols = line.split("\t")
  if not line.strip() or all(":" not in c for c in cols):
    raise DataError(path, f"missing header: the first line must name the columns as "
                    f"'name:type' (e.g. 'user_id:token'), got {line[:60]!r}", line=line_no)
  names, types = [], []
  for c in cols:
    name, sep, typ = c.strip().rpartition(":")
    if not sep or not name:
      raise DataError(path, f"header column {c!r} is not 'name:type' (e.g. 'item_id:token')",
                      line=line_no, field=c)
    if typ not in RECBOLE_TYPES:
      raise DataError(path, f"unknown type '{typ}' in header column '{c}' (expected one of "
                      f"{', '.join(RECBOLE_TYPES)})", line=line_no, field=name)
    if name in names:
      raise DataError(path, "column named twice in the header", line=line_no, field=name)
    names.append(name)
    types.append(typ)
  return Header(names, types)


def read_table(path, *, what: str = "file") -> tuple[Header, list[list[str]], list[int]]:
  """(header, one list of strings per column, line number of each row) of an atomic file.

  Blank lines carry no data and are skipped; any other line must have exactly the header's
  number of tab-separated columns (a stray or missing tab shifts every later field).
  """
  require_file(path, what)
  header, ncol = None, 0
  cols: list[list[str]] = []
  lns: list[int] = []
  for first, lines in read_blocks(path):
    if header is None:
      header = parse_header(path, lines[0], first)
      header_line = lines[0]
      ncol = len(header.names)
      cols = [[] for _ in range(ncol)]
      first, lines = first + 1, lines[1:]
    if "" in lines:  # keep line numbers exact when skipping blank lines
      keep = [i for i, x in enumerate(lines) if x]
      lines, block_lns = [lines[i] for i in keep], [first + i for i in keep]
    else:
      block_lns = range(first, first + len(lines))
    if not lines:
      continue
    # No per-row lists: check every line's tab count, then split the whole block at once and
    # take each column as a strided slice (several times faster on 600k-row files).
    if set(map(_count_tabs, lines)) != {ncol - 1}:
      i = next(i for i, x in enumerate(lines) if x.count("\t") != ncol - 1)
      _column_count_error(path, block_lns[i], header, lines[i].count("\t") + 1)
    joined = "\t".join(lines)
    if header_line in lines:   # two files concatenated: the header would become a row
      raise DataError(path, "the header line is repeated inside the file",
                      line=block_lns[lines.index(header_line)])
    if "\x00" in joined:
      i = next(i for i, x in enumerate(lines) if "\x00" in x)
      raise DataError(path, "a NUL byte inside a field", line=block_lns[i])
    flat = joined.split("\t")
    for j in range(ncol):
      cols[j].extend(flat[j::ncol])
    lns.extend(block_lns)
  if header is None:
    raise DataError(path, "empty file: missing header line", line=1)
  return header, cols, lns


def _column_count_error(path, ln: int, header: Header, got: int):
  ncol = len(header.names)
  if got < ncol:
    raise DataError(path, f"missing: the line has {got} tab-separated column(s), the header "
                    f"has {ncol}", line=ln, field=header.names[got])
  raise DataError(path, f"the line has {got} tab-separated columns, the header has {ncol} "
                  f"({', '.join(header.names)}); a stray tab?", line=ln)


def _require_column(path, header: Header, name: str, types=("token",)) -> int:
  i = header.find(name)
  if i is None:
    raise DataError(path, f"required column missing from the header (has: "
                    f"{', '.join(header.names)})", line=1, field=name)
  if header.types[i] not in types:
    raise DataError(path, f"must be of type {' or '.join(types)}, header says "
                    f"'{header.types[i]}'", line=1, field=name)
  return i


def _text_columns(header: Header, cols, skip: int) -> dict[str, np.ndarray]:
  """Every token / token_seq column except `skip` is item text (token_seq kept as one string)."""
  return {n: _object_array(cols[i]) for i, (n, t) in enumerate(zip(header.names, header.types))
          if i != skip and t in ("token", "token_seq")}


def read_recbole_items(path) -> tuple[ItemTable, dict[str, int]]:
  """`<D>.item`: the catalogue (row order) and its text columns."""
  header, cols, lns = read_table(path, what="item file")
  ii = _require_column(path, header, "item_id")
  ids = cols[ii]
  _no_empty(path, ids, lns, "item_id")
  catalogue = _catalogue_index(path, ids, lns, "item_id")
  return ItemTable(ids=_object_array(ids), text=_text_columns(header, cols, ii)), catalogue


def _read_recbole_domain(folder: Path, name: str, users: UserIndex, log: PrepLog,
                         on_unknown_item: str) -> Domain:
  path = folder / f"{name}.inter"
  header, cols, lns = read_table(path, what="interaction file")
  ui = _require_column(path, header, "user_id")
  ii = _require_column(path, header, "item_id")
  if not lns:
    raise DataError(path, "no interaction rows after the header: the domain is empty", line=1)
  user_names, item_names = cols[ui], cols[ii]
  _no_empty(path, user_names, lns, "user_id")
  _no_empty(path, item_names, lns, "item_id")
  ti, ri = header.find("timestamp"), header.find("rating")
  order = (_floats(path, cols[ti], lns, "timestamp") if ti is not None
           else np.arange(len(lns), dtype=np.float64))
  rating = None if ri is None else _floats(path, cols[ri], lns, "rating", np.float32)

  item_path = folder / f"{name}.item"
  if item_path.exists():
    items, catalogue = read_recbole_items(item_path)
  else:  # No item file: the catalogue is what the interactions name, in first-seen order.
    catalogue = {x: i for i, x in enumerate(dict.fromkeys(item_names))}
    items = ItemTable(ids=_object_array(list(catalogue)), text={})
  item_idx = lookup_items(item_names, catalogue)
  keep = _unknown_items(path, name, item_idx, item_names, lns, on_unknown_item, item_path.name,
                        len(items), log, "item_id")
  return _make_domain(name, items, user_names, item_idx, order, rating, keep, users, log, path)


SPLIT_LABELS = ("train", "valid", "test")


def read_user_split(path, users: UserIndex, log: PrepLog) -> np.ndarray:
  """`users.tsv` (user_id, split) -> [n_users] object array, '' for users not listed.

  Labels are train | valid | test, matched after trimming spaces and ignoring case (each
  label so normalised is counted: log.notes['users.tsv']['labels_normalised']); any other
  label is refused with its line.  Listed users without any interaction have no index to
  attach to; they are counted as log.dropped['users.tsv']['user_not_in_interactions'].  Users
  with interactions but no line train, and are counted as
  log.notes['users.tsv']['users_without_label'].
  """
  it = open_text(path)
  first = next(it, None)
  names = [] if first is None else [c.split(":")[0].strip() for c in first[1].split("\t")]
  if names != ["user_id", "split"]:
    raise DataError(path, f"header must be 'user_id<TAB>split', got "
                    f"{'' if first is None else first[1][:60]!r}", line=1)
  split = np.full(len(users.to_array()), "", dtype=object)
  seen: dict[str, int] = {}
  unknown = normalised = 0
  for ln, line in it:
    if not line:
      continue
    parts = line.split("\t")
    if len(parts) != 2:
      raise DataError(path, f"expected 2 tab-separated columns (user_id, split), got "
                      f"{len(parts)}", line=ln, field="split" if len(parts) < 2 else None)
    u, s = parts
    if not u:
      raise DataError(path, "empty value", line=ln, field="user_id")
    if not s:
      raise DataError(path, "empty value", line=ln, field="split")
    if u in seen:
      raise DataError(path, f"user '{u}' listed twice (first on line {seen[u]})", line=ln,
                      field="user_id")
    seen[u] = ln
    label = s.strip().lower()
    if label not in SPLIT_LABELS:
      raise DataError(path, f"unknown split label {s!r}; expected one of "
                      f"{', '.join(SPLIT_LABELS)}", line=ln, field="split")
    if label != s:
      normalised += 1
    j = users.lookup(u)
    if j is None:
      unknown += 1
    else:
      split[j] = label
  if unknown:
    log.drop("users.tsv", "user_not_in_interactions", unknown)
  notes = log.notes.setdefault("users.tsv", {})
  if normalised:
    notes["labels_normalised"] = normalised
  unlabelled = int(np.sum(split == ""))
  if unlabelled:
    notes["users_without_label"] = unlabelled
  return split


def read_recbole(path, *, domains: list[str] | None = None, on_unknown_item: str = "error",
                 real_timestamps: bool = False) -> CrossDomainDataset:
  """A folder of RecBole atomic files, one `<D>.inter` (+ optional `<D>.item`) per domain.

  `<D>.user` files are not read: the schema has no user features.  Other `.inter` columns than
  user_id / item_id / timestamp / rating are ignored, as are float columns of `.item`.
  """
  folder = require_dir(path)
  wanted = _check_options(folder, domains, on_unknown_item)
  present = [p.name[:-len(".inter")] for p in folder.iterdir()
             if p.name.endswith(".inter") and p.is_file()]
  names = _select_domains(folder, present, wanted, "<D>.inter")
  users, log = UserIndex(), PrepLog()
  doms = {n: _read_recbole_domain(folder, n, users, log, on_unknown_item) for n in names}
  split_path = folder / "users.tsv"
  user_split = read_user_split(split_path, users, log) if split_path.exists() else None
  return build_dataset(doms, users, real_timestamps=real_timestamps, user_split=user_split,
                       name=folder.name, log=log)


# ----------------------------------------------------------------------------------------------
# UniSRec downstream files

_UNISREC_SUFFIXES = (".text", ".user2index", ".item2index", ".train.inter", ".valid.inter",
                     ".test.inter")
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
      raise DataError(path, f"expected 2 tab-separated columns (original id, integer index; "
                      f"no header), got {len(parts)}", line=ln, field=field)
    ids.append(parts[0])
    idx.append(parts[1])
    lns.append(ln)
  if not ids:
    raise DataError(path, "empty index file", line=1)
  _no_empty(path, ids, lns, field)
  index = _ints(path, idx, lns, field + " index")
  n = len(ids)
  bad = (index < 0) | (index >= n)
  if bad.any():
    i = int(np.argmax(bad))
    raise DataError(path, f"index {index[i]} out of range: {n} ids need indices 0..{n - 1}",
                    line=lns[i], field=field + " index")
  out = [None] * n
  for k, j in enumerate(index.tolist()):
    if out[j] is not None:
      raise DataError(path, f"index {j} given twice", line=lns[k], field=field + " index")
    out[j] = ids[k]
  if len(set(ids)) != n:
    _catalogue_index(path, ids, lns, field)  # raises, naming both lines
  return out


def _read_unisrec_part(path, n_users: int, n_items: int, index_names: tuple[str, str]):
  """One `<D>.<part>.inter` -> (user idx, offsets, history items, targets, line numbers)."""
  header, cols, lns = read_table(path, what="interaction file")
  ui = _require_column(path, header, "user_id")
  hi = _require_column(path, header, "item_id_list", ("token_seq",))
  ti = _require_column(path, header, "item_id")
  if not lns:
    raise DataError(path, "no example rows after the header", line=1)
  user = _ints(path, cols[ui], lns, "user_id")
  target = _ints(path, cols[ti], lns, "item_id")
  toks, lengths = [], []
  for s in cols[hi]:
    t = s.split()
    toks.extend(t)
    lengths.append(len(t))
  offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
  np.cumsum(lengths, out=offsets[1:])
  tok_lns = np.repeat(np.asarray(lns), lengths).tolist()
  hist = _ints(path, toks, tok_lns, "item_id_list")
  for arr, field, n, src, row_ln in ((user, "user_id", n_users, index_names[0], lns),
                                     (target, "item_id", n_items, index_names[1], lns),
                                     (hist, "item_id_list", n_items, index_names[1], tok_lns)):
    bad = (arr < 0) | (arr >= n)
    if bad.any():
      i = int(np.argmax(bad))
      raise DataError(path, f"index {arr[i]} out of range: not in {src} (indices 0..{n - 1})",
                      line=row_ln[i], field=field)
  return user, offsets, hist.astype(np.int32), target.astype(np.int32), lns


def _read_unisrec_text(path, catalogue: dict[str, int], n_items: int, name: str,
                       on_unknown_item: str, log: PrepLog, index_name: str
                       ) -> dict[str, np.ndarray]:
  """`<D>.text` rows (original ids) placed at their item index; '' for items without a row."""
  header, cols, lns = read_table(path, what="text file")
  ii = _require_column(path, header, "item_id")
  ids = cols[ii]
  _no_empty(path, ids, lns, "item_id")
  _catalogue_index(path, ids, lns, "item_id")
  idx = lookup_items(ids, catalogue)
  unknown = idx < 0
  if unknown.any():
    n = int(unknown.sum())
    i = int(np.argmax(unknown))
    if on_unknown_item == "error":
      raise DataError(path, f"unknown item '{ids[i]}': not in {index_name}; {n} text row(s) "
                      "name unknown items (on_unknown_item='drop' drops and counts them)",
                      line=lns[i], field="item_id")
    log.drop(name, "text_unknown_item", n)
  keep = np.flatnonzero(~unknown)
  text = {}
  for field, col in _text_columns(header, cols, ii).items():
    full = np.full(n_items, "", dtype=object)
    full[idx[keep]] = col[keep]
    text[field] = full
  return text


def _read_unisrec_domain(folder: Path, name: str, users: UserIndex, log: PrepLog,
                         on_unknown_item: str) -> Domain:
  f = {s: folder / f"{name}{s}" for s in _UNISREC_SUFFIXES}
  for p in f.values():
    require_file(p, "UniSRec file")
  user_orig = read_index_file(f[".user2index"], "user_id")
  item_orig = read_index_file(f[".item2index"], "item_id")
  catalogue = {x: i for i, x in enumerate(item_orig)}
  text = _read_unisrec_text(f[".text"], catalogue, len(item_orig), name, on_unknown_item, log,
                            f[".item2index"].name)
  index_names = (f[".user2index"].name, f[".item2index"].name)
  raw = {p: _read_unisrec_part(f[f".{p}.inter"], len(user_orig), len(item_orig), index_names)
         for p in _UNISREC_PARTS}

  # Interactions: each user's full sequence once = the test line's history plus its target.
  t_user, t_off, t_hist, t_target, t_lns = raw["test"]
  first: dict[int, int] = {}
  for k, u in enumerate(t_user.tolist()):
    if u in first:
      raise DataError(f[".test.inter"], f"user {u} has two test lines (first on line "
                      f"{first[u]}); the test split holds one line per user", line=t_lns[k],
                      field="user_id")
    first[u] = t_lns[k]
  for p in ("valid", "train"):   # the files must describe the same users
    u, _, _, _, p_lns = raw[p]
    stray = np.nonzero(~np.isin(u, t_user))[0]
    if len(stray):
      k = int(stray[0])
      raise DataError(f[f".{p}.inter"], f"user {int(u[k])} has no line in {name}.test.inter "
                      f"({len(stray)} such lines); the UniSRec files disagree",
                      line=p_lns[k], field="user_id")
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
  items = ItemTable(ids=_object_array(item_orig), text=text)
  dom = _make_domain(name, items, user_names, item, order, None, None, users, log,
                     f[".test.inter"])
  dom.given_split = GivenSplit(parts=parts)
  return dom


def read_unisrec(path, *, domains: list[str] | None = None, on_unknown_item: str = "error",
                 real_timestamps: bool = False) -> CrossDomainDataset:
  """A folder of UniSRec downstream files, one set per domain.

  The shipped train/valid/test split is kept exactly in `Domain.given_split`.  Out-of-range
  indices in the `.inter` files are always errors (even with on_unknown_item='drop'):
  dropping lines would silently change a published split; on_unknown_item applies to `.text`
  rows naming items absent from item2index.
  """
  folder = require_dir(path)
  wanted = _check_options(folder, domains, on_unknown_item)
  present = set()
  for p in folder.iterdir():
    for s in _UNISREC_SUFFIXES:
      if p.name.endswith(s) and len(p.name) > len(s) and p.is_file():
        present.add(p.name[:-len(s)])
  names = _select_domains(folder, present, wanted, "<D>.test.inter / <D>.item2index")
  users, log = UserIndex(), PrepLog()
  doms = {n: _read_unisrec_domain(folder, n, users, log, on_unknown_item) for n in names}
  return build_dataset(doms, users, real_timestamps=real_timestamps, name=folder.name, log=log)


# ----------------------------------------------------------------------------------------------
# Amazon review dumps (2014 / 2018 / 2023), streaming, gzip-aware

# Key names per dump generation: (user, item(s), time, rating, time scale to seconds).
_OLD_KEYS = ("reviewerID", ("asin",), "unixReviewTime", "overall", 1.0)
_NEW_KEYS = ("user_id", ("parent_asin", "asin"), "timestamp", "rating", 1e-3)


def _amazon_stem(filename: str) -> tuple[str, bool] | None:
  """'reviews_Beauty.json.gz' -> ('Beauty', False); 'meta_Toys.jsonl' -> ('Toys', True)."""
  n = filename[:-3] if filename.endswith(".gz") else filename
  for ext in (".jsonl", ".json"):
    if n.endswith(ext):
      n = n[:-len(ext)]
      break
  else:
    return None
  if n.startswith("meta_"):
    return n[len("meta_"):], True
  return (n[len("reviews_"):] if n.startswith("reviews_") else n), False


def _amazon_files(folder: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
  reviews: dict[str, list[Path]] = {}
  meta: dict[str, list[Path]] = {}
  for p in sorted(folder.iterdir()):
    s = _amazon_stem(p.name)
    if s is not None and s[0] and p.is_file():
      (meta if s[1] else reviews).setdefault(s[0], []).append(p)
  return reviews, meta


def _one_file(folder: Path, files: list[Path], what: str) -> Path:
  if len(files) > 1:
    raise DataError(folder, f"several {what} files for one domain: "
                    f"{', '.join(p.name for p in files)}; keep one")
  return files[0]


def _json_object(path, ln: int, line: str, *, python_literals: bool) -> dict:
  """One JSON object; old 2014 meta lines are Python literals (single quotes), so try that."""
  try:
    obj = json.loads(line)
  except json.JSONDecodeError as e:
    if not python_literals:
      raise DataError(path, f"malformed JSON: {e.msg} (column {e.colno})", line=ln) from None
    try:
      obj = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
      raise DataError(path, f"malformed line: neither JSON ({e.msg}, column {e.colno}) nor "
                      "a Python dict literal (old 2014 meta)", line=ln) from None
  except RecursionError:
    raise DataError(path, "the JSON is nested too deeply to read", line=ln) from None
  except ValueError as e:   # e.g. an integer past Python's digit limit
    raise DataError(path, f"unreadable JSON value: {str(e).splitlines()[0]}", line=ln) from None
  if not isinstance(obj, dict):
    raise DataError(path, f"expected a JSON object per line, got {type(obj).__name__}",
                    line=ln)
  return obj


def _number(path, ln: int, obj: dict, key: str) -> float:
  v = obj[key]
  if isinstance(v, bool) or not isinstance(v, (int, float, str)):
    raise DataError(path, f"expected a number, got {v!r}", line=ln, field=key)
  try:
    x = float(v)
  except ValueError:
    raise DataError(path, f"not a number: {v!r}", line=ln, field=key) from None
  if not math.isfinite(x):
    raise DataError(path, f"not a finite number: {v!r}", line=ln, field=key)
  return x


def _string(path, ln: int, obj: dict, keys: Sequence[str]) -> str:
  """The first present key's value, which must be a non-empty string."""
  for k in keys:
    v = obj.get(k)
    if v is not None:
      if not isinstance(v, str) or not v:
        raise DataError(path, f"expected a non-empty string, got {v!r}", line=ln, field=k)
      return v
  raise DataError(path, "missing required key" + (
      f" (and no '{keys[1]}' either)" if len(keys) > 1 else ""), line=ln, field=keys[0])


def read_amazon_reviews(path):
  """Reviews dump -> (users, items, order [s], rating or None, line numbers, item key).

  The generation (2014/2018 vs 2023 key names) is taken from the first record; 2023 times
  are milliseconds and are converted to seconds so all generations share one clock.
  """
  users, items, times, ratings, lns = [], [], [], [], []
  keys = None
  has_rating = None
  for ln, line in open_text(path):
    if not line.strip():
      continue
    obj = _json_object(path, ln, line, python_literals=False)
    if keys is None:
      keys = _NEW_KEYS if ("user_id" in obj or "parent_asin" in obj) else _OLD_KEYS
      has_rating, first_ln = keys[3] in obj, ln
    ukey, ikeys, tkey, rkey, _ = keys
    users.append(_string(path, ln, obj, (ukey,)))
    items.append(_string(path, ln, obj, ikeys))
    if tkey not in obj:
      raise DataError(path, "missing required key", line=ln, field=tkey)
    times.append(_number(path, ln, obj, tkey))
    if (rkey in obj) != has_rating:
      raise DataError(path, f"missing key (line {first_ln} has it; ratings must be on every "
                      "line or none)" if has_rating else f"key present here but absent on line "
                      f"{first_ln} (ratings must be on every line or none)", line=ln, field=rkey)
    if has_rating:
      ratings.append(_number(path, ln, obj, rkey))
    lns.append(ln)
  if not lns:
    raise DataError(path, "no reviews in this file: the domain is empty", line=1)
  order = np.array(times, dtype=np.float64) * keys[4]
  rating = np.array(ratings, dtype=np.float32) if has_rating else None
  return users, items, order, rating, lns, keys[1][0]


def _text(path, ln: int, key: str, v) -> str:
  """Meta text value -> one string: lists (2014 categories are lists of lists) joined by ' '."""
  if v is None:
    return ""
  if isinstance(v, str):
    return v.strip()
  if isinstance(v, (int, float)) and not isinstance(v, bool):
    return str(v)
  if isinstance(v, (list, tuple)):
    return " ".join(s for s in (_text(path, ln, key, x) for x in v) if s)
  raise DataError(path, f"expected text or a list of text, got {type(v).__name__}", line=ln,
                  field=key)


def read_amazon_meta(path, domain: str, log: PrepLog) -> tuple[ItemTable, dict[str, int]]:
  """Meta dump -> catalogue; first occurrence of an id wins, repeats counted 'duplicate_meta'.

  2023 meta: store -> brand, and `features` is prepended to description (the schema's four
  text fields are title, categories, brand, description).
  """
  new_style = ".jsonl" in Path(path).name
  id_keys = ("parent_asin", "asin") if new_style else ("asin", "parent_asin")
  catalogue: dict[str, int] = {}
  cols: dict[str, list[str]] = {f: [] for f in AMAZON_TEXT_FIELDS}
  dup = 0
  for ln, line in open_text(path):
    if not line.strip():
      continue
    obj = _json_object(path, ln, line, python_literals=True)
    asin = _string(path, ln, obj, id_keys)
    if asin in catalogue:
      dup += 1
      continue
    catalogue[asin] = len(catalogue)
    cats = obj.get("categories", obj.get("category"))
    brand = obj.get("brand", obj.get("store"))
    desc = [_text(path, ln, "features", obj.get("features")),
            _text(path, ln, "description", obj.get("description"))]
    cols["title"].append(_text(path, ln, "title", obj.get("title")))
    cols["categories"].append(_text(path, ln, "categories", cats))
    cols["brand"].append(_text(path, ln, "brand", brand))
    cols["description"].append(" ".join(d for d in desc if d))
  if dup:
    log.drop(domain, "duplicate_meta", dup)
  items = ItemTable(ids=_object_array(list(catalogue)),
                    text={f: _object_array(c) for f, c in cols.items()})
  return items, catalogue


def read_amazon(path, *, domains: list[str] | None = None, on_unknown_item: str = "error",
                real_timestamps: bool = True) -> CrossDomainDataset:
  """A folder of Amazon dumps: per category a reviews file and optionally a meta file.

  Reviews: `reviews_<C>.json[.gz]`, `<C>.json[.gz]` (2014/2018) or `<C>.jsonl[.gz]` (2023);
  meta: `meta_<C>.json[.gz]` / `meta_<C>.jsonl[.gz]`; a k-core domain `<C>_5` uses `<C>`'s
  meta.  Without meta the catalogue is the distinct reviewed items (text '').
  """
  folder = require_dir(path)
  wanted = _check_options(folder, domains, on_unknown_item)
  reviews, meta = _amazon_files(folder)
  names = _select_domains(folder, list(reviews), wanted, "reviews_<D>.json[.gz] / <D>.jsonl[.gz]")
  users, log = UserIndex(), PrepLog()
  doms = {}
  for name in names:
    rpath = _one_file(folder, reviews[name], "reviews")
    user_names, item_names, order, rating, lns, item_key = read_amazon_reviews(rpath)
    # k-core dumps ('reviews_Beauty_5.json.gz') share the category's meta ('meta_Beauty...').
    meta_name = name if name in meta else re.sub(r"_\d+$", "", name)
    if meta_name in meta:
      mpath = _one_file(folder, meta[meta_name], "meta")
      items, catalogue = read_amazon_meta(mpath, name, log)
      cat_name = mpath.name
    else:
      catalogue = {x: i for i, x in enumerate(dict.fromkeys(item_names))}
      n = len(catalogue)
      items = ItemTable(ids=_object_array(list(catalogue)),
                        text={f: np.full(n, "", dtype=object) for f in AMAZON_TEXT_FIELDS})
      cat_name = "the reviews"
    item_idx = lookup_items(item_names, catalogue)
    keep = _unknown_items(rpath, name, item_idx, item_names, lns, on_unknown_item, cat_name,
                          len(items), log, item_key)
    doms[name] = _make_domain(name, items, user_names, item_idx, order, rating, keep, users,
                              log, rpath)
  return build_dataset(doms, users, real_timestamps=real_timestamps, name=folder.name, log=log)
