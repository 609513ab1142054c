"""Toy model + a training worker run as a subprocess by the train tests.

Run as a script (``python tests/test_train_harness.py train ...``) it trains
the toy model with the product's trainer (train/trainer.py: mesh, state,
steps, checkpoint, loop).
Subprocesses give the tests real signals (SIGKILL/SIGTERM) and fake device
counts (XLA_FLAGS must be set before jax is imported) without touching the
pytest process, which keeps 1 device.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

if __name__ == "__main__":
  _n = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--devices=")), "1")
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_n}"
  )
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict
import numpy as np
import optax

from xdkt_jax.stopping import Preempted
from xdkt_jax.train import checkpoint as ckpt_lib
from xdkt_jax.train import loop as loop_lib
from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train import optim as optim_lib
from xdkt_jax.train import state as state_lib
from xdkt_jax.train import steps as steps_lib
from xdkt_jax.train import trainer as trainer_lib
from xdkt_jax.train import writers

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
VOCAB, EMBED, MLP, LEN, BATCH = 32, 16, 32, 8, 16


def _part(init, axes):
  return nn.with_logical_partitioning(init, axes)


class ToyModel(nn.Module):
  """Embedding -> 2-layer MLP -> LayerNorm -> vocab logits, logically named."""

  @nn.compact
  def __call__(self, tokens_BxL, *, train: bool = True):
    table = self.param(
      "embedding", _part(nn.initializers.normal(1.0), ("vocab", "embed")), (VOCAB, EMBED)
    )
    h = table[tokens_BxL].mean(axis=1)
    h = nn.Dense(
      MLP,
      name="wi",
      kernel_init=_part(nn.initializers.lecun_normal(), ("embed", "mlp")),
      bias_init=_part(nn.initializers.zeros, ("mlp",)),
    )(h)
    h = nn.Dropout(0.1, deterministic=not train)(nn.gelu(h))
    h = nn.Dense(
      EMBED,
      name="wo",
      kernel_init=_part(nn.initializers.lecun_normal(), ("mlp", "embed")),
      bias_init=_part(nn.initializers.zeros, ("embed",)),
    )(h)
    h = nn.LayerNorm(
      name="norm",
      scale_init=_part(nn.initializers.ones, ("embed",)),
      bias_init=_part(nn.initializers.zeros, ("embed",)),
    )(h)
    return nn.Dense(
      VOCAB,
      name="head",
      kernel_init=_part(nn.initializers.lecun_normal(), ("embed", "vocab")),
      use_bias=False,
    )(h)


def toy_init_fn(model=None):
  model = model or ToyModel()
  return lambda rng: model.init(rng, jnp.zeros((2, LEN), jnp.int32), train=False)


def toy_loss_fn(params, batch, rng):
  logits = ToyModel().apply({"params": params}, batch["tokens"], rngs={"dropout": rng})
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean()
  return loss, {"accuracy": (logits.argmax(-1) == batch["labels"]).mean()}


def toy_batch(step: int, batch_size: int = BATCH):
  rng = np.random.default_rng(1000 + step)
  tokens = rng.integers(0, VOCAB, (batch_size, LEN)).astype(np.int32)
  return {"tokens": tokens, "labels": (tokens.sum(1) % VOCAB).astype(np.int32)}


def toy_config(steps=8, every=4, **optim):
  return ConfigDict(
    {
      "mesh": {"data": -1, "fsdp": 1, "model": 1},
      "rules": [list(r) for r in mesh_lib.DEFAULT_RULES],
      "optim": {
        "name": "adamw",
        "lr": 1e-2,
        "b1": 0.9,
        "b2": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "warmup_steps": 2,
        "schedule": "cosine",
        "total_steps": steps,
        "clip_norm": 1.0,
        "grad_accum": 1,
        "freeze": [],
        "no_decay": ["bias$", "scale$"],
        **optim,
      },
      "ckpt": {"every_steps": every, "keep": 3, "async": True},
      "train": {"steps": steps, "log_every": 1, "seed": 0},
    }
  )


def build(cfg, mesh):
  """Optimizer, state and jitted step for the toy model on `mesh`."""
  init_fn = toy_init_fn()
  rng = jax.random.key(cfg.train.seed)
  abstract_vars = jax.eval_shape(init_fn, rng)
  optimizer = optim_lib.make_optimizer(cfg.optim, state_lib.unbox(abstract_vars)["params"])
  abstract, state_sharding = state_lib.abstract_state_and_sharding(
    init_fn, optimizer, rng, mesh, cfg.rules
  )
  init_state = lambda: state_lib.create_train_state(init_fn, optimizer, rng, mesh, cfg.rules)[0]
  step = steps_lib.make_train_step(
    toy_loss_fn,
    optimizer,
    mesh=mesh,
    state_sharding=state_sharding,
    batch_sharding=mesh_lib.batch_sharding(mesh),
    rules=cfg.rules,
  )
  return optimizer, abstract, init_state, step


def run_training(workdir, cfg, *, kill_after=None, step_sleep=0.0):
  """The product's trainer (train/trainer.py), exactly as a stage calls it, on the toy."""
  mesh = mesh_lib.make_mesh(cfg.mesh)
  mngr = ckpt_lib.make_manager(os.path.join(workdir, "ckpt"), cfg.ckpt)
  trainer = trainer_lib.build(
    toy_init_fn(),
    toy_loss_fn,
    cfg.optim.to_dict(),
    init_key=jax.random.key(cfg.train.seed),
    loop_key=jax.random.key(cfg.train.seed + 1),
    mesh=mesh,
    rules=cfg.rules,
    ckpt_mngr=mngr,
  )
  print(
    json.dumps(
      {"event": "resumed", "source": trainer.resumed_from, "step": int(trainer.state.step)}
    ),
    flush=True,
  )
  data = loop_lib.StepIndexedData(toy_batch, steps_per_epoch=4)
  data.set_state(trainer.data_position)

  if kill_after is not None or step_sleep:
    calls = {"n": int(trainer.state.step)}
    product_step = trainer.step_fn

    def step_with_hooks(state, batch, rng):
      if kill_after is not None and calls["n"] >= kill_after:
        # The checkpoint of step `kill_after` was handed to orbax before this
        # call; wait for the write, then die without any cleanup.
        mngr.wait_until_finished()
        os.kill(os.getpid(), signal.SIGKILL)
      if step_sleep:
        time.sleep(step_sleep)
      calls["n"] += 1
      print(json.dumps({"event": "step", "step": calls["n"]}), flush=True)
      return product_step(state, batch, rng)

    trainer.step_fn = step_with_hooks

  preempted = False
  with writers.MetricWriter(os.path.join(workdir, "logs")) as writer:
    try:
      trainer.run(
        data,
        total_steps=cfg.train.steps,
        stage="toy",
        writer=writer,
        log_every=cfg.train.log_every,
        progress=False,
      )
    except Preempted:
      preempted = True  # the trainer saved the checkpoint first
  mngr.close()
  step = int(jax.device_get(trainer.state.step))
  params = jax.device_get(trainer.state.params)
  flat = {
    optim_lib.path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
  }
  np.savez(os.path.join(workdir, f"params_{step}.npz"), **flat)
  print(json.dumps({"event": "done", "step": step, "preempted": preempted}), flush=True)
  return loop_lib.LoopResult(state=trainer.state, step=step, preempted=preempted, metrics={})


