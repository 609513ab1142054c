"""Optax optimizer built from config: AdamW + schedule + clipping + masks.

Param paths are '/'-joined tree keys (``encoder/layers_0/mlp/wi/kernel``);
freeze and no-decay lists are regexes searched in those paths, so which
parameters train is a config edit.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Sequence

import jax
import optax

from xdkt_jax.train.cfg import cfg_get

DEFAULT_NO_DECAY = (r"bias$", r"scale$")  # biases and LayerNorm/RMSNorm gains.


def _key_name(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def path_str(path) -> str:
  """'/'-joined names of a jax key path."""
  return "/".join(_key_name(k) for k in path)


def _matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
  compiled = [re.compile(p) for p in patterns]
  return lambda s: any(c.search(s) for c in compiled)


def tree_paths(tree) -> list[str]:
  return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def make_schedule(opt_cfg) -> optax.Schedule:
  """Warmup (linear from 0) then cosine / linear decay, or constant.

  Schedule steps count *optimizer updates*: with grad_accum=k, MultiSteps
  advances the inner count once per k train steps.
  """
  lr = float(cfg_get(opt_cfg, "lr", 1e-3))
  warmup = int(cfg_get(opt_cfg, "warmup_steps", 0))
  total = int(cfg_get(opt_cfg, "total_steps", 0))
  kind = str(cfg_get(opt_cfg, "schedule", "cosine"))
  end_lr = lr * float(cfg_get(opt_cfg, "end_lr_factor", 0.0))
  if kind == "constant":
    if warmup <= 0:
      return optax.constant_schedule(lr)
    return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup]
    )
  if total <= warmup:
    raise ValueError(f"{kind} schedule needs total_steps ({total}) > warmup_steps ({warmup}).")
  if kind == "cosine":
    return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=total, end_value=end_lr
    )
  if kind == "linear":
    decay = optax.linear_schedule(lr, end_lr, total - warmup)
    if warmup <= 0:
      return decay
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])
  raise ValueError(f"Unknown schedule {kind!r}: cosine | linear | constant.")


def freeze_labels_fn(freeze: Sequence[str]) -> Callable[[Any], Any]:
  """Maps a param tree to 'frozen' / 'trainable' labels by path regex."""
  is_frozen = _matcher(freeze)
  return lambda tree: jax.tree_util.tree_map_with_path(
    lambda p, _: "frozen" if is_frozen(path_str(p)) else "trainable", tree
  )


def stop_frozen_gradients(loss_fn: Callable[..., Any], freeze: Sequence[str]):
  """loss_fn(params, ...) with the frozen params behind `lax.stop_gradient`.

  The optimizer already zeroes their updates (set_to_zero), so training is unchanged; what
  changes is the cost: XLA no longer computes gradients nobody uses.  With the whole encoder
  frozen (an MLM head warm-up) the encoder's backward pass disappears, with the lower layers
  frozen their weight gradients and the backward below them.
  """
  if not freeze:
    return loss_fn
  labels = freeze_labels_fn(freeze)

  def wrapped(params, *args, **kwargs):
    params = jax.tree.map(
      lambda p, lab: jax.lax.stop_gradient(p) if lab == "frozen" else p, params, labels(params)
    )
    return loss_fn(params, *args, **kwargs)

  return wrapped


def decay_mask_fn(no_decay: Sequence[str]) -> Callable[[Any], Any]:
  """True where weight decay applies.

  A callable (not a fixed tree) so it also works on the masked trees that
  multi_transform hands the trainable branch.
  """
  skip = _matcher(no_decay)
  return lambda tree: jax.tree_util.tree_map_with_path(lambda p, _: not skip(path_str(p)), tree)


def make_optimizer(opt_cfg, params) -> optax.GradientTransformation:
  """AdamW with schedule, global-norm clipping, decay mask, freezing, accum.

  Layout (outermost first):
    MultiSteps(k)            -- only when grad_accum > 1
      multi_transform
        trainable: clip_by_global_norm -> adamw(schedule, mask=decay)
        frozen:    set_to_zero   (updates are exactly 0: params stay bitwise)
  Clipping sits inside the trainable branch so frozen grads never count
  towards the global norm.  `params` (real or abstract) is only used to check
  that every freeze regex matches something -- a typo would otherwise train
  the whole model silently.
  """
  name = str(cfg_get(opt_cfg, "name", "adamw"))
  if name != "adamw":
    raise ValueError(f"Only adamw is supported, got {name!r}.")
  schedule = make_schedule(opt_cfg)
  freeze = list(cfg_get(opt_cfg, "freeze", ()))
  no_decay = list(cfg_get(opt_cfg, "no_decay", DEFAULT_NO_DECAY))
  clip = float(cfg_get(opt_cfg, "clip_norm", 0.0))
  accum = int(cfg_get(opt_cfg, "grad_accum", 1))

  paths = tree_paths(params)
  for pattern in freeze:
    if not any(re.search(pattern, p) for p in paths):
      raise ValueError(
        f"freeze regex {pattern!r} matches no parameter; paths look like {paths[:5]}"
      )
  n_frozen = sum(_matcher(freeze)(p) for p in paths) if freeze else 0
  logging.info("Optimizer: %d/%d param arrays frozen.", n_frozen, len(paths))

  trainable = optax.adamw(
    learning_rate=schedule,
    b1=float(cfg_get(opt_cfg, "b1", 0.9)),
    b2=float(cfg_get(opt_cfg, "b2", 0.999)),
    eps=float(cfg_get(opt_cfg, "eps", 1e-8)),
    weight_decay=float(cfg_get(opt_cfg, "weight_decay", 0.0)),
    mask=decay_mask_fn(no_decay),
  )
  if clip > 0:
    trainable = optax.chain(optax.clip_by_global_norm(clip), trainable)
  if freeze:
    tx = optax.multi_transform(
      {"trainable": trainable, "frozen": optax.set_to_zero()}, freeze_labels_fn(freeze)
    )
  else:
    tx = trainable
  if accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accum).gradient_transformation()
  return tx
