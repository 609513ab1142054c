"""The text encoder: one Flax linen transformer with two families.

* ``bert``: bidirectional, post-LN, token + position + type embeddings, exact-erf GELU;
  the MLM head is a dense+act+LN transform and a decoder tied to the word embeddings.
* ``gpt2``: causal, pre-LN, learned positions, tanh GELU, final ``ln_f``; the LM head is
  tied to ``wte``.

Both families share parameter names (``token_embed``, ``layers_i/attn/query`` ...) so that
sharding rules, optimiser masks and the HF converter (``hf_weights.py``) treat them alike;
only the order of LayerNorms differs.  Every parameter carries logical axis names, every
block output a logical constraint, so the same code shards on any mesh via the rules in
config (no-ops when no rules are set).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn

from xdkt_jax.models.encoder_config import ACTIVATIONS, EncoderConfig
from xdkt_jax.models.partitioning import NORMAL_002, logical

POOL_MODES = ("mean", "cls", "last")

_ACT_AXES = ("batch", "length", "embed")


# ---- building blocks ---------------------------------------------------------------------


def _layer_norm(cfg: EncoderConfig, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(
    epsilon=cfg.layer_norm_eps,
    dtype=cfg.dtype,
    param_dtype=cfg.param_dtype,
    scale_init=logical(nn.initializers.ones, ("embed",)),
    bias_init=logical(nn.initializers.zeros, ("embed",)),
    name=name,
  )


def _constrain(x):
  return nn.with_logical_constraint(x, _ACT_AXES)


def _key_mask(attention_mask_BxL, causal: bool):
  """Boolean [B, 1, T, S] mask: key s is visible to query t (padding, and causal)."""
  mask = attention_mask_BxL.astype(bool)[:, None, None, :]
  if causal:
    length = attention_mask_BxL.shape[1]
    mask = mask & jnp.tril(jnp.ones((length, length), bool))[None, None]
  return mask


class HeadDense(nn.Module):
  """Dense between [..., D] and [..., H, K] with a kernel stored in its true 3-D shape.

  Why not ``nn.DenseGeneral``: it initialises a flat 2-D kernel and reshapes it, and under a
  mesh + logical rules its boxed 3-D axis names get applied to the 2-D array (a rank error),
  which breaks sharded init.  ``to_heads`` picks the direction.
  """

  cfg: EncoderConfig
  to_heads: bool

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    d, h, k = cfg.hidden_size, cfg.num_heads, cfg.head_dim
    if self.to_heads:
      spec, shape, axes, out_shape, out_axes = (
        "...d,dhk->...hk",
        (d, h, k),
        ("embed", "heads", "kv"),
        (h, k),
        ("heads", "kv"),
      )
    else:
      spec, shape, axes, out_shape, out_axes = (
        "...hk,hkd->...d",
        (h, k, d),
        ("heads", "kv", "embed"),
        (d,),
        ("embed",),
      )
    kernel = self.param("kernel", logical(NORMAL_002, axes), shape, jnp.dtype(cfg.param_dtype))
    bias = self.param(
      "bias", logical(nn.initializers.zeros, out_axes), out_shape, jnp.dtype(cfg.param_dtype)
    )
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=jnp.dtype(cfg.dtype))
    return jnp.einsum(spec, x, kernel) + bias


class SelfAttention(nn.Module):
  """Multi-head self-attention.  q/k/v keep an explicit heads axis so TP can shard it."""

  cfg: EncoderConfig

  @nn.compact
  def __call__(self, x_BxLxD, mask_Bx1xLxL, *, deterministic: bool):
    cfg = self.cfg
    q, k, v = (HeadDense(cfg, to_heads=True, name=n)(x_BxLxD) for n in ("query", "key", "value"))
    if deterministic or cfg.attention_dropout == 0.0:
      out_BxLxHxK = jax.nn.dot_product_attention(q, k, v, mask=mask_Bx1xLxL)
    else:
      # jax.nn.dot_product_attention has no dropout on the probabilities; flax's reference
      # implementation does and uses the same [B, L, H, K] layout and boolean mask.
      out_BxLxHxK = nn.dot_product_attention(
        q,
        k,
        v,
        mask=mask_Bx1xLxL,
        dropout_rng=self.make_rng("dropout"),
        dropout_rate=cfg.attention_dropout,
        deterministic=False,
        dtype=cfg.dtype,
      )
    return HeadDense(cfg, to_heads=False, name="out")(out_BxLxHxK)


class Block(nn.Module):
  """One transformer layer: post-LN for BERT, pre-LN for GPT-2 (same parameter names)."""

  cfg: EncoderConfig

  @nn.compact
  def __call__(self, x_BxLxD, mask_Bx1xLxL, *, deterministic: bool):
    cfg = self.cfg
    drop = nn.Dropout(rate=cfg.dropout)
    attn = SelfAttention(cfg, name="attn")
    attn_ln, mlp_ln = _layer_norm(cfg, "attn_ln"), _layer_norm(cfg, "mlp_ln")

    def mlp(h):
      h = nn.Dense(
        cfg.mlp_dim,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        kernel_init=logical(NORMAL_002, ("embed", "mlp")),
        bias_init=logical(nn.initializers.zeros, ("mlp",)),
        name="mlp_in",
      )(h)
      h = ACTIVATIONS[cfg.activation](h)
      return nn.Dense(
        cfg.hidden_size,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        kernel_init=logical(NORMAL_002, ("mlp", "embed")),
        bias_init=logical(nn.initializers.zeros, ("embed",)),
        name="mlp_out",
      )(h)

    if cfg.family == "bert":
      h = attn(x_BxLxD, mask_Bx1xLxL, deterministic=deterministic)
      x = attn_ln(x_BxLxD + drop(h, deterministic=deterministic))
      x = mlp_ln(x + drop(mlp(x), deterministic=deterministic))
    else:
      h = attn(attn_ln(x_BxLxD), mask_Bx1xLxL, deterministic=deterministic)
      x = x_BxLxD + drop(h, deterministic=deterministic)
      x = x + drop(mlp(mlp_ln(x)), deterministic=deterministic)
    return _constrain(x)


class Encoder(nn.Module):
  """Token ids -> contextual hidden states [B, L, D] (in ``cfg.dtype``).

  Positions are 0..L-1 whatever the mask, as in HF when ``position_ids`` is not given, so
  pad on the right: then pad tokens change nothing at the real positions.
  """

  cfg: EncoderConfig

  def setup(self):
    cfg = self.cfg
    embed = lambda n, axes: nn.Embed(
      n,
      cfg.hidden_size,
      dtype=cfg.dtype,
      param_dtype=cfg.param_dtype,
      embedding_init=logical(NORMAL_002, axes),
    )
    self.token_embed = embed(cfg.vocab_size, ("vocab", "embed"))
    self.pos_embed = embed(cfg.max_len, ("pos", "embed"))
    if cfg.family == "bert":
      # The type table has 2 rows: never worth sharding, so its first axis is unnamed.
      self.type_embed = embed(cfg.type_vocab_size, (None, "embed"))
      self.embed_ln = _layer_norm(cfg, "embed_ln")
    else:
      self.final_ln = _layer_norm(cfg, "final_ln")
    self.layers = [Block(cfg, name=f"layers_{i}") for i in range(cfg.num_layers)]
    self.drop = nn.Dropout(rate=cfg.dropout)

  def __call__(
    self,
    input_ids_BxL,
    attention_mask_BxL=None,
    *,
    token_type_ids_BxL=None,
    deterministic: bool = True,
  ):
    cfg = self.cfg
    length = input_ids_BxL.shape[1]
    if length > cfg.max_len:
      raise ValueError(f"sequence length {length} exceeds max_len {cfg.max_len}")
    if attention_mask_BxL is None:
      attention_mask_BxL = jnp.ones(input_ids_BxL.shape, jnp.int32)
    x = self.token_embed(input_ids_BxL) + self.pos_embed(jnp.arange(length))[None]
    if cfg.family == "bert":
      if token_type_ids_BxL is None:
        token_type_ids_BxL = jnp.zeros_like(input_ids_BxL)
      x = self.embed_ln(x + self.type_embed(token_type_ids_BxL))
    x = _constrain(self.drop(x, deterministic=deterministic))
    mask = _key_mask(attention_mask_BxL, cfg.causal)
    for layer in self.layers:
      x = layer(x, mask, deterministic=deterministic)
    if cfg.family == "gpt2":
      x = _constrain(self.final_ln(x))
    return x

  def attend(self, hidden_BxLxD):
    """Hidden states x word embeddings^T: the tied output projection."""
    return self.token_embed.attend(hidden_BxLxD)


class LMHead(nn.Module):
  """Hidden -> vocabulary logits, tied to the word embeddings via ``attend``.

  BERT: dense + act + LN transform, then tied decoder + a per-token bias (HF's
  ``cls.predictions``).  GPT-2: tied projection only.
  """

  cfg: EncoderConfig

  @nn.compact
  def __call__(self, hidden_BxLxD, attend):
    cfg = self.cfg
    if cfg.family == "gpt2":
      return attend(hidden_BxLxD)
    # 'mlp' on the output axis: flax forbids a logical name twice in one array, and this
    # D -> D dense is sharded like an MLP input projection.
    h = nn.Dense(
      cfg.hidden_size,
      dtype=cfg.dtype,
      param_dtype=cfg.param_dtype,
      kernel_init=logical(NORMAL_002, ("embed", "mlp")),
      bias_init=logical(nn.initializers.zeros, ("mlp",)),
      name="transform",
    )(hidden_BxLxD)
    h = _layer_norm(cfg, "transform_ln")(ACTIVATIONS[cfg.activation](h))
    bias = self.param(
      "bias",
      logical(nn.initializers.zeros, ("vocab",)),
      (cfg.vocab_size,),
      jnp.dtype(cfg.param_dtype),
    )
    return attend(h) + bias.astype(cfg.dtype)


class LanguageModel(nn.Module):
  """Encoder + tied LM head.  ``__call__`` gives float32 logits; ``encode`` hidden states."""

  cfg: EncoderConfig

  def setup(self):
    self.encoder = Encoder(self.cfg)
    self.lm_head = LMHead(self.cfg)

  def encode(
    self,
    input_ids_BxL,
    attention_mask_BxL=None,
    *,
    token_type_ids_BxL=None,
    deterministic: bool = True,
  ):
    return self.encoder(
      input_ids_BxL,
      attention_mask_BxL,
      token_type_ids_BxL=token_type_ids_BxL,
      deterministic=deterministic,
    )

  def __call__(
    self,
    input_ids_BxL,
    attention_mask_BxL=None,
    *,
    token_type_ids_BxL=None,
    deterministic: bool = True,
    positions_BxP=None,
  ):
    """Logits at every position, or only at `positions_BxP` (masked-LM training: the head
    over the vocabulary is the costliest part, and only the predicted positions need it)."""
    hidden = self.encode(
      input_ids_BxL,
      attention_mask_BxL,
      token_type_ids_BxL=token_type_ids_BxL,
      deterministic=deterministic,
    )
    if positions_BxP is not None:
      hidden = jnp.take_along_axis(hidden, positions_BxP[..., None], axis=1)
    # float32 logits: a log-softmax over a 30k-50k vocabulary in bf16 loses the tail.
    return self.lm_head(hidden, self.encoder.attend).astype(jnp.float32)


# ---- helpers -----------------------------------------------------------------------------


def _dummy_inputs(cfg: EncoderConfig):
  ids = jnp.zeros((1, min(cfg.max_len, 8)), jnp.int32)
  return ids, jnp.ones_like(ids)


def init_params(cfg: EncoderConfig, rng: jax.Array):
  """Plain (unboxed) ``params`` collection of a ``LanguageModel``."""
  variables = LanguageModel(cfg).init(rng, *_dummy_inputs(cfg))
  return nn.meta.unbox(variables["params"])


def logical_axes(cfg: EncoderConfig):
  """PartitionSpec pytree of logical axis names, same structure as ``init_params``.

  Shapes only (``eval_shape``), so it is free even for a large model.
  """
  abstract = jax.eval_shape(
    lambda r: LanguageModel(cfg).init(r, *_dummy_inputs(cfg)), jax.random.key(0)
  )
  return nn.get_partition_spec(abstract)["params"]


def pool(hidden_BxLxD, mask_BxL, mode: str = "mean"):
  """Sentence vectors [B, D] (float32) from hidden states.

  mean: average over non-pad tokens (sentence-transformers' MiniLM pooling); cls: the first
  token (BERT's [CLS]); last: the last non-pad token (what a causal LM has read everything
  by), found from the mask so left or right padding both work.
  """
  hidden = hidden_BxLxD.astype(jnp.float32)
  mask = mask_BxL.astype(jnp.float32)
  if mode == "mean":
    total = jnp.einsum("bld,bl->bd", hidden, mask)
    return total / jnp.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
  if mode == "cls":
    return hidden[:, 0]
  if mode == "last":
    positions = jnp.arange(mask_BxL.shape[1])[None, :]
    last = jnp.max(jnp.where(mask_BxL.astype(bool), positions, 0), axis=1)
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
  raise ValueError(f"pool mode must be one of {POOL_MODES}, got {mode!r}")
