"""Optimizer from config: freezing, decay mask, grad accumulation, schedules."""

import os
import sys

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict
import numpy as np
import optax
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_train_harness as harness  # pylint: disable=g-import-not-at-top,wrong-import-position

from xdkt_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from xdkt_jax.train import optim as optim_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


def _mesh():
  return mesh_lib.make_mesh({'data': 1, 'fsdp': 1, 'model': 1},
                            devices=jax.devices()[:1])


def _deterministic_loss(params, batch, rng):
  del rng
  logits = harness.ToyModel().apply({'params': params}, batch['tokens'],
                                    train=False)
  return optax.softmax_cross_entropy_with_integer_labels(
      logits, batch['labels']).mean(), {}


def test_frozen_params_stay_bitwise_unchanged():
  cfg = harness.toy_config(freeze=['^wi/', '^embedding$'])
  _, history, _ = harness.train_on_mesh(
      _mesh(), harness.toy_init_fn(), harness.toy_loss_fn, cfg.optim,
      [harness.toy_batch(s) for s in range(3)], cfg.rules)
  before, after = history[0], history[-1]
  for path in (('wi', 'kernel'), ('wi', 'bias'), ('embedding',)):
    a = before
    b = after
    for k in path:
      a, b = a[k], b[k]
    assert np.array_equal(a, b), path
  assert not np.array_equal(before['wo']['kernel'], after['wo']['kernel'])
  assert not np.array_equal(before['head']['kernel'], after['head']['kernel'])


def test_freeze_regex_that_matches_nothing_is_an_error():
  params = {'wi': {'kernel': jnp.ones((2, 2))}}
  with pytest.raises(ValueError, match='matches no parameter'):
    optim_lib.make_optimizer(ConfigDict({'lr': 1.0, 'schedule': 'constant',
                                         'freeze': ['^encoder/layers_0/']}),
                             params)


@pytest.mark.parametrize('no_decay,decayed', [
    (['bias$', 'scale$'], {'dense/kernel', 'embed/embedding'}),
    (['bias$', 'scale$', 'embedding$'], {'dense/kernel'}),
])
def test_weight_decay_mask(no_decay, decayed):
  params = {'dense': {'kernel': jnp.ones((3, 2)), 'bias': jnp.ones((2,))},
            'norm': {'scale': jnp.ones((2,))},
            'embed': {'embedding': jnp.ones((4, 2))}}
  lr, wd = 0.1, 0.5
  tx = optim_lib.make_optimizer(ConfigDict(
      {'lr': lr, 'schedule': 'constant', 'weight_decay': wd,
       'no_decay': no_decay}), params)
  zeros = jax.tree.map(jnp.zeros_like, params)  # Adam's own step is then 0.
  updates, _ = tx.update(zeros, tx.init(params), params)
  for path, u in jax.tree_util.tree_flatten_with_path(updates)[0]:
    name = optim_lib.path_str(path)
    expected = -lr * wd if name in decayed else 0.0
    np.testing.assert_allclose(np.asarray(u), expected, rtol=1e-6,
                               err_msg=name)


def test_grad_accumulation_equals_one_big_batch():
  big = harness.toy_batch(0, batch_size=16)
  micro = [jax.tree.map(lambda x, i=i: x[4 * i:4 * (i + 1)], big)
           for i in range(4)]
  init_fn = harness.toy_init_fn()
  # Constant lr without warmup: a warmup starting at 0 would make the one
  # compared update a no-op.
  common = dict(clip_norm=0.5, schedule='constant', warmup_steps=0)
  one_cfg = harness.toy_config(**common)
  accum_cfg = harness.toy_config(grad_accum=4, **common)
  _, (_, p_big), _ = harness.train_on_mesh(
      _mesh(), init_fn, _deterministic_loss, one_cfg.optim, [big])
  _, accum_history, state = harness.train_on_mesh(
      _mesh(), init_fn, _deterministic_loss, accum_cfg.optim, micro)
  p_0, p_3, p_4 = accum_history[0], accum_history[3], accum_history[4]
  assert int(state.step) == 4
  # No update until the k-th micro-batch ...
  for a, b in zip(jax.tree.leaves(p_0), jax.tree.leaves(p_3)):
    assert np.array_equal(a, b)
  # ... then the update of the mean gradient, i.e. of the big batch.
  for a, b in zip(jax.tree.leaves(p_big), jax.tree.leaves(p_4)):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)
  assert any(not np.array_equal(a, b)
             for a, b in zip(jax.tree.leaves(p_0), jax.tree.leaves(p_4)))


def test_schedules():
  base = {'lr': 1.0, 'warmup_steps': 10, 'total_steps': 110,
          'end_lr_factor': 0.1}
  cos = optim_lib.make_schedule(ConfigDict({**base, 'schedule': 'cosine'}))
  lin = optim_lib.make_schedule(ConfigDict({**base, 'schedule': 'linear'}))
  const = optim_lib.make_schedule(ConfigDict({**base, 'schedule': 'constant'}))
  for s in (cos, lin, const):
    np.testing.assert_allclose(s(0), 0.0)
    np.testing.assert_allclose(s(5), 0.5, rtol=1e-6)
    np.testing.assert_allclose(s(10), 1.0, rtol=1e-6)
  np.testing.assert_allclose(cos(60), 0.1 + 0.9 * 0.5, rtol=1e-5)  # halfway
  np.testing.assert_allclose(cos(110), 0.1, rtol=1e-5)
  np.testing.assert_allclose(lin(60), 0.55, rtol=1e-5)
  np.testing.assert_allclose(lin(110), 0.1, rtol=1e-5)
  np.testing.assert_allclose(const(1000), 1.0)
  with pytest.raises(ValueError):
    optim_lib.make_schedule(ConfigDict({'lr': 1.0, 'schedule': 'cosine',
                                        'warmup_steps': 5, 'total_steps': 5}))
