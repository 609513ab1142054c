"""Encoder throughput and MFU: masked-LM training, item embedding, and the bare layer stack.

Shapes: MiniLM (``EncoderConfig.minilm()``, 6 x 384, F=1536) and BERT-base (``bert_base()``,
12 x 768, F=3072), vocabulary V=30522, item titles of L=64 tokens.  Weights are random
(speed does not depend on their values), so no weights package is needed.

Modes
  train   the real MLM train step of the LM stages: ``xdkt_jax.lm.make_loss_fn`` (BERT's
          fixed-count 80/10/10 masking, the LM head only at the P = ceil(0.15·L)+1 prediction
          slots) -> ``lm_loss`` -> grads -> AdamW (``make_optimizer``), jitted by
          ``make_train_step`` with its shardings and donation.  Reported in tokens/s.
  embed   item vectors: ``LanguageModel.encode`` + mean ``pool``, jitted.  Items/s.
  layers  (``--layers-only``) the bare stack of ``num_layers`` ``Block`` modules on random
          [B, L, D] activations, no embeddings and no LM head, no dropout: forward, and
          forward+backward (grads w.r.t. params and input).

FLOPs are counted analytically (multiply-add = 2 FLOPs; LayerNorm, softmax, GELU, biases,
embedding gathers and the optimizer are left out, so MFU slightly *under*-states work done):

  per token, per layer, forward:
      2·(4·D² + 2·D·F)        q, k, v, out projections and the two MLP matmuls
    + 2·2·L·D                 attention scores Q·Kᵀ and probabilities·V (L = seq len)
  LM head per prediction slot (train only; P slots per sequence, see above):
      2·D² + 2·D·V            BERT's dense transform + the tied decoder
  embed  = B·L · n_layers · layer
  train  = 3 · (B·L · n_layers · layer + B·P · head)  backward = 2 x forward
  layers = B·L · n_layers · layer  (forward),  3x that (forward+backward)

MFU = FLOPs / median step time / peak, where the peak is *measured* here by
``benchmarks/peak_flops.py`` (best square matmul through the same jax, same dtype), not a
datasheet number.  Times: a few warm-up calls (the first compiles), then ``--steps`` calls
each ended by ``block_until_ready``; the median is reported.  Inputs rotate over a few
distinct random batches already on the device.

  .venv/bin/python benchmarks/encoder.py --config both --json
  .venv/bin/python benchmarks/encoder.py --config bert_base --layers-only --batch 32
  python3 benchmarks/encoder.py --config both --dtype bfloat16 --json --out r.json   # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import peak_flops  # noqa: E402
from xdkt_jax import lm  # noqa: E402
from xdkt_jax.models.encoder import Block, LanguageModel, pool  # noqa: E402
from xdkt_jax.models.encoder_config import EncoderConfig  # noqa: E402
from xdkt_jax.train import mesh as mesh_lib  # noqa: E402
from xdkt_jax.train import optim as optim_lib  # noqa: E402
from xdkt_jax.train import state as state_lib  # noqa: E402
from xdkt_jax.train import steps as steps_lib  # noqa: E402

CONFIGS = {"minilm": EncoderConfig.minilm, "bert_base": EncoderConfig.bert_base}
# BERT uncased vocabulary: [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103.
PAD, CLS, SEP, MASK = 0, 101, 102, 103
SPECIAL_IDS = (PAD, 100, CLS, SEP, MASK)
FIRST_WORD_ID = 999

# Default batch sizes per backend: (train, embed, layers).  CPU ones keep a step ~1-5 s on
# 2 cores; GPU ones fill an H200 (tens of thousands of tokens per step).
DEFAULT_BATCH = {
  "cpu": {"minilm": (32, 128, 64), "bert_base": (16, 64, 32)},
  "gpu": {"minilm": (512, 4096, 1024), "bert_base": (256, 2048, 512)},
}


# ---- FLOPs ---------------------------------------------------------------------------------


def layer_flops_per_token(cfg: EncoderConfig, seq: int) -> int:
  d, f = cfg.hidden_size, cfg.mlp_dim
  return 2 * (4 * d * d + 2 * d * f) + 2 * 2 * seq * d


def head_flops_per_token(cfg: EncoderConfig) -> int:
  d = cfg.hidden_size
  transform = 2 * d * d if cfg.family == "bert" else 0
  return transform + 2 * d * cfg.vocab_size


def step_flops(cfg: EncoderConfig, mode: str, batch: int, seq: int) -> int:
  """Analytic FLOPs of one call of `mode` (see the module docstring)."""
  tokens = batch * seq
  layers = cfg.num_layers * layer_flops_per_token(cfg, seq)
  if mode == "train":
    slots = batch * (seq if cfg.causal else lm.max_predictions(seq))
    return 3 * (tokens * layers + slots * head_flops_per_token(cfg))
  if mode in ("embed", "layers_fwd"):
    return tokens * layers
  if mode == "layers_fwd_bwd":
    return 3 * tokens * layers
  raise ValueError(mode)


# ---- inputs --------------------------------------------------------------------------------


def random_ids(rng, cfg: EncoderConfig, batch: int, seq: int):
  """[CLS] w1 .. w_{L-2} [SEP] with random word ids: full-length titles, mask all ones."""
  words = jax.random.randint(rng, (batch, seq), FIRST_WORD_ID, cfg.vocab_size, jnp.int32)
  ids = words.at[:, 0].set(CLS).at[:, -1].set(SEP)
  return ids, jnp.ones_like(ids)


def timed_calls(call, n_inputs: int, *, steps: int, warmup: int):
  """Runs call(i) (i = input index) warmup + steps times.

  Returns (first_s, median_s, times, extra): first_s includes compilation; extra holds the
  fastest call and, per timed call, how many cores other processes kept busy (a shared CPU
  machine makes a timing meaningless unless that is ~0).
  """
  t = time.perf_counter()
  jax.block_until_ready(call(0))
  first = time.perf_counter() - t
  for i in range(1, warmup):
    jax.block_until_ready(call(i % n_inputs))
  times, others, selfs = [], [], []
  for i in range(steps):
    with peak_flops.CpuShare() as share:
      t = time.perf_counter()
      jax.block_until_ready(call((warmup + i) % n_inputs))
      times.append(time.perf_counter() - t)
    others.append(share.other_cores)
    selfs.append(share.self_cores)
  extra = {"min_s": min(times)}
  if None not in others:
    extra.update(
      other_cores=statistics.mean(others),
      self_cores=statistics.mean(selfs),
      other_cores_per_call=[round(o, 2) for o in others],
    )
  return first, statistics.median(times), times, extra


# ---- the three benchmarks ------------------------------------------------------------------


def bench_train(
  cfg: EncoderConfig, batch: int, seq: int, *, steps: int, warmup: int, n_inputs: int = 3
):
  """The LM stages' masked-LM train step (lm.make_loss_fn + AdamW)."""
  model = LanguageModel(cfg)
  mesh = mesh_lib.make_mesh()
  rng = jax.random.key(0)
  dummy = random_ids(rng, cfg, 1, seq)
  init_fn = lambda r: model.init(r, *dummy)
  opt_cfg = {
    "lr": 1e-4,
    "schedule": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.01,
    "clip_norm": 1.0,
  }
  abstract_params = state_lib.unbox(jax.eval_shape(init_fn, rng))["params"]
  optimizer = optim_lib.make_optimizer(opt_cfg, abstract_params)
  state, state_sharding = state_lib.create_train_state(init_fn, optimizer, rng, mesh)
  loss_fn = lm.make_loss_fn(
    model, lm.Special(mask_token_id=MASK, special_ids=SPECIAL_IDS, vocab_size=cfg.vocab_size)
  )

  batch_sharding = mesh_lib.batch_sharding(mesh)
  step = steps_lib.make_train_step(
    loss_fn, optimizer, mesh=mesh, state_sharding=state_sharding, batch_sharding=batch_sharding
  )
  batches = []
  for k in jax.random.split(jax.random.key(1), n_inputs):
    ids, mask = random_ids(k, cfg, batch, seq)
    batches.append(mesh_lib.shard_batch({"ids": ids, "mask": mask}, batch_sharding))
  base_rng = jax.random.key(2)
  holder = {"state": state, "metrics": None}

  def call(i):
    holder["state"], holder["metrics"] = step(holder["state"], batches[i], base_rng)
    return holder["state"], holder["metrics"]

  first, med, times, share = timed_calls(call, n_inputs, steps=steps, warmup=warmup)
  loss = float(holder["metrics"]["loss"])
  if loss != loss:  # NaN
    raise FloatingPointError("train benchmark produced a NaN loss")
  return first, med, times, {"loss": loss, **share}


