"""The method's stages, each reading/writing artifacts in the workdir so a rerun resumes.

Stages (config.stages, comma-separated, always run in this order):

  data       load, preprocess, tokenise, split              data/stats.json, split.json
  pretrain   L_p on item text (0 steps: init_from is W_p)    pretrain/hf (safetensors)
  adapt      L_t on source + target text                     adapt/hf, metrics.json
  extract    L_k knowledge head; item knowledge              extract/knowledge.npz
  recommend  every method × seed: fit (xdkt: L_f + alignment and fusion) and full-ranking
             evaluation on the split's test part           recommend/<method>/seed_<s>/
  evaluate   statistics over seeds: CIs, paired tests, transfer gain   evaluate/stats.json
  report     results.json, report.md, PNG plots in the workdir

Each finished stage leaves `<workdir>/<stage>/DONE` holding the fingerprint of its inputs; a
rerun with the same inputs reuses the artifacts, a changed input redoes the stage (recommend:
per method and seed).  The stages themselves live in xdkt_jax/stages/; this module orders
them (one target domain, or every domain in turn for multi_domain) and times them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from xdkt_jax.data import load as data_load
from xdkt_jax.data import protocols, splits
from xdkt_jax.data import stats as data_stats
from xdkt_jax.stages.common import between, stage_dir, write_json
from xdkt_jax.stages.encoders import initial_encoder, lm_stage, pretrained_encoder
from xdkt_jax.stages.extract import extract_stage, load_knowledge
from xdkt_jax.stages.ranking import evaluate_stage, recommend_stage, report_stage

STAGE_ORDER = ("data", "pretrain", "adapt", "extract", "recommend", "evaluate", "report")


def stats(config) -> dict:
  ds, tok = data_load.load(config.data)
  return data_stats.dataset_stats(ds, tok)


def data_stage(config, workdir: Path, log=print):
  """Load + preprocess + tokenise + split.  Writes data/stats.json and data/split.json."""
  t0 = time.time()
  ds, tok = data_load.load(config.data)
  split = protocols.make_split(ds, config)
  out = stage_dir(workdir, "data")
  st = data_stats.dataset_stats(ds, tok)
  write_json(out / "stats.json", st)
  s = splits.summary(split)
  write_json(out / "split.json", s)
  log(data_stats.format_table(st))
  log(
    f"split: protocol={s['protocol']} k={s['k']} targets={s['targets']} "
    f"sources={s['sources']} eval={s['eval']} info={s['info']} "
    f"fingerprint={s['fingerprint']}"
  )
  log(f"data stage: {time.time() - t0:.1f}s")
  return ds, tok, split


def enable_compilation_cache(config) -> None:
  """JAX's persistent compilation cache under data.cache_dir: the seeds of one method, and a
  rerun, compile identical programs, so each is compiled once."""
  import jax  # pylint: disable=import-outside-toplevel

  folder = Path(str(config.data.cache_dir)).expanduser() / "jax_compilation_cache"
  folder.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _rank_stages(
  config, wd: Path, ds, tok, split, knowledge, stages, timings, log, *, prev=None, lm_dir=None
) -> None:
  """recommend → evaluate → report for one target domain, in `wd`."""
  wd.mkdir(parents=True, exist_ok=True)
  if prev is None:
    prev = json.loads((wd / "timings.json").read_text()) if (wd / "timings.json").exists() else {}
  runs = None
  if "recommend" in stages:
    if knowledge is None:
      knowledge = load_knowledge(wd)
    t = time.time()
    runs = recommend_stage(config, wd, ds, split, knowledge, log)
    timings["recommend"] = time.time() - t
    between("recommend")
  stats_ = None
  if "evaluate" in stages:
    t = time.time()
    stats_ = evaluate_stage(config, wd, runs, log)
    timings["evaluate"] = time.time() - t
    between("evaluate")
  write_json(wd / "timings.json", {**prev, **timings})
  if "report" in stages:
    t = time.time()
    timings["report"] = 0.0
    report_stage(config, wd, ds, tok, split, stats_, {**prev, **timings}, log, lm_dir=lm_dir)
    timings["report"] = time.time() - t
    write_json(wd / "timings.json", {**prev, **timings})


def _multi_domain_stages(
  config, wd: Path, ds, tok, split, knowledge, stages, timings, prev, log
) -> None:
  """multi_domain: every domain is ranked in turn with the others as its sources, each in
  <workdir>/targets/<domain>/ (recommend, evaluate, report), then one summary in <workdir>."""
  from xdkt_jax import report  # pylint: disable=import-outside-toplevel

  domains = {}
  for d in split.targets:
    view = splits.target_view(split, d)
    log(f"multi_domain: target {d}, sources {view.sources}")
    sub = {}
    if knowledge is None and "recommend" in stages:
      knowledge = load_knowledge(wd)  # the one extract stage, in the parent workdir
    _rank_stages(config, wd / "targets" / d, ds, tok, view, knowledge, stages, sub, log, lm_dir=wd)
    timings.update({f"{k}/{d}": v for k, v in sub.items()})
    path = wd / "targets" / d / "results.json"
    if path.exists():
      r = json.loads(path.read_text())
      domains[d] = {
        k: r[k]
        for k in (
          "metrics",
          "transfer_gain",
          "warnings",
          "sources",
          "n_test",
          "n_items",
          "eval_rule",
        )
        if k in r
      }
  write_json(wd / "timings.json", {**prev, **timings})
  if "report" in stages and domains:
    summary = {
      "config": json.loads(config.to_json_best_effort()),
      "dataset": data_stats.dataset_stats(ds, tok),
      "protocol": split.protocol,
      "targets": split.targets,
      "domains": domains,
      "timings_s": {**prev, **timings},
      "eval_rule": next(iter(domains.values())).get("eval_rule"),
    }
    files = report.write_multi_domain(wd, summary)
    log(f"report: {', '.join(str(wd / f) for f in files)}")


def run(config, workdir: str, log=print) -> dict:
  """Runs the configured stages in order; returns {stage: seconds}."""
  wd = Path(workdir).expanduser()
  wd.mkdir(parents=True, exist_ok=True)
  stages = data_load.split_list(config.stages)
  unknown = [s for s in stages if s not in STAGE_ORDER]
  if unknown:
    raise ValueError(f"config.stages: unknown stage(s) {unknown}; known: {STAGE_ORDER}")
  if "recommend" in stages:
    from xdkt_jax import recommend  # pylint: disable=import-outside-toplevel

    recommend.check_config(config)  # a typo fails now, not in an hour
  enable_compilation_cache(config)
  timings = {}
  t = time.time()
  ds, tok, split = data_stage(config, wd, log)
  timings["data"] = time.time() - t
  between("data")
  # `encoder`: the latest LM stage's output; `pretrained`: W_p (unisrec_style reads it).
  encoder = pretrained = None
  for name in ("pretrain", "adapt"):
    if name not in stages:
      continue
    if tok is None:
      raise ValueError(f"stage {name!r} needs tokenised text: set config.data.tokenize=True")
    t = time.time()
    if encoder is None:
      encoder = initial_encoder(config)
    if int(config[name].steps) == 0 and encoder.params is not None:
      log(f"{name}: 0 steps configured; keeping the weights it would start from")
    else:
      encoder = lm_stage(name, config, wd, ds, tok, split, encoder, log)
      timings[name] = time.time() - t
      between(name)
    if name == "pretrain":
      pretrained = encoder
  knowledge = None
  if "extract" in stages:
    if tok is None:
      raise ValueError("stage 'extract' needs tokenised text: set config.data.tokenize=True")
    t = time.time()
    encoder = encoder or initial_encoder(config)
    pretrained = pretrained_encoder(config, wd, pretrained)
    knowledge = extract_stage(config, wd, ds, tok, split, encoder, pretrained, log)
    timings["extract"] = time.time() - t
    between("extract")
  prev = json.loads((wd / "timings.json").read_text()) if (wd / "timings.json").exists() else {}
  if len(split.targets) > 1 and any(x in stages for x in ("recommend", "evaluate", "report")):
    _multi_domain_stages(config, wd, ds, tok, split, knowledge, stages, timings, prev, log)
  else:
    _rank_stages(config, wd, ds, tok, split, knowledge, stages, timings, log, prev=prev)
  return timings


def embed(config, texts_path: str, out_path: str, *, workdir: str = "") -> np.ndarray:
  """One text per line → float32 [N, D] (.npy).  Weights: the workdir's adapted (else
  pre-trained) encoder when --workdir is given, else config.encoder.init_from."""
  # pylint: disable=import-outside-toplevel
  from xdkt_jax import lm
  from xdkt_jax.data.tokenization import encode_texts, load_tokenizer
  from xdkt_jax.data.textio import open_text

  out = Path(out_path).expanduser()
  if out.is_dir():  # found before the encoder runs, not after
    raise ValueError(f"--out={out_path} is a folder; give a file name ending in .npy")
  texts = np.array([line for _, line in open_text(texts_path)], dtype=object)
  if workdir:
    wd = Path(workdir).expanduser()
    got = lm.stage_encoder(wd, "adapt") or lm.stage_encoder(wd, "pretrain")
    if got is None:
      raise ValueError(f"{wd}: no finished adapt/ or pretrain/ stage to embed with")
    enc_cfg, params = got
  else:
    if not config.encoder.init_from:
      raise ValueError(
        "xdkt embed without --workdir needs config.encoder.init_from "
        "(random weights would give meaningless vectors)"
      )
    enc_cfg, params, _ = initial_encoder(config)
  tok = load_tokenizer(config.data.tokenizer)
  ids, mask = encode_texts(tok, texts, int(config.data.max_text_len))
  vecs = lm.embed_texts(enc_cfg, params, ids, mask, pooling=config.encoder.pooling)
  out.parent.mkdir(parents=True, exist_ok=True)
  np.save(out, vecs)
  return vecs
