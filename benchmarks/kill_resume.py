"""Interrupt `xdkt run` at chosen points in every stage (SIGKILL and SIGTERM), resume it, and
check that the resumed run's results.json equals an uninterrupted run's (timings aside).

  .venv/bin/python benchmarks/kill_resume.py --root=/tmp/kill --points=10

Two uninterrupted runs first (the second, on warm caches, gives each stage's duration); then
each point runs the same command into a fresh workdir, waits until the stage it aims at has
begun (the stage before it has left its marker on disk), signals at a time drawn inside that
stage's duration (stages in turn, so every stage is aimed at), and is rerun until it finishes.
The table names the stage the run was really in, read from what it left on disk.  A SIGTERM must end
with exit 0 and a one-line message; a SIGKILL is the hard case (no handler runs).  Prints a
table (point, signal, seconds, stage running, exit code, resumes, identical) and exits 1 if
any resumed run differs.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data", "adapt", "extract", "recommend", "evaluate", "report")
VOLATILE = ("timings_s",)  # wall times differ run to run


def command(args, workdir: Path) -> list[str]:
  return [
    sys.executable,
    "-m",
    "xdkt_jax.main",
    "run",
    f"--config={args.config}",
    f"--workdir={workdir}",
    f"--config.data.cache_dir={args.root / 'cache'}",
    f"--config.recommend.methods={args.methods}",
    *args.overrides,
  ]


def comparable(workdir: Path) -> dict:
  r = json.loads((workdir / "results.json").read_text())
  for k in VOLATILE:
    r.pop(k, None)
  return r


def durations(workdir: Path) -> dict[str, float]:
  """Each stage's seconds in an uninterrupted run, from its timings.json."""
  t = json.loads((workdir / "timings.json").read_text())
  return {s: t[s] for s in STAGES if s in t}


def stage_at_kill(wd: Path) -> str:
  """The first stage a killed run had not finished, from what it left on disk ("start-up"
  while it was still importing: the pipeline makes the workdir as the data stage begins)."""
  if not wd.exists():
    return "start-up"
  finished = {
    "data": (wd / "data" / "split.json").exists(),
    "adapt": (wd / "adapt" / "DONE").exists(),
    "extract": (wd / "extract" / "DONE").exists(),
    "recommend": (wd / "recommend" / "runs.json").exists(),
    "evaluate": (wd / "evaluate" / "stats.json").exists(),
    "report": (wd / "results.json").exists(),
  }
  return next((s for s in STAGES if not finished[s]), "after report")


def begun(wd: Path, stage: str) -> bool:
  """Whether `stage` has begun: the run is past start-up and every stage before it is done."""
  return stage_at_kill(wd) not in ("start-up", *STAGES[: STAGES.index(stage)])


def run_point(args, k: int, sig: int, stage: str, into: float, ref: dict) -> dict:
  wd = args.root / f"point_{k}"
  shutil.rmtree(wd, ignore_errors=True)
  t0 = time.time()
  p = subprocess.Popen(
    command(args, wd), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
  )
  while p.poll() is None and not begun(wd, stage):
    time.sleep(0.05)
  time.sleep(into)
  at = time.time() - t0
  if p.poll() is None:
    p.send_signal(sig)
  _, err = p.communicate()
  aimed, stage = stage, stage_at_kill(wd)
  first = {"code": p.returncode, "stderr": err.strip().splitlines()[-1:] if err else []}
  row = {
    "point": k,
    "signal": signal.Signals(sig).name,
    "at_s": round(at, 1),
    "aimed_at": aimed,
    "stage": stage,
    **first,
  }
  resumes = 0
  while not (wd / "results.json").exists() or resumes == 0:
    resumes += 1
    r = subprocess.run(command(args, wd), cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
      return {
        **row,
        "resumes": resumes,
        "identical": False,
        "error": r.stderr.strip().splitlines()[-1:],
      }
  return {**row, "resumes": resumes, "identical": comparable(wd) == ref}


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", default="configs/tiny.py")
  ap.add_argument("--root", type=Path, default=Path("/tmp/xdkt_kill"))
  ap.add_argument("--points", type=int, default=10)
  ap.add_argument("--methods", default="xdkt,target_only,pop,itemknn")
  ap.add_argument("--seed", type=int, default=0)
  args, args.overrides = ap.parse_known_args(argv)
  args.root.mkdir(parents=True, exist_ok=True)
  t0 = time.time()
  # Twice: the first fills the caches the interrupted runs will find, the second measures the
  # stage spans under those warm caches (and must equal the first).
  for name in ("straight_cold", "straight"):
    shutil.rmtree(args.root / name, ignore_errors=True)
    subprocess.run(command(args, args.root / name), cwd=ROOT, check=True, capture_output=True)
  straight = args.root / "straight"
  ref, dur = comparable(straight), durations(straight)
  if comparable(args.root / "straight_cold") != ref:
    print("the two uninterrupted runs differ: the run is not deterministic", flush=True)
    return 1
  print(
    f"two uninterrupted runs: {time.time() - t0:.0f} s; stage durations (s): "
    + ", ".join(f"{s} {d:.1f}" for s, d in dur.items()),
    flush=True,
  )
  rng = random.Random(args.seed)
  rows = []
  for k in range(args.points):
    stage = list(dur)[k % len(dur)]  # aim at each stage in turn
    sig = (signal.SIGKILL, signal.SIGTERM)[(k // len(dur)) % 2 ^ k % 2]
    rows.append(run_point(args, k, sig, stage, rng.uniform(0, dur[stage]), ref))
    print(json.dumps(rows[-1]), flush=True)
  print(
    "\n| point | signal | at (s) | aimed at | stage it stopped in | exit code | resumes | "
    "identical results.json |"
  )
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['point']} | {r['signal']} | {r['at_s']} | {r['aimed_at']} | {r['stage']} | "
      f"{r['code']} | {r['resumes']} | {'yes' if r['identical'] else 'NO'} |"
    )
  ok = all(r["identical"] for r in rows)
  print(
    f"\n{sum(r['identical'] for r in rows)} of {len(rows)} resumed runs identical; "
    f"{time.time() - t0:.0f} s in all"
  )
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