def bench_embed(
  cfg: EncoderConfig, batch: int, seq: int, *, steps: int, warmup: int, n_inputs: int = 3
):
  """Item vectors: encode + mean pooling, jitted (what knowledge extraction runs)."""
  model = LanguageModel(cfg)
  params = jax.jit(lambda r: nn.meta.unbox(model.init(r, *random_ids(r, cfg, 1, seq))["params"]))(
    jax.random.key(0)
  )

  @jax.jit
  def embed(params_, ids, mask):
    hidden = model.apply({"params": params_}, ids, mask, method=LanguageModel.encode)
    return pool(hidden, mask, "mean")

  inputs = [random_ids(k, cfg, batch, seq) for k in jax.random.split(jax.random.key(1), n_inputs)]
  return timed_calls(lambda i: embed(params, *inputs[i]), n_inputs, steps=steps, warmup=warmup)


class LayerStack(nn.Module):
  """``num_layers`` encoder blocks and nothing else: the part MFU targets are about."""

  cfg: EncoderConfig

  @nn.compact
  def __call__(self, x_BxLxD, mask_Bx1xLxL):
    for i in range(self.cfg.num_layers):
      x_BxLxD = Block(self.cfg, name=f"layers_{i}")(x_BxLxD, mask_Bx1xLxL, deterministic=True)
    return x_BxLxD


