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
from xdkt_jax.train import state as state_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from xdkt_jax.train import optim as optim_lib  # pylint: disable=g-import-not-at-top,wrong-import-position


def _mesh():
  return mesh_lib.make_mesh({"data": 1, "fsdp": 1, "model": 1}, devices=jax.devices()[:1])


def _deterministic_loss(params, batch, rng):
  del rng
  logits = harness.ToyModel().apply({"params": params}, batch["tokens"], train=False)
  return optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean(), {}


def test_frozen_params_stay_bitwise_unchanged():
  cfg = harness.toy_config(freeze=["^wi/", "^embedding$"])
  _, history, _ = harness.train_on_mesh(
    _mesh(),
    harness.toy_init_fn(),
    harness.toy_loss_fn,
    cfg.optim,
    [harness.toy_batch(s) for s in range(3)],
    cfg.rules,
  )
  before, after = history[0], history[-1]
  for path in (("wi", "kernel"), ("wi", "bias"), ("embedding",)):
    a = before
    b = after
    for k in path:
      a, b = a[k], b[k]
    assert np.array_equal(a, b), path
  assert not np.array_equal(before["wo"]["kernel"], after["wo"]["kernel"])
  assert not np.array_equal(before["head"]["kernel"], after["head"]["kernel"])


def test_stop_frozen_gradients_same_trainable_grads_and_no_frozen_backward():
  """The wrapper changes cost, not training: trainable grads equal the plain loss's, frozen
  grads are exactly zero, and with everything below the head frozen the compiled gradient
  does fewer FLOPs (XLA pruned the frozen backward)."""
  init = harness.toy_init_fn()
  params = jax.device_get(state_lib.unbox(init(jax.random.PRNGKey(0)))["params"])
  batch = harness.toy_batch(0)
  freeze = ["^wi/", "^embedding$", "^wo/"]
  plain = lambda p: _deterministic_loss(p, batch, None)[0]
  wrapped_fn = optim_lib.stop_frozen_gradients(_deterministic_loss, freeze)
  wrapped = lambda p: wrapped_fn(p, batch, None)[0]
  assert float(plain(params)) == float(wrapped(params))
  g0, g1 = jax.grad(plain)(params), jax.grad(wrapped)(params)
  labels = optim_lib.freeze_labels_fn(freeze)(params)
  for (path, a), b, lab in zip(
    jax.tree_util.tree_leaves_with_path(g0),
    jax.tree_util.tree_leaves(g1),
    jax.tree_util.tree_leaves(labels),
  ):
    if lab == "frozen":
      assert not np.any(np.asarray(b)), path
    else:
      np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=str(path))
  assert any(lab == "frozen" for lab in jax.tree_util.tree_leaves(labels))
  flops = lambda f: jax.jit(jax.grad(f)).lower(params).compile().cost_analysis()
  c0, c1 = flops(plain), flops(wrapped)
  c0, c1 = (c[0] if isinstance(c, list) else c for c in (c0, c1))
  assert c1["flops"] < c0["flops"]
  assert optim_lib.stop_frozen_gradients(_deterministic_loss, []) is _deterministic_loss


def test_freeze_regex_that_matches_nothing_is_an_error():
  params = {"wi": {"kernel": jnp.ones((2, 2))}}
  with pytest.raises(ValueError, match="matches no parameter"):
    optim_lib.make_optimizer(
      ConfigDict({"lr": 1.0, "schedule": "constant", "freeze": ["^encoder/layers_0/"]}), params
    )


@pytest.mark.parametrize(
  "no_decay,decayed",
  [
    (["bias$", "scale$"], {"dense/kernel", "embed/embedding"}),
    (["bias$", "scale$", "embedding$"], {"dense/kernel"}),
  ],
)
def test_weight_decay_mask(no_decay, decayed):
  params = {
    "dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))},
    "norm": {"scale": jnp.ones((2,))},
    "embed": {"embedding": jnp.ones((4, 2))},
  }
  lr, wd = 0.1, 0.5
  tx = optim_lib.make_optimizer(
    ConfigDict({"lr": lr, "schedule": "constant", "weight_decay": wd, "no_decay": no_decay}), params
  )
  zeros = jax.tree.map(jnp.zeros_like, params)  # Adam's own step is then 0.
  updates, _ = tx.update(zeros, tx.init(params), params)
  for path, u in jax.tree_util.tree_flatten_with_path(updates)[0]:
    name = optim_lib.path_str(path)
    expected = -lr * wd if name in decayed else 0.0
    np.testing.assert_allclose(np.asarray(u), expected, rtol=1e-6, err_msg=name)


def test_grad_accumulation_equals_one_big_batch():
  big = harness.toy_batch(0, batch_size=16)
  micro = [jax.tree.map(lambda x, i=i: x[4 * i : 4 * (i + 1)], big) for i in range(4)]
  init_fn = harness.toy_init_fn()
  # Constant lr without warmup: a warmup starting at 0 would make the one
  # compared update a no-op.
  common = dict(clip_norm=0.5, schedule="constant", warmup_steps=0)
  one_cfg = harness.toy_config(**common)
  accum_cfg = harness.toy_config(grad_accum=4, **common)
  _, (_, p_big), _ = harness.train_on_mesh(
    _mesh(), init_fn, _deterministic_loss, one_cfg.optim, [big]
  )
  _, accum_history, state = harness.train_on_mesh(
    _mesh(), init_fn, _deterministic_loss, accum_cfg.optim, micro
  )
  p_0, p_3, p_4 = accum_history[0], accum_history[3], accum_history[4]
  assert int(state.step) == 4
  # No update until the k-th micro-batch ...
  for a, b in zip(jax.tree.leaves(p_0), jax.tree.leaves(p_3)):
    assert np.array_equal(a, b)
  # ... then the update of the mean gradient, i.e. of the big batch.
  for a, b in zip(jax.tree.leaves(p_big), jax.tree.leaves(p_4)):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p_0), jax.tree.leaves(p_4)))


def test_schedules():
  base = {"lr": 1.0, "warmup_steps": 10, "total_steps": 110, "end_lr_factor": 0.1}
  cos = optim_lib.make_schedule(ConfigDict({**base, "schedule": "cosine"}))
  lin = optim_lib.make_schedule(ConfigDict({**base, "schedule": "linear"}))
  const = optim_lib.make_schedule(ConfigDict({**base, "schedule": "constant"}))
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
    optim_lib.make_schedule(
      ConfigDict({"lr": 1.0, "schedule": "cosine", "warmup_steps": 5, "total_steps": 5})
    )
