"""Evaluator: full-ranking metrics over one evaluation set (`inputs.eval_arrays`).

Batches have one fixed shape (the last one is padded with copies of row 0 and its padded rows
dropped from the results), so a jitted scorer and the jitted ranking step compile once.
Examples are batched in order of input-history length (results come back in the caller's
order): a batch then holds histories of similar length, so a sequence scorer can run at the
width of its longest history (SASRecModel buckets widths) instead of padding every user to
max_len.  Scores must depend on the row only, never on the batch it came in.

Already-seen items: the arrays say what leaves the ranking (`exclude_items` / `exclude_mask`,
built by `data.inputs.eval_arrays` under the run's rule, conventions.py); without them every
item is ranked.  The rule is fixed before the target is known: an excluded target is a miss.

Results keep per-example arrays (for paired significance tests between methods), their means,
beyond-accuracy metrics, and per-group means (overlapping users, history length, cold targets).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import metrics as M

# Incremented at trace time only: lets tests prove the ranking step compiles once per shape.
TRACE_COUNTS = {"full": 0, "embeddings": 0}

_BEYOND_PREFIXES = ("diversity@", "novelty@", "arp@", "pop_pct@", "pop_bias@", "target_pop_pct")


@dataclasses.dataclass
class EvalResult:
  n: int
  per_example: dict[str, np.ndarray]  # name -> [n]; 'rank' (0-based, pessimistic), 'ties'
  # (other items scoring exactly the target's score)
  means: dict[str, float]  # accuracy metrics (recall/ndcg/mrr @k)
  beyond: dict[str, float]  # coverage, diversity, novelty, ARP, popularity bias
  groups: dict[str, dict[str, float]]  # group -> {'n', metric means}
  topk: np.ndarray  # [n, K] recommended item ids, best first

  def to_dict(self) -> dict:
    """JSON-ready summary (no per-example arrays)."""
    ties = self.per_example.get("ties", np.zeros(0))
    return {
      "n": self.n,
      "means": self.means,
      "beyond": self.beyond,
      "groups": self.groups,
      "ties": {
        "examples_with_tied_target": int(np.sum(ties > 0)),
        "max_tied_items": int(ties.max(initial=0)),
      },
    }


# ---------------------------------------------------------------------------------------------
# Groups.


def history_length_groups(hist_mask: np.ndarray) -> dict[str, np.ndarray]:
  """Buckets of input-history length 0, 1-2, 3-5, 6-10, >10 (length as seen by the model,
  i.e. after truncation to max_len)."""
  n = np.asarray(hist_mask).astype(bool).sum(axis=1)
  return {
    "hist_len=0": n == 0,
    "hist_len=1-2": (n >= 1) & (n <= 2),
    "hist_len=3-5": (n >= 3) & (n <= 5),
    "hist_len=6-10": (n >= 6) & (n <= 10),
    "hist_len>10": n > 10,
  }


def overlap_groups(*, user: np.ndarray, has_source_U: np.ndarray) -> dict[str, np.ndarray]:
  """Users with / without source-domain history (transfer can only help the former)."""
  ov = np.asarray(has_source_U, bool)[np.asarray(user)]
  return {"overlap": ov, "non_overlap": ~ov}


def target_popularity_groups(
  *, target: np.ndarray, item_popularity: np.ndarray, cold_max: int = 5
) -> dict[str, np.ndarray]:
  """Cold targets (training count <= cold_max) vs the rest: where knowledge should matter."""
  cold = np.asarray(item_popularity)[np.asarray(target)] <= cold_max
  return {f"cold_target(<={cold_max})": cold, "warm_target": ~cold}


# ---------------------------------------------------------------------------------------------
# Jitted per-batch steps.


def _batch_metrics(top_BxK, rank_B, ties_B, target_B, item_vectors, item_popularity, ks):
  out = {"rank": rank_B, "ties": ties_B, **M.ranking_metrics(rank_B=rank_B, ks=ks)}
  for k in ks:
    if item_vectors is not None:
      out[f"diversity@{k}"] = M.intra_list_diversity(
        topk_BxK=top_BxK, item_vectors_NxD=item_vectors, k=k
      )
    if item_popularity is not None:
      out[f"novelty@{k}"] = M.novelty_at_k(topk_BxK=top_BxK, item_popularity_N=item_popularity, k=k)
      out[f"arp@{k}"] = M.average_popularity_at_k(
        topk_BxK=top_BxK, item_popularity_N=item_popularity, k=k
      )
      pb = M.popularity_bias_at_k(
        topk_BxK=top_BxK, target_B=target_B, item_popularity_N=item_popularity, k=k
      )
      out[f"pop_pct@{k}"], out[f"pop_bias@{k}"] = pb["rec_pct"], pb["bias"]
      out["target_pop_pct"] = pb["target_pct"]
  return out


@functools.partial(jax.jit, static_argnames=("k", "ks"))
def _full_step(
  scores_BxN, target_B, excl_BxL, excl_mask_BxL, item_vectors, item_popularity, *, k, ks
):
  TRACE_COUNTS["full"] += 1
  ex = M.exclusion_mask(items_BxL=excl_BxL, mask_BxL=excl_mask_BxL, n_items=scores_BxN.shape[1])
  _, top, rank, ties = M.topk_full(
    scores_BxN=scores_BxN, target_B=target_B, k=k, exclude_mask_BxN=ex
  )
  return top, _batch_metrics(top, rank, ties, target_B, item_vectors, item_popularity, ks)


@functools.partial(jax.jit, static_argnames=("k", "ks", "chunk"))
def _embedding_step(
  user_repr_BxD,
  item_emb_NxD,
  target_B,
  excl_BxL,
  excl_mask_BxL,
  item_vectors,
  item_popularity,
  *,
  k,
  ks,
  chunk,
):
  TRACE_COUNTS["embeddings"] += 1
  _, top, rank, ties = M.topk_chunked(
    target_B=target_B,
    k=k,
    chunk=chunk,
    user_repr_BxD=user_repr_BxD,
    item_emb_NxD=item_emb_NxD,
    exclude_items_BxL=excl_BxL,
    exclude_mask_BxL=excl_mask_BxL,
  )
  return top, _batch_metrics(top, rank, ties, target_B, item_vectors, item_popularity, ks)


# ---------------------------------------------------------------------------------------------


def length_order(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
  """Row order by input-history length (stable); identity when there is no history."""
  n = len(arrays["target"])
  if "hist_mask" not in arrays:
    return np.arange(n)
  return np.argsort(np.asarray(arrays["hist_mask"]).astype(bool).sum(1), kind="stable")


def _padded_batches(arrays: Mapping[str, np.ndarray], batch_size: int, order: np.ndarray):
  """Fixed-shape batches (+ 'example_mask') over rows `order`; yields (batch, n_valid)."""
  n = len(arrays["target"])
  for lo in range(0, n, batch_size):
    idx = order[lo : min(lo + batch_size, n)]
    n_valid = len(idx)
    idx = np.concatenate([idx, np.zeros(batch_size - n_valid, idx.dtype)])
    batch = {k: np.asarray(v)[idx] for k, v in arrays.items()}
    batch["example_mask"] = np.arange(batch_size) < n_valid
    yield batch, n_valid


def _check_args(arrays, ks, n_items):
  if ("exclude_items" in arrays) != ("exclude_mask" in arrays):
    raise ValueError("evaluate: arrays need both 'exclude_items' and 'exclude_mask' or neither")
  if not ks:
    raise ValueError("evaluate: ks is empty")
  return min(max(ks), n_items), tuple(int(k) for k in ks)


def _excluded(batch):
  """The batch's exclusion lists; one empty column when the arrays exclude nothing."""
  if "exclude_items" in batch:
    return batch["exclude_items"], batch["exclude_mask"]
  b = len(batch["target"])
  return np.zeros((b, 1), np.int32), np.zeros((b, 1), np.int8)


