"""The canonical in-memory form of N >= 1 domains of user-item data with item text.

Everything is columnar numpy: an interaction table is four parallel arrays, an item table is
an id array plus one string array per text field.  Users share ONE index across all domains,
so the overlap between domains is explicit (user 17 in Art is user 17 in Office).

Readers produce a `CrossDomainDataset`; preprocessing returns a new one plus counts of what it
dropped; protocols turn one into a `Split`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Mapping

import numpy as np


class DataError(ValueError):
  """A user's data is malformed.  str(e) is one line naming file, line and field."""

  def __init__(self, path, message: str, *, line: int | None = None, field: str | None = None):
    where = str(path)
    if line is not None:
      where += f":{line}"
    if field is not None:
      where += f": field '{field}'"
    super().__init__(f"{where}: {message}")
    self.path, self.line, self.field = str(path), line, field


@dataclasses.dataclass
class ItemTable:
  """The catalogue of one domain.  Row i is the item with domain-local integer id i."""

  ids: np.ndarray  # [n_items] str (object): original item ids
  text: dict[str, np.ndarray]  # field name -> [n_items] str (object); '' when missing

  def __len__(self) -> int:
    return len(self.ids)

  def joined_text(self, fields=None, sep: str = ". ") -> np.ndarray:
    """One string per item: the non-empty text fields joined in order."""
    fields = list(self.text) if fields is None else list(fields)
    out = np.empty(len(self.ids), dtype=object)
    cols = [self.text[f] for f in fields if f in self.text]
    for i in range(len(self.ids)):
      out[i] = sep.join(c[i] for c in cols if c[i])
    return out

  def take(self, keep_idx: np.ndarray) -> "ItemTable":
    return ItemTable(ids=self.ids[keep_idx], text={k: v[keep_idx] for k, v in self.text.items()})


@dataclasses.dataclass
class Interactions:
  """Interaction rows of one domain, parallel arrays."""

  user: np.ndarray  # [n] int32, index into CrossDomainDataset.user_ids
  item: np.ndarray  # [n] int32, index into the domain's ItemTable
  order: np.ndarray  # [n] float64, order key (timestamp or position)
  rating: np.ndarray | None = None  # [n] float32 or None

  def __len__(self) -> int:
    return len(self.user)

  def take(self, idx: np.ndarray) -> "Interactions":
    return Interactions(
      user=self.user[idx],
      item=self.item[idx],
      order=self.order[idx],
      rating=None if self.rating is None else self.rating[idx],
    )

  def sorted_by_user_order(self) -> np.ndarray:
    """Row permutation: by user, then order key, then original row (stable)."""
    return np.lexsort((np.arange(len(self.user)), self.order, self.user))


@dataclasses.dataclass
class GivenSplit:
  """A split shipped with the data (UniSRec files), kept exactly as given.

  Each part is (user [n] int32, history offsets [n+1] int64, history items [m] int32,
  target [n] int32): example j's history is items[offsets[j]:offsets[j+1]].
  """

  parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@dataclasses.dataclass
class Domain:
  name: str
  items: ItemTable
  inter: Interactions
  given_split: GivenSplit | None = None
  source: str = ""  # where it was read from (for messages and reports)

  @property
  def n_items(self) -> int:
    return len(self.items)

  def users(self) -> np.ndarray:
    return np.unique(self.inter.user)


