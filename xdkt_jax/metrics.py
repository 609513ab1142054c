"""Ranking and beyond-accuracy metrics as pure functions (keyword-only, shape-bearing names).

Ranking is FULL ranking over the whole catalogue, never sampled negatives (../shared/DESIGN.md,
Evaluation).  Ranks are 0-based and tie-PESSIMISTIC: the target ranks below every other item
with an equal score.  A model that outputs constant scores therefore gets rank N-1 rather than
rank 0 — optimistic tie-breaking is a known way to inflate results for collapsed models.

Scores that are NaN are treated as -inf (a NaN target can never look good).

Which already-seen items are excluded is decided BEFORE the target is known: the exclusion
mask is a function of the user's input lists alone, never of the label (a rule that spared
the target would turn repeat consumptions into hits).  A target that the rule excludes cannot
be recommended, so its example is a miss: its rank is N (past every cut-off).  Ties with the
target are counted per example (`target_ties`), so a report can say whether the tie rule
matters for its numbers.

Two paths produce (top-k items, target rank):
  * `topk_full`: a full [B, N] score matrix per user batch (generic models);
  * `topk_chunked`: a scan over item chunks with a running `lax.top_k` merge, so B×N never
    exists at once — the path for dot-product models over large (10^6) catalogues.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

DEFAULT_KS = (5, 10, 20, 50)


def _clean(scores: jax.Array) -> jax.Array:
  s = jnp.asarray(scores).astype(jnp.float32)
  return jnp.where(jnp.isnan(s), -jnp.inf, s)


# ---------------------------------------------------------------------------------------------
# Ranks.


def exclusion_mask(*, items_BxL: jax.Array, mask_BxL: jax.Array, n_items: int) -> jax.Array:
  """[B, N] bool of the items to exclude, from padded id lists (`exclude_items` /
  `exclude_mask` of `data.inputs.eval_arrays`).  It takes no target: the mask of a user is the
  same whatever item they go on to consume."""
  items = jnp.asarray(items_BxL).astype(jnp.int32)
  keep = (jnp.asarray(mask_BxL) > 0) & (items >= 0) & (items < n_items)
  cols = jnp.where(keep, items, n_items)  # out of range -> dropped by the scatter
  rows = jnp.arange(items.shape[0])[:, None]
  return jnp.zeros((items.shape[0], n_items), bool).at[rows, cols].set(True, mode="drop")


def target_ranks(
  *, scores_BxN: jax.Array, target_B: jax.Array, exclude_mask_BxN: jax.Array | None = None
) -> jax.Array:
  """0-based pessimistic rank of each target in the full ranking: #(items scoring > target) +
  #(OTHER items scoring == target), counting only items that are not excluded.  A target
  the exclusion mask removes is a miss: rank N."""
  return _ranks_and_ties(scores_BxN, target_B, exclude_mask_BxN)[0]


def target_ties(
  *, scores_BxN: jax.Array, target_B: jax.Array, exclude_mask_BxN: jax.Array | None = None
) -> jax.Array:
  """Per example, how many OTHER non-excluded items score exactly the target's score (the
  items a tie rule decides about; `target_ranks` puts all of them above the target)."""
  return _ranks_and_ties(scores_BxN, target_B, exclude_mask_BxN)[1]


def _ranks_and_ties(scores_BxN, target_B, exclude_mask_BxN):
  s = _clean(scores_BxN)
  n = s.shape[1]
  target_B = jnp.asarray(target_B).astype(jnp.int32)
  t_B = jnp.take_along_axis(s, target_B[:, None], axis=1)
  others = jnp.arange(n)[None, :] != target_B[:, None]
  t_excluded = jnp.zeros(target_B.shape, bool)
  if exclude_mask_BxN is not None:
    ex = jnp.asarray(exclude_mask_BxN, bool)
    others = others & ~ex
    t_excluded = jnp.take_along_axis(ex, target_B[:, None], axis=1)[:, 0]
  # `>` plus `==` among the other items is `>=` among them.
  rank = jnp.sum(others & (s >= t_B), axis=1).astype(jnp.int32)
  ties = jnp.sum(others & (s == t_B), axis=1).astype(jnp.int32)
  return jnp.where(t_excluded, n, rank), jnp.where(t_excluded, 0, ties)


def recall_at_k(*, rank_B: jax.Array, k: int) -> jax.Array:
  """Per-example Recall@k; with one held-out target this is the hit rate HR@k."""
  return (jnp.asarray(rank_B) < k).astype(jnp.float32)


def ndcg_at_k(*, rank_B: jax.Array, k: int) -> jax.Array:
  """Per-example NDCG@k for one relevant item: 1/log2(rank+2) inside the top k (the ideal DCG
  is 1), else 0."""
  r = jnp.asarray(rank_B).astype(jnp.float32)
  return jnp.where(r < k, 1.0 / jnp.log2(r + 2.0), 0.0)


def mrr_at_k(*, rank_B: jax.Array, k: int) -> jax.Array:
  """Per-example reciprocal rank, truncated at k."""
  r = jnp.asarray(rank_B).astype(jnp.float32)
  return jnp.where(r < k, 1.0 / (r + 1.0), 0.0)


def ranking_metrics(*, rank_B: jax.Array, ks: Sequence[int] = DEFAULT_KS) -> dict:
  """{'recall@k', 'ndcg@k', 'mrr@k'} per-example arrays for every k (kept per example so
  methods can be compared with a paired test)."""
  out = {}
  for k in ks:
    out[f"recall@{k}"] = recall_at_k(rank_B=rank_B, k=k)
    out[f"ndcg@{k}"] = ndcg_at_k(rank_B=rank_B, k=k)
    out[f"mrr@{k}"] = mrr_at_k(rank_B=rank_B, k=k)
  return out


# ---------------------------------------------------------------------------------------------
# Top-k: full and chunked.


def topk_full(
  *, scores_BxN: jax.Array, target_B: jax.Array, k: int, exclude_mask_BxN: jax.Array | None = None
):
  """Generic path: (top_scores_BxK, top_items_BxK, rank_B, ties_B) from a full score matrix.

  Excluded items get -inf so they never enter the list while others remain; equal scores are
  listed lower item id first (`lax.top_k` is stable), which `topk_chunked` reproduces.
  """
  s = _clean(scores_BxN)
  target_B = jnp.asarray(target_B).astype(jnp.int32)
  if exclude_mask_BxN is not None:
    s = jnp.where(jnp.asarray(exclude_mask_BxN, bool), -jnp.inf, s)
  vals, idx = jax.lax.top_k(s, k)
  rank, ties = _ranks_and_ties(s, target_B, exclude_mask_BxN)
  return vals, idx.astype(jnp.int32), rank, ties


def topk_chunked(
  *,
  target_B: jax.Array,
  k: int,
  chunk: int,
  user_repr_BxD: jax.Array | None = None,
  item_emb_NxD: jax.Array | None = None,
  chunk_scores_fn: Callable[[jax.Array], jax.Array] | None = None,
  n_items: int | None = None,
  exclude_items_BxL: jax.Array | None = None,
  exclude_mask_BxL: jax.Array | None = None,
):
  """(top_scores_BxK, top_items_BxK, rank_B, ties_B) without ever materialising B×N.

  One function on purpose (~100 lines): the chunk view, the counting and the two scans are
  closures over the same traced arrays (scores, exclusions, the target's score); split apart
  they would pass eight arrays each way and hide the one invariant that matters, that the
  ranks are counted against the very scores that built the top-k list.

  Scores come either from a dot product `user_repr_BxD · item_emb_NxD` (the evaluator's path for
  dot-product models) or from `chunk_scores_fn(item_ids_C) -> scores_BxC` with `n_items` given
  (ids past the catalogue end are clipped before the call and masked after).  A `lax.scan` over
  item chunks keeps a running top-k (concatenate running list + chunk's top-k, `lax.top_k`
  again; the running list comes first so equal scores keep the lower id, as in `topk_full`) and
  counts, in the same pass, the items that outrank or tie the target.

  The count needs the target's score before its chunk is seen, so it is computed up front; if
  it differs (ulp-level, different reduction order) from the score met inside the chunk, a
  second counting pass with the in-chunk score runs, so ranks are exactly those of the scores
  that produced the top-k list.  Items to exclude come as padded id lists
  (`exclude_items_BxL` + `exclude_mask_BxL`), scattered per chunk; an excluded target is a miss
  (rank N), as in `target_ranks`.
  """
  target_B = jnp.asarray(target_B).astype(jnp.int32)
  if chunk_scores_fn is None:
    if user_repr_BxD is None or item_emb_NxD is None:
      raise ValueError("topk_chunked: give user_repr_BxD + item_emb_NxD or chunk_scores_fn")
    n_items = item_emb_NxD.shape[0]
  elif n_items is None:
    raise ValueError("topk_chunked: chunk_scores_fn needs n_items")
  if k > n_items:
    raise ValueError(f"topk_chunked: k={k} > n_items={n_items}")
  chunk = max(chunk, k)  # the running list has k slots; a chunk must be able to fill them
  n_chunks = -(-n_items // chunk)
  if chunk_scores_fn is None:
    u = jnp.asarray(user_repr_BxD).astype(jnp.float32)
    e = jnp.asarray(item_emb_NxD).astype(jnp.float32)
    e_pad = jnp.pad(e, ((0, n_chunks * chunk - n_items), (0, 0)))
    e_chunks = e_pad.reshape(n_chunks, chunk, e.shape[1])
    score_chunk = lambda c, ids: u @ e_chunks[c].T
    t_guess = jnp.einsum("bd,bd->b", u, e[target_B])
  else:
    score_chunk = lambda c, ids: chunk_scores_fn(jnp.minimum(ids, n_items - 1))
    t_guess = jnp.diagonal(_clean(chunk_scores_fn(target_B)))
  t_guess = _clean(t_guess)
  b = target_B.shape[0]
  rows = jnp.arange(b)[:, None]
  t_excluded = jnp.zeros(b, bool)
  if exclude_items_BxL is not None:
    ex_items = jnp.asarray(exclude_items_BxL).astype(jnp.int32)
    ex_keep = jnp.asarray(exclude_mask_BxL) > 0
    t_excluded = jnp.any(ex_keep & (ex_items == target_B[:, None]), axis=1)

  def chunk_view(c):
    start = c * chunk
    ids_C = start + jnp.arange(chunk, dtype=jnp.int32)
    s = _clean(score_chunk(c, ids_C))
    ok = jnp.broadcast_to(ids_C[None, :] < n_items, s.shape)
    if exclude_items_BxL is not None:
      local = ex_items - start
      keep = ex_keep & (local >= 0) & (local < chunk)
      ex = jnp.zeros(s.shape, bool).at[rows, jnp.where(keep, local, chunk)].set(True, mode="drop")
      ok = ok & ~ex
    is_t = ids_C[None, :] == target_B[:, None]
    return ids_C, s, ok, is_t

  def count(s, ok, is_t, t_B):
    other = ok & ~is_t
    return (
      jnp.sum(other & (s >= t_B[:, None]), axis=1).astype(jnp.int32),
      jnp.sum(other & (s == t_B[:, None]), axis=1).astype(jnp.int32),
    )

  def first_pass(c):
    ids_C, s, ok, is_t = chunk_view(c)
    vals, loc = jax.lax.top_k(jnp.where(ok, s, -jnp.inf), k)
    t_in = jnp.sum(jnp.where(is_t, s, 0.0), axis=1)
    return vals, ids_C[loc], count(s, ok, is_t, t_guess), jnp.any(is_t, axis=1), t_in

  vals0, idx0, cnt0, hit0, tin0 = first_pass(0)
  t_in0 = jnp.where(hit0, tin0, t_guess)

  def step(carry, c):
    vals, idx, cnt, t_in = carry
    v_c, i_c, cnt_c, hit, tin_c = first_pass(c)
    v, pos = jax.lax.top_k(jnp.concatenate([vals, v_c], 1), k)
    i = jnp.take_along_axis(jnp.concatenate([idx, i_c], 1), pos, axis=1)
    cnt = (cnt[0] + cnt_c[0], cnt[1] + cnt_c[1])
    return (v, i, cnt, jnp.where(hit, tin_c, t_in)), None

  (vals, idx, cnt, t_in), _ = jax.lax.scan(
    step, (vals0, idx0, cnt0, t_in0), jnp.arange(1, n_chunks)
  )

  def recount():
    def body(acc, c):
      _, s, ok, is_t = chunk_view(c)
      ge, eq = count(s, ok, is_t, t_in)
      return (acc[0] + ge, acc[1] + eq), None

    zero = jnp.zeros(b, jnp.int32)
    return jax.lax.scan(body, (zero, zero), jnp.arange(n_chunks))[0]

  rank, ties = jax.lax.cond(jnp.all(t_in == t_guess), lambda: cnt, recount)
  rank = jnp.where(t_excluded, n_items, rank)
  ties = jnp.where(t_excluded, 0, ties)
  return vals, idx.astype(jnp.int32), rank, ties


# ---------------------------------------------------------------------------------------------
# Beyond accuracy (from the top-K lists).


def coverage_at_k(
  *, topk_BxK: jax.Array, n_items: int, k: int, valid_B: jax.Array | None = None
) -> jax.Array:
  """Catalogue coverage@k: distinct items recommended in anyone's top k, divided by N.
  A global (not per-example) number, so compute it over all evaluated users at once."""
  top = jnp.asarray(topk_BxK)[:, :k].astype(jnp.int32)
  if valid_B is not None:
    top = jnp.where(jnp.asarray(valid_B, bool)[:, None], top, n_items)
  top = jnp.where((top >= 0) & (top < n_items), top, n_items)
  seen = jnp.zeros(n_items, bool).at[top.reshape(-1)].set(True, mode="drop")
  return jnp.sum(seen) / n_items


def intra_list_diversity(*, topk_BxK: jax.Array, item_vectors_NxD: jax.Array, k: int) -> jax.Array:
  """Per-example ILD@k: mean over the k(k-1)/2 pairs of the cosine distance 1 - cos(v_i, v_j)
  in a given item space (e.g. knowledge vectors, so diversity means diverse *knowledge*, not
  diverse ids).  A zero vector has cosine 0 with everything (distance 1)."""
  v = jnp.asarray(item_vectors_NxD).astype(jnp.float32)[jnp.asarray(topk_BxK)[:, :k]]
  norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
  v = v / jnp.where(norm > 0, norm, 1.0)
  cos_BxKxK = jnp.einsum("bid,bjd->bij", v, v)
  kk = v.shape[1]
  off = ~jnp.eye(kk, dtype=bool)
  pairs = max(kk * (kk - 1), 1)
  return jnp.sum(jnp.where(off, 1.0 - cos_BxKxK, 0.0), axis=(1, 2)) / pairs


def popularity_share(*, item_popularity_N: jax.Array) -> jax.Array:
  """Laplace-smoothed popularity share (c_i + 1) / (Σc + N), so an item never seen in training
  has a finite (and the highest) self-information instead of +inf."""
  c = jnp.asarray(item_popularity_N).astype(jnp.float32)
  return (c + 1.0) / (jnp.sum(c) + c.shape[0])


def novelty_at_k(*, topk_BxK: jax.Array, item_popularity_N: jax.Array, k: int) -> jax.Array:
  """Per-example novelty@k: mean self-information −log2 p_i of the recommended items, p_i the
  smoothed training popularity share (`popularity_share`)."""
  p = popularity_share(item_popularity_N=item_popularity_N)
  return jnp.mean(-jnp.log2(p[jnp.asarray(topk_BxK)[:, :k]]), axis=1)


def average_popularity_at_k(
  *, topk_BxK: jax.Array, item_popularity_N: jax.Array, k: int
) -> jax.Array:
  """Per-example ARP@k (Abdollahpouri et al.): mean training count of the recommended items."""
  c = jnp.asarray(item_popularity_N).astype(jnp.float32)
  return jnp.mean(c[jnp.asarray(topk_BxK)[:, :k]], axis=1)


def popularity_percentile(*, item_popularity_N: jax.Array) -> jax.Array:
  """Per-item mid-rank percentile of its training count in the catalogue:
  (#items with a lower count + ½·#items with an equal count) / N, in [0, 1] — a scale-free
  popularity that compares across domains (all-equal counts give 0.5)."""
  c = jnp.asarray(item_popularity_N).astype(jnp.float32)
  srt = jnp.sort(c)
  lo = jnp.searchsorted(srt, c, side="left")
  hi = jnp.searchsorted(srt, c, side="right")
  return (lo + 0.5 * (hi - lo)) / c.shape[0]


def popularity_bias_at_k(
  *, topk_BxK: jax.Array, target_B: jax.Array, item_popularity_N: jax.Array, k: int
) -> dict:
  """Per-example popularity percentile of the recommended items (mean over the top k) and of
  the target, and their difference: > 0 means the model recommends more popular items than
  users actually go on to consume."""
  pct = popularity_percentile(item_popularity_N=item_popularity_N)
  rec = jnp.mean(pct[jnp.asarray(topk_BxK)[:, :k]], axis=1)
  tgt = pct[jnp.asarray(target_B)]
  return {"rec_pct": rec, "target_pct": tgt, "bias": rec - tgt}