def selection_metric(metric: str, where: str) -> int:
  """Checks a valid-split selection metric 'recall|ndcg|mrr@K'; returns K."""
  name, _, k = str(metric).partition("@")
  if name not in ("recall", "ndcg", "mrr") or not k.isdigit() or int(k) < 1:
    raise ValueError(f"{where}: select_metric must be recall|ndcg|mrr@K, got {metric!r}")
  return int(k)


def valid_score(score_fn, valid: Mapping[str, np.ndarray], *, n_items: int, metric: str) -> float:
  """Mean `metric` over the valid examples, with the evaluator of the reported numbers (full
  ranking, the run's exclusion rule as built into `valid`, pessimistic ties): what early
  stopping and neighbourhood fusion select on."""
  k = selection_metric(metric, "valid_score")
  return float(
    evaluate(
      score_fn=score_fn,
      arrays=valid,
      n_items=n_items,
      batch_size=min(256, len(valid["target"])),
      ks=[k],
    ).means[metric]
  )


def _device_or_none(x):
  return None if x is None else jnp.asarray(x)


def evaluate(
  *,
  score_fn: Callable[[dict], object],
  arrays: Mapping[str, np.ndarray],
  n_items: int,
  batch_size: int,
  item_vectors=None,
  item_popularity=None,
  ks: Sequence[int] = M.DEFAULT_KS,
  groups: Mapping[str, np.ndarray] | None = None,
) -> EvalResult:
  """Full-ranking evaluation with `score_fn(batch) -> scores_BxN` (numpy or jax).

  `batch` holds every key of `arrays` (rows of this batch) plus 'example_mask'; it always has
  `batch_size` rows.  `item_vectors` [N, D] (e.g. knowledge vectors) enables intra-list
  diversity; `item_popularity` [N] (training counts) enables novelty and popularity bias.
  """
  k, ks = _check_args(arrays, ks, n_items)
  iv, ip = _device_or_none(item_vectors), _device_or_none(item_popularity)
  outs = []
  order = length_order(arrays)
  for batch, n_valid in _padded_batches(arrays, batch_size, order):
    scores = score_fn(batch)
    if tuple(np.shape(scores)) != (batch_size, n_items):
      raise ValueError(
        f"evaluate: score_fn returned shape {np.shape(scores)}, expected "
        f"{(batch_size, n_items)} (batch_size, n_items)"
      )
    ex, exm = _excluded(batch)
    outs.append((_full_step(scores, batch["target"], ex, exm, iv, ip, k=k, ks=ks), n_valid))
  return _finish(outs, arrays, n_items, ks, groups, order)


