"""Device mesh and logical-axis sharding rules.

Parameters carry *logical* axis names (``('embed', 'mlp')``); the config maps
them to the physical mesh axes ``data``, ``fsdp`` and ``model``.  Changing the
parallelism layout is therefore a config edit, never a model edit
(MaxText / flax "scale up" pattern).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import flax.linen as nn
import jax

from xdkt_jax.train.cfg import cfg_get
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "model")
# The axes the global batch is split over: pure data parallelism plus FSDP
# (FSDP shards params over `fsdp` *and* feeds each fsdp shard its own data).
BATCH_AXES = ("data", "fsdp")

DEFAULT_RULES = (
  ("batch", ("data", "fsdp")),
  ("length", None),
  ("embed", "fsdp"),
  ("vocab", "model"),
  ("pos", None),
  ("heads", "model"),
  ("kv", None),
  ("mlp", "model"),
  ("items", "model"),
  ("layers", None),
)

Rules = Sequence[tuple[str, Any]]


def mesh_shape(mesh_cfg, num_devices: int) -> tuple[int, ...]:
  """Sizes of (data, fsdp, model); one size of -1 takes the remaining devices."""
  sizes = [int(cfg_get(mesh_cfg, a, -1 if a == "data" else 1)) for a in MESH_AXES]
  fill = [i for i, s in enumerate(sizes) if s == -1]
  if len(fill) > 1:
    raise ValueError(f"At most one mesh axis may be -1, got {sizes}.")
  known = math.prod(s for s in sizes if s != -1)
  if fill:
    if num_devices % known:
      raise ValueError(f"{num_devices} devices do not split over fixed mesh sizes {sizes}.")
    sizes[fill[0]] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(
      f"Mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, have {num_devices}."
    )
  return tuple(sizes)


def make_mesh(mesh_cfg=None, devices: Sequence[Any] | None = None):
  """Builds a ('data', 'fsdp', 'model') mesh with Auto axis types.

  Auto (not Explicit) axes because linen's logical sharding constraints are
  written for the GSPMD-propagation world and fail under Explicit sharding.
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(mesh_cfg, len(devices))
  try:
    from jax.sharding import AxisType  # pylint: disable=g-import-not-at-top

    return jax.make_mesh(
      shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices
    )
  except (ImportError, TypeError):
    # Older jax: no axis_types / devices keyword.  Every axis was Auto then.
    from jax.experimental import mesh_utils  # pylint: disable=g-import-not-at-top

    grid = mesh_utils.create_device_mesh(shape, devices=devices)
    return jax.sharding.Mesh(grid, MESH_AXES)


def rules_from_config(rules=None) -> tuple[tuple[str, Any], ...]:
  """Normalises config rules (lists from ConfigDict/JSON) to hashable tuples."""
  if rules is None:
    return DEFAULT_RULES
  out = []
  for logical, physical in rules:
    if isinstance(physical, (list, tuple)):
      physical = tuple(physical)
    out.append((str(logical), physical))
  return tuple(out)


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) dim over ('data', 'fsdp'); the rest replicated.

  Used as a pytree *prefix*, so one sharding covers every leaf of a batch.
  """
  return NamedSharding(mesh, P(BATCH_AXES))


def _axis_size(mesh, axes) -> int:
  if axes is None:
    return 1
  if isinstance(axes, str):
    axes = (axes,)
  return math.prod(mesh.shape[a] for a in axes)


def fit_spec_to_shape(spec: P, shape: Sequence[int], mesh) -> P:
  """Drops sharding on dims the mesh axes do not divide.

  jit refuses in/out shardings whose mesh axes do not divide the dimension
  (e.g. a vocab of 30522 over model=4, or 3 heads over model=2).  Replicating
  that one dim costs memory but always runs, which is the right default for a
  research codebase where tiny test configs meet big meshes.
  """
  entries = list(spec) + [None] * (len(shape) - len(spec))
  fixed = []
  for dim, axes in zip(shape, entries):
    size = _axis_size(mesh, axes)
    if size > 1 and dim % size:
      logging.info(
        "Replicating dim of size %d: mesh axes %s (size %d) do not divide it.", dim, axes, size
      )
      axes = None
    fixed.append(axes)
  while fixed and fixed[-1] is None:
    fixed.pop()
  return P(*fixed)


def _shape_of(x):
  if isinstance(x, nn.meta.AxisMetadata):
    x = getattr(x, "value", x)
  return tuple(getattr(x, "shape", ()))


def logical_to_sharding(abstract_tree, mesh, rules: Rules | None = None):
  """NamedShardings for a (possibly boxed) abstract tree.

  `abstract_tree` typically comes from ``jax.eval_shape(model.init, ...)`` and
  holds ``nn.LogicallyPartitioned`` boxes; unboxed leaves are replicated.  The
  result has the structure of the *unboxed* tree, i.e. of the arrays the step
  sees.
  """
  rules = rules_from_config(rules)
  is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)
  logical_specs = nn.get_partition_spec(abstract_tree)
  shardings = nn.logical_to_mesh_sharding(logical_specs, mesh, rules)
  shapes = jax.tree.map(_shape_of, abstract_tree, is_leaf=is_box)
  shardings_flat, treedef = jax.tree.flatten(
    shardings, is_leaf=lambda x: isinstance(x, NamedSharding)
  )
  shapes_flat = treedef.flatten_up_to(shapes)
  return treedef.unflatten(
    [
      NamedSharding(mesh, fit_spec_to_shape(s.spec, shape, mesh))
      for s, shape in zip(shardings_flat, shapes_flat)
    ]
  )


def shard_batch(batch, sharding: NamedSharding):
  """Turns this process's slice of the batch into global, sharded arrays.

  ``make_array_from_process_local_data`` is the one code path that is right
  both on one host (local data == global data) and on many hosts (each host
  read its own slice).  Arrays already on device pass through with a reshard.
  """

  def put(x):
    if isinstance(x, jax.Array):
      return x if x.sharding == sharding else jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  return jax.tree.map(put, batch)
