"""Knowledge extraction: entity vocabulary, token-label alignment, L_k training, cached item
knowledge, user knowledge."""

import jax
import numpy as np
import pytest

from conftest import make_dataset
from xdkt_jax import knowledge as K
from xdkt_jax.data.protocols import Split
from xdkt_jax.data.schema import ItemTable
from xdkt_jax.data.tokenization import encode_texts, load_tokenizer
from xdkt_jax.models.encoder import EncoderConfig, init_params

ITEMS = {
  "Art": [("rugged outdoorsy trail frame", "arts > outdoorsy > frames", "acme"),
          ("acme watercolor paper pad", "arts > paper", "acme"),
          ("sketch pencils", "arts > pencils", "staedtler")],
  "Office": [("acme printer paper ream", "office > paper", "acme"),
             ("outdoorsy clipboard", "office > outdoorsy > clipboards", "trailco"),
             ("staedtler pencils hb", "office > pencils", "staedtler")],
}


def hand_dataset():
  spec = {"Art": [("u0", 0, 1), ("u0", 1, 2), ("u1", 2, 1), ("u0", 2, 3)],
          "Office": [("u0", 0, 1), ("u2", 1, 1), ("u2", 2, 2)]}
  ds = make_dataset(spec)
  for name, rows in ITEMS.items():
    cols = list(zip(*rows))
    d = ds.domains[name]
    d.items = ItemTable(ids=d.items.ids, text={
        f: np.array(c, dtype=object) for f, c in zip(("title", "categories", "brand"), cols)})
  return ds


@pytest.fixture(scope="module")
def tokenizer():
  return load_tokenizer("minilm")


def test_entity_vocab_known_ids_shared_across_domains():
  ds = hand_dataset()
  v = K.build_entity_vocab(ds, min_df=2, cross_domain_only=True, max_df_frac=1.0)
  # bridging words only; by total document frequency, then alphabetically
  assert v.words == ["acme", "outdoorsy", "paper", "pencils", "staedtler"]
  assert [v.id(w) for w in ("acme", "Outdoorsy", "frame", "arts")] == [1, 2, 0, 0]
  assert len(v) == 6 and v.shared() == v.words
  assert v.df["Art"].tolist() == [0, 2, 1, 1, 1, 1]
  assert v.df["Office"].tolist() == [0, 1, 1, 1, 1, 1]
  # domain-only words are kept when allowed, ranked after the bridges; a root category that
  # covers > max_df_frac of a domain ("arts", "office"; here also "acme" in Art) is dropped
  v2 = K.build_entity_vocab(ds, min_df=1, cross_domain_only=False, max_df_frac=0.5)
  assert v2.words == ["outdoorsy", "paper", "pencils", "staedtler", "clipboards", "frames",
                      "trailco"]
  assert K.EntityVocab.from_json(v2.to_json()).words == v2.words
  # item-level targets
  ents = K.item_entities(ds, v)
  mh = K.to_multi_hot(ents["Art"], len(v))
  assert mh.tolist() == [[0, 1, 1, 0, 0, 0], [0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1]]


def test_token_labels_align_with_wordpieces(tokenizer):
  ds = hand_dataset()
  v = K.build_entity_vocab(ds, min_df=2, max_df_frac=1.0)
  L = 24
  lab = K.token_labels(ds, tokenizer, v, L)
  for name, d in ds.domains.items():  # the same ids as the LM's tokenisation
    ids, mask = encode_texts(tokenizer, d.items.joined_text(), L)
    np.testing.assert_array_equal(lab.ids[name], ids)
    np.testing.assert_array_equal(lab.mask[name], mask)
  toks = tokenizer.convert_ids_to_tokens(lab.ids["Art"][0].tolist())
  assert toks[:7] == ["[CLS]", "rugged", "outdoors", "##y", "trail", "frame", "."]
  o = v.id("outdoorsy")
  # every piece of 'outdoorsy' carries its label; 'frame' is not 'frames' (exact words)
  assert lab.labels["Art"][0, :6].tolist() == [0, 0, o, o, 0, 0]
  # title tokens count; [CLS], separators, the category/brand context and padding do not
  assert lab.weights["Art"][0, :6].tolist() == [0, 1, 1, 1, 1, 1]
  assert lab.weights["Art"][0, 6:].sum() == 0
  assert toks.count("##y") == 2 and lab.labels["Art"][0, 6:].sum() == 0
  # the same entity id labels the same word in the other domain
  assert o in lab.labels["Office"][1].tolist()
  # 'acme' and 'paper' in Art item 1; 'pencils' only where the item's own path says so
  assert set(lab.labels["Art"][1][lab.labels["Art"][1] > 0].tolist()) == {v.id("acme"),
                                                                           v.id("paper")}
  first = K.token_labels(ds, tokenizer, v, L, first_piece_only=True)
  assert first.weights["Art"][0, :6].tolist() == [0, 1, 1, 0, 1, 1]
  assert first.labels["Art"][0, 2] == o


