"""The method's stages, each reading/writing artifacts in the workdir so a rerun resumes.

Stages (config.stages, comma-separated, in this order): data → pretrain → adapt → ...
Each finished stage leaves `<workdir>/<stage>/DONE` holding the fingerprint of its inputs; a
rerun with the same inputs reuses the artifacts, a changed input redoes the stage.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from xdkt_jax.data import load as data_load
from xdkt_jax.data import protocols
from xdkt_jax.data import stats as data_stats

STAGE_ORDER = ("data", "pretrain", "adapt")


def stats(config) -> dict:
  ds, tok = data_load.load(config.data)
  return data_stats.dataset_stats(ds, tok)


def _stage_dir(workdir: Path, name: str) -> Path:
  p = workdir / name
  p.mkdir(parents=True, exist_ok=True)
  return p


def _write_json(path: Path, obj) -> None:
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=1, default=str))
  tmp.replace(path)


def data_stage(config, workdir: Path, log=print):
  """Load + preprocess + tokenise + split.  Writes data/stats.json and data/split.json."""
  t0 = time.time()
  ds, tok = data_load.load(config.data)
  split = protocols.make_split(ds, config)
  out = _stage_dir(workdir, "data")
  st = data_stats.dataset_stats(ds, tok)
  _write_json(out / "stats.json", st)
  s = protocols.summary(split)
  _write_json(out / "split.json", s)
  log(data_stats.format_table(st))
  log(f"split: protocol={s['protocol']} k={s['k']} targets={s['targets']} "
      f"sources={s['sources']} eval={s['eval']} info={s['info']} "
      f"fingerprint={s['fingerprint']}")
  log(f"data stage: {time.time() - t0:.1f}s")
  return ds, tok, split


def _fingerprint(*parts) -> str:
  return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _done(stage_dir: Path, fp: str) -> bool:
  marker = stage_dir / "DONE"
  return marker.exists() and marker.read_text().strip() == fp


def _claim(stage_dir: Path, fp: str) -> None:
  """A stage dir holds one set of inputs: checkpoints left by a run with other inputs would
  otherwise be resumed as if they were this run's, so they are cleared first."""
  marker = stage_dir / "INPUTS"
  if marker.exists() and marker.read_text().strip() != fp:
    shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
  marker.write_text(fp)


def lm_stage(name: str, config, workdir: Path, ds, tok, split, upstream: tuple, log=print):
  """pretrain (L_p) or adapt (L_t).  Reuses a finished stage whose inputs are unchanged.

  Returns (encoder config, params, fingerprint of this stage's output)."""
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  scfg = config.pretrain if name == "pretrain" else config.adapt
  stage_dir = _stage_dir(workdir, name)
  fp = _fingerprint(name, upstream[2], tok.fingerprint, scfg.to_json(),
                    config.encoder.to_json(), config.seed, split.fingerprint())
  if _done(stage_dir, fp):
    enc_cfg, params = lm.stage_encoder(workdir, name)
    log(f"{name}: reusing finished stage ({stage_dir})")
    return enc_cfg, params, fp
  _claim(stage_dir, fp)
  special = lm.special_tokens(config.data.tokenizer)
  enc_cfg, params = upstream[0], upstream[1]
  if name == "pretrain":
    domains, target, ratio, freeze = ds.domain_names, None, 0.0, []
  else:
    # L_t reads source + target text; in multi_domain every domain is both.
    domains = split.sources + split.targets
    target = split.targets[0] if len(split.targets) == 1 else None
    ratio = float(scfg.target_ratio)
    freeze = lm.freeze_patterns(enc_cfg, int(scfg.freeze_layers), bool(scfg.freeze_embeddings))
  corpus = lm.make_corpus(tok, domains=domains, heldout_frac=float(scfg.heldout_frac),
                          seed=int(config.seed))
  head = {}
  if name == "adapt" and int(scfg.get("head_warmup_steps", 0)) > 0:
    # A checkpoint without an MLM head (sentence-transformers MiniLM) gets its head fitted
    # first with the encoder frozen, so "perplexity before adaptation" measures the
    # pretrained encoder, not a random head.
    hcfg = scfg.copy_and_resolve_references()
    with hcfg.unlocked():
      hcfg.steps = int(scfg.head_warmup_steps)
      hcfg.lr = float(scfg.head_lr)
    params, head = lm.train_lm(config, hcfg, enc_cfg, params, corpus, special,
                               stage_dir / "head_warmup", target=target, ratio=ratio,
                               freeze=[r"^encoder/"], log_fn=log)
  params, metrics = lm.train_lm(config, scfg, enc_cfg, params, corpus, special, stage_dir,
                                target=target, ratio=ratio, freeze=freeze, log_fn=log)
  if head:
    metrics["head_warmup"] = head
  metrics["encoder"] = enc_cfg.to_hf()
  lm.save_stage(stage_dir, enc_cfg, params, metrics)
  (stage_dir / "DONE").write_text(fp)
  return enc_cfg, params, fp