def bench_layers(
  cfg: EncoderConfig,
  batch: int,
  seq: int,
  *,
  steps: int,
  warmup: int,
  n_inputs: int = 3,
  modes=("layers_fwd", "layers_fwd_bwd"),
):
  """Forward and forward+backward of the bare layer stack; returns two result tuples."""
  stack = LayerStack(cfg)
  mask = jnp.ones((batch, 1, 1, seq), bool)
  xs = [
    jax.random.normal(k, (batch, seq, cfg.hidden_size), jnp.float32).astype(cfg.dtype)
    for k in jax.random.split(jax.random.key(1), n_inputs)
  ]
  params = jax.jit(lambda r: nn.meta.unbox(stack.init(r, xs[0][:1], mask[:1])["params"]))(
    jax.random.key(0)
  )

  fwd = jax.jit(lambda p, x: stack.apply({"params": p}, x, mask))

  def loss(p, x):
    return jnp.mean(jnp.square(stack.apply({"params": p}, x, mask).astype(jnp.float32)))

  # Grads w.r.t. params *and* input so every layer does its full backward (3x forward).
  fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  fns = {"layers_fwd": fwd, "layers_fwd_bwd": fwd_bwd}
  return {
    m: timed_calls(lambda i, f=fns[m]: f(params, xs[i]), n_inputs, steps=steps, warmup=warmup)
    for m in modes
  }


# ---- driver --------------------------------------------------------------------------------


def backend_kind() -> str:
  return "cpu" if jax.default_backend() == "cpu" else "gpu"


def row(name, cfg, mode, batch, seq, result, peak):
  first, med, times, extra = result
  flops = step_flops(cfg, mode, batch, seq)
  r = {
    "config": name,
    "mode": mode,
    "batch": batch,
    "seq": seq,
    "dtype": cfg.dtype,
    "median_s": med,
    "first_call_s": first,
    "times_s": [round(t, 6) for t in times],
    "flops_per_call": flops,
    "achieved_flops_per_s": flops / med,
    "mfu": flops / med / peak,
    **extra,
  }
  if mode == "embed":
    r["items_per_s"] = batch / med
  else:
    r["tokens_per_s"] = batch * seq / med
  return r


