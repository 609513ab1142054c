"""Language-model stages on item text: pre-training (L_p) and domain adaptation (L_t).

Both stages are the same jitted masked-LM (BERT family) or next-token (GPT family) train step
over tokenised item text; they differ in where the weights start and which text they read:

  pretrain  W_p: from config.encoder.init_from (continued pre-training) or from scratch
            (config.encoder.preset), on the item text of ALL configured domains.
  adapt     W_t: from W_p, on source + target text with `config.adapt.target_ratio` of every
            batch drawn from the target domain; optionally the lower N layers frozen.

Each reports held-out perplexity per domain before and after, on items it never trains on (a
seeded `heldout_frac` of each domain's catalogue), with a FIXED masking key so the before/after
numbers are computed on identical masked positions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import losses
from xdkt_jax.data.batching import Batcher, fixed_shape_batches
from xdkt_jax.data.tokenization import TokenizedItems, load_tokenizer
from xdkt_jax.models import hf_weights
from xdkt_jax.models.encoder import LanguageModel, pool
from xdkt_jax.models.encoder_config import EncoderConfig
from xdkt_jax.train import checkpoint as ckpt_lib
from xdkt_jax.train import loop as loop_lib
from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train import optim
from xdkt_jax.train import trainer as trainer_lib
from xdkt_jax.train.writers import MetricWriter

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Corpus.


@dataclasses.dataclass
class Corpus:
  """Per domain: training and held-out token arrays (disjoint items)."""

  train: dict[str, dict[str, np.ndarray]]  # domain -> {'ids', 'mask'}
  heldout: dict[str, dict[str, np.ndarray]]


def make_corpus(
  tok: TokenizedItems, *, domains: list[str], heldout_frac: float, seed: int
) -> Corpus:
  train, held = {}, {}
  for d in domains:
    n = len(tok.ids[d])
    perm = np.random.default_rng([seed, 4242, len(d)]).permutation(n)
    n_held = min(max(int(round(n * heldout_frac)), 1 if n > 1 else 0), max(n - 1, 0))
    h, t = np.sort(perm[:n_held]), np.sort(perm[n_held:])
    train[d] = {"ids": tok.ids[d][t], "mask": tok.mask[d][t]}
    held[d] = {"ids": tok.ids[d][h], "mask": tok.mask[d][h]}
  return Corpus(train, held)


class MixedBatches:
  """Deterministic batches mixing domains: `ratio` of each batch from `target` (when given),
  the rest from the other domains pooled.  batch_at(step) is a pure function of the step."""

  def __init__(
    self,
    corpus: Corpus,
    batch_size: int,
    *,
    seed: int,
    target: str | None = None,
    ratio: float = 0.5,
  ):
    parts = []
    if target is not None and 0 < ratio < 1 and len(corpus.train) > 1:
      n_t = max(1, min(batch_size - 1, int(round(batch_size * ratio))))
      others = [d for d in corpus.train if d != target]
      parts.append((Batcher(corpus.train[target], n_t, seed=seed), n_t))
      pooled = {k: np.concatenate([corpus.train[d][k] for d in others]) for k in ("ids", "mask")}
      parts.append((Batcher(pooled, batch_size - n_t, seed=seed + 1), batch_size - n_t))
    else:
      doms = [target] if target is not None and ratio >= 1 else list(corpus.train)
      pooled = {k: np.concatenate([corpus.train[d][k] for d in doms]) for k in ("ids", "mask")}
      parts.append((Batcher(pooled, batch_size, seed=seed), batch_size))
    self.parts = parts

  def batch_at(self, step: int) -> dict[str, np.ndarray]:
    got = [b.batch_at(step) for b, _ in self.parts]
    return {k: np.concatenate([g[k] for g in got]) for k in ("ids", "mask")}


# ---------------------------------------------------------------------------------------------
# Model, loss, evaluation.


@dataclasses.dataclass
class Special:
  mask_token_id: int
  special_ids: tuple[int, ...]
  vocab_size: int


def special_tokens(tokenizer_spec: str) -> Special:
  tok = load_tokenizer(tokenizer_spec)
  mask_id = tok.mask_token_id if tok.mask_token_id is not None else -1
  return Special(int(mask_id), tuple(int(i) for i in tok.all_special_ids), int(len(tok)))


def max_predictions(seq_len: int, mask_prob: float = 0.15) -> int:
  """Masked-LM prediction slots per sequence: enough for round(0.15 · L) plus one."""
  return min(seq_len, int(math.ceil(mask_prob * seq_len)) + 1)


def lm_targets(cfg: EncoderConfig, special: Special, specials, rng, ids, mask):
  """(inputs, positions|None, targets, weights) of the family's LM objective."""
  if cfg.causal:
    inputs, targets, weights = losses.causal_lm_inputs(ids_BxL=ids, mask_BxL=mask)
    return inputs, None, targets, weights
  return losses.mlm_select(
    rng,
    ids_BxL=ids,
    mask_BxL=mask,
    mask_token_id=special.mask_token_id,
    vocab_size=cfg.vocab_size,
    special_ids_S=specials,
    max_predictions=max_predictions(ids.shape[1]),
  )