def train_on_mesh(mesh, init_fn, loss_fn, optim_cfg, batches, rules=None):
  """Runs len(batches) steps on `mesh`.

  Returns (losses, host params before the first and after every step, state).
  """
  rng = jax.random.key(0)
  abstract_params = state_lib.unbox(jax.eval_shape(init_fn, rng))["params"]
  optimizer = optim_lib.make_optimizer(optim_cfg, abstract_params)
  state, sharding = state_lib.create_train_state(init_fn, optimizer, rng, mesh, rules)
  step = steps_lib.make_train_step(
    loss_fn,
    optimizer,
    mesh=mesh,
    state_sharding=sharding,
    batch_sharding=mesh_lib.batch_sharding(mesh),
    rules=rules,
  )
  losses, history = [], [jax.device_get(state.params)]
  for batch in batches:
    batch = mesh_lib.shard_batch(batch, mesh_lib.batch_sharding(mesh))
    state, metrics = step(state, batch, jax.random.key(1))
    jax.block_until_ready((state, metrics))  # multi-device CPU: see loop.py
    losses.append(float(metrics["loss"]))
    history.append(jax.device_get(state.params))
  return losses, history, state


def compare_meshes(mesh_cfg, init_fn, loss_fn, optim_cfg, batches, rules=None):
  """Same steps on `mesh_cfg` (all devices) and on one device."""
  big = mesh_lib.make_mesh(mesh_cfg)
  one = mesh_lib.make_mesh({"data": 1, "fsdp": 1, "model": 1}, devices=jax.devices()[:1])
  losses_b, params_b, state_b = train_on_mesh(big, init_fn, loss_fn, optim_cfg, batches, rules)
  losses_1, params_1, _ = train_on_mesh(one, init_fn, loss_fn, optim_cfg, batches, rules)
  diffs = jax.tree.leaves(
    jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), params_b[-1], params_1[-1])
  )
  specs = {
    optim_lib.path_str(p): [
      str(s.sharding.spec),
      list(s.addressable_shards[0].data.shape),
      list(s.shape),
    ]
    for p, s in jax.tree_util.tree_flatten_with_path(state_b.params)[0]
  }
  return {
    "devices": jax.device_count(),
    "losses_mesh": losses_b,
    "losses_one": losses_1,
    "max_param_diff": max(diffs),
    "param_specs": specs,
  }