def format_table(rows, peak, dtype) -> str:
  head = (
    f"{'config':10s} {'mode':15s} {'batch':>6s} {'seq':>4s} {'ms/call':>9s} "
    f"{'tokens/s':>11s} {'items/s':>10s} {'GFLOP/s':>9s} {'MFU':>6s} {'others':>6s}"
  )
  lines = [
    f"peak ({dtype}, measured): {peak / 1e9:.1f} GFLOP/s   (others: cores other "
    f"processes kept busy while timing; 0 = quiet machine)",
    head,
    "-" * len(head),
  ]
  for r in rows:
    toks = r.get("tokens_per_s", r["batch"] * r["seq"] / r["median_s"])
    items = r.get("items_per_s")
    lines.append(
      f"{r['config']:10s} {r['mode']:15s} {r['batch']:6d} {r['seq']:4d} "
      f"{r['median_s'] * 1e3:9.1f} {toks:11.0f} "
      f"{(f'{items:10.1f}' if items else ' ' * 10)} "
      f"{r['achieved_flops_per_s'] / 1e9:9.1f} {100 * r['mfu']:5.1f}% "
      f"{'' if r.get('other_cores') is None else format(r['other_cores'], '6.2f')}"
    )
  return "\n".join(lines)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--config", default="both", choices=["minilm", "bert_base", "both"])
  ap.add_argument(
    "--batch",
    type=int,
    default=None,
    help="batch for train / layers (default: by backend and config)",
  )
  ap.add_argument("--embed-batch", type=int, default=None, help="batch for embed")
  ap.add_argument("--seq", type=int, default=64)
  ap.add_argument("--steps", type=int, default=None, help="timed calls (default 5 CPU, 20 GPU)")
  ap.add_argument("--warmup", type=int, default=2)
  ap.add_argument(
    "--dtype",
    default="float32",
    choices=["float32", "bfloat16"],
    help="compute dtype; params stay float32 (mixed precision)",
  )
  ap.add_argument(
    "--modes",
    default=None,
    help="comma list: train,embed (default both); with --layers-only "
    "layers_fwd,layers_fwd_bwd (default both)",
  )
  ap.add_argument(
    "--layers-only",
    action="store_true",
    help="only the bare layer stack (forward, forward+backward)",
  )
  ap.add_argument(
    "--dropout",
    type=float,
    default=None,
    help="override the config's dropout (train mode; default keeps 0.1)",
  )
  ap.add_argument(
    "--peak", type=float, default=None, help="peak FLOP/s to divide by (default: measure it now)"
  )
  ap.add_argument("--json", action="store_true", help="print one JSON line at the end")
  ap.add_argument("--out", default=None, help="also write the JSON to this file")
  args = ap.parse_args(argv)

  kind = backend_kind()
  steps = args.steps or (5 if kind == "cpu" else 20)
  names = ["minilm", "bert_base"] if args.config == "both" else [args.config]
  dev = jax.devices()[0]
  print(
    f"backend={jax.default_backend()} device={dev.device_kind} count={jax.device_count()} "
    f"jax={jax.__version__} flax={flax.__version__} "
    f"machine={platform.machine()} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
    flush=True,
  )
  peak = args.peak or peak_flops.measure_peak(args.dtype, verbose=True)
  print(f"peak {args.dtype}: {peak / 1e9:.1f} GFLOP/s", flush=True)

  rows = []
  for name in names:
    kw = {"dtype": args.dtype}
    if args.dropout is not None:
      kw.update(dropout=args.dropout, attention_dropout=args.dropout)
    cfg = CONFIGS[name](**kw)
    b_train, b_embed, b_layers = DEFAULT_BATCH[kind][name]
    if args.layers_only:
      batch = args.batch or b_layers
      modes = (args.modes or "layers_fwd,layers_fwd_bwd").split(",")
      res = bench_layers(cfg, batch, args.seq, steps=steps, warmup=args.warmup, modes=modes)
      for mode, r in res.items():
        rows.append(row(name, cfg, mode, batch, args.seq, r, peak))
        print(format_table(rows[-1:], peak, args.dtype).splitlines()[-1], flush=True)
      continue
    for mode in (args.modes or "train,embed").split(","):
      if mode == "train":
        batch = args.batch or b_train
        r = bench_train(cfg, batch, args.seq, steps=steps, warmup=args.warmup)
      elif mode == "embed":
        batch = args.embed_batch or b_embed
        r = bench_embed(cfg, batch, args.seq, steps=steps, warmup=args.warmup)
      else:
        raise ValueError(f"unknown mode {mode!r}")
      rows.append(row(name, cfg, mode, batch, args.seq, r, peak))
      print(format_table(rows[-1:], peak, args.dtype).splitlines()[-1], flush=True)

  print()
  print(format_table(rows, peak, args.dtype))
  record = {
    "bench": "encoder",
    "backend": jax.default_backend(),
    "device": dev.device_kind,
    "jax": jax.__version__,
    "dtype": args.dtype,
    "peak_flops_per_s": peak,
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "rows": rows,
  }
  if args.out:
    with open(args.out, "w") as f:
      json.dump(record, f, indent=1)
  if args.json:
    print(json.dumps(record))
  return record


if __name__ == "__main__":
  main()
