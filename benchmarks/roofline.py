"""Roofline view of the two train steps: analytic FLOPs, achieved FLOP/s and MFU.

Rows
  sasrec   the recommender's real train step, built as ``train_sasrec`` builds it
           (``SASRec`` in id mode, dropout on, ``objectives.next_item_objective``: full-softmax L_f,
           ``make_optimizer`` AdamW + clipping, ``create_train_state`` under DEFAULT_RULES,
           ``make_train_step`` with its shardings and donation), fed synthetic PACKED rows
           [B, L]: every slot real, ``--segments`` windows per row with their own BOS,
           ``segments`` / ``positions`` as ``pack_windows`` makes them.  One row per entry of
           the size lists (default: the synthetic world's setting and a "scientific-sized" one).
  encoder  ``benchmarks/encoder.py``'s own benchmarks, called, not copied: ``train`` is the
           MLM train step of the LM stages, ``layers_fwd_bwd`` the bare layer stack's
           forward + backward; its ``step_flops`` gives their FLOPs.

SASRec FLOPs per step (multiply-add = 2; the embedding gather, LayerNorm, softmax, ReLU,
dropout and the optimizer are not counted, so MFU slightly under-states the work done):
  per layer  8·B·L·D²     q, k, v, out projections
           + 4·B·L²·D     Q·Kᵀ and probabilities·V (dense over L: the segment mask saves nothing)
           + 4·B·L·D·F    the two MLP matmuls
  output     2·B·L·D·N    full-softmax logits over the whole catalogue
  forward  = layers · per layer + output;  train = 3 · forward   (backward = 2 × forward)

MFU = FLOPs / median step time / peak.  The peak is *measured* by
``benchmarks/peak_flops.measure_peak`` (best square matmul through this jax, same dtype): the
SASRec rows divide by the peak of ``--sasrec-dtype`` (the blocks' compute dtype; float32 by
default; on GPUs XLA's default float32 precision may use TF32, and the measured peak then
includes it), the encoder rows by the peak of ``--dtype``.  Step times: ``encoder.timed_calls`` -- warm-up calls
(the first compiles), then ``--steps`` calls each ended by ``block_until_ready``; median kept.

  .venv/bin/python benchmarks/roofline.py                    # CPU defaults (estimated, not yet
      # run: ~2-3 min quiet, most of it BERT-base fwd+bwd at ~7 s/call x 7 calls; 2-3x contended)
  .venv/bin/python benchmarks/roofline.py --json             # + one JSON object at the end
  .venv/bin/python benchmarks/roofline.py --batch 4 --seq 8 --hidden 16 --mlp 32 \\
      --n-items 50 --encoder minilm:layers_fwd_bwd --encoder-batch 2 --encoder-seq 8 \\
      --encoder-num-layers 1 --peak-sizes 256 --steps 2        # smoke test, ~30 s
  python3 benchmarks/roofline.py --json                      # GPU (bfloat16 encoder rows)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import encoder as encoder_bench  # noqa: E402
import peak_flops  # noqa: E402
from xdkt_jax import objectives  # noqa: E402
from xdkt_jax.models import sasrec  # noqa: E402
from xdkt_jax.train import mesh as mesh_lib  # noqa: E402
from xdkt_jax.train import optim as optim_lib  # noqa: E402
from xdkt_jax.train import state as state_lib  # noqa: E402
from xdkt_jax.train import steps as steps_lib  # noqa: E402
from configs import common  # noqa: E402

DEFAULTS = common.sequential_config().to_dict()  # the run config's recommender settings

# Size lists: entry i of every list is row i (a one-entry list applies to all rows).
# Row 0: the synthetic world's SASRec (DEFAULTS, 1,000 Movies items).  Row 1:
# "scientific-sized": Amazon Scientific's catalogue (4,385 items) at UniSRec-like D=300, F=256.
SASREC_DEFAULTS = dict(
  batch="64,48",
  seq="50",
  hidden="64,300",
  layers="2",
  mlp="128,256",
  n_items="1000,4385",
  heads="2",
)
ENCODER_DEFAULT = "bert_base:layers_fwd_bwd,minilm:train"


# ---- SASRec FLOPs ----------------------------------------------------------------------------


def sasrec_flops(*, batch: int, seq: int, hidden: int, layers: int, mlp: int, n_items: int) -> dict:
  """Analytic FLOPs of one SASRec train step, term by term (see the module docstring)."""
  b, l, d, f, n = batch, seq, hidden, mlp, n_items
  proj = 8 * b * l * d * d
  attn = 4 * b * l * l * d
  ffn = 4 * b * l * d * f
  logits = 2 * b * l * d * n
  forward = layers * (proj + attn + ffn) + logits
  return {
    "proj_per_layer": proj,
    "attn_per_layer": attn,
    "mlp_per_layer": ffn,
    "logits": logits,
    "forward": forward,
    "train": 3 * forward,
  }


# ---- SASRec step -----------------------------------------------------------------------------


def packed_rows(seed: int, *, batch: int, seq: int, n_items: int, segments: int) -> dict:
  """A full batch of packed rows: `segments` windows per row at random cut points, each
  starting with the BOS token (id n_items), positions restarting per window, no padding."""
  rng = np.random.default_rng(seed)
  inputs = rng.integers(0, n_items, (batch, seq), dtype=np.int32)
  targets = rng.integers(0, n_items, (batch, seq), dtype=np.int32)
  seg_ids = np.zeros((batch, seq), np.int32)
  positions = np.zeros((batch, seq), np.int32)
  n_seg = max(1, min(segments, seq))
  for r in range(batch):
    cuts = np.sort(rng.choice(np.arange(1, seq), n_seg - 1, replace=False)) if n_seg > 1 else []
    bounds = [0, *[int(c) for c in cuts], seq]
    for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
      seg_ids[r, lo:hi] = s
      positions[r, lo:hi] = np.arange(hi - lo)
      inputs[r, lo] = n_items
  return {
    "inputs": inputs,
    "targets": targets,
    "mask": np.ones((batch, seq), np.int8),
    "segments": seg_ids,
    "positions": positions,
    "example_mask": np.ones(batch, bool),
  }


def build_sasrec_step(size: dict, *, dropout: float, seed: int = 0, dtype: str = "float32"):
  """(step, state, batch_sharding): the jitted step exactly as train_sasrec makes it (id
  mode, no transfer), from DEFAULTS overridden by `size`."""
  o = dict(DEFAULTS, **{k: v for k, v in size.items() if k in DEFAULTS}, dropout=dropout)
  module = sasrec.SASRec(
    n_items=size["n_items"],
    hidden=o["hidden"],
    layers=o["layers"],
    heads=o["heads"],
    mlp=o["mlp"],
    max_len=size["seq"],
    dropout=o["dropout"],
    norm=o["norm"],
    mode="id",
    dtype=dtype,
  )
  dummy = (jnp.zeros((1, size["seq"]), jnp.int32), jnp.ones((1, size["seq"]), jnp.int8))
  init_fn = lambda rng: module.init(rng, *dummy, users_BxL=None)
  opt_cfg = dict(
    lr=float(o["lr"]),
    schedule="constant",
    weight_decay=float(o["weight_decay"]),
    clip_norm=float(o["clip_norm"]),
  )
  k_init, _ = jax.random.split(jax.random.PRNGKey(seed))
  abstract_params = state_lib.unbox(jax.eval_shape(init_fn, k_init))["params"]
  tx = optim_lib.make_optimizer(opt_cfg, abstract_params)
  mesh = mesh_lib.make_mesh()
  rules = mesh_lib.DEFAULT_RULES
  state, sharding = state_lib.create_train_state(init_fn, tx, k_init, mesh, rules)
  loss_fn = objectives.next_item_objective(
    module, kind=str(o["loss"]), num_negatives=int(o["num_negatives"])
  )
  batch_sharding = mesh_lib.batch_sharding(mesh)
  step = steps_lib.make_train_step(
    loss_fn, tx, mesh=mesh, state_sharding=sharding, batch_sharding=batch_sharding, rules=rules
  )
  return step, state, batch_sharding


def bench_sasrec(
  size: dict,
  *,
  segments: int,
  dropout: float,
  steps: int,
  warmup: int,
  n_inputs: int = 3,
  dtype: str = "float32",
):
  """encoder.timed_calls over the SASRec step; returns (first_s, median_s, times, extra)."""
  step, state, batch_sharding = build_sasrec_step(size, dropout=dropout, dtype=dtype)
  batches = [
    mesh_lib.shard_batch(
      packed_rows(
        i, batch=size["batch"], seq=size["seq"], n_items=size["n_items"], segments=segments
      ),
      batch_sharding,
    )
    for i in range(n_inputs)
  ]
  base_rng = jax.random.PRNGKey(1)
  holder = {"state": state, "metrics": None}

  def call(i):
    holder["state"], holder["metrics"] = step(holder["state"], batches[i], base_rng)
    return holder["state"], holder["metrics"]

  first, med, times, extra = encoder_bench.timed_calls(call, n_inputs, steps=steps, warmup=warmup)
  loss = float(holder["metrics"]["loss"])
  if not np.isfinite(loss):
    raise FloatingPointError(f"sasrec benchmark produced loss {loss}")
  return first, med, times, {"loss": loss, **extra}


def sasrec_sizes(args) -> list[dict]:
  """Rows from the comma lists; a one-entry list is broadcast to every row."""
  lists = {
    k: [int(float(x)) for x in str(getattr(args, k)).split(",") if x.strip()]
    for k in SASREC_DEFAULTS
  }
  n_rows = max(len(v) for v in lists.values())
  for k, v in lists.items():
    if len(v) not in (1, n_rows):
      raise SystemExit(f"--{k.replace('_', '-')}: {len(v)} values for {n_rows} rows")
  return [{k: (v[0] if len(v) == 1 else v[i]) for k, v in lists.items()} for i in range(n_rows)]


def sasrec_row(size: dict, result, peak: float, segments: int, dtype: str = "float32") -> dict:
  first, med, times, extra = result
  fl = sasrec_flops(
    batch=size["batch"],
    seq=size["seq"],
    hidden=size["hidden"],
    layers=size["layers"],
    mlp=size["mlp"],
    n_items=size["n_items"],
  )
  label = (
    f"B={size['batch']} L={size['seq']} D={size['hidden']} layers={size['layers']} "
    f"F={size['mlp']} N={size['n_items']}"
  )
  return {
    "model": "sasrec",
    "config": label,
    "mode": "train",
    "dtype": dtype,
    **size,
    "segments": segments,
    "median_s": med,
    "first_call_s": first,
    "times_s": [round(t, 6) for t in times],
    "flops": fl,
    "flops_per_call": fl["train"],
    "achieved_flops_per_s": fl["train"] / med,
    "peak_flops_per_s": peak,
    "mfu": fl["train"] / med / peak,
    "tokens_per_s": size["batch"] * size["seq"] / med,
    **extra,
  }


# ---- encoder rows (benchmarks/encoder.py) ----------------------------------------------------


def encoder_specs(text: str) -> list[tuple[str, str]]:
  """'bert_base:layers_fwd_bwd,minilm:train' -> [(config, mode), ...]; '' / 'none' -> []."""
  if text.strip().lower() in ("", "none"):
    return []
  out = []
  for item in text.split(","):
    name, _, mode = item.strip().partition(":")
    if name not in encoder_bench.CONFIGS or mode not in ("train", "layers_fwd_bwd"):
      raise SystemExit(
        f"--encoder: bad entry {item!r} (config in "
        f"{sorted(encoder_bench.CONFIGS)}, mode train | layers_fwd_bwd)"
      )
    out.append((name, mode))
  return out


def bench_encoder(name: str, mode: str, args, peak: float) -> dict:
  """One encoder.py benchmark at encoder.py's default batch for this backend (or the flag)."""
  kw = {"dtype": args.dtype}
  if args.encoder_num_layers:
    kw["num_layers"] = args.encoder_num_layers
  cfg = encoder_bench.CONFIGS[name](**kw)
  b_train, _, b_layers = encoder_bench.DEFAULT_BATCH[encoder_bench.backend_kind()][name]
  if mode == "train":
    batch = args.encoder_batch or b_train
    res = encoder_bench.bench_train(
      cfg, batch, args.encoder_seq, steps=args.steps, warmup=args.warmup
    )
  else:
    batch = args.encoder_batch or b_layers
    res = encoder_bench.bench_layers(
      cfg, batch, args.encoder_seq, steps=args.steps, warmup=args.warmup, modes=(mode,)
    )[mode]
  r = encoder_bench.row(name, cfg, mode, batch, args.encoder_seq, res, peak)
  return {"model": "encoder", "num_layers": cfg.num_layers, "peak_flops_per_s": peak, **r}


