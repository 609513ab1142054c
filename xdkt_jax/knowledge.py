"""Knowledge extraction (L_k) and item / user knowledge vectors.

L_k = −Σ_i Σ_j log p(k_ij | x_ij, W_k), with labels k_ij derived from the data itself:

ENTITY VOCABULARY (`build_entity_vocab`).  An entity is a WORD of an item's structured text
(`entity_fields`, default: the category path and the brand).  Words are lower-cased,
accent-stripped runs of letters/digits; a word qualifies when it
  * has >= 2 characters and at least one letter, and is not a stopword;
  * names >= `min_df` items (document frequency over all domains' items);
  * covers at most `max_df_frac` of any one domain's items (a root category such as
    "office products" marks the domain, not a piece of knowledge);
  * with `cross_domain_only`, is named by >= `min_domain_df` items in each of >= 2 domains
    (so it BRIDGES catalogues).  Without it, bridging words still rank first.
Ranking: bridging first, then by total document frequency, then alphabetically; the first
`max_size` words get ids 1..E in that order (0 = none).  One vocabulary serves every domain.

TOKEN LABELS (`token_labels`).  The LM text of an item is its joined text fields (title first,
exactly `ItemTable.joined_text`, tokenised exactly like `tokenization.encode_texts`).  A token
that lies in a `label_fields` span (default: the title) gets the id of the word it is part of
iff that word is an entity AND one of the item's own entity-field words (the title names
something the item's category path / brand says it is); otherwise 0 = none.  ALL word pieces
of a labelled word carry its label (`first_piece_only=False`): each piece is then a training
signal and an item's predicted entities do not hinge on its first piece; with
`first_piece_only=True` the later pieces get weight 0 (ignored, the CoNLL convention).
Weights are 1 on every label-field token (entity or none) and 0 on special tokens, padding and
the other fields: those are context x_ij, not targets (a category word would otherwise be
labelled "none" here and the entity in the title, a contradiction).

ITEM KNOWLEDGE (`extract_item_knowledge`): the pooled W_k-encoder vector, optionally
concatenated with the item's entity vector (its expected entity embedding under the tagger),
cached on disk per item under a fingerprint of weights + tokenised text + settings.

USER KNOWLEDGE (`user_knowledge`): aggregation of the knowledge of the items a user has in
the split's TRAINING rows of the source domains (mean, recency-weighted, or learned attention).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import artifacts, losses
from xdkt_jax.data import leakage
from xdkt_jax.data.batching import Batcher, fixed_shape_batches, pad_sequences
from xdkt_jax.data.schema import CrossDomainDataset, ItemTable
from xdkt_jax.models.encoder import EncoderConfig
from xdkt_jax.models.knowledge_head import (ENTITY_MODES, HistoryAttention,
                                            KnowledgeHeadConfig, KnowledgeModel)

USER_MODES = ("mean", "recency", "attention")

# A small English stopword list plus the connectors category paths use ("&", "and", "for").
STOPWORDS = frozenset("""
a an and are as at be but by for from has have in into is it its of on or s t the their this
to with without your you our not no all any each more most other some such than too very can
will just own same so only both few up down out off over under again further then once here
there when where why how what which who whom these those am was were been being do does did
doing would should could ll re ve d m y""".split())

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


# ---------------------------------------------------------------------------------------------
# Words.

def normalize_word(w: str) -> str:
  """Lower case without accents: the uncased tokenizers' view of a word."""
  w = unicodedata.normalize("NFKD", w)
  return "".join(c for c in w if not unicodedata.combining(c)).lower()


def word_spans(text: str) -> list[tuple[int, int, str]]:
  """(start, end, normalised word) of every word of `text`."""
  return [(m.start(), m.end(), normalize_word(m.group())) for m in _WORD.finditer(text)]


def _qualifies(w: str, stopwords) -> bool:
  return len(w) >= 2 and w not in stopwords and any(c.isalpha() for c in w)


def item_entity_words(items: ItemTable, fields, stopwords=STOPWORDS) -> list[frozenset]:
  """Per item: the set of qualifying words of its entity fields."""
  cols = [items.text[f] for f in fields if f in items.text]
  out = []
  for i in range(len(items)):
    ws = set()
    for c in cols:
      ws.update(w for _, _, w in word_spans(c[i] or "") if _qualifies(w, stopwords))
    out.append(frozenset(ws))
  return out


