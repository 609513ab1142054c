"""Expands the sweep declared next to a config into `xdkt run` commands; prints or runs them.

A config file may define `get_sweep()` returning either a dict of lists (the cartesian
product is taken) or a list of dicts (each one run as given); keys are config fields:

  def get_sweep():
    return {"protocol_k": [0, 1, 3], "seed": [0, 1, 2]}

  python launch/sweep.py --config=configs/amazon_art_office.py            # print
  python launch/sweep.py --config=configs/amazon_art_office.py --run      # run one by one
Each point gets its own workdir under --root, named from its overrides.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import shlex
import subprocess
import sys
from pathlib import Path


def load_sweep(config_path: str) -> list[dict]:
  spec = importlib.util.spec_from_file_location("_sweep_cfg", config_path)
  if spec is None or not Path(config_path).is_file():
    raise SystemExit(f"sweep: {config_path}: config file not found")
  mod = importlib.util.module_from_spec(spec)
  root = str(Path(config_path).resolve().parents[1])
  if root not in sys.path:
    sys.path.insert(0, root)
  spec.loader.exec_module(mod)
  if not hasattr(mod, "get_sweep"):
    raise SystemExit(f"sweep: {config_path} defines no get_sweep()")
  sweep = mod.get_sweep()
  if isinstance(sweep, dict):
    keys = list(sweep)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(sweep[k] for k in keys))]
  return [dict(p) for p in sweep]


def commands(config_path: str, points: list[dict], root: str, extra: list[str]) -> list[list[str]]:
  out = []
  for p in points:
    name = "_".join(f"{k.split('.')[-1]}={v}" for k, v in p.items()) or "base"
    cmd = ["xdkt", "run", f"--config={config_path}", f"--workdir={Path(root) / name}"]
    cmd += [f"--config.{k}={v}" for k, v in p.items()] + list(extra)
    out.append(cmd)
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", required=True)
  ap.add_argument("--root", default="runs/sweep")
  ap.add_argument("--run", action="store_true", help="run the commands one after another")
  args, extra = ap.parse_known_args(argv)
  cmds = commands(args.config, load_sweep(args.config), args.root, extra)
  for c in cmds:
    print(shlex.join(c), flush=True)
    if args.run:  # this interpreter's package: no need for the venv on PATH
      rc = subprocess.call([sys.executable, "-m", "xdkt_jax.main", *c[1:]])
      if rc:
        print(f"sweep: stopped, exit code {rc}", file=sys.stderr)
        return rc
  return 0


if __name__ == "__main__":
  sys.exit(main())
