"""SASRec: causality, padding/packing invariance, scoring interface, one compile, learning."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import sequential_settings, small_world_config
from xdkt_jax import evaluate as E
from xdkt_jax import objectives
from xdkt_jax.data import inputs, load, protocols, windows
from xdkt_jax.data.splits import train_sequences
from xdkt_jax.data.batching import Batcher
from xdkt_jax.models import align, sasrec
from xdkt_jax.recommenders import baselines, scoring, selection, sequential
from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train import optim as optim_lib
from xdkt_jax.train import state as state_lib
from xdkt_jax.train import steps as steps_lib

N_ITEMS = 30
TINY = sequential_settings(hidden=16, layers=1, heads=2, mlp=32, max_len=12, batch=8, steps=2)


def _tiny(**kw):
  args = dict(n_items=N_ITEMS, hidden=16, layers=2, heads=2, mlp=32, max_len=10, dropout=0.0)
  args.update(kw)
  return sasrec.SASRec(**args)


def _init(module, length=10, **kw):
  tok = jnp.zeros((1, length), jnp.int32)
  variables = state_lib.unbox(module.init(jax.random.PRNGKey(0), tok, jnp.ones_like(tok), **kw))
  return variables


@pytest.fixture(scope="module")
def world():
  cfg = small_world_config()
  ds, _ = load.load(cfg.data, tokenize=False)
  splits = {}
  for proto in ("warm", "cold_start"):
    c = ml_collections.ConfigDict(cfg.to_dict())
    c.protocol = proto
    splits[proto] = protocols.make_split(ds, c)
  return ds, splits


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_causal_output_at_t_ignores_later_items(norm):
  m = _tiny(norm=norm)
  v = _init(m)
  rng = np.random.default_rng(0)
  tok = rng.integers(0, N_ITEMS, size=(3, 10)).astype(np.int32)
  tok2 = tok.copy()
  tok2[:, 5:] = rng.integers(0, N_ITEMS, size=(3, 5))
  mask = np.ones_like(tok)
  f = jax.jit(lambda t: m.apply(v, t, mask)[0])
  h1, h2 = f(tok), f(tok2)
  np.testing.assert_allclose(h1[:, :5], h2[:, :5], atol=1e-5)
  assert np.abs(np.asarray(h1[:, 5:] - h2[:, 5:])).max() > 1e-3


def test_attention_dropout_path_exact_causal_and_drops():
  """RecBole-style options: the explicit-softmax attention (taken in training when
  attn_dropout > 0) equals the fused path when nothing is dropped, stays causal with dropout
  on (same rng, so same masks), and does drop; gelu and inner_dropout=False change the FFN."""
  rng = np.random.default_rng(1)
  tok = rng.integers(0, N_ITEMS, size=(3, 10)).astype(np.int32)
  mask = np.ones_like(tok)
  mask[0, 7:] = 0
  # attn_dropout 1e-9 quantises to no drop: the explicit path runs and must equal the fused one.
  m = _tiny(norm="post", attn_dropout=1e-9)
  v = _init(m)
  explicit = m.apply(v, tok, mask, deterministic=False, rngs={"dropout": jax.random.PRNGKey(3)})
  fused = m.apply(v, tok, mask)
  np.testing.assert_allclose(explicit[0][0, :7], fused[0][0, :7], atol=2e-5)
  np.testing.assert_allclose(explicit[0][1:], fused[0][1:], atol=2e-5)
  m = _tiny(norm="post", attn_dropout=0.5)
  v = _init(m)
  f = lambda t: m.apply(v, t, mask, deterministic=False, rngs={"dropout": jax.random.PRNGKey(3)})[0]
  tok2 = tok.copy()
  tok2[:, 5:] = rng.integers(0, N_ITEMS, size=(3, 5))
  np.testing.assert_allclose(f(tok)[:, :5], f(tok2)[:, :5], atol=1e-5)
  assert np.abs(np.asarray(f(tok) - m.apply(v, tok, mask)[0])).max() > 1e-3
  base = _tiny(norm="post")
  vb = _init(base)
  h_relu = base.apply(vb, tok, mask)[0]
  h_gelu = _tiny(norm="post", act="gelu").apply(vb, tok, mask)[0]
  assert np.abs(np.asarray(h_relu - h_gelu)).max() > 1e-4
  train = lambda mod: mod.apply(
    vb, tok, mask, deterministic=False, rngs={"dropout": jax.random.PRNGKey(4)}
  )[0]
  assert (
    np.abs(
      np.asarray(
        train(_tiny(norm="post", dropout=0.5))
        - train(_tiny(norm="post", dropout=0.5, inner_dropout=False))
      )
    ).max()
    > 1e-4
  )
  with pytest.raises(ValueError, match="act must be"):
    _init(_tiny(act="swish"))


def test_padding_and_packing_invariance():
  m = _tiny()
  v = _init(m)
  f = jax.jit(lambda t, mk, seg, pos: m.apply(v, t, mk, segments_BxL=seg, positions_BxL=pos)[0])
  a = np.array([N_ITEMS, 3, 7, 1], np.int32)  # BOS + 3 items
  b = np.array([N_ITEMS, 9, 2, 4, 4, 8], np.int32)
  # Unpacked, right-padded with garbage under mask 0.
  rows = np.full((2, 10), 17, np.int32)
  mask = np.zeros((2, 10), np.int32)
  for r, s in enumerate((a, b)):
    rows[r, : len(s)], mask[r, : len(s)] = s, 1
  seg = mask.copy()
  pos = np.tile(np.arange(10), (2, 1)).astype(np.int32)
  h = f(rows, mask, seg, pos)
  rows2 = np.where(mask > 0, rows, 5)
  np.testing.assert_allclose(f(rows2, mask, seg, pos)[mask > 0], h[mask > 0], atol=1e-5)
  # Plain (segment-free) call on the same rows = the unpacked reference.
  plain = jax.jit(lambda t, mk: m.apply(v, t, mk)[0])(rows, mask)
  np.testing.assert_allclose(plain[mask > 0], h[mask > 0], atol=1e-5)
  # Packed: a and b in ONE row give the same states as each alone.
  packed = np.zeros((1, 10), np.int32)
  packed[0, :4], packed[0, 4:10] = a, b
  pseg = np.array([[1] * 4 + [2] * 6], np.int32)
  ppos = np.array([list(range(4)) + list(range(6))], np.int32)
  hp = f(packed, np.ones_like(packed), pseg, ppos)
  np.testing.assert_allclose(hp[0, :4], h[0, :4], atol=1e-5)
  np.testing.assert_allclose(hp[0, 4:], h[1, :6], atol=1e-5)


def test_training_windows_and_packing_cover_every_transition_once():
  offsets = np.array([0, 3, 3, 10], np.int64)
  items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0], np.int32)
  w = windows.training_windows(offsets, items, n_items=N_ITEMS, max_len=4)
  m = w["mask"].astype(bool)
  assert m.sum() == 10  # one target per training row
  assert sorted(w["targets"][m].tolist()) == sorted(items.tolist())
  assert (w["inputs"][:, 0] == N_ITEMS).sum() == 2  # BOS only at true sequence starts
  p = windows.pack_windows(w, max_len=4)
  assert p["mask"].sum() == 10 and len(p["inputs"]) <= len(w["inputs"])
  pm = p["mask"].astype(bool)
  assert sorted(p["targets"][pm].tolist()) == sorted(items.tolist())


def test_score_inputs_bos_rule():
  hist = np.array([[4, 5, 0], [1, 2, 3], [0, 0, 0]], np.int32)
  mask = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]], np.int8)
  tok, m = windows.score_inputs(hist, mask, n_items=N_ITEMS, max_len=4)
  np.testing.assert_array_equal(tok[0, :3], [N_ITEMS, 4, 5])  # complete history: BOS first
  np.testing.assert_array_equal(tok[1, :3], [1, 2, 3])  # full width: maybe truncated
  np.testing.assert_array_equal(tok[2, :1], [N_ITEMS])  # empty: the BOS state
  np.testing.assert_array_equal(m.sum(1), [3, 3, 1])


def test_bfloat16_compute_matches_float32():
  """dtype='bfloat16' runs the blocks in bf16 (params and the output float32) and stays close
  to the float32 model with the same params; its train step runs."""
  m32, m16 = _tiny(), _tiny(dtype="bfloat16")
  v = _init(m32)
  rng = np.random.default_rng(0)
  tok = rng.integers(0, N_ITEMS, size=(4, 10)).astype(np.int32)
  mask = np.ones_like(tok)
  h32, _ = m32.apply(v, tok, mask)
  h16, _ = m16.apply(v, tok, mask)
  assert h16.dtype == jnp.float32
  err = float(jnp.abs(h16 - h32).max() / jnp.abs(h32).max())
  assert 0 < err < 0.03, err  # different (bf16 rounding), close


def test_bfloat16_trains(world):
  ds, splits = world
  m = sequential.train_sasrec(ds, splits["warm"], target="Movies", cfg=dict(TINY, dtype="bfloat16"))
  assert np.isfinite(m.losses).all() and m.info["final_loss"] > 0


def test_first_item_loss_off_drops_exactly_the_bos_positions():
  """first_item_loss=False: the same loss as zero weight at the BOS-input positions."""
  m = _tiny(dropout=0.0)
  v = _init(m)
  rng = np.random.default_rng(2)
  inputs = rng.integers(0, N_ITEMS, (3, 10)).astype(np.int32)
  inputs[:, 0] = N_ITEMS
  inputs[1, 6] = N_ITEMS  # a second window packed into row 1
  batch = {
    "inputs": inputs,
    "targets": rng.integers(0, N_ITEMS, (3, 10)).astype(np.int32),
    "mask": np.ones((3, 10), np.int8),
    "example_mask": np.ones(3, bool),
  }
  off = objectives.next_item_objective(
    m, kind="full_softmax", num_negatives=0, first_item_loss=False
  )
  on = objectives.next_item_objective(m, kind="full_softmax", num_negatives=0)
  key = jax.random.PRNGKey(0)
  # Same forward pass, BOS targets weighted out: compare with masking them via example rows.
  l_off = float(off(v["params"], batch, key)[0])
  l_on = float(on(v["params"], batch, key)[0])
  h, items = m.apply(v, inputs, batch["mask"])
  logp = jax.nn.log_softmax(np.asarray(h) @ np.asarray(items).T, -1)
  nll = -np.take_along_axis(np.asarray(logp), batch["targets"][..., None], -1)[..., 0]
  keep = inputs != N_ITEMS
  np.testing.assert_allclose(l_off, nll[keep].mean(), rtol=1e-5)
  np.testing.assert_allclose(l_on, nll.mean(), rtol=1e-5)


def test_bucket_width():
  assert [windows.bucket_width(n, 50) for n in (0, 1, 8, 9, 16, 17, 33, 50)] == [
    8,
    8,
    8,
    16,
    16,
    32,
    50,
    50,
  ]
  tok, m = windows.score_inputs(
    np.array([[4, 5, 0]]), np.array([[1, 1, 0]]), n_items=N_ITEMS, max_len=50, bucket=True
  )
  assert tok.shape == (1, 8) and m.sum() == 3


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_scoring_at_last_position_and_bucketed_width_is_exact(norm):
  """SASRecModel.score (last-position-only final block, width bucketed to the batch) equals
  the full-width forward pass read at each row's last token."""
  m = _tiny(norm=norm, max_len=40, mlp=24)
  v = _init(m, length=40)
  v["params"] = jax.tree.map(
    lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(3), p.shape), v["params"]
  )
  rng = np.random.default_rng(0)
  lens = np.array([0, 1, 5, 9, 12])
  hist = np.zeros((5, 14), np.int32)
  hmask = np.zeros((5, 14), np.int8)
  for r, n in enumerate(lens):
    hist[r, :n], hmask[r, :n] = rng.integers(0, N_ITEMS, n), 1
  model = scoring.SASRecModel(m, v["params"], None, N_ITEMS, np.zeros(0), {})
  got = model.score({"hist": hist, "hist_mask": hmask})
  tok, mask = windows.score_inputs(hist, hmask, n_items=N_ITEMS, max_len=40)
  assert tok.shape == (5, 40)
  h, items = m.apply(v, tok, mask)
  last = mask.sum(1) - 1
  want = np.asarray(h)[np.arange(5), last] @ np.asarray(items).T
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dropout_rate_scale_and_determinism():
  x = jnp.ones((64, 50, 37))
  d = align.Dropout(0.2)
  y = np.asarray(d.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)}))
  kept = y > 0
  assert abs(1 - kept.mean() - 51 / 256) < 0.005  # the rate, quantised to 1/256
  np.testing.assert_allclose(y[kept], 256 / 205, rtol=1e-6)  # inverted: E[y] = x
  y2 = d.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(1)})
  assert not np.array_equal(np.asarray(y2) > 0, kept)  # a new key, a new mask
  np.testing.assert_array_equal(d.apply({}, x, deterministic=True), x)
  np.testing.assert_array_equal(align.Dropout(0.0).apply({}, x, deterministic=False), x)