# ---------------------------------------------------------------------------------------------
# Entity vocabulary.

@dataclasses.dataclass
class EntityVocab:
  """Entity words ↔ ids (id 0 = none; word i has id i+1) and per-domain document counts."""
  words: list[str]
  df: dict[str, np.ndarray]          # domain -> [K] int64: items of the domain naming entity k
  settings: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.index = {w: i + 1 for i, w in enumerate(self.words)}

  def __len__(self) -> int:
    """K, the number of labels: entities + none."""
    return len(self.words) + 1

  def id(self, word: str) -> int:
    return self.index.get(normalize_word(word), 0)

  def word(self, i: int) -> str:
    return "<none>" if i == 0 else self.words[i - 1]

  def n_domains(self) -> np.ndarray:
    """[K] in how many domains each entity occurs."""
    return sum((v > 0).astype(np.int64) for v in self.df.values())

  def shared(self) -> list[str]:
    """Entities named by items of >= 2 domains (the bridges)."""
    nd = self.n_domains()
    return [w for i, w in enumerate(self.words, 1) if nd[i] >= 2]

  def to_json(self) -> str:
    return json.dumps({"words": self.words, "settings": self.settings,
                       "df": {d: v.tolist() for d, v in self.df.items()}})

  @classmethod
  def from_json(cls, s: str) -> "EntityVocab":
    o = json.loads(s)
    return cls(o["words"], {d: np.asarray(v, np.int64) for d, v in o["df"].items()},
               o.get("settings", {}))

  def fingerprint(self) -> str:
    return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def build_entity_vocab(ds: CrossDomainDataset, *, min_df: int = 2, max_size: int = 2000,
                       cross_domain_only: bool = True, fields=("categories", "brand"),
                       max_df_frac: float = 0.5, min_domain_df: int = 1,
                       stopwords=STOPWORDS) -> EntityVocab:
  """The shared entity vocabulary of `ds` (rule: module docstring)."""
  fields = tuple(fields)
  per_dom: dict[str, dict[str, int]] = {}
  n_items = {}
  for name, d in ds.domains.items():
    cnt: dict[str, int] = {}
    for ws in item_entity_words(d.items, fields, stopwords):
      for w in ws:
        cnt[w] = cnt.get(w, 0) + 1
    per_dom[name], n_items[name] = cnt, max(len(d.items), 1)
  words = set().union(*per_dom.values()) if per_dom else set()
  ranked = []
  for w in words:
    counts = [per_dom[n].get(w, 0) for n in per_dom]
    total, n_dom = sum(counts), sum(c >= max(min_domain_df, 1) for c in counts)
    if total < min_df or (cross_domain_only and n_dom < 2):
      continue
    if any(per_dom[n].get(w, 0) / n_items[n] > max_df_frac for n in per_dom):
      continue
    ranked.append((-(n_dom >= 2), -total, w))
  ranked.sort()
  kept = [w for _, _, w in ranked[:max_size]]
  df = {n: np.array([0] + [per_dom[n].get(w, 0) for w in kept], np.int64) for n in per_dom}
  settings = dict(min_df=int(min_df), max_size=int(max_size),
                  cross_domain_only=bool(cross_domain_only), fields=list(fields),
                  max_df_frac=float(max_df_frac), min_domain_df=int(min_domain_df))
  return EntityVocab(kept, df, settings)


def item_entities(ds: CrossDomainDataset, vocab: EntityVocab, *, fields=None
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Item-level targets, sparse: per domain (offsets [n_items+1] int64, ids [m] int32), the
  sorted entity ids named by each item's entity fields.  `to_multi_hot` densifies."""
  fields = tuple(fields or vocab.settings.get("fields", ("categories", "brand")))
  out = {}
  for name, d in ds.domains.items():
    rows = [sorted(vocab.index[w] for w in ws if w in vocab.index)
            for ws in item_entity_words(d.items, fields)]
    off = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=off[1:])
    ids = np.fromiter((i for r in rows for i in r), np.int32, count=int(off[-1]))
    out[name] = (off, ids)
  return out


def to_multi_hot(csr: tuple[np.ndarray, np.ndarray], num_labels: int) -> np.ndarray:
  """(offsets, ids) → [n_items, K] uint8 multi-hot (column 0, none, stays 0)."""
  off, ids = csr
  out = np.zeros((len(off) - 1, num_labels), np.uint8)
  out[np.repeat(np.arange(len(off) - 1), np.diff(off)), ids] = 1
  return out