# ---- driver ----------------------------------------------------------------------------------


def parse_peaks(text: str | None) -> dict[str, float]:
  """'float32=1.2e11,bfloat16=9e14' -> {dtype: FLOP/s} (dtypes not given are measured)."""
  out = {}
  for item in (text or "").split(","):
    if item.strip():
      k, _, v = item.partition("=")
      out[k.strip()] = float(v)
  return out


def get_peaks(dtypes, args) -> dict[str, float]:
  peaks = parse_peaks(args.peak)
  sizes = tuple(int(s) for s in args.peak_sizes.split(",")) if args.peak_sizes else None
  for dt in dtypes:
    if dt not in peaks:
      print(f"measuring peak {dt} (benchmarks/peak_flops.py):", flush=True)
      peaks[dt] = peak_flops.measure_peak(dt, sizes, verbose=True)
    print(f"peak {dt}: {peaks[dt] / 1e9:.1f} GFLOP/s", flush=True)
  return peaks


def format_row(r: dict) -> str:
  others = "" if r.get("other_cores") is None else f"{r['other_cores']:6.2f}"
  return (
    f"{r['model']:8s} {r['config'][:44]:44s} {r['mode']:15s} {r['dtype']:>8s} "
    f"{r['median_s'] * 1e3:9.2f} {r['flops_per_call'] / 1e9:10.3f} "
    f"{r['achieved_flops_per_s'] / 1e9:9.2f} {100 * r['mfu']:6.2f}% {others}"
  )


