"""Neighbourhood fusion (recommend.neighbour_blend): score = z(model) + w·z(item-kNN), w picked
on the valid users.  Checked against a NumPy re-implementation: the z-scores, the blend, and
the valid NDCG@10 of every candidate weight by brute-force ranking (pessimistic ties)."""

import dataclasses

import ml_collections
import numpy as np
import pytest

from conftest import sequential_settings, small_world_config
from xdkt_jax import recommend
from xdkt_jax.data import inputs, load, protocols, splits
from xdkt_jax.recommenders import baselines, neighbour_fusion, sequential

TINY = sequential_settings(
  hidden=16, layers=1, heads=2, mlp=32, max_len=12, batch=32, steps=20, mode="id"
)


@pytest.fixture(scope="module")
def warm():
  cfg = small_world_config()
  ds, _ = load.load(cfg.data, tokenize=False)
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.protocol = "warm"
  split = protocols.make_split(ds, c)
  target = split.targets[0]
  logs = []
  ctx = recommend.Context(
    ds=ds, split=split, target=target, config=c, item_knowledge={}, pretrained={}, log=logs.append
  )
  model = sequential.train_sasrec(ds, split, target=target, cfg=TINY, seed=0)
  return ds, split, target, ctx, model, logs


def _z(x):
  x = np.asarray(x, np.float64)
  sd = x.std(1, keepdims=True)
  return (x - x.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def _ndcg10(scores, arrays):
  """Brute force: listed items excluded (a listed target is a miss), the target ranks below
  every item with an equal score."""
  out = []
  for s, t, h, m in zip(scores, arrays["target"], arrays["exclude_items"], arrays["exclude_mask"]):
    s = np.asarray(s, np.float64).copy()
    seen = h[m.astype(bool)]
    if t in seen:
      out.append(0.0)
      continue
    s[seen] = -np.inf
    rank = int(np.sum(s >= s[t])) - 1  # items above or tied with the target
    out.append(1.0 / np.log2(rank + 2) if rank < 10 else 0.0)
  return float(np.mean(out))


def test_weights_parse_and_bad_settings_are_one_line_errors():
  assert neighbour_fusion.neighbour_weights("") == []
  assert neighbour_fusion.neighbour_weights("1, 0.1,0.3") == [0.0, 0.1, 0.3, 1.0]
  assert neighbour_fusion.neighbour_weights("0,2") == [0.0, 2.0]
  for bad in ("0.1,x", "-1", "nan", ","):
    with pytest.raises(ValueError, match="neighbour_blend"):
      neighbour_fusion.neighbour_weights(bad)


def test_fusion_scores_and_the_weight_picked_on_valid(warm):
  ds, split, target, ctx, model, logs = warm
  weights = [0.0, 0.05, 0.3, 1.0, 5.0]
  fused = neighbour_fusion.fuse_neighbours(model, ctx, weights, metric="ndcg@10")
  valid = inputs.eval_arrays(ds, split, target, "valid", exclude_history="all")
  knn = baselines.fit("itemknn", ds, split, target=target)
  m_s, k_s = model.score(valid), knn.score(valid)
  # every candidate's valid NDCG@10, recomputed independently; the best one is kept
  expect = {w: _ndcg10(m_s if w == 0 else _z(m_s) + w * _z(k_s), valid) for w in weights}
  got = {v["weight"]: v["ndcg@10"] for v in fused.info["neighbour_valid"]}
  assert got.keys() == expect.keys()
  for w in weights:
    assert got[w] == pytest.approx(expect[w], abs=1e-6), w
  best = max(expect.values())
  assert fused.weight == min(w for w in weights if expect[w] >= best - 1e-9)
  assert fused.info["neighbour_weight"] == fused.weight
  assert "neighbourhood fusion: weight" in logs[-1]
  # the fused score itself, on test users
  test = inputs.eval_arrays(ds, split, target, "test", exclude_history="all")
  for w in (0.0, 0.3):
    fused.weight = w
    want = model.score(test) if w == 0 else _z(model.score(test)) + w * _z(knn.score(test))
    np.testing.assert_allclose(fused.score(test), want, rtol=1e-5, atol=1e-5)
  fused.weight = 0.0
  np.testing.assert_array_equal(fused.score(test), model.score(test))  # w = 0: the model alone
  # on the synthetic world item-kNN carries signal the short-trained model lacks: fusion helps
  assert max(expect.values()) > expect[0.0]


def test_fusion_needs_valid_examples(warm):
  ds, split, target, ctx, model, _ = warm
  empty = splits.EvalSet(
    user=np.zeros(0, np.int32),
    target=np.zeros(0, np.int32),
    row=np.zeros(0, np.int64),
    hist_offsets=np.zeros(1, np.int64),
    hist_items=np.zeros(0, np.int32),
  )
  no_valid = dataclasses.replace(
    split, eval={**split.eval, target: {**split.eval[target], "valid": empty}}
  )
  ctx2 = dataclasses.replace(ctx, split=no_valid)
  with pytest.raises(ValueError, match="neighbour_blend needs valid examples"):
    neighbour_fusion.fuse_neighbours(model, ctx2, [0.0, 1.0], metric="ndcg@10")


def test_bad_metric_is_refused(warm):
  _, _, _, ctx, model, _ = warm
  with pytest.raises(ValueError, match="select_metric must be"):
    neighbour_fusion.fuse_neighbours(model, ctx, [0.0, 1.0], metric="hit@10")


def test_check_config_refuses_a_bad_selection_metric_before_any_stage():
  from configs import tiny  # pylint: disable=import-outside-toplevel

  c = tiny.get_config()
  with c.unlocked():
    c.recommend.neighbour_blend = "0.1,1"
    c.recommend.sequential.select_metric = "hit@10"
  with pytest.raises(ValueError, match="config.recommend.sequential: select_metric must be"):
    recommend.check_config(c)
  with c.unlocked():
    c.recommend.sequential.select_metric = "recall@20"
  recommend.check_config(c)  # a good one passes
