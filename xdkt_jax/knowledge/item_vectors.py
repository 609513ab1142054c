"""Item knowledge vectors [pooled W_k encoder state ; expected entity vector], computed in
fixed-shape batches and cached on disk under a fingerprint of weights, text and settings."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import artifacts
from xdkt_jax.data.batching import fixed_shape_batches
from xdkt_jax.models.encoder_config import EncoderConfig
from xdkt_jax.models.knowledge_head import ENTITY_MODES, KnowledgeHeadConfig, KnowledgeModel


@dataclasses.dataclass
class ItemKnowledge:
  vectors: dict[str, np.ndarray]  # domain -> [n_items, D] float32
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
    pooled, ent = model.apply(
      {"params": p},
      ids,
      mask,
      pooling=pooling,
      entity_mode=entity_mode,
      method=KnowledgeModel.knowledge,
    )
    return pooled if ent is None else jnp.concatenate([pooled, ent], -1)

  return run


def _cache_key(
  enc_cfg: EncoderConfig,
  used_params,
  ids_by_domain,
  mask_by_domain,
  *,
  pooling: str,
  entity_mode: str,
  weights_fingerprint: str | None,
) -> str:
  h = hashlib.sha256(b"xdkt-knowledge-v1")
  h.update((weights_fingerprint or params_fingerprint(used_params)).encode())
  h.update(json.dumps(enc_cfg.to_hf(), sort_keys=True).encode())
  domains = list(ids_by_domain)
  h.update(f"{pooling}|{entity_mode}|{domains}".encode())
  _arrays_digest(h, {f"ids/{d}": ids_by_domain[d] for d in domains})
  _arrays_digest(h, {f"mask/{d}": mask_by_domain[d] for d in domains})
  return h.hexdigest()[:20]


def _read_cache(folder: Path) -> dict[str, np.ndarray] | None:
  """The cached vectors, or None (and a warning naming the folder) when damaged."""
  read = lambda f: {
    d: np.load(f / name) for d, name in json.loads((f / "meta.json").read_text())["files"].items()
  }
  return artifacts.read_or_none(
    folder, read, what="item-knowledge cache", log=logging.getLogger(__name__).warning
  )


def _write_cache(folder: Path, vecs: dict[str, np.ndarray], *, pooling: str, entity_mode: str):
  folder.mkdir(parents=True, exist_ok=True)
  files = {}
  for i, d in enumerate(vecs):
    files[d] = f"{i}.npy"
    _save_npy_atomic(folder / files[d], vecs[d])
  meta = {
    "files": files,
    "pooling": pooling,
    "entity_mode": entity_mode,
    "dim": int(next(iter(vecs.values())).shape[1]) if vecs else 0,
  }
  tmp = folder / f".meta.json.tmp{os.getpid()}"
  tmp.write_text(json.dumps(meta, indent=1))
  os.replace(tmp, folder / "meta.json")  # the commit point: a partial cache is never read


def extract_item_knowledge(
  enc_cfg: EncoderConfig,
  params,
  ids_by_domain: Mapping[str, np.ndarray],
  mask_by_domain: Mapping[str, np.ndarray],
  *,
  pooling: str = "mean",
  entity_mode: str = "none",
  cache_dir: str | Path | None = None,
  weights_fingerprint: str | None = None,
  batch_size: int = 256,
) -> ItemKnowledge:
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
      raise ValueError(
        f"entity_mode={entity_mode!r} needs knowledge-head params (train_knowledge's output)"
      )
    used["knowledge_head"] = params["knowledge_head"]
  fp = _cache_key(
    enc_cfg,
    used,
    ids_by_domain,
    mask_by_domain,
    pooling=pooling,
    entity_mode=entity_mode,
    weights_fingerprint=weights_fingerprint,
  )
  folder = Path(cache_dir).expanduser() / f"knowledge-{fp}" if cache_dir else None
  if folder is not None and (folder / "meta.json").exists():
    vecs = _read_cache(folder)
    if vecs is not None:
      return ItemKnowledge(vecs, fp, True, folder)

  if entity_mode == "none":
    head_cfg = KnowledgeHeadConfig(num_labels=1)
  else:
    k, dk = np.shape(params["knowledge_head"]["entity_embed"])
    head_cfg = KnowledgeHeadConfig(num_labels=int(k), entity_dim=int(dk))
  run = _knowledge_runner(enc_cfg, head_cfg, pooling, entity_mode)
  dim = enc_cfg.hidden_size + (head_cfg.entity_dim if entity_mode != "none" else 0)
  vecs = {}
  for d in ids_by_domain:
    n = len(ids_by_domain[d])
    chunks = []
    # Padded rows get an all-ones mask, so pooling over them stays finite.
    for b, k in fixed_shape_batches(
      {"ids": ids_by_domain[d], "mask": mask_by_domain[d]},
      max(1, min(batch_size, n)),
      fill={"mask": 1},
    ):
      chunks.append(np.asarray(run(used, b["ids"], b["mask"]), np.float32)[:k])
    vecs[d] = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
  if folder is not None:
    _write_cache(folder, vecs, pooling=pooling, entity_mode=entity_mode)
  return ItemKnowledge(vecs, fp, False, folder)
