"""The language-model stages: pretrain (L_p) and adapt (L_t), the encoder a run starts from,
and W_p read back for the stages after adapt."""

from __future__ import annotations

from pathlib import Path

from xdkt_jax import artifacts
from xdkt_jax.data import leakage
from xdkt_jax.stages.common import StageEncoder, claim, fingerprint, stage_dir


def lm_stage(
  name: str, config, workdir: Path, ds, tok, split, upstream: StageEncoder, log=print
) -> StageEncoder:
  """pretrain (L_p) or adapt (L_t) from the `upstream` encoder.  Reuses a finished stage whose
  inputs are unchanged."""
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel
  from xdkt_jax.train import trainer as trainer_lib  # pylint: disable=import-outside-toplevel

  scfg = config.pretrain if name == "pretrain" else config.adapt
  run = trainer_lib.RunSettings.from_config(config)
  folder = stage_dir(workdir, name)
  fp = fingerprint(
    name,
    upstream.fingerprint,
    tok.fingerprint,
    scfg.to_json(),
    config.encoder.to_json(),
    config.seed,
    split.fingerprint(),
  )
  if artifacts.is_done(folder, fp, log, name):
    enc_cfg, params = lm.stage_encoder(workdir, name)
    log(f"{name}: reusing finished stage ({folder})")
    return StageEncoder(enc_cfg, params, fp)
  claim(folder, fp)
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
  corpus = lm.make_corpus(
    tok, domains=domains, heldout_frac=float(scfg.heldout_frac), seed=int(config.seed)
  )
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
    params, head = lm.train_lm(
      run,
      hcfg,
      enc_cfg,
      params,
      corpus,
      special,
      folder / "head_warmup",
      target=target,
      ratio=ratio,
      freeze=[r"^encoder/"],
      log_fn=log,
    )
  params, metrics = lm.train_lm(
    run,
    scfg,
    enc_cfg,
    params,
    corpus,
    special,
    folder,
    target=target,
    ratio=ratio,
    freeze=freeze,
    log_fn=log,
  )
  if head:
    metrics["head_warmup"] = head
  metrics["encoder"] = enc_cfg.to_hf()
  lm.save_stage(folder, enc_cfg, params, metrics)
  artifacts.finish(folder, fp)
  return StageEncoder(enc_cfg, params, fp)


def initial_encoder(config) -> StageEncoder:
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel

  special = lm.special_tokens(config.data.tokenizer)
  enc_cfg, params = lm.initial_encoder(config, special)
  return StageEncoder(enc_cfg, params, fingerprint("init", config.encoder.to_json(), config.seed))


def pretrained_encoder(config, wd: Path, pretrained: StageEncoder | None) -> StageEncoder:
  """W_p, read back from disk: the arrays that entered adapt were donated to its train step.
  The pretrain stage's output when it trained, else the init_from weights."""
  from xdkt_jax import lm  # pylint: disable=import-outside-toplevel

  if (
    pretrained is not None
    and (wd / "pretrain" / "DONE").exists()
    and int(config.pretrain.steps) > 0
  ):
    enc_cfg, params = lm.stage_encoder(wd, "pretrain")
    return StageEncoder(enc_cfg, params, pretrained.fingerprint)
  return initial_encoder(config)
