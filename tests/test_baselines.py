"""Baselines: interface, determinism, leakage discipline, sanity and transfer on the synthetic
world.  Ranks come from a tiny brute-force evaluator kept here on purpose (full ranking over
the target catalogue, pessimistic ties, history items excluded), independent of evaluate.py.
"""

import dataclasses

import ml_collections
import numpy as np
import pytest

from conftest import small_world_config
from xdkt_jax.data import inputs, load, protocols
from xdkt_jax.data.schema import Interactions
from xdkt_jax.recommenders import baselines
from xdkt_jax.recommenders.baselines import common, emcdr, mf

TARGET = "Movies"
NAMES = sorted(baselines.BASELINES)
MF_FAMILY = ("bpr_mf", "cmf", "emcdr")


def brute_force_ranks(scores_BxN, batch) -> np.ndarray:
  """1-based rank of each target: 1 + #{other non-history items scoring >= the target}; a
  target in its own history is excluded with it (the rule never looks at the label): N + 1."""
  s = np.asarray(scores_BxN, np.float64).copy()
  t = np.asarray(batch["target"])
  ts = s[np.arange(len(t)), t]
  m = np.asarray(batch["hist_mask"]).astype(bool)
  r, c = np.nonzero(m)[0], np.asarray(batch["hist"])[m]
  s[r, c] = -np.inf
  seen_t = np.isneginf(s[np.arange(len(t)), t])
  ranks = (s >= ts[:, None]).sum(1)  # counts the target itself once: that is the +1
  return np.where(seen_t, s.shape[1] + 1, ranks)


def metrics_at(ranks, k=10) -> dict:
  ranks = np.asarray(ranks)
  return {
    "ndcg": float(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0).mean()),
    "recall": float((ranks <= k).mean()),
    "mean_rank": float(ranks.mean()),
  }


def _split(ds, protocol, k):
  c = ml_collections.ConfigDict(small_world_config().to_dict())
  c.protocol, c.protocol_k = protocol, k
  return protocols.make_split(ds, c)


def _batch(ds, split, parts=("test",)):
  arrs = [inputs.eval_arrays(ds, split, TARGET, p, exclude_history="all") for p in parts]
  return {key: np.concatenate([a[key] for a in arrs]) for key in arrs[0]}


@pytest.fixture(scope="module")
def world():
  ds, _ = load.load(small_world_config().data, tokenize=False)
  return ds


@pytest.fixture(scope="module")
def cold1(world):
  split = _split(world, "cold_start", 1)
  return split, _batch(world, split)


_FITS = {}


def _fit(world, split, name, **cfg):
  key = (split.fingerprint(), name, tuple(sorted(cfg.items())))
  if key not in _FITS:
    _FITS[key] = baselines.fit(name, world, split, target=TARGET, cfg=cfg or None)
  return _FITS[key]


def test_brute_force_ranks_is_pessimistic_and_skips_history():
  batch = {
    "target": np.array([2, 0]),
    "hist": np.array([[1, 0], [0, 0]]),
    "hist_mask": np.array([[1, 0], [1, 0]]),
  }
  s = np.array([[5.0, 9.0, 5.0, 5.0], [1.0, 1.0, 1.0, 0.0]])
  # row 0: item 1 is history (excluded); items 0 and 3 tie with the target → rank 3.
  # row 1: the target is item 0 and also in history: excluded with it → a miss, rank N + 1.
  np.testing.assert_array_equal(brute_force_ranks(s, batch), [3, 5])


@pytest.mark.parametrize("name", NAMES)
def test_fit_score_shape_and_no_eval_pair_in_training(world, cold1, name):
  split, batch = cold1
  model = _fit(world, split, name)
  s = np.asarray(model.score(batch))
  assert s.shape == (len(batch["user"]), world.domains[TARGET].n_items)
  assert s.dtype == np.float32 and np.isfinite(s).all()
  tm = model.train.target
  for part, es in split.eval[TARGET].items():
    hit = np.asarray(tm[es.user, es.target]).ravel()
    assert not hit.any(), f"{name}: {part} (user, target) pair in the training matrix"
  # Exactly the split's training pairs, nothing more.
  d = world.domains[TARGET]
  rows = split.train_rows[TARGET]
  assert tm.nnz == len(
    np.unique(d.inter.user[rows].astype(np.int64) * d.n_items + d.inter.item[rows])
  )


