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
  target_fraction  the low-resource target: every source row trains; the target is evaluated
               as in in_domain (its shipped split, else leave-one-out over all its users), but
               only the training rows of a seeded `protocol_fraction` of its users train.  The
               users are a prefix of one seeded permutation, so a smaller fraction's users are
               a subset of a larger one's, and the evaluated users, their targets and their
               input histories are the same at every fraction (a learning curve).
A domain with a shipped split (UniSRec) is evaluated on exactly that split.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from xdkt_jax.data import leakage
from xdkt_jax.data.leakage import LeakageError  # noqa: F401  (re-exported)
from xdkt_jax.data.schema import CrossDomainDataset, Domain
from xdkt_jax.data.splits import EvalSet, Split

PROTOCOLS = ("in_domain", "warm", "cold_start", "new_domain", "multi_domain", "target_fraction")


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
  hist = np.concatenate(hist_rows_list) if hist_rows_list else np.zeros(0, np.int64)
  return EvalSet(
    user=np.asarray(users, np.int32),
    target=d.inter.item[np.asarray(target_rows, np.int64)].astype(np.int32),
    row=np.asarray(target_rows, np.int64),
    hist_offsets=hist_offsets,
    hist_items=d.inter.item[hist.astype(np.int64)].astype(np.int32),
    hist_rows=hist.astype(np.int64),
  )


def _empty_eval() -> EvalSet:
  z = np.zeros(0, np.int32)
  return EvalSet(z, z, z.astype(np.int64), np.zeros(1, np.int64), z, z.astype(np.int64))


def _given_eval(d: Domain) -> dict[str, EvalSet]:
  out = {}
  for part in ("valid", "test"):
    u, off, items, tgt = d.given_split.parts[part]
    out[part] = EvalSet(
      user=u.astype(np.int32),
      target=tgt.astype(np.int32),
      row=np.full(len(u), -1, np.int64),
      hist_offsets=off.astype(np.int64),
      hist_items=items.astype(np.int32),
    )
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


def _pick_eval_users(ds, candidates: np.ndarray, spec: SplitSpec):
  """(valid_users, test_users): the shipped user split if there is one, else a seeded draw of
  `cold_frac` of the candidates, halved."""
  if ds.user_split is not None and spec.use_given_user_split:
    us = ds.user_split
    return (np.nonzero(candidates & (us == "valid"))[0], np.nonzero(candidates & (us == "test"))[0])
  cand = np.nonzero(candidates)[0]
  rng = np.random.default_rng([spec.seed, 7331])
  n = int(round(len(cand) * float(spec.cold_frac)))
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
    r = rows[off[u] : off[u + 1]]
    train[r[-2:]] = False
    t_rows.append(r[-1])
    t_hist.append(r[:-1])
    v_rows.append(r[-2])
    v_hist.append(r[:-2])
  return (
    train,
    _eval_set(d, ev_users, v_rows, v_hist),
    _eval_set(d, ev_users, t_rows, t_hist),
    excluded,
  )


# ---------------------------------------------------------------------------------------------
# The run config, read once.