def test_align_modules_shapes_and_gate():
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 12))
  for mod in (
    align.Whitening(8),
    align.MoEAdaptor(8, n_experts=3),
    align.LinearMapping(8),
    align.MLPMapping(8, hidden=16),
  ):
    v = mod.init(jax.random.PRNGKey(1), x)
    assert mod.apply(v, x).shape == (5, 8)
  a, b = jnp.ones((4, 6)), jnp.zeros((4, 6))
  g = align.GatedFusion()
  v = g.init(jax.random.PRNGKey(2), a, b)
  np.testing.assert_allclose(g.apply(v, a, b), 0.5, atol=0.1)  # σ(≈0) ≈ ½ at init


def test_train_step_compiles_once(world):
  ds, splits = world
  sp = splits["warm"]
  off, items = train_sequences(ds, sp, "Movies", consumer="test")
  n = ds.domains["Movies"].n_items
  data = windows.pack_windows(
    windows.training_windows(off, items, n_items=n, max_len=12), max_len=12
  )
  module = sasrec.SASRec(n_items=n, hidden=16, layers=1, mlp=32, max_len=12)
  init_fn = lambda r: module.init(r, jnp.zeros((1, 12), jnp.int32), jnp.ones((1, 12), jnp.int8))
  mesh = mesh_lib.make_mesh()
  params = state_lib.unbox(jax.eval_shape(init_fn, jax.random.PRNGKey(0)))["params"]
  tx = optim_lib.make_optimizer(dict(lr=1e-3, schedule="constant"), params)
  state, sharding = state_lib.create_train_state(init_fn, tx, jax.random.PRNGKey(0), mesh)
  loss_fn = chex.assert_max_traces(
    objectives.next_item_objective(module, kind="full_softmax", num_negatives=0), n=1
  )
  bs = mesh_lib.batch_sharding(mesh)
  step = steps_lib.make_train_step(
    loss_fn, tx, mesh=mesh, state_sharding=sharding, batch_sharding=bs
  )
  batcher = Batcher(data, 16, seed=0)
  for t in range(3):  # different batches, same shapes: one trace
    state, metrics = step(
      state, mesh_lib.shard_batch(batcher.batch_at(t), bs), jax.random.PRNGKey(1)
    )
  assert np.isfinite(float(metrics["loss"]))
  chex.clear_trace_counter()


