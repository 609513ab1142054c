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

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import flax.linen as nn

from xdkt_jax.models.partitioning import NORMAL_002, logical

FAMILIES = ("bert", "gpt2")
POOL_MODES = ("mean", "cls", "last")

# HF activation names -> functions.  BERT's "gelu" is the exact erf form; GPT-2's
# "gelu_new" is the tanh approximation.  Getting this wrong costs ~1e-3 in parity.
_ACTIVATIONS = {
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "gelu_new": lambda x: nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: nn.gelu(x, approximate=True),
    "relu": nn.relu,
}
_DEFAULT_ACT = {"bert": "gelu", "gpt2": "gelu_new"}

_ACT_AXES = ("batch", "length", "embed")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Shape and numerics of the encoder.  Frozen so it can be a static jit argument."""
  family: str = "bert"
  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  mlp_dim: int = 1536
  max_len: int = 512
  type_vocab_size: int = 2
  dropout: float = 0.1
  attention_dropout: float = 0.1
  layer_norm_eps: float = 1e-12
  dtype: str = "float32"          # compute dtype ("bfloat16" for mixed precision)
  param_dtype: str = "float32"    # storage dtype of parameters
  pad_token_id: int = 0
  hidden_act: str | None = None   # None -> family default ("gelu" / "gelu_new")

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"EncoderConfig.family must be one of {FAMILIES}, got {self.family!r}")
    if self.hidden_act is None:   # resolve now so equal configs compare equal
      object.__setattr__(self, "hidden_act", _DEFAULT_ACT[self.family])
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                       f"num_heads {self.num_heads}")
    if self.activation not in _ACTIVATIONS:
      raise ValueError(f"unsupported hidden_act {self.activation!r}; "
                       f"known: {sorted(_ACTIVATIONS)}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def activation(self) -> str:
    return self.hidden_act

  @property
  def causal(self) -> bool:
    return self.family == "gpt2"

  def replace(self, **changes) -> "EncoderConfig":
    return dataclasses.replace(self, **changes)

  # ---- presets -----------------------------------------------------------------------

  @classmethod
  def tiny(cls, family: str = "bert", **kw) -> "EncoderConfig":
    """A few-thousand-parameter model for tests."""
    base = dict(family=family, vocab_size=101, hidden_size=32, num_layers=2, num_heads=4,
                mlp_dim=64, max_len=32, dropout=0.0, attention_dropout=0.0)
    if family == "gpt2":
      base.update(layer_norm_eps=1e-5, type_vocab_size=0)
    return cls(**{**base, **kw})

  @classmethod
  def minilm(cls, **kw) -> "EncoderConfig":
    """sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 x 384)."""
    return cls(**{**dict(family="bert", vocab_size=30522, hidden_size=384, num_layers=6,
                         num_heads=12, mlp_dim=1536, max_len=512), **kw})

  @classmethod
  def bert_base(cls, **kw) -> "EncoderConfig":
    return cls(**{**dict(family="bert", vocab_size=30522, hidden_size=768, num_layers=12,
                         num_heads=12, mlp_dim=3072, max_len=512), **kw})

  @classmethod
  def gpt2_small(cls, **kw) -> "EncoderConfig":
    return cls(**{**dict(family="gpt2", vocab_size=50257, hidden_size=768, num_layers=12,
                         num_heads=12, mlp_dim=3072, max_len=1024, type_vocab_size=0,
                         layer_norm_eps=1e-5, pad_token_id=50256), **kw})

  # ---- HF config.json ------------------------------------------------------------------

  @classmethod
  def from_hf(cls, config: Mapping[str, Any], **overrides) -> "EncoderConfig":
    """From a Hugging Face ``config.json`` dict (model_type "bert" or "gpt2")."""
    model_type = config.get("model_type")
    if model_type == "bert":
      if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported, got "
                         f"{config['position_embedding_type']!r}")
      kw = dict(family="bert", vocab_size=config["vocab_size"],
                hidden_size=config["hidden_size"], num_layers=config["num_hidden_layers"],
                num_heads=config["num_attention_heads"],
                mlp_dim=config["intermediate_size"],
                max_len=config["max_position_embeddings"],
                type_vocab_size=config.get("type_vocab_size", 2),
                dropout=config.get("hidden_dropout_prob", 0.1),
                attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
                layer_norm_eps=config.get("layer_norm_eps", 1e-12),
                pad_token_id=config.get("pad_token_id") or 0,
                hidden_act=config.get("hidden_act", "gelu"))
    elif model_type == "gpt2":
      for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
                   "add_cross_attention"):
        if config.get(flag):
          raise ValueError(f"GPT-2 option {flag}=True is not supported")
      if config.get("scale_attn_weights") is False:
        raise ValueError("GPT-2 option scale_attn_weights=False is not supported")
      d = config["n_embd"]
      pad = config.get("pad_token_id")
      kw = dict(family="gpt2", vocab_size=config["vocab_size"], hidden_size=d,
                num_layers=config["n_layer"], num_heads=config["n_head"],
                mlp_dim=config.get("n_inner") or 4 * d, max_len=config["n_positions"],
                type_vocab_size=0, dropout=config.get("resid_pdrop", 0.1),
                attention_dropout=config.get("attn_pdrop", 0.1),
                layer_norm_eps=config.get("layer_norm_epsilon", 1e-5),
                pad_token_id=pad if pad is not None else config.get("eos_token_id", 0),
                hidden_act=config.get("activation_function", "gelu_new"))
    else:
      raise ValueError(f"unsupported HF model_type {model_type!r} (expected 'bert' or 'gpt2')")
    return cls(**{**kw, **overrides})

  def to_hf(self) -> dict[str, Any]:
    """The HF ``config.json`` dict for this config (inverse of ``from_hf``)."""
    if self.family == "bert":
      return dict(architectures=["BertForMaskedLM"], model_type="bert",
                  vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                  num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
                  intermediate_size=self.mlp_dim, max_position_embeddings=self.max_len,
                  type_vocab_size=self.type_vocab_size, hidden_dropout_prob=self.dropout,
                  attention_probs_dropout_prob=self.attention_dropout,
                  layer_norm_eps=self.layer_norm_eps, pad_token_id=self.pad_token_id,
                  hidden_act=self.activation, position_embedding_type="absolute",
                  initializer_range=0.02, tie_word_embeddings=True)
    return dict(architectures=["GPT2LMHeadModel"], model_type="gpt2",
                vocab_size=self.vocab_size, n_embd=self.hidden_size, n_layer=self.num_layers,
                n_head=self.num_heads, n_inner=self.mlp_dim, n_positions=self.max_len,
                resid_pdrop=self.dropout, embd_pdrop=self.dropout,
                attn_pdrop=self.attention_dropout, layer_norm_epsilon=self.layer_norm_eps,
                activation_function=self.activation, pad_token_id=self.pad_token_id,
                bos_token_id=self.pad_token_id, eos_token_id=self.pad_token_id,
                initializer_range=0.02, tie_word_embeddings=True)


# ---- building blocks ---------------------------------------------------------------------


def _layer_norm(cfg: EncoderConfig, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                      scale_init=logical(nn.initializers.ones, ("embed",)),
                      bias_init=logical(nn.initializers.zeros, ("embed",)), name=name)


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
          "...d,dhk->...hk", (d, h, k), ("embed", "heads", "kv"), (h, k), ("heads", "kv"))
    else:
      spec, shape, axes, out_shape, out_axes = (
          "...hk,hkd->...d", (h, k, d), ("heads", "kv", "embed"), (d,), ("embed",))
    kernel = self.param("kernel", logical(NORMAL_002, axes), shape, jnp.dtype(cfg.param_dtype))
    bias = self.param("bias", logical(nn.initializers.zeros, out_axes), out_shape,
                      jnp.dtype(cfg.param_dtype))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=jnp.dtype(cfg.dtype))
    return jnp.einsum(spec, x, kernel) + bias


class SelfAttention(nn.Module):
  """Multi-head self-attention.  q/k/v keep an explicit heads axis so TP can shard it."""
  cfg: EncoderConfig

  @nn.compact
  def __call__(self, x_BxLxD, mask_Bx1xLxL, *, deterministic: bool):
    cfg = self.cfg
    q, k, v = (HeadDense(cfg, to_heads=True, name=n)(x_BxLxD)
               for n in ("query", "key", "value"))
    if deterministic or cfg.attention_dropout == 0.0:
      out_BxLxHxK = jax.nn.dot_product_attention(q, k, v, mask=mask_Bx1xLxL)
    else:
      # jax.nn.dot_product_attention has no dropout on the probabilities; flax's reference
      # implementation does and uses the same [B, L, H, K] layout and boolean mask.
      out_BxLxHxK = nn.dot_product_attention(
          q, k, v, mask=mask_Bx1xLxL, dropout_rng=self.make_rng("dropout"),
          dropout_rate=cfg.attention_dropout, deterministic=False, dtype=cfg.dtype)
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
      h = nn.Dense(cfg.mlp_dim, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                   kernel_init=logical(NORMAL_002, ("embed", "mlp")),
                   bias_init=logical(nn.initializers.zeros, ("mlp",)), name="mlp_in")(h)
      h = _ACTIVATIONS[cfg.activation](h)
      return nn.Dense(cfg.hidden_size, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                      kernel_init=logical(NORMAL_002, ("mlp", "embed")),
                      bias_init=logical(nn.initializers.zeros, ("embed",)), name="mlp_out")(h)

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
    embed = lambda n, axes: nn.Embed(n, cfg.hidden_size, dtype=cfg.dtype,
                                     param_dtype=cfg.param_dtype,
                                     embedding_init=logical(NORMAL_002, axes))
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

  def __call__(self, input_ids_BxL, attention_mask_BxL=None, *, token_type_ids_BxL=None,
               deterministic: bool = True):
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
    h = nn.Dense(cfg.hidden_size, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                 kernel_init=logical(NORMAL_002, ("embed", "mlp")),
                 bias_init=logical(nn.initializers.zeros, ("mlp",)), name="transform")(
                     hidden_BxLxD)
    h = _layer_norm(cfg, "transform_ln")(_ACTIVATIONS[cfg.activation](h))
    bias = self.param("bias", logical(nn.initializers.zeros, ("vocab",)), (cfg.vocab_size,),
                      jnp.dtype(cfg.param_dtype))
    return attend(h) + bias.astype(cfg.dtype)


class LanguageModel(nn.Module):
  """Encoder + tied LM head.  ``__call__`` gives float32 logits; ``encode`` hidden states."""
  cfg: EncoderConfig

  def setup(self):
    self.encoder = Encoder(self.cfg)
    self.lm_head = LMHead(self.cfg)

  def encode(self, input_ids_BxL, attention_mask_BxL=None, *, token_type_ids_BxL=None,
             deterministic: bool = True):
    return self.encoder(input_ids_BxL, attention_mask_BxL,
                        token_type_ids_BxL=token_type_ids_BxL, deterministic=deterministic)

  def __call__(self, input_ids_BxL, attention_mask_BxL=None, *, token_type_ids_BxL=None,
               deterministic: bool = True, positions_BxP=None):
    """Logits at every position, or only at `positions_BxP` (masked-LM training: the head
    over the vocabulary is the costliest part, and only the predicted positions need it)."""
    hidden = self.encode(input_ids_BxL, attention_mask_BxL,
                         token_type_ids_BxL=token_type_ids_BxL, deterministic=deterministic)
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
  abstract = jax.eval_shape(lambda r: LanguageModel(cfg).init(r, *_dummy_inputs(cfg)),
                            jax.random.key(0))
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