def _shard_check(which):
  """8 devices vs 1: the toy on (data=4, fsdp=2), or the real encoder."""
  cfg = toy_config()
  out = {}
  if which == "toy":
    out["toy"] = compare_meshes(
      {"data": 4, "fsdp": 2, "model": 1},
      toy_init_fn(),
      toy_loss_fn,
      cfg.optim,
      [toy_batch(s) for s in range(3)],
      cfg.rules,
    )
    print("RESULT " + json.dumps(out), flush=True)
    return
  try:
    from xdkt_jax.models import encoder as enc  # pylint: disable=g-import-not-at-top

    ecfg = enc.EncoderConfig.tiny()
    model = enc.LanguageModel(ecfg)
  except Exception as e:  # pylint: disable=broad-except
    out["encoder"] = {"skipped": repr(e)}
  else:

    def init_fn(rng):
      ids = jnp.zeros((2, 16), jnp.int32)
      return model.init(rng, ids, jnp.ones_like(ids))

    def loss_fn(params, batch, rng):
      logits = model.apply(
        {"params": params}, batch["ids"], batch["mask"], deterministic=False, rngs={"dropout": rng}
      )
      nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["ids"])
      return (nll * batch["mask"]).sum() / batch["mask"].sum(), {}

    def batch(s):
      r = np.random.default_rng(s)
      ids = r.integers(1, ecfg.vocab_size, (8, 16)).astype(np.int32)
      mask = (np.arange(16)[None] < r.integers(4, 17, (8, 1))).astype(np.int32)
      return {"ids": ids * mask, "mask": mask}

    # model=2 too: vocab 101 does not split in 2, exercising the fallback.
    out["encoder"] = compare_meshes(
      {"data": 2, "fsdp": 2, "model": 2},
      init_fn,
      loss_fn,
      cfg.optim,
      [batch(s) for s in range(2)],
      cfg.rules,
    )
  print("RESULT " + json.dumps(out), flush=True)


