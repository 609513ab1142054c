"""The full method's recommender: SASRec over the target sequence, with the user's SOURCE
history fused in and the two domains aligned (L_f + λ·L_align).

  target items  e_n = fuse(ID_n, A(k_n))         k_n: item knowledge (L_k stage)
  source items  r_j = fuse(ID'_j, A(k'_j))       the SAME adaptor A over source knowledge k'
  user          z_u = W · agg_j r_j              over u's training source items (mean or
                                                 learned attention: the user knowledge)
  state         h'_t = h_t + has_u · g_t ⊙ z_u,   g_t = σ(G [h_t; z_u])   (gated, per position)
  score         s(u, n) = h'_T · e_n over the FULL target catalogue   (L_f: full-softmax CE)

A is ONE adaptor (UniSRec-style MoE whitening) shared by both domains, so source and target
knowledge are read in one space — the knowledge is the bridge: a source item the target model
has never seen still lands near the target items whose text names the same entities.  The
source ID table ID' adds what text cannot say (co-consumption), learnt end to end through the
target loss.  The alignment term pulls the domains together:

  infonce      InfoNCE between z_u (source view) and h_u (the user's target-sequence state,
               before fusion) over the overlapping users of the batch
  mmd | mmd_linear | coral
               between A(source item knowledge) and A(target item knowledge), sampled items
  adversarial  a domain classifier on A(·) behind a gradient-reversal layer (DANN)
  none         L_f only

The gate lets a position ignore the source when the target history already says enough; a user
without source history (has_u = 0) is scored exactly as by the no-transfer model.

Packed training rows hold several users' windows: `seg_users_BxS` names the user of each
segment and `seg_index_BxL` the segment of each token, so the source side is computed once per
segment ([B, S, H]) rather than once per token.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from xdkt_jax.models.partitioning import NORMAL_002, logical, unboxed
from xdkt_jax import losses
from xdkt_jax.models import align as align_lib
from xdkt_jax.models import sasrec

ALIGNS = ("none", "infonce", "mmd", "mmd_linear", "coral", "adversarial")
ITEM_ALIGNS = ("mmd", "mmd_linear", "coral", "adversarial")
USER_AGGS = ("mean", "attention")


class XDKTRec(sasrec.SASRec):
  """SASRec (item mode fused/text/id) + source history fusion + an alignment term."""

  n_users: int = 0
  n_source_items: int = 0
  source_len: int = 50
  user_agg: str = "mean"
  align: str = "infonce"
  source_repr: str = "fused"  # fused | text | id: how a source item is represented (r_j)

  def setup(self):
    super().setup()
    if self.align not in ALIGNS:
      raise ValueError(f"xdkt: align must be one of {ALIGNS}, got {self.align!r}")
    if self.user_agg not in USER_AGGS:
      raise ValueError(f"xdkt: user_agg must be one of {USER_AGGS}, got {self.user_agg!r}")
    if self.n_users <= 0 or self.n_source_items <= 0:
      raise ValueError("xdkt: needs users and source items (n_users, n_source_items > 0)")
    part = nn.with_logical_partitioning
    const = lambda name, shape, dtype=jnp.float32: self.variable(
      "consts",
      name,
      lambda: part(lambda *_: jnp.zeros(shape, dtype), (None,) * len(shape))(None, shape),
    )
    self.source_hist = const("source_hist", (self.n_users, self.source_len), jnp.int32)
    self.source_mask = const("source_mask", (self.n_users, self.source_len), jnp.int8)
    self.user_has = const("user_has", (self.n_users,))
    if self.source_repr not in ("fused", "text", "id"):
      raise ValueError(f"xdkt: source_repr must be fused|text|id, got {self.source_repr!r}")
    if self.source_repr != "id" and self.mode == "id":
      raise ValueError("xdkt: mode 'id' has no adaptor; use source_repr='id'")
    if self.source_repr in ("id", "fused"):
      self.source_table = self.param(
        "source_item_embedding",
        logical(NORMAL_002, (None, "embed")),
        (self.n_source_items, self.hidden),
      )
    if self.source_repr in ("text", "fused") or self.align in ITEM_ALIGNS:
      self.source_vectors = const("source_vectors", (self.n_source_items, self.text_dim))
    if self.source_repr == "fused" and self.fusion == "gate":
      self.source_fuse = align_lib.GatedFusion()
    dense = lambda name, d=self.hidden: nn.Dense(
      d,
      kernel_init=part(NORMAL_002, (None, "embed")),
      bias_init=part(nn.initializers.zeros, ("embed",)),
      name=name,
    )
    if self.user_agg == "attention":
      self.attn_key = dense("attn_key")
      self.attn_query = self.param(
        "attn_query", logical(nn.initializers.zeros, ("embed",)), (self.hidden,)
      )
    # lecun (not 0.02) init: z_u must carry signal from step 0, or the gate learns to close
    self.user_proj = nn.Dense(
      self.hidden,
      kernel_init=part(nn.initializers.lecun_normal(), (None, "embed")),
      bias_init=part(nn.initializers.zeros, ("embed",)),
      name="user_proj",
    )
    self.user_gate = dense("user_gate")
    if self.align in ITEM_ALIGNS and self.mode == "id":
      raise ValueError(f"xdkt: align={self.align!r} needs item knowledge (mode text or fused)")
    if self.align == "adversarial":
      self.domain_clf = nn.Dense(2, name="domain_clf")

  def adapt(self, x, *, deterministic: bool = True):
    """Knowledge vectors → the shared item space (A above)."""
    return self.text_adaptor(x, deterministic=deterministic)

  def source_items(self, *, deterministic: bool = True):
    """[N_s, D] source item representations r_j."""
    if self.source_repr == "id":
      return self.source_table
    text = self.adapt(
      jax.lax.stop_gradient(unboxed(self.source_vectors.value)), deterministic=deterministic
    )
    if self.source_repr == "text":
      return text
    if self.fusion == "gate":
      return self.source_fuse(self.source_table, text)
    return self.source_table + text

  def user_knowledge(self, users, *, deterministic: bool = True):
    """(z_u [..., D], has_u [...]) for user ids of any shape."""
    r = self.source_items(deterministic=deterministic)
    hist = unboxed(self.source_hist.value)[users]  # [..., H]
    m = unboxed(self.source_mask.value)[users].astype(jnp.float32)  # [..., H]
    x = r[hist]  # [..., H, D]
    if self.user_agg == "mean":
      w = m / jnp.maximum(m.sum(-1, keepdims=True), 1.0)
    else:
      logit = jnp.tanh(self.attn_key(x)) @ self.attn_query
      logit = jnp.where(m > 0, logit, -1e9)
      w = jax.nn.softmax(logit, axis=-1) * (m.sum(-1, keepdims=True) > 0)
    agg = jnp.einsum("...h,...hd->...d", w, x)
    return self.user_proj(agg), unboxed(self.user_has.value)[users]

  def fuse_user(self, h, z, has):
    g = jax.nn.sigmoid(self.user_gate(jnp.concatenate([h, z], axis=-1)))
    return h + has[..., None].astype(h.dtype) * g * z

  def forward(
    self,
    tokens_BxL,
    mask_BxL,
    *,
    seg_users_BxS,
    seg_index_BxL,
    segments_BxL=None,
    positions_BxL=None,
    deterministic: bool = True,
    last_B=None,
  ):
    """(fused states [B, L, D], items [N, D], unfused states, z per segment [B, S, D],
    has per segment [B, S]).  With `last_B` the states are [B, 1, D] at that position
    (`seg_index_BxL` is then [B, 1])."""
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
    z_s, has_s = self.user_knowledge(seg_users_BxS, deterministic=deterministic)
    idx = jnp.clip(seg_index_BxL, 0, seg_users_BxS.shape[1] - 1)
    z = jnp.take_along_axis(z_s, idx[..., None], axis=1)
    has = jnp.take_along_axis(has_s, idx, axis=1)
    return self.fuse_user(h, z, has), items, h, z_s, has_s

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
    """Scoring form: one user per row (users_BxL constant along the row)."""
    if users_BxL is None:
      raise ValueError("xdkt: the recommender needs the user ids (users_BxL)")
    if self.align == "adversarial" and self.is_initializing():
      self.domain_clf(jnp.zeros((1, self.hidden)))  # create its params (used by the loss only)
    seg_index = jnp.zeros_like(tokens_BxL if last_B is None else tokens_BxL[:, :1])
    out = self.forward(
      tokens_BxL,
      mask_BxL,
      seg_users_BxS=users_BxL[:, :1],
      seg_index_BxL=seg_index,
      segments_BxL=segments_BxL,
      positions_BxL=positions_BxL,
      deterministic=deterministic,
      last_B=last_B,
    )
    return out[0], out[1]

  def item_alignment(self, rng, n: int, *, lam: float, deterministic: bool = True):
    """The item-level alignment term over n sampled items per domain."""
    k_s, k_t = jax.random.split(rng)
    src = unboxed(self.source_vectors.value)
    tgt = unboxed(self.item_vectors.value)
    x = self.adapt(src[jax.random.randint(k_s, (n,), 0, src.shape[0])], deterministic=deterministic)
    y = self.adapt(tgt[jax.random.randint(k_t, (n,), 0, tgt.shape[0])], deterministic=deterministic)
    if self.align == "mmd":
      return losses.mmd(x_NxD=x, y_MxD=y, kernel="rbf"), {}
    if self.align == "mmd_linear":
      return losses.mmd(x_NxD=x, y_MxD=y, kernel="linear"), {}
    if self.align == "coral":
      return losses.coral(x_NxD=x, y_MxD=y), {}
    feats = jnp.concatenate([x, y])
    dom = jnp.concatenate([jnp.zeros(n, jnp.int32), jnp.ones(n, jnp.int32)])
    return losses.domain_adversarial_loss(
      domain_N=dom, features_NxD=feats, logits_fn=self.domain_clf, lam=lam
    )
