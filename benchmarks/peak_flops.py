"""Peak matrix-multiply FLOP/s of this machine through the installed jax.

The denominator of every MFU number in ``benchmarks/encoder.py``: a *measured* ceiling (the
best square matmul jax reaches here), not a datasheet figure.  A square [n, n] @ [n, n] costs
2·n³ FLOPs; each size is jitted, warmed up, timed ``repeats`` times (each timing a short loop
of ``inner`` products, ``block_until_ready`` before reading the clock) and the median kept;
the best median over sizes is the peak.  Inputs are random normals (never zeros: zeros run
faster on some hardware), and the ``inner`` products rotate over separate input pairs so a
small size does not just measure one cached operand.

  .venv/bin/python benchmarks/peak_flops.py                      # float32 (CPU default)
  python3 benchmarks/peak_flops.py --dtype bfloat16 --json       # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp

CPU_SIZES = (512, 1024, 2048)
GPU_SIZES = (2048, 4096, 8192)


class CpuShare:
  """How busy the *other* processes kept this machine's cores over a timed region.

  On a shared machine a CPU timing is only meaningful if nobody else ran: ``other_cores`` is
  (all busy core-seconds from /proc/stat − this process's CPU seconds) / wall seconds, so
  0.0 means a quiet machine and 1.0 means one core's worth was taken by someone else.
  ``self_cores`` is this process's CPU seconds per wall second.  Linux only; None elsewhere.
  """

  def __enter__(self):
    self._start = self._snap()
    return self

  def __exit__(self, *exc):
    end = self._snap()
    self.other_cores = self.self_cores = None
    if self._start and end:
      wall = end[0] - self._start[0]
      busy = end[1] - self._start[1]
      mine = end[2] - self._start[2]
      self.self_cores = mine / wall
      self.other_cores = max(0.0, (busy - mine) / wall)

  @staticmethod
  def _snap():
    try:
      with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
      return None
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    t = os.times()
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), t.user + t.system


def default_dtype() -> str:
  return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def default_sizes() -> tuple[int, ...]:
  return CPU_SIZES if jax.default_backend() == "cpu" else GPU_SIZES


def time_matmul(n: int, dtype, *, repeats: int = 7, inner: int = 0, precision=None) -> dict:
  """Median seconds per [n, n] @ [n, n] product and its FLOP/s."""
  dtype = jnp.dtype(dtype)
  if not inner:  # ~0.2 s per timing on CPU, ~20 ms on GPU, at a guessed rate
    cpu = jax.default_backend() == "cpu"
    rate, target = (1e11, 0.2) if cpu else (5e14, 0.02)
    inner = max(2, min(16, int(target * rate / (2 * n**3))))
  # One distinct input pair per product: identical products would be merged by XLA's CSE
  # (seen: a 4-pair rotation over 50 products "ran" at over 10x this CPU's real peak).
  keys = jax.random.split(jax.random.key(n), 2 * inner)
  a = [jax.random.normal(k, (n, n), jnp.float32).astype(dtype) for k in keys[:inner]]
  b = [jax.random.normal(k, (n, n), jnp.float32).astype(dtype) for k in keys[inner:]]

  @jax.jit
  def loop(a_list, b_list):
    # Independent products, all returned: nothing for XLA to fold, and no epilogue (a running
    # sum would add an n² pass per product, ~7% of an 8192 bf16 product on an H200).
    return [jnp.matmul(a_list[i], b_list[i], precision=precision) for i in range(inner)]

  jax.block_until_ready(loop(a, b))  # compile
  jax.block_until_ready(loop(a, b))  # warm
  times = []
  with CpuShare() as share:
    for _ in range(repeats):
      t = time.perf_counter()
      jax.block_until_ready(loop(a, b))
      times.append(time.perf_counter() - t)
  sec = statistics.median(times) / inner
  return {
    "n": n,
    "dtype": str(dtype),
    "inner": inner,
    "sec_per_matmul": sec,
    "flops_per_s": 2 * n**3 / sec,
    "other_cores": share.other_cores,
  }


def measure_peak(
  dtype=None, sizes=None, *, repeats: int = 7, verbose: bool = False, precision=None
) -> float:
  """Best median FLOP/s over square matmuls of `sizes` in `dtype` (float32 on CPU default)."""
  dtype = dtype or default_dtype()
  best = 0.0
  for n in sizes or default_sizes():
    r = time_matmul(n, dtype, repeats=repeats, precision=precision)
    if verbose:
      busy = "" if r["other_cores"] is None else f", other procs {r['other_cores']:.2f} cores"
      print(
        f"  matmul n={n:5d} {r['dtype']:>8s}: {r['flops_per_s'] / 1e9:9.1f} GFLOP/s "
        f"({r['sec_per_matmul'] * 1e3:.3f} ms each, {r['inner']} per timing{busy})",
        flush=True,
      )
    best = max(best, r["flops_per_s"])
  return best


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: by backend)")
  ap.add_argument("--sizes", default=None, help="comma-separated n, e.g. 1024,2048")
  ap.add_argument("--repeats", type=int, default=7)
  ap.add_argument("--json", action="store_true", help="also print one JSON line")
  args = ap.parse_args()
  sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
  dtype = args.dtype or default_dtype()
  dev = jax.devices()[0]
  print(
    f"backend={jax.default_backend()} device={dev.device_kind} count={jax.device_count()} "
    f"jax={jax.__version__}"
  )
  peak = measure_peak(dtype, sizes, repeats=args.repeats, verbose=True)
  print(f"peak {dtype}: {peak / 1e9:.1f} GFLOP/s")
  if args.json:
    print(
      json.dumps(
        {
          "bench": "peak_flops",
          "backend": jax.default_backend(),
          "device": dev.device_kind,
          "dtype": dtype,
          "peak_flops_per_s": peak,
        }
      )
    )


if __name__ == "__main__":
  main()
