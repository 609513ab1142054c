"""Transfer protocols: one dataset → a leakage-checked `Split`.

A split names, per domain, the interaction rows a model may TRAIN on, and per evaluated domain
the `valid`/`test` examples: (user, target item, target row, the target-domain input history).
Source-domain input for an evaluated user is that user's rows in `train_rows[source]`.

Order within a domain comes from the order key.  Order ACROSS domains is used only when the
data has real timestamps and `use_cross_domain_order` is set: then a user's source rows at or
after their earliest evaluation target are withheld, so no future source behaviour leaks.

Protocols (config.protocol):
  in_domain    target only; leave-one-out (last → test, second-to-last → valid) for users with
               >= 3 target rows; the rest trains.  Source domains are not used.
  warm         all source rows train.  Overlapping users are evaluated: with a shipped user
               split (users.tsv) valid/test users give their LAST target row to valid/test and
               the rest trains; otherwise leave-one-out over overlapping users with >= 3 rows.
  cold_start   held-out overlapping users (the shipped valid/test users, else a seeded
               `cold_frac` of them) reveal their first k target rows (they train); the row at
               position k is the target; their later target rows are withheld (counted).
               Users with < k+1 target rows are excluded (counted).
  new_domain   no target row trains.  Evaluated users (valid/test as for cold_start, drawn
               from target users with source history) predict their last target row from their
               earlier target rows given as input only (inductive, text-only items).
  multi_domain every domain is a target: leave-one-out per domain; all other rows train.
A domain with a shipped split (UniSRec) is evaluated on exactly that split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from xdkt_jax.data import leakage
from xdkt_jax.data.leakage import LeakageError  # noqa: F401  (re-exported)
from xdkt_jax.data.schema import CrossDomainDataset, Domain

PROTOCOLS = ("in_domain", "warm", "cold_start", "new_domain", "multi_domain")


@dataclasses.dataclass
class EvalSet:
  """Evaluation examples of one domain.  History of example j is
  hist_items[hist_offsets[j]:hist_offsets[j+1]] (target-domain item ids, oldest first), read
  from rows hist_rows[...] of the domain (None for a split the dataset ships: its examples
  are traced by position, `leakage.check_split`)."""
  user: np.ndarray          # [n] int32
  target: np.ndarray        # [n] int32 item index
  row: np.ndarray           # [n] int64 row in domain.inter of the target (-1: given split)
  hist_offsets: np.ndarray  # [n+1] int64
  hist_items: np.ndarray    # [m] int32
  hist_rows: np.ndarray | None = None   # [m] int64

  def __len__(self) -> int:
    return len(self.user)

  def history(self, j: int) -> np.ndarray:
    return self.hist_items[self.hist_offsets[j]:self.hist_offsets[j + 1]]


@dataclasses.dataclass
class Split:
  protocol: str
  k: int
  targets: list[str]                       # evaluated domains
  sources: list[str]
  train_rows: dict[str, np.ndarray]        # domain -> sorted int64 rows that may train
  eval: dict[str, dict[str, EvalSet]]      # domain -> {'valid': ..., 'test': ...}
  dataset_fingerprint: str
  info: dict                               # counts of excluded users / withheld rows
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
    raise ValueError(f"target_view: {target!r} is not an evaluated domain of the split "
                     f"({sorted(split.eval)})")
  sources = [d for d in split.targets if d != target] + \
      [d for d in split.sources if d != target]
  return Split(split.protocol, split.k, [target], sources, dict(split.train_rows),
               {target: split.eval[target]}, split.dataset_fingerprint, dict(split.info),
               {d: u for d, u in split.eval_users.items() if d == target},
               heldout=split.heldout or split.eval)


# ---------------------------------------------------------------------------------------------
# Per-user views of a domain.

def user_rows(d: Domain, n_users: int):
  """CSR over users of the domain's rows, each user's rows sorted by (order, file row).

  Returns (offsets [n_users+1], rows [n_inter]).
  """
  perm = d.inter.sorted_by_user_order()
  cnt = np.bincount(d.inter.user, minlength=n_users)
  offsets = np.zeros(n_users + 1, dtype=np.int64)
  np.cumsum(cnt, out=offsets[1:])
  return offsets, perm.astype(np.int64)


def _eval_set(d: Domain, users, target_rows, hist_rows_list) -> EvalSet:
  hist_offsets = np.zeros(len(users) + 1, dtype=np.int64)
  np.cumsum([len(h) for h in hist_rows_list], out=hist_offsets[1:])
  hist = (np.concatenate(hist_rows_list) if hist_rows_list else np.zeros(0, np.int64))
  return EvalSet(user=np.asarray(users, np.int32),
                 target=d.inter.item[np.asarray(target_rows, np.int64)].astype(np.int32),
                 row=np.asarray(target_rows, np.int64),
                 hist_offsets=hist_offsets,
                 hist_items=d.inter.item[hist.astype(np.int64)].astype(np.int32),
                 hist_rows=hist.astype(np.int64))


def _empty_eval() -> EvalSet:
  z = np.zeros(0, np.int32)
  return EvalSet(z, z, z.astype(np.int64), np.zeros(1, np.int64), z, z.astype(np.int64))


def _given_eval(d: Domain) -> dict[str, EvalSet]:
  out = {}
  for part in ("valid", "test"):
    u, off, items, tgt = d.given_split.parts[part]
    out[part] = EvalSet(user=u.astype(np.int32), target=tgt.astype(np.int32),
                        row=np.full(len(u), -1, np.int64), hist_offsets=off.astype(np.int64),
                        hist_items=items.astype(np.int32))
  return out


def _given_train_rows(d: Domain, n_users: int) -> np.ndarray:
  """Rows of a shipped-split domain that are not a valid/test target: each user's sequence
  minus its last two positions (the UniSRec leave-one-out)."""
  off, rows = user_rows(d, n_users)
  cnt = np.diff(off)
  pos = np.arange(len(rows)) - np.repeat(off[:-1], cnt)
  keep = pos < np.repeat(cnt, cnt) - 2
  return np.sort(rows[keep])


# ---------------------------------------------------------------------------------------------

def _overlapping(ds: CrossDomainDataset, target: str, sources: list[str]) -> np.ndarray:
  has_src = np.zeros(ds.n_users, dtype=bool)
  for s in sources:
    has_src[ds.domains[s].inter.user] = True
  has_tgt = np.zeros(ds.n_users, dtype=bool)
  has_tgt[ds.domains[target].inter.user] = True
  return has_src & has_tgt


def _pick_eval_users(ds, candidates: np.ndarray, cfg, seed: int):
  """(valid_users, test_users): the shipped user split if there is one, else a seeded draw of
  `cold_frac` of the candidates, halved."""
  if ds.user_split is not None and cfg.get("use_given_user_split", True):
    us = ds.user_split
    return (np.nonzero(candidates & (us == "valid"))[0],
            np.nonzero(candidates & (us == "test"))[0])
  cand = np.nonzero(candidates)[0]
  rng = np.random.default_rng([seed, 7331])
  n = int(round(len(cand) * float(cfg.get("cold_frac", 0.2))))
  chosen = rng.permutation(cand)[:n]
  n_valid = n // 2
  return np.sort(chosen[:n_valid]), np.sort(chosen[n_valid:])


def _loo(d: Domain, n_users: int, users_mask: np.ndarray, min_rows: int = 3):
  """Leave-one-out over the users in users_mask with >= min_rows rows.

  Returns (train_mask over rows, valid EvalSet, test EvalSet, n_excluded)."""
  off, rows = user_rows(d, n_users)
  cnt = np.diff(off)
  train = np.ones(len(d.inter), dtype=bool)
  ev_users = np.nonzero(users_mask & (cnt >= min_rows))[0]
  excluded = int((users_mask & (cnt > 0) & (cnt < min_rows)).sum())
  v_rows, t_rows, v_hist, t_hist = [], [], [], []
  for u in ev_users:
    r = rows[off[u]:off[u + 1]]
    train[r[-2:]] = False
    t_rows.append(r[-1]); t_hist.append(r[:-1])
    v_rows.append(r[-2]); v_hist.append(r[:-2])
  return (train, _eval_set(d, ev_users, v_rows, v_hist), _eval_set(d, ev_users, t_rows, t_hist),
          excluded)


def make_split(ds: CrossDomainDataset, cfg) -> Split:
  """cfg: the run config (reads cfg.protocol, cfg.protocol_k, cfg.seed, cfg.data.*)."""
  protocol = cfg.protocol
  if protocol not in PROTOCOLS:
    raise ValueError(f"config.protocol: unknown protocol {protocol!r}; one of {PROTOCOLS}")
  data = cfg.data
  k = int(cfg.get("protocol_k", 0))
  seed = int(cfg.get("seed", 0))
  names = ds.domain_names
  if protocol == "multi_domain":
    targets, sources = names, []
  else:
    target = data.get("target_domain", "") or names[-1]
    if target not in ds.domains:
      raise ValueError(f"config.data.target_domain: {target!r} is not a loaded domain {names}")
    targets = [target]
    sources = [n for n in names if n != target]
    if protocol in ("warm", "cold_start", "new_domain") and not sources:
      raise ValueError(f"protocol {protocol!r} needs at least one source domain; got {names}")
  if data.get("use_cross_domain_order", False) and not ds.real_timestamps:
    raise ValueError("config.data.use_cross_domain_order needs real timestamps, but this "
                     "dataset's order keys are positions (cross-domain order is not real)")

  train_rows: dict[str, np.ndarray] = {}
  evals: dict[str, dict[str, EvalSet]] = {}
  info: dict = {}
  n_users = ds.n_users

  if protocol == "multi_domain":
    for n in names:
      d = ds.domains[n]
      if d.given_split is not None:
        evals[n] = _given_eval(d)
        train_rows[n] = _given_train_rows(d, n_users)
        continue
      mask, v, t, excl = _loo(d, n_users, np.ones(n_users, bool))
      train_rows[n] = np.nonzero(mask)[0]
      evals[n] = {"valid": v, "test": t}
      info[f"{n}/excluded_users_lt3"] = excl
    split = Split(protocol, k, targets, sources, train_rows, evals, ds.fingerprint(), info)
    check_leakage(ds, split)
    return split

  tname = targets[0]
  td = ds.domains[tname]
  for s in sources:
    train_rows[s] = np.arange(len(ds.domains[s].inter), dtype=np.int64)
  if protocol == "in_domain":
    train_rows = {}
  off, rows = user_rows(td, n_users)
  cnt = np.diff(off)

  if td.given_split is not None and protocol in ("in_domain", "warm"):
    evals[tname] = _given_eval(td)
    train_rows[tname] = _given_train_rows(td, n_users)
  elif protocol == "in_domain":
    mask, v, t, excl = _loo(td, n_users, np.ones(n_users, bool))
    train_rows[tname] = np.nonzero(mask)[0]
    evals[tname] = {"valid": v, "test": t}
    info["excluded_users_lt3"] = excl
  elif protocol == "warm":
    overlap = _overlapping(ds, tname, sources)
    if ds.user_split is not None and data.get("use_given_user_split", True):
      mask = np.ones(len(td.inter), dtype=bool)
      parts = {}
      for part in ("valid", "test"):
        us = np.nonzero(overlap & (ds.user_split == part) & (cnt >= 1))[0]
        tr = [rows[off[u + 1] - 1] for u in us]
        hist = [rows[off[u]:off[u + 1] - 1] for u in us]
        mask[np.asarray(tr, np.int64)] = False
        parts[part] = _eval_set(td, us, tr, hist)
      train_rows[tname] = np.nonzero(mask)[0]
      evals[tname] = parts
    else:
      mask, v, t, excl = _loo(td, n_users, overlap)
      train_rows[tname] = np.nonzero(mask)[0]
      evals[tname] = {"valid": v, "test": t}
      info["excluded_users_lt3"] = excl
  else:  # cold_start / new_domain
    overlap = _overlapping(ds, tname, sources)
    valid_u, test_u = _pick_eval_users(ds, overlap, _protocol_opts(cfg), seed)
    mask = np.ones(len(td.inter), dtype=bool) if protocol == "cold_start" else \
        np.zeros(len(td.inter), dtype=bool)
    parts, excluded, withheld = {}, 0, 0
    for part, us in (("valid", valid_u), ("test", test_u)):
      keep_u, tr, hist = [], [], []
      for u in us:
        r = rows[off[u]:off[u + 1]]
        if protocol == "cold_start":
          mask[r] = False  # everything withheld, then the k revealed rows come back
          if len(r) < k + 1:
            excluded += 1
            withheld += len(r)
            continue
          mask[r[:k]] = True
          withheld += len(r) - k - 1
          keep_u.append(u); tr.append(r[k]); hist.append(r[:k])
        else:
          keep_u.append(u); tr.append(r[-1]); hist.append(r[:-1])
      parts[part] = _eval_set(td, keep_u, tr, hist) if keep_u else _empty_eval()
    train_rows[tname] = np.nonzero(mask)[0]
    evals[tname] = parts
    info["excluded_users_too_few_target_rows"] = excluded
    if protocol == "cold_start":
      info["withheld_target_rows_after_target"] = withheld
    else:
      info["withheld_target_rows"] = int(len(td.inter))

  if data.get("use_cross_domain_order", False) and sources:
    _cut_future_source(ds, tname, sources, train_rows, evals, info)

  split = Split(protocol, k, targets, sources, train_rows, evals, ds.fingerprint(), info)
  check_leakage(ds, split)
  return split


def _protocol_opts(cfg) -> dict:
  return {"cold_frac": cfg.get("protocol_cold_frac", 0.2),
          "use_given_user_split": cfg.data.get("use_given_user_split", True)}


def _cut_future_source(ds, tname, sources, train_rows, evals, info) -> None:
  """With real cross-domain time: withhold an evaluated user's source rows that happen at or
  after their earliest evaluation target."""
  td = ds.domains[tname]
  first = np.full(ds.n_users, np.inf)
  for es in evals[tname].values():
    valid = es.row >= 0
    np.minimum.at(first, es.user[valid], td.inter.order[es.row[valid]])
  for s in sources:
    sd = ds.domains[s]
    r = train_rows[s]
    ok = sd.inter.order[r] < first[sd.inter.user[r]]
    info[f"{s}/withheld_future_source_rows"] = int((~ok).sum())
    train_rows[s] = r[ok]


def check_leakage(ds: CrossDomainDataset, split: Split) -> None:
  """Raises LeakageError if any evaluation target is visible to training or an input history
  holds what it must not (`leakage.check_split` says what is checked)."""
  leakage.check_split(ds, split)


def summary(split: Split) -> dict:
  out = {"protocol": split.protocol, "k": split.k, "targets": split.targets,
         "sources": split.sources, "fingerprint": split.fingerprint(),
         "dataset_fingerprint": split.dataset_fingerprint,
         "train_rows": {d: int(len(r)) for d, r in split.train_rows.items()},
         "eval": {d: {p: int(len(es)) for p, es in parts.items()}
                  for d, parts in split.eval.items()},
         "info": split.info}
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
