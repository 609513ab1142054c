"""Encoder behaviour on tiny random models: masks, pooling, bf16, logical axes, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax.linen as nn
from jax.sharding import AxisType, PartitionSpec as P

from xdkt_jax.models.encoder import LanguageModel, init_params, logical_axes, pool
from xdkt_jax.models.encoder_config import EncoderConfig

FAMILIES = ("bert", "gpt2")


def _batch(cfg, batch=3, length=10, seed=0):
  ids = jax.random.randint(jax.random.key(seed), (batch, length), 1, cfg.vocab_size)
  lengths = jnp.array([length, length - 3, 2])[:batch]
  mask = (jnp.arange(length)[None] < lengths[:, None]).astype(jnp.int32)
  return ids * mask, mask


def _encode(cfg, params, ids, mask, **kw):
  return LanguageModel(cfg).apply({"params": params}, ids, mask, method=LanguageModel.encode, **kw)


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
  cfg = EncoderConfig.tiny(request.param)
  return cfg, init_params(cfg, jax.random.key(0))


def test_shapes(model):
  cfg, params = model
  ids, mask = _batch(cfg)
  logits = LanguageModel(cfg).apply({"params": params}, ids, mask)
  assert logits.shape == (3, 10, cfg.vocab_size) and logits.dtype == jnp.float32
  assert _encode(cfg, params, ids, mask).shape == (3, 10, cfg.hidden_size)


@pytest.mark.parametrize("mode", ["mean", "cls", "last"])
def test_padding_invariance(model, mode):
  """Right-padding more pad tokens leaves every real position, hence the pooled vector, as is."""
  cfg, params = model
  ids, mask = _batch(cfg)
  pad = lambda x: jnp.pad(x, ((0, 0), (0, 6)))
  short = pool(_encode(cfg, params, ids, mask), mask, mode)
  long = pool(_encode(cfg, params, pad(ids), pad(mask)), pad(mask), mode)
  np.testing.assert_allclose(short, long, atol=1e-5)
  # ...and whatever sits in the pad slots is ignored.
  junk = jnp.where(pad(mask) == 1, pad(ids), 7)
  np.testing.assert_allclose(
    pool(_encode(cfg, params, junk, pad(mask)), pad(mask), mode), short, atol=1e-5
  )


def test_causal_mask():
  """GPT-2: the output at t does not depend on tokens after t; BERT's does."""
  for family, independent in (("gpt2", True), ("bert", False)):
    cfg = EncoderConfig.tiny(family)
    params = init_params(cfg, jax.random.key(1))
    ids, _ = _batch(cfg, batch=1, length=12)
    mask = jnp.ones_like(ids)
    changed = ids.at[:, 6:].set((ids[:, 6:] + 5) % cfg.vocab_size)
    a, b = _encode(cfg, params, ids, mask), _encode(cfg, params, changed, mask)
    assert np.allclose(a[:, :6], b[:, :6], atol=1e-6) == independent, family
    assert not np.allclose(a[:, 6:], b[:, 6:], atol=1e-6)


