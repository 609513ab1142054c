"""The synthetic world: deterministic, the right size, and carrying real transferable signal."""

import re
import time
import types

import numpy as np
import pytest

from xdkt_jax.data import synthetic
from xdkt_jax.data.schema import CrossDomainDataset
from xdkt_jax.data.synthetic import sampling


def _cfg(**kw):
  cfg = synthetic.default_config()
  cfg.update(dict(n_users=400, items_per_domain=300, interactions=20_000))
  cfg.update(kw)
  return cfg


@pytest.fixture(scope="module")
def world():
  """The default-sized world (2000 users, 2x1000 items, 100k interactions) and its latents."""
  return synthetic.generate_with_latents(synthetic.default_config())


def _arrays(ds):
  out = []
  for d in ds.domains.values():
    out += [
      d.inter.user,
      d.inter.item,
      d.inter.order,
      d.inter.rating,
      d.items.ids,
      *d.items.text.values(),
    ]
  return out


def test_deterministic_in_seed():
  a, b, c = (synthetic.generate(_cfg(seed=s)) for s in (3, 3, 4))
  for x, y in zip(_arrays(a), _arrays(b)):
    np.testing.assert_array_equal(x, y)
  assert a.fingerprint() == b.fingerprint()
  assert a.fingerprint() != c.fingerprint()
  assert not np.array_equal(a.domains["Books"].inter.item, c.domains["Books"].inter.item)


def test_config_forms_and_latents_agree():
  """dict, SimpleNamespace and ConfigDict give the same world; world_latents matches."""
  kw = dict(seed=5, n_users=200, items_per_domain=(150, 250), interactions=8000)
  ds1, w1 = synthetic.generate_with_latents(kw)
  ds2 = synthetic.generate(types.SimpleNamespace(**kw))
  assert ds1.fingerprint() == ds2.fingerprint()
  w = synthetic.world_latents(_cfg(**kw))
  np.testing.assert_array_equal(w.user_taste, w1.user_taste)
  for name in ds1.domains:
    np.testing.assert_array_equal(w.domains[name].vec, w1.domains[name].vec)
  assert [ds1.domains[n].n_items for n in ds1.domains] == [150, 250]


