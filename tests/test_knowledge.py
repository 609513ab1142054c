"""Knowledge extraction: entity vocabulary, token-label alignment, L_k training, cached item
knowledge."""

import dataclasses

import jax
import numpy as np
import pytest

from configs import common
from conftest import make_dataset
from xdkt_jax.knowledge import entities, item_vectors, labels, train
from xdkt_jax.train import trainer as trainer_lib
from xdkt_jax.data.schema import ItemTable
from xdkt_jax.data.tokenization import encode_texts, load_tokenizer
from xdkt_jax.models.encoder import init_params
from xdkt_jax.models.encoder_config import EncoderConfig

ITEMS = {
  "Art": [
    ("rugged outdoorsy trail frame", "arts > outdoorsy > frames", "acme"),
    ("acme watercolor paper pad", "arts > paper", "acme"),
    ("sketch pencils", "arts > pencils", "staedtler"),
  ],
  "Office": [
    ("acme printer paper ream", "office > paper", "acme"),
    ("outdoorsy clipboard", "office > outdoorsy > clipboards", "trailco"),
    ("staedtler pencils hb", "office > pencils", "staedtler"),
  ],
}


def hand_dataset():
  spec = {
    "Art": [("u0", 0, 1), ("u0", 1, 2), ("u1", 2, 1), ("u0", 2, 3)],
    "Office": [("u0", 0, 1), ("u2", 1, 1), ("u2", 2, 2)],
  }
  ds = make_dataset(spec)
  for name, rows in ITEMS.items():
    cols = list(zip(*rows))
    d = ds.domains[name]
    d.items = ItemTable(
      ids=d.items.ids,
      text={f: np.array(c, dtype=object) for f, c in zip(("title", "categories", "brand"), cols)},
    )
  return ds


# The run's vocabulary settings (configs/common.py), overridden per test.
VOCAB = dict(
  min_df=2,
  max_size=2000,
  cross_domain_only=False,
  fields=("categories", "brand"),
  max_df_frac=0.5,
  min_domain_df=1,
)


def vocab(ds, **over):
  return entities.build_entity_vocab(ds, **{**VOCAB, **over})


def train_config(**over) -> train.KnowledgeTrainConfig:
  return train.KnowledgeTrainConfig.from_config(common.knowledge_config(), **over)


# One device, no sharding rules, no checkpoints: what a test run needs.
RUN = trainer_lib.RunSettings(
  mesh=None, rules=None, ckpt=None, seed=0, log_every=10, progress=False
)


@pytest.fixture(scope="module")
def tokenizer():
  return load_tokenizer("minilm")


def test_entity_vocab_known_ids_shared_across_domains():
  ds = hand_dataset()
  v = vocab(ds, min_df=2, cross_domain_only=True, max_df_frac=1.0)
  # bridging words only; by total document frequency, then alphabetically
  assert v.words == ["acme", "outdoorsy", "paper", "pencils", "staedtler"]
  assert [v.id(w) for w in ("acme", "Outdoorsy", "frame", "arts")] == [1, 2, 0, 0]
  assert len(v) == 6 and v.shared() == v.words
  assert v.df["Art"].tolist() == [0, 2, 1, 1, 1, 1]
  assert v.df["Office"].tolist() == [0, 1, 1, 1, 1, 1]
  # domain-only words are kept when allowed, ranked after the bridges; a root category that
  # covers > max_df_frac of a domain ("arts", "office"; here also "acme" in Art) is dropped
  v2 = vocab(ds, min_df=1, cross_domain_only=False, max_df_frac=0.5)
  assert v2.words == [
    "outdoorsy",
    "paper",
    "pencils",
    "staedtler",
    "clipboards",
    "frames",
    "trailco",
  ]
  assert entities.EntityVocab.from_json(v2.to_json()).words == v2.words
  # item-level targets
  ents = entities.item_entities(ds, v)
  mh = entities.to_multi_hot(ents["Art"], len(v))
  assert mh.tolist() == [[0, 1, 1, 0, 0, 0], [0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1]]


def test_token_labels_align_with_wordpieces(tokenizer):
  ds = hand_dataset()
  v = vocab(ds, min_df=2, max_df_frac=1.0, cross_domain_only=True)
  L = 24
  lab = labels.token_labels(ds, tokenizer, v, L)
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
  assert set(lab.labels["Art"][1][lab.labels["Art"][1] > 0].tolist()) == {
    v.id("acme"),
    v.id("paper"),
  }
  first = labels.token_labels(ds, tokenizer, v, L, first_piece_only=True)
  assert first.weights["Art"][0, :6].tolist() == [0, 1, 1, 0, 1, 1]
  assert first.labels["Art"][0, 2] == o


def small_world():
  from xdkt_jax.data import synthetic

  c = synthetic.default_config()
  c.n_users, c.items_per_domain, c.interactions = 150, 160, 2000
  return synthetic.generate(c)


