"""The evaluator on hand-made cases with known ranks; the embedding path; compile-once."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xdkt_jax import evaluate as E

# Three examples over 6 items; scores are per user.  Ranks worked out by hand:
#  ex0 user0 target 2, history [4]: item 4 (1.0) is seen → excluded; above 0.5: item 0; tied:
#      item 3 → rank 2.  Without exclusion: items 0, 4 above, item 3 tied → rank 3.
#  ex1 user1 target 5, no history: highest score → rank 0 (either way).
#  ex2 user2 target 0, history [0, 1]: the target is in its own history, which the rule
#      excludes before the target is known → a miss, rank 6 (N).
#      Without exclusion: items 1, 5 above + 3 tied → rank 5.
SCORES = np.array(
  [[0.9, 0.1, 0.5, 0.5, 1.0, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.3, 0.9, 0.3, 0.3, 0.3, 0.8]],
  np.float32,
)
ARRAYS = {
  "user": np.array([0, 1, 2], np.int32),
  "target": np.array([2, 5, 0], np.int32),
  "hist": np.array([[4, 0], [0, 0], [0, 1]], np.int32),
  "hist_mask": np.array([[1, 0], [0, 0], [1, 1]], np.int8),
}
ARRAYS_EXCL = {**ARRAYS, "exclude_items": ARRAYS["hist"], "exclude_mask": ARRAYS["hist_mask"]}
RANKS = [2, 0, 6]
RANKS_NO_EXCL = [3, 0, 5]


def table_score_fn(batch):
  return SCORES[batch["user"]]


def test_evaluator_known_ranks_exact_metrics():
  res = E.evaluate(
    score_fn=table_score_fn,
    arrays=ARRAYS_EXCL,
    n_items=6,
    batch_size=2,
    ks=(1, 3, 5),
    groups=E.history_length_groups(ARRAYS["hist_mask"]),
  )
  assert res.n == 3
  np.testing.assert_array_equal(res.per_example["rank"], RANKS)
  l2 = math.log2
  assert res.means["recall@1"] == pytest.approx(1 / 3)
  assert res.means["recall@3"] == pytest.approx(2 / 3)
  assert res.means["recall@5"] == pytest.approx(2 / 3)
  np.testing.assert_allclose(res.per_example["ndcg@3"], [1 / l2(4), 1, 0], rtol=1e-6)
  np.testing.assert_allclose(res.per_example["ndcg@5"], [1 / l2(4), 1, 0], rtol=1e-6)
  assert res.means["ndcg@5"] == pytest.approx((0.5 + 1) / 3, rel=1e-6)
  np.testing.assert_allclose(res.per_example["mrr@5"], [1 / 3, 1, 0], rtol=1e-6)
  assert res.means["mrr@1"] == pytest.approx(1 / 3)
  # ties with the target: ex0 item 3; ex1 none; ex2 is a miss (its target is excluded)
  np.testing.assert_array_equal(res.per_example["ties"], [1, 0, 0])
  assert res.to_dict()["ties"] == {"examples_with_tied_target": 1, "max_tied_items": 1}
  # top-3 with listed items removed: ex0 [0, 2, 3], ex1 [5, 4, 3], ex2 [5, 2, 3]
  np.testing.assert_array_equal(res.topk[:, :3], [[0, 2, 3], [5, 4, 3], [5, 2, 3]])
  assert res.beyond["coverage@3"] == pytest.approx(5 / 6)  # {0, 2, 3, 4, 5}
  assert res.beyond["coverage@1"] == pytest.approx(2 / 6)  # {0, 5}
  g = res.groups
  assert g["hist_len=0"]["n"] == 1 and g["hist_len=1-2"]["n"] == 2 and g["hist_len>10"]["n"] == 0
  assert g["hist_len=1-2"]["recall@3"] == pytest.approx(0.5)
  assert g["hist_len=0"]["mrr@5"] == pytest.approx(1.0)
  assert math.isnan(g["hist_len>10"]["recall@3"])


def test_evaluator_exclude_none_and_beyond_accuracy():
  pop = np.array([3, 1, 0, 0, 0, 4])
  vec = np.eye(6, dtype=np.float32)  # orthogonal items: every list is maximally diverse
  res = E.evaluate(
    score_fn=table_score_fn,
    arrays=ARRAYS,
    n_items=6,
    batch_size=4,
    ks=(5,),
    item_vectors=vec,
    item_popularity=pop,
  )
  np.testing.assert_array_equal(res.per_example["rank"], RANKS_NO_EXCL)
  np.testing.assert_allclose(res.per_example["recall@5"], [1, 1, 0])
  assert res.beyond["diversity@5"] == pytest.approx(1.0)
  # ex1 top-5 = [5, 4, 3, 2, 1]: counts 4,0,0,0,1 → ARP 1.0; shares (c+1)/14 → novelty
  share = (pop + 1) / 14
  nov = np.mean(-np.log2(share[[5, 4, 3, 2, 1]]))
  assert res.per_example["arp@5"][1] == pytest.approx(1.0)
  assert res.per_example["novelty@5"][1] == pytest.approx(nov, rel=1e-5)
  # target percentiles: counts sorted [0,0,0,1,3,4]; item 2 → (0+1.5)/6, 5 → 5.5/6, 0 → 4.5/6
  np.testing.assert_allclose(res.per_example["target_pop_pct"], [1.5 / 6, 5.5 / 6, 4.5 / 6])
  assert "coverage@5" in res.beyond and "pop_bias@5" in res.beyond


def test_evaluate_embeddings_matches_full_scores_and_chunks():
  rng = np.random.default_rng(0)
  n, d, n_ex = 41, 3, 11
  emb = rng.integers(-1, 2, (n, d)).astype(np.float32)  # integer vectors: exact, tied scores
  emb[20:25] = emb[0]
  users = rng.integers(-2, 3, (n_ex, d)).astype(np.float32)
  hist = rng.integers(0, n, (n_ex, 5)).astype(np.int32)
  arrays = {
    "user": np.arange(n_ex, dtype=np.int32),
    "target": rng.integers(0, n, n_ex).astype(np.int32),
    "hist": hist,
    "hist_mask": (rng.random((n_ex, 5)) < 0.6).astype(np.int8),
  }
  arrays["hist"][0, 0], arrays["hist_mask"][0, 0] = arrays["target"][0], 1
  arrays["exclude_items"], arrays["exclude_mask"] = arrays["hist"], arrays["hist_mask"]
  ks = (5, 10)
  full = E.evaluate(
    score_fn=lambda b: users[b["user"]] @ emb.T, arrays=arrays, n_items=n, batch_size=4, ks=ks
  )
  chunked = E.evaluate_embeddings(
    user_repr_fn=lambda b: users[b["user"]],
    item_emb_NxD=emb,
    arrays=arrays,
    batch_size=4,
    ks=ks,
    chunk=9,
  )
  for name, v in full.per_example.items():
    np.testing.assert_allclose(chunked.per_example[name], v, err_msg=name)
  np.testing.assert_array_equal(chunked.topk, full.topk)
  assert chunked.beyond == full.beyond


def test_jitted_score_fn_and_ranking_step_compile_once():
  n_items, b = 13, 3

  @jax.jit
  @chex.assert_max_traces(n=1)
  def score(user, hist):
    base = jnp.sin(user[:, None] * 1.7 + jnp.arange(n_items)[None, :])
    return base + 0.0 * hist.sum()

  rng = np.random.default_rng(1)
  m = 8  # 3 batches of 3, the last one padded
  arrays = {
    "user": np.arange(m, dtype=np.int32),
    "target": rng.integers(0, n_items, m),
    "hist": rng.integers(0, n_items, (m, 4)).astype(np.int32),
    "hist_mask": np.ones((m, 4), np.int8),
  }
  before = E.TRACE_COUNTS["full"]
  res = E.evaluate(
    score_fn=lambda bt: score(bt["user"], bt["hist"]),
    arrays=arrays,
    n_items=n_items,
    batch_size=b,
    ks=(2, 7),
  )
  assert E.TRACE_COUNTS["full"] - before <= 1
  assert res.n == m and res.per_example["rank"].shape == (m,)
  with pytest.raises(ValueError, match="expected"):
    E.evaluate(
      score_fn=lambda bt: np.zeros((b, n_items + 1)), arrays=arrays, n_items=n_items, batch_size=b
    )


def test_results_come_back_in_callers_order_whatever_the_batching():
  """Rows are batched by history length; per-example results, top-k and groups must still be
  in the caller's order (checked against one-row-at-a-time evaluation)."""
  n_items, m = 11, 9
  rng = np.random.default_rng(4)
  lens = np.array([5, 0, 3, 1, 4, 2, 0, 5, 1])
  hist = rng.integers(0, n_items, (m, 5)).astype(np.int32)
  hmask = (np.arange(5)[None, :] < lens[:, None]).astype(np.int8)
  arrays = {
    "user": np.arange(m, dtype=np.int32),
    "target": rng.integers(0, n_items, m),
    "hist": hist,
    "hist_mask": hmask,
  }
  score = lambda bt: np.cos(bt["user"][:, None] * 0.9 + np.arange(n_items)[None, :] * 1.3)
  whole = E.evaluate(
    score_fn=score,
    arrays=arrays,
    n_items=n_items,
    batch_size=4,
    ks=(3,),
    groups={"long": lens >= 3},
  )
  order = E.length_order(arrays)
  assert (np.diff(lens[order]) >= 0).all() and not (np.diff(lens) >= 0).all()
  for i in range(m):
    one = E.evaluate(
      score_fn=score,
      arrays={k: v[i : i + 1] for k, v in arrays.items()},
      n_items=n_items,
      batch_size=1,
      ks=(3,),
    )
    assert whole.per_example["rank"][i] == one.per_example["rank"][0]
    np.testing.assert_array_equal(whole.topk[i], one.topk[0])
  long = lens >= 3
  assert whole.groups["long"]["recall@3"] == pytest.approx(
    float(np.mean(whole.per_example["recall@3"][long]))
  )


def test_group_helpers():
  g = E.history_length_groups(
    np.array([[0] * 12, [1] + [0] * 11, [1] * 4 + [0] * 8, [1] * 7 + [0] * 5, [1] * 12])
  )
  assert [int(np.nonzero(v)[0][0]) for v in g.values()] == [0, 1, 2, 3, 4]
  ov = E.overlap_groups(user=np.array([0, 2]), has_source_U=np.array([True, False, False]))
  np.testing.assert_array_equal(ov["overlap"], [True, False])
  cold = E.target_popularity_groups(
    target=np.array([0, 1]), item_popularity=np.array([9, 2]), cold_max=5
  )
  np.testing.assert_array_equal(cold["cold_target(<=5)"], [False, True])