# ---------------------------------------------------------------------------------------------
# Token labels.

@dataclasses.dataclass
class KnowledgeLabels:
  """Per domain, aligned with the LM's token arrays: labels [n, L] int32 (0 = none), weights
  [n, L] float32 (1 = a label-field token that counts in L_k), and the ids / mask the labels
  were aligned with (equal to `tokenize_items` output for the same fields and length)."""
  labels: dict[str, np.ndarray]
  weights: dict[str, np.ndarray]
  ids: dict[str, np.ndarray]
  mask: dict[str, np.ndarray]


def joined_with_spans(items: ItemTable, i: int, fields=None, sep: str = ". "):
  """Item i's `ItemTable.joined_text` string and its {field: (start, end)} char spans."""
  fields = list(items.text) if fields is None else list(fields)
  parts, spans, at = [], {}, 0
  for f in fields:
    if f not in items.text or not items.text[f][i]:
      continue
    if parts:
      at += len(sep)
    s = items.text[f][i]
    spans[f] = (at, at + len(s))
    parts.append(s)
    at += len(s)
  return sep.join(parts), spans


def _label_one(text, spans, offsets, own_words, vocab, label_fields, first_piece_only):
  L = len(offsets)
  lab = np.zeros(L, np.int32)
  wt = np.zeros(L, np.float32)
  lspans = [spans[f] for f in label_fields if f in spans]
  if not lspans:
    return lab, wt
  words = word_spans(text)
  starts = [w[0] for w in words]
  seen = set()
  for t, (s, e) in enumerate(offsets):
    if e <= s or not any(a <= s < b for a, b in lspans):
      continue                                   # special / pad / context field
    wt[t] = 1.0
    k = np.searchsorted(starts, s, side="right") - 1
    if k < 0 or not words[k][0] <= s < words[k][1]:
      continue                                   # punctuation: none
    if first_piece_only and k in seen:
      wt[t] = 0.0
      continue
    seen.add(k)
    w = words[k][2]
    if w in own_words:
      lab[t] = vocab.index.get(w, 0)
  return lab, wt


def token_labels(ds: CrossDomainDataset, tokenizer, vocab: EntityVocab, max_len: int,
                 text_fields=None, *, label_fields=("title",), entity_fields=None,
                 first_piece_only: bool = False, batch: int = 2048) -> KnowledgeLabels:
  """Per-token knowledge labels (rule: module docstring).  `tokenizer` is a fast tokenizer or
  a spec for `load_tokenizer`; `text_fields` must be the LM's (None = all, as tokenize_items)."""
  if isinstance(tokenizer, str):
    from xdkt_jax.data.tokenization import load_tokenizer  # pylint: disable=import-outside-toplevel
    tokenizer = load_tokenizer(tokenizer)
  if not getattr(tokenizer, "is_fast", False):
    raise ValueError("token_labels needs a fast tokenizer (offset mappings)")
  entity_fields = tuple(entity_fields or vocab.settings.get("fields", ("categories", "brand")))
  text_fields = list(text_fields) if text_fields else None
  pad = tokenizer.pad_token_id or 0
  out = KnowledgeLabels({}, {}, {}, {})
  for name, d in ds.domains.items():
    n = len(d.items)
    own = item_entity_words(d.items, entity_fields)
    lab = np.zeros((n, max_len), np.int32)
    wt = np.zeros((n, max_len), np.float32)
    ids = np.full((n, max_len), pad, np.int32)
    mask = np.zeros((n, max_len), np.int8)
    for s0 in range(0, n, batch):
      idx = range(s0, min(s0 + batch, n))
      texts, spans = zip(*(joined_with_spans(d.items, i, text_fields) for i in idx))
      enc = tokenizer(list(texts), max_length=max_len, truncation=True, padding="max_length",
                      return_attention_mask=True, return_offsets_mapping=True)
      ids[s0:s0 + len(idx)] = np.asarray(enc["input_ids"], np.int32)
      mask[s0:s0 + len(idx)] = np.asarray(enc["attention_mask"], np.int8)
      for j, i in enumerate(idx):
        lab[i], wt[i] = _label_one(texts[j], spans[j], enc["offset_mapping"][j], own[i], vocab,
                                   label_fields, first_piece_only)
    out.labels[name], out.weights[name], out.ids[name], out.mask[name] = lab, wt, ids, mask
  return out


