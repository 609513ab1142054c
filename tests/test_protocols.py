import dataclasses

import ml_collections as mlc
import numpy as np
import pytest

from conftest import make_dataset
from xdkt_jax.data import protocols as P
from xdkt_jax.data import splits
from xdkt_jax.data.schema import GivenSplit


def cfg(protocol, k=0, fraction=1.0, **data):
  d = dict(target_domain="T", use_cross_domain_order=False, use_given_user_split=True)
  d.update(data)
  return mlc.ConfigDict(
    dict(
      protocol=protocol,
      protocol_k=k,
      seed=0,
      protocol_cold_frac=0.5,
      protocol_fraction=fraction,
      data=d,
    )
  )


def world(n_users=40, tgt_len=7, seed=0, **kw):
  """Source S and target T; users u0..u{n-1} all in both, plus 5 target-only users."""
  rng = np.random.default_rng(seed)
  S, T = [], []
  for u in range(n_users):
    for t, i in enumerate(rng.choice(30, size=4, replace=False)):
      S.append((f"u{u}", int(i), 2 * t))
    items = rng.choice(50, size=tgt_len, replace=False)
    for t, i in enumerate(items):
      T.append((f"u{u}", int(i), 2 * t + 1))
  for u in range(5):
    for t, i in enumerate(rng.choice(50, size=4, replace=False)):
      T.append((f"t{u}", int(i), t))
  return make_dataset({"S": S, "T": T}, **kw)


def target_rows_of(ds, u):
  d = ds.domains["T"]
  r = np.nonzero(d.inter.user == u)[0]
  return r[np.argsort(d.inter.order[r], kind="stable")]


def test_in_domain_leave_one_out():
  ds = world()
  sp = P.make_split(ds, cfg("in_domain"))
  assert "S" not in sp.train_rows  # target only
  te, va = sp.eval["T"]["test"], sp.eval["T"]["valid"]
  assert len(te) == 45 and len(va) == 45
  for j in range(len(te)):
    r = target_rows_of(ds, te.user[j])
    assert te.row[j] == r[-1] and va.row[j] == r[-2]
    assert te.history(j).tolist() == ds.domains["T"].inter.item[r[:-1]].tolist()
  assert len(sp.train_rows["T"]) == len(ds.domains["T"].inter) - 90
  assert sp.dataset_fingerprint == ds.fingerprint()


def test_warm_loo_only_overlapping_users():
  ds = world()
  sp = P.make_split(ds, cfg("warm"))
  assert len(sp.train_rows["S"]) == len(ds.domains["S"].inter)
  te = sp.eval["T"]["test"]
  assert len(te) == 40  # target-only users t* are not evaluated...
  t_only = [i for i, n in enumerate(ds.user_ids) if n.startswith("t")]
  # ...but they still train
  assert np.isin(t_only, ds.domains["T"].inter.user[sp.train_rows["T"]]).all()


def test_warm_given_user_split():
  split = {f"u{i}": ("test" if i < 10 else "valid" if i < 15 else "train") for i in range(40)}
  ds = world(user_split=split)
  sp = P.make_split(ds, cfg("warm"))
  te, va = sp.eval["T"]["test"], sp.eval["T"]["valid"]
  assert sorted(ds.user_ids[te.user].tolist()) == sorted(f"u{i}" for i in range(10))
  assert len(va) == 5
  # train = all target rows except each valid/test user's last one
  assert len(sp.train_rows["T"]) == len(ds.domains["T"].inter) - 15
  for j in range(len(te)):
    r = target_rows_of(ds, te.user[j])
    assert te.row[j] == r[-1] and len(te.history(j)) == len(r) - 1


@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_cold_start_k_shot_reveal(k):
  ds = world(tgt_len=5)  # users with 5 target rows: k=5 needs 6 → all excluded
  sp = P.make_split(ds, cfg("cold_start", k))
  d = ds.domains["T"]
  train = set(sp.train_rows["T"].tolist())
  n_eval = 0
  for part in ("valid", "test"):
    es = sp.eval["T"][part]
    n_eval += len(es)
    for j in range(len(es)):
      r = target_rows_of(ds, es.user[j])
      assert es.row[j] == r[k]  # the next item after k revealed
      assert set(r[:k].tolist()) <= train  # revealed rows train
      assert not set(r[k:].tolist()) & train  # target and later rows never train
      assert es.history(j).tolist() == d.inter.item[r[:k]].tolist()
  if k == 5:
    assert n_eval == 0 and sp.info["excluded_users_too_few_target_rows"] == 20
  else:
    assert n_eval == 20  # cold_frac 0.5 of the 40 overlapping users
  assert len(sp.train_rows["S"]) == len(ds.domains["S"].inter)