def spawn(args, **kw):
  """Starts this file as a worker subprocess (stdout: JSON lines)."""
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  kw.setdefault("stderr", subprocess.PIPE)
  return subprocess.Popen(
    [sys.executable, HERE, *args], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True, **kw
  )


def load_params(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def _main():
  parser = argparse.ArgumentParser()
  parser.add_argument("mode", choices=["train", "shard_check"])
  parser.add_argument("--devices", default="1")
  parser.add_argument("--which", default="toy")
  parser.add_argument("--workdir")
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--every", type=int, default=4)
  parser.add_argument("--kill_after", type=int, default=None)
  parser.add_argument("--step_sleep", type=float, default=0.0)
  args = parser.parse_args()
  if args.mode == "shard_check":
    return _shard_check(args.which)
  cfg = toy_config(steps=args.steps, every=args.every)
  result = run_training(args.workdir, cfg, kill_after=args.kill_after, step_sleep=args.step_sleep)
  sys.exit(0 if (result.step == args.steps or result.preempted) else 1)


# ---- fast in-process checks of the small pure helpers -----------------------


def test_mesh_shape_fills_minus_one():
  assert mesh_lib.mesh_shape({"data": -1, "fsdp": 2, "model": 1}, 8) == (4, 2, 1)
  assert mesh_lib.mesh_shape({"data": 1, "fsdp": -1, "model": 2}, 8) == (1, 4, 2)
  try:
    mesh_lib.mesh_shape({"data": 3, "fsdp": -1, "model": 1}, 8)
  except ValueError:
    pass
  else:
    raise AssertionError("3 does not divide 8")


def test_fit_spec_replicates_non_dividing_dims():
  class FakeMesh:
    shape = {"data": 4, "fsdp": 2, "model": 2}

  P = jax.sharding.PartitionSpec
  assert mesh_lib.fit_spec_to_shape(P("fsdp", "model"), (16, 101), FakeMesh) == P("fsdp")
  assert mesh_lib.fit_spec_to_shape(P(("data", "fsdp")), (12,), FakeMesh) == P()
  assert mesh_lib.fit_spec_to_shape(P(("data", "fsdp")), (16, 3), FakeMesh) == P(("data", "fsdp"))


def test_rules_from_config_normalises_lists():
  rules = mesh_lib.rules_from_config([["batch", ["data", "fsdp"]], ["embed", "fsdp"], ["kv", None]])
  assert rules == (("batch", ("data", "fsdp")), ("embed", "fsdp"), ("kv", None))


def test_single_device_state_and_writer(tmp_path):
  cfg = toy_config()
  mesh = mesh_lib.make_mesh(cfg.mesh)
  _, abstract, init_state, train_step = build(cfg, mesh)
  state = init_state()
  assert jax.tree.structure(state) == jax.tree.structure(abstract)
  batch = mesh_lib.shard_batch(toy_batch(0), mesh_lib.batch_sharding(mesh))
  state, metrics = train_step(state, batch, jax.random.key(1))
  assert int(state.step) == 1
  assert set(metrics) == {"loss", "accuracy", "grad_norm"}
  with writers.MetricWriter(str(tmp_path)) as w:
    w.write_scalars(1, jax.device_get(metrics))
    w.write_scalars(2, {"loss": float("nan")})
  rows = writers.read_jsonl(tmp_path / "metrics.jsonl")
  assert rows[0]["step"] == 1 and abs(rows[0]["loss"] - float(metrics["loss"])) < 1e-6
  assert rows[1]["loss"] == "nan"
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))


def test_maybe_initialize_distributed_is_noop_without_multihost():
  assert writers.maybe_initialize_distributed(ConfigDict({"multihost": False})) is False


if __name__ == "__main__":
  _main()
