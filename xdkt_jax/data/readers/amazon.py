"""Amazon review dumps (2014 / 2018 / 2023), streaming, gzip-aware.

Per category a reviews file and optionally a meta file, one JSON object per line (old 2014
meta lines are Python dict literals); `read_amazon` names the files it looks for.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from xdkt_jax.data.readers.common import (
  check_options,
  lookup_items,
  make_domain,
  object_array,
  select_domains,
  unknown_items,
)
from xdkt_jax.data.schema import (
  CrossDomainDataset,
  DataError,
  ItemTable,
  PrepLog,
  UserIndex,
  build_dataset,
)
from xdkt_jax.data.textio import open_text, require_dir

AMAZON_TEXT_FIELDS = ("title", "categories", "brand", "description")

# Key names per dump generation: (user, item(s), time, rating, time scale to seconds).
_OLD_KEYS = ("reviewerID", ("asin",), "unixReviewTime", "overall", 1.0)
_NEW_KEYS = ("user_id", ("parent_asin", "asin"), "timestamp", "rating", 1e-3)


def _amazon_stem(filename: str) -> tuple[str, bool] | None:
  """'reviews_Beauty.json.gz' -> ('Beauty', False); 'meta_Toys.jsonl' -> ('Toys', True)."""
  n = filename[:-3] if filename.endswith(".gz") else filename
  for ext in (".jsonl", ".json"):
    if n.endswith(ext):
      n = n[: -len(ext)]
      break
  else:
    return None
  if n.startswith("meta_"):
    return n[len("meta_") :], True
  return (n[len("reviews_") :] if n.startswith("reviews_") else n), False


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
    raise DataError(
      folder, f"several {what} files for one domain: {', '.join(p.name for p in files)}; keep one"
    )
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
      raise DataError(
        path,
        f"malformed line: neither JSON ({e.msg}, column {e.colno}) nor "
        "a Python dict literal (old 2014 meta)",
        line=ln,
      ) from None
  except RecursionError:
    raise DataError(path, "the JSON is nested too deeply to read", line=ln) from None
  except ValueError as e:  # e.g. an integer past Python's digit limit
    raise DataError(path, f"unreadable JSON value: {str(e).splitlines()[0]}", line=ln) from None
  if not isinstance(obj, dict):
    raise DataError(path, f"expected a JSON object per line, got {type(obj).__name__}", line=ln)
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
  raise DataError(
    path,
    "missing required key" + (f" (and no '{keys[1]}' either)" if len(keys) > 1 else ""),
    line=ln,
    field=keys[0],
  )


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
      raise DataError(
        path,
        f"missing key (line {first_ln} has it; ratings must be on every line or none)"
        if has_rating
        else f"key present here but absent on line "
        f"{first_ln} (ratings must be on every line or none)",
        line=ln,
        field=rkey,
      )
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
  raise DataError(
    path, f"expected text or a list of text, got {type(v).__name__}", line=ln, field=key
  )


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
    desc = [
      _text(path, ln, "features", obj.get("features")),
      _text(path, ln, "description", obj.get("description")),
    ]
    cols["title"].append(_text(path, ln, "title", obj.get("title")))
    cols["categories"].append(_text(path, ln, "categories", cats))
    cols["brand"].append(_text(path, ln, "brand", brand))
    cols["description"].append(" ".join(d for d in desc if d))
  if dup:
    log.drop(domain, "duplicate_meta", dup)
  items = ItemTable(
    ids=object_array(list(catalogue)), text={f: object_array(c) for f, c in cols.items()}
  )
  return items, catalogue


def read_amazon(
  path,
  *,
  domains: list[str] | None = None,
  on_unknown_item: str = "error",
  real_timestamps: bool = True,
) -> CrossDomainDataset:
  """A folder of Amazon dumps: per category a reviews file and optionally a meta file.

  Reviews: `reviews_<C>.json[.gz]`, `<C>.json[.gz]` (2014/2018) or `<C>.jsonl[.gz]` (2023);
  meta: `meta_<C>.json[.gz]` / `meta_<C>.jsonl[.gz]`; a k-core domain `<C>_5` uses `<C>`'s
  meta.  Without meta the catalogue is the distinct reviewed items (text '').
  """
  folder = require_dir(path)
  wanted = check_options(folder, domains, on_unknown_item)
  reviews, meta = _amazon_files(folder)
  names = select_domains(folder, list(reviews), wanted, "reviews_<D>.json[.gz] / <D>.jsonl[.gz]")
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
      items = ItemTable(
        ids=object_array(list(catalogue)),
        text={f: np.full(n, "", dtype=object) for f in AMAZON_TEXT_FIELDS},
      )
      cat_name = "the reviews"
    item_idx = lookup_items(item_names, catalogue)
    keep = unknown_items(
      rpath, name, item_idx, item_names, lns, on_unknown_item, cat_name, len(items), log, item_key
    )
    doms[name] = make_domain(
      name, items, user_names, item_idx, order, rating, keep, users, log, rpath
    )
  return build_dataset(doms, users, real_timestamps=real_timestamps, name=folder.name, log=log)
