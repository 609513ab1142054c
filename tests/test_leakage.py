"""Planted leaks, one test per kind: each must fail loudly (LeakageError naming what leaked and,
for a consumer, which consumer), and the clean split must pass."""

import dataclasses

import numpy as np
import pytest

from conftest import sequential_settings
from test_protocols import cfg, given_world, world
from xdkt_jax import lm, recommend
from xdkt_jax.data import inputs, leakage, splits
from xdkt_jax.data import protocols as P
from xdkt_jax.data.tokenization import TokenizedItems
from xdkt_jax.knowledge import entities
from xdkt_jax.recommenders import baselines, sequential


def _with_rows(split, domain, extra):
  return dataclasses.replace(
    split,
    train_rows=dict(split.train_rows, **{domain: np.sort(np.r_[split.train_rows[domain], extra])}),
  )


def _with_eval(split, domain, part, es):
  return dataclasses.replace(split, eval={**split.eval, domain: {**split.eval[domain], part: es}})


# --- the split: training rows, histories, targets ---------------------------------------------


def test_a_test_target_row_among_the_training_rows():
  ds = world()
  sp = P.make_split(ds, cfg("warm"))
  te = sp.eval["T"]["test"]
  with pytest.raises(P.LeakageError, match="also training rows"):
    P.check_leakage(ds, _with_rows(sp, "T", te.row[:1]))


def test_a_withheld_future_row_among_the_training_rows():
  ds = world()
  sp = P.make_split(ds, cfg("cold_start", 1))
  te = sp.eval["T"]["test"]
  d = ds.domains["T"]
  u = int(te.user[0])
  later = [
    r for r in np.nonzero(d.inter.user == u)[0] if d.inter.order[r] > d.inter.order[te.row[0]]
  ]
  assert later, "the world gives cold users rows after their target"
  with pytest.raises(P.LeakageError, match="the future"):
    P.check_leakage(ds, _with_rows(sp, "T", later[:1]))


def test_a_target_appended_to_its_own_input_history():
  """The reviewer's probe: each test target appended to its own history must fail, whether
  the rows are traced (row ids) or the history items alone were changed."""
  ds = world()
  sp = P.make_split(ds, cfg("warm"))
  te = sp.eval["T"]["test"]
  n = len(te)
  hist = [
    np.r_[te.hist_items[te.hist_offsets[j] : te.hist_offsets[j + 1]], te.target[j]]
    for j in range(n)
  ]
  rows = [
    np.r_[te.hist_rows[te.hist_offsets[j] : te.hist_offsets[j + 1]], te.row[j]] for j in range(n)
  ]
  off = np.zeros(n + 1, np.int64)
  np.cumsum([len(h) for h in hist], out=off[1:])
  leaked = dataclasses.replace(
    te, hist_offsets=off, hist_items=np.concatenate(hist), hist_rows=np.concatenate(rows)
  )
  with pytest.raises(P.LeakageError, match="history"):
    P.check_leakage(ds, _with_eval(sp, "T", "test", leaked))
  items_only = dataclasses.replace(
    leaked,
    hist_rows=np.concatenate(
      [
        np.r_[
          te.hist_rows[te.hist_offsets[j] : te.hist_offsets[j + 1]],
          te.hist_rows[te.hist_offsets[j]],
        ]
        for j in range(n)
      ]
    ),
  )
  with pytest.raises(P.LeakageError, match="history"):
    P.check_leakage(ds, _with_eval(sp, "T", "test", items_only))


def test_a_target_appended_to_its_history_in_a_shipped_split():
  """No row ids: the examples are traced by (user, item, position) in the user's sequence."""
  ds, _ = given_world()
  sp = P.make_split(ds, cfg("in_domain"))
  te = sp.eval["T"]["test"]
  n = len(te)
  hist = [np.r_[te.history(j), te.target[j]] for j in range(n)]
  off = np.zeros(n + 1, np.int64)
  np.cumsum([len(h) for h in hist], out=off[1:])
  leaked = dataclasses.replace(te, hist_offsets=off, hist_items=np.concatenate(hist))
  with pytest.raises(P.LeakageError, match="cannot be traced|the future"):
    P.check_leakage(ds, _with_eval(sp, "T", "test", leaked))


def test_valid_and_test_sharing_targets_and_a_repeated_training_pair():
  ds = world()
  sp = P.make_split(ds, cfg("warm"))
  va = sp.eval["T"]["valid"]
  with pytest.raises(P.LeakageError, match="share target rows"):
    P.check_leakage(ds, _with_eval(sp, "T", "test", dataclasses.replace(va)))
  te = sp.eval["T"]["test"]
  d = ds.domains["T"]
  mine = sp.train_rows["T"][d.inter.user[sp.train_rows["T"]] == te.user[0]]
  d.inter.item[mine[0]] = te.target[0]  # the answer, bought before through another row
  with pytest.raises(P.LeakageError, match="training input|history"):
    P.check_leakage(ds, dataclasses.replace(sp))


