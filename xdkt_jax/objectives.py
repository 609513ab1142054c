"""The recommenders' training objectives: closures over a Flax module that the train step
(train/steps.make_train_step) differentiates.  Each is built from the pure losses of
losses.py, named after the equations they compute:

  next_item_objective   L_f over every position of every window (SASRec, the control)
  xdkt_objective        L_f(h') + λ·L_align + μ·L_f(z)  (the full method, models/xdkt.py)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xdkt_jax import losses
from xdkt_jax.models.sasrec import SASRec
from xdkt_jax.models.xdkt import ITEM_ALIGNS, XDKTRec

# Incremented at trace time only: lets tests prove the train step compiles once per run.
TRACE_COUNTS = {"loss": 0}


def model_variables(params, consts):
  """Flax variables from the trained params and the constant collections ({'consts': …})."""
  return {"params": params, **(consts or {})}


def next_item_objective(
  module: SASRec, *, kind: str, num_negatives: int, first_item_loss: bool = True
):
  """loss_fn(params, batch, rng, consts=None) -> (loss, metrics) for steps.make_train_step:
  L_f at every position of every window.  `consts`: the model's constant collections (item
  vectors in the text / fused modes).  Without
  `first_item_loss` the positions whose input is BOS (predicting a user's first item from
  nothing) carry no loss: the training task of prefix-based trainers such as RecBole's."""

  def loss(params, batch, rng, consts=None):
    TRACE_COUNTS["loss"] += 1
    k_drop, k_neg = jax.random.split(rng)
    h, items = module.apply(
      model_variables(params, consts),
      batch["inputs"],
      batch["mask"],
      segments_BxL=batch.get("segments"),
      positions_BxL=batch.get("positions"),
      deterministic=False,
      rngs={"dropout": k_drop},
    )
    w = batch["mask"].astype(jnp.float32) * batch["example_mask"][:, None].astype(jnp.float32)
    if not first_item_loss:
      w = w * (batch["inputs"] != module.n_items).astype(jnp.float32)
    value, metrics = losses.transfer_loss(
      user_repr_BxD=h,
      item_emb_NxD=items,
      target_B=batch["targets"],
      weights_B=w,
      kind=kind,
      rng=k_neg,
      num_negatives=num_negatives,
    )
    return value, {k: v for k, v in metrics.items() if k in ("accuracy",)}

  return loss


def segment_end(segments_BxL, mask_BxL):
  """Index of the last token of each row's FIRST sequence (segment 1, or the whole row when
  rows are not packed)."""
  first = segments_BxL == 1 if segments_BxL is not None else mask_BxL.astype(bool)
  return jnp.maximum(jnp.sum(first, axis=1).astype(jnp.int32) - 1, 0)


def xdkt_objective(
  module: XDKTRec,
  *,
  kind: str,
  num_negatives: int,
  align_weight: float,
  temperature: float,
  align_items: int,
  adversarial_lambda: float = 1.0,
  source_weight: float = 0.0,
):
  """loss_fn(params, batch, rng, consts) -> (loss, metrics) for steps.make_train_step:

    L = L_f(h') + λ·L_align + μ·L_f(z)

  The last term (μ = `source_weight`) asks the source side ALONE to predict every target item
  of the user (z_u · e_n, full softmax): the EMCDR idea — the source view must map onto target
  taste — as a training signal at every position, not only at the few early positions where
  the fused state depends on z most."""

  def loss(params, batch, rng, consts):
    TRACE_COUNTS["loss"] += 1
    k_drop, k_neg, k_align, k_drop2 = jax.random.split(rng, 4)
    variables = model_variables(params, consts)
    seg, mask = batch.get("segments"), batch["mask"]
    h_fused, items, h, z, has = module.apply(
      variables,
      batch["inputs"],
      mask,
      seg_users_BxS=batch["seg_users"],
      seg_index_BxL=batch["seg_index"],
      segments_BxL=seg,
      positions_BxL=batch.get("positions"),
      deterministic=False,
      rngs={"dropout": k_drop},
      method=XDKTRec.forward,
    )
    example = batch["example_mask"].astype(jnp.float32)
    w = mask.astype(jnp.float32) * example[:, None]
    l_f, metrics = losses.transfer_loss(
      user_repr_BxD=h_fused,
      item_emb_NxD=items,
      target_B=batch["targets"],
      weights_B=w,
      kind=kind,
      rng=k_neg,
      num_negatives=num_negatives,
    )
    out = {"accuracy": metrics["accuracy"], "l_f": l_f}
    total = l_f
    if source_weight > 0:
      idx = jnp.clip(batch["seg_index"], 0, z.shape[1] - 1)
      z_tok = jnp.take_along_axis(z, idx[..., None], axis=1)
      w_src = w * jnp.take_along_axis(has, idx, axis=1)
      l_src, _ = losses.transfer_loss(
        user_repr_BxD=z_tok,
        item_emb_NxD=items,
        target_B=batch["targets"],
        weights_B=w_src,
        kind=kind,
        rng=k_neg,
        num_negatives=num_negatives,
      )
      out["l_source"] = l_src
      total = total + source_weight * l_src
    l_align = jnp.zeros((), jnp.float32)
    if module.align == "infonce":
      end = segment_end(seg, mask)
      b = jnp.take_along_axis(h, end[:, None, None], axis=1)[:, 0]
      l_align = losses.info_nce(
        a_BxD=z[:, 0], b_BxD=b, temperature=temperature, weights_B=has[:, 0] * example
      )
    elif module.align in ITEM_ALIGNS:
      l_align, m = module.apply(
        variables,
        k_align,
        align_items,
        lam=adversarial_lambda,
        deterministic=False,
        rngs={"dropout": k_drop2},
        method=XDKTRec.item_alignment,
      )
      out.update(m)
    out["l_align"] = l_align
    return total + align_weight * l_align, out

  return loss