def test_scorer_compiles_once_per_width_bucket(world):
  """Evaluation over many batches traces the scorer once per bucketed width (8 and max_len
  12 here), the ranking step once, and a second pass traces nothing."""
  ds, splits = world
  sp = splits["warm"]
  n = ds.domains["Movies"].n_items
  m = sequential.train_sasrec(ds, sp, target="Movies", cfg=TINY)
  arr = inputs.eval_arrays(ds, sp, "Movies", "test", max_len=12, exclude_history="all")
  lens = arr["hist_mask"].sum(1)
  assert lens.min() < 7 and lens.max() >= 8  # both widths occur
  before, full = scoring.TRACE_COUNTS["score"], E.TRACE_COUNTS["full"]
  run = lambda: E.evaluate(score_fn=m.score, arrays=arr, n_items=n, batch_size=16)
  first = run()
  assert scoring.TRACE_COUNTS["score"] - before == 2
  assert E.TRACE_COUNTS["full"] - full == 1
  second = run()
  assert scoring.TRACE_COUNTS["score"] - before == 2 and E.TRACE_COUNTS["full"] - full == 1
  np.testing.assert_array_equal(first.per_example["rank"], second.per_example["rank"])


def test_text_and_fused_modes_and_score_shape(world):
  ds, splits = world
  sp = splits["cold_start"]
  n = ds.domains["Movies"].n_items
  vecs = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
  arr = inputs.eval_arrays(ds, sp, "Movies", "test", max_len=12, exclude_history="all")
  batch = {k: v[:5] for k, v in arr.items()}
  for mode, extra in (("text", {"adaptor": "whitening"}), ("fused", {"fusion": "gate"})):
    m = sequential.train_sasrec(
      ds, sp, target="Movies", cfg=dict(TINY, mode=mode, **extra), item_vectors={"Movies": vecs}
    )
    s = m.score(batch)
    assert s.shape == (5, n) and np.isfinite(s).all(), mode
    # The fixed vectors ride along untrained in the 'consts' collection.
    np.testing.assert_array_equal(m.consts["consts"]["item_vectors"], vecs)
  with pytest.raises(ValueError, match="item_vectors"):
    sequential.train_sasrec(ds, sp, target="Movies", cfg=dict(TINY, mode="text"))
  with pytest.raises(ValueError, match=r"unknown option\(s\) \['hiden'\]"):
    sequential.train_sasrec(ds, sp, target="Movies", cfg=dict(TINY, hiden=3))
  # no second source of defaults: a setting the config does not give is refused, not filled
  with pytest.raises(ValueError, match=r"missing option\(s\) \['norm'\]"):
    sequential.train_sasrec(
      ds, sp, target="Movies", cfg={k: v for k, v in TINY.items() if k != "norm"}
    )
  with pytest.raises(ValueError, match=r"missing option\(s\) \['align'"):
    sequential.train_sasrec(
      ds,
      sp,
      target="Movies",
      transfer=True,
      cfg={k: v for k, v in TINY.items() if k not in sequential.TRANSFER_SETTINGS},
    )


