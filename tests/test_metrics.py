"""Ranking and beyond-accuracy metrics against brute-force NumPy loops, ties included."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xdkt_jax import metrics as M


# Jitted once per shape: one compile is much cheaper than many eager op dispatches.
RANKS = jax.jit(M.target_ranks)
TOPK_FULL = jax.jit(M.topk_full, static_argnames="k")
METRICS = jax.jit(M.ranking_metrics, static_argnames="ks")
EXCL = jax.jit(M.exclusion_mask, static_argnames="n_items")


def np_rank(scores, target, excl=None):
  """Loop reference: items above the target + OTHER items tied with it, excluded items
  skipped; an excluded target is a miss (rank N).  NaN counts as -inf."""
  s = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
  out = []
  for b in range(s.shape[0]):
    if excl is not None and excl[b, target[b]]:
      out.append(s.shape[1])
      continue
    t, r = s[b, target[b]], 0
    for j in range(s.shape[1]):
      if j == target[b] or (excl is not None and excl[b, j]):
        continue
      if s[b, j] > t or s[b, j] == t:
        r += 1
    out.append(r)
  return np.array(out)


def np_metrics(rank, k):
  rec = np.array([1.0 if r < k else 0.0 for r in rank])
  ndcg = np.array([1.0 / math.log2(r + 2) if r < k else 0.0 for r in rank])
  mrr = np.array([1.0 / (r + 1) if r < k else 0.0 for r in rank])
  return rec, ndcg, mrr


def np_ties(scores, target, excl=None):
  """Loop reference: OTHER non-excluded items scoring exactly the target's score (0 for an
  excluded target)."""
  s = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
  out = []
  for b in range(s.shape[0]):
    if excl is not None and excl[b, target[b]]:
      out.append(0)
      continue
    out.append(
      sum(
        1
        for j in range(s.shape[1])
        if j != target[b] and s[b, j] == s[b, target[b]] and not (excl is not None and excl[b, j])
      )
    )
  return np.array(out)


def np_topk(scores, target, k, excl=None):
  """Stable descending order (lower id first among equals) of the masked scores."""
  s = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
  if excl is not None:
    s = np.where(excl, -np.inf, s)
  return np.stack([np.argsort(-row, kind="stable")[:k] for row in s])


def tied_case(rng, b, n, lo=-3, hi=3):
  return rng.integers(lo, hi, size=(b, n)).astype(np.float32)  # few values: many ties


def test_constructed_ties_count_against_the_target():
  s = np.array([[5.0, 9.0, 5.0, 5.0, 8.0, 5.0, 1.0]], np.float32)  # target 0 tied with 3 others
  r = RANKS(scores_BxN=s, target_B=np.array([0]))
  assert int(r[0]) == 2 + 3 == np_rank(s, [0])[0]
  ex = np.zeros_like(s, bool)
  ex[0, [2, 4]] = True  # one tie and one above are seen items → neither counts
  assert int(RANKS(scores_BxN=s, target_B=np.array([0]), exclude_mask_BxN=ex)[0]) == 3
  const = np.zeros((1, 10), np.float32)  # a collapsed model gets the worst rank, not the best
  assert int(RANKS(scores_BxN=const, target_B=np.array([4]))[0]) == 9


def test_target_ranks_vs_bruteforce_random_ties_and_exclusion():
  rng = np.random.default_rng(0)
  s = tied_case(rng, 24, 31)
  t = rng.integers(0, 31, 24)
  ex = rng.random((24, 31)) < 0.3
  ex[np.arange(0, 24, 3), t[::3]] = True  # the target marked seen in some rows: misses
  got = np.asarray(RANKS(scores_BxN=s, target_B=t, exclude_mask_BxN=ex))
  np.testing.assert_array_equal(got, np_rank(s, t, ex))
  assert (got[::3] == 31).all()
  ties = jax.jit(M.target_ties)(scores_BxN=s, target_B=t, exclude_mask_BxN=ex)
  np.testing.assert_array_equal(np.asarray(ties), np_ties(s, t, ex))
  np.testing.assert_array_equal(np.asarray(RANKS(scores_BxN=s, target_B=t)), np_rank(s, t))


def test_an_excluded_target_is_a_miss_and_nan_is_worst():
  s = np.array([[0.1, 0.9, 0.5, 0.3]], np.float32)
  ex = np.zeros_like(s, bool)
  ex[0, [1, 2]] = True  # item 1 (above) and the target itself are excluded
  assert int(RANKS(scores_BxN=s, target_B=np.array([2]), exclude_mask_BxN=ex)[0]) == 4
  assert int(RANKS(scores_BxN=s, target_B=np.array([3]), exclude_mask_BxN=ex)[0]) == 0
  _, top, rank, _ = TOPK_FULL(scores_BxN=s, target_B=np.array([2]), k=1, exclude_mask_BxN=ex)
  assert int(top[0, 0]) == 3 and int(rank[0]) == 4
  nan = np.array([[0.1, np.nan, -np.inf, 0.3]], np.float32)
  assert int(RANKS(scores_BxN=nan, target_B=np.array([1]))[0]) == 3


@pytest.mark.parametrize("k", [1, 5, 10, 20, 50])
def test_ranking_metrics_vs_numpy(k):
  rank = np.array([0, 1, 3, 4, 9, 10, 19, 20, 49, 50, 200])
  out = METRICS(rank_B=rank, ks=(k,))
  rec, ndcg, mrr = np_metrics(rank, k)
  np.testing.assert_allclose(out[f"recall@{k}"], rec)
  np.testing.assert_allclose(out[f"ndcg@{k}"], ndcg, rtol=1e-6)
  np.testing.assert_allclose(out[f"mrr@{k}"], mrr, rtol=1e-6)


def test_metrics_from_tied_scores_end_to_end():
  rng = np.random.default_rng(1)
  s, t = tied_case(rng, 40, 60), rng.integers(0, 60, 40)
  rank = RANKS(scores_BxN=s, target_B=t)
  ref = np_rank(s, t)
  out = METRICS(rank_B=rank, ks=M.DEFAULT_KS)
  for k in M.DEFAULT_KS:
    for name, v in zip(("recall", "ndcg", "mrr"), np_metrics(ref, k)):
      np.testing.assert_allclose(out[f"{name}@{k}"], v, rtol=1e-6)


def test_exclusion_mask_from_padded_lists():
  hist = np.array([[3, 1, 0], [2, 2, 0], [4, 0, 0]], np.int32)
  mask = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0]], np.int8)
  ex = np.asarray(EXCL(items_BxL=hist, mask_BxL=mask, n_items=5))
  want = np.zeros((3, 5), bool)
  want[0, [1, 3]] = True  # padding 0 is not item 0
  want[1, 2] = True
  want[2, [0, 4]] = True
  np.testing.assert_array_equal(ex, want)


def test_the_mask_of_a_user_is_the_same_whatever_their_target():
  """Label independence: ranking the same user's scores and lists for every possible target
  gives one and the same exclusion mask and one and the same top-k list; only the rank of
  the (changing) target moves, and a listed target is a miss."""
  rng = np.random.default_rng(7)
  n = 9
  s = np.repeat(rng.normal(size=(1, n)).astype(np.float32), n, axis=0)
  hist = np.repeat(np.array([[2, 5, 7]], np.int32), n, axis=0)
  mask = np.ones((n, 3), np.int8)
  targets = np.arange(n)  # row b: the same user, target b
  ex = np.asarray(EXCL(items_BxL=hist, mask_BxL=mask, n_items=n))
  assert (ex == ex[0]).all()
  _, top, rank, _ = TOPK_FULL(scores_BxN=s, target_B=targets, k=4, exclude_mask_BxN=ex)
  assert (np.asarray(top) == np.asarray(top)[0]).all()
  np.testing.assert_array_equal(np.asarray(rank), np_rank(s, targets, ex))
  assert (np.asarray(rank)[[2, 5, 7]] == n).all()
  f = jax.jit(functools.partial(M.topk_chunked, k=4, chunk=4))
  e = np.eye(n, dtype=np.float32)
  _, ctop, crank, _ = f(
    target_B=targets, user_repr_BxD=s, item_emb_NxD=e, exclude_items_BxL=hist, exclude_mask_BxL=mask
  )
  np.testing.assert_array_equal(np.asarray(ctop), np.asarray(top))
  np.testing.assert_array_equal(np.asarray(crank), np.asarray(rank))


def test_topk_full_vs_numpy_with_ties_and_exclusion():
  rng = np.random.default_rng(2)
  s, t = tied_case(rng, 16, 23), rng.integers(0, 23, 16)
  ex = rng.random((16, 23)) < 0.25
  vals, top, rank, ties = TOPK_FULL(scores_BxN=s, target_B=t, k=7, exclude_mask_BxN=ex)
  np.testing.assert_array_equal(np.asarray(top), np_topk(s, t, 7, ex))
  np.testing.assert_array_equal(np.asarray(rank), np_rank(s, t, ex))
  np.testing.assert_array_equal(np.asarray(ties), np_ties(s, t, ex))


def _hist(rng, t, n, b, length=6):
  hist = rng.integers(0, n, (b, length)).astype(np.int32)
  hist[::4, 0] = t[::4]  # some histories contain the target
  mask = (rng.random((b, length)) < 0.7).astype(np.int8)
  ex = np.zeros((b, n), bool)
  for i in range(b):
    ex[i, hist[i][mask[i] > 0]] = True
  return hist, mask, ex


@pytest.mark.parametrize("chunk", [5, 13, 64])
@pytest.mark.parametrize("ties", [False, True])
def test_topk_chunked_equals_full_topk_and_bruteforce_rank(chunk, ties):
  rng = np.random.default_rng(chunk + 100 * ties)
  b, n, d, k = 12, 37, 4, 7  # no chunk size divides 37; k > chunk=5 is allowed too
  if ties:  # small integer vectors: exact dot products, many equal scores, duplicate items
    u = rng.integers(-2, 3, (b, d)).astype(np.float32)
    e = rng.integers(-1, 2, (n, d)).astype(np.float32)
    e[10:14] = e[3]
  else:
    u = rng.normal(size=(b, d)).astype(np.float32)
    e = rng.normal(size=(n, d)).astype(np.float32)
  t = rng.integers(0, n, b)
  hist, mask, ex = _hist(rng, t, n, b)
  f = jax.jit(functools.partial(M.topk_chunked, k=k, chunk=chunk))
  vals, top, rank, ties = f(
    target_B=t, user_repr_BxD=u, item_emb_NxD=e, exclude_items_BxL=hist, exclude_mask_BxL=mask
  )
  s = np.asarray(jnp.asarray(u) @ jnp.asarray(e).T)
  fv, ftop, frank, fties = TOPK_FULL(scores_BxN=s, target_B=t, k=k, exclude_mask_BxN=ex)
  np.testing.assert_array_equal(np.asarray(ties), np_ties(s, t, ex))
  np.testing.assert_array_equal(np.asarray(ties), np.asarray(fties))
  np.testing.assert_array_equal(np.asarray(top), np.asarray(ftop))
  np.testing.assert_allclose(np.asarray(vals), np.asarray(fv), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(top), np_topk(s, t, k, ex))
  np.testing.assert_array_equal(np.asarray(rank), np_rank(s, t, ex))
  np.testing.assert_array_equal(np.asarray(rank), np.asarray(frank))


def test_topk_chunked_generic_scores_and_recount_path():
  """A scorer whose target score computed up front is off (it depends on the call's shape)
  must still give exact ranks: the in-chunk score wins via the recount pass."""
  rng = np.random.default_rng(5)
  b, n, k = 6, 29, 4
  s = tied_case(rng, b, n)
  t = rng.integers(0, n, b)
  full = jnp.asarray(s)
  fn = lambda ids: full[:, ids] + jnp.where(ids.shape[0] == b, 0.5, 0.0)
  # chunk 7: chunks score without the offset, the up-front guess (shape b) with it → recount;
  # chunk 6 == b: every call has the offset, so the guess agrees and the ranks are unchanged.
  for chunk, s_used in ((7, s), (6, s + 0.5)):
    f = jax.jit(functools.partial(M.topk_chunked, k=k, chunk=chunk, chunk_scores_fn=fn, n_items=n))
    _, top, rank, ties = f(target_B=t)
    np.testing.assert_array_equal(np.asarray(rank), np_rank(s_used, t))
    np.testing.assert_array_equal(np.asarray(ties), np_ties(s_used, t))
    np.testing.assert_array_equal(np.asarray(top), np_topk(s_used, t, k))


# --- beyond accuracy, hand-computed -----------------------------------------------------------


def jit(f, **static):
  """One compile per call site instead of many eager op dispatches (keeps the suite fast)."""
  return jax.jit(functools.partial(f, **static))


def test_coverage_hand():
  top = np.array([[0, 1], [1, 2]])
  cov2, cov1 = jit(M.coverage_at_k, n_items=10, k=2), jit(M.coverage_at_k, n_items=10, k=1)
  assert float(cov2(topk_BxK=top)) == pytest.approx(0.3)
  assert float(cov1(topk_BxK=top)) == pytest.approx(0.2)
  assert float(cov2(topk_BxK=top, valid_B=np.array([True, False]))) == pytest.approx(0.2)


def test_intra_list_diversity_hand():
  v = np.array([[1, 0], [0, 1], [1, 1], [2, 0], [0, 0]], np.float32)
  top = np.array([[0, 1, 3], [0, 2, 2], [0, 4, 4]])
  ild = np.asarray(jit(M.intra_list_diversity, k=3)(topk_BxK=top, item_vectors_NxD=v))
  # [0,1,3]: d(0,1)=1, d(0,3)=0, d(1,3)=1 → 2/3
  # [0,2,2]: d(0,2)=1-1/√2 twice, d(2,2)=0 → 2(1-1/√2)/3
  # [0,4,4]: zero vectors have cosine 0 with everything → distance 1, including (4,4)
  np.testing.assert_allclose(ild, [2 / 3, 2 * (1 - 1 / math.sqrt(2)) / 3, 1.0], rtol=1e-6)
  ild2 = np.asarray(jit(M.intra_list_diversity, k=2)(topk_BxK=top, item_vectors_NxD=v))
  np.testing.assert_allclose(ild2, [1.0, 1 - 1 / math.sqrt(2), 1.0], rtol=1e-6)


def test_novelty_arp_popularity_bias_hand():
  counts = np.array([3, 1, 0, 0])  # smoothed shares (c+1)/(4+4) = .5, .25, .125, .125
  top = np.array([[0, 2], [1, 3]])
  nov = np.asarray(jit(M.novelty_at_k, k=2)(topk_BxK=top, item_popularity_N=counts))
  np.testing.assert_allclose(nov, [(1 + 3) / 2, (2 + 3) / 2])
  arp = np.asarray(jit(M.average_popularity_at_k, k=2)(topk_BxK=top, item_popularity_N=counts))
  np.testing.assert_allclose(arp, [1.5, 0.5])
  pct = np.asarray(jax.jit(M.popularity_percentile)(item_popularity_N=counts))
  np.testing.assert_allclose(pct, [3.5 / 4, 2.5 / 4, 1 / 4, 1 / 4])  # mid-rank percentiles
  pb = jit(M.popularity_bias_at_k, k=2)(
    topk_BxK=top, target_B=np.array([1, 0]), item_popularity_N=counts
  )
  np.testing.assert_allclose(pb["rec_pct"], [(0.875 + 0.25) / 2, (0.625 + 0.25) / 2])
  np.testing.assert_allclose(pb["target_pct"], [0.625, 0.875])
  np.testing.assert_allclose(pb["bias"], [0.5625 - 0.625, 0.4375 - 0.875])