def make_loss_fn(model: LanguageModel, special: Special):
  """(params, batch, rng) → (L_p/L_t, metrics) for the model's family."""
  cfg = model.cfg
  specials = jnp.asarray(special.special_ids, jnp.int32)

  def loss_fn(params, batch, rng):
    k_mask, k_drop = jax.random.split(rng)
    ids, mask = batch["ids"], batch["mask"]
    inputs, positions, targets, weights = lm_targets(cfg, special, specials, k_mask, ids, mask)
    logits = model.apply(
      {"params": params},
      inputs,
      mask,
      deterministic=False,
      rngs={"dropout": k_drop},
      positions_BxP=positions,
    )
    loss, aux = losses.lm_loss(logits_BxLxV=logits, targets_BxL=targets, weights_BxL=weights)
    return loss, {"accuracy": aux["accuracy"], "n_tokens": aux["n_tokens"]}

  return loss_fn


def make_nll_fn(model: LanguageModel, special: Special):
  """Jitted (params, ids, mask, key) → (Σ NLL, #predicted tokens); built once per stage so the
  before/after and per-domain evaluations share one compilation."""
  cfg = model.cfg
  specials = jnp.asarray(special.special_ids, jnp.int32)

  @jax.jit
  def nll(params, ids, mask, key):
    inputs, positions, targets, weights = lm_targets(cfg, special, specials, key, ids, mask)
    logits = model.apply(
      {"params": params}, inputs, mask, deterministic=True, positions_BxP=positions
    )
    _, aux = losses.lm_loss(logits_BxLxV=logits, targets_BxL=targets, weights_BxL=weights)
    return aux["nll_sum"], aux["n_tokens"]

  return nll


def heldout_perplexity(nll_fn, params, data: dict, *, batch_size: int, seed: int) -> dict:
  """exp(Σ NLL / Σ predicted tokens) over `data`, with fixed masks (key derived from seed)."""
  tot, n = 0.0, 0.0
  base = jax.random.PRNGKey(seed)
  # Padded rows have an all-zero mask, so they predict nothing.
  batches = fixed_shape_batches({"ids": data["ids"], "mask": data["mask"]}, batch_size)
  for i, (b, _) in enumerate(batches):
    a, c = jax.device_get(nll_fn(params, b["ids"], b["mask"], jax.random.fold_in(base, i)))
    tot, n = tot + float(a), n + float(c)
  return {"nll": tot / max(n, 1.0), "perplexity": math.exp(tot / max(n, 1.0)), "n_tokens": int(n)}


def perplexity_by_domain(nll_fn, params, corpus: Corpus, *, batch_size, seed) -> dict:
  return {
    d: heldout_perplexity(nll_fn, params, corpus.heldout[d], batch_size=batch_size, seed=seed)
    for d in corpus.heldout
    if len(corpus.heldout[d]["ids"])
  }


# ---------------------------------------------------------------------------------------------
# Where the weights start.


def initial_encoder(config, special: Special):
  """(EncoderConfig, params) before any stage: `init_from` weights, or a preset from scratch."""
  ec = config.encoder
  overrides = {"dtype": ec.dtype}
  if ec.get("dropout", -1.0) >= 0:
    overrides.update(dropout=float(ec.dropout), attention_dropout=float(ec.dropout))
  if ec.init_from:
    cfg, params = hf_weights.load_pretrained(ec.init_from, seed=int(config.seed), **overrides)
    if cfg.vocab_size < special.vocab_size:
      raise ValueError(
        f"config.encoder.init_from={ec.init_from!r} has vocab {cfg.vocab_size} "
        f"but tokenizer {config.data.tokenizer!r} has {special.vocab_size}"
      )
    return cfg, params
  preset = getattr(EncoderConfig, ec.preset, None)
  if preset is None:
    raise ValueError(
      f"config.encoder.preset: unknown preset {ec.preset!r} "
      "(tiny | minilm | bert_base | gpt2_small)"
    )
  sizes = {
    k: int(ec[k])
    for k in ("hidden_size", "num_layers", "num_heads", "mlp_dim")
    if int(ec.get(k, 0)) > 0
  }
  cfg = preset(
    vocab_size=special.vocab_size,
    max_len=max(int(config.data.max_text_len), 8),
    **sizes,
    **overrides,
  )
  if ec.family and cfg.family != ec.family:
    cfg = cfg.replace(family=ec.family)
  return cfg, None


def stage_encoder(workdir: Path, stage: str):
  """(EncoderConfig, params) saved by a finished stage, or None."""
  hf = workdir / stage / "hf"
  if (hf / "model.safetensors").exists():
    return hf_weights.load_pretrained(str(hf))
  return None


# ---------------------------------------------------------------------------------------------
# The stage runner.