def _check_protocol(protocol) -> None:
  if protocol not in PROTOCOLS:
    raise ValueError(f"config.protocol: unknown protocol {protocol!r}; one of {PROTOCOLS}")


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """What `make_split` needs from the run config, and nothing else.

  Attributes:
    protocol: one of PROTOCOLS (config.protocol).
    k: revealed target rows per cold_start user (config.protocol_k).
    seed: seeds the draw of held-out users when no user split is shipped (config.seed).
    target_domain: the evaluated domain, '' for the last loaded one (config.data.target_domain);
      unused by multi_domain.
    cold_frac: share of the candidate users held out for cold_start / new_domain when no user
      split is shipped (config.protocol_cold_frac).  Kept as the config holds it and converted
      where the users are drawn, so a value no protocol uses cannot fail the split.
    use_given_user_split: evaluate the users.tsv split where the data ships one
      (config.data.use_given_user_split).
    use_cross_domain_order: withhold source rows at or after a user's first evaluation target;
      needs real timestamps (config.data.use_cross_domain_order).
    fraction: share of the target's users whose training rows train, for target_fraction
      (config.protocol_fraction, in (0, 1]).
  """

  protocol: str
  k: int = 0
  seed: int = 0
  target_domain: str = ""
  cold_frac: float = 0.2
  use_given_user_split: bool = True
  use_cross_domain_order: bool = False
  fraction: float = 1.0

  def __post_init__(self):
    _check_protocol(self.protocol)

  @classmethod
  def from_config(cls, cfg) -> SplitSpec:
    """Reads cfg.protocol, cfg.protocol_k, cfg.seed, cfg.protocol_cold_frac and cfg.data.*.

    The protocol is checked before anything else is read, so a bad one is the error reported.
    """
    protocol = cfg.protocol
    _check_protocol(protocol)
    data = cfg.data
    return cls(
      protocol=protocol,
      k=int(cfg.get("protocol_k", 0)),
      seed=int(cfg.get("seed", 0)),
      target_domain=data.get("target_domain", ""),
      cold_frac=cfg.get("protocol_cold_frac", 0.2),
      use_given_user_split=bool(data.get("use_given_user_split", True)),
      use_cross_domain_order=bool(data.get("use_cross_domain_order", False)),
      fraction=float(cfg.get("protocol_fraction", 1.0)),
    )


# ---------------------------------------------------------------------------------------------
# make_split: the domains' roles, one function per protocol, then the shared tail.


def make_split(ds: CrossDomainDataset, cfg) -> Split:
  """Cuts `ds` into a leakage-checked Split.

  Args:
    ds: the loaded dataset.
    cfg: the run config (read once, by `SplitSpec.from_config`), or a SplitSpec.

  Returns:
    The Split; `check_leakage` has passed on it.

  Raises:
    ValueError: an unknown protocol or target domain, a transfer protocol without a source
      domain, or cross-domain order asked of data without real timestamps.
    LeakageError: an evaluation target is visible to training or sits in an input history
      (`leakage.check_split`).
  """
  spec = cfg if isinstance(cfg, SplitSpec) else SplitSpec.from_config(cfg)
  targets, sources = _targets_and_sources(ds, spec)
  if spec.use_cross_domain_order and not ds.real_timestamps:
    raise ValueError(
      "config.data.use_cross_domain_order needs real timestamps, but this "
      "dataset's order keys are positions (cross-domain order is not real)"
    )
  if spec.protocol == "multi_domain":
    train_rows, evals, info = _multi_domain_split(ds)
  else:
    train_rows, evals, info = _PER_TARGET_SPLITS[spec.protocol](ds, spec, targets[0], sources)
  # multi_domain has no sources and in_domain trains on none of their rows: nothing to cut.
  if spec.use_cross_domain_order and sources and spec.protocol != "in_domain":
    _cut_future_source(ds, targets[0], sources, train_rows, evals, info)
  split = Split(spec.protocol, spec.k, targets, sources, train_rows, evals, ds.fingerprint(), info)
  check_leakage(ds, split)
  return split


def _targets_and_sources(ds: CrossDomainDataset, spec: SplitSpec):
  """(evaluated domains, source domains): every domain and none for multi_domain, else the
  configured target (default: the last domain) and all the others."""
  names = ds.domain_names
  if spec.protocol == "multi_domain":
    return names, []
  target = spec.target_domain or names[-1]
  if target not in ds.domains:
    raise ValueError(f"config.data.target_domain: {target!r} is not a loaded domain {names}")
  sources = [n for n in names if n != target]
  if spec.protocol in ("warm", "cold_start", "new_domain") and not sources:
    raise ValueError(f"protocol {spec.protocol!r} needs at least one source domain; got {names}")
  return [target], sources