def label_stats(vocab: EntityVocab, labels: KnowledgeLabels, top: int = 15) -> dict:
  """What the labels look like: vocabulary size, bridging entities, labelled-token share."""
  per_dom = {}
  for d in labels.labels:
    w = labels.weights[d] > 0
    lab = labels.labels[d]
    per_dom[d] = {"label_tokens": int(w.sum()),
                  "labelled_frac": float(((lab > 0) & w).sum() / max(w.sum(), 1)),
                  "items_with_label": float(((lab > 0) & w).any(1).mean()) if len(lab) else 0.0}
  total = sum(vocab.df.values())
  order = np.argsort(-total[1:], kind="stable")[:top] + 1
  return {"entities": len(vocab.words), "shared_entities": len(vocab.shared()),
          "per_domain": per_dom,
          "top": [(vocab.word(int(k)), {d: int(v[k]) for d, v in vocab.df.items()})
                  for k in order]}


# ---------------------------------------------------------------------------------------------
# Training W_k with the shared engine.

@dataclasses.dataclass
class KnowledgeTrainConfig:
  steps: int = 200
  batch_size: int = 32
  lr: float = 1e-3
  warmup_steps: int = -1            # -1: 10% of steps
  schedule: str = "cosine"
  weight_decay: float = 0.01
  finetune_encoder: bool = False    # False: encoder frozen (W_k = W_t + head)
  entity_dim: int = 64
  dropout: float = 0.1
  heldout_frac: float = 0.1         # items per domain never trained on, for the L_k report
  eval_batch_size: int = 64
  eval_max_items: int = 2048        # per domain and part, to keep evaluation cheap
  seed: int = 0
  log_every: int = 10
  progress: bool = False

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any] | None = None, **kw) -> "KnowledgeTrainConfig":
    """From a ConfigDict / dict (unknown keys ignored) plus keyword overrides."""
    names = {f.name for f in dataclasses.fields(cls)}
    vals = {k: cfg[k] for k in (cfg or {}) if k in names}
    return cls(**{**vals, **kw})


def _split_items(n: int, frac: float, seed: int, salt: int):
  perm = np.random.default_rng([seed, 7177, salt]).permutation(n)
  n_held = min(max(int(round(n * frac)), 1 if n > 1 and frac > 0 else 0), max(n - 1, 0))
  return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _rows(arrays: dict, idx) -> dict:
  return {k: v[idx] for k, v in arrays.items()}


def make_eval_fn(model: KnowledgeModel):
  """Jitted (params, ids, mask, labels, weights) → (Σ nll, Σ w, Σ correct, Σ entity w,
  Σ entity correct): pooled exactly over any number of batches."""

  @jax.jit
  def ev(params, ids, mask, labels, weights):
    logits = model.apply({"params": params}, ids, mask, deterministic=True)
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, labels[..., None], -1)[..., 0]
    w = weights.astype(jnp.float32)
    hit = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    we = w * (labels > 0)
    return jnp.stack([jnp.sum(nll * w), w.sum(), jnp.sum(hit * w), we.sum(), jnp.sum(hit * we)])

  return ev


def evaluate_knowledge(ev, params, data: dict, *, batch_size: int) -> dict:
  """L_k per labelled token, token accuracy and entity recall (accuracy on entity tokens)."""
  tot = np.zeros(5)
  for b, _ in fixed_shape_batches(data, batch_size):   # padded rows weigh nothing
    tot += np.asarray(jax.device_get(ev(params, b["ids"], b["mask"], b["labels"],
                                        b["weights"])), np.float64)
  return {"lk": tot[0] / max(tot[1], 1), "accuracy": tot[2] / max(tot[1], 1),
          "entity_recall": tot[4] / max(tot[3], 1), "tokens": int(tot[1]),
          "entity_tokens": int(tot[3])}


