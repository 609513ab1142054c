"""Training W_k = the adapted encoder + the knowledge head on L_k, and its held-out report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import losses
from xdkt_jax.data.batching import Batcher, fixed_shape_batches
from xdkt_jax.knowledge.labels import KnowledgeLabels
from xdkt_jax.models.encoder_config import EncoderConfig
from xdkt_jax.models.knowledge_head import KnowledgeHeadConfig, KnowledgeModel
from xdkt_jax.train import trainer as trainer_lib


# The run config's `knowledge` section holds the training keys below beside these extraction
# keys (read by the pipeline's extract stage); from_config refuses a key that is neither.
EXTRACTION_KEYS = frozenset(
  {
    "entity_mode",
    "entity_fields",
    "min_df",
    "min_domain_df",
    "max_size",
    "max_df_frac",
    "cross_domain_only",
  }
)


@dataclasses.dataclass(frozen=True)
class KnowledgeTrainConfig:
  """How W_k is trained.  No defaults here: the values come from the run config's `knowledge`
  section (configs/common.py, the one place they are set) through `from_config`."""

  steps: int
  batch_size: int
  lr: float
  warmup_steps: int  # -1: 10% of steps
  schedule: str
  weight_decay: float
  finetune_encoder: bool  # False: encoder frozen (W_k = W_t + head)
  entity_dim: int
  dropout: float
  heldout_frac: float  # items per domain never trained on, for the L_k report
  eval_batch_size: int
  eval_max_items: int  # per domain and part, to keep evaluation cheap

  @classmethod
  def from_config(cls, section: Mapping[str, Any], **overrides) -> "KnowledgeTrainConfig":
    """From the run config's `knowledge` section (keyword overrides win).  An unknown key in
    the section, or a missing one, raises and names it."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(section) - set(names) - EXTRACTION_KEYS)
    if unknown:
      raise ValueError(
        f"config.knowledge: unknown key(s) {unknown}; known: {sorted(set(names) | EXTRACTION_KEYS)}"
      )
    vals = {**{k: section[k] for k in section if k in names}, **overrides}
    missing = [k for k in names if k not in vals]
    if missing:
      raise ValueError(
        f"config.knowledge: missing key(s) {missing} (configs/common.py "
        "knowledge_config() has them all)"
      )
    return cls(**vals)


def _split_items(n: int, frac: float, seed: int, salt: int):
  perm = np.random.default_rng([seed, 7177, salt]).permutation(n)
  n_held = min(max(int(round(n * frac)), 1 if n > 1 and frac > 0 else 0), max(n - 1, 0))
  return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _rows(arrays: dict, idx) -> dict:
  return {k: v[idx] for k, v in arrays.items()}


def make_eval_fn(model: KnowledgeModel):
  """Jitted (params, ids, mask, labels, weights) → (Σ nll, Σ w, Σ correct, Σ entity w,
  Σ entity correct): pooled exactly over any number of batches.  The NLL is L_k's own
  (losses.knowledge_loss); a hit is the argmax label, so a tie counts as a miss."""

  @jax.jit
  def ev(params, ids, mask, labels, weights):
    logits = model.apply({"params": params}, ids, mask, deterministic=True)
    _, sums = losses.knowledge_loss(logits_BxLxK=logits, labels_BxL=labels, weights_BxL=weights)
    w = weights.astype(jnp.float32)
    hit = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    we = w * (labels > 0)
    return jnp.stack(
      [sums["nll_sum"], sums["n_tokens"], jnp.sum(hit * w), we.sum(), jnp.sum(hit * we)]
    )

  return ev


_EVAL_SUMS = ("nll", "tokens", "correct", "entity_tokens", "entity_correct")


def evaluate_knowledge(ev, params, data: dict, *, batch_size: int) -> dict:
  """L_k per labelled token, token accuracy and entity recall (accuracy on entity tokens)."""
  total = np.zeros(len(_EVAL_SUMS))
  for b, _ in fixed_shape_batches(data, batch_size):  # padded rows weigh nothing
    total += np.asarray(
      jax.device_get(ev(params, b["ids"], b["mask"], b["labels"], b["weights"])), np.float64
    )
  t = dict(zip(_EVAL_SUMS, total))
  return {
    "lk": t["nll"] / max(t["tokens"], 1),
    "accuracy": t["correct"] / max(t["tokens"], 1),
    "entity_recall": t["entity_correct"] / max(t["entity_tokens"], 1),
    "tokens": int(t["tokens"]),
    "entity_tokens": int(t["entity_tokens"]),
  }


def _item_parts(labels: KnowledgeLabels, heldout_frac: float, seed: int) -> dict:
  """{"train": {domain: arrays}, "heldout": {domain: arrays}}: per domain a fixed share of
  items is never trained on, so the L_k report measures generalisation to unseen items."""
  parts = {"train": {}, "heldout": {}}
  for i, d in enumerate(labels.labels):
    arrays = {
      "ids": labels.ids[d],
      "mask": labels.mask[d],
      "labels": labels.labels[d],
      "weights": labels.weights[d],
    }
    tr, he = _split_items(len(arrays["ids"]), heldout_frac, seed, i)
    parts["train"][d], parts["heldout"][d] = _rows(arrays, tr), _rows(arrays, he)
  return parts


