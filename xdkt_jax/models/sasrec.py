"""SASRec: a causal transformer over the target-domain item sequence, trained with L_f.

Item representations (`mode`):
  id     a learnt ID table [N, D] (logical axes ('items', 'embed'))
  text   fixed item vectors [N, T] (e.g. LM knowledge vectors) → MoEAdaptor / Whitening → [N, D];
         the vectors are NOT trained: they live in the 'consts' variable collection, which
         the trainer passes to every step as a sharded, non-donated argument (train/trainer.py)
  fused  ID ⊕ text via GatedFusion ('gate') or a sum ('sum')
The same item representations embed the input sequence and score the output (tied, as in
SASRec / UniSRec): score(u, n) = h_u · e_n over the FULL target catalogue.

Sequences.  Token id N is a learnt BOS: a user's token sequence is [BOS, s_0, …, s_{n−1}] and
every position predicts the next item, so s_0 is predicted from BOS alone.  Hence a user with an
EMPTY target history is represented by the BOS state, a learnt vector trained on first items
(the popularity of how users start), not a hard-coded mean.  How sequences become windows,
packed rows and scoring inputs: data/windows.py.  Packed rows carry `segments_BxL` and
`positions_BxL`, and `encode` keeps their windows from seeing each other.

This file holds the Flax modules only: the objective is objectives.next_item_loss, the trainer
recommenders/sequential.py.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from xdkt_jax.models import align
from xdkt_jax.models.partitioning import NORMAL_002, logical

MODES = ("id", "text", "fused")
ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu}  # FFN activation by name (SASRec.act)


def _layer_norm(name, dtype=jnp.float32):
  return nn.LayerNorm(
    epsilon=1e-6,
    dtype=dtype,
    scale_init=logical(nn.initializers.ones, ("embed",)),
    bias_init=logical(nn.initializers.zeros, ("embed",)),
    name=name,
  )


class CausalSelfAttention(nn.Module):
  """Multi-head self-attention.  Without attention dropout it is jax.nn.dot_product_attention
  (fused kernels where the backend has them); with `attn_dropout` > 0 in training it is the
  explicit softmax(QKᵀ/√k + mask) with dropout on the probabilities (SASRec/RecBole's
  attention dropout), which that API has no option for.  `q_BxQxD` (default: x itself) are
  the query positions, attending over the keys/values of x: scoring needs the last position
  only."""

  heads: int
  dtype: Any = jnp.float32  # compute dtype (params stay float32)
  attn_dropout: float = 0.0

  @nn.compact
  def __call__(self, x_BxLxD, mask_Bx1xQxL, q_BxQxD=None, *, deterministic: bool = True):
    d = x_BxLxD.shape[-1]
    k = d // self.heads
    proj = lambda n: self.param(
      n, logical(NORMAL_002, ("embed", "heads", "kv")), (d, self.heads, k)
    ).astype(self.dtype)
    q_in = x_BxLxD if q_BxQxD is None else q_BxQxD
    q = jnp.einsum("bld,dhk->blhk", q_in, proj("query"))
    kk, v = (jnp.einsum("bld,dhk->blhk", x_BxLxD, proj(n)) for n in ("key", "value"))
    if deterministic or self.attn_dropout <= 0.0:
      out = jax.nn.dot_product_attention(q, kk, v, mask=mask_Bx1xQxL)
    else:
      logits = jnp.einsum("bqhk,blhk->bhql", q, kk).astype(jnp.float32) / math.sqrt(k)
      logits = jnp.where(mask_Bx1xQxL, logits, jnp.finfo(jnp.float32).min)
      probs = align.Dropout(self.attn_dropout)(jax.nn.softmax(logits, axis=-1), deterministic=False)
      out = jnp.einsum("bhql,blhk->bqhk", probs.astype(self.dtype), v)
    wo = self.param("out", logical(NORMAL_002, ("heads", "kv", "embed")), (self.heads, k, d))
    return jnp.einsum("blhk,hkd->bld", out, wo.astype(self.dtype))


class Block(nn.Module):
  heads: int
  mlp: int
  dropout: float
  norm: str  # 'pre' | 'post'
  dtype: Any = jnp.float32
  act: str = "relu"  # FFN activation: 'relu' (SASRec's) | 'gelu' (RecBole's default)
  attn_dropout: float = 0.0  # dropout on the attention probabilities (RecBole: = dropout)
  inner_dropout: bool = True  # dropout after the FFN activation (original SASRec; RecBole: no)

  @nn.compact
  def __call__(self, x, mask, *, deterministic: bool, last_B=None):
    """[B, L, D] → [B, L, D]; with `last_B` (one position per row) only that position's
    output is computed, [B, 1, D] (mask is then [B, 1, 1, L])."""
    d = x.shape[-1]
    drop = lambda h: align.Dropout(self.dropout)(h, deterministic=deterministic)
    attn_mod = CausalSelfAttention(
      self.heads, dtype=self.dtype, attn_dropout=self.attn_dropout, name="attn"
    )
    attn = lambda h, m, q: attn_mod(h, m, q, deterministic=deterministic)
    act = ACTIVATIONS[self.act]
    ln1, ln2 = _layer_norm("attn_ln", self.dtype), _layer_norm("mlp_ln", self.dtype)

    def ffn(h):
      h = nn.Dense(
        self.mlp,
        dtype=self.dtype,
        kernel_init=logical(NORMAL_002, ("embed", "mlp")),
        bias_init=logical(nn.initializers.zeros, ("mlp",)),
        name="mlp_in",
      )(h)
      h = act(h)  # SASRec's ReLU by default; gelu's tanh was 1/3 of a CPU step
      h = drop(h) if self.inner_dropout else h
      return nn.Dense(
        d,
        dtype=self.dtype,
        kernel_init=logical(NORMAL_002, ("mlp", "embed")),
        bias_init=logical(nn.initializers.zeros, ("embed",)),
        name="mlp_out",
      )(h)

    pick = lambda h: h if last_B is None else jnp.take_along_axis(h, last_B[:, None, None], 1)
    if self.norm == "pre":
      hx = ln1(x)
      x = pick(x) + drop(attn(hx, mask, None if last_B is None else pick(hx)))
      return x + drop(ffn(ln2(x)))
    x = ln1(pick(x) + drop(attn(x, mask, None if last_B is None else pick(x))))
    return ln2(x + drop(ffn(x)))


class SASRec(nn.Module):
  """Token ids [B, L] (0..N−1 items, N = BOS) + mask → hidden [B, L, D]; `item_repr` → [N, D]."""

  n_items: int
  hidden: int = 64
  layers: int = 2
  heads: int = 2
  mlp: int = 128
  max_len: int = 50
  dropout: float = 0.2
  norm: str = "pre"
  mode: str = "id"
  text_dim: int = 0
  adaptor: str = "moe"  # 'moe' | 'whitening'
  n_experts: int = 8
  fusion: str = "gate"  # 'gate' | 'sum'
  text_dropout: float = 0.1
  dtype: str = "float32"  # compute dtype of the transformer blocks ('bfloat16' on
  # accelerators); params, item table and L_f stay float32
  act: str = "relu"  # FFN activation: 'relu' | 'gelu'
  attn_dropout: float = 0.0  # dropout on attention probabilities (explicit softmax path)
  inner_dropout: bool = True  # dropout after the FFN activation (RecBole's FFN has none)

  def setup(self):
    if self.mode not in MODES:
      raise ValueError(f"sasrec: mode must be one of {MODES}, got {self.mode!r}")
    if self.hidden % self.heads:
      raise ValueError(f"sasrec: hidden {self.hidden} not divisible by heads {self.heads}")
    if self.mode in ("id", "fused"):
      self.item_table = self.param(
        "item_embedding", logical(NORMAL_002, ("items", "embed")), (self.n_items, self.hidden)
      )
    if self.mode in ("text", "fused"):
      if self.text_dim <= 0:
        raise ValueError(f"sasrec mode {self.mode!r} needs item vectors (text_dim > 0)")
      self.item_vectors = self.variable(
        "consts",
        "item_vectors",
        lambda: nn.with_logical_partitioning(jnp.zeros, ("items", None))(
          (self.n_items, self.text_dim)
        ),
      )
      if self.adaptor == "moe":
        self.text_adaptor = align.MoEAdaptor(self.hidden, self.n_experts, self.text_dropout)
      else:
        self.text_adaptor = align.Whitening(self.hidden, self.text_dropout)
    if self.mode == "fused" and self.fusion == "gate":
      self.fuse = align.GatedFusion()
    self.bos = self.param("bos", logical(NORMAL_002, ("embed",)), (self.hidden,))
    self.pos = self.param(
      "pos_embedding", logical(NORMAL_002, ("pos", "embed")), (self.max_len, self.hidden)
    )
    cdt = jnp.dtype(self.dtype)
    self.in_ln = _layer_norm("in_ln", cdt)
    self.in_drop = align.Dropout(self.dropout)
    if self.act not in ACTIVATIONS:
      raise ValueError(f"sasrec: act must be one of {sorted(ACTIVATIONS)}, got {self.act!r}")
    self.blocks = [
      Block(
        self.heads,
        self.mlp,
        self.dropout,
        self.norm,
        dtype=cdt,
        act=self.act,
        attn_dropout=self.attn_dropout,
        inner_dropout=self.inner_dropout,
        name=f"block_{i}",
      )
      for i in range(self.layers)
    ]
    if self.norm == "pre":
      self.out_ln = _layer_norm("out_ln", cdt)

  def item_repr(self, *, deterministic: bool = True):
    """[N, D] item representations, the output embedding of L_f."""
    if self.mode == "id":
      return self.item_table
    vec = self.item_vectors.value
    vec = vec.value if isinstance(vec, nn.meta.AxisMetadata) else vec
    text = self.text_adaptor(jax.lax.stop_gradient(vec), deterministic=deterministic)
    if self.mode == "text":
      return text
    return self.fuse(self.item_table, text) if self.fusion == "gate" else self.item_table + text

  def encode(
    self,
    tokens_BxL,
    mask_BxL,
    items_NxD,
    *,
    segments_BxL=None,
    positions_BxL=None,
    deterministic: bool = True,
    last_B=None,
  ):
    """Causal hidden states [B, L, D]; position t sees tokens ≤ t only.

    With `segments_BxL` (packed rows: several sequences per row, ids 1, 2, …) a token also
    sees only its own segment, and `positions_BxL` restart at 0 per segment, so a packed row
    computes exactly what its sequences would compute unpacked.  With `last_B` (scoring) only
    that position of each row comes out, [B, 1, D]: the last block computes its query, FFN and
    output there alone (the keys and values still cover every position).
    """
    length = tokens_BxL.shape[1]
    if length > self.max_len:
      raise ValueError(f"sasrec: sequence length {length} > max_len {self.max_len}")
    table = jnp.concatenate([items_NxD, self.bos[None, :].astype(items_NxD.dtype)], axis=0)
    pos = self.pos[None, :length] if positions_BxL is None else self.pos[positions_BxL]
    x = table[tokens_BxL] + pos
    x = self.in_drop(self.in_ln(x), deterministic=deterministic)
    valid = mask_BxL.astype(bool)
    mask = valid[:, None, None, :] & jnp.tril(jnp.ones((length, length), bool))[None, None]
    if segments_BxL is not None:
      mask = mask & (segments_BxL[:, None, :, None] == segments_BxL[:, None, None, :])
    for i, blk in enumerate(self.blocks):
      if last_B is not None and i == len(self.blocks) - 1:
        row = jnp.take_along_axis(mask, last_B[:, None, None, None], axis=2)  # [B, 1, 1, L]
        x = blk(x, row, deterministic=deterministic, last_B=last_B)
      else:
        x = blk(x, mask, deterministic=deterministic)
    if self.norm == "pre":
      x = self.out_ln(x)
    return x.astype(jnp.float32)  # L_f's logits over the catalogue in float32

  def __call__(
    self,
    tokens_BxL,
    mask_BxL,
    *,
    users_BxL=None,
    segments_BxL=None,
    positions_BxL=None,
    deterministic: bool = True,
    last_B=None,
  ):
    """(hidden_BxLxD, items_NxD); [B, 1, D] at `last_B` only when given.  `users_BxL` is
    unused here (models/xdkt.py reads it)."""
    del users_BxL
    items = self.item_repr(deterministic=deterministic)
    h = self.encode(
      tokens_BxL,
      mask_BxL,
      items,
      segments_BxL=segments_BxL,
      positions_BxL=positions_BxL,
      deterministic=deterministic,
      last_B=last_B,
    )
    return h, items