def _multi_domain_split(ds: CrossDomainDataset):
  """Every domain evaluated: its shipped split, else leave-one-out over all its users."""
  train_rows, evals, info = {}, {}, {}
  for name in ds.domain_names:
    domain = ds.domains[name]
    if domain.given_split is not None:
      evals[name] = _given_eval(domain)
      train_rows[name] = _given_train_rows(domain, ds.n_users)
      continue
    train_mask, valid, test, excluded = _loo(domain, ds.n_users, np.ones(ds.n_users, bool))
    train_rows[name] = np.nonzero(train_mask)[0]
    evals[name] = {"valid": valid, "test": test}
    info[f"{name}/excluded_users_lt3"] = excluded
  return train_rows, evals, info


def _in_domain_split(ds: CrossDomainDataset, spec: SplitSpec, target: str, sources: list[str]):
  """Target only (no source row trains): its shipped split, else leave-one-out."""
  del spec, sources  # the same signature as the other per-target protocols
  domain = ds.domains[target]
  if domain.given_split is not None:
    return ({target: _given_train_rows(domain, ds.n_users)}, {target: _given_eval(domain)}, {})
  train_mask, valid, test, excluded = _loo(domain, ds.n_users, np.ones(ds.n_users, bool))
  return (
    {target: np.nonzero(train_mask)[0]},
    {target: {"valid": valid, "test": test}},
    {"excluded_users_lt3": excluded},
  )


def _warm_split(ds: CrossDomainDataset, spec: SplitSpec, target: str, sources: list[str]):
  """All source rows train; overlapping users are evaluated on the target (module doc)."""
  train_rows = _all_source_rows(ds, sources)
  domain = ds.domains[target]
  if domain.given_split is not None:
    train_rows[target] = _given_train_rows(domain, ds.n_users)
    return train_rows, {target: _given_eval(domain)}, {}
  overlap = _overlapping(ds, target, sources)
  if ds.user_split is not None and spec.use_given_user_split:
    train_mask, parts = _last_row_of_given_users(ds, domain, overlap)
    info = {}
  else:
    train_mask, valid, test, excluded = _loo(domain, ds.n_users, overlap)
    parts, info = {"valid": valid, "test": test}, {"excluded_users_lt3": excluded}
  train_rows[target] = np.nonzero(train_mask)[0]
  return train_rows, {target: parts}, info


def _last_row_of_given_users(ds: CrossDomainDataset, domain: Domain, overlap: np.ndarray):
  """warm with a shipped user split: each overlapping valid/test user's LAST target row is
  their example and the rest of their rows train.  Returns (train_mask, {part: EvalSet})."""
  offsets, rows = user_rows(domain, ds.n_users)
  counts = np.diff(offsets)
  train_mask = np.ones(len(domain.inter), dtype=bool)
  parts = {}
  for part in ("valid", "test"):
    users = np.nonzero(overlap & (ds.user_split == part) & (counts >= 1))[0]
    target_rows = [rows[offsets[user + 1] - 1] for user in users]
    histories = [rows[offsets[user] : offsets[user + 1] - 1] for user in users]
    train_mask[np.asarray(target_rows, np.int64)] = False
    parts[part] = _eval_set(domain, users, target_rows, histories)
  return train_mask, parts


def _cold_start_split(ds: CrossDomainDataset, spec: SplitSpec, target: str, sources: list[str]):
  """Held-out users reveal their first k target rows (they train) and predict the next;
  their later rows are withheld, users with < k+1 target rows excluded (both counted)."""
  train_rows = _all_source_rows(ds, sources)
  domain = ds.domains[target]
  train_mask = np.ones(len(domain.inter), dtype=bool)
  parts, excluded, withheld = {}, 0, 0
  for part, sequences in _held_out_sequences(ds, spec, domain, target, sources):
    kept_users, target_rows, histories = [], [], []
    for user, seq in sequences:
      train_mask[seq] = False  # everything withheld, then the k revealed rows come back
      if len(seq) < spec.k + 1:
        excluded += 1
        withheld += len(seq)
        continue
      train_mask[seq[: spec.k]] = True
      withheld += len(seq) - spec.k - 1
      kept_users.append(user)
      target_rows.append(seq[spec.k])
      histories.append(seq[: spec.k])
    parts[part] = _eval_set_or_empty(domain, kept_users, target_rows, histories)
  train_rows[target] = np.nonzero(train_mask)[0]
  info = {
    "excluded_users_too_few_target_rows": excluded,
    "withheld_target_rows_after_target": withheld,
  }
  return train_rows, {target: parts}, info