def test_cold_start_users_are_the_same_across_k():
  ds = world()
  users = [
    np.sort(P.make_split(ds, cfg("cold_start", k)).eval["T"]["test"].user) for k in (0, 1, 3)
  ]
  assert all(np.array_equal(users[0], u) for u in users)


def test_new_domain_has_no_target_training():
  ds = world()
  sp = P.make_split(ds, cfg("new_domain"))
  assert len(sp.train_rows["T"]) == 0
  te = sp.eval["T"]["test"]
  assert len(te) > 0
  for j in range(len(te)):
    r = target_rows_of(ds, te.user[j])
    assert te.row[j] == r[-1] and len(te.history(j)) == len(r) - 1


def test_multi_domain_every_domain_evaluated():
  ds = world()
  c = cfg("multi_domain")
  sp = P.make_split(ds, c)
  assert set(sp.eval) == {"S", "T"}
  assert len(sp.eval["S"]["test"]) == 40
  assert len(sp.train_rows["S"]) == len(ds.domains["S"].inter) - 80


def test_cross_domain_order_needs_real_timestamps():
  ds = world()
  with pytest.raises(ValueError, match="real timestamps"):
    P.make_split(ds, cfg("warm", use_cross_domain_order=True))
  ds = world(tgt_len=4, real_timestamps=True)  # S at 0,2,4,6; T valid target at 5
  sp = P.make_split(ds, cfg("warm", use_cross_domain_order=True))
  # source rows at or after the user's earliest eval target are withheld
  s, t = ds.domains["S"], ds.domains["T"]
  first = {}
  for es in sp.eval["T"].values():
    for u, r in zip(es.user, es.row):
      first[u] = min(first.get(u, np.inf), t.inter.order[r])
  for r in sp.train_rows["S"]:
    assert s.inter.order[r] < first.get(s.inter.user[r], np.inf)
  assert sp.info["S/withheld_future_source_rows"] > 0
  # in_domain trains on no source row, so there is nothing to cut (it used to raise KeyError)
  sp = P.make_split(ds, cfg("in_domain", use_cross_domain_order=True))
  assert sp.train_rows.keys() == {"T"} and not any("withheld" in k for k in sp.info)


def given_world():
  """world() with a shipped split on T: each user's test line is their whole sequence (last
  item the target), the valid line the sequence minus its last item, as UniSRec files."""
  ds = world()
  d = ds.domains["T"]
  users = np.unique(d.inter.user)
  seqs = [d.inter.item[target_rows_of(ds, u)] for u in users]
  parts = {}
  for part, cut in (("train", 2), ("valid", 1), ("test", 0)):
    hs = [q[: len(q) - cut - 1] for q in seqs]
    off = np.zeros(len(users) + 1, np.int64)
    np.cumsum([len(h) for h in hs], out=off[1:])
    parts[part] = (
      users.astype(np.int32),
      off,
      np.concatenate(hs).astype(np.int32),
      np.array([q[len(q) - cut - 1] for q in seqs], np.int32),
    )
  ds.domains["T"] = dataclasses.replace(d, given_split=GivenSplit(parts))
  return ds, seqs


def test_given_split_kept_exactly():
  ds, seqs = given_world()
  sp = P.make_split(ds, cfg("in_domain"))
  te, va = sp.eval["T"]["test"], sp.eval["T"]["valid"]
  assert te.target.tolist() == [int(q[-1]) for q in seqs]
  assert te.history(0).tolist() == seqs[0][:-1].tolist()
  assert va.history(1).tolist() == seqs[1][:-2].tolist()
  assert (te.row == -1).all()


