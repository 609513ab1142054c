"""Alignment and fusion modules: map knowledge vectors into a recommender's space and merge them
with ID embeddings.

  Whitening      (x − b) W                         UniSRec's parametric whitening
  MoEAdaptor     Σ_k softmax(x W_g)_k (x − b_k) W_k UniSRec's MoE adaptor
  LinearMapping  x W + c                           EMCDR's linear source→target mapping
  MLPMapping     MLP with tanh                     EMCDR's MLP mapping
  GatedFusion    g = σ(W[a;b] + c); g·a + (1−g)·b  ID + knowledge fusion
  Dropout        inverted dropout, rate quantised to 1/256 (a quarter of nn.Dropout's random bits)

Params carry logical axis names; the input (knowledge) width has none, since it is small and
comes from elsewhere (an LM's hidden size), so it is replicated.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from xdkt_jax.models.partitioning import NORMAL_002, logical


class Dropout(nn.Module):
  """Inverted dropout with the drop rate quantised to 1/256: one 32-bit random word gives
  four elements' bytes.  On CPU the random bits are what dropout costs (threefry), and this
  draws a quarter of them: ~2.2x faster per site than nn.Dropout's float32 bernoulli
  (benchmarks/RESULTS.md).  rate 0.2 drops 51/256 = 0.199 of the elements."""

  rate: float

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    cut = int(round(self.rate * 256))
    if deterministic or cut == 0:
      return x
    if cut >= 256:
      return jnp.zeros_like(x)
    n = x.size
    words = jax.random.bits(self.make_rng("dropout"), ((n + 3) // 4,), jnp.uint32)
    byte = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(-1)[:n].reshape(x.shape)
    keep = byte >= cut
    return jnp.where(keep, x * (256.0 / (256 - cut)), jnp.zeros((), x.dtype)).astype(x.dtype)


class Whitening(nn.Module):
  """(x − b) W: a learnable centring and linear map.

  Why: LM sentence vectors are anisotropic (a shared mean direction dominates cosine), and
  UniSRec shows a learnt centring + projection transfers across domains better than fixed
  whitening.  Dropout on the input (UniSRec applies it there) regularises the small map.
  """

  features: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x_NxT, *, deterministic: bool = True):
    t = x_NxT.shape[-1]
    b = self.param("bias", logical(nn.initializers.zeros, (None,)), (t,))
    w = self.param(
      "kernel", logical(nn.initializers.lecun_normal(), (None, "embed")), (t, self.features)
    )
    x = Dropout(self.dropout)(x_NxT, deterministic=deterministic)
    return (x - b) @ w


class MoEAdaptor(nn.Module):
  """Mixture of `n_experts` whitening maps with a softmax gate computed from the input.

  Why several: one linear map must serve every domain's text distribution; experts let items
  from different domains (or kinds of text) use different maps, and the gate picks per item.
  Experts are stacked ([E, T, D]) and run as ONE [N, T] × [T, E·D] matmul:
  (x − b_e) W_e = x W_e − b_e W_e, so the [N, E, T] tensor of centred copies is never built
  (on CPU that intermediate made the adaptor ~8× slower than the matmul itself).
  """

  features: int
  n_experts: int = 8
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x_NxT, *, deterministic: bool = True):
    t, e = x_NxT.shape[-1], self.n_experts
    b = self.param("bias", logical(nn.initializers.zeros, (None, None)), (e, t))
    w = self.param(
      "kernel",
      logical(nn.initializers.lecun_normal(batch_axis=(0,)), (None, None, "embed")),
      (e, t, self.features),
    )
    gate_w = self.param("gate", logical(nn.initializers.zeros, (None, None)), (t, e))
    x = Dropout(self.dropout)(x_NxT, deterministic=deterministic)
    d = self.features
    w_TxED = jnp.transpose(w, (1, 0, 2)).reshape(t, e * d)
    experts_NxExD = (x @ w_TxED).reshape(*x.shape[:-1], e, d) - jnp.einsum("et,etd->ed", b, w)
    gate_NxE = jax.nn.softmax(x_NxT @ gate_w, axis=-1)
    return jnp.einsum("...e,...ed->...d", gate_NxE, experts_NxExD)


class LinearMapping(nn.Module):
  """EMCDR's linear mapping f(x) = x W + c from a source latent space to the target one."""

  features: int

  @nn.compact
  def __call__(self, x_NxT):
    return nn.Dense(
      self.features,
      kernel_init=logical(nn.initializers.lecun_normal(), (None, "embed")),
      bias_init=logical(nn.initializers.zeros, ("embed",)),
      name="dense",
    )(x_NxT)


class MLPMapping(nn.Module):
  """EMCDR's MLP mapping: `layers` tanh hidden layers of width `hidden`, then linear.

  tanh as in EMCDR: the mapped factors are bounded-scale latent vectors, and a saturating
  non-linearity keeps a mapping fitted on few overlapping users from extrapolating wildly.
  """

  features: int
  hidden: int = 128
  layers: int = 1

  @nn.compact
  def __call__(self, x_NxT):
    h = x_NxT
    for i in range(self.layers):
      h = nn.tanh(
        nn.Dense(
          self.hidden,
          kernel_init=logical(nn.initializers.lecun_normal(), (None, "mlp")),
          bias_init=logical(nn.initializers.zeros, ("mlp",)),
          name=f"hidden_{i}",
        )(h)
      )
    return nn.Dense(
      self.features,
      kernel_init=logical(nn.initializers.lecun_normal(), ("mlp", "embed")),
      bias_init=logical(nn.initializers.zeros, ("embed",)),
      name="out",
    )(h)


class GatedFusion(nn.Module):
  """g = σ(W[a; b] + c), out = g·a + (1−g)·b, per dimension.

  Why a gate and not a sum: how much to trust the ID embedding vs the knowledge vector
  depends on the item (a popular item has a well-trained ID, a cold one only knowledge); the
  gate sees both and decides per item and dimension.  The bias starts at 0 (g = ½: a mean).
  """

  @nn.compact
  def __call__(self, a_NxD, b_NxD):
    d = a_NxD.shape[-1]
    z = jnp.concatenate([a_NxD, b_NxD], axis=-1)
    g = jax.nn.sigmoid(
      nn.Dense(
        d,
        kernel_init=logical(NORMAL_002, (None, "embed")),
        bias_init=logical(nn.initializers.zeros, ("embed",)),
        name="gate",
      )(z)
    )
    return g * a_NxD + (1.0 - g) * b_NxD