# --- every consumer of interactions -----------------------------------------------------------

TARGET_CONSUMERS = {
  "itemknn": lambda ds, sp: baselines.fit("itemknn", ds, sp, target="T"),
  "userknn": lambda ds, sp: baselines.fit("userknn", ds, sp, target="T"),
  "pop": lambda ds, sp: baselines.fit("pop", ds, sp, target="T"),
  "bpr_mf": lambda ds, sp: baselines.fit("bpr_mf", ds, sp, target="T", cfg={"epochs": 1}),
  "cmf": lambda ds, sp: baselines.fit("cmf", ds, sp, target="T", cfg={"epochs": 1}),
  "emcdr": lambda ds, sp: baselines.fit("emcdr", ds, sp, target="T"),
  "text_knn": lambda ds, sp: baselines.fit("text_knn", ds, sp, target="T"),
  "popularity counts": lambda ds, sp: recommend.item_popularity(ds, sp, "T"),
  "sequential recommender batches": lambda ds, sp: sequential.train_sasrec(
    ds, sp, target="T", cfg=sequential_settings(mode="id", steps=1, batch=4)
  ),
  "evaluation mask": lambda ds, sp: inputs.eval_arrays(
    ds, sp, "T", "test", exclude_history="train"
  ),
}


@pytest.mark.parametrize("consumer", sorted(TARGET_CONSUMERS))
def test_every_target_consumer_refuses_a_leaked_row(consumer):
  ds = world()
  sp = P.make_split(ds, cfg("warm"))
  TARGET_CONSUMERS[consumer](ds, sp)  # the clean split passes
  bad = _with_rows(sp, "T", sp.eval["T"]["test"].row[:1])
  name = consumer.split()[0]
  with pytest.raises(P.LeakageError, match=name):
    TARGET_CONSUMERS[consumer](ds, bad)


def test_source_histories_refuse_another_domains_held_out_row():
  """A multi_domain view: S is a source of T, and S's own test targets must stay out of the
  source histories (the xdkt model's source side and the report's overlap groups)."""
  ds = world()
  view = splits.target_view(P.make_split(ds, cfg("multi_domain")), "T")
  inputs.source_sequences(ds, view)
  held = view.heldout["S"]["test"].row[:1]
  with pytest.raises(P.LeakageError, match="source"):
    inputs.source_sequences(ds, _with_rows(view, "S", held))


# --- text-only stages -------------------------------------------------------------------------


def _tok(ds, L=6):
  rng = np.random.default_rng(0)
  ids = {d: rng.integers(5, 99, (ds.domains[d].n_items, L)).astype(np.int32) for d in ds.domains}
  return TokenizedItems(
    ids=ids,
    mask={d: np.ones_like(v, np.int8) for d, v in ids.items()},
    pad_id=0,
    vocab_size=100,
    fingerprint="t",
  )


def test_lm_corpus_must_be_item_text_once_each():
  ds = world()
  tok = _tok(ds)
  corpus = lm.make_corpus(tok, domains=["S", "T"], heldout_frac=0.2, seed=0)
  leakage.check_text_corpus(corpus, tok)  # the product's corpus passes
  # Text weighted by interactions: a test target's text repeated in the training corpus.
  t = corpus.train["T"]
  heavy = dataclasses.replace(
    corpus,
    train={
      **corpus.train,
      "T": {"ids": np.r_[t["ids"], t["ids"][:1]], "mask": np.r_[t["mask"], t["mask"][:1]]},
    },
  )
  with pytest.raises(P.LeakageError, match="more often than in the catalogue"):
    leakage.check_text_corpus(heavy, tok)
  extra = dataclasses.replace(corpus, train={**corpus.train, "T": {**t, "user": t["ids"]}})
  with pytest.raises(P.LeakageError, match="only item text"):
    leakage.check_text_corpus(extra, tok)


def test_knowledge_labels_are_built_from_a_view_without_interactions():
  words = lambda i: f"{('red', 'blue', 'green', 'gold')[i % 4]} {('ball', 'kite', 'cart')[i % 3]}"
  ds = world(texts={"S": [words(i) for i in range(30)], "T": [words(i) for i in range(50)]})
  view = leakage.text_only(ds, consumer="knowledge labels (L_k)")
  vocab = entities.build_entity_vocab(
    view,
    fields=("title",),
    min_df=2,
    cross_domain_only=False,
    max_size=2000,
    max_df_frac=0.5,
    min_domain_df=1,
  )
  assert len(vocab) > 1  # the real builder needs item text only
  with pytest.raises(P.LeakageError, match="knowledge labels .* read the interactions"):
    np.bincount(view.domains["T"].inter.item)  # a planted label rule using interactions
