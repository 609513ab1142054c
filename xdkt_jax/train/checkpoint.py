"""Orbax checkpointing of the train state plus the data-iterator position.

Layout of a workdir checkpoint (one per saved step):
  <ckpt_dir>/<step>/state/   TrainState (StandardSave; restored onto shardings)
  <ckpt_dir>/<step>/data/    JSON: {'step': ..., 'epoch': ..., iterator state}
Resume order lives in `restore_or_init` and nowhere else.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable

from etils import epath
import jax
import orbax.checkpoint as ocp

from xdkt_jax.train.cfg import cfg_get
from xdkt_jax.train.optim import path_str


def make_manager(directory, ckpt_cfg=None) -> ocp.CheckpointManager:
  """CheckpointManager saving every `every_steps`, keeping `keep`, async.

  Async: the device->host copy happens inside `save`, the file writes in a
  background thread, so training continues (and may donate the state
  buffers) while the checkpoint is written.
  """
  every = int(cfg_get(ckpt_cfg, "every_steps", 1000))
  options = ocp.CheckpointManagerOptions(
    save_interval_steps=every,
    # Explicit predicate: orbax's default policy also saves the *first*
    # step of every run, which would stall step 1 for nothing.  Orbax still
    # adds its multi-host preemption policy next to this predicate.
    should_save_fn=lambda step, last_saved: step % every == 0,
    max_to_keep=int(cfg_get(ckpt_cfg, "keep", 3)),
    enable_async_checkpointing=bool(cfg_get(ckpt_cfg, "async", True)),
    create=True,
  )
  return ocp.CheckpointManager(
    epath.Path(directory).absolute(), options=options, item_names=("state", "data")
  )


def save(
  mngr: ocp.CheckpointManager, step: int, state, data_state=None, *, force: bool = False
) -> bool:
  """Saves if the manager's interval says so (or `force`); returns whether.

  `step` is passed in from the host loop rather than read from
  ``state.step`` so saving never blocks on the step in flight.
  """
  data = {"step": int(step), **(data_state or {})}
  return mngr.save(
    int(step),
    force=force,
    args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data)),
  )


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state):
  """Restores (state, data) at `step` onto the shardings in abstract_state."""
  out = mngr.restore(
    int(step),
    args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
    ),
  )
  return out["state"], dict(out["data"] or {})


@dataclasses.dataclass
class Resumed:
  state: Any
  data: dict  # iterator position; {'step': 0} when starting fresh.
  source: str  # 'workdir' | 'init_from' | 'scratch'


def restore_or_init(
  mngr: ocp.CheckpointManager,
  abstract_state,
  init_state: Callable[[], Any],
  *,
  init_from: str | None = None,
  init_from_map: Callable[[str], str | None] | None = None,
) -> Resumed:
  """THE resume order: workdir checkpoint -> `init_from` -> scratch.

  1. The workdir's own latest checkpoint wins: a preempted or killed run
     continues bit-identically (state, step and data position).
  2. Else `init_from` (another run's checkpoint dir, one step dir, or a
     params-only pytree checkpoint) seeds the *params* of a fresh state:
     optimizer state and step start over, as a new stage of the pipeline
     should.  Only params whose (mapped) path and shape match are loaded.
  3. Else the freshly initialised state.
  """
  latest = mngr.latest_step()
  if latest is not None:
    try:
      state, data = restore(mngr, latest, abstract_state)
    except Exception as e:  # pylint: disable=broad-except  (Orbax / TensorStore / JSON)
      where = os.path.join(os.fspath(mngr.directory), str(latest))
      first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
      raise ValueError(
        f"checkpoint {where} cannot be read ({first}); delete that folder to resume from "
        "the checkpoint before it, or the whole checkpoint folder to start the stage over"
      ) from None
    logging.info("Resumed from workdir checkpoint at step %d.", latest)
    return Resumed(state, data, "workdir")
  state = init_state()
  if init_from:
    params = load_params_from(init_from, state.params, init_from_map)
    return Resumed(state.replace(params=params), {"step": 0}, "init_from")
  return Resumed(state, {"step": 0}, "scratch")


def _pytree_dir(path: epath.Path) -> epath.Path:
  """Finds the pytree directory inside a run / step / pytree checkpoint."""
  if (path / "state").is_dir():
    return path / "state"
  steps = [int(p.name) for p in path.iterdir() if p.name.isdigit()]
  if steps:
    return path / str(max(steps)) / "state"
  return path


def _flatten_meta(tree, prefix=()):
  """{path tuple: leaf metadata} for a nested-dict metadata tree."""
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten_meta(v, prefix + (str(k),)))
    return out
  return {prefix: tree}


def _nest(flat: dict[tuple[str, ...], Any]) -> dict:
  root: dict = {}
  for path, leaf in flat.items():
    node = root
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = leaf
  return root


def load_params_from(init_from, params, name_map=None):
  """Params of `params` overwritten by matching ones from another checkpoint.

  Restores only the matching subset (partial restore), straight onto the
  shardings of `params`, so no full copy ever lands on one device.
  `name_map(our_path) -> their_path | None` re-roots trees, e.g. an LM
  pre-training run's params under our 'encoder/' submodule.
  """
  directory = _pytree_dir(epath.Path(os.fspath(init_from)).absolute())
  ckptr = ocp.PyTreeCheckpointer()
  meta = ckptr.metadata(directory)
  meta = getattr(meta, "tree", meta)
  if hasattr(meta, "item_metadata"):
    meta = meta.item_metadata
  meta = getattr(meta, "tree", meta)
  root = ("params",) if isinstance(meta, dict) and isinstance(meta.get("params"), dict) else ()
  theirs = _flatten_meta(meta)

  ours = jax.tree_util.tree_flatten_with_path(params)
  target, picked = {}, {}
  for path, leaf in ours[0]:
    name = path_str(path)
    src = name_map(name) if name_map else name
    if src is None:
      continue
    key = root + tuple(src.split("/"))
    hit = theirs.get(key)
    if hit is None or tuple(getattr(hit, "shape", ())) != tuple(leaf.shape):
      continue
    target[key] = jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    picked[name] = key
  if not picked:
    raise ValueError(f"init_from={init_from}: no parameter matched by path and shape.")
  logging.info("init_from %s: loading %d/%d param arrays.", init_from, len(picked), len(ours[0]))
  item = _nest(target)
  restored = ckptr.restore(
    directory,
    args=ocp.args.PyTreeRestore(
      item=item,
      restore_args=ocp.checkpoint_utils.construct_restore_args(item),
      partial_restore=True,
    ),
  )
  flat_restored = _flatten_meta(restored)

  def pick(path, leaf):
    key = picked.get(path_str(path))
    return leaf if key is None else flat_restored[key]

  return jax.tree_util.tree_map_with_path(pick, params)
