"""The entity vocabulary: which words of the items' structured text count as knowledge
(rule: the package docstring, ENTITY VOCABULARY), and item-level entity targets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import unicodedata

import numpy as np

from xdkt_jax.data.schema import CrossDomainDataset, ItemTable

# A small English stopword list plus the connectors category paths use ("&", "and", "for").
STOPWORDS = frozenset(
  """
a an and are as at be but by for from has have in into is it its of on or s t the their this
to with without your you our not no all any each more most other some such than too very can
will just own same so only both few up down out off over under again further then once here
there when where why how what which who whom these those am was were been being do does did
doing would should could ll re ve d m y""".split()
)

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
  df: dict[str, np.ndarray]  # domain -> [K] int64: items of the domain naming entity k
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
    return json.dumps(
      {
        "words": self.words,
        "settings": self.settings,
        "df": {d: v.tolist() for d, v in self.df.items()},
      }
    )

  @classmethod
  def from_json(cls, s: str) -> "EntityVocab":
    o = json.loads(s)
    return cls(
      o["words"], {d: np.asarray(v, np.int64) for d, v in o["df"].items()}, o.get("settings", {})
    )

  def fingerprint(self) -> str:
    return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def build_entity_vocab(
  ds: CrossDomainDataset,
  *,
  min_df: int,
  max_size: int,
  cross_domain_only: bool,
  fields,
  max_df_frac: float,
  min_domain_df: int,
  stopwords=STOPWORDS,
) -> EntityVocab:
  """The shared entity vocabulary of `ds` (rule: the package docstring).  Every setting is
  the run config's `knowledge` section's (configs/common.py); none has a second default here."""
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
  settings = dict(
    min_df=int(min_df),
    max_size=int(max_size),
    cross_domain_only=bool(cross_domain_only),
    fields=list(fields),
    max_df_frac=float(max_df_frac),
    min_domain_df=int(min_domain_df),
  )
  return EntityVocab(kept, df, settings)


def item_entities(
  ds: CrossDomainDataset, vocab: EntityVocab, *, fields=None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Item-level targets, sparse: per domain (offsets [n_items+1] int64, ids [m] int32), the
  sorted entity ids named by each item's entity fields.  `to_multi_hot` densifies."""
  fields = tuple(fields or vocab.settings["fields"])
  out = {}
  for name, d in ds.domains.items():
    rows = [
      sorted(vocab.index[w] for w in ws if w in vocab.index)
      for ws in item_entity_words(d.items, fields)
    ]
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