def test_knowledge_head_trains_lk_falls(tokenizer):
  ds = small_world()
  v = vocab(ds, min_df=2, cross_domain_only=True)
  assert len(v.shared()) == len(v.words) > 10  # categories and brands bridge both domains
  lab = labels.token_labels(ds, tokenizer, v, 24)
  enc_cfg = EncoderConfig.tiny(vocab_size=30522, max_len=24)
  enc = {"encoder": init_params(enc_cfg, jax.random.PRNGKey(1))["encoder"]}
  tcfg = train_config(steps=60, batch_size=32, lr=1e-2, dropout=0.0, entity_dim=32)
  params, m = train.train_knowledge(enc_cfg, enc, lab, len(v), tcfg, RUN, log_fn=lambda s: None)
  for part in ("train", "heldout"):
    for d in ds.domains:
      b, a = m["before"][part][d], m["after"][part][d]
      assert a["lk"] < 0.6 * b["lk"], (part, d, b, a)
      assert a["entity_recall"] > b["entity_recall"]
  assert m["after"]["train"]["Books"]["entity_recall"] > 0.5
  # frozen encoder (the default): the encoder weights are bit-identical
  same = jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), params["encoder"], enc["encoder"])
  assert all(jax.tree.leaves(same))
  assert params["knowledge_head"]["entity_embed"].shape == (len(v), 32)


def test_finetune_encoder_trains_it(tokenizer):
  ds = small_world()
  v = vocab(ds, min_df=2, cross_domain_only=True)
  lab = labels.token_labels(ds, tokenizer, v, 16)
  enc_cfg = EncoderConfig.tiny(vocab_size=30522, max_len=16)
  enc = init_params(enc_cfg, jax.random.PRNGKey(1))  # LanguageModel params: lm_head ignored
  tcfg = train_config(steps=2, batch_size=16, finetune_encoder=True, eval_max_items=16)
  p1, m1 = train.train_knowledge(enc_cfg, enc, lab, len(v), tcfg, RUN, log_fn=lambda s: None)
  q = lambda p: np.asarray(p["encoder"]["layers_1"]["attn"]["query"]["kernel"])
  assert not np.array_equal(q(p1), q(enc))
  assert set(p1) == {"encoder", "knowledge_head"} and m1["finetune_encoder"]


def test_item_knowledge_cached(tmp_path, tokenizer):
  ds = hand_dataset()
  v = vocab(ds, min_df=2, max_df_frac=1.0, cross_domain_only=True)
  lab = labels.token_labels(ds, tokenizer, v, 16)
  enc_cfg = EncoderConfig.tiny(vocab_size=30522, max_len=16)
  params = init_params(enc_cfg, jax.random.PRNGKey(0))
  kw = dict(cache_dir=tmp_path, batch_size=2)
  a = item_vectors.extract_item_knowledge(enc_cfg, params, lab.ids, lab.mask, **kw)
  assert not a.cache_hit and a.vectors["Art"].shape == (3, 32)
  assert a.vectors["Art"].dtype == np.float32 and np.isfinite(a.vectors["Art"]).all()
  # the pooled vector is the LM's sentence embedding
  from xdkt_jax.lm import embed_texts

  np.testing.assert_allclose(
    a.vectors["Office"],
    embed_texts(enc_cfg, params, lab.ids["Office"], lab.mask["Office"], pooling="mean"),
    atol=1e-5,
  )
  b = item_vectors.extract_item_knowledge(enc_cfg, params, lab.ids, lab.mask, **kw)
  assert b.cache_hit and b.fingerprint == a.fingerprint
  np.testing.assert_array_equal(a.vectors["Art"], b.vectors["Art"])
  changed = jax.tree.map(lambda x: x, params)
  changed["encoder"]["embed_ln"]["bias"] = changed["encoder"]["embed_ln"]["bias"] + 0.1
  c = item_vectors.extract_item_knowledge(enc_cfg, changed, lab.ids, lab.mask, **kw)
  assert not c.cache_hit and c.fingerprint != a.fingerprint
  assert not np.allclose(c.vectors["Art"], a.vectors["Art"])
  # with entity vectors: [pooled ; entity], a different cache entry
  from xdkt_jax.models.knowledge_head import KnowledgeHeadConfig, KnowledgeModel

  km = KnowledgeModel(enc_cfg, KnowledgeHeadConfig(num_labels=len(v), entity_dim=8))
  kp = km.init(jax.random.PRNGKey(2), lab.ids["Art"][:1], lab.mask["Art"][:1])["params"]
  from flax import linen as nn

  kp = {**jax.tree.map(np.asarray, nn.meta.unbox(kp)), "encoder": params["encoder"]}
  e = item_vectors.extract_item_knowledge(
    enc_cfg, kp, lab.ids, lab.mask, entity_mode="predicted", **kw
  )
  assert not e.cache_hit and e.vectors["Art"].shape == (3, 40)
  np.testing.assert_allclose(e.vectors["Art"][:, :32], a.vectors["Art"], atol=1e-6)


def test_knowledge_settings_have_one_source():
  """Every key of the run config's `knowledge` section is read (training or extraction), and
  the trainer's config takes its values from there: an unknown or missing key is refused."""
  section = common.knowledge_config()
  fields = {f.name for f in dataclasses.fields(train.KnowledgeTrainConfig)}
  assert set(section) == fields | train.EXTRACTION_KEYS
  assert train_config().steps == section.steps
  with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepz'\]"):
    train.KnowledgeTrainConfig.from_config({**section.to_dict(), "stepz": 3})
  with pytest.raises(ValueError, match=r"missing key\(s\) \['steps'\]"):
    train.KnowledgeTrainConfig.from_config({k: v for k, v in section.items() if k != "steps"})
