"""The one trainer every training stage uses: LM pre-training and adaptation (L_p, L_t), the
knowledge head (L_k) and the sequential recommenders (L_f).

A stage supplies what is its own: how to initialise the model (`init_fn`), what to minimise
(`loss_fn`, an objective of losses.py / objectives.py), the optimizer settings, its batches,
and optionally the weights it starts from and a checkpoint folder.  Everything between lives
here once: abstract sharded init, the optimizer, restore-or-init from a checkpoint, the jitted
step, the loop, and the one-line stop on SIGTERM.

  trainer = build(init_fn, loss_fn, opt_cfg, init_key=key, mesh=mesh, rules=rules,
                  start=lambda state, sharding: ..., ckpt_mngr=mngr)
  result = trainer.run(data, total_steps=n, writer=w, stage="adapt")
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from xdkt_jax.stopping import Preempted
from xdkt_jax.train import checkpoint as ckpt_lib
from xdkt_jax.train import loop as loop_lib
from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train import optim as optim_lib
from xdkt_jax.train import state as state_lib
from xdkt_jax.train import steps as steps_lib


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """The run-level settings every trainer reads, taken from the run config once
  (`from_config`) instead of handing the whole config down: where it runs (the mesh and the
  sharding rules), how it checkpoints, its seed, how it reports."""

  mesh: Any  # config.mesh: {data, fsdp, model} axis sizes
  rules: Any  # config.rules: logical axis → mesh axes
  ckpt: Any  # config.ckpt: every_steps, keep, async
  seed: int
  log_every: int
  progress: bool

  @classmethod
  def from_config(cls, config) -> "RunSettings":
    return cls(
      mesh=config.mesh,
      rules=config.rules,
      ckpt=config.ckpt,
      seed=int(config.seed),
      log_every=int(config.get("log_every", 10)),
      progress=bool(config.get("progress", True)),
    )


def warmup_steps(configured: int, steps: int) -> int:
  """The learning-rate warm-up of a stage: `configured` < 0 means a tenth of the steps; any
  other value is kept below the step count (a schedule needs one step past its warm-up)."""
  configured = int(configured)
  return steps // 10 if configured < 0 else min(configured, max(steps - 1, 0))


@dataclasses.dataclass
class Trainer:
  """A built training run, ready to step."""

  state: Any  # TrainState to continue from (fresh or restored)
  step_fn: Callable  # jitted (state, batch, rng) -> (state, metrics)
  batch_sharding: Any
  loop_key: jax.Array  # the run's base key (each step folds in its index)
  fresh: Callable[[], Any]  # the state this run starts from, rebuilt on demand
  mngr: Any = None  # Orbax manager, or None (no checkpoints)
  resumed_from: str = "scratch"  # where `state` came from: scratch | workdir | …
  data_position: dict = dataclasses.field(default_factory=lambda: {"step": 0})
  consts: Any = None  # the constants on their shards (build's `consts`)

  def run(
    self,
    data,
    *,
    total_steps: int,
    stage: str,
    state=None,
    writer=None,
    log_every: int = 50,
    progress: bool = False,
    handle_sigterm: bool = True,
  ):
    """Steps from `state` (default: the trainer's own) up to `total_steps`; keeps the result
    as the trainer's state and returns the loop's result.  A SIGTERM honoured by the loop (the
    checkpoint is saved first) becomes one Preempted line naming the stage."""
    result = loop_lib.train_loop(
      state=self.state if state is None else state,
      train_step=self.step_fn,
      data=data,
      rng=self.loop_key,
      total_steps=total_steps,
      batch_sharding=self.batch_sharding,
      ckpt_mngr=self.mngr,
      writer=writer,
      log_every=log_every,
      progress=progress,
      handle_sigterm=handle_sigterm,
    )
    self.state = result.state
    if result.preempted:
      raise Preempted(
        f"{stage}: stopped at step {result.step} on SIGTERM; checkpoint saved, "
        "rerun the same command to resume"
      )
    return result


def build(
  init_fn: Callable[[jax.Array], Any],
  loss_fn: Callable,
  opt_cfg: dict,
  *,
  init_key: jax.Array,
  mesh,
  rules,
  loop_key: jax.Array | None = None,
  start: Callable[[Any, Any], Any] | None = None,
  ckpt_mngr=None,
  log_lr: bool = True,
  consts: dict | None = None,
) -> Trainer:
  """Builds the run: optimizer from `opt_cfg` (train/optim.py), the state initialised on its
  shards from `init_fn(init_key)`, then `start(state, sharding)` (e.g. pretrained weights put
  in place), restored from `ckpt_mngr` when it holds a checkpoint.  `loop_key` (default
  `init_key`) seeds the steps' randomness.  `log_lr`: the step also reports the learning rate.

  `consts` ({'consts': {name: array}}, the model's 'consts' collection) are what the loss
  reads and never trains: placed once on the shards their logical axes name, passed to every
  step as a non-donated argument (`loss_fn(params, batch, rng, consts)`), kept out of the
  state, so they are neither copied by donation nor checkpointed."""
  consts_sharding = consts_on_device = None
  if consts:
    boxed = jax.eval_shape(init_fn, init_key)
    consts_sharding = mesh_lib.logical_to_sharding({"consts": boxed["consts"]}, mesh, rules)
    consts_on_device = jax.device_put(consts, consts_sharding)
    with_consts = init_fn
    init_fn = lambda rng: {k: v for k, v in with_consts(rng).items() if k != "consts"}
  abstract_params = state_lib.unbox(jax.eval_shape(init_fn, init_key))["params"]
  tx = optim_lib.make_optimizer(opt_cfg, abstract_params)
  abstract, sharding = state_lib.abstract_state_and_sharding(init_fn, tx, init_key, mesh, rules)

  def fresh():
    st = state_lib.init_train_state(init_fn, tx, init_key, sharding)
    return st if start is None else start(st, sharding)

  if ckpt_mngr is not None:
    resumed = ckpt_lib.restore_or_init(ckpt_mngr, abstract, fresh)
    state, source, position = resumed.state, resumed.source, resumed.data
  else:
    state, source, position = fresh(), "scratch", {"step": 0}
  batch_sharding = mesh_lib.batch_sharding(mesh)
  step_fn = steps_lib.make_train_step(
    loss_fn,
    tx,
    mesh=mesh,
    state_sharding=sharding,
    batch_sharding=batch_sharding,
    rules=rules,
    lr_schedule=optim_lib.make_schedule(opt_cfg) if log_lr else None,
    consts_sharding=consts_sharding,
  )
  if consts_on_device is not None:
    with_consts_step = step_fn
    step_fn = lambda state, batch, rng: with_consts_step(state, batch, rng, consts_on_device)
  return Trainer(
    state=state,
    step_fn=step_fn,
    batch_sharding=batch_sharding,
    loop_key=init_key if loop_key is None else loop_key,
    fresh=fresh,
    mngr=ckpt_mngr,
    resumed_from=source,
    data_position=position,
    consts=consts_on_device,
  )