def initial_encoder(config):
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  special = lm.special_tokens(config.data.tokenizer)
  enc_cfg, params = lm.initial_encoder(config, special)
  return enc_cfg, params, _fingerprint("init", config.encoder.to_json(), config.seed)


def run(config, workdir: str, log=print) -> dict:
  """Runs the configured stages in order; returns {stage: seconds}."""
  wd = Path(workdir).expanduser()
  wd.mkdir(parents=True, exist_ok=True)
  stages = data_load.split_list(config.stages)
  unknown = [s for s in stages if s not in STAGE_ORDER]
  if unknown:
    raise ValueError(f"config.stages: unknown stage(s) {unknown}; known: {STAGE_ORDER}")
  timings = {}
  t = time.time()
  ds, tok, split = data_stage(config, wd, log)
  timings["data"] = time.time() - t
  upstream = None
  for name in ("pretrain", "adapt"):
    if name not in stages:
      continue
    if tok is None:
      raise ValueError(f"stage {name!r} needs tokenised text: set config.data.tokenize=True")
    t = time.time()
    if upstream is None:
      upstream = initial_encoder(config)
    if int(config[name].steps) == 0 and upstream[1] is not None:
      log(f"{name}: 0 steps configured; keeping the weights it would start from")
      continue
    upstream = lm_stage(name, config, wd, ds, tok, split, upstream, log)
    timings[name] = time.time() - t
  _write_json(wd / "timings.json", timings)
  return timings


def embed(config, texts_path: str, out_path: str, *, workdir: str = "") -> np.ndarray:
  """One text per line → float32 [N, D] (.npy).  Weights: the workdir's adapted (else
  pre-trained) encoder when --workdir is given, else config.encoder.init_from."""
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data.tokenization import encode_texts, load_tokenizer  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data.textio import open_text  # pylint: disable=import-outside-toplevel
  texts = np.array([line for _, line in open_text(texts_path)], dtype=object)
  if workdir:
    wd = Path(workdir).expanduser()
    got = lm.stage_encoder(wd, "adapt") or lm.stage_encoder(wd, "pretrain")
    if got is None:
      raise ValueError(f"{wd}: no finished adapt/ or pretrain/ stage to embed with")
    enc_cfg, params = got
  else:
    if not config.encoder.init_from:
      raise ValueError("xdkt embed without --workdir needs config.encoder.init_from "
                       "(random weights would give meaningless vectors)")
    enc_cfg, params, _ = initial_encoder(config)
  tok = load_tokenizer(config.data.tokenizer)
  ids, mask = encode_texts(tok, texts, int(config.data.max_text_len))
  vecs = lm.embed_texts(enc_cfg, params, ids, mask, pooling=config.encoder.pooling)
  out = Path(out_path).expanduser()
  out.parent.mkdir(parents=True, exist_ok=True)
  np.save(out, vecs)
  return vecs
