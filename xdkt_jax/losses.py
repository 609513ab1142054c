"""The method's equations as pure functions (keyword-only, shape-bearing names).

Symbols follow ../shared/DESIGN.md: i indexes sequences (item texts, user histories), j
positions within them, y_ij the token (or item) to predict, x_ij its context, W the weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _ranked_first(logits, target):
  """1 where the target's logit is its row's maximum (ties count as first), without gradient:
  the training accuracy.  Not an argmax, which is an index-carrying reduction over the whole
  row: with it the CPU cross-entropy heads ran 2.5–3× slower (benchmarks/loss_heads.py)."""
  s = jax.lax.stop_gradient(logits)
  return jnp.take_along_axis(s, target[..., None].astype(jnp.int32), -1)[..., 0] >= jnp.max(s, -1)


def lm_loss(
  *, logits_BxLxV: jax.Array, targets_BxL: jax.Array, weights_BxL: jax.Array
) -> tuple[jax.Array, dict]:
  """L_p / L_t = −Σ_i Σ_j log p(y_ij | x_ij, W), averaged over predicted tokens.

  The same token-level NLL serves pre-training (L_p, W = W_p) and domain-adaptive fine-tuning
  on source + target text (L_t, W = W_t initialised from W_p).  `weights_BxL` is 1 exactly at
  predicted positions: masked positions for the masked LM, non-pad next-token positions for the
  causal LM (see `mlm_select` / `causal_lm_inputs`); padding never contributes.  Dividing by
  Σ w (not B·L) makes the value a per-token NLL, so exp(loss) is the perplexity.

  Returns (loss, {"nll_sum", "n_tokens", "accuracy"}) — the sums let an evaluator pool exact
  per-token NLL over many batches.
  """
  logits = logits_BxLxV.astype(jnp.float32)
  # logsumexp − target logit, not log_softmax then gather: no [B, L, V] log-probabilities.
  target_logit = jnp.take_along_axis(logits, targets_BxL[..., None].astype(jnp.int32), -1)
  nll_BxL = jax.nn.logsumexp(logits, axis=-1) - target_logit[..., 0]
  w = weights_BxL.astype(jnp.float32)
  n = jnp.sum(w)
  nll_sum = jnp.sum(nll_BxL * w)
  correct = jnp.sum(_ranked_first(logits, targets_BxL) * w)
  denom = jnp.maximum(n, 1.0)
  return nll_sum / denom, {"nll_sum": nll_sum, "n_tokens": n, "accuracy": correct / denom}


def mlm_select(
  rng: jax.Array,
  *,
  ids_BxL: jax.Array,
  mask_BxL: jax.Array,
  mask_token_id: int,
  vocab_size: int,
  special_ids_S: jax.Array,
  max_predictions: int,
  mask_prob: float = 0.15,
):
  """BERT masking with a fixed number of predictions per sequence (BERT's own data recipe):
  n_i = min(max_predictions, max(1, round(mask_prob · #real tokens of i))) positions chosen
  uniformly among real, non-special tokens; of those 80% → [MASK], 10% random, 10% unchanged.

  Returns (inputs_BxL, positions_BxP, targets_BxP, weights_BxP) with P = max_predictions.
  The LM head then runs on P gathered positions instead of all L: over a 30k vocabulary that
  is most of the step's FLOPs, and the loss is the same L_p / L_t over the predicted tokens.
  """
  B, L = ids_BxL.shape
  P = min(int(max_predictions), L)
  k_sel, k_split, k_rand = jax.random.split(rng, 3)
  real = (mask_BxL > 0) & ~jnp.isin(ids_BxL, special_ids_S)
  n_real = jnp.sum(real, axis=1)
  n_pred = jnp.where(n_real > 0, jnp.clip(jnp.round(n_real * mask_prob), 1, P), 0)
  score = jnp.where(real, jax.random.uniform(k_sel, (B, L)), -1.0)
  _, pos_BxP = jax.lax.top_k(score, P)
  chosen = (jnp.arange(P)[None, :] < n_pred[:, None]) & jnp.take_along_axis(real, pos_BxP, axis=1)
  targets = jnp.take_along_axis(ids_BxL, pos_BxP, axis=1)
  u = jax.random.uniform(k_split, (B, P))
  rand_tok = jax.random.randint(k_rand, (B, P), 0, vocab_size, dtype=ids_BxL.dtype)
  new_tok = jnp.where(
    chosen & (u < 0.8),
    jnp.asarray(mask_token_id, ids_BxL.dtype),
    jnp.where(chosen & (u >= 0.8) & (u < 0.9), rand_tok, targets),
  )
  # top_k indices are distinct within a row, so this scatter writes each position once.
  inputs = ids_BxL.at[jnp.arange(B)[:, None], pos_BxP].set(new_tok)
  return inputs, pos_BxP, targets, chosen.astype(jnp.float32)


def causal_lm_inputs(*, ids_BxL: jax.Array, mask_BxL: jax.Array):
  """Next-token shift with fixed shapes: target at position j is token j+1; the last position
  and positions whose next token is padding carry weight 0.
  Returns (inputs_BxL, targets_BxL, weights_BxL)."""
  targets = jnp.concatenate([ids_BxL[:, 1:], jnp.zeros_like(ids_BxL[:, :1])], axis=1)
  next_real = jnp.concatenate([mask_BxL[:, 1:], jnp.zeros_like(mask_BxL[:, :1])], axis=1)
  weights = ((mask_BxL > 0) & (next_real > 0)).astype(jnp.float32)
  return ids_BxL, targets, weights


# ---------------------------------------------------------------------------------------------
# L_k: knowledge extraction.


def knowledge_loss(
  *, logits_BxLxK: jax.Array, labels_BxL: jax.Array, weights_BxL: jax.Array
) -> tuple[jax.Array, dict]:
  """L_k = −Σ_i Σ_j log p(k_ij | x_ij, W_k), averaged over labelled tokens.

  k_ij is the knowledge label of token j of text i (attribute / category / brand tag, entity
  span tag) predicted by a head over the adapted encoder's token states.  `weights_BxL` is 1 at
  labelled tokens and 0 at padding or unlabelled tokens, whose label may be any value (e.g. −1:
  it is clipped before the gather, and weight 0 drops it).  Same token-level CE as `lm_loss`
  over K label classes instead of V tokens; returns (loss, {"nll_sum", "n_tokens", "accuracy"}).
  """
  labels = jnp.clip(labels_BxL.astype(jnp.int32), 0, logits_BxLxK.shape[-1] - 1)
  return lm_loss(logits_BxLxV=logits_BxLxK, targets_BxL=labels, weights_BxL=weights_BxL)


# ---------------------------------------------------------------------------------------------
# L_f: transfer / fusion objective (next-item prediction in the target domain).

TRANSFER_KINDS = ("full_softmax", "sampled_softmax", "bpr")


def transfer_loss(
  *,
  user_repr_BxD: jax.Array,
  item_emb_NxD: jax.Array,
  target_B: jax.Array,
  weights_B: jax.Array | None = None,
  kind: str = "full_softmax",
  rng: jax.Array | None = None,
  num_negatives: int = 100,
  logq_N: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
  """L_f = −Σ_i Σ_j log p(y_ij | x_ij, W_f): next-item prediction over the target catalogue.

  i indexes users (sequences), j positions, y_ij the next target item, x_ij the user's context
  (history, fused knowledge) summarised in `user_repr`; score s(u, n) = u · e_n.  Every sequence
  position can predict (the SASRec form): pass user_repr_BxLxD, target_BxL, weights_BxL and they
  are flattened.  Averaged over Σ weights (padding has weight 0).

  kind:
    full_softmax    p(y | x) = softmax over ALL N items (the exact L_f; the default, because
                    N ≤ 10^5 fits and sampled losses bias the ranking metrics we report).
    sampled_softmax softmax over {y} ∪ K negatives drawn (shared by the batch) from q: uniform,
                    or categorical(logq_N) when given; every logit is corrected by − log q(n)
                    (Bengio & Senécal / Jean et al.), negatives equal to the target are masked.
    bpr             −log σ(s_y − s_n) averaged over K uniform negatives per example (or drawn
                    from logq_N; BPR has no log-q correction).
  Returns (loss, {"nll_sum", "n", "accuracy"}); accuracy (target ranked first over the full
  catalogue) only for full_softmax, else omitted.
  """
  if kind not in TRANSFER_KINDS:
    raise ValueError(f"transfer_loss: kind must be one of {TRANSFER_KINDS}, got {kind!r}")
  d = user_repr_BxD.shape[-1]
  u = user_repr_BxD.reshape(-1, d).astype(jnp.float32)
  y = target_B.reshape(-1).astype(jnp.int32)
  w = (
    jnp.ones(y.shape, jnp.float32)
    if weights_B is None
    else weights_B.reshape(-1).astype(jnp.float32)
  )
  emb = item_emb_NxD.astype(jnp.float32)
  n_items = emb.shape[0]
  metrics = {}
  if kind == "full_softmax":
    # −log p(y) = logsumexp_n(s_n) − s_y, with s_y = u · e_y from the gathered item row: the
    # take_along_axis(log_softmax) form backpropagates through a dense [B, N] scatter.
    logits = u @ emb.T
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.sum(u * emb[y], -1)
    metrics["accuracy"] = jnp.sum(_ranked_first(logits, y) * w) / jnp.maximum(jnp.sum(w), 1.0)
  else:
    if rng is None:
      raise ValueError(f"transfer_loss(kind={kind!r}) needs rng for negative sampling")
    shape = (num_negatives,) if kind == "sampled_softmax" else (y.shape[0], num_negatives)
    if logq_N is None:
      neg = jax.random.randint(rng, shape, 0, n_items)
    else:
      neg = jax.random.categorical(rng, logq_N.astype(jnp.float32), shape=shape)
    pos = jnp.sum(u * emb[y], -1)
    if kind == "sampled_softmax":
      lq = (
        jnp.full((n_items,), -jnp.log(n_items), jnp.float32)
        if logq_N is None
        else jax.nn.log_softmax(logq_N.astype(jnp.float32))
      )
      neg_logits = u @ emb[neg].T - lq[neg][None, :]
      neg_logits = jnp.where(neg[None, :] == y[:, None], -jnp.inf, neg_logits)
      all_logits = jnp.concatenate([(pos - lq[y])[:, None], neg_logits], axis=1)
      nll = -jax.nn.log_softmax(all_logits, axis=-1)[:, 0]
    else:
      neg_s = jnp.einsum("bd,bkd->bk", u, emb[neg])
      nll = -jnp.mean(jax.nn.log_sigmoid(pos[:, None] - neg_s), axis=1)
  nll_sum = jnp.sum(nll * w)
  n = jnp.sum(w)
  return nll_sum / jnp.maximum(n, 1.0), {"nll_sum": nll_sum, "n": n, **metrics}


# ---------------------------------------------------------------------------------------------
# Alignment terms: bring the source and target knowledge spaces together.


def _sq_dists(x_NxD, y_MxD):
  # Clamped at 0: the expanded form can go slightly negative in float32.
  d = jnp.sum(x_NxD**2, -1)[:, None] + jnp.sum(y_MxD**2, -1)[None, :] - 2.0 * x_NxD @ y_MxD.T
  return jnp.maximum(d, 0.0)


def _kernel(x_NxD, y_MxD, kernel: str, bandwidths):
  if kernel == "linear":
    return x_NxD @ y_MxD.T
  if kernel == "rbf":
    d2 = _sq_dists(x_NxD, y_MxD)
    return sum(jnp.exp(-d2 / (2.0 * float(s) ** 2)) for s in bandwidths)
  raise ValueError(f"mmd: kernel must be 'linear' or 'rbf', got {kernel!r}")


def mmd(
  *,
  x_NxD: jax.Array,
  y_MxD: jax.Array,
  kernel: str = "rbf",
  bandwidths=(0.5, 1.0, 2.0, 4.0, 8.0),
  unbiased: bool = False,
) -> jax.Array:
  """Squared maximum mean discrepancy MMD²(P_x, P_y) = E k(x,x') + E k(y,y') − 2 E k(x,y).

  kernel "rbf" is a sum of Gaussians exp(−|a−b|² / 2σ²) over `bandwidths` (multi-kernel MMD,
  Long et al. 2015: no single σ fits every scale of a learned space); "linear" is a·b, for
  which the biased MMD² is exactly |mean x − mean y|².
  Biased (default, V-statistic: all pairs incl. i = i'): ≥ 0 and exactly 0 for identical
  samples, so it is a well-behaved loss.  `unbiased=True` (U-statistic: within-sample diagonal
  excluded; needs N, M ≥ 2) is an unbiased estimate of MMD² but can be negative.
  """
  x, y = x_NxD.astype(jnp.float32), y_MxD.astype(jnp.float32)
  kxx, kyy, kxy = (
    _kernel(x, x, kernel, bandwidths),
    _kernel(y, y, kernel, bandwidths),
    _kernel(x, y, kernel, bandwidths),
  )
  if not unbiased:
    return jnp.mean(kxx) + jnp.mean(kyy) - 2.0 * jnp.mean(kxy)
  n, m = x.shape[0], y.shape[0]
  off = lambda k, s: (jnp.sum(k) - jnp.trace(k)) / (s * (s - 1))
  return off(kxx, n) + off(kyy, m) - 2.0 * jnp.mean(kxy)


def _cov(x_NxD):
  xc = x_NxD - jnp.mean(x_NxD, axis=0, keepdims=True)
  return xc.T @ xc / (x_NxD.shape[0] - 1)


def coral(*, x_NxD: jax.Array, y_MxD: jax.Array) -> jax.Array:
  """Deep CORAL (Sun & Saenko 2016): |C_x − C_y|_F² / (4 d²), C the unbiased (N−1) feature
  covariance.  Matches second-order statistics only; pair it with a mean term if needed."""
  x, y = x_NxD.astype(jnp.float32), y_MxD.astype(jnp.float32)
  d = x.shape[-1]
  return jnp.sum((_cov(x) - _cov(y)) ** 2) / (4.0 * d * d)


def info_nce(
  *,
  a_BxD: jax.Array,
  b_BxD: jax.Array,
  temperature: float = 0.1,
  normalize: bool = True,
  weights_B: jax.Array | None = None,
) -> jax.Array:
  """Symmetric InfoNCE between two views of the same B overlapping users (a: source-domain
  representation, b: target-domain one); user i's pair (a_i, b_i) is the positive, the other
  users of the batch the negatives (so the diagonal of a bᵀ is the target).

    L = ½ [CE(a bᵀ/τ, diag) + CE(b aᵀ/τ, diag)]

  `normalize` uses cosine similarity (the usual choice, τ then sets the sharpness); both
  directions so neither space collapses onto the other.  `weights_B` masks padded rows: they
  are dropped as anchors AND as negatives.
  """
  a, b = a_BxD.astype(jnp.float32), b_BxD.astype(jnp.float32)
  if normalize:
    # rsqrt of a clamped square norm: finite value AND gradient at a zero row (a masked user
    # with no source history), where the gradient of |x| would be 0/0.
    a = a * jax.lax.rsqrt(jnp.maximum(jnp.sum(a * a, -1, keepdims=True), 1e-24))
    b = b * jax.lax.rsqrt(jnp.maximum(jnp.sum(b * b, -1, keepdims=True), 1e-24))
  w = jnp.ones(a.shape[0], jnp.float32) if weights_B is None else weights_B.astype(jnp.float32)
  logits = (a @ b.T) / temperature
  valid = w > 0
  logits = jnp.where(valid[None, :] & valid[:, None], logits, -1e9)
  diag = jnp.arange(a.shape[0])
  ce = lambda z: -jnp.take_along_axis(jax.nn.log_softmax(z, -1), diag[:, None], -1)[:, 0]
  per = 0.5 * (ce(logits) + ce(logits.T))
  return jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)


@jax.custom_vjp
def gradient_reversal(x, lam):
  """Gradient reversal layer (Ganin & Lempitsky 2015): identity forward, −lam · grad backward,
  so the features are trained to FOOL the domain classifier that sits after this layer.
  `lam` may be traced (e.g. a schedule over steps); it gets no gradient."""
  return x


def _grl_fwd(x, lam):
  return x, lam


def _grl_bwd(lam, g):
  return (jax.tree.map(lambda t: -lam * t, g), jnp.zeros_like(lam))


gradient_reversal.defvjp(_grl_fwd, _grl_bwd)


def domain_adversarial_loss(
  *,
  domain_N: jax.Array,
  features_NxD: jax.Array | None = None,
  logits_fn=None,
  logits_NxK: jax.Array | None = None,
  lam: float = 1.0,
  weights_N: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
  """Domain-adversarial alignment (DANN): CE of a domain classifier on the features.

  With `logits_fn` (features → logits_NxK, e.g. a bound flax module) the features pass through
  `gradient_reversal(·, lam)` first, so ONE jax.grad trains the classifier to tell domains
  apart and the feature extractor to make them indistinguishable.  With precomputed
  `logits_NxK` the caller owns the reversal (features are then unused).  Returns
  (loss, {"domain_accuracy"}); accuracy near chance means the domains are aligned.
  """
  if (logits_fn is None) == (logits_NxK is None):
    raise ValueError("domain_adversarial_loss: pass exactly one of logits_fn / logits_NxK")
  if logits_fn is not None:
    if features_NxD is None:
      raise ValueError("domain_adversarial_loss: logits_fn needs features_NxD")
    logits_NxK = logits_fn(gradient_reversal(features_NxD, jnp.asarray(lam, jnp.float32)))
  logits = logits_NxK.astype(jnp.float32)
  y = domain_N.astype(jnp.int32)
  w = jnp.ones(y.shape, jnp.float32) if weights_N is None else weights_N.astype(jnp.float32)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), y[:, None], -1)[:, 0]
  n = jnp.maximum(jnp.sum(w), 1.0)
  acc = jnp.sum((jnp.argmax(logits, -1) == y) * w) / n
  return jnp.sum(nll * w) / n, {"domain_accuracy": acc}