def flop_lines(rows) -> list[str]:
  """The SASRec formula's terms per row, so a reader can check which term dominates."""
  lines = []
  for r in rows:
    if r["model"] == "sasrec":
      f = {k: v / 1e9 for k, v in r["flops"].items()}
      lines.append(
        f"sasrec {r['config']}: forward GFLOP = {r['layers']} x (proj "
        f"{f['proj_per_layer']:.4g} + attn {f['attn_per_layer']:.4g} + mlp "
        f"{f['mlp_per_layer']:.4g}) + logits {f['logits']:.4g} = "
        f"{f['forward']:.4g}; train = 3 x = {f['train']:.4g}"
      )
  return lines


def header() -> str:
  head = (
    f"{'model':8s} {'config':44s} {'mode':15s} {'dtype':>8s} {'ms/step':>9s} "
    f"{'GFLOP/step':>10s} {'GFLOP/s':>9s} {'MFU':>7s} {'others':>6s}"
  )
  return head + "\n" + "-" * len(head)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  g = ap.add_argument_group("sasrec (comma lists, one entry per row; one entry = every row)")
  g.add_argument("--batch", default=SASREC_DEFAULTS["batch"], help="B, packed rows per step")
  g.add_argument("--seq", default=SASREC_DEFAULTS["seq"], help="L = max_len")
  g.add_argument("--hidden", default=SASREC_DEFAULTS["hidden"], help="D")
  g.add_argument("--layers", default=SASREC_DEFAULTS["layers"])
  g.add_argument("--mlp", default=SASREC_DEFAULTS["mlp"], help="F")
  g.add_argument("--n-items", dest="n_items", default=SASREC_DEFAULTS["n_items"], help="N")
  g.add_argument("--heads", default=SASREC_DEFAULTS["heads"])
  g.add_argument("--segments", type=int, default=2, help="windows packed per row")
  g.add_argument("--dropout", type=float, default=float(DEFAULTS["dropout"]))
  g.add_argument("--no-sasrec", action="store_true", help="skip the SASRec rows")
  g.add_argument(
    "--sasrec-dtype",
    default="float32",
    choices=["float32", "bfloat16"],
    help="the blocks' compute dtype (SASRec dtype; L_f stays float32)",
  )
  e = ap.add_argument_group("encoder (benchmarks/encoder.py)")
  e.add_argument(
    "--encoder",
    default=ENCODER_DEFAULT,
    help="comma list of config:mode (mode train | layers_fwd_bwd); 'none' skips",
  )
  e.add_argument(
    "--encoder-batch",
    type=int,
    default=None,
    help="default: encoder.py's per-backend batch for the mode",
  )
  e.add_argument("--encoder-seq", type=int, default=64)
  e.add_argument(
    "--encoder-num-layers",
    type=int,
    default=0,
    help="override num_layers (smoke tests only; FLOPs follow)",
  )
  e.add_argument(
    "--dtype",
    default=None,
    choices=["float32", "bfloat16"],
    help="encoder compute dtype (default: float32 on CPU, bfloat16 on GPU)",
  )
  t = ap.add_argument_group("timing")
  t.add_argument("--steps", type=int, default=None, help="timed steps (default 5 CPU, 20 GPU)")
  t.add_argument("--warmup", type=int, default=2, help="untimed calls first (1st compiles)")
  t.add_argument("--peak", default=None, help="known peaks, e.g. float32=2.3e11 (else measured)")
  t.add_argument("--peak-sizes", default=None, help="matmul sizes for the peak, e.g. 512,1024")
  ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
  args = ap.parse_args(argv)

  kind = encoder_bench.backend_kind()
  args.steps = args.steps or (5 if kind == "cpu" else 20)
  args.dtype = args.dtype or peak_flops.default_dtype()
  specs = encoder_specs(args.encoder)
  sizes = [] if args.no_sasrec else sasrec_sizes(args)
  dev = jax.devices()[0]
  print(
    f"backend={jax.default_backend()} device={dev.device_kind} count={jax.device_count()} "
    f"jax={jax.__version__} flax={flax.__version__} machine={platform.machine()}",
    flush=True,
  )
  dtypes = ([args.sasrec_dtype] if sizes else []) + ([args.dtype] if specs else [])
  peaks = get_peaks(list(dict.fromkeys(dtypes)), args)

  rows = []
  print(header(), flush=True)
  for size in sizes:
    res = bench_sasrec(
      size,
      segments=args.segments,
      dropout=args.dropout,
      steps=args.steps,
      warmup=args.warmup,
      dtype=args.sasrec_dtype,
    )
    rows.append(sasrec_row(size, res, peaks[args.sasrec_dtype], args.segments, args.sasrec_dtype))
    print(format_row(rows[-1]), flush=True)
  for name, mode in specs:
    rows.append(bench_encoder(name, mode, args, peaks[args.dtype]))
    print(format_row(rows[-1]), flush=True)

  for line in flop_lines(rows):
    print(line)
  record = {
    "bench": "roofline",
    "backend": jax.default_backend(),
    "device": dev.device_kind,
    "jax": jax.__version__,
    "peaks_flops_per_s": peaks,
    "encoder_dtype": args.dtype,
    "steps": args.steps,
    "warmup": args.warmup,
    "rows": rows,
  }
  if args.json:
    print(json.dumps(record))
  return record


if __name__ == "__main__":
  main()