def test_learns_beats_pop_on_warm(world):
  ds, splits = world
  sp = splits["warm"]
  n = ds.domains["Movies"].n_items
  before = objectives.TRACE_COUNTS["loss"]
  model = sequential.train_sasrec(
    ds, sp, target="Movies", cfg=sequential_settings(mode="id"), seed=0
  )
  assert objectives.TRACE_COUNTS["loss"] - before == 1  # the whole run compiled one step
  assert model.losses[-5:].mean() < model.losses[:5].mean() - 1.0
  arr = inputs.eval_arrays(ds, sp, "Movies", "test", exclude_history="all")
  ev = lambda score: E.evaluate(score_fn=score, arrays=arr, n_items=n, batch_size=256).means[
    "ndcg@10"
  ]
  pop = baselines.fit("pop", ds, sp, target="Movies")
  ours, base = ev(model.score), ev(pop.score)
  assert ours > base + 0.01, (ours, base)


def test_select_epoch_keeps_the_best_valid_epoch(world):
  """Early stopping on the valid split: the curve has one point per epoch run, the kept
  parameters score exactly the best point on valid, and training in epoch chunks is the same
  trajectory as one plain run of that many epochs (same seed)."""
  ds, splits = world
  sp = splits["warm"]
  n = ds.domains["Movies"].n_items
  cfg = dict(TINY, steps=0, epochs=4, select_epoch=True, patience=2)
  m = sequential.train_sasrec(ds, sp, target="Movies", cfg=cfg, seed=0)
  info = m.info
  curve = [c["ndcg@10"] for c in info["valid_curve"]]
  assert len(curve) == info["epochs_run"] <= 4
  assert info["best_epoch"] == int(np.argmax(curve)) + 1
  assert info["best_valid"] == max(curve)
  if info["epochs_run"] < 4:  # stopped early: exactly `patience` epochs without a gain
    assert info["epochs_run"] - info["best_epoch"] == 2
  valid = inputs.eval_arrays(ds, sp, "Movies", "valid", exclude_history="all")
  ev = lambda model: E.evaluate(
    score_fn=model.score,
    arrays=valid,
    n_items=n,
    batch_size=min(256, len(valid["target"])),
    ks=[10],
  ).means["ndcg@10"]
  assert ev(m) == pytest.approx(info["best_valid"], abs=1e-6)
  plain = sequential.train_sasrec(
    ds, sp, target="Movies", seed=0, cfg=dict(TINY, steps=0, epochs=info["best_epoch"])
  )
  assert ev(plain) == pytest.approx(info["best_valid"], abs=1e-6)
  assert (
    len(m.losses)
    == info["steps"]
    == info["epochs_run"] * (plain.info["steps"] // info["best_epoch"])
  )


class _Result:
  def __init__(self, epoch):
    self.state = type("S", (), {"params": np.int32(epoch)})()
    self.step = epoch


def test_select_epoch_patience_on_a_constructed_curve():
  """The selection rule on a known valid curve: the first best epoch wins ties, and it stops
  after `patience` epochs without a strict gain (later, better epochs are never seen)."""
  n_users, n_items, spe = 10, 20, 3
  valid = {
    "user": np.arange(n_users, dtype=np.int32),
    "target": np.arange(n_users, dtype=np.int32),
    "hist": np.zeros((n_users, 4), np.int32),
    "hist_mask": np.zeros((n_users, 4), np.int8),
  }
  hits = {1: 2, 2: 5, 3: 5, 4: 6, 5: 3, 6: 1, 7: 9}  # epoch -> users ranked first

  class Scorer:
    params = None

    def score(self, batch):
      top = batch["user"] < hits[int(self.params)]
      onehot = np.eye(n_items, dtype=np.float32)[batch["target"]]
      return np.where(top[:, None], onehot, -onehot)

  trained = []

  def train_to(state, start, stop):
    trained.append((start, stop))
    return _Result(stop // spe)

  run = lambda patience: selection.train_selecting_epoch(
    train_to,
    None,
    total=7 * spe,
    steps_per_epoch=spe,
    scorer=Scorer(),
    valid=valid,
    n_items=n_items,
    metric="ndcg@10",
    patience=patience,
  )
  _, sel = run(2)
  assert [c["ndcg@10"] for c in sel["valid_curve"]] == pytest.approx([0.2, 0.5, 0.5, 0.6, 0.3, 0.1])
  assert (sel["best_epoch"], sel["epochs_run"], int(sel["params"])) == (4, 6, 4)
  assert trained == [(e * spe, (e + 1) * spe) for e in range(6)]
  _, sel = run(10)
  assert (sel["best_epoch"], sel["epochs_run"], sel["best_valid"]) == (7, 7, pytest.approx(0.9))
  for bad, match in (("hr@10", "select_metric"), ("ndcg@0", "select_metric")):
    with pytest.raises(ValueError, match=match):
      selection.train_selecting_epoch(
        train_to,
        None,
        total=3,
        steps_per_epoch=1,
        scorer=Scorer(),
        valid=valid,
        n_items=n_items,
        metric=bad,
        patience=2,
      )
  with pytest.raises(ValueError, match="patience"):
    run(0)


def test_learning_rate_schedule_reaches_the_optimizer(world):
  """The loss at step t is measured before update t.  'cosine' (no warm-up) makes the same
  update 0 as 'constant' (both at the peak lr) and smaller ones after; a linear warm-up makes
  update 0 at lr 0, so its step-1 loss already differs from the constant run's."""
  ds, splits = world
  sp = splits["warm"]
  run = lambda **kw: sequential.train_sasrec(
    ds, sp, target="Movies", seed=0, cfg=dict(TINY, steps=4, dropout=0.0, **kw)
  )
  const, cos = run(), run(schedule="cosine")
  assert const.losses[0] == cos.losses[0] and const.losses[1] == cos.losses[1]
  assert const.losses[2] != cos.losses[2]
  warm = run(schedule="linear", warmup_steps=2)
  assert warm.losses[0] == const.losses[0] and warm.losses[1] != const.losses[1]
  with pytest.raises(ValueError, match="schedule"):
    run(schedule="step")