def _blinded(ds, split, seed=123):
  """The dataset with every NON-training target row's item replaced at random: a model that
  reads only split.train_rows cannot tell the difference."""
  d = ds.domains[TARGET]
  hidden = np.ones(len(d.inter), bool)
  hidden[split.train_rows[TARGET]] = False
  item = d.inter.item.copy()
  item[hidden] = np.random.default_rng(seed).integers(d.n_items, size=int(hidden.sum()))
  assert (item != d.inter.item).any()
  inter = Interactions(d.inter.user, item, d.inter.order, d.inter.rating)
  doms = dict(ds.domains)
  doms[TARGET] = dataclasses.replace(d, inter=inter)
  return dataclasses.replace(ds, domains=doms)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_blind_to_eval_targets(world, cold1, name):
  """Refit on a dataset whose held-out target rows are scrambled, score a batch whose
  `target` column is scrambled: the scores must be bit-identical to the clean fit (this is
  determinism in the seed AND proof that neither fit nor score looks at eval targets)."""
  split, batch = cold1
  ref = np.asarray(_fit(world, split, name).score(batch))
  model = baselines.fit(name, _blinded(world, split), split, target=TARGET)
  b2 = dict(batch, target=np.random.default_rng(0).permutation(batch["target"]))
  np.testing.assert_array_equal(np.asarray(model.score(b2)), ref)


@pytest.mark.parametrize("name", MF_FAMILY)
def test_seed_changes_mf_fits(world, cold1, name):
  split, batch = cold1
  a = np.asarray(_fit(world, split, name).score(batch))
  b = np.asarray(_fit(world, split, name, seed=1).score(batch))
  assert not np.array_equal(a, b)


@pytest.fixture(scope="module")
def warm(world):
  split = _split(world, "warm", 1)
  return split, _batch(world, split)


@pytest.mark.parametrize("name", NAMES)
def test_beats_random_on_warm_users(world, warm, name):
  split, batch = warm
  ranks = brute_force_ranks(_fit(world, split, name).score(batch), batch)
  n = world.domains[TARGET].n_items
  assert ranks.mean() < n / 2, f"{name}: mean rank {ranks.mean():.1f} of {n}"


def test_collaborative_baselines_beat_pop_on_warm_users(world, warm):
  split, batch = warm
  ndcg = {
    n: metrics_at(brute_force_ranks(_fit(world, split, n).score(batch), batch))["ndcg"]
    for n in ("pop", "itemknn", "userknn", "bpr_mf")
  }
  for n in ("itemknn", "userknn"):
    assert ndcg[n] > ndcg["pop"], ndcg


def test_transfer_beats_target_only_for_zero_shot_users(world):
  """cold_start k=0: the user has NO target rows, so target-only models can only answer with
  popularity; emcdr and cmf must use the source domain to do better (valid+test, 200 users)."""
  split = _split(world, "cold_start", 0)
  batch = _batch(world, split, ("valid", "test"))
  assert not batch["hist_mask"].any() and batch["src_mask"].any(1).all()
  m = {
    n: metrics_at(brute_force_ranks(_fit(world, split, n).score(batch), batch))
    for n in ("pop", "bpr_mf", "emcdr", "cmf")
  }
  for t in ("emcdr", "cmf"):
    for base in ("pop", "bpr_mf"):
      assert m[t]["ndcg"] > 1.2 * m[base]["ndcg"], m
      assert m[t]["recall"] > m[base]["recall"], m
      assert m[t]["mean_rank"] < m[base]["mean_rank"], m


def test_unknown_names_and_options_raise(world, cold1):
  split, _ = cold1
  with pytest.raises(ValueError, match="unknown baseline"):
    baselines.fit("nope", world, split, target=TARGET)
  with pytest.raises(ValueError, match="unknown option"):
    baselines.fit("pop", world, split, target=TARGET, cfg={"dimm": 3})
  with pytest.raises(ValueError, match="mapping"):
    baselines.fit("emcdr", world, split, target=TARGET, cfg={"mapping": "cubic"})


def test_empty_input_falls_back_to_popularity(world, cold1):
  """A user with no target history: itemknn's row is in popularity order (the tie-break)."""
  split, batch = cold1
  b = {k: v[:3].copy() for k, v in batch.items()}
  b["hist_mask"][:] = 0
  pop = _fit(world, split, "pop").score(b)[0]
  knn_row = _fit(world, split, "itemknn").score(b)[0]
  order = lambda x: np.argsort(-x, kind="stable")
  np.testing.assert_array_equal(order(knn_row), order(pop))


