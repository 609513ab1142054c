"""train/trainer.py, the one trainer of every stage: it must compute exactly what the engine's
parts compute when assembled by hand, resume from its checkpoint to the same parameters as a
straight run, and stop on a SIGTERM request with one line naming the stage."""

import os
import signal

import jax
import numpy as np
import pytest

import test_train_harness as harness
from xdkt_jax import stopping
from xdkt_jax.train import checkpoint as ckpt_lib
from xdkt_jax.train import loop as loop_lib
from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train import trainer as trainer_lib


def test_warmup_rule():
  assert trainer_lib.warmup_steps(-1, 100) == 10
  assert trainer_lib.warmup_steps(30, 100) == 30
  assert trainer_lib.warmup_steps(30, 20) == 19  # kept below the step count
  assert trainer_lib.warmup_steps(5, 0) == 0


def _build(cfg, mesh, mngr=None):
  return trainer_lib.build(
    harness.toy_init_fn(),
    harness.toy_loss_fn,
    dict(cfg.optim),
    init_key=jax.random.key(cfg.train.seed),
    mesh=mesh,
    rules=cfg.rules,
    loop_key=jax.random.key(cfg.train.seed + 1),
    ckpt_mngr=mngr,
    log_lr=False,
  )


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def test_equals_the_engine_assembled_by_hand():
  cfg = harness.toy_config(steps=6)
  mesh = mesh_lib.make_mesh(cfg.mesh)
  _, _, init_state, step = harness.build(cfg, mesh)
  by_hand = loop_lib.train_loop(
    state=init_state(),
    train_step=step,
    data=loop_lib.StepIndexedData(harness.toy_batch),
    rng=jax.random.key(cfg.train.seed + 1),
    total_steps=6,
    batch_sharding=mesh_lib.batch_sharding(mesh),
    log_every=1,
    progress=False,
  )
  trainer = _build(cfg, mesh)
  got = trainer.run(
    loop_lib.StepIndexedData(harness.toy_batch), total_steps=6, stage="toy", log_every=1
  )
  assert int(got.step) == 6 and trainer.state is got.state
  for a, b in zip(_params(by_hand.state), _params(got.state)):
    np.testing.assert_array_equal(a, b)


def test_resumes_from_its_checkpoint_to_the_straight_run(tmp_path):
  cfg = harness.toy_config(steps=8, every=4)
  mesh = mesh_lib.make_mesh(cfg.mesh)
  straight = _build(cfg, mesh)
  straight.run(loop_lib.StepIndexedData(harness.toy_batch), total_steps=8, stage="toy")

  mngr = ckpt_lib.make_manager(tmp_path / "ckpt", cfg.ckpt)
  first = _build(cfg, mesh, mngr)
  assert first.resumed_from == "scratch"
  first.run(loop_lib.StepIndexedData(harness.toy_batch), total_steps=4, stage="toy")
  mngr.wait_until_finished()
  mngr.close()

  mngr = ckpt_lib.make_manager(tmp_path / "ckpt", cfg.ckpt)
  second = _build(cfg, mesh, mngr)
  assert second.resumed_from == "workdir" and int(second.state.step) == 4
  data = loop_lib.StepIndexedData(harness.toy_batch)
  data.set_state(second.data_position)
  second.run(data, total_steps=8, stage="toy")
  mngr.close()
  for a, b in zip(_params(straight.state), _params(second.state)):
    np.testing.assert_array_equal(a, b)
  # `fresh` rebuilds the starting state, whatever was restored
  for a, b in zip(_params(second.fresh()), _params(_build(cfg, mesh).state)):
    np.testing.assert_array_equal(a, b)


def test_a_sigterm_is_one_line_naming_the_stage_after_a_checkpoint(tmp_path):
  cfg = harness.toy_config(steps=8, every=100)
  mesh = mesh_lib.make_mesh(cfg.mesh)
  mngr = ckpt_lib.make_manager(tmp_path / "ckpt", cfg.ckpt)
  trainer = _build(cfg, mesh, mngr)

  def batch_at(step):
    if step == 2:
      os.kill(os.getpid(), signal.SIGTERM)  # the loop's handler turns it into a stop
    return harness.toy_batch(step)

  with pytest.raises(
    stopping.Preempted,
    match=r"^adapt: stopped at step 3 on SIGTERM; "
    "checkpoint saved",
  ):
    trainer.run(loop_lib.StepIndexedData(batch_at), total_steps=8, stage="adapt")
  mngr.wait_until_finished()
  assert mngr.latest_step() == 3
  mngr.close()
