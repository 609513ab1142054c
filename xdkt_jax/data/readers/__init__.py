"""Readers: on-disk recommendation data -> `CrossDomainDataset`, one module per format.

  recbole   RecBole atomic files (`<D>.inter`, `<D>.item`, `users.tsv`)      recbole.py
  unisrec   UniSRec downstream files (`<D>.text`, index files, given split)  unisrec.py
  amazon    Amazon review dumps, 2014 / 2018 / 2023 (reviews + meta)         amazon.py

and `common.py` holds what they share.  All three produce a `CrossDomainDataset` with one
shared user index, columnar arrays, item text per field, and `log.raw[domain]` holding the
counts AS READ (before any preprocessing), so a report can always say how far the data it
trained on is from the files on disk.

A malformed file is a user mistake, not a bug: every problem is a `DataError` whose message is
one line `file:line: field 'x': what is wrong`.  Nothing is dropped silently; whatever a
reader is told to drop is counted in `log.dropped`.  Rows are kept in file order (sorting by
user/time is preprocessing's job).
"""

from __future__ import annotations

from xdkt_jax.data.readers.amazon import read_amazon
from xdkt_jax.data.readers.recbole import read_recbole
from xdkt_jax.data.readers.unisrec import read_unisrec
from xdkt_jax.data.schema import CrossDomainDataset, DataError

FORMATS = ("recbole", "unisrec", "amazon")


def read(
  fmt: str,
  path: str,
  *,
  domains: list[str] | None = None,
  on_unknown_item: str = "error",
  real_timestamps: bool | None = None,
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
    raise DataError(
      path, f"unknown data format '{fmt}' (expected one of {', '.join(FORMATS)})", field="format"
    )
  kw = {} if real_timestamps is None else {"real_timestamps": real_timestamps}
  return readers[fmt](path, domains=domains, on_unknown_item=on_unknown_item, **kw)


__all__ = ["FORMATS", "read", "read_amazon", "read_recbole", "read_unisrec"]