def test_leakage_check_catches_leaks():
  ds = world()
  sp = P.make_split(ds, cfg("warm"))
  P.check_leakage(ds, sp)  # clean
  te = sp.eval["T"]["test"]
  bad = dataclasses.replace(
    sp, train_rows=dict(sp.train_rows, T=np.sort(np.r_[sp.train_rows["T"], te.row[0]]))
  )
  with pytest.raises(P.LeakageError, match="also training rows"):
    P.check_leakage(ds, bad)
  # same (user, item) pair present in training through another row
  d = ds.domains["T"]
  j = 0
  other = np.nonzero(d.inter.user == te.user[j])[0]
  other = other[other != te.row[j]][0]
  d.inter.item[other] = te.target[j]
  with pytest.raises(P.LeakageError, match="training input"):
    P.check_leakage(ds, sp)
  # valid and test sharing a target row
  va = sp.eval["T"]["valid"]
  bad = dataclasses.replace(
    sp, eval={"T": {"valid": va, "test": dataclasses.replace(va, user=va.user.copy())}}
  )
  d.inter.item[other] = (te.target[j] + 1) % d.n_items
  with pytest.raises(P.LeakageError):
    P.check_leakage(ds, bad)


def test_unknown_protocol_and_target():
  ds = world()
  with pytest.raises(ValueError, match="unknown protocol"):
    P.make_split(ds, cfg("sideways"))
  with pytest.raises(ValueError, match="target_domain"):
    P.make_split(ds, cfg("warm", target_domain="Nope"))


def test_train_sequences_are_ordered_training_items():
  ds = world()
  sp = P.make_split(ds, cfg("warm"))
  off, items = splits.train_sequences(ds, sp, "T", consumer="test")
  u = 3
  r = target_rows_of(ds, u)
  assert items[off[u] : off[u + 1]].tolist() == ds.domains["T"].inter.item[r[:-2]].tolist()


def test_split_fingerprint_changes_with_protocol():
  ds = world()
  a = P.make_split(ds, cfg("warm")).fingerprint()
  b = P.make_split(ds, cfg("cold_start", 1)).fingerprint()
  assert a != b and a == P.make_split(ds, cfg("warm")).fingerprint()


@pytest.mark.parametrize("shipped", [False, True])
def test_target_fraction_keeps_the_evaluation_and_nests_the_training_users(shipped):
  """The learning-curve protocol: at every fraction the same evaluated users, targets and
  input histories; only a seeded, nested share of the target's users train; every source row
  trains; fraction 1 trains exactly what in_domain trains."""
  ds = given_world()[0] if shipped else world()
  t = ds.domains["T"]
  by_fraction = {f: P.make_split(ds, cfg("target_fraction", fraction=f)) for f in (0.05, 0.2, 1.0)}
  full = P.make_split(ds, cfg("in_domain"))
  assert np.array_equal(by_fraction[1.0].train_rows["T"], full.train_rows["T"])
  assert np.array_equal(by_fraction[1.0].train_rows["S"], np.arange(len(ds.domains["S"].inter)))
  trained_users = {}
  for f, sp in by_fraction.items():
    for part in ("valid", "test"):
      a, b = sp.eval["T"][part], full.eval["T"][part]
      assert np.array_equal(a.user, b.user) and np.array_equal(a.target, b.target)
      assert np.array_equal(a.hist_items, b.hist_items)
    trained_users[f] = set(np.unique(t.inter.user[sp.train_rows["T"]]).tolist())
    n_all = sp.info["target_users_with_training_rows"]
    assert len(trained_users[f]) == sp.info["target_training_users"] == max(1, round(f * n_all))
    assert sp.info["withheld_target_training_rows"] == len(full.train_rows["T"]) - len(
      sp.train_rows["T"]
    )
  assert trained_users[0.05] < trained_users[0.2] < trained_users[1.0]
  # another seed draws other users
  other_cfg = cfg("target_fraction", fraction=0.2)
  other_cfg.seed = 1
  other = P.make_split(ds, other_cfg)
  assert set(np.unique(t.inter.user[other.train_rows["T"]]).tolist()) != trained_users[0.2]


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_target_fraction_outside_0_1_is_one_clear_line(bad):
  with pytest.raises(ValueError, match=r"config.protocol_fraction must be in \(0, 1\]"):
    P.make_split(world(), cfg("target_fraction", fraction=bad))
