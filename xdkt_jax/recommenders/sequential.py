"""Training the sequential recommenders (SASRec, the `target_only` control, and the full
method's recommender) on the target domain's training rows, with the shared train step.

  model = train_sasrec(ds, split, target="Movies", cfg=dict(config.recommend.sequential))
  scores_BxN = model.score(batch)      # batch from data.inputs.eval_arrays
"""

from __future__ import annotations

import logging
import math
import time
import types

import jax
import jax.numpy as jnp
import numpy as np

from xdkt_jax import objectives
from xdkt_jax.data import inputs, splits
from xdkt_jax.data.batching import Batcher, pad_sequences
from xdkt_jax.data.windows import pack_windows, segment_users, training_windows
from xdkt_jax.models.sasrec import SASRec
from xdkt_jax.models.xdkt import ITEM_ALIGNS, XDKTRec
from xdkt_jax.recommenders import selection
from xdkt_jax.recommenders.scoring import SASRecModel
from xdkt_jax.train import mesh as mesh_lib
from xdkt_jax.train import trainer as trainer_lib

# The recommender's settings: the keys of the run config's `recommend.sequential` section
# (SETTINGS) and, for the full method, of `recommend.xdkt` (TRANSFER_SETTINGS).  Their values
# live in one place, configs/common.py; train_sasrec requires every one (no second default
# here) and refuses an unknown key.  Where the values were chosen: benchmarks/RESULTS.md
# ("SASRec defaults").
SETTINGS = (
  "hidden",
  "layers",
  "heads",
  "mlp",
  "max_len",
  "dropout",
  "attn_dropout",
  "text_dropout",
  "inner_dropout",
  "norm",
  "act",
  "dtype",
  "weight_decay",
  "clip_norm",
  "lr",
  "schedule",
  "warmup_steps",
  "batch",
  "epochs",
  "steps",
  "loss",
  "num_negatives",
  "first_item_loss",
  "adaptor",
  "n_experts",
  "fusion",
  "pack",
  "select_epoch",
  "patience",
  "select_metric",
)
TRANSFER_SETTINGS = (
  "align",
  "align_weight",
  "align_temperature",
  "align_items",
  "adversarial_lambda",
  "user_agg",
  "source_len",
  "source_repr",
  "source_weight",
)
# Per call, not per experiment: the method's item representation (recommend.py sets it per
# method), a seed overriding the `seed` argument, and the rule that ranks the valid users
# for early stopping (the recommend stage passes the run's resolved rule).
CALL_OPTIONS = dict(mode="id", seed=None, exclude_history="auto")


def settings(cfg, *, transfer: bool) -> types.SimpleNamespace:
  """`cfg` (dict or ConfigDict) checked against SETTINGS (+ TRANSFER_SETTINGS with
  `transfer`) and CALL_OPTIONS: an unknown or a missing key raises, naming it."""
  cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
  known = set(SETTINGS) | set(TRANSFER_SETTINGS) | set(CALL_OPTIONS)
  unknown = sorted(set(cfg) - known)
  if unknown:
    raise ValueError(f"sasrec: unknown option(s) {unknown}; known: {sorted(known)}")
  required = SETTINGS + (TRANSFER_SETTINGS if transfer else ())
  missing = [k for k in required if k not in cfg]
  if missing:
    raise ValueError(
      f"sasrec: missing option(s) {missing}: the run config's "
      "recommend.sequential (and recommend.xdkt) sections have them all "
      "(configs/common.py)"
    )
  return types.SimpleNamespace(**{**CALL_OPTIONS, **cfg})


def _item_vectors(item_vectors, target: str, n_items: int):
  if item_vectors is None:
    return None
  if isinstance(item_vectors, dict):
    item_vectors = item_vectors[target]
  v = np.asarray(item_vectors, np.float32)
  if v.ndim != 2 or v.shape[0] != n_items:
    raise ValueError(f"sasrec: item_vectors must be [{n_items}, T], got {v.shape}")
  return v


def _source_inputs(ds, split, source_len: int, source_vectors, *, need_vectors: bool) -> dict:
  """The full method's source side: each user's last `source_len` TRAINING source items
  (global ids over split.sources, data.inputs), a has-history flag, the source knowledge."""
  if not split.sources:
    raise ValueError(f"xdkt: protocol {split.protocol!r} has no source domains to transfer from")
  offsets, items = inputs.source_sequences(ds, split)
  hist, mask = pad_sequences(offsets, items, source_len, keep="last")
  n_src = sum(ds.domains[s].n_items for s in split.sources)
  out = {
    "source_hist": hist.astype(np.int32),
    "source_mask": mask.astype(np.int8),
    "user_has": (np.diff(offsets) > 0).astype(np.float32),
    "n_source_items": n_src,
  }
  if need_vectors:
    if source_vectors is None:
      raise ValueError("xdkt: text/fused modes need source item knowledge (source_vectors)")
    if isinstance(source_vectors, dict):
      source_vectors = np.concatenate(
        [np.asarray(source_vectors[s], np.float32) for s in split.sources]
      )
    v = np.asarray(source_vectors, np.float32)
    if v.shape[0] != n_src:
      raise ValueError(f"xdkt: source_vectors has {v.shape[0]} rows, the sources have {n_src}")
    out["source_vectors"] = v
  return out