def small_world():
  from xdkt_jax.data import synthetic
  c = synthetic.default_config()
  c.n_users, c.items_per_domain, c.interactions = 150, 160, 2000
  return synthetic.generate(c)


def test_knowledge_head_trains_lk_falls(tokenizer):
  ds = small_world()
  v = K.build_entity_vocab(ds, min_df=2)
  assert len(v.shared()) == len(v.words) > 10   # categories and brands bridge both domains
  lab = K.token_labels(ds, tokenizer, v, 24)
  enc_cfg = EncoderConfig.tiny(vocab_size=30522, max_len=24)
  enc = {"encoder": init_params(enc_cfg, jax.random.PRNGKey(1))["encoder"]}
  tcfg = K.KnowledgeTrainConfig(steps=60, batch_size=32, lr=1e-2, dropout=0.0, entity_dim=32)
  params, m = K.train_knowledge(enc_cfg, enc, lab, len(v), tcfg, log_fn=lambda s: None)
  for part in ("train", "heldout"):
    for d in ds.domains:
      b, a = m["before"][part][d], m["after"][part][d]
      assert a["lk"] < 0.6 * b["lk"], (part, d, b, a)
      assert a["entity_recall"] > b["entity_recall"]
  assert m["after"]["train"]["Books"]["entity_recall"] > 0.5
  # frozen encoder (the default): the encoder weights are bit-identical
  same = jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), params["encoder"],
                      enc["encoder"])
  assert all(jax.tree.leaves(same))
  assert params["knowledge_head"]["entity_embed"].shape == (len(v), 32)


def test_finetune_encoder_trains_it(tokenizer):
  ds = small_world()
  v = K.build_entity_vocab(ds, min_df=2)
  lab = K.token_labels(ds, tokenizer, v, 16)
  enc_cfg = EncoderConfig.tiny(vocab_size=30522, max_len=16)
  enc = init_params(enc_cfg, jax.random.PRNGKey(1))     # LanguageModel params: lm_head ignored
  tcfg = K.KnowledgeTrainConfig(steps=2, batch_size=16, finetune_encoder=True, eval_max_items=16)
  p1, m1 = K.train_knowledge(enc_cfg, enc, lab, len(v), tcfg, log_fn=lambda s: None)
  q = lambda p: np.asarray(p["encoder"]["layers_1"]["attn"]["query"]["kernel"])
  assert not np.array_equal(q(p1), q(enc))
  assert set(p1) == {"encoder", "knowledge_head"} and m1["finetune_encoder"]


