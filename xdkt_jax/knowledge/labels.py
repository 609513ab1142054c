"""Per-token L_k labels aligned with the LM's tokenisation (rule: the package docstring,
TOKEN LABELS)."""

from __future__ import annotations

import dataclasses

import numpy as np

from xdkt_jax.data.schema import CrossDomainDataset, ItemTable
from xdkt_jax.knowledge.entities import EntityVocab, item_entity_words, word_spans


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
      continue  # special / pad / context field
    wt[t] = 1.0
    k = np.searchsorted(starts, s, side="right") - 1
    if k < 0 or not words[k][0] <= s < words[k][1]:
      continue  # punctuation: none
    if first_piece_only and k in seen:
      wt[t] = 0.0
      continue
    seen.add(k)
    w = words[k][2]
    if w in own_words:
      lab[t] = vocab.index.get(w, 0)
  return lab, wt


def token_labels(
  ds: CrossDomainDataset,
  tokenizer,
  vocab: EntityVocab,
  max_len: int,
  text_fields=None,
  *,
  label_fields=("title",),
  entity_fields=None,
  first_piece_only: bool = False,
  batch: int = 2048,
) -> KnowledgeLabels:
  """Per-token knowledge labels (rule: module docstring).  `tokenizer` is a fast tokenizer or
  a spec for `load_tokenizer`; `text_fields` must be the LM's (None = all, as tokenize_items)."""
  if isinstance(tokenizer, str):
    from xdkt_jax.data.tokenization import load_tokenizer  # pylint: disable=import-outside-toplevel

    tokenizer = load_tokenizer(tokenizer)
  if not getattr(tokenizer, "is_fast", False):
    raise ValueError("token_labels needs a fast tokenizer (offset mappings)")
  entity_fields = tuple(entity_fields or vocab.settings["fields"])
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
      enc = tokenizer(
        list(texts),
        max_length=max_len,
        truncation=True,
        padding="max_length",
        return_attention_mask=True,
        return_offsets_mapping=True,
      )
      ids[s0 : s0 + len(idx)] = np.asarray(enc["input_ids"], np.int32)
      mask[s0 : s0 + len(idx)] = np.asarray(enc["attention_mask"], np.int8)
      for j, i in enumerate(idx):
        lab[i], wt[i] = _label_one(
          texts[j],
          spans[j],
          enc["offset_mapping"][j],
          own[i],
          vocab,
          label_fields,
          first_piece_only,
        )
    out.labels[name], out.weights[name], out.ids[name], out.mask[name] = lab, wt, ids, mask
  return out


def label_stats(vocab: EntityVocab, labels: KnowledgeLabels, top: int = 15) -> dict:
  """What the labels look like: vocabulary size, bridging entities, labelled-token share."""
  per_dom = {}
  for d in labels.labels:
    w = labels.weights[d] > 0
    lab = labels.labels[d]
    per_dom[d] = {
      "label_tokens": int(w.sum()),
      "labelled_frac": float(((lab > 0) & w).sum() / max(w.sum(), 1)),
      "items_with_label": float(((lab > 0) & w).any(1).mean()) if len(lab) else 0.0,
    }
  total = sum(vocab.df.values())
  order = np.argsort(-total[1:], kind="stable")[:top] + 1
  return {
    "entities": len(vocab.words),
    "shared_entities": len(vocab.shared()),
    "per_domain": per_dom,
    "top": [(vocab.word(int(k)), {d: int(v[k]) for d, v in vocab.df.items()}) for k in order],
  }


# ---------------------------------------------------------------------------------------------
# Training W_k with the shared engine.