def _training_batches(ds, split, target: str, opt, *, seed: int, transfer: bool, mesh):
  """The target's TRAINING sequences as windows (packed with `opt.pack`), in batches whose row
  count divides over the mesh's batch axes; and their sizes for the run's info."""
  n_items = ds.domains[target].n_items
  offsets, items = splits.train_sequences(
    ds, split, target, consumer="sequential recommender batches"
  )
  windows = training_windows(offsets, items, n_items=n_items, max_len=int(opt.max_len))
  n_win = len(windows["inputs"])
  data = (
    pack_windows(windows, max_len=int(opt.max_len), max_segments=8 if transfer else 0)
    if opt.pack
    else windows
  )
  if n_win == 0:
    raise ValueError(f"sasrec: no training rows in target domain {target!r}")
  bsz = int(opt.batch)
  n_rows = len(data["inputs"])
  if n_rows < bsz:  # tiny data: one batch holding every row, no remainder dropped
    bsz = n_rows
  n_batch_shards = math.prod(mesh.shape[a] for a in mesh_lib.BATCH_AXES)
  bsz = max(n_batch_shards, bsz // n_batch_shards * n_batch_shards)
  if transfer:
    if not opt.first_item_loss:
      raise ValueError("sasrec: first_item_loss=False is for the plain recommender only")
    data = segment_users(data)
  batcher = Batcher(data, bsz, seed=seed, drop_remainder=True)
  return batcher, {"windows": n_win, "rows": n_rows, "batch": bsz}


def _recommender(ds, split, opt, *, n_items: int, vectors, transfer: bool, source_vectors):
  """(the Flax module, its constants): SASRec, or with `transfer` the full method's XDKTRec
  with every user's training source history among the constants."""
  kw = dict(
    n_items=n_items,
    hidden=int(opt.hidden),
    layers=int(opt.layers),
    heads=int(opt.heads),
    mlp=int(opt.mlp),
    max_len=int(opt.max_len),
    dropout=float(opt.dropout),
    norm=str(opt.norm),
    mode=str(opt.mode),
    text_dim=0 if vectors is None else vectors.shape[1],
    adaptor=str(opt.adaptor),
    n_experts=int(opt.n_experts),
    fusion=str(opt.fusion),
    text_dropout=float(opt.text_dropout),
    dtype=str(opt.dtype),
    act=str(opt.act),
    attn_dropout=float(opt.attn_dropout),
    inner_dropout=bool(opt.inner_dropout),
  )
  consts = {} if vectors is None else {"item_vectors": vectors}  # the 'consts' collection
  if not transfer:
    return SASRec(**kw), consts
  src = _source_inputs(
    ds,
    split,
    int(opt.source_len),
    source_vectors,
    need_vectors=(opt.source_repr != "id" or str(opt.align) in ITEM_ALIGNS),
  )
  n_source_items = src.pop("n_source_items")
  consts.update(src)
  return XDKTRec(
    **kw,
    n_users=ds.n_users,
    n_source_items=n_source_items,
    source_len=int(opt.source_len),
    user_agg=str(opt.user_agg),
    align=str(opt.align),
    source_repr=str(opt.source_repr),
  ), consts


def _objective(module, opt, *, transfer: bool):
  if transfer:
    return objectives.xdkt_objective(
      module,
      kind=str(opt.loss),
      num_negatives=int(opt.num_negatives),
      align_weight=float(opt.align_weight),
      temperature=float(opt.align_temperature),
      align_items=int(opt.align_items),
      adversarial_lambda=float(opt.adversarial_lambda),
      source_weight=float(opt.source_weight),
    )
  return objectives.next_item_objective(
    module,
    kind=str(opt.loss),
    num_negatives=int(opt.num_negatives),
    first_item_loss=bool(opt.first_item_loss),
  )


class _LossLog:
  """A writer that keeps the per-step loss the loop fetches anyway (lagged, no extra sync)."""

  def __init__(self):
    self.losses = []

  def write_scalars(self, at, scalars):
    del at
    self.losses.append(scalars["train/loss"])

  def flush(self):
    pass


def train_sasrec(
  ds,
  split,
  *,
  target: str,
  cfg,
  item_vectors=None,
  seed: int = 0,
  mesh=None,
  log_fn=None,
  transfer: bool = False,
  source_vectors=None,
) -> SASRecModel:
  """Trains SASRec on the target domain's TRAINING rows (split.train_rows only, via
  splits.train_sequences) with the shared trainer; returns a SASRecModel.

  cfg: every key of SETTINGS (+ TRANSFER_SETTINGS with `transfer`), optionally CALL_OPTIONS
  (`settings`).  `cfg['seed']`, when set, overrides `seed`.  `item_vectors`: [N, T] array or
  {domain: array}; required for the 'text' and 'fused' modes.  Runs on `mesh` (default: all
  devices, data-parallel).

  `transfer=True` trains the full method's recommender instead (models/xdkt.py): each user's
  TRAINING source items (split.sources, last `source_len`) are fused in, with `cfg['align']`;
  `source_vectors` ({domain: [n_items, T]} or [N_s, T] in split.sources order) is the source
  items' knowledge, required in the text / fused modes.
  """
  opt = settings(cfg, transfer=transfer)
  seed = int(seed if opt.seed is None else opt.seed)
  n_items = ds.domains[target].n_items
  vectors = _item_vectors(item_vectors, target, n_items)
  if opt.mode in ("text", "fused") and vectors is None:
    raise ValueError(f"sasrec mode {opt.mode!r} needs item_vectors")
  if opt.mode == "id":
    vectors = None
  mesh = mesh if mesh is not None else mesh_lib.make_mesh()
  batcher, sizes = _training_batches(
    ds, split, target, opt, seed=seed, transfer=transfer, mesh=mesh
  )
  total = int(opt.steps) or max(1, int(opt.epochs) * batcher.steps_per_epoch)
  module, consts = _recommender(
    ds,
    split,
    opt,
    n_items=n_items,
    vectors=vectors,
    transfer=transfer,
    source_vectors=source_vectors,
  )
  dummy = (jnp.zeros((1, int(opt.max_len)), jnp.int32), jnp.ones((1, int(opt.max_len)), jnp.int8))
  dummy_users = jnp.zeros((1, int(opt.max_len)), jnp.int32) if transfer else None
  opt_cfg = dict(
    lr=float(opt.lr),
    schedule=str(opt.schedule),
    warmup_steps=int(opt.warmup_steps),
    total_steps=total,
    weight_decay=float(opt.weight_decay),
    clip_norm=float(opt.clip_norm),
  )
  k_init, k_train = jax.random.split(jax.random.PRNGKey(seed))
  variables = {"consts": consts} if consts else None  # flax variables beside the params
  trainer = trainer_lib.build(
    lambda rng: module.init(rng, *dummy, users_BxL=dummy_users),
    _objective(module, opt, transfer=transfer),
    opt_cfg,
    init_key=k_init,
    loop_key=k_train,
    mesh=mesh,
    rules=mesh_lib.DEFAULT_RULES,
    log_lr=False,
    consts=variables,
  )
  loss_log = _LossLog()

  def train_to(state, first: int, stop: int):
    # Host batches come from a background thread, two ahead (no checkpoint here, so the
    # step-indexed resumable source is not needed); batch_at(step) makes chunks seamless.
    return trainer.run(
      batcher.iterate(first, stop - first, prefetch=2),
      state=state,
      total_steps=stop,
      stage="sasrec",
      writer=loss_log,
      log_every=1,
      progress=False,
      handle_sigterm=False,
    )

  t0 = time.time()
  select = {}
  if opt.select_epoch:
    result, select = selection.train_selecting_epoch(
      train_to,
      trainer.state,
      total=total,
      steps_per_epoch=batcher.steps_per_epoch,
      scorer=SASRecModel(module, None, trainer.consts, n_items, np.zeros(0, np.float32), {}),
      valid=selection.valid_arrays(ds, split, target, str(opt.exclude_history)),
      n_items=n_items,
      metric=str(opt.select_metric),
      patience=int(opt.patience),
    )
    params = select.pop("params")
  else:
    result = train_to(trainer.state, 0, total)
    params = jax.device_get(result.state.params)
  info = {
    "steps": int(result.step),
    **sizes,
    "train_seconds": time.time() - t0,
    "final_loss": float(result.metrics.get("loss", float("nan"))),
    "mode": opt.mode,
    "loss": opt.loss,
    "transfer": transfer,
    "align": str(opt.align) if transfer else "none",
    **select,
  }
  chosen = (
    f", kept epoch {select['best_epoch']} of {select['epochs_run']} (valid "
    f"{select['select_metric']} {select['best_valid']:.4f})"
    if select
    else ""
  )
  (log_fn or logging.info)(
    f"{'xdkt' if transfer else 'sasrec'}[{opt.mode}]: {info['steps']} steps over "
    f"{sizes['windows']} windows in {info['train_seconds']:.1f} s, final loss "
    f"{info['final_loss']:.3f}{chosen}"
  )
  return SASRecModel(
    module, params, variables, n_items, np.asarray(loss_log.losses, np.float32), info
  )
