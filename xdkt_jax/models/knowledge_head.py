"""Knowledge extraction model W_k: the (adapted) encoder plus a per-token entity tagger.

L_k = −Σ_i Σ_j log p(k_ij | x_ij, W_k): every title token j of item text i is classified into
one of K labels, 0 = "none" and 1..K-1 = entities of the shared cross-domain vocabulary
(xdkt_jax/knowledge/ builds labels and vocabulary).

The classifier's output weights ARE the entity embeddings [K, D_k] (logits = proj(h) · E^T + b),
so training L_k learns one vector per entity in a space shared by all domains; an item's
knowledge vector can then carry the embedding of the entities it names.

Parameter layout: ``{"encoder": <Encoder params>, "knowledge_head": ...}``.  The ``encoder``
subtree has exactly the paths of ``LanguageModel``'s, so adapted weights (W_t) drop in and the
freeze regex ``^encoder/`` selects the whole encoder.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from xdkt_jax.models.partitioning import NORMAL_002
from xdkt_jax.models.encoder import Encoder, pool
from xdkt_jax.models.encoder_config import EncoderConfig

ENTITY_MODES = ("none", "predicted")


@dataclasses.dataclass(frozen=True)
class KnowledgeHeadConfig:
  """Shape of the head.  Frozen so it can sit in a module attribute / static jit arg."""

  num_labels: int  # K = entity vocabulary size + 1 (label 0 = none)
  entity_dim: int = 64  # D_k: size of an entity embedding
  dropout: float = 0.1


class KnowledgeHead(nn.Module):
  """Hidden states [B, L, D] → float32 entity logits [B, L, K] (tied to the entity table)."""

  cfg: KnowledgeHeadConfig
  dtype: str = "float32"
  param_dtype: str = "float32"

  def setup(self):
    c = self.cfg
    part = nn.with_logical_partitioning
    self.proj = nn.Dense(
      c.entity_dim,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      kernel_init=part(NORMAL_002, ("embed", "mlp")),
      bias_init=part(nn.initializers.zeros, ("mlp",)),
    )
    self.ln = nn.LayerNorm(
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      scale_init=part(nn.initializers.ones, ("mlp",)),
      bias_init=part(nn.initializers.zeros, ("mlp",)),
    )
    # Entities are few (hundreds to thousands): "vocab" shards them like the word table when
    # the mesh divides K and replicates them otherwise (mesh.fit_spec_to_shape).
    self.entity_embed = self.param(
      "entity_embed",
      part(NORMAL_002, ("vocab", None)),
      (c.num_labels, c.entity_dim),
      jnp.dtype(self.param_dtype),
    )
    self.bias = self.param(
      "bias", part(nn.initializers.zeros, ("vocab",)), (c.num_labels,), jnp.dtype(self.param_dtype)
    )
    self.drop = nn.Dropout(rate=c.dropout)

  def features(self, hidden_BxLxD, *, deterministic: bool = True):
    """Token features in entity space [B, L, D_k]."""
    h = self.drop(hidden_BxLxD, deterministic=deterministic)
    return self.ln(nn.gelu(self.proj(h)))

  def __call__(self, hidden_BxLxD, *, deterministic: bool = True):
    f = self.features(hidden_BxLxD, deterministic=deterministic).astype(jnp.float32)
    # float32 logits: the softmax feeds both L_k and the expected entity embedding.
    return jnp.einsum("bld,kd->blk", f, self.entity_embed.astype(jnp.float32)) + self.bias.astype(
      jnp.float32
    )

  def entity_table(self):
    """E [K, D_k] (row 0 belongs to 'none' and is never used as knowledge)."""
    return self.entity_embed.astype(jnp.float32)


def expected_entity_vector(logits_BxLxK, mask_BxL, table_KxD):
  """Σ_j m_j Σ_{k≥1} p_jk E_k / max(Σ_j m_j Σ_{k≥1} p_jk, 1).

  The mean embedding of the entities the tagger finds: one clearly named entity gives ≈ its
  embedding, three give their mean, none gives ≈ 0 (the floor of 1 stops an item with no
  entity-like token from blowing up a tiny probability mass into a full-size vector).
  """
  p = jax.nn.softmax(logits_BxLxK.astype(jnp.float32), axis=-1)[..., 1:]
  p = p * mask_BxL.astype(jnp.float32)[..., None]
  total = jnp.einsum("blk,kd->bd", p, table_KxD[1:])
  mass = jnp.sum(p, axis=(1, 2))
  return total / jnp.maximum(mass, 1.0)[:, None]


class KnowledgeModel(nn.Module):
  """Encoder (LanguageModel-compatible params) + KnowledgeHead."""

  enc: EncoderConfig
  head: KnowledgeHeadConfig

  def setup(self):
    self.encoder = Encoder(self.enc)
    self.knowledge_head = KnowledgeHead(
      self.head, dtype=self.enc.dtype, param_dtype=self.enc.param_dtype
    )

  def encode(self, ids_BxL, mask_BxL, *, deterministic: bool = True):
    return self.encoder(ids_BxL, mask_BxL, deterministic=deterministic)

  def __call__(
    self, ids_BxL, mask_BxL, *, deterministic: bool = True, freeze_encoder: bool = False
  ):
    """Entity logits [B, L, K].  `freeze_encoder` stops gradients at the encoder output, so
    a frozen-encoder run skips the encoder's backward pass entirely (XLA drops it), and runs
    the encoder without dropout: the head then trains on the features it will be applied to."""
    h = self.encode(ids_BxL, mask_BxL, deterministic=deterministic or freeze_encoder)
    if freeze_encoder:
      h = jax.lax.stop_gradient(h)
    return self.knowledge_head(h, deterministic=deterministic)

  def knowledge(self, ids_BxL, mask_BxL, *, pooling: str = "mean", entity_mode: str = "none"):
    """(pooled encoder vector [B, D], entity vector [B, D_k] or None), float32."""
    h = self.encode(ids_BxL, mask_BxL, deterministic=True)
    pooled = pool(h, mask_BxL, pooling)
    if entity_mode == "none":
      return pooled, None
    table = self.knowledge_head.entity_table()
    if entity_mode == "predicted":
      logits = self.knowledge_head(h, deterministic=True)
      return pooled, expected_entity_vector(logits, mask_BxL, table)
    raise ValueError(f"entity_mode must be one of {ENTITY_MODES}, got {entity_mode!r}")
