"""The method's equations as pure functions (keyword-only, shape-bearing names).

Symbols follow ../shared/DESIGN.md: i indexes sequences (item texts, user histories), j
positions within them, y_ij the token (or item) to predict, x_ij its context, W the weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def lm_loss(*, logits_BxLxV: jax.Array, targets_BxL: jax.Array,
            weights_BxL: jax.Array) -> tuple[jax.Array, dict]:
  """L_p / L_t = −Σ_i Σ_j log p(y_ij | x_ij, W), averaged over predicted tokens.

  The same token-level NLL serves pre-training (L_p, W = W_p) and domain-adaptive fine-tuning
  on source + target text (L_t, W = W_t initialised from W_p).  `weights_BxL` is 1 exactly at
  predicted positions: masked positions for the masked LM, non-pad next-token positions for the
  causal LM (see `mlm_inputs` / `causal_lm_inputs`); padding never contributes.  Dividing by
  Σ w (not B·L) makes the value a per-token NLL, so exp(loss) is the perplexity.

  Returns (loss, {"nll_sum", "n_tokens", "accuracy"}) — the sums let an evaluator pool exact
  per-token NLL over many batches.
  """
  logits = logits_BxLxV.astype(jnp.float32)
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll_BxL = -jnp.take_along_axis(logp, targets_BxL[..., None].astype(jnp.int32), axis=-1)[..., 0]
  w = weights_BxL.astype(jnp.float32)
  n = jnp.sum(w)
  nll_sum = jnp.sum(nll_BxL * w)
  correct = jnp.sum((jnp.argmax(logits, -1) == targets_BxL) * w)
  denom = jnp.maximum(n, 1.0)
  return nll_sum / denom, {"nll_sum": nll_sum, "n_tokens": n, "accuracy": correct / denom}


def mlm_inputs(rng: jax.Array, *, ids_BxL: jax.Array, mask_BxL: jax.Array, mask_token_id: int,
               vocab_size: int, special_ids_S: jax.Array, mask_prob: float = 0.15):
  """BERT masking: choose mask_prob of the real, non-special tokens; of those 80% → [MASK],
  10% → a random token, 10% unchanged.  Returns (inputs_BxL, targets_BxL, weights_BxL).

  Choice is per token (Bernoulli), as in BERT's original recipe; a sequence may get none.
  """
  k_sel, k_split, k_rand = jax.random.split(rng, 3)
  real = (mask_BxL > 0) & ~jnp.isin(ids_BxL, special_ids_S)
  chosen = real & (jax.random.uniform(k_sel, ids_BxL.shape) < mask_prob)
  u = jax.random.uniform(k_split, ids_BxL.shape)
  to_mask = chosen & (u < 0.8)
  to_rand = chosen & (u >= 0.8) & (u < 0.9)
  rand_tok = jax.random.randint(k_rand, ids_BxL.shape, 0, vocab_size, dtype=ids_BxL.dtype)
  inputs = jnp.where(to_mask, jnp.asarray(mask_token_id, ids_BxL.dtype), ids_BxL)
  inputs = jnp.where(to_rand, rand_tok, inputs)
  return inputs, ids_BxL, chosen.astype(jnp.float32)


def mlm_select(rng: jax.Array, *, ids_BxL: jax.Array, mask_BxL: jax.Array, mask_token_id: int,
               vocab_size: int, special_ids_S: jax.Array, max_predictions: int,
               mask_prob: float = 0.15):
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
  chosen = ((jnp.arange(P)[None, :] < n_pred[:, None])
            & jnp.take_along_axis(real, pos_BxP, axis=1))
  targets = jnp.take_along_axis(ids_BxL, pos_BxP, axis=1)
  u = jax.random.uniform(k_split, (B, P))
  rand_tok = jax.random.randint(k_rand, (B, P), 0, vocab_size, dtype=ids_BxL.dtype)
  new_tok = jnp.where(chosen & (u < 0.8), jnp.asarray(mask_token_id, ids_BxL.dtype),
                      jnp.where(chosen & (u >= 0.8) & (u < 0.9), rand_tok, targets))
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