def train_knowledge(enc_cfg: EncoderConfig, enc_params, labels: KnowledgeLabels,
                    num_labels: int, tcfg: KnowledgeTrainConfig | None = None, *,
                    mesh_cfg=None, rules=None, ckpt_dir: str | Path | None = None,
                    ckpt_cfg=None, log_fn=print):
  """Trains W_k = encoder (from `enc_params`, frozen unless `finetune_encoder`) + head on L_k
  over the items of every domain in `labels`.  Returns (params, metrics) where metrics hold
  L_k / accuracy / entity recall per domain on held-out and training items, before and after.
  `enc_params`: LanguageModel or KnowledgeModel params (only ["encoder"] is read), or None
  for a random encoder.  Resumes from `ckpt_dir` when given."""
  from xdkt_jax.train import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from xdkt_jax.train import loop as loop_lib
  from xdkt_jax.train import mesh as mesh_lib
  from xdkt_jax.train import trainer as trainer_lib
  tcfg = tcfg or KnowledgeTrainConfig()
  head_cfg = KnowledgeHeadConfig(num_labels=int(num_labels), entity_dim=int(tcfg.entity_dim),
                                 dropout=float(tcfg.dropout))
  model = KnowledgeModel(enc_cfg, head_cfg)
  mesh = mesh_lib.make_mesh(mesh_cfg)
  rules = mesh_lib.rules_from_config(rules)

  parts = {"train": {}, "heldout": {}}
  for i, d in enumerate(labels.labels):
    arrays = {"ids": labels.ids[d], "mask": labels.mask[d], "labels": labels.labels[d],
              "weights": labels.weights[d]}
    tr, he = _split_items(len(arrays["ids"]), float(tcfg.heldout_frac), int(tcfg.seed), i)
    parts["train"][d], parts["heldout"][d] = _rows(arrays, tr), _rows(arrays, he)
  pooled = {k: np.concatenate([v[k] for v in parts["train"].values()])
            for k in ("ids", "mask", "labels", "weights")}
  L = pooled["ids"].shape[1]
  init_fn = lambda rng: model.init(rng, jnp.zeros((1, L), jnp.int32), jnp.ones((1, L), jnp.int32))

  steps = int(tcfg.steps)
  opt_cfg = dict(lr=float(tcfg.lr), warmup_steps=trainer_lib.warmup_steps(tcfg.warmup_steps, steps),
                 total_steps=max(steps, 1), schedule=tcfg.schedule,
                 weight_decay=float(tcfg.weight_decay), clip_norm=1.0,
                 freeze=[] if tcfg.finetune_encoder else [r"^encoder/"])

  def start(state, sharding):
    if enc_params is None:
      return state
    # A jitted copy: the train step donates the state, and the caller's arrays must survive.
    enc = jax.jit(lambda t: jax.tree.map(jnp.copy, t),
                  out_shardings=sharding.params["encoder"])(enc_params["encoder"])
    return state.replace(params={**state.params, "encoder": enc})

  freeze_encoder = not tcfg.finetune_encoder

  def loss_fn(params, batch, rng):
    logits = model.apply({"params": params}, batch["ids"], batch["mask"], deterministic=False,
                         freeze_encoder=freeze_encoder, rngs={"dropout": rng})
    w = batch["weights"] * batch["example_mask"][:, None].astype(jnp.float32)
    loss, _ = losses.knowledge_loss(logits_BxLxK=logits, labels_BxL=batch["labels"],
                                    weights_BxL=w)
    hit = (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)
    we = w * (batch["labels"] > 0)
    return loss, {"accuracy": jnp.sum(hit * w) / jnp.maximum(w.sum(), 1.0),
                  "entity_recall": jnp.sum(hit * we) / jnp.maximum(we.sum(), 1.0)}

  trainer = trainer_lib.build(
      init_fn, loss_fn, opt_cfg, init_key=jax.random.PRNGKey(int(tcfg.seed)), mesh=mesh,
      rules=rules, start=start,
      ckpt_mngr=ckpt_lib.make_manager(Path(ckpt_dir), ckpt_cfg) if ckpt_dir else None)
  bs = min(int(tcfg.batch_size), len(pooled["ids"]))
  batcher = Batcher(pooled, bs, seed=int(tcfg.seed))
  data = loop_lib.StepIndexedData(batcher.batch_at, batcher.steps_per_epoch)
  data.set_state(trainer.data_position)

  ev = make_eval_fn(model)
  ebs, cap = int(tcfg.eval_batch_size), int(tcfg.eval_max_items)

  def evaluate(params):
    return {part: {d: evaluate_knowledge(ev, params, _rows(a, slice(0, cap)), batch_size=ebs)
                   for d, a in parts[part].items() if len(a["ids"])}
            for part in ("train", "heldout")}

  before = evaluate(trainer.fresh().params if data.step else trainer.state.params)
  writer = None
  if ckpt_dir:
    from xdkt_jax.train.writers import MetricWriter  # pylint: disable=import-outside-toplevel
    writer = MetricWriter(str(Path(ckpt_dir).parent / "logs"))
  try:
    result = trainer.run(data, total_steps=steps, stage="knowledge", writer=writer,
                         log_every=int(tcfg.log_every), progress=bool(tcfg.progress))
  finally:
    if writer is not None:
      writer.close()
  params = jax.device_get(result.state.params)
  after = evaluate(params)
  for d, m in after["heldout"].items():
    log_fn(f"knowledge: {d} held-out L_k {before['heldout'][d]['lk']:.3f} → {m['lk']:.3f}, "
           f"entity recall {before['heldout'][d]['entity_recall']:.3f} → "
           f"{m['entity_recall']:.3f} ({m['entity_tokens']} entity tokens)")
  metrics = {"steps": steps, "num_labels": int(num_labels),
             "resumed_at": int(trainer.data_position["step"]),
             "finetune_encoder": bool(tcfg.finetune_encoder), "before": before, "after": after,
             "final_train_metrics": result.metrics}
  return params, metrics


