"""The extract stage (L_k): the entity vocabulary and token labels from item text, the
knowledge head over the adapted encoder, and item knowledge for every domain."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xdkt_jax import artifacts
from xdkt_jax.data import leakage
from xdkt_jax.data import load as data_load
from xdkt_jax.stages.common import StageEncoder, claim, fingerprint, stage_dir, write_json


def _knowledge_weights(config, folder: Path, ds, encoder: StageEncoder, log):
  """(vocabulary, entity mode, W_k params, metrics): the entity vocabulary and token labels
  from item text alone, and the knowledge head trained on them (entity_mode 'predicted')."""
  # pylint: disable=import-outside-toplevel
  from xdkt_jax.knowledge import entities, labels as labels_lib, train
  from xdkt_jax.train import trainer as trainer_lib

  kc = config.knowledge
  # Labels and vocabulary come from item text alone: a view whose interactions raise if read.
  text_view = leakage.text_only(ds, consumer="knowledge labels (L_k)")
  vocab = entities.build_entity_vocab(
    text_view,
    min_df=int(kc.min_df),
    max_size=int(kc.max_size),
    cross_domain_only=bool(kc.cross_domain_only),
    fields=data_load.split_list(kc.entity_fields),
    max_df_frac=float(kc.max_df_frac),
    min_domain_df=int(kc.min_domain_df),
  )
  metrics = {"entities": len(vocab) - 1, "shared_entities": len(vocab.shared())}
  mode = str(kc.entity_mode)
  if mode != "none" and len(vocab) <= 1:
    log("extract: no entity qualifies (see knowledge.* settings); entity_mode → none")
    mode = "none"
  if mode == "none":
    return vocab, mode, encoder.params, metrics
  if mode != "predicted":
    raise ValueError(f"knowledge.entity_mode must be 'predicted' or 'none', got {mode!r}")
  labels = labels_lib.token_labels(
    text_view,
    str(config.data.tokenizer),
    vocab,
    int(config.data.max_text_len),
    data_load.split_list(config.data.text_fields) or None,
  )
  metrics["labels"] = labels_lib.label_stats(vocab, labels)
  kparams, metrics["lk"] = train.train_knowledge(
    encoder.config,
    encoder.params,
    labels,
    len(vocab),
    train.KnowledgeTrainConfig.from_config(kc),
    trainer_lib.RunSettings.from_config(config),
    ckpt_dir=folder / "ckpt",
    log_fn=log,
  )
  return vocab, mode, kparams, metrics


def extract_stage(
  config, wd: Path, ds, tok, split, encoder: StageEncoder, pretrained: StageEncoder, log=print
) -> dict:
  """L_k: entity vocabulary + token labels from the data, the knowledge head trained over the
  adapted encoder, then item knowledge [encoder pooling ; entity vector] per domain, and W_p
  vectors for unisrec_style."""
  from xdkt_jax.knowledge import item_vectors  # pylint: disable=import-outside-toplevel

  kc = config.knowledge
  folder = stage_dir(wd, "extract")
  fp = fingerprint(
    "extract",
    encoder.fingerprint,
    pretrained.fingerprint,
    tok.fingerprint,
    kc.to_json(),
    config.encoder.pooling,
    config.seed,
    split.fingerprint(),
  )
  if artifacts.is_done(folder, fp, log, "extract"):
    log(f"extract: reusing finished stage ({folder})")
    return load_knowledge(wd)
  claim(folder, fp)
  vocab, mode, kparams, metrics = _knowledge_weights(config, folder, ds, encoder, log)
  cache = Path(str(config.data.cache_dir)).expanduser()
  # Item knowledge depends on the weights and the text, not on the split: keyed without it,
  # so another protocol on the same data reuses the cached vectors.
  kfp = fingerprint(
    "item-knowledge",
    encoder.fingerprint,
    tok.fingerprint,
    kc.to_json(),
    config.encoder.pooling,
    config.seed,
  )
  ik = item_vectors.extract_item_knowledge(
    encoder.config,
    kparams,
    tok.ids,
    tok.mask,
    pooling=str(config.encoder.pooling),
    entity_mode=mode,
    cache_dir=cache,
    weights_fingerprint=f"{kfp}|{mode}",
  )
  pre = item_vectors.extract_item_knowledge(
    pretrained.config,
    pretrained.params,
    tok.ids,
    tok.mask,
    pooling=str(config.encoder.pooling),
    entity_mode="none",
    cache_dir=cache,
    weights_fingerprint=pretrained.fingerprint,
  )
  arrays = {}
  for d in ds.domain_names:
    arrays[f"item/{d}"] = ik.vectors[d]
    arrays[f"pretrained/{d}"] = pre.vectors[d]
  np.savez(folder / "knowledge.npz", **arrays)
  metrics.update(
    dim=int(next(iter(ik.vectors.values())).shape[1]),
    entity_mode=mode,
    vocab_fingerprint=vocab.fingerprint(),
  )
  write_json(folder / "metrics.json", metrics)
  (folder / "vocab.json").write_text(vocab.to_json())
  log(
    f"extract: {metrics['entities']} entities ({metrics['shared_entities']} shared by "
    f"domains), knowledge dim {metrics['dim']} ({mode})"
  )
  artifacts.finish(folder, fp)
  return load_knowledge(wd)


def load_knowledge(wd: Path) -> dict:
  path = wd / "extract" / "knowledge.npz"
  if not (wd / "extract" / "DONE").exists() or not path.exists():
    raise ValueError(f"{wd}: no finished extract stage; add 'extract' to config.stages")
  z = artifacts.read_or_none(path, np.load, what="knowledge")
  if z is None or artifacts.problem(wd / "extract"):
    raise artifacts.damaged(path, "rerun with 'extract' in config.stages to recompute it")
  out = {"item": {}, "pretrained": {}, "fingerprint": (wd / "extract" / "DONE").read_text()}
  for k in z.files:
    if "/" in k:
      kind, d = k.split("/", 1)
      out[kind][d] = z[k]
    else:
      out[k] = z[k]
  return out