def _new_domain_split(ds: CrossDomainDataset, spec: SplitSpec, target: str, sources: list[str]):
  """No target row trains; held-out users predict their last target row from the earlier
  ones, given as input only."""
  train_rows = _all_source_rows(ds, sources)
  domain = ds.domains[target]
  parts = {}
  for part, sequences in _held_out_sequences(ds, spec, domain, target, sources):
    kept_users, target_rows, histories = [], [], []
    for user, seq in sequences:
      kept_users.append(user)
      target_rows.append(seq[-1])
      histories.append(seq[:-1])
    parts[part] = _eval_set_or_empty(domain, kept_users, target_rows, histories)
  # np.nonzero of an all-False mask: empty, with the dtype of every other train_rows entry.
  train_rows[target] = np.nonzero(np.zeros(len(domain.inter), dtype=bool))[0]
  info = {"excluded_users_too_few_target_rows": 0, "withheld_target_rows": int(len(domain.inter))}
  return train_rows, {target: parts}, info


def _all_source_rows(ds: CrossDomainDataset, sources: list[str]) -> dict[str, np.ndarray]:
  """Every row of every source domain trains (warm, cold_start, new_domain)."""
  return {s: np.arange(len(ds.domains[s].inter), dtype=np.int64) for s in sources}


def _held_out_sequences(
  ds: CrossDomainDataset, spec: SplitSpec, domain: Domain, target: str, sources: list[str]
):
  """[(part, [(user, the user's target rows in order), ...]) for valid, test]: the held-out
  users of cold_start / new_domain, drawn from the users with both source and target rows."""
  offsets, rows = user_rows(domain, ds.n_users)
  valid_users, test_users = _pick_eval_users(ds, _overlapping(ds, target, sources), spec)
  return [
    (part, [(user, rows[offsets[user] : offsets[user + 1]]) for user in users])
    for part, users in (("valid", valid_users), ("test", test_users))
  ]


def _eval_set_or_empty(domain: Domain, users: list, target_rows: list, histories: list) -> EvalSet:
  """`_eval_set`, or an empty EvalSet when no user is kept (the lists are empty)."""
  return _eval_set(domain, users, target_rows, histories) if users else _empty_eval()


def _target_fraction_split(
  ds: CrossDomainDataset, spec: SplitSpec, target: str, sources: list[str]
):
  """in_domain's evaluation of the target, every source row, and the target's training rows of
  a seeded `spec.fraction` of its users only (module doc)."""
  if not 0 < spec.fraction <= 1:
    raise ValueError(f"config.protocol_fraction must be in (0, 1], got {spec.fraction!r}")
  train_rows, evals, info = _in_domain_split(ds, spec, target, sources)
  rows = train_rows[target]
  users_of_rows = ds.domains[target].inter.user[rows]
  users = np.unique(users_of_rows)
  order = np.random.default_rng([spec.seed, 9461]).permutation(users)
  n_keep = max(1, int(round(spec.fraction * len(users)))) if len(users) else 0
  keep = np.zeros(ds.n_users, bool)
  keep[order[:n_keep]] = True
  train_rows[target] = rows[keep[users_of_rows]]
  train_rows.update(_all_source_rows(ds, sources))
  info.update(
    target_fraction=spec.fraction,
    target_training_users=n_keep,
    target_users_with_training_rows=int(len(users)),
    withheld_target_training_rows=int(len(rows) - len(train_rows[target])),
  )
  return train_rows, evals, info


_PER_TARGET_SPLITS = {
  "in_domain": _in_domain_split,
  "target_fraction": _target_fraction_split,
  "warm": _warm_split,
  "cold_start": _cold_start_split,
  "new_domain": _new_domain_split,
}


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