# ---------------------------------------------------------------------------------------------
# Item knowledge vectors, cached.

@dataclasses.dataclass
class ItemKnowledge:
  vectors: dict[str, np.ndarray]     # domain -> [n_items, D] float32
  fingerprint: str
  cache_hit: bool
  path: Path | None = None


def params_fingerprint(tree) -> str:
  """Hash of every leaf's path, dtype, shape and bytes: changes iff the weights change."""
  h = hashlib.sha256()
  flat, _ = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))
  for path, leaf in flat:
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:20]


def _arrays_digest(h, arrays: Mapping[str, np.ndarray]):
  for name, a in arrays.items():
    a = np.ascontiguousarray(a)
    h.update(f"{name}|{a.dtype}|{a.shape}".encode())
    h.update(a.tobytes())


def _save_npy_atomic(path: Path, arr: np.ndarray):
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  with open(tmp, "wb") as f:
    np.save(f, arr)
  os.replace(tmp, path)


@functools.lru_cache(maxsize=16)
def _knowledge_runner(enc_cfg, head_cfg, pooling, entity_mode):
  """One jitted extractor per model shape and setting, so repeated extractions (new weights,
  other domains) reuse the compilation."""
  model = KnowledgeModel(enc_cfg, head_cfg)

  @jax.jit
  def run(p, ids, mask):
    pooled, ent = model.apply({"params": p}, ids, mask, pooling=pooling, entity_mode=entity_mode,
                              method=KnowledgeModel.knowledge)
    return pooled if ent is None else jnp.concatenate([pooled, ent], -1)

  return run