@dataclasses.dataclass
class CrossDomainDataset:
  """N >= 1 domains over one shared user index."""

  domains: dict[str, Domain]
  user_ids: np.ndarray  # [n_users] str (object)
  # Whether order keys are real timestamps comparable ACROSS domains.  When False (positions,
  # or per-domain clocks) no protocol may use cross-domain order.
  real_timestamps: bool = False
  # Optional user-level split shipped with the data (e.g. users.tsv): user index -> name.
  user_split: np.ndarray | None = None  # [n_users] str (object) or None
  name: str = ""
  # What happened on the way in: raw counts as read, and per-step drop counts.
  log: "PrepLog" = dataclasses.field(default_factory=lambda: PrepLog())

  @property
  def n_users(self) -> int:
    return len(self.user_ids)

  @property
  def domain_names(self) -> list[str]:
    return list(self.domains)

  def overlap(self) -> dict[str, int]:
    """'A|B' -> number of users with interactions in both A and B (A before B in order)."""
    users = {n: set(d.users().tolist()) for n, d in self.domains.items()}
    names = list(self.domains)
    return {
      f"{a}|{b}": len(users[a] & users[b]) for i, a in enumerate(names) for b in names[i + 1 :]
    }

  def fingerprint(self) -> str:
    """Content hash over ids, text and interactions of every domain (order-sensitive)."""
    h = hashlib.sha256()
    h.update(_hash_strings(self.user_ids))
    h.update(str(self.real_timestamps).encode())
    if self.user_split is not None:
      h.update(_hash_strings(self.user_split))
    for name, d in self.domains.items():
      h.update(name.encode())
      h.update(_hash_strings(d.items.ids))
      for field, col in d.items.text.items():
        h.update(field.encode())
        h.update(_hash_strings(col))
      for arr in (d.inter.user, d.inter.item, d.inter.order):
        h.update(np.ascontiguousarray(arr).tobytes())
      if d.inter.rating is not None:
        h.update(np.ascontiguousarray(d.inter.rating).tobytes())
      if d.given_split is not None:
        for part, arrs in sorted(d.given_split.parts.items()):
          h.update(part.encode())
          for a in arrs:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass
class PrepLog:
  """Raw counts (as read, before any preprocessing) and what each step dropped, per domain.

  raw[domain] = {"users", "items", "interactions"}:
    users        distinct users with >= 1 interaction row read in the domain
    items        the catalogue: rows of the item file, or distinct items when there is none
    interactions interaction rows read (UniSRec: each user's full sequence once)
  dropped[domain][step] = number of rows (interactions or items, the step's docstring says
  which) removed by that step.  Every step that removes anything records here.
  """

  raw: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
  dropped: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
  # Counts that are not drops (e.g. items whose text is empty), for the stats report.
  notes: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

  def drop(self, domain: str, step: str, n: int) -> None:
    d = self.dropped.setdefault(domain, {})
    d[step] = d.get(step, 0) + int(n)

  def copy(self) -> "PrepLog":
    return PrepLog(
      raw={k: dict(v) for k, v in self.raw.items()},
      dropped={k: dict(v) for k, v in self.dropped.items()},
      notes={k: dict(v) for k, v in self.notes.items()},
    )


def counts(domain: "Domain") -> dict[str, int]:
  """users / items / interactions of a domain as it is now."""
  return {
    "users": int(len(np.unique(domain.inter.user))),
    "items": int(domain.n_items),
    "interactions": int(len(domain.inter)),
  }


def _hash_strings(arr: np.ndarray) -> bytes:
  return hashlib.sha256("\x1f".join(map(str, arr.tolist())).encode("utf-8")).digest()


class UserIndex:
  """Assigns shared integer ids to user strings, in first-seen order."""

  def __init__(self):
    self._ids: dict[str, int] = {}

  def encode(self, names) -> np.ndarray:
    ids = self._ids
    out = np.empty(len(names), dtype=np.int32)
    for i, n in enumerate(names):
      j = ids.get(n)
      if j is None:
        j = ids[n] = len(ids)
      out[i] = j
    return out

  def lookup(self, name: str) -> int | None:
    return self._ids.get(name)

  def to_array(self) -> np.ndarray:
    return np.array(list(self._ids), dtype=object)


def encode_items(item_names: np.ndarray, catalogue: Mapping[str, int]) -> np.ndarray:
  """Map item strings to catalogue indices; -1 where unknown."""
  get = catalogue.get
  return np.fromiter((get(x, -1) for x in item_names), dtype=np.int32, count=len(item_names))


def build_dataset(domains: dict[str, Domain], user_index: UserIndex, **kw) -> CrossDomainDataset:
  return CrossDomainDataset(domains=domains, user_ids=user_index.to_array(), **kw)
