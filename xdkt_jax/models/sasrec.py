"""SASRec: a causal transformer over the target-domain item sequence, trained with L_f.

Item representations (`mode`):
  id     a learnt ID table [N, D] (logical axes ('items', 'embed'))
  text   fixed item vectors [N, T] (e.g. LM knowledge vectors) → MoEAdaptor / Whitening → [N, D];
         the vectors are NOT trained: they live in the 'consts' variable collection, so they are
         in the TrainState (`state.extra`), sharded and checkpointed, but never optimised
  fused  ID ⊕ text via GatedFusion ('gate') or a sum ('sum')
The same item representations embed the input sequence and score the output (tied, as in
SASRec / UniSRec): score(u, n) = h_u · e_n over the FULL target catalogue.

Sequences.  Token id N is a learnt BOS: a user's token sequence is [BOS, s_0, …, s_{n−1}] and
every position predicts the next item, so s_0 is predicted from BOS alone.  Hence a user with an
EMPTY target history is represented by the BOS state, a learnt vector trained on first items
(the popularity of how users start), not a hard-coded mean.  Long sequences are cut into
consecutive windows of `max_len` (input, target) pairs from the end: every training transition
is predicted exactly once.  Padding is on the right (positions 0..L−1 from the window start).
Training windows are packed several to a row (`pack_windows`; attention and positions are per
window), because most windows are far shorter than max_len.
At scoring time a history shorter than the evaluator's width is complete, so it gets the BOS;
a full-width one may be truncated, so it does not (as for a non-first training window).

  model = train_sasrec(ds, split, target="Movies", cfg={"mode": "id"})
  scores_BxN = model.score(batch)      # batch from data.inputs.eval_arrays
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import losses
from xdkt_jax.data import protocols
from xdkt_jax.data.batching import Batcher
from xdkt_jax.models import align
from xdkt_jax.models.baselines import common
from xdkt_jax.train import loop as loop_lib
from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train import optim as optim_lib
from xdkt_jax.train import state as state_lib
from xdkt_jax.train import steps as steps_lib

MODES = ("id", "text", "fused")
ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu}   # FFN activation by name (SASRec.act)

# Incremented at trace time only: lets tests prove the train step compiles once per run.
TRACE_COUNTS = {"loss": 0, "score": 0}

# steps > 0 overrides epochs.  `batch` counts PACKED rows of max_len tokens (~2.5 sequences
# each here).  Chosen on the synthetic warm VALID split (NDCG@10): batch 64 at lr 3e-3 for 12
# epochs (~110 steps) 0.144; 20 epochs 0.136 (overfits); 8 epochs 0.123; batch 256 at lr 1e-3
# for 20 epochs 0.103, under pop (too few updates on ~650 packed rows).  SASRec's own defaults
# were lr 1e-3, batch 128 sequences, 200 epochs — far over a 60 s CPU budget.
DEFAULTS = dict(
    hidden=64, layers=2, heads=2, mlp=128, max_len=50, dropout=0.2, lr=3e-3, batch=64,
    epochs=12, steps=0, weight_decay=0.0, clip_norm=1.0, mode="id", loss="full_softmax",
    num_negatives=100, norm="pre", adaptor="moe", n_experts=8, fusion="gate",
    text_dropout=0.1, pack=True, seed=None, dtype="float32", first_item_loss=True,
    act="relu", attn_dropout=0.0, inner_dropout=True,
    # The full method (models/xdkt.py), active when user knowledge is passed to train_sasrec:
    align="infonce", align_weight=0.1, align_temperature=0.1, align_items=256,
    adversarial_lambda=1.0, user_agg="mean", source_len=50, source_repr="fused",
    source_weight=0.0,
    # Early stopping on the VALID split (RecBole's protocol): score the valid users after every
    # epoch with the run's own evaluator, keep the best epoch's parameters, stop after
    # `patience` epochs without a gain.  `epochs` (or `steps`) is then the ceiling.
    select_epoch=False, patience=3, select_metric="ndcg@10",
    # The valid users are ranked under this exclusion rule (xdkt_jax/conventions.py; the
    # recommend stage passes the run's resolved rule).
    exclude_history="auto",
    # Learning rate over the run's `steps` (epochs × steps per epoch; with select_epoch the
    # ceiling): constant (the setting measured above) | cosine | linear decay, after a linear
    # warm-up of `warmup_steps`.
    schedule="constant", warmup_steps=0)

_INIT = nn.initializers.normal(stddev=0.02)


def _part(init, axes):
  return nn.with_logical_partitioning(init, axes)


def _layer_norm(name, dtype=jnp.float32):
  return nn.LayerNorm(epsilon=1e-6, dtype=dtype,
                      scale_init=_part(nn.initializers.ones, ("embed",)),
                      bias_init=_part(nn.initializers.zeros, ("embed",)), name=name)


class CausalSelfAttention(nn.Module):
  """Multi-head self-attention.  Without attention dropout it is jax.nn.dot_product_attention
  (fused kernels where the backend has them); with `attn_dropout` > 0 in training it is the
  explicit softmax(QKᵀ/√k + mask) with dropout on the probabilities (SASRec/RecBole's
  attention dropout), which that API has no option for.  `q_BxQxD` (default: x itself) are
  the query positions, attending over the keys/values of x: scoring needs the last position
  only."""
  heads: int
  dtype: Any = jnp.float32   # compute dtype (params stay float32)
  attn_dropout: float = 0.0

  @nn.compact
  def __call__(self, x_BxLxD, mask_Bx1xQxL, q_BxQxD=None, *, deterministic: bool = True):
    d = x_BxLxD.shape[-1]
    k = d // self.heads
    proj = lambda n: self.param(n, _part(_INIT, ("embed", "heads", "kv")),
                                (d, self.heads, k)).astype(self.dtype)
    q_in = x_BxLxD if q_BxQxD is None else q_BxQxD
    q = jnp.einsum("bld,dhk->blhk", q_in, proj("query"))
    kk, v = (jnp.einsum("bld,dhk->blhk", x_BxLxD, proj(n)) for n in ("key", "value"))
    if deterministic or self.attn_dropout <= 0.0:
      out = jax.nn.dot_product_attention(q, kk, v, mask=mask_Bx1xQxL)
    else:
      logits = jnp.einsum("bqhk,blhk->bhql", q, kk).astype(jnp.float32) / math.sqrt(k)
      logits = jnp.where(mask_Bx1xQxL, logits, jnp.finfo(jnp.float32).min)
      probs = align.Dropout(self.attn_dropout)(jax.nn.softmax(logits, axis=-1),
                                               deterministic=False)
      out = jnp.einsum("bhql,blhk->bqhk", probs.astype(self.dtype), v)
    wo = self.param("out", _part(_INIT, ("heads", "kv", "embed")), (self.heads, k, d))
    return jnp.einsum("blhk,hkd->bld", out, wo.astype(self.dtype))


class Block(nn.Module):
  heads: int
  mlp: int
  dropout: float
  norm: str  # 'pre' | 'post'
  dtype: Any = jnp.float32
  act: str = "relu"          # FFN activation: 'relu' (SASRec's) | 'gelu' (RecBole's default)
  attn_dropout: float = 0.0  # dropout on the attention probabilities (RecBole: = dropout)
  inner_dropout: bool = True  # dropout after the FFN activation (original SASRec; RecBole: no)

  @nn.compact
  def __call__(self, x, mask, *, deterministic: bool, last_B=None):
    """[B, L, D] → [B, L, D]; with `last_B` (one position per row) only that position's
    output is computed, [B, 1, D] (mask is then [B, 1, 1, L])."""
    d = x.shape[-1]
    drop = lambda h: align.Dropout(self.dropout)(h, deterministic=deterministic)
    attn_mod = CausalSelfAttention(self.heads, dtype=self.dtype,
                                   attn_dropout=self.attn_dropout, name="attn")
    attn = lambda h, m, q: attn_mod(h, m, q, deterministic=deterministic)
    act = ACTIVATIONS[self.act]
    ln1, ln2 = _layer_norm("attn_ln", self.dtype), _layer_norm("mlp_ln", self.dtype)

    def ffn(h):
      h = nn.Dense(self.mlp, dtype=self.dtype, kernel_init=_part(_INIT, ("embed", "mlp")),
                   bias_init=_part(nn.initializers.zeros, ("mlp",)), name="mlp_in")(h)
      h = act(h)  # SASRec's ReLU by default; gelu's tanh was 1/3 of a CPU step
      h = drop(h) if self.inner_dropout else h
      return nn.Dense(d, dtype=self.dtype, kernel_init=_part(_INIT, ("mlp", "embed")),
                      bias_init=_part(nn.initializers.zeros, ("embed",)), name="mlp_out")(h)

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
  adaptor: str = "moe"        # 'moe' | 'whitening'
  n_experts: int = 8
  fusion: str = "gate"        # 'gate' | 'sum'
  text_dropout: float = 0.1
  dtype: str = "float32"      # compute dtype of the transformer blocks ('bfloat16' on
                              # accelerators); params, item table and L_f stay float32
  act: str = "relu"           # FFN activation: 'relu' | 'gelu'
  attn_dropout: float = 0.0   # dropout on attention probabilities (explicit softmax path)
  inner_dropout: bool = True  # dropout after the FFN activation (RecBole's FFN has none)

  def setup(self):
    if self.mode not in MODES:
      raise ValueError(f"sasrec: mode must be one of {MODES}, got {self.mode!r}")
    if self.hidden % self.heads:
      raise ValueError(f"sasrec: hidden {self.hidden} not divisible by heads {self.heads}")
    if self.mode in ("id", "fused"):
      self.item_table = self.param("item_embedding", _part(_INIT, ("items", "embed")),
                                   (self.n_items, self.hidden))
    if self.mode in ("text", "fused"):
      if self.text_dim <= 0:
        raise ValueError(f"sasrec mode {self.mode!r} needs item vectors (text_dim > 0)")
      self.item_vectors = self.variable(
          "consts", "item_vectors", lambda: nn.with_logical_partitioning(
              jnp.zeros, ("items", None))((self.n_items, self.text_dim)))
      if self.adaptor == "moe":
        self.text_adaptor = align.MoEAdaptor(self.hidden, self.n_experts, self.text_dropout)
      else:
        self.text_adaptor = align.Whitening(self.hidden, self.text_dropout)
    if self.mode == "fused" and self.fusion == "gate":
      self.fuse = align.GatedFusion()
    self.bos = self.param("bos", _part(_INIT, ("embed",)), (self.hidden,))
    self.pos = self.param("pos_embedding", _part(_INIT, ("pos", "embed")),
                          (self.max_len, self.hidden))
    cdt = jnp.dtype(self.dtype)
    self.in_ln = _layer_norm("in_ln", cdt)
    self.in_drop = align.Dropout(self.dropout)
    if self.act not in ACTIVATIONS:
      raise ValueError(f"sasrec: act must be one of {sorted(ACTIVATIONS)}, got {self.act!r}")
    self.blocks = [Block(self.heads, self.mlp, self.dropout, self.norm, dtype=cdt,
                         act=self.act, attn_dropout=self.attn_dropout,
                         inner_dropout=self.inner_dropout, name=f"block_{i}")
                   for i in range(self.layers)]
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

  def encode(self, tokens_BxL, mask_BxL, items_NxD, *, segments_BxL=None, positions_BxL=None,
             deterministic: bool = True, last_B=None):
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
        row = jnp.take_along_axis(mask, last_B[:, None, None, None], axis=2)   # [B, 1, 1, L]
        x = blk(x, row, deterministic=deterministic, last_B=last_B)
      else:
        x = blk(x, mask, deterministic=deterministic)
    if self.norm == "pre":
      x = self.out_ln(x)
    return x.astype(jnp.float32)   # L_f's logits over the catalogue in float32

  def __call__(self, tokens_BxL, mask_BxL, *, users_BxL=None, segments_BxL=None,
               positions_BxL=None, deterministic: bool = True, last_B=None):
    """(hidden_BxLxD, items_NxD); [B, 1, D] at `last_B` only when given.  `users_BxL` is
    unused here (models/xdkt.py reads it)."""
    del users_BxL
    items = self.item_repr(deterministic=deterministic)
    h = self.encode(tokens_BxL, mask_BxL, items, segments_BxL=segments_BxL,
                    positions_BxL=positions_BxL, deterministic=deterministic, last_B=last_B)
    return h, items


# ---------------------------------------------------------------------------------------------
# Training examples.

def training_windows(offsets: np.ndarray, items: np.ndarray, *, n_items: int, max_len: int):
  """Per user CSR sequence s → windows of (input, target) pairs over [BOS, s]: inputs
  [BOS, s_0..s_{n−2}], targets s_0..s_{n−1}, cut from the END into windows of max_len pairs.

  Returns dict of [W, max_len] arrays: inputs, targets, users (int32: the window's user in
  every slot), mask (int8, 1 at real pairs).  Right-padded; padded slots have input 0, mask 0.
  """
  ins, tgts, lens, owners = [], [], [], []
  for u in np.nonzero(np.diff(offsets))[0]:
    s = items[offsets[u]:offsets[u + 1]]
    inp = np.concatenate([[n_items], s[:-1]]).astype(np.int32)
    end = len(s)
    while end > 0:
      lo = max(0, end - max_len)
      ins.append(inp[lo:end]); tgts.append(s[lo:end]); lens.append(end - lo)
      owners.append(u)
      end = lo
  w = len(lens)
  out = {"inputs": np.zeros((w, max_len), np.int32), "targets": np.zeros((w, max_len), np.int32),
         "users": np.zeros((w, max_len), np.int32), "mask": np.zeros((w, max_len), np.int8)}
  for r, (i, t, n, u) in enumerate(zip(ins, tgts, lens, owners)):
    out["inputs"][r, :n], out["targets"][r, :n], out["mask"][r, :n] = i, t, 1
    out["users"][r, :n] = u
  return out


def pack_windows(windows: dict, *, max_len: int, max_segments: int = 0) -> dict:
  """Packs windows into rows of max_len tokens (best-fit decreasing).

  Why: on the synthetic world the median window is ~15 of 50 slots, so unpacked batches spend
  most of their FLOPs on padding.  Adds `segments` (1, 2, … per window in a row; 0 = pad) and
  `positions` (restarting at 0 per window); `encode` keeps windows from seeing each other.
  `max_segments` > 0 caps the windows per row (the full method computes per-segment source
  knowledge, [rows, S, source_len], so S = the most segments in any row is its cost).
  """
  lens = windows["mask"].astype(np.int64).sum(1)
  order = np.argsort(-lens, kind="stable")
  rows: list[list[int]] = []
  by_free: list[list[int]] = [[] for _ in range(max_len + 1)]  # free slots → open rows
  for w in order:
    n = int(lens[w])
    fit = next((f for f in range(n, max_len + 1) if by_free[f]), None)  # best fit
    if fit is None:
      rows.append([w])
      by_free[max_len - n].append(len(rows) - 1)
    else:
      r = by_free[fit].pop()
      rows[r].append(w)
      if not max_segments or len(rows[r]) < max_segments:
        by_free[fit - n].append(r)
  out = {k: np.zeros((len(rows), max_len), np.int32) for k in
         ("inputs", "targets", "users", "segments", "positions")}
  out["mask"] = np.zeros((len(rows), max_len), np.int8)
  for r, ws in enumerate(rows):
    at = 0
    for seg, w in enumerate(ws, start=1):
      n = int(lens[w])
      sl = slice(at, at + n)
      out["inputs"][r, sl] = windows["inputs"][w, :n]
      out["targets"][r, sl] = windows["targets"][w, :n]
      out["users"][r, sl] = windows["users"][w, :n]
      out["mask"][r, sl] = 1
      out["segments"][r, sl] = seg
      out["positions"][r, sl] = np.arange(n)
      at += n
  return out


def bucket_width(length: int, max_len: int, smallest: int = 8) -> int:
  """The scoring width for a batch whose longest token sequence is `length`: the next power of
  two ≥ `smallest`, capped at max_len.  A causal model with right padding computes the same
  state at the last real token at any width ≥ its length, so bucketing is exact; a handful of
  widths keeps the jitted scorer to a handful of traces."""
  w = smallest
  while w < length:
    w *= 2
  return min(w, max_len)


def score_inputs(hist_BxH: np.ndarray, hist_mask_BxH: np.ndarray, *, n_items: int,
                 max_len: int, bucket: bool = False):
  """Eval histories (right-padded, most recent last) → model tokens [B, W] + mask.

  A history shorter than its array width H is complete, so it starts with BOS; a full-width
  one may have been truncated, so it does not.  Keeps the most recent max_len tokens.
  W = max_len, or with `bucket` the `bucket_width` of the batch's longest sequence (the
  evaluator batches histories in length order, so most batches are far narrower than max_len).
  """
  hist, m = np.asarray(hist_BxH), np.asarray(hist_mask_BxH).astype(bool)
  b, h = hist.shape
  lens = m.sum(1)
  seqs = []
  for r in range(b):
    seq = hist[r][m[r]]
    if lens[r] < h:
      seq = np.concatenate([[n_items], seq])
    seqs.append(seq[-max_len:])
  width = bucket_width(max((len(q) for q in seqs), default=1), max_len) if bucket else max_len
  tokens = np.zeros((b, width), np.int32)
  mask = np.zeros((b, width), np.int8)
  for r, seq in enumerate(seqs):
    tokens[r, :len(seq)], mask[r, :len(seq)] = seq, 1
  return tokens, mask


# ---------------------------------------------------------------------------------------------
# The recommender object.

def _variables(params, extra):
  return {"params": params, **(extra or {})}


@dataclasses.dataclass
class SASRecModel:
  """A trained SASRec: `score(batch) -> scores_BxN` (the baselines' interface)."""
  module: SASRec
  params: Any
  extra: Any                     # {'consts': {'item_vectors': ...}} or None
  n_items: int
  losses: np.ndarray             # per-step training loss
  info: dict

  def __post_init__(self):
    module = self.module

    @jax.jit
    def user_and_items(params, extra, tokens, mask, users):
      TRACE_COUNTS["score"] += 1
      users = None if users is None else jnp.broadcast_to(users[:, None], tokens.shape)
      last = jnp.maximum(jnp.sum(mask, axis=1).astype(jnp.int32) - 1, 0)
      h, items = module.apply(_variables(params, extra), tokens, mask, users_BxL=users,
                              last_B=last)
      return h[:, 0], items

    @jax.jit
    def scores(params, extra, tokens, mask, users):   # one dispatch: B×N stays on device
      u, items = user_and_items(params, extra, tokens, mask, users)
      return u @ items.T

    self._user_and_items, self._scores = user_and_items, scores
    self._needs_users = getattr(module, "n_source_items", 0) > 0

  def _users(self, batch, b: int):
    if not self._needs_users:
      return None
    return np.asarray(batch["user"], np.int32) if "user" in batch else np.zeros(b, np.int32)

  def user_repr(self, batch):
    """[B, D] hidden state at the last real token (the BOS state for an empty history)."""
    tokens, mask = score_inputs(batch["hist"], batch["hist_mask"], n_items=self.n_items,
                                max_len=self.module.max_len, bucket=True)
    return self._user_and_items(self.params, self.extra, tokens, mask,
                                self._users(batch, len(tokens)))[0]

  def item_repr(self):
    tokens = np.full((1, 1), self.n_items, np.int32)
    return self._user_and_items(self.params, self.extra, tokens, np.ones((1, 1), np.int8),
                                self._users({}, 1))[1]

  def score(self, batch) -> np.ndarray:
    tokens, mask = score_inputs(batch["hist"], batch["hist_mask"], n_items=self.n_items,
                                max_len=self.module.max_len, bucket=True)
    return np.asarray(self._scores(self.params, self.extra, tokens, mask,
                                   self._users(batch, len(tokens))), np.float32)


def make_loss_fn(module: SASRec, *, kind: str, num_negatives: int, has_extra: bool,
                 first_item_loss: bool = True):
  """loss_fn for steps.make_train_step: L_f at every position of every window.  Without
  `first_item_loss` the positions whose input is BOS (predicting a user's first item from
  nothing) carry no loss: the training task of prefix-based trainers such as RecBole's."""
  def loss(params, batch, rng, extra=None):
    TRACE_COUNTS["loss"] += 1
    k_drop, k_neg = jax.random.split(rng)
    h, items = module.apply(_variables(params, extra), batch["inputs"], batch["mask"],
                            segments_BxL=batch.get("segments"),
                            positions_BxL=batch.get("positions"),
                            deterministic=False, rngs={"dropout": k_drop})
    w = batch["mask"].astype(jnp.float32) * batch["example_mask"][:, None].astype(jnp.float32)
    if not first_item_loss:
      w = w * (batch["inputs"] != module.n_items).astype(jnp.float32)
    value, metrics = losses.transfer_loss(
        user_repr_BxD=h, item_emb_NxD=items, target_B=batch["targets"], weights_B=w,
        kind=kind, rng=k_neg, num_negatives=num_negatives)
    metrics = {k: v for k, v in metrics.items() if k in ("accuracy",)}
    return (value, (metrics, extra)) if has_extra else (value, metrics)

  if has_extra:
    return loss
  return lambda params, batch, rng: loss(params, batch, rng)


def _item_vectors(item_vectors, target: str, n_items: int):
  if item_vectors is None:
    return None
  if isinstance(item_vectors, dict):
    item_vectors = item_vectors[target]
  v = np.asarray(item_vectors, np.float32)
  if v.ndim != 2 or v.shape[0] != n_items:
    raise ValueError(f"sasrec: item_vectors must be [{n_items}, T], got {v.shape}")
  return v


def _source_inputs(ds, split, source_len: int, source_vectors, *, need_vectors: bool) -> dict:
  """The full method's source side: each user's last `source_len` TRAINING source items
  (global ids over split.sources, data.inputs), a has-history flag, the source knowledge."""
  from xdkt_jax.data import inputs  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data.batching import pad_sequences  # pylint: disable=import-outside-toplevel
  if not split.sources:
    raise ValueError(f"xdkt: protocol {split.protocol!r} has no source domains to transfer from")
  offsets, items = inputs.source_sequences(ds, split)
  hist, mask = pad_sequences(offsets, items, source_len, keep="last")
  n_src = sum(ds.domains[s].n_items for s in split.sources)
  out = {"source_hist": hist.astype(np.int32), "source_mask": mask.astype(np.int8),
         "user_has": (np.diff(offsets) > 0).astype(np.float32), "n_source_items": n_src}
  if need_vectors:
    if source_vectors is None:
      raise ValueError("xdkt: text/fused modes need source item knowledge (source_vectors)")
    if isinstance(source_vectors, dict):
      source_vectors = np.concatenate([np.asarray(source_vectors[s], np.float32)
                                       for s in split.sources])
    v = np.asarray(source_vectors, np.float32)
    if v.shape[0] != n_src:
      raise ValueError(f"xdkt: source_vectors has {v.shape[0]} rows, the sources have {n_src}")
    out["source_vectors"] = v
  return out


def train_sasrec(ds, split, *, target: str, cfg=None, item_vectors=None, seed: int = 0,
                 mesh=None, log_fn=None, transfer: bool = False,
                 source_vectors=None) -> SASRecModel:
  """Trains SASRec on the target domain's TRAINING rows (split.train_rows only, via
  protocols.train_sequences) with the shared engine; returns a SASRecModel.

  cfg: None / dict / ConfigDict over DEFAULTS (an unknown key raises).  `cfg['seed']`, when
  set, overrides `seed`.  `item_vectors`: [N, T] array or {domain: array}; required for the
  'text' and 'fused' modes.  Runs on `mesh` (default: all devices, data-parallel).

  `transfer=True` trains the full method's recommender instead (models/xdkt.py): each user's
  TRAINING source items (split.sources, last `source_len`) are fused in, with `cfg['align']`;
  `source_vectors` ({domain: [n_items, T]} or [N_s, T] in split.sources order) is the source
  items' knowledge, required in the text / fused modes.
  """
  o = common.options(cfg, DEFAULTS, "sasrec")
  seed = int(seed if o.seed is None else o.seed)
  n_items = ds.domains[target].n_items
  vectors = _item_vectors(item_vectors, target, n_items)
  if o.mode in ("text", "fused") and vectors is None:
    raise ValueError(f"sasrec mode {o.mode!r} needs item_vectors")
  if o.mode == "id":
    vectors = None
  offsets, items = protocols.train_sequences(ds, split, target,
                                             consumer="sequential recommender batches")
  windows = training_windows(offsets, items, n_items=n_items, max_len=int(o.max_len))
  n_win = len(windows["inputs"])
  data = (pack_windows(windows, max_len=int(o.max_len), max_segments=8 if transfer else 0)
          if o.pack else windows)
  if n_win == 0:
    raise ValueError(f"sasrec: no training rows in target domain {target!r}")
  bsz = int(o.batch)
  n_rows = len(data["inputs"])
  if n_rows < bsz:   # tiny data: one batch holding every row, no remainder dropped
    bsz = n_rows
  mesh = mesh if mesh is not None else mesh_lib.make_mesh()
  n_batch_shards = math.prod(mesh.shape[a] for a in mesh_lib.BATCH_AXES)
  bsz = max(n_batch_shards, bsz // n_batch_shards * n_batch_shards)
  if transfer:
    from xdkt_jax.models import xdkt as xdkt_lib  # pylint: disable=import-outside-toplevel
    if not o.first_item_loss:
      raise ValueError("sasrec: first_item_loss=False is for the plain recommender only")
    data = xdkt_lib.segment_users(data)
  batcher = Batcher(data, bsz, seed=seed, drop_remainder=True)
  total = int(o.steps) or max(1, int(o.epochs) * batcher.steps_per_epoch)

  kw = dict(n_items=n_items, hidden=int(o.hidden), layers=int(o.layers),
            heads=int(o.heads), mlp=int(o.mlp), max_len=int(o.max_len),
            dropout=float(o.dropout), norm=str(o.norm), mode=str(o.mode),
            text_dim=0 if vectors is None else vectors.shape[1], adaptor=str(o.adaptor),
            n_experts=int(o.n_experts), fusion=str(o.fusion),
            text_dropout=float(o.text_dropout), dtype=str(o.dtype), act=str(o.act),
            attn_dropout=float(o.attn_dropout), inner_dropout=bool(o.inner_dropout))
  consts = {} if vectors is None else {"item_vectors": vectors}
  if transfer:
    from xdkt_jax.models import xdkt as xdkt_lib  # pylint: disable=import-outside-toplevel
    src = _source_inputs(ds, split, int(o.source_len), source_vectors,
                         need_vectors=(o.source_repr != "id"
                                       or str(o.align) in xdkt_lib.ITEM_ALIGNS))
    consts.update(src)
    module = xdkt_lib.XDKTRec(**kw, n_users=ds.n_users, n_source_items=src["n_source_items"],
                              source_len=int(o.source_len), user_agg=str(o.user_agg),
                              align=str(o.align), source_repr=str(o.source_repr))
    consts.pop("n_source_items")
  else:
    module = SASRec(**kw)
  dummy = (jnp.zeros((1, int(o.max_len)), jnp.int32), jnp.ones((1, int(o.max_len)), jnp.int8))
  dummy_users = jnp.zeros((1, int(o.max_len)), jnp.int32) if transfer else None
  init_fn = lambda rng: module.init(rng, *dummy, users_BxL=dummy_users)
  opt_cfg = dict(lr=float(o.lr), schedule=str(o.schedule), warmup_steps=int(o.warmup_steps),
                 total_steps=total, weight_decay=float(o.weight_decay),
                 clip_norm=float(o.clip_norm))
  key = jax.random.PRNGKey(seed)
  k_init, k_train = jax.random.split(key)
  abstract_params = state_lib.unbox(jax.eval_shape(init_fn, k_init))["params"]
  tx = optim_lib.make_optimizer(opt_cfg, abstract_params)
  rules = mesh_lib.DEFAULT_RULES
  state, sharding = state_lib.create_train_state(init_fn, tx, k_init, mesh, rules)
  if consts:
    state = state.replace(extra=jax.device_put({"consts": consts}, sharding.extra))
  if transfer:
    loss_fn = xdkt_lib.make_loss_fn(
        module, kind=str(o.loss), num_negatives=int(o.num_negatives),
        align_weight=float(o.align_weight), temperature=float(o.align_temperature),
        align_items=int(o.align_items), adversarial_lambda=float(o.adversarial_lambda),
        source_weight=float(o.source_weight))
  else:
    loss_fn = make_loss_fn(module, kind=str(o.loss), num_negatives=int(o.num_negatives),
                           has_extra=state.extra is not None,
                           first_item_loss=bool(o.first_item_loss))
  batch_sharding = mesh_lib.batch_sharding(mesh)
  step = steps_lib.make_train_step(loss_fn, tx, mesh=mesh, state_sharding=sharding,
                                   batch_sharding=batch_sharding, rules=rules)
  loss_log = []

  class _Writer:  # collects the per-step loss the loop fetches anyway (lagged, no extra sync)
    def write_scalars(self, at, scalars):
      loss_log.append(scalars["train/loss"])

    def flush(self):
      pass

  def train_to(state, start: int, stop: int):
    # Host batches come from a background thread, two ahead (no checkpoint here, so the
    # step-indexed resumable source is not needed); batch_at(step) makes chunks seamless.
    return loop_lib.train_loop(
        state=state, train_step=step, data=batcher.iterate(start, stop - start, prefetch=2),
        rng=k_train, total_steps=stop, batch_sharding=batch_sharding, writer=_Writer(),
        log_every=1, progress=False, handle_sigterm=False)

  t0 = time.time()
  select = {}
  if o.select_epoch:
    result, select = _train_selecting_epoch(
        train_to, state, total=total, steps_per_epoch=batcher.steps_per_epoch,
        scorer=SASRecModel(module, None, None, n_items, np.zeros(0, np.float32), {}),
        valid=_valid_arrays(ds, split, target, str(o.exclude_history)), n_items=n_items,
        metric=str(o.select_metric), patience=int(o.patience))
    params, extra = select.pop("params"), select.pop("extra")
  else:
    result = train_to(state, 0, total)
    params = jax.device_get(result.state.params)
    extra = None if result.state.extra is None else jax.device_get(result.state.extra)
  seconds = time.time() - t0
  info = {"steps": int(result.step), "windows": n_win, "rows": n_rows, "batch": bsz,
          "train_seconds": seconds,
          "final_loss": float(result.metrics.get("loss", float("nan"))),
          "mode": o.mode, "loss": o.loss, "transfer": transfer,
          "align": str(o.align) if transfer else "none", **select}
  chosen = (f", kept epoch {select['best_epoch']} of {select['epochs_run']} (valid "
            f"{select['select_metric']} {select['best_valid']:.4f})" if select else "")
  (log_fn or logging.info)(f"{'xdkt' if transfer else 'sasrec'}[{o.mode}]: {int(result.step)} steps over "
                           f"{n_win} windows in {seconds:.1f} s, final loss "
                           f"{info['final_loss']:.3f}{chosen}")
  return SASRecModel(module, params, extra, n_items, np.asarray(loss_log, np.float32), info)


def _valid_arrays(ds, split, target: str, exclude_history: str) -> dict:
  from xdkt_jax import conventions  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data import inputs  # pylint: disable=import-outside-toplevel
  rule = conventions.resolve("xdkt", exclude_history,
                             target_has_given_split=ds.domains[target].given_split is not None)
  arrays = inputs.eval_arrays(ds, split, target, "valid", exclude_history=rule.exclude_history)
  if len(arrays["target"]) == 0:
    raise ValueError(f"sasrec: select_epoch needs valid examples, and the {split.protocol!r} "
                     f"split has none in {target!r}")
  return arrays


def _train_selecting_epoch(train_to, state, *, total: int, steps_per_epoch: int, scorer,
                           valid: dict, n_items: int, metric: str, patience: int):
  """Trains epoch by epoch up to `total` steps; after each epoch scores the valid users
  (full ranking under the run's exclusion rule: the evaluator of the reported numbers) and
  keeps the parameters of the best epoch.  Stops once `patience` epochs in a row bring no gain.
  Returns (the last loop result, {params, extra, best_epoch, best_valid, epochs_run,
  valid_curve, select_metric})."""
  from xdkt_jax import evaluate as evaluate_lib  # pylint: disable=import-outside-toplevel
  evaluate_lib.selection_metric(metric, "sasrec")
  if patience < 1:
    raise ValueError(f"sasrec: patience must be >= 1, got {patience}")
  spe = max(1, int(steps_per_epoch))
  best, curve, at, epoch, result = None, [], 0, 0, None
  while at < total:
    result = train_to(state, at, min(total, at + spe))
    state, at, epoch = result.state, min(total, at + spe), epoch + 1
    scorer.params, scorer.extra = state.params, state.extra
    value = evaluate_lib.valid_score(scorer.score, valid, n_items=n_items, metric=metric)
    curve.append({"epoch": epoch, "step": at, metric: value})
    if best is None or value > best[0]:
      extra = None if state.extra is None else jax.device_get(state.extra)
      best = (value, epoch, jax.device_get(state.params), extra)
    elif epoch - best[1] >= patience:
      break
  return result, {"params": best[2], "extra": best[3], "best_epoch": best[1],
                  "best_valid": best[0], "epochs_run": epoch, "valid_curve": curve,
                  "select_metric": metric}


def fit(ds, split, *, target: str, cfg=None, item_vectors=None) -> SASRecModel:
  """The baselines' `fit(ds, split, *, target, cfg)` signature."""
  return train_sasrec(ds, split, target=target, cfg=cfg, item_vectors=item_vectors)