def _objective(model: KnowledgeModel, *, freeze_encoder: bool):
  """(params, batch, rng) → (L_k, {accuracy, entity_recall}) over the batch's real rows."""

  def loss_fn(params, batch, rng):
    logits = model.apply(
      {"params": params},
      batch["ids"],
      batch["mask"],
      deterministic=False,
      freeze_encoder=freeze_encoder,
      rngs={"dropout": rng},
    )
    w = batch["weights"] * batch["example_mask"][:, None].astype(jnp.float32)
    loss, _ = losses.knowledge_loss(logits_BxLxK=logits, labels_BxL=batch["labels"], weights_BxL=w)
    hit = (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)
    we = w * (batch["labels"] > 0)
    return loss, {
      "accuracy": jnp.sum(hit * w) / jnp.maximum(w.sum(), 1.0),
      "entity_recall": jnp.sum(hit * we) / jnp.maximum(we.sum(), 1.0),
    }

  return loss_fn


def _start_from_encoder(enc_params):
  """The trainer's `start`: a fresh state's encoder replaced by `enc_params["encoder"]`."""

  def start(state, sharding):
    if enc_params is None:
      return state
    # A jitted copy: the train step donates the state, and the caller's arrays must survive.
    enc = jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=sharding.params["encoder"])(
      enc_params["encoder"]
    )
    return state.replace(params={**state.params, "encoder": enc})

  return start


def train_knowledge(
  enc_cfg: EncoderConfig,
  enc_params,
  labels: KnowledgeLabels,
  num_labels: int,
  tcfg: KnowledgeTrainConfig,
  run: trainer_lib.RunSettings,
  *,
  ckpt_dir: str | Path | None = None,
  log_fn=print,
):
  """Trains W_k = encoder (from `enc_params`, frozen unless `finetune_encoder`) + head on L_k
  over the items of every domain in `labels`.  Returns (params, metrics) where metrics hold
  L_k / accuracy / entity recall per domain on held-out and training items, before and after.
  `enc_params`: LanguageModel or KnowledgeModel params (only ["encoder"] is read), or None
  for a random encoder.  `run`: the run's mesh, rules, checkpointing, seed and reporting.
  Resumes from `ckpt_dir` when given."""
  from xdkt_jax.train import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from xdkt_jax.train import loop as loop_lib
  from xdkt_jax.train import mesh as mesh_lib
  from xdkt_jax.train.writers import MetricWriter

  model = KnowledgeModel(
    enc_cfg,
    KnowledgeHeadConfig(
      num_labels=int(num_labels), entity_dim=int(tcfg.entity_dim), dropout=float(tcfg.dropout)
    ),
  )
  parts = _item_parts(labels, float(tcfg.heldout_frac), run.seed)
  pooled = {
    k: np.concatenate([v[k] for v in parts["train"].values()])
    for k in ("ids", "mask", "labels", "weights")
  }
  L = pooled["ids"].shape[1]
  steps = int(tcfg.steps)
  trainer = trainer_lib.build(
    lambda rng: model.init(rng, jnp.zeros((1, L), jnp.int32), jnp.ones((1, L), jnp.int32)),
    _objective(model, freeze_encoder=not tcfg.finetune_encoder),
    dict(
      lr=float(tcfg.lr),
      warmup_steps=trainer_lib.warmup_steps(tcfg.warmup_steps, steps),
      total_steps=max(steps, 1),
      schedule=tcfg.schedule,
      weight_decay=float(tcfg.weight_decay),
      clip_norm=1.0,
      freeze=[] if tcfg.finetune_encoder else [r"^encoder/"],
    ),
    init_key=jax.random.PRNGKey(run.seed),
    mesh=mesh_lib.make_mesh(run.mesh),
    rules=mesh_lib.rules_from_config(run.rules),
    start=_start_from_encoder(enc_params),
    ckpt_mngr=ckpt_lib.make_manager(Path(ckpt_dir), run.ckpt) if ckpt_dir else None,
  )
  batcher = Batcher(pooled, min(int(tcfg.batch_size), len(pooled["ids"])), seed=run.seed)
  data = loop_lib.StepIndexedData(batcher.batch_at, batcher.steps_per_epoch)
  data.set_state(trainer.data_position)

  ev = make_eval_fn(model)
  cap = int(tcfg.eval_max_items)

  def evaluate(params):
    return {
      part: {
        d: evaluate_knowledge(
          ev, params, _rows(a, slice(0, cap)), batch_size=int(tcfg.eval_batch_size)
        )
        for d, a in parts[part].items()
        if len(a["ids"])
      }
      for part in ("train", "heldout")
    }

  before = evaluate(trainer.fresh().params if data.step else trainer.state.params)
  writer = MetricWriter(str(Path(ckpt_dir).parent / "logs")) if ckpt_dir else None
  try:
    result = trainer.run(
      data,
      total_steps=steps,
      stage="knowledge",
      writer=writer,
      log_every=run.log_every,
      progress=run.progress,
    )
  finally:
    if writer is not None:
      writer.close()
  params = jax.device_get(result.state.params)
  after = evaluate(params)
  for d, m in after["heldout"].items():
    log_fn(
      f"knowledge: {d} held-out L_k {before['heldout'][d]['lk']:.3f} → {m['lk']:.3f}, "
      f"entity recall {before['heldout'][d]['entity_recall']:.3f} → "
      f"{m['entity_recall']:.3f} ({m['entity_tokens']} entity tokens)"
    )
  return params, {
    "steps": steps,
    "num_labels": int(num_labels),
    "resumed_at": int(trainer.data_position["step"]),
    "finetune_encoder": bool(tcfg.finetune_encoder),
    "before": before,
    "after": after,
    "final_train_metrics": result.metrics,
  }
