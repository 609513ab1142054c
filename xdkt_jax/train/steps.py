"""Generic jitted train / eval step builders.

Every stage of the method (LM pre-train, adaptation, knowledge head,
recommenders) supplies only a pure loss function; the step, its shardings,
donation and per-step randomness live here once.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from xdkt_jax.train import mesh as mesh_lib

# loss_fn(params, batch, rng) -> (loss, metrics)            when state.extra is None
# loss_fn(params, batch, rng, extra) -> (loss, (metrics, new_extra))  with mutable collections
# loss_fn(params, batch, rng, consts) -> (loss, metrics)    with constants (consts_sharding)
LossFn = Callable[..., Any]


@contextlib.contextmanager
def mesh_context(mesh, rules, *, global_mesh: bool = False):
  """Logical rules (and optionally the mesh) visible while tracing.

  With `global_mesh`, models' ``nn.with_logical_constraint`` calls on
  activations become real sharding constraints; without it they are no-ops
  and GSPMD propagates shardings from params and batch alone.  Off by
  default: under a global mesh, linen's ``self.param`` shape check re-runs
  ``DenseGeneral``'s kernel init, which unboxes the *flat 2-D* kernel with
  the 3-D logical names and fails (seen with the encoder's q/k/v
  projections, flax 0.12).  ``jax.set_mesh`` refuses to run inside jit, so
  this wraps the *call* rather than the traced function.
  """
  rules = mesh_lib.rules_from_config(rules)
  with contextlib.ExitStack() as stack:
    if global_mesh:
      set_mesh = getattr(jax, "set_mesh", None) or getattr(jax.sharding, "use_mesh", None)
      stack.enter_context(set_mesh(mesh) if set_mesh else mesh)
    stack.enter_context(nn.logical_axis_rules(rules))
    yield


def _bind_mesh(jitted, mesh, rules, global_mesh):
  """Calls `jitted` inside mesh_context; `.jitted` exposes lower()/caches."""

  @functools.wraps(jitted)
  def call(*args):
    with mesh_context(mesh, rules, global_mesh=global_mesh):
      return jitted(*args)

  call.jitted = jitted
  return call


def _global_norm(tree):
  tree_lib = getattr(optax, "tree", None)
  if tree_lib is not None and hasattr(tree_lib, "norm"):
    return tree_lib.norm(tree)
  return optax.global_norm(tree)


def make_train_step(
  loss_fn: LossFn,
  optimizer: optax.GradientTransformation,
  *,
  mesh,
  state_sharding,
  batch_sharding,
  rules=None,
  donate: bool = True,
  lr_schedule: Callable[[Any], Any] | None = None,
  grad_accum: int = 1,
  constrain_activations: bool = False,
  consts_sharding=None,
):
  """Returns jitted ``train_step(state, batch, rng) -> (state, metrics)``.

  With `consts_sharding` the step is ``train_step(state, batch, rng, consts)``:
  constants the loss reads (item vectors, every user's source history) come
  as their own argument, sharded as given, never donated, differentiated,
  updated or checkpointed.

  `rng` is the run's base key; the step folds in ``state.step`` so the
  randomness of step t is the same whether or not the run was resumed.
  Metrics are replicated scalars: loss, every metric of loss_fn, grad_norm
  and (given `lr_schedule`) the learning rate.  `constrain_activations`:
  see `mesh_context`.
  """
  replicated = mesh_lib.replicated(mesh)

  def train_step(state, batch, rng, consts=None):
    step_rng = jax.random.fold_in(rng, state.step)
    if consts is not None:
      grad_fn = jax.value_and_grad(lambda p: loss_fn(p, batch, step_rng, consts), has_aux=True)
      (loss, metrics), grads = grad_fn(state.params)
      extra = state.extra
    elif state.extra is None:
      grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
      (loss, metrics), grads = grad_fn(state.params, batch, step_rng)
      extra = None
    else:
      grad_fn = jax.value_and_grad(lambda p: loss_fn(p, batch, step_rng, state.extra), has_aux=True)
      (loss, (metrics, extra)), grads = grad_fn(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, **metrics, "grad_norm": _global_norm(grads)}
    if lr_schedule is not None:
      metrics["lr"] = lr_schedule(state.step // grad_accum)
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, extra=extra)
    return new_state, metrics

  in_shardings = (state_sharding, batch_sharding, replicated)
  if consts_sharding is not None:
    in_shardings += (consts_sharding,)
  jitted = jax.jit(
    train_step,
    in_shardings=in_shardings,
    out_shardings=(state_sharding, replicated),
    donate_argnums=(0,) if donate else (),
  )
  return _bind_mesh(jitted, mesh, rules, constrain_activations)