def train_lm(
  run: trainer_lib.RunSettings,
  stage_cfg,
  enc_cfg: EncoderConfig,
  init_params,
  corpus: Corpus,
  special: Special,
  stage_dir: Path,
  *,
  target: str | None,
  ratio: float,
  freeze: list[str],
  log_fn=print,
):
  """Runs one LM stage (`stage_cfg`: the config's pretrain or adapt section); returns
  (params, metrics dict).  Resumes from stage_dir/ckpt."""
  model = LanguageModel(enc_cfg)
  mesh = mesh_lib.make_mesh(run.mesh)
  rules = mesh_lib.rules_from_config(run.rules)
  bs = int(stage_cfg.batch_size)
  eval_bs = int(stage_cfg.get("eval_batch_size", 0)) or bs
  seed = run.seed
  L = corpus.train[next(iter(corpus.train))]["ids"].shape[1]
  dummy = (jnp.zeros((1, L), jnp.int32), jnp.ones((1, L), jnp.int32))
  init_fn = lambda rng: model.init(rng, *dummy)

  steps = int(stage_cfg.steps)
  opt_cfg = dict(
    lr=float(stage_cfg.lr),
    warmup_steps=trainer_lib.warmup_steps(stage_cfg.warmup_steps, steps),
    total_steps=max(steps, 1),
    schedule=stage_cfg.schedule,
    weight_decay=float(stage_cfg.weight_decay),
    clip_norm=1.0,
    freeze=freeze,
    grad_accum=int(stage_cfg.get("grad_accum", 1)),
  )

  def start(state, sharding):
    if init_params is None:
      return state
    return state.replace(params=jax.device_put(init_params, sharding.params))

  loss_fn = optim.stop_frozen_gradients(make_loss_fn(model, special), freeze)
  trainer = trainer_lib.build(
    init_fn,
    loss_fn,
    opt_cfg,
    init_key=jax.random.PRNGKey(seed),
    mesh=mesh,
    rules=rules,
    start=start,
    ckpt_mngr=ckpt_lib.make_manager(stage_dir / "ckpt", run.ckpt),
  )
  batches = MixedBatches(corpus, bs, seed=seed, target=target, ratio=ratio)
  data = loop_lib.StepIndexedData(batches.batch_at)
  data.set_state(trainer.data_position)

  # "before" is always the stage's starting weights, also when resuming mid-stage.
  start_params = (
    trainer.fresh().params if trainer.resumed_from == "workdir" else trainer.state.params
  )
  nll_fn = make_nll_fn(model, special)
  before = perplexity_by_domain(nll_fn, start_params, corpus, batch_size=eval_bs, seed=seed)
  writer = MetricWriter(str(stage_dir / "logs"))
  try:
    result = trainer.run(
      data,
      total_steps=steps,
      stage=stage_dir.name,
      writer=writer,
      log_every=run.log_every,
      progress=run.progress,
    )
  finally:
    writer.close()
  params = jax.device_get(result.state.params)
  after = perplexity_by_domain(nll_fn, params, corpus, batch_size=eval_bs, seed=seed)
  metrics = {
    "steps": steps,
    "resumed_from": trainer.resumed_from,
    "heldout_perplexity_before": {d: v["perplexity"] for d, v in before.items()},
    "heldout_perplexity_after": {d: v["perplexity"] for d, v in after.items()},
    "heldout_tokens": {d: v["n_tokens"] for d, v in after.items()},
    "final_train_metrics": result.metrics,
  }
  for d in after:
    log_fn(
      f"{stage_dir.name}: {d} held-out perplexity {before[d]['perplexity']:.2f} → "
      f"{after[d]['perplexity']:.2f} ({after[d]['n_tokens']} tokens)"
    )
  return params, metrics


def freeze_patterns(enc_cfg: EncoderConfig, n_layers: int, freeze_embeddings: bool) -> list[str]:
  pats = [rf"^encoder/layers_{i}/" for i in range(min(n_layers, enc_cfg.num_layers))]
  if freeze_embeddings:
    pats.append(r"^encoder/(token_embed|pos_embed|type_embed|embed_ln)/")
  return pats


def save_stage(stage_dir: Path, enc_cfg, params, metrics: dict) -> None:
  hf_weights.save_pretrained(str(stage_dir / "hf"), enc_cfg, params)
  (stage_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))


# ---------------------------------------------------------------------------------------------
# Embedding.


def embed_texts(
  enc_cfg: EncoderConfig,
  params,
  ids: np.ndarray,
  mask: np.ndarray,
  *,
  pooling: str,
  batch_size: int = 256,
) -> np.ndarray:
  """Token arrays → float32 [N, D] pooled vectors (fixed batch shape: one compile)."""
  model = LanguageModel(enc_cfg)

  @jax.jit
  def enc(params, ids, mask):
    h = model.apply({"params": params}, ids, mask, deterministic=True, method=LanguageModel.encode)
    return pool(h, mask, pooling)

  n = len(ids)
  out = np.zeros((n, enc_cfg.hidden_size), np.float32)
  bs = max(1, min(batch_size, n))
  at = 0
  # Padded rows get an all-ones mask, so pooling over them stays finite.
  for b, k in fixed_shape_batches({"ids": ids, "mask": mask}, bs, fill={"mask": 1}):
    out[at : at + k] = np.asarray(enc(params, b["ids"], b["mask"]))[:k]
    at += k
  return out