def test_userknn_finds_neighbours_from_source_alone(world, cold1):
  split, batch = cold1
  b = {k: v[:8].copy() for k, v in batch.items()}
  b["hist_mask"][:] = 0
  with_src = _fit(world, split, "userknn").score(b)
  no_src = _fit(world, split, "userknn", use_source=False).score(b)
  assert (with_src.max(1) > 1e-3).all()  # real neighbour mass, not the tie-break
  assert (no_src.max(1) <= common.TIE_EPS).all()  # target-only: nothing to go on


def test_mf_fold_in_for_users_without_training_rows(world, cold1):
  split, batch = cold1
  model = _fit(world, split, "bpr_mf")
  b = {k: v[:4].copy() for k, v in batch.items()}
  unknown = np.nonzero(~model.known)[0]
  b["user"][:] = unknown[0]
  b["hist_mask"][2:] = 0
  s = model.score(b)
  fold = model.item[b["hist"][0, :1]].mean(0)
  np.testing.assert_allclose(s[0], fold @ model.item.T + model.bias, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(s[3], model.train.pop)


def test_bpr_loss_matches_numpy():
  rng = np.random.default_rng(0)
  p = {
    "user": rng.normal(size=(4, 3)).astype(np.float32),
    "item": rng.normal(size=(5, 3)).astype(np.float32),
    "bias": rng.normal(size=5).astype(np.float32),
  }
  u, i, j, w = (
    np.array([0, 1, 3]),
    np.array([1, 2, 4]),
    np.array([0, 0, 3]),
    np.array([1.0, 2.0, 0.5]),
  )
  x = (p["user"][u] * (p["item"][i] - p["item"][j])).sum(1) + p["bias"][i] - p["bias"][j]
  reg = 0.1 * ((p["user"][u] ** 2).sum(1) + (p["item"][i] ** 2).sum(1) + (p["item"][j] ** 2).sum(1))
  ref = (w * (np.log1p(np.exp(-x)) + reg)).sum() / w.sum()
  np.testing.assert_allclose(float(mf.bpr_loss(p, u, i, j, w, l2=0.1)), ref, rtol=1e-5)


def test_linear_mapping_recovers_a_linear_map():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 4))
  w, c = rng.normal(size=(4, 3)), rng.normal(size=3)
  f = emcdr.fit_linear(x, x @ w + c, l2=0.0)
  np.testing.assert_allclose(f(x[:5]), x[:5] @ w + c, rtol=1e-4, atol=1e-4)


def test_tfidf_shares_one_space_across_domains(world):
  vec = baselines.tfidf_vectors(world)
  books, movies = vec["Books"], vec["Movies"]
  assert books.shape[1] == movies.shape[1]
  np.testing.assert_allclose(np.linalg.norm(movies, axis=1), 1.0, rtol=1e-5)
  # An item is closest (on average) to the other domain's items of its own category.
  cat = lambda d: np.array([c.split(" > ")[1] for c in world.domains[d].items.text["categories"]])
  cb, cm = cat("Books"), cat("Movies")
  sim = movies[:200] @ books.T
  same = cm[:200, None] == cb[None, :]
  assert (sim * same).sum() / same.sum() > 2 * (sim * ~same).sum() / (~same).sum()


def test_text_knn_accepts_item_vectors_and_checks_shapes(world, cold1):
  split, batch = cold1
  rng = np.random.default_rng(0)
  vecs = {
    d: rng.normal(size=(world.domains[d].n_items, 16)).astype(np.float32) for d in world.domains
  }
  model = baselines.fit("text_knn", world, split, target=TARGET, item_vectors=vecs)
  assert model.score(batch).shape == (len(batch["user"]), world.domains[TARGET].n_items)
  bad = dict(vecs, Movies=vecs["Movies"][:-1])
  with pytest.raises(ValueError, match="shape"):
    baselines.fit("text_knn", world, split, target=TARGET, item_vectors=bad)
  with pytest.raises(TypeError):
    baselines.fit("pop", world, split, target=TARGET, item_vectors=vecs)


def test_protocols_without_the_needed_data_fail_clearly(world):
  in_domain = _split(world, "in_domain", 0)
  with pytest.raises(ValueError, match="no source training rows"):
    baselines.fit("emcdr", world, in_domain, target=TARGET)
  new_domain = _split(world, "new_domain", 0)
  for name in MF_FAMILY:
    with pytest.raises(ValueError, match="no training rows"):
      baselines.fit(name, world, new_domain, target=TARGET)
  batch = _batch(world, new_domain)
  ranks = brute_force_ranks(
    baselines.fit("text_knn", world, new_domain, target=TARGET).score(batch), batch
  )
  assert ranks.mean() < world.domains[TARGET].n_items / 2  # text alone still transfers
