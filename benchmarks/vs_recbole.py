"""SASRec side by side: xdkt_jax (JAX) vs RecBole 1.2.1 (PyTorch) on the Amazon Scientific
UniSRec split, same shapes (hidden 300, 2 layers, 2 heads, FFN 256, max_len 50, 2048
transitions a step, lr 1e-3, dropout 0.5), CPU.

  bash benchmarks/peers/setup.sh                       # once: RecBole's own venv
  .venv/bin/python benchmarks/vs_recbole.py [--epochs 1] [--reps 1]
  .venv/bin/python benchmarks/vs_recbole.py --max-rows 300 --hidden 32   # smoke test
  .venv/bin/python benchmarks/vs_recbole.py --epochs 5 --exclude none --no-pack

The xdkt side packs several users' windows into each row by default (44x RecBole's training
throughput at 5 epochs, Recall@10 2.5% lower); `--no-pack` (one user a row, a step's
transitions from more users, as RecBole's random prefixes) measured 5.5x at equal Recall@10
(benchmarks/RESULTS.md).

Each measurement is its own child process (benchmarks/peers/xdkt_sasrec.py under the project's
.venv, benchmarks/peers/recbole_sasrec.py under benchmarks/peers/.venv-recbole), run in turn:
xdkt, recbole, then recbole, xdkt, ... for --reps rounds, so drift in machine load falls on
both.  Peak RSS is the child's ru_maxrss from os.wait4.  Flags this script does not know
(--hidden, --batch, --lr, ...) go to both children unchanged; see either child for what each
number means (the xdkt side's training time excludes compile; both eval times are a second,
steady-state pass).  Evaluation batches are each side's own: RecBole its --eval-batch (4,096,
its default), xdkt at most --xdkt-eval-batch rows (256, the project default), in
history-length order with bucketed widths (benchmarks/peers/xdkt_sasrec.py).

Prints a table, then `peak_rss_mb xdkt=.. recbole=..` and, last, exactly one line:
  RATIO train_throughput=<xdkt/recbole> eval_speed=<recbole_s/xdkt_s> recall10_xdkt=<r>
        recall10_recbole=<r>
(medians over reps; throughput is training transitions per second of steady-state training).
Timings are only meaningful on an otherwise idle machine: with more runnable threads than
cores, PyTorch's OpenMP workers lose whole time slices at every barrier (on this 2-core box
under load, RecBole's tiny smoke epoch ran 10x slower with 2 threads than with 1).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
RECBOLE_PY = PEERS / ".venv-recbole" / "bin" / "python"


def default_data_dir() -> Path:
  """As configs/common.shared_data_dir(): $XDKT_SHARED_DATA or ../shared/data by the repo."""
  base = os.environ.get("XDKT_SHARED_DATA")
  return (Path(base) if base else ROOT.parent / "shared" / "data") / "amazon_scientific"


def child_command(impl: str, args, passthrough: list[str]) -> tuple[list[str], dict]:
  common = [
    "--data-dir",
    str(args.data_dir),
    "--epochs",
    str(args.epochs),
    "--max-rows",
    str(args.max_rows),
    *passthrough,
  ]
  env = dict(os.environ)
  if impl == "recbole":
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # RecBole 1.2.1 predates weights_only loads
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")  # pandas/torch deprecation spam
    return [str(RECBOLE_PY), str(PEERS / "recbole_sasrec.py"), *common], env
  return (
    [
      str(args.xdkt_python),
      str(PEERS / "xdkt_sasrec.py"),
      *common,
      "--exclude",
      args.exclude,
      "--pack" if args.pack else "--no-pack",
    ],
    env,
  )


def run_child(impl: str, args, passthrough: list[str]) -> dict:
  """Runs one peer; returns its JSON line plus peak_rss_mb.  stderr passes through."""
  cmd, env = child_command(impl, args, passthrough)
  print(f"[{impl}] {' '.join(cmd)}", file=sys.stderr, flush=True)
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True)
  out = proc.stdout.read()
  # wait4 rather than proc.wait(): it also returns the child's own resource usage.
  _, status, usage = os.wait4(proc.pid, 0)
  proc.returncode = os.waitstatus_to_exitcode(status)
  lines = [ln for ln in out.splitlines() if ln.strip()]
  if proc.returncode != 0 or not lines:
    sys.exit(
      f"vs_recbole: {impl} failed (exit {proc.returncode}); stdout tail:\n" + "\n".join(lines[-5:])
    )
  result = json.loads(lines[-1])
  result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
  print(f"[{impl}] {json.dumps(result)}", file=sys.stderr, flush=True)
  return result


def throughput(r: dict) -> float:
  return r["train_examples"] / r["train_s_per_epoch"]


def row(label: str, r: dict) -> str:
  return (
    f"{label:<16} {throughput(r):>12,.0f} {r['eval_s']:>9.2f} {r['peak_rss_mb']:>9.0f} "
    f"{r['recall@10']:>8.4f} {r['ndcg@10']:>8.4f}"
  )


def median_result(runs: list[dict]) -> dict:
  keys = ("train_examples", "train_s_per_epoch", "eval_s", "peak_rss_mb", "recall@10", "ndcg@10")
  med = {k: statistics.median(r[k] for r in runs) for k in keys}
  # The median of examples/s, not examples / median seconds (they differ for even reps).
  med["throughput"] = statistics.median(throughput(r) for r in runs)
  return med


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--epochs", type=int, default=1)
  ap.add_argument("--reps", type=int, default=1)
  ap.add_argument("--max-rows", type=int, default=0, help="smoke tests: first N users only")
  ap.add_argument("--data-dir", type=Path, default=default_data_dir())
  ap.add_argument(
    "--exclude",
    choices=("none", "train", "all"),
    default="none",
    help="xdkt evaluation's exclude_history rule (default none: RecBole's own "
    "full-sort for sequential models; xdkt_jax/conventions.py)",
  )
  ap.add_argument("--xdkt-python", type=Path, default=ROOT / ".venv" / "bin" / "python")
  ap.add_argument(
    "--pack",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="xdkt side only: pack several users' windows into a row (faster); "
    "--no-pack puts one user a row, so a step's transitions come from more "
    "users, closer to RecBole's random prefixes (benchmarks/RESULTS.md)",
  )
  args, passthrough = ap.parse_known_args()
  if not RECBOLE_PY.exists():
    print(f"vs_recbole: {RECBOLE_PY} not found; run: bash benchmarks/peers/setup.sh")
    sys.exit(2)

  runs = {"xdkt": [], "recbole": []}
  for rep in range(args.reps):
    order = ("xdkt", "recbole") if rep % 2 == 0 else ("recbole", "xdkt")
    for impl in order:
      runs[impl].append(run_child(impl, args, passthrough))

  print(f"{'impl':<16} {'train ex/s':>12} {'eval s':>9} {'RSS MB':>9} {'R@10':>8} {'N@10':>8}")
  for impl, rs in runs.items():
    for i, r in enumerate(rs):
      print(row(impl if args.reps == 1 else f"{impl} #{i}", r))
  x, rb = median_result(runs["xdkt"]), median_result(runs["recbole"])
  x0, rb0 = runs["xdkt"][0], runs["recbole"][0]
  print(
    f"train examples per epoch: xdkt {x0['train_examples']:,.0f} (of "
    f"{x0['train_transitions']:,} transitions; {x0['train_transitions_with_history']:,} "
    f"with a history), recbole {rb0['train_examples']:,}; xdkt batch {x0['batch_rows']} "
    f"{'packed ' if args.pack else 'unpacked '}rows x {x0['transitions_per_row']:.1f} "
    f"transitions; first step (compile) {x0['first_step_s']:.1f} s; "
    f"eval first call xdkt {x0['eval_first_s']:.2f} s, "
    f"recbole {rb0['eval_first_s']:.2f} s; xdkt exclude_history={x0['exclude_history']}"
  )
  print(f"peak_rss_mb xdkt={x['peak_rss_mb']:.0f} recbole={rb['peak_rss_mb']:.0f}")
  print(
    f"RATIO train_throughput={x['throughput'] / rb['throughput']:.3f} "
    f"eval_speed={rb['eval_s'] / x['eval_s']:.3f} recall10_xdkt={x['recall@10']:.4f} "
    f"recall10_recbole={rb['recall@10']:.4f}"
  )


if __name__ == "__main__":
  main()
