"""What a split is (`Split`, `EvalSet`), and what every consumer reads from one: a target's
view of a multi-domain split, a summary for results.json, and each user's training sequence
(the one door to training rows, `leakage.training_rows`).  protocols.py makes splits."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from xdkt_jax.data import leakage
from xdkt_jax.data.schema import CrossDomainDataset


@dataclasses.dataclass
class EvalSet:
  """Evaluation examples of one domain.  History of example j is
  hist_items[hist_offsets[j]:hist_offsets[j+1]] (target-domain item ids, oldest first), read
  from rows hist_rows[...] of the domain (None for a split the dataset ships: its examples
  are traced by position, `leakage.check_split`)."""

  user: np.ndarray  # [n] int32
  target: np.ndarray  # [n] int32 item index
  row: np.ndarray  # [n] int64 row in domain.inter of the target (-1: given split)
  hist_offsets: np.ndarray  # [n+1] int64
  hist_items: np.ndarray  # [m] int32
  hist_rows: np.ndarray | None = None  # [m] int64

  def __len__(self) -> int:
    return len(self.user)

  def history(self, j: int) -> np.ndarray:
    return self.hist_items[self.hist_offsets[j] : self.hist_offsets[j + 1]]


@dataclasses.dataclass
class Split:
  protocol: str
  k: int
  targets: list[str]  # evaluated domains
  sources: list[str]
  train_rows: dict[str, np.ndarray]  # domain -> sorted int64 rows that may train
  eval: dict[str, dict[str, EvalSet]]  # domain -> {'valid': ..., 'test': ...}
  dataset_fingerprint: str
  info: dict  # counts of excluded users / withheld rows
  eval_users: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  # The evaluation examples of every domain of the split this one was cut from (a
  # multi_domain target view): nothing fitted here may see them either (leakage.py).
  heldout: dict[str, dict[str, EvalSet]] = dataclasses.field(default_factory=dict)

  def fingerprint(self) -> str:
    h = hashlib.sha256(f"{self.dataset_fingerprint}|{self.protocol}|{self.k}".encode())
    for d, rows in sorted(self.train_rows.items()):
      h.update(d.encode())
      h.update(rows.tobytes())
    for d, parts in sorted(self.eval.items()):
      for p, es in sorted(parts.items()):
        h.update(f"{d}/{p}".encode())
        h.update(es.user.tobytes())
        h.update(es.target.tobytes())
    return h.hexdigest()[:16]


def target_view(split: Split, target: str) -> Split:
  """One evaluated domain of a multi_domain split, the others as its sources.

  The training rows are the multi_domain split's own for every domain, so a source domain's
  held-out valid/test items stay out of the source histories too: nothing evaluated anywhere
  trains anywhere.  Used by the recommend stage to rank each domain in turn.
  """
  if target not in split.eval:
    raise ValueError(
      f"target_view: {target!r} is not an evaluated domain of the split ({sorted(split.eval)})"
    )
  sources = [d for d in split.targets if d != target] + [d for d in split.sources if d != target]
  return Split(
    split.protocol,
    split.k,
    [target],
    sources,
    dict(split.train_rows),
    {target: split.eval[target]},
    split.dataset_fingerprint,
    dict(split.info),
    {d: u for d, u in split.eval_users.items() if d == target},
    heldout=split.heldout or split.eval,
  )


def summary(split: Split) -> dict:
  out = {
    "protocol": split.protocol,
    "k": split.k,
    "targets": split.targets,
    "sources": split.sources,
    "fingerprint": split.fingerprint(),
    "dataset_fingerprint": split.dataset_fingerprint,
    "train_rows": {d: int(len(r)) for d, r in split.train_rows.items()},
    "eval": {d: {p: int(len(es)) for p, es in parts.items()} for d, parts in split.eval.items()},
    "info": split.info,
  }
  json.dumps(out)  # must stay serialisable: it goes into results.json
  return out


def train_sequences(ds: CrossDomainDataset, split: Split, domain: str, *, consumer: str):
  """Each user's TRAINING items in `domain`, oldest first, as CSR over the shared user index:
  (offsets [n_users+1] int64, items int32).  Users without training rows have empty rows.
  The rows pass `leakage.training_rows` on behalf of `consumer` (named in its error)."""
  d = ds.domains[domain]
  rows = leakage.training_rows(ds, split, domain, consumer=consumer)
  u, o = d.inter.user[rows], d.inter.order[rows]
  perm = rows[np.lexsort((rows, o, u))]
  offsets = np.zeros(ds.n_users + 1, dtype=np.int64)
  np.cumsum(np.bincount(d.inter.user[perm], minlength=ds.n_users), out=offsets[1:])
  return offsets, d.inter.item[perm].astype(np.int32)
