"""Each loss against a slow NumPy reference: value and gradient."""

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import losses


def np_lm_loss(logits, targets, weights):
  tot, n = 0.0, 0.0
  for b in range(logits.shape[0]):
    for j in range(logits.shape[1]):
      if weights[b, j]:
        z = logits[b, j].astype(np.float64)
        lse = np.log(np.sum(np.exp(z - z.max()))) + z.max()
        tot += weights[b, j] * (lse - z[targets[b, j]])
        n += weights[b, j]
  return tot / max(n, 1.0)


def np_lm_grad(logits, targets, weights):
  g = np.zeros_like(logits, dtype=np.float64)
  n = max(weights.sum(), 1.0)
  for b in range(logits.shape[0]):
    for j in range(logits.shape[1]):
      z = logits[b, j].astype(np.float64)
      p = np.exp(z - z.max())
      p /= p.sum()
      p[targets[b, j]] -= 1.0
      g[b, j] = weights[b, j] * p / n
  return g


def test_lm_loss_value_and_grad_vs_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 5, 7)).astype(np.float32)
  targets = rng.integers(0, 7, size=(3, 5))
  weights = (rng.random((3, 5)) < 0.6).astype(np.float32)
  f = lambda lg: losses.lm_loss(
    logits_BxLxV=lg, targets_BxL=jnp.asarray(targets), weights_BxL=jnp.asarray(weights)
  )[0]
  val, grad = jax.value_and_grad(f)(jnp.asarray(logits))
  np.testing.assert_allclose(val, np_lm_loss(logits, targets, weights), rtol=1e-5)
  np.testing.assert_allclose(grad, np_lm_grad(logits, targets, weights), atol=1e-6)
  _, aux = losses.lm_loss(
    logits_BxLxV=jnp.asarray(logits),
    targets_BxL=jnp.asarray(targets),
    weights_BxL=jnp.asarray(weights),
  )
  assert float(aux["n_tokens"]) == weights.sum()
  hit = (logits.argmax(-1) == targets) * weights  # no ties in continuous logits
  assert 0 < hit.sum() < weights.sum()
  np.testing.assert_allclose(float(aux["accuracy"]), hit.sum() / weights.sum(), rtol=1e-6)


def test_lm_loss_ignores_padding_logits():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 4, 5)).astype(np.float32)
  t = np.zeros((2, 4), np.int32)
  w = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], np.float32)
  a = losses.lm_loss(logits_BxLxV=logits, targets_BxL=t, weights_BxL=w)[0]
  logits[:, 2:] = 1e4  # garbage at padded positions
  logits[1, 1:] = -1e4
  b = losses.lm_loss(logits_BxLxV=logits, targets_BxL=t, weights_BxL=w)[0]
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_causal_lm_inputs_shift():
  ids = jnp.array([[5, 6, 7, 0], [8, 9, 0, 0]])
  mask = jnp.array([[1, 1, 1, 0], [1, 1, 0, 0]])
  inp, tgt, w = losses.causal_lm_inputs(ids_BxL=ids, mask_BxL=mask)
  assert np.asarray(tgt).tolist() == [[6, 7, 0, 0], [9, 0, 0, 0]]
  assert np.asarray(w).tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]
  assert np.array_equal(np.asarray(inp), np.asarray(ids))


def test_mlm_select_counts_positions_and_80_10_10():
  B, L, V = 256, 64, 1000
  ids = jax.random.randint(jax.random.PRNGKey(0), (B, L), 200, V)  # no special ids by chance
  n_real = np.random.default_rng(0).integers(0, 60, size=B)
  n_real[0] = 0
  mask = (np.arange(L)[None, :] < (n_real + 2)[:, None]).astype(np.int32)
  ids = jnp.where(jnp.asarray(mask) > 0, ids, 0).at[:, 0].set(101)
  ids = ids.at[np.arange(B), n_real + 1].set(102)
  inp, pos, tgt, w = losses.mlm_select(
    jax.random.PRNGKey(1),
    ids_BxL=ids,
    mask_BxL=jnp.asarray(mask),
    mask_token_id=103,
    vocab_size=V,
    special_ids_S=jnp.array([0, 101, 102, 103]),
    max_predictions=11,
  )
  ids, inp, pos, tgt, w = map(np.asarray, (ids, inp, pos, tgt, w))
  assert pos.shape == (B, 11)
  expected = np.where(n_real > 0, np.clip(np.round(n_real * 0.15), 1, 11), 0)
  assert np.array_equal(w.sum(1), expected)  # BERT's count rule
  for b in range(B):
    chosen = pos[b][w[b] > 0]
    assert len(set(chosen.tolist())) == len(chosen)  # distinct positions
    assert all(1 <= p <= n_real[b] for p in chosen)  # real, non-special tokens only
    assert np.array_equal(tgt[b], ids[b, pos[b]])
    untouched = np.setdiff1d(np.arange(L), chosen)
    assert np.array_equal(inp[b, untouched], ids[b, untouched])
  sel = w > 0
  new = inp[np.arange(B)[:, None], pos][sel]
  assert 0.74 < (new == 103).mean() < 0.86
  assert 0.05 < (new == tgt[sel]).mean() < 0.16