def extract_item_knowledge(enc_cfg: EncoderConfig, params, ids_by_domain: Mapping[str, np.ndarray],
                           mask_by_domain: Mapping[str, np.ndarray], *, pooling: str = "mean",
                           entity_mode: str = "none", cache_dir: str | Path | None = None,
                           weights_fingerprint: str | None = None,
                           batch_size: int = 256) -> ItemKnowledge:
  """Per domain float32 [n_items, D] knowledge: [pooled encoder vector ; entity vector].

  `params`: KnowledgeModel params (W_k), or LanguageModel params when entity_mode='none'.
  Cached as `<cache_dir>/knowledge-<fp>/<i>.npy` (one row per item; meta.json written last,
  every file by atomic rename), where fp hashes the weights (`weights_fingerprint`, e.g. a
  stage fingerprint, else the params' bytes), the token arrays, and every setting here.
  """
  if entity_mode not in ENTITY_MODES:
    raise ValueError(f"entity_mode must be one of {ENTITY_MODES}, got {entity_mode!r}")
  used = {"encoder": params["encoder"]}
  if entity_mode != "none":
    if "knowledge_head" not in params:
      raise ValueError(f"entity_mode={entity_mode!r} needs knowledge-head params "
                       "(train_knowledge's output)")
    used["knowledge_head"] = params["knowledge_head"]
  domains = list(ids_by_domain)
  h = hashlib.sha256(b"xdkt-knowledge-v1")
  h.update((weights_fingerprint or params_fingerprint(used)).encode())
  h.update(json.dumps(enc_cfg.to_hf(), sort_keys=True).encode())
  h.update(f"{pooling}|{entity_mode}|{domains}".encode())
  _arrays_digest(h, {f"ids/{d}": ids_by_domain[d] for d in domains})
  _arrays_digest(h, {f"mask/{d}": mask_by_domain[d] for d in domains})
  fp = h.hexdigest()[:20]

  folder = Path(cache_dir).expanduser() / f"knowledge-{fp}" if cache_dir else None
  if folder is not None and (folder / "meta.json").exists():
    read = lambda f: {d: np.load(f / name) for d, name in
                      json.loads((f / "meta.json").read_text())["files"].items()}
    vecs = artifacts.read_or_none(folder, read, what="item-knowledge cache",
                                  log=logging.getLogger(__name__).warning)
    if vecs is not None:
      return ItemKnowledge(vecs, fp, True, folder)

  if entity_mode == "none":
    head_cfg = KnowledgeHeadConfig(num_labels=1)
  else:
    k, dk = np.shape(params["knowledge_head"]["entity_embed"])
    head_cfg = KnowledgeHeadConfig(num_labels=int(k), entity_dim=int(dk))
  run = _knowledge_runner(enc_cfg, head_cfg, pooling, entity_mode)

  vecs = {}
  for d in domains:
    ids, mask = ids_by_domain[d], mask_by_domain[d]
    n = len(ids)
    bs = max(1, min(batch_size, n))
    chunks = []
    # Padded rows get an all-ones mask, so pooling over them stays finite.
    for b, k in fixed_shape_batches({"ids": ids, "mask": mask}, bs, fill={"mask": 1}):
      chunks.append(np.asarray(run(used, b["ids"], b["mask"]), np.float32)[:k])
    vecs[d] = (np.concatenate(chunks) if chunks
               else np.zeros((0, enc_cfg.hidden_size + (head_cfg.entity_dim
                                                        if entity_mode != "none" else 0)),
                             np.float32))
  if folder is not None:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, d in enumerate(domains):
      files[d] = f"{i}.npy"
      _save_npy_atomic(folder / files[d], vecs[d])
    meta = {"files": files, "pooling": pooling, "entity_mode": entity_mode,
            "dim": int(next(iter(vecs.values())).shape[1]) if vecs else 0}
    tmp = folder / f".meta.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / "meta.json")   # the commit point: a partial cache is never read
  return ItemKnowledge(vecs, fp, False, folder)


# ---------------------------------------------------------------------------------------------
# User knowledge.

@dataclasses.dataclass
class SourceHistories:
  """Each user's last `max_len` training source interactions, oldest first.

  idx: rows into the concatenation of the domains' item-knowledge tables (in `domains`
  order, `bases` their offsets); age: how many of the user's later interactions follow it
  (across all source domains when the data has real timestamps, else within its own domain,
  since order keys of different domains are not comparable then)."""
  domains: list[str]
  bases: np.ndarray      # [n_domains + 1]
  idx: np.ndarray        # [n_users, H] int32
  mask: np.ndarray       # [n_users, H] int8
  age: np.ndarray        # [n_users, H] int32
  count: np.ndarray      # [n_users] int64: ALL training source interactions (uncapped)


def _source_rows(ds, split, domains):
  """Concatenated (user, global item row, order, domain, file row) of the training rows."""
  n_items = [ds.domains[d].n_items for d in domains]
  bases = np.zeros(len(domains) + 1, np.int64)
  np.cumsum(n_items, out=bases[1:])
  cols = [[], [], [], [], []]
  for k, d in enumerate(domains):
    rows = leakage.training_rows(ds, split, d, consumer="user knowledge / source histories")
    inter = ds.domains[d].inter
    for c, v in zip(cols, (inter.user[rows], bases[k] + inter.item[rows], inter.order[rows],
                           np.full(len(rows), k), rows)):
      c.append(np.asarray(v))
  cat = [np.concatenate(c) if c else np.zeros(0) for c in cols]
  u, g, o, dom, row = cat
  return bases, u.astype(np.int64), g.astype(np.int64), o.astype(np.float64), \
      dom.astype(np.int64), row.astype(np.int64)