def test_item_knowledge_cached(tmp_path, tokenizer):
  ds = hand_dataset()
  v = K.build_entity_vocab(ds, min_df=2, max_df_frac=1.0)
  lab = K.token_labels(ds, tokenizer, v, 16)
  enc_cfg = EncoderConfig.tiny(vocab_size=30522, max_len=16)
  params = init_params(enc_cfg, jax.random.PRNGKey(0))
  kw = dict(cache_dir=tmp_path, batch_size=2)
  a = K.extract_item_knowledge(enc_cfg, params, lab.ids, lab.mask, **kw)
  assert not a.cache_hit and a.vectors["Art"].shape == (3, 32)
  assert a.vectors["Art"].dtype == np.float32 and np.isfinite(a.vectors["Art"]).all()
  # the pooled vector is the LM's sentence embedding
  from xdkt_jax.lm import embed_texts
  np.testing.assert_allclose(a.vectors["Office"], embed_texts(
      enc_cfg, params, lab.ids["Office"], lab.mask["Office"], pooling="mean"), atol=1e-5)
  b = K.extract_item_knowledge(enc_cfg, params, lab.ids, lab.mask, **kw)
  assert b.cache_hit and b.fingerprint == a.fingerprint
  np.testing.assert_array_equal(a.vectors["Art"], b.vectors["Art"])
  changed = jax.tree.map(lambda x: x, params)
  changed["encoder"]["embed_ln"]["bias"] = changed["encoder"]["embed_ln"]["bias"] + 0.1
  c = K.extract_item_knowledge(enc_cfg, changed, lab.ids, lab.mask, **kw)
  assert not c.cache_hit and c.fingerprint != a.fingerprint
  assert not np.allclose(c.vectors["Art"], a.vectors["Art"])
  # with entity vectors: [pooled ; entity], a different cache entry
  from xdkt_jax.models.knowledge_head import KnowledgeHeadConfig, KnowledgeModel
  km = KnowledgeModel(enc_cfg, KnowledgeHeadConfig(num_labels=len(v), entity_dim=8))
  kp = km.init(jax.random.PRNGKey(2), lab.ids["Art"][:1], lab.mask["Art"][:1])["params"]
  from flax import linen as nn
  kp = {**jax.tree.map(np.asarray, nn.meta.unbox(kp)), "encoder": params["encoder"]}
  e = K.extract_item_knowledge(enc_cfg, kp, lab.ids, lab.mask, entity_mode="predicted", **kw)
  assert not e.cache_hit and e.vectors["Art"].shape == (3, 40)
  np.testing.assert_allclose(e.vectors["Art"][:, :32], a.vectors["Art"], atol=1e-6)


def _split(ds, train_rows):
  return Split(protocol="warm", k=0, targets=["Office"], sources=["Art"], train_rows=train_rows,
               eval={}, dataset_fingerprint="", info={})


def test_user_knowledge_mean_recency_attention():
  ds = hand_dataset()                      # users: u0, u1, u2 (u2 has no Art history)
  # Art row 3 (u0, item 2) is not a training row: it must not count
  split = _split(ds, {"Art": np.array([0, 1, 2]), "Office": np.array([0, 1, 2])})
  rng = np.random.default_rng(0)
  know = {"Art": rng.normal(size=(3, 5)).astype(np.float32),
          "Office": rng.normal(size=(3, 5)).astype(np.float32)}
  ref = np.zeros((ds.n_users, 5))
  inter = ds.domains["Art"].inter
  for u in range(ds.n_users):
    rows = [r for r in split.train_rows["Art"] if inter.user[r] == u]
    if rows:
      ref[u] = np.mean([know["Art"][inter.item[r]] for r in rows], axis=0)
  out, has = K.user_knowledge(know, ds, split, mode="mean")
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  assert has.tolist() == [True, True, False]
  assert not out[2].any()
  # untrained attention (zero query) is the mean; no NaN for the user without history
  att, has_a = K.user_knowledge(know, ds, split, mode="attention")
  np.testing.assert_allclose(att, ref, rtol=1e-5, atol=1e-6)
  assert has_a.tolist() == has.tolist() and np.isfinite(att).all()
  # recency: u0's items 0 (age 1) and 1 (age 0)
  rec, _ = K.user_knowledge(know, ds, split, mode="recency", tau=2.0)
  w = np.exp(-np.array([1.0, 0.0]) / 2.0)
  np.testing.assert_allclose(rec[0], (w / w.sum()) @ know["Art"][[0, 1]], rtol=1e-5)
  np.testing.assert_allclose(rec[1], know["Art"][2], rtol=1e-6)
  assert not rec[2].any()
  # trained attention: matches a numpy softmax over the user's history
  from xdkt_jax.models.knowledge_head import HistoryAttention
  p = HistoryAttention(attn_dim=4).init(jax.random.PRNGKey(0), np.zeros((1, 2, 5)),
                                        np.ones((1, 2), np.int8), np.zeros((1, 2), np.int32))
  p = jax.tree.map(lambda x: np.asarray(x) + 0.5, p["params"])
  att2, _ = K.user_knowledge(know, ds, split, mode="attention", attn_params=p, attn_dim=4)
  h = know["Art"][[0, 1]]
  s = (h @ p["key"]["kernel"]) @ p["query"] / 2.0 + p["age_bias"][[1, 0]]
  a = np.exp(s - s.max())
  np.testing.assert_allclose(att2[0], (a / a.sum()) @ h, rtol=1e-5)
  assert not att2[2].any()
  # a protocol without source domains: nobody has source knowledge
  none, has_n = K.user_knowledge(know, ds, _split(ds, split.train_rows), domains=[])
  assert not none.any() and not has_n.any()
