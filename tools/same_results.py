"""Shows that a change moved no result: runs configs at a reference commit and at the working
tree, each from scratch in its own workdir and cache, and compares the two results.json files
field by field, every digit, wall times (`timings_s`) and the cache folder aside.  Exit 0 when
all are identical, 1 with the first differing fields otherwise.

  python tools/same_results.py --ref=9798c44                       # configs/tiny.py
  python tools/same_results.py --ref=9798c44 --configs=configs/tiny.py,configs/default.py
  python tools/same_results.py --compare A/results.json B/results.json   # two finished runs
  python tools/same_results.py --ref=46f4607 --config-changes=knowledge.user_mode

A change that retires or adds a config key changes the config echoed in results.json;
`--config-changes` names those keys (dotted, under `config`): each may be on one side only,
and is listed in the output.  Everything else, results included, must still be identical.

The reference runs from a `git worktree` of --ref, imported ahead of the installed package
(the same interpreter and libraries, so only the code differs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("timings_s",)  # wall-clock seconds differ run to run


def comparable(path: Path, config_changes=()) -> dict:
  r = json.loads(Path(path).read_text())
  for k in VOLATILE:
    r.pop(k, None)
  r.get("config", {}).get("data", {}).pop("cache_dir", None)  # each side has its own cache
  for dotted in config_changes:
    *parents, leaf = dotted.split(".")
    section = r.get("config", {})
    for p in parents:
      section = section.get(p, {}) if isinstance(section, dict) else {}
    if isinstance(section, dict):
      section.pop(leaf, None)
  return r


def differences(a, b, at: str = "") -> list[str]:
  """Paths where two JSON values differ (floats compared exactly, as json wrote them; NaN
  equals NaN)."""
  if isinstance(a, dict) and isinstance(b, dict):
    out = [f"{at}/{k}: only in {'A' if k in a else 'B'}" for k in sorted(set(a) ^ set(b))]
    for k in a:
      if k in b:
        out += differences(a[k], b[k], f"{at}/{k}")
    return out
  if isinstance(a, list) and isinstance(b, list):
    if len(a) != len(b):
      return [f"{at}: {len(a)} entries vs {len(b)}"]
    return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{at}[{i}]")]
  same = a == b or (
    isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
  )  # an undefined metric (no user in a group) on both
  return [] if same and type(a) is type(b) else [f"{at}: {a!r} vs {b!r}"]


def run(code_root: Path, config: str, workdir: Path, cache: Path, overrides: list[str]) -> Path:
  env = {**os.environ, "PYTHONPATH": f"{code_root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
  cmd = [
    sys.executable,
    "-m",
    "xdkt_jax.main",
    "run",
    f"--config={code_root / config}",
    f"--workdir={workdir}",
    f"--config.data.cache_dir={cache}",
    *overrides,
  ]
  print("$", " ".join(cmd), f"   (code from {code_root})", flush=True)
  done = subprocess.run(
    cmd,
    cwd=code_root,
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
    check=False,
  )
  if done.returncode != 0:
    sys.exit(f"same_results: the run above failed ({done.returncode}):\n{done.stderr[-3000:]}")
  return workdir / "results.json"


def report(name: str, a: Path, b: Path, config_changes=()) -> bool:
  diffs = differences(comparable(a, config_changes), comparable(b, config_changes))
  if config_changes:
    print(f"{name}: config keys allowed to change: {', '.join(config_changes)}")
  if diffs:
    print(f"{name}: {len(diffs)} fields DIFFER (A = {a}, B = {b}); first ones:")
    for d in diffs[:20]:
      print("  ", d)
  else:
    print(f"{name}: identical, every field and digit ({a} = {b}, timings aside)")
  return not diffs


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--ref", help="the reference commit (default: HEAD)", default="HEAD")
  p.add_argument("--configs", default="configs/tiny.py")
  p.add_argument("--root", type=Path, default=None, help="where the runs go (default: a temp dir)")
  p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
  p.add_argument(
    "--config-changes",
    default="",
    help="comma-separated config keys (e.g. knowledge.user_mode) retired or added "
    "by the change: ignored in the config echo, and listed",
  )
  args, overrides = p.parse_known_args()  # the rest: --config.x=y flags for both runs
  args.overrides = overrides
  changes = [c for c in args.config_changes.split(",") if c]
  if args.compare:
    return 0 if report("results.json", *args.compare, changes) else 1
  root = args.root or Path(tempfile.mkdtemp(prefix="same_results_"))
  ref_tree = root / "ref_code"
  if not ref_tree.exists():
    subprocess.run(
      ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(ref_tree), args.ref],
      check=True,
      stdout=subprocess.DEVNULL,
    )
  sha = subprocess.run(
    ["git", "-C", str(ref_tree), "rev-parse", "--short", "HEAD"],
    check=True,
    capture_output=True,
    text=True,
  ).stdout.strip()
  ok = True
  try:
    for config in args.configs.split(","):
      name = Path(config).stem
      a = run(ref_tree, config, root / f"ref_{name}", root / f"ref_{name}_cache", args.overrides)
      b = run(ROOT, config, root / f"new_{name}", root / f"new_{name}_cache", args.overrides)
      ok &= report(f"{config} at {sha} (A) vs the working tree (B)", a, b, changes)
  finally:
    subprocess.run(
      ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_tree)], check=False
    )
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
