"""The method's stages, each reading/writing artifacts in the workdir so a rerun resumes.

Stages (config.stages, comma-separated, always run in this order):

  data       load, preprocess, tokenise, split              data/stats.json, split.json
  pretrain   L_p on item text (0 steps: init_from is W_p)    pretrain/hf (safetensors)
  adapt      L_t on source + target text                     adapt/hf, metrics.json
  extract    L_k knowledge head; item + user knowledge       extract/knowledge.npz
  recommend  every method × seed: fit (xdkt: L_f + alignment and fusion) and full-ranking
             evaluation on the split's test part           recommend/<method>/seed_<s>/
  evaluate   statistics over seeds: CIs, paired tests, transfer gain   evaluate/stats.json
  report     results.json, report.md, PNG plots in the workdir

Each finished stage leaves `<workdir>/<stage>/DONE` holding the fingerprint of its inputs; a
rerun with the same inputs reuses the artifacts, a changed input redoes the stage (recommend:
per method and seed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from xdkt_jax import artifacts, stopping
from xdkt_jax.data import leakage
from xdkt_jax.data import load as data_load
from xdkt_jax.data import protocols
from xdkt_jax.data import stats as data_stats

STAGE_ORDER = ("data", "pretrain", "adapt", "extract", "recommend", "evaluate", "report")


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


class StageEncoder(NamedTuple):
  """An encoder as one stage hands it to the next: its config, its weights, and the
  fingerprint of everything that produced them (a later stage's inputs include it)."""
  config: Any
  params: Any
  fingerprint: str


def _fingerprint(*parts) -> str:
  return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _between(stage: str) -> None:
  """A SIGTERM whose exception was swallowed inside a stage stops the run here."""
  stopping.check(f"stopped on SIGTERM after the {stage} stage; rerun the same command to "
                 "resume")


def _read_json(path: Path, how_to_fix: str):
  got = artifacts.read_or_none(path, lambda p: json.loads(p.read_text()), log=lambda _: None)
  if got is None:
    raise artifacts.damaged(path, how_to_fix)
  return got


def _claim(stage_dir: Path, fp: str) -> None:
  """A stage dir holds one set of inputs: checkpoints left by a run with other inputs would
  otherwise be resumed as if they were this run's, so they are cleared first."""
  marker = stage_dir / "INPUTS"
  if marker.exists() and marker.read_text().strip() != fp:
    shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
  marker.write_text(fp)


def lm_stage(name: str, config, workdir: Path, ds, tok, split, upstream: StageEncoder,
             log=print) -> StageEncoder:
  """pretrain (L_p) or adapt (L_t) from the `upstream` encoder.  Reuses a finished stage whose
  inputs are unchanged."""
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  scfg = config.pretrain if name == "pretrain" else config.adapt
  stage_dir = _stage_dir(workdir, name)
  fp = _fingerprint(name, upstream.fingerprint, tok.fingerprint, scfg.to_json(),
                    config.encoder.to_json(), config.seed, split.fingerprint())
  if artifacts.is_done(stage_dir, fp, log, name):
    enc_cfg, params = lm.stage_encoder(workdir, name)
    log(f"{name}: reusing finished stage ({stage_dir})")
    return StageEncoder(enc_cfg, params, fp)
  _claim(stage_dir, fp)
  special = lm.special_tokens(config.data.tokenizer)
  enc_cfg, params = upstream.config, upstream.params
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
  leakage.check_text_corpus(corpus, tok, consumer=f"{name} corpus")
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
  artifacts.finish(stage_dir, fp)
  return StageEncoder(enc_cfg, params, fp)


def initial_encoder(config) -> StageEncoder:
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  special = lm.special_tokens(config.data.tokenizer)
  enc_cfg, params = lm.initial_encoder(config, special)
  return StageEncoder(enc_cfg, params, _fingerprint("init", config.encoder.to_json(),
                                                    config.seed))


def enable_compilation_cache(config) -> None:
  """JAX's persistent compilation cache under data.cache_dir: the seeds of one method, and a
  rerun, compile identical programs; on this 2-core CPU a recommender compile is ~4 s."""
  import jax  # pylint: disable=import-outside-toplevel
  folder = Path(str(config.data.cache_dir)).expanduser() / "jax_compilation_cache"
  folder.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _rank_stages(config, wd: Path, ds, tok, split, knowledge, stages, timings, log, *,
                 prev=None, lm_dir=None) -> None:
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
    _between("recommend")
  stats_ = None
  if "evaluate" in stages:
    t = time.time()
    stats_ = evaluate_stage(config, wd, runs, log)
    timings["evaluate"] = time.time() - t
    _between("evaluate")
  _write_json(wd / "timings.json", {**prev, **timings})
  if "report" in stages:
    t = time.time()
    timings["report"] = 0.0
    report_stage(config, wd, ds, tok, split, stats_, {**prev, **timings}, log, lm_dir=lm_dir)
    timings["report"] = time.time() - t
    _write_json(wd / "timings.json", {**prev, **timings})


def _multi_domain_stages(config, wd: Path, ds, tok, split, knowledge, stages, timings, prev,
                         log) -> None:
  """multi_domain: every domain is ranked in turn with the others as its sources, each in
  <workdir>/targets/<domain>/ (recommend, evaluate, report), then one summary in <workdir>."""
  from xdkt_jax import report  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data import protocols as P  # pylint: disable=import-outside-toplevel
  domains = {}
  for d in split.targets:
    view = P.target_view(split, d)
    log(f"multi_domain: target {d}, sources {view.sources}")
    sub = {}
    if knowledge is None and "recommend" in stages:
      knowledge = load_knowledge(wd)   # the one extract stage, in the parent workdir
    _rank_stages(config, wd / "targets" / d, ds, tok, view, knowledge, stages, sub, log,
                 lm_dir=wd)
    timings.update({f"{k}/{d}": v for k, v in sub.items()})
    path = wd / "targets" / d / "results.json"
    if path.exists():
      r = json.loads(path.read_text())
      domains[d] = {k: r[k] for k in ("metrics", "transfer_gain", "warnings", "sources",
                                      "n_test", "n_items", "eval_rule") if k in r}
  _write_json(wd / "timings.json", {**prev, **timings})
  if "report" in stages and domains:
    summary = {"config": json.loads(config.to_json_best_effort()),
               "dataset": data_stats.dataset_stats(ds, tok), "protocol": split.protocol,
               "targets": split.targets, "domains": domains, "timings_s": {**prev, **timings},
               "eval_rule": next(iter(domains.values())).get("eval_rule")}
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
    recommend.check_config(config)   # a typo fails now, not in an hour
  enable_compilation_cache(config)
  timings = {}
  t = time.time()
  ds, tok, split = data_stage(config, wd, log)
  timings["data"] = time.time() - t
  _between("data")
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
      _between(name)
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
    _between("extract")
  prev = json.loads((wd / "timings.json").read_text()) if (wd / "timings.json").exists() else {}
  if len(split.targets) > 1 and any(x in stages for x in ("recommend", "evaluate", "report")):
    _multi_domain_stages(config, wd, ds, tok, split, knowledge, stages, timings, prev, log)
  else:
    _rank_stages(config, wd, ds, tok, split, knowledge, stages, timings, log, prev=prev)
  return timings


# ---------------------------------------------------------------------------------------------
# extract (L_k) → recommend → evaluate → report

def _knowledge_weights(config, stage_dir: Path, ds, encoder: StageEncoder, log):
  """(vocabulary, entity mode, W_k params, metrics): the entity vocabulary and token labels
  from item text alone, and the knowledge head trained on them (entity_mode 'predicted')."""
  # pylint: disable=import-outside-toplevel
  from xdkt_jax.knowledge import entities, labels as labels_lib, train
  kc = config.knowledge
  # Labels and vocabulary come from item text alone: a view whose interactions raise if read.
  text_view = leakage.text_only(ds, consumer="knowledge labels (L_k)")
  vocab = entities.build_entity_vocab(
      text_view, min_df=int(kc.min_df), max_size=int(kc.max_size),
      cross_domain_only=bool(kc.cross_domain_only), fields=data_load.split_list(kc.entity_fields),
      max_df_frac=float(kc.max_df_frac), min_domain_df=int(kc.min_domain_df))
  metrics = {"entities": len(vocab) - 1, "shared_entities": len(vocab.shared())}
  mode = str(kc.entity_mode)
  if mode != "none" and len(vocab) <= 1:
    log("extract: no entity qualifies (see knowledge.* settings); entity_mode → none")
    mode = "none"
  if mode == "none":
    return vocab, mode, encoder.params, metrics
  if mode != "predicted":
    raise ValueError(f"knowledge.entity_mode must be 'predicted' or 'none', got {mode!r}")
  labels = labels_lib.token_labels(text_view, str(config.data.tokenizer), vocab,
                                   int(config.data.max_text_len),
                                   data_load.split_list(config.data.text_fields) or None)
  metrics["labels"] = labels_lib.label_stats(vocab, labels)
  tcfg = train.KnowledgeTrainConfig.from_config(kc, seed=int(config.seed),
                                                progress=bool(config.progress),
                                                log_every=int(config.log_every))
  kparams, metrics["lk"] = train.train_knowledge(
      encoder.config, encoder.params, labels, len(vocab), tcfg, mesh_cfg=config.mesh,
      rules=config.rules, ckpt_dir=stage_dir / "ckpt", ckpt_cfg=config.ckpt, log_fn=log)
  return vocab, mode, kparams, metrics


def extract_stage(config, wd: Path, ds, tok, split, encoder: StageEncoder,
                  pretrained: StageEncoder, log=print) -> dict:
  """L_k: entity vocabulary + token labels from the data, the knowledge head trained over the
  adapted encoder, then item knowledge [encoder pooling ; entity vector] per domain, and W_p
  vectors for unisrec_style."""
  from xdkt_jax.knowledge import item_vectors  # pylint: disable=import-outside-toplevel
  kc = config.knowledge
  stage_dir = _stage_dir(wd, "extract")
  fp = _fingerprint("extract", encoder.fingerprint, pretrained.fingerprint, tok.fingerprint,
                    kc.to_json(), config.encoder.pooling, config.seed, split.fingerprint())
  if artifacts.is_done(stage_dir, fp, log, "extract"):
    log(f"extract: reusing finished stage ({stage_dir})")
    return load_knowledge(wd)
  _claim(stage_dir, fp)
  vocab, mode, kparams, metrics = _knowledge_weights(config, stage_dir, ds, encoder, log)
  cache = Path(str(config.data.cache_dir)).expanduser()
  # Item knowledge depends on the weights and the text, not on the split: keyed without it,
  # so another protocol on the same data reuses the cached vectors.
  kfp = _fingerprint("item-knowledge", encoder.fingerprint, tok.fingerprint, kc.to_json(),
                     config.encoder.pooling, config.seed)
  ik = item_vectors.extract_item_knowledge(
      encoder.config, kparams, tok.ids, tok.mask, pooling=str(config.encoder.pooling),
      entity_mode=mode, cache_dir=cache, weights_fingerprint=f"{kfp}|{mode}")
  pre = item_vectors.extract_item_knowledge(
      pretrained.config, pretrained.params, tok.ids, tok.mask,
      pooling=str(config.encoder.pooling), entity_mode="none", cache_dir=cache,
      weights_fingerprint=pretrained.fingerprint)
  arrays = {}
  for d in ds.domain_names:
    arrays[f"item/{d}"] = ik.vectors[d]
    arrays[f"pretrained/{d}"] = pre.vectors[d]
  np.savez(stage_dir / "knowledge.npz", **arrays)
  metrics.update(dim=int(next(iter(ik.vectors.values())).shape[1]), entity_mode=mode,
                 vocab_fingerprint=vocab.fingerprint())
  _write_json(stage_dir / "metrics.json", metrics)
  (stage_dir / "vocab.json").write_text(vocab.to_json())
  log(f"extract: {metrics['entities']} entities ({metrics['shared_entities']} shared by "
      f"domains), knowledge dim {metrics['dim']} ({mode})")
  artifacts.finish(stage_dir, fp)
  return load_knowledge(wd)


def pretrained_encoder(config, wd: Path, pretrained: StageEncoder | None) -> StageEncoder:
  """W_p, read back from disk: the arrays that entered adapt were donated to its train step.
  The pretrain stage's output when it trained, else the init_from weights."""
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  if (pretrained is not None and (wd / "pretrain" / "DONE").exists()
      and int(config.pretrain.steps) > 0):
    enc_cfg, params = lm.stage_encoder(wd, "pretrain")
    return StageEncoder(enc_cfg, params, pretrained.fingerprint)
  return initial_encoder(config)


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


def recommend_stage(config, wd: Path, ds, split, knowledge: dict, log=print) -> dict:
  from xdkt_jax import recommend  # pylint: disable=import-outside-toplevel
  if len(split.targets) != 1:   # pipeline.run passes multi_domain one target view at a time
    raise ValueError(f"stage 'recommend' ranks one target domain; the split has "
                     f"{split.targets} (protocols.target_view makes one)")
  target = split.targets[0]
  ctx = recommend.Context(ds=ds, split=split, target=target, config=config,
                          item_knowledge=knowledge["item"], pretrained=knowledge["pretrained"],
                          log=log)
  fp = _fingerprint("recommend", knowledge["fingerprint"], split.fingerprint(),
                    config.recommend.eval_part, config.recommend.ks)
  runs = recommend.run_all(ctx, _stage_dir(wd, "recommend"), fp=fp)
  _write_json(wd / "recommend" / "runs.json", runs)
  return runs


def evaluate_stage(config, wd: Path, runs, log=print) -> dict:
  from xdkt_jax import recommend, report  # pylint: disable=import-outside-toplevel
  if runs is None:
    path = wd / "recommend" / "runs.json"
    if not path.exists():
      raise ValueError(f"{wd}: no finished recommend stage; add 'recommend' to config.stages")
    runs = _read_json(path, "rerun with 'recommend' in config.stages")
  names = recommend.parse_methods(config.recommend.methods)
  runs = {n: r for n, r in runs.items() if recommend.base_method(n) in names}
  ev = config.eval
  stats_ = report.aggregate(runs, wd / "recommend", alpha=float(ev.alpha),
                            n_boot=int(ev.n_boot))
  _write_json(_stage_dir(wd, "evaluate") / "stats.json", stats_)
  for w in stats_["warnings"]:
    log(w)
  g = stats_["transfer_gain"].get("ndcg@10")
  if g:
    log(f"transfer gain ndcg@10 (xdkt − target_only): {g['mean']:+.4f} "
        f"[{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}] ({g['ci_method']}), Holm-corrected "
        f"p = {g['p_value']:.2g} (t-test over {g['n_users']} users; Wilcoxon "
        f"{g['p_wilcoxon']:.2g}): " + ("significant" if g["significant"] else "not significant")
        + f" at alpha = {g['alpha']:g}")
  return stats_


def _lm_curves(wd: Path) -> dict:
  from xdkt_jax.train.writers import read_jsonl  # pylint: disable=import-outside-toplevel
  curves = {}
  for stage, sub in (("pretrain", "logs"), ("adapt", "head_warmup/logs"), ("adapt", "logs"),
                     ("extract", "logs")):
    path = wd / stage / sub / "metrics.jsonl"
    if path.exists():
      ys = [r["train/loss"] for r in read_jsonl(path) if "train/loss" in r]
      label = {"pretrain": "LM L_p", "adapt": "LM L_t", "extract": "LM L_k"}[stage]
      curves[label + (" (head warm-up)" if "head" in sub else "")] = ys
  return curves


def report_stage(config, wd: Path, ds, tok, split, stats_, timings, log=print, *,
                 lm_dir: Path | None = None) -> None:
  from xdkt_jax import report  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data import protocols as P  # pylint: disable=import-outside-toplevel
  if stats_ is None:
    path = wd / "evaluate" / "stats.json"
    if not path.exists():
      raise ValueError(f"{wd}: no finished evaluate stage; add 'evaluate' to config.stages")
    stats_ = _read_json(path, "rerun with 'evaluate' in config.stages")
  runs = _read_json(wd / "recommend" / "runs.json", "rerun with 'recommend' in config.stages")
  curves = _lm_curves(lm_dir or wd)
  for name in ("xdkt", "target_only", "sasrec", "unisrec_style"):
    if name in runs and runs[name][0].get("train_losses"):
      curves[name] = runs[name][0]["train_losses"]
  views = None
  vpath = wd / "recommend" / "xdkt" / "seed_0" / "alignment_views.npz"
  results = {"config": json.loads(config.to_json_best_effort()),
             "dataset": data_stats.dataset_stats(ds, tok),
             "protocol": f"{split.protocol}" + (f" k={split.k}" if split.protocol == "cold_start"
                                                else ""),
             "targets": split.targets, "sources": split.sources,
             "split": P.summary(split),
             "n_items": ds.domains[split.targets[0]].n_items,
             "n_test": next(iter(runs.values()))[0]["n"],
             "eval_part": str(config.recommend.eval_part),
             "tuning": bool(config.recommend.get("tuning", False)),
             **stats_, "timings_s": timings}
  if vpath.exists():
    views = dict(np.load(vpath))
    results["alignment"] = report.alignment_numbers(views)
  files = report.write(wd, results, curves, views)
  log(f"report: {', '.join(str(wd / f) for f in files)}")


def embed(config, texts_path: str, out_path: str, *, workdir: str = "") -> np.ndarray:
  """One text per line → float32 [N, D] (.npy).  Weights: the workdir's adapted (else
  pre-trained) encoder when --workdir is given, else config.encoder.init_from."""
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data.tokenization import encode_texts, load_tokenizer  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data.textio import open_text  # pylint: disable=import-outside-toplevel
  out = Path(out_path).expanduser()
  if out.is_dir():     # found before the encoder runs, not after
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
      raise ValueError("xdkt embed without --workdir needs config.encoder.init_from "
                       "(random weights would give meaningless vectors)")
    enc_cfg, params, _ = initial_encoder(config)
  tok = load_tokenizer(config.data.tokenizer)
  ids, mask = encode_texts(tok, texts, int(config.data.max_text_len))
  vecs = lm.embed_texts(enc_cfg, params, ids, mask, pooling=config.encoder.pooling)
  out.parent.mkdir(parents=True, exist_ok=True)
  np.save(out, vecs)
  return vecs