def source_histories(ds: CrossDomainDataset, split, *, domains=None,
                     max_len: int = 50) -> SourceHistories:
  domains = list(split.sources if domains is None else domains)
  bases, u, g, o, dom, row = _source_rows(ds, split, domains)
  n_users = ds.n_users
  group = u if ds.real_timestamps else u * max(len(domains), 1) + dom
  perm = np.lexsort((row, dom, o, group))
  gs = group[perm]
  first = np.r_[True, gs[1:] != gs[:-1]] if len(gs) else np.zeros(0, bool)
  start = np.maximum.accumulate(np.where(first, np.arange(len(gs)), 0)) if len(gs) else gs
  size = np.bincount(np.cumsum(first) - 1)[np.cumsum(first) - 1] if len(gs) else gs
  age_s = size - 1 - (np.arange(len(gs)) - start)
  # Oldest first per user; within equal age, earlier domains first (a fixed, documented tie).
  u_s, g_s, d_s = u[perm], g[perm], dom[perm]
  order = np.lexsort((d_s, -age_s, u_s))
  u_s, g_s, age_s = u_s[order], g_s[order], age_s[order]
  cnt = np.bincount(u_s, minlength=n_users)
  off = np.zeros(n_users + 1, np.int64)
  np.cumsum(cnt, out=off[1:])
  idx, mask = pad_sequences(off, g_s.astype(np.int32), max_len, keep="last")
  age, _ = pad_sequences(off, age_s.astype(np.int32), max_len, keep="last")
  return SourceHistories(domains, bases, idx, mask, age, cnt.astype(np.int64))


def user_knowledge(item_knowledge_by_domain: Mapping[str, np.ndarray], ds: CrossDomainDataset,
                   split, *, mode: str = "mean", domains=None, max_len: int = 50,
                   tau: float = 5.0, attn_params=None, attn_dim: int = 64,
                   batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """User knowledge [n_users, D] float32 and has_history [n_users] bool.

  Source items are the user's rows in `split.train_rows` of the source domains (default
  `split.sources`), so evaluation targets never leak in.  Modes:
    mean       uniform mean over ALL those interactions (a repeated item counts each time);
    recency    softmax(−age/τ) weights over the last `max_len` (recent taste matters more);
    attention  `HistoryAttention` over the last `max_len`, with `attn_params` trained
               downstream; without them its zero-initialised query gives the plain mean.
  Users with no source history get a zero vector and has_history False.
  """
  if mode not in USER_MODES:
    raise ValueError(f"mode must be one of {USER_MODES}, got {mode!r}")
  domains = list(split.sources if domains is None else domains)
  if not domains:
    dim = next(iter(item_knowledge_by_domain.values())).shape[1]
    return np.zeros((ds.n_users, dim), np.float32), np.zeros(ds.n_users, bool)
  table = np.concatenate([np.asarray(item_knowledge_by_domain[d], np.float32)
                          for d in domains])
  n_users, dim = ds.n_users, table.shape[1]
  if mode == "mean":
    _, u, g, _, _, _ = _source_rows(ds, split, domains)
    total = np.zeros((n_users, dim), np.float64)
    np.add.at(total, u, table[g])
    cnt = np.bincount(u, minlength=n_users)
    out = (total / np.maximum(cnt, 1)[:, None]).astype(np.float32)
    return out, cnt > 0
  hist = source_histories(ds, split, domains=domains, max_len=max_len)
  has = hist.mask.any(1)
  if mode == "recency":
    logit = np.where(hist.mask > 0, -hist.age / float(tau), -np.inf)
    logit = logit - np.where(has, logit.max(1), 0.0)[:, None]
    w = np.where(hist.mask > 0, np.exp(logit), 0.0)
    w /= np.maximum(w.sum(1, keepdims=True), 1e-30)
    out = np.einsum("uh,uhd->ud", w, table[hist.idx]).astype(np.float32)
    return np.where(has[:, None], out, 0.0).astype(np.float32), has
  module = HistoryAttention(attn_dim=attn_dim)
  H = hist.idx.shape[1]
  if attn_params is None:
    attn_params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, H, dim)),
                              jnp.ones((1, H), jnp.int8), jnp.zeros((1, H), jnp.int32))["params"]
  apply = jax.jit(lambda p, h, m, a: module.apply({"params": p}, h, m, a)[0])
  out = np.zeros((n_users, dim), np.float32)
  bs = max(1, min(batch_size, n_users))
  at = 0
  for b, k in fixed_shape_batches({"idx": hist.idx, "mask": hist.mask, "age": hist.age}, bs):
    out[at:at + k] = np.asarray(apply(attn_params, table[b["idx"]], b["mask"], b["age"]))[:k]
    at += k
  return out, has
