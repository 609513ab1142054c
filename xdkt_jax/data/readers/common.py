"""What the readers share: option checks, domain selection, column conversion, catalogue
lookups, and assembling a `Domain`.

Parsing is one `str.split` (or `json.loads`) per line into column lists, then vectorised numpy
conversion; only when a conversion fails do we walk the column again to find the offending line.
"""

from __future__ import annotations

from itertools import repeat
from pathlib import Path
from typing import Sequence

import numpy as np

from xdkt_jax.data.schema import DataError, Domain, Interactions, ItemTable, PrepLog, UserIndex

ON_UNKNOWN_ITEM = ("error", "drop")


def check_options(folder: Path, domains, on_unknown_item: str) -> list[str] | None:
  """Validate the reader options; a bare string means one domain (not its characters)."""
  if on_unknown_item not in ON_UNKNOWN_ITEM:
    raise DataError(
      folder,
      f"on_unknown_item must be one of {', '.join(ON_UNKNOWN_ITEM)}, got '{on_unknown_item}'",
      field="on_unknown_item",
    )
  if domains is None:
    return None
  if isinstance(domains, str):
    domains = [domains]
  domains = list(domains)
  if not domains:
    raise DataError(
      folder, "no domains configured (pass None to read every domain found)", field="domains"
    )
  seen = set()
  for d in domains:
    if not isinstance(d, str) or not d:
      raise DataError(folder, f"domain names must be non-empty strings, got {d!r}", field="domains")
    if d in seen:
      raise DataError(folder, f"domain '{d}' is configured twice", field="domains")
    seen.add(d)
  return domains


def select_domains(
  folder: Path, present: Sequence[str], wanted: list[str] | None, what: str
) -> list[str]:
  """The domains to read: all present (sorted) or exactly the configured ones."""
  present = sorted(set(present))
  if wanted is None:
    if not present:
      raise DataError(folder, f"no domains found: expected {what} files in this folder")
    return present
  listed = ", ".join(present) if present else "none"
  for d in wanted:
    if d not in present:
      raise DataError(
        folder,
        f"configured domain '{d}' not found: no {what.replace('<D>', d)} "
        f"in this folder (domains present: {listed})",
        field="domains",
      )
  return wanted


def float_column(path, col: list[str], lns: list[int], field: str, dtype=np.float64) -> np.ndarray:
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


def int_column(path, col: list[str], lns: list[int], field: str) -> np.ndarray:
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
      raise DataError(
        path,
        f"integer index {x[:20]}{'…' if len(x) > 20 else ''} is past the 64-bit range",
        line=lns[i],
        field=field,
      )
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


def no_empty(path, col: list[str], lns: list[int], field: str) -> None:
  if "" in col:
    i = col.index("")
    raise DataError(path, "empty value", line=lns[i], field=field)


def object_array(values) -> np.ndarray:
  """1-D object array of str (np.array would build a 2-D array from equal-length lists)."""
  out = np.empty(len(values), dtype=object)
  out[:] = values
  return out


def catalogue_index(path, ids: list[str], lns: list[int], field: str) -> dict[str, int]:
  """id -> row; a repeated id is an error naming both lines (which row would be meant?)."""
  cat = dict(zip(ids, range(len(ids))))
  if len(cat) != len(ids):
    first: dict[str, int] = {}
    for i, x in enumerate(ids):
      if x in first:
        raise DataError(
          path, f"duplicate item id '{x}' (first on line {lns[first[x]]})", line=lns[i], field=field
        )
      first[x] = i
  return cat


def unknown_items(
  path,
  domain: str,
  item_idx: np.ndarray,
  names,
  lns: list[int],
  on_unknown_item: str,
  catalogue_name: str,
  n_catalogue: int,
  log: PrepLog,
  field: str,
) -> np.ndarray | None:
  """Rows to keep (None = all); error on the first unknown item or drop and count them."""
  unknown = item_idx < 0
  if not unknown.any():
    return None
  n = int(unknown.sum())
  if on_unknown_item == "error":
    i = int(np.argmax(unknown))
    raise DataError(
      path,
      f"unknown item '{names[i]}': not in {catalogue_name} "
      f"({n_catalogue} items); {n} row(s) of this file name unknown items "
      "(on_unknown_item='drop' drops and counts them)",
      line=lns[i],
      field=field,
    )
  if n == len(item_idx):  # An empty domain is never what the user meant.
    raise DataError(
      path,
      f"all {n} rows name items not in {catalogue_name}; wrong item file?",
      line=lns[0],
      field=field,
    )
  log.drop(domain, "unknown_item", n)
  return np.flatnonzero(~unknown)


def make_domain(
  name: str,
  items: ItemTable,
  user_names: list[str],
  item_idx: np.ndarray,
  order: np.ndarray,
  rating: np.ndarray | None,
  keep: np.ndarray | None,
  users: UserIndex,
  log: PrepLog,
  source: Path,
) -> Domain:
  """Record raw counts (before dropping), encode users of kept rows, assemble the Domain."""
  log.raw[name] = {
    "users": len(set(user_names)),
    "items": len(items),
    "interactions": len(user_names),
  }
  if keep is not None:
    user_names = [user_names[i] for i in keep]
    item_idx, order = item_idx[keep], order[keep]
    rating = None if rating is None else rating[keep]
  inter = Interactions(
    user=encode_users(users, user_names),
    item=item_idx.astype(np.int32),
    order=order.astype(np.float64),
    rating=rating,
  )
  return Domain(name=name, items=items, inter=inter, source=str(source))
