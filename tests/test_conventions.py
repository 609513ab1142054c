"""Masking rules chosen by config, never by the label; the peers' conventions as presets."""

import dataclasses

import numpy as np
import pytest

from test_protocols import cfg, given_world, target_rows_of, world
from xdkt_jax import conventions as C
from xdkt_jax import evaluate as E
from xdkt_jax.data import inputs
from xdkt_jax.data import protocols as P


def test_auto_is_none_on_a_shipped_split_and_all_otherwise():
  assert C.resolve("xdkt", "auto", target_has_given_split=True).exclude_history == "none"
  assert C.resolve("xdkt", "auto", target_has_given_split=False).exclude_history == "all"
  assert C.resolve("xdkt", "train", target_has_given_split=True).exclude_history == "train"
  assert C.resolve("recbole_seq", "auto", target_has_given_split=False).exclude_history == "none"
  assert C.resolve("recbole_cf", "auto", target_has_given_split=True).exclude_history == "all"


@pytest.mark.parametrize(
  "conv, excl, words",
  [
    ("recbole_seq", "all", "is another convention"),
    ("recbole_cf", "none", "another"),
    ("mine", "auto", "convention must be one of"),
    ("xdkt", "history", "exclude_history"),
  ],
)
def test_bad_or_contradictory_settings_are_refused(conv, excl, words):
  with pytest.raises(ValueError, match=words):
    C.resolve(conv, excl, target_has_given_split=False)


def _lists(arrays):
  return [
    sorted(arrays["exclude_items"][j][arrays["exclude_mask"][j] > 0].tolist())
    for j in range(len(arrays["target"]))
  ]


def test_exclusion_lists_follow_the_rule():
  ds = world()
  sp = P.make_split(ds, cfg("in_domain"))
  te = sp.eval["T"]["test"]
  items = ds.domains["T"].inter.item
  by_rule = {
    r: _lists(inputs.eval_arrays(ds, sp, "T", "test", exclude_history=r)) for r in C.EXCLUDE_RULES
  }
  for j in range(len(te)):
    rows = target_rows_of(ds, te.user[j])
    assert by_rule["none"][j] == []
    assert by_rule["train"][j] == sorted(items[rows[:-2]].tolist())  # not the valid item
    assert by_rule["all"][j] == sorted(items[rows[:-1]].tolist())  # the whole input


@pytest.mark.parametrize("rule", C.EXCLUDE_RULES)
def test_the_mask_of_a_user_is_identical_whatever_their_target(rule):
  """Label independence end to end: the same examples with every target replaced give the
  same exclusion lists, and ranking the same scores gives the same top-k lists."""
  ds = world()
  sp = P.make_split(ds, cfg("in_domain"))
  te = sp.eval["T"]["test"]
  a = inputs.eval_arrays(ds, sp, "T", "test", exclude_history=rule)
  n_items = ds.domains["T"].n_items
  for shift in (1, 7):
    other = dataclasses.replace(te, target=((te.target + shift) % n_items).astype(np.int32))
    probe = dataclasses.replace(sp, eval={"T": {**sp.eval["T"], "test": other}})
    # The leakage guard's rows come from the real targets (the probe's targets are not the
    # users' rows, which the guard would rightly refuse); only the evaluator's label moves.
    probe.__dict__["_forbidden"] = sp.__dict__["_forbidden"]
    b = inputs.eval_arrays(ds, probe, "T", "test", exclude_history=rule)
    np.testing.assert_array_equal(a["exclude_items"], b["exclude_items"])
    np.testing.assert_array_equal(a["exclude_mask"], b["exclude_mask"])
    rng = np.random.default_rng(0)
    table = rng.normal(size=(ds.n_users, n_items)).astype(np.float32)
    score = lambda batch: table[batch["user"]]
    ra = E.evaluate(score_fn=score, arrays=a, n_items=n_items, batch_size=16, ks=(10,))
    rb = E.evaluate(score_fn=score, arrays=b, n_items=n_items, batch_size=16, ks=(10,))
    np.testing.assert_array_equal(ra.topk, rb.topk)


def test_a_repeat_target_under_each_rule():
  """A shipped split keeps repeat consumptions: `none` ranks the repeated target like any
  item, `all` excludes it before knowing it is the target — a miss, never a free hit."""
  ds, seqs = given_world()
  d = ds.domains["T"]
  u0 = int(np.unique(d.inter.user)[0])
  rows = target_rows_of(ds, u0)
  d.inter.item[rows[-1]] = d.inter.item[rows[0]]  # user 0's test target: a repeat
  gs = d.given_split.parts["test"]
  tgt = gs[3].copy()
  tgt[0] = d.inter.item[rows[0]]
  d.given_split.parts["test"] = (gs[0], gs[1], gs[2], tgt)
  sp = P.make_split(ds, cfg("in_domain"))
  assert sp.info["T/test/given_split_repeat_targets"] == 1
  n_items = d.n_items
  best = lambda batch: np.where(
    np.arange(n_items)[None, :] == batch["target"][:, None], 1.0, 0.0
  ).astype(np.float32)  # an oracle scorer
  rank = {
    r: E.evaluate(
      score_fn=best,
      arrays=inputs.eval_arrays(ds, sp, "T", "test", exclude_history=r),
      n_items=n_items,
      batch_size=8,
      ks=(10,),
    ).per_example["rank"][0]
    for r in ("none", "all")
  }
  assert rank["none"] == 0 and rank["all"] == n_items
  rule = C.EvalRule("recbole_cf", "all")
  with pytest.raises(ValueError, match="depends on the label"):
    C.check_rule_fits_split(rule, sp, "T")
  C.check_rule_fits_split(C.EvalRule("recbole_seq", "none"), sp, "T")
