"""Train state and abstract, sharded initialisation.

``jax.eval_shape`` gives shapes and logical axes without allocating anything;
from those we derive NamedShardings and run the real init under ``jax.jit``
with ``out_shardings`` -- every array is born on its shard, so a large LM never
sits whole on one device (big_vision / MaxText pattern).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
from flax import struct
import jax
import jax.numpy as jnp
import optax

from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train.optim import path_str


@struct.dataclass
class TrainState:
  """Pure data: no apply_fn / tx inside, so it checkpoints as a plain tree.

  `extra` holds the other mutable variable collections (e.g. batch_stats) as
  a dict, or None when the model has none.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  extra: Any = None


def _is_box(x) -> bool:
  return isinstance(x, nn.meta.AxisMetadata)


def unbox(tree):
  """Strips LogicallyPartitioned boxes without adding sharding constraints.

  ``nn.meta.unbox`` would add a logical constraint when a global mesh is set;
  here the shardings come from jit's out_shardings instead, which also carry
  our divisibility fallback.
  """

  def one(x):
    if isinstance(x, nn.meta.Partitioned):
      return x.unbox(apply_constraint=False)
    return nn.meta.unbox(x)

  return jax.tree.map(lambda x: one(x) if _is_box(x) else x, tree, is_leaf=_is_box)


def opt_state_sharding(abstract_opt_state, params_sharding, abstract_params, mesh):
  """Optimizer-state leaves inherit the sharding of the param they mirror.

  Optax states hold param-shaped trees (Adam mu/nu, MultiSteps accumulators)
  at paths that *end with* the param's path; matching the longest path suffix
  with an equal shape finds the param.  Everything else (counts) replicates.
  Works through multi_transform / masked / MultiSteps without knowing them.
  """
  by_path = {}
  flat_p, _ = jax.tree_util.tree_flatten_with_path(abstract_params)
  flat_s = jax.tree.leaves(params_sharding)
  for (path, leaf), sharding in zip(flat_p, flat_s):
    by_path[tuple(path_str([k]) for k in path)] = (leaf.shape, sharding)

  def pick(path, leaf):
    names = tuple(path_str([k]) for k in path)
    for start in range(len(names)):
      hit = by_path.get(names[start:])
      if hit is not None and hit[0] == leaf.shape:
        return hit[1]
    return mesh_lib.replicated(mesh)

  return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)


def _split_variables(variables):
  variables = dict(variables)
  params = variables.pop("params")
  return params, (variables or None)


def abstract_state_and_sharding(
  init_fn: Callable[[jax.Array], Any],
  optimizer: optax.GradientTransformation,
  rng: jax.Array,
  mesh,
  rules=None,
):
  """Returns (abstract TrainState with .sharding on leaves, state shardings).

  `init_fn(rng)` returns flax variables ({'params': ..., other collections}),
  typically ``lambda r: model.init(r, dummy_batch)``.
  """
  boxed = jax.eval_shape(init_fn, rng)
  var_sharding = mesh_lib.logical_to_sharding(boxed, mesh, rules)
  abstract_vars = unbox(boxed)
  abstract_params, abstract_extra = _split_variables(abstract_vars)
  params_sharding, extra_sharding = _split_variables(var_sharding)
  abstract_opt = jax.eval_shape(optimizer.init, abstract_params)
  state_sharding = TrainState(
    step=mesh_lib.replicated(mesh),
    params=params_sharding,
    opt_state=opt_state_sharding(abstract_opt, params_sharding, abstract_params, mesh),
    extra=extra_sharding,
  )
  abstract = TrainState(
    step=jax.ShapeDtypeStruct((), jnp.int32),
    params=abstract_params,
    opt_state=abstract_opt,
    extra=abstract_extra,
  )
  abstract = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sharding
  )
  return abstract, state_sharding


def create_train_state(
  init_fn: Callable[[jax.Array], Any],
  optimizer: optax.GradientTransformation,
  rng: jax.Array,
  mesh,
  rules=None,
):
  """Initialises a sharded TrainState; returns (state, state_sharding)."""
  _, state_sharding = abstract_state_and_sharding(init_fn, optimizer, rng, mesh, rules)
  return init_train_state(init_fn, optimizer, rng, state_sharding), state_sharding


def init_train_state(init_fn, optimizer, rng, state_sharding):
  """The TrainState born on the given shardings (from abstract_state_and_sharding)."""

  def init(rng):
    params, extra = _split_variables(unbox(init_fn(rng)))
    return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params), extra=extra
    )

  return jax.jit(init, out_shardings=state_sharding)(rng)