def test_structure_and_sizes(world):
  ds, _ = world
  cfg = synthetic.default_config()
  assert isinstance(ds, CrossDomainDataset)
  assert ds.name == "synthetic" and ds.real_timestamps
  assert ds.domain_names == ["Books", "Movies"]
  total = sum(len(d.inter) for d in ds.domains.values())
  assert abs(total - cfg.interactions) <= 0.05 * cfg.interactions
  assert ds.n_users == cfg.n_users and re.fullmatch(r"u\d{6}", ds.user_ids[123])
  assert ds.user_ids[123] == "u000123"
  for name, d in ds.domains.items():
    assert d.items.ids[42] == f"{name}_i00042"
    assert d.inter.user.dtype == np.int32 and d.inter.item.dtype == np.int32
    assert d.inter.order.dtype == np.float64 and d.inter.rating.dtype == np.float32
    assert d.inter.item.min() >= 0 and d.inter.item.max() < d.n_items
    assert set(np.unique(d.inter.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ds.log.raw[name] == {
      "users": len(d.users()),
      "items": d.n_items,
      "interactions": len(d.inter),
    }
    # Every active user has >= 3 interactions in the domain.
    assert np.bincount(d.inter.user)[d.users()].min() >= 3


def test_timestamps_are_one_real_clock_per_user(world):
  ds, _ = world
  user = np.concatenate([d.inter.user for d in ds.domains.values()])
  t = np.concatenate([d.inter.order for d in ds.domains.values()])
  o = np.lexsort((t, user))
  same = user[o][1:] == user[o][:-1]
  assert (np.diff(t[o])[same] > 0).all()  # strictly increasing, even across domains
  assert np.all(t == np.round(t)) and t.min() > 1e9


@pytest.mark.parametrize(
  "domains,overlap",
  [(("Books", "Movies"), 0.5), (("Books", "Movies", "Music"), 0.3), (("Books", "Movies"), 0.0)],
)
def test_overlap_fraction(domains, overlap):
  ds = synthetic.generate(_cfg(domains=domains, overlap=overlap))
  n_active = np.zeros(ds.n_users, int)
  for d in ds.domains.values():
    n_active[d.users()] += 1
  assert n_active.min() >= 1
  assert abs(np.mean(n_active > 1) - overlap) < 0.02
  if overlap == 0.0:
    assert all(v == 0 for v in ds.overlap().values())


def test_items_cover_categories_and_text_names_the_concept(world):
  ds, w = world
  vocab = [k for k in synthetic.CONCEPTS] + [x for v in synthetic.CONCEPTS.values() for x in v]
  assert len(vocab) == len(set(vocab)) and len(synthetic.CONCEPTS) >= 24
  assert len(w.categories) == synthetic.default_config().n_categories
  for name, d in ds.domains.items():
    cat = w.domains[name].category
    assert set(np.unique(cat)) == set(range(len(w.categories)))
    title, cats, brand = (d.items.text[f] for f in ("title", "categories", "brand"))
    for i in range(d.n_items):
      k = cat[i]
      words = set(title[i].split())
      assert title[i] and words & ({w.categories[k]} | set(w.descriptors[k]))
      assert cats[i] == f"{name.lower()} > {w.categories[k]}"
      assert title[i].startswith(brand[i]) and brand[i] in w.brands


def test_text_noise_adds_filler():
  clean = synthetic.generate(_cfg(text_noise=0.0)).domains["Books"].items.text["title"]
  noisy = synthetic.generate(_cfg(text_noise=0.5)).domains["Books"].items.text["title"]
  assert all(len(t.split()) >= 4 for t in clean)
  filler = set(synthetic.FILLER)
  assert not any(filler & set(t.split()) for t in clean)
  frac = np.mean([len(filler & set(t.split())) > 0 for t in noisy])
  assert frac > 0.7


def test_source_history_predicts_target_categories(world):
  """Top source category of an overlapping user matches their top target category far more
  often than the global most popular target category does."""
  ds, w = world
  K = len(w.categories)

  def hist(name):
    d = ds.domains[name]
    h = np.zeros((ds.n_users, K))
    np.add.at(h, (d.inter.user, w.domains[name].category[d.inter.item]), 1)
    return h

  src, tgt = hist("Books"), hist("Movies")
  both = (src.sum(1) > 0) & (tgt.sum(1) > 0)
  tgt_top = tgt[both].argmax(1)
  transfer = np.mean(src[both].argmax(1) == tgt_top)
  baseline = np.mean(tgt.sum(0).argmax() == tgt_top)
  print(f"top-1 category match: transfer {transfer:.3f} vs popularity {baseline:.3f}")
  assert transfer >= 2 * baseline and transfer > 0.4


def test_choices_follow_taste(world):
  """Interacted items sit closer to the user's taste than random catalogue items."""
  ds, w = world
  d = ds.domains["Movies"]
  lat = w.domains["Movies"]
  aff = np.einsum("nd,nd->n", w.user_taste[d.inter.user], lat.vec[d.inter.item])
  rnd = np.einsum(
    "nd,nd->n",
    w.user_taste[d.inter.user],
    lat.vec[np.random.default_rng(0).integers(d.n_items, size=len(d.inter))],
  )
  assert aff.mean() > rnd.mean() + 0.2
  # Ratings are correlated with affinity.
  assert np.corrcoef(aff, d.inter.rating)[0, 1] > 0.3


def test_taste_drifts_along_the_timeline(world):
  """Later interactions lean more towards each user's drift category than early ones."""
  ds, w = world
  d = ds.domains["Books"]
  o = np.lexsort((d.inter.order, d.inter.user))
  user, cat = d.inter.user[o], w.domains["Books"].category[d.inter.item[o]]
  start = np.searchsorted(user, user)
  n_u = np.bincount(user)[user]
  frac = (np.arange(len(user)) - start) / n_u
  hit = cat == w.user_drift_to[user]
  assert hit[frac >= 0.67].mean() > hit[frac < 0.33].mean() + 0.08


def test_popularity_has_heavy_tail(world):
  ds, _ = world
  for d in ds.domains.values():
    cnt = np.sort(np.bincount(d.inter.item, minlength=d.n_items))[::-1]
    assert cnt[: d.n_items // 10].sum() > 0.3 * cnt.sum()


def test_sampler_matches_softmax():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 7)).astype(np.float32) * 2
  counts = np.array([60_000, 1, 60_000])
  out = sampling.sample_grouped(
    lambda lo, hi: logits[lo:hi].copy(), counts, 7, rng, chunk_elems=14
  )  # 2 groups per chunk
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  for g, (a, b) in enumerate([(0, 60_000), (60_001, 120_001)]):
    freq = np.bincount(out[a:b], minlength=7) / (b - a)
    np.testing.assert_allclose(freq, p[2 * g], atol=0.01)


def test_sampler_two_level_path_matches_softmax():
  """Many groups with one draw each take the block-sum path; 100 items pad to 4 blocks."""
  rng = np.random.default_rng(1)
  row = (rng.normal(size=100) * 1.5).astype(np.float32)
  counts = np.ones(40_000, np.int64)
  out = sampling.sample_grouped(
    lambda lo, hi: np.tile(row, (hi - lo, 1)), counts, 100, rng, block=32
  )
  p = np.exp(row - row.max())
  p /= p.sum()
  np.testing.assert_allclose(np.bincount(out, minlength=100) / len(out), p, atol=0.01)


def test_within_category_sampler_stays_in_category(world):
  _, w = world
  lat = w.domains["Books"]
  cat = np.random.default_rng(1).integers(len(w.categories), size=5000)
  items = sampling.sample_within(cat, lat, np.random.default_rng(2))
  np.testing.assert_array_equal(lat.category[items], cat)


def test_bad_configs_raise():
  with pytest.raises(ValueError, match="domain"):
    synthetic.generate(_cfg(domains=("Books",)))
  with pytest.raises(ValueError, match="interactions"):
    synthetic.generate(_cfg(interactions=100))
  with pytest.raises(ValueError, match="items_per_domain"):
    synthetic.generate(_cfg(items_per_domain=(100, 100, 100)))


@pytest.mark.slow
def test_million_interaction_world_generates():
  """Timing is printed for the record, not asserted (benchmarks own timings)."""
  cfg = synthetic.default_config()
  cfg.update(dict(interactions=1_000_000, n_users=20_000, items_per_domain=2000))
  t = time.perf_counter()
  ds = synthetic.generate(cfg)
  dt = time.perf_counter() - t
  total = sum(len(d.inter) for d in ds.domains.values())
  print(f"1M-interaction world: {total} rows in {dt:.2f}s")
  assert abs(total - 1_000_000) <= 50_000