def test_pool_modes():
  hidden = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
  mask = jnp.array([[1, 1, 0, 0], [0, 1, 1, 1]])  # right- and left-padded rows
  np.testing.assert_allclose(
    pool(hidden, mask, "mean"), [hidden[0, :2].mean(0), hidden[1, 1:].mean(0)]
  )
  np.testing.assert_allclose(pool(hidden, mask, "cls"), hidden[:, 0])
  np.testing.assert_allclose(pool(hidden, mask, "last"), [hidden[0, 1], hidden[1, 3]])
  with pytest.raises(ValueError, match="pool mode"):
    pool(hidden, mask, "max")


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_close_to_fp32(family):
  cfg = EncoderConfig.tiny(family)
  params = init_params(cfg, jax.random.key(2))
  ids, mask = _batch(cfg)
  bf16 = cfg.replace(dtype="bfloat16")
  ref = pool(_encode(cfg, params, ids, mask), mask, "mean")
  hidden = _encode(bf16, params, ids, mask)
  assert hidden.dtype == jnp.bfloat16
  assert jax.tree.leaves(init_params(bf16, jax.random.key(2)))[0].dtype == jnp.float32
  np.testing.assert_allclose(pool(hidden, mask, "mean"), ref, atol=0.05)
  logits = LanguageModel(bf16).apply({"params": params}, ids, mask)
  assert logits.dtype == jnp.float32 and np.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_logical_axes(family):
  cfg = EncoderConfig.tiny(family)
  axes = logical_axes(cfg)
  shapes = jax.tree.map(jnp.shape, init_params(cfg, jax.random.key(0)))
  # Same tree, and one name (or None) per dimension of every param.
  flat_axes = jax.tree.leaves(axes, is_leaf=lambda x: isinstance(x, P))
  assert jax.tree.structure(shapes, is_leaf=lambda x: isinstance(x, tuple)) == jax.tree.structure(
    axes, is_leaf=lambda x: isinstance(x, P)
  )
  for spec, shape in zip(
    flat_axes, jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple))
  ):
    assert len(spec) == len(shape)
  enc = axes["encoder"]
  assert enc["token_embed"]["embedding"] == P("vocab", "embed")
  assert enc["pos_embed"]["embedding"] == P("pos", "embed")
  attn = enc["layers_0"]["attn"]
  assert attn["query"]["kernel"] == P("embed", "heads", "kv")
  assert attn["query"]["bias"] == P("heads", "kv")
  assert attn["out"]["kernel"] == P("heads", "kv", "embed")
  assert enc["layers_0"]["mlp_in"]["kernel"] == P("embed", "mlp")
  assert enc["layers_0"]["mlp_out"]["kernel"] == P("mlp", "embed")
  assert enc["layers_0"]["attn_ln"]["scale"] == P("embed")


def test_runs_under_mesh_and_rules():
  """Logical constraints resolve on a real (1-device) mesh with the house rules."""
  cfg = EncoderConfig.tiny("bert")
  mesh = jax.make_mesh((1, 1), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
  rules = (
    ("batch", "data"),
    ("vocab", "model"),
    ("heads", "model"),
    ("mlp", "model"),
    ("embed", None),
    ("length", None),
    ("kv", None),
    ("pos", None),
  )
  params = init_params(cfg, jax.random.key(0))
  ids, mask = _batch(cfg)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    # Sharded init the house way: boxed params, shardings from their logical names.
    boxed = jax.jit(lambda r: LanguageModel(cfg).init(r, ids, mask))(jax.random.key(0))
    assert nn.get_partition_spec(boxed)["params"]["encoder"]["layers_0"]["attn"]["query"][
      "kernel"
    ] == P("embed", "heads", "kv")
    out = jax.jit(lambda p, i, m: _encode(cfg, p, i, m))(params, ids, mask)
  np.testing.assert_allclose(
    nn.meta.unbox(boxed["params"])["encoder"]["token_embed"]["embedding"],
    params["encoder"]["token_embed"]["embedding"],
    rtol=1e-6,
  )
  np.testing.assert_allclose(out, _encode(cfg, params, ids, mask), atol=1e-5)


def test_dropout_only_when_not_deterministic():
  cfg = EncoderConfig.tiny("bert", dropout=0.2, attention_dropout=0.2)
  params = init_params(cfg, jax.random.key(0))
  ids, mask = _batch(cfg)
  a = _encode(cfg, params, ids, mask)
  np.testing.assert_array_equal(a, _encode(cfg, params, ids, mask))
  train = lambda seed: _encode(
    cfg, params, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(seed)}
  )
  assert not np.allclose(train(0), a) and not np.allclose(train(0), train(1))
  np.testing.assert_array_equal(train(3), train(3))


def test_config_validation_and_presets():
  with pytest.raises(ValueError, match="family"):
    EncoderConfig(family="t5")
  with pytest.raises(ValueError, match="divisible"):
    EncoderConfig(hidden_size=30, num_heads=4)
  assert EncoderConfig.minilm().hidden_size == 384
  assert EncoderConfig.bert_base().num_layers == 12
  gpt = EncoderConfig.gpt2_small()
  assert gpt.causal and gpt.activation == "gelu_new" and gpt.vocab_size == 50257
  for cfg in (EncoderConfig.minilm(), gpt, EncoderConfig.tiny("gpt2")):
    assert EncoderConfig.from_hf(cfg.to_hf()) == cfg
  with pytest.raises(ValueError, match="exceeds max_len"):
    ids = jnp.ones((1, 40), jnp.int32)
    cfg = EncoderConfig.tiny()
    LanguageModel(cfg).apply({"params": init_params(cfg, jax.random.key(0))}, ids)