def evaluate_embeddings(
  *,
  user_repr_fn: Callable[[dict], object],
  item_emb_NxD,
  arrays: Mapping[str, np.ndarray],
  batch_size: int,
  item_vectors=None,
  item_popularity=None,
  ks: Sequence[int] = M.DEFAULT_KS,
  groups: Mapping[str, np.ndarray] | None = None,
  chunk: int = 65536,
) -> EvalResult:
  """Evaluation for dot-product models (score = user_repr · item_emb): ranks with
  `metrics.topk_chunked`, so a 10^6-item catalogue never creates a B×N matrix (peak is
  B × chunk).  `user_repr_fn(batch) -> user_repr_BxD`."""
  emb = jnp.asarray(item_emb_NxD)
  n_items = emb.shape[0]
  k, ks = _check_args(arrays, ks, n_items)
  iv, ip = _device_or_none(item_vectors), _device_or_none(item_popularity)
  chunk = int(min(chunk, n_items))
  outs = []
  order = length_order(arrays)
  for batch, n_valid in _padded_batches(arrays, batch_size, order):
    ex, exm = _excluded(batch)
    outs.append(
      (
        _embedding_step(
          user_repr_fn(batch), emb, batch["target"], ex, exm, iv, ip, k=k, ks=ks, chunk=chunk
        ),
        n_valid,
      )
    )
  return _finish(outs, arrays, n_items, ks, groups, order)


def _finish(outs, arrays, n_items, ks, groups, order) -> EvalResult:
  """Fetches all batches at once (device work overlapped host batching), trims padding,
  puts rows back in the caller's order, reduces."""
  outs = [(jax.device_get(o), nv) for o, nv in outs]
  n = len(arrays["target"])
  if outs:
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    topk = np.concatenate([o[0][:nv] for o, nv in outs])[inverse]
    per = {
      name: np.concatenate([o[1][name][:nv] for o, nv in outs])[inverse] for name in outs[0][0][1]
    }
  else:
    topk = np.zeros((0, 0), np.int32)
    per = {}
  mean = lambda v: float(np.mean(v)) if len(v) else float("nan")
  means = {
    m: mean(v)
    for m, v in per.items()
    if m not in ("rank", "ties") and not m.startswith(_BEYOND_PREFIXES)
  }
  beyond = {m: mean(v) for m, v in per.items() if m.startswith(_BEYOND_PREFIXES)}
  for k in ks:
    beyond[f"coverage@{k}"] = (
      float(M.coverage_at_k(topk_BxK=topk, n_items=n_items, k=k)) if n else float("nan")
    )
  by_group = {}
  for g, mask in (groups or {}).items():
    mask = np.asarray(mask, bool)
    if mask.shape != (n,):
      raise ValueError(f"evaluate: group {g!r} mask has shape {mask.shape}, expected ({n},)")
    by_group[g] = {
      "n": int(mask.sum()),
      **{m: mean(v[mask]) for m, v in per.items() if m not in ("rank", "ties")},
    }
  return EvalResult(n=n, per_example=per, means=means, beyond=beyond, groups=by_group, topk=topk)
