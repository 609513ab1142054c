"""Selection on the valid split, as a mechanism: run a declared grid of settings with the
recommend stage scoring the VALID users only, pick the best point by one method's valid
metric, and write the chosen setting and the command that reports it on test.

  python launch/tune.py --config=configs/default.py --root=runs/tune_default \
      --grid recommend.xdkt.source_repr=fused,text --method=xdkt --run

A config may declare its grid next to itself:

  def get_tune_grid():
    return {"recommend.xdkt.source_repr": ["fused", "text"]}

Every point runs `xdkt run` with `recommend.eval_part=valid` and `recommend.tuning=True` (early
stopping and fusion may select on valid inside a tuning run; its report says it is not a
result), the listed `--method`s only, into `<root>/<point>/`.  No test number is computed.
When the grid only touches `recommend.*` / `eval.*`, the language-model and knowledge stages
run once (in `<root>/base`) and every point reuses them through links.  The score of a point
is the mean over seeds of `--method`'s valid `--metric`; ties go to the earlier grid point.
`<root>/selection.json` holds every point's score with its interval, the chosen point and the
test command (the config's own command plus the chosen overrides).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import shlex
import subprocess
import sys
from pathlib import Path

SHARED_STAGES = ("pretrain", "adapt", "extract")


def call(cmd: list[str]) -> int:
  """Runs an `xdkt ...` command with this interpreter (no need for the venv on PATH)."""
  print(shlex.join(cmd), flush=True)
  return subprocess.call([sys.executable, "-m", "xdkt_jax.main", *cmd[1:]])


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
  grid = {}
  for spec in specs:
    key, sep, values = spec.partition("=")
    vals = [v for v in values.split(",") if v]
    if not sep or not key or not vals:
      raise SystemExit(f"tune: --grid needs key=v1,v2,...; got {spec!r}")
    if key in grid:
      raise SystemExit(f"tune: --grid names {key!r} twice")
    grid[key] = vals
  return grid


def config_grid(config_path: str) -> dict[str, list]:
  spec = importlib.util.spec_from_file_location("_tune_cfg", config_path)
  if spec is None or not Path(config_path).is_file():
    raise SystemExit(f"tune: {config_path}: config file not found")
  root = str(Path(config_path).resolve().parents[1])
  if root not in sys.path:
    sys.path.insert(0, root)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  if not hasattr(mod, "get_tune_grid"):
    raise SystemExit(f"tune: no --grid given and {config_path} defines no get_tune_grid()")
  return {k: [str(v) for v in vs] for k, vs in mod.get_tune_grid().items()}


def points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
  keys = list(grid)
  return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def point_name(p: dict[str, str]) -> str:
  return "_".join(f"{k.split('.')[-1]}={v}" for k, v in p.items()) or "base"


def shares_upstream(grid: dict) -> bool:
  return all(k.startswith(("recommend.", "eval.")) for k in grid)


def run_commands(args, grid, extra: list[str]) -> list[tuple[dict, Path, list[str]]]:
  root = Path(args.root)
  base = [
    "xdkt",
    "run",
    f"--config={args.config}",
    "--config.recommend.eval_part=valid",
    "--config.recommend.tuning=True",
    f"--config.recommend.methods={args.method}",
    *extra,
  ]
  return [
    (
      p,
      root / point_name(p),
      base + [f"--workdir={root / point_name(p)}"] + [f"--config.{k}={v}" for k, v in p.items()],
    )
    for p in points(grid)
  ]


def link_upstream(base: Path, point: Path) -> None:
  point.mkdir(parents=True, exist_ok=True)
  for stage in SHARED_STAGES:
    src, dst = base / stage, point / stage
    if src.is_dir() and not dst.exists():
      dst.symlink_to(src.resolve(), target_is_directory=True)


def score(point_dir: Path, method: str, metric: str) -> dict:
  path = point_dir / "results.json"
  if not path.exists():
    raise SystemExit(f"tune: {path} is missing (did the point's run fail?)")
  r = json.loads(path.read_text())
  if r.get("eval_part") != "valid":
    raise SystemExit(f"tune: {path} is not a valid-split run")
  m = r["metrics"].get(method, {}).get(metric)
  if m is None:
    raise SystemExit(f"tune: {path} has no {method} {metric}")
  return {"mean": m["mean"], "ci95": m["ci95"], "per_seed": m["per_seed"]}


def test_command(args, chosen: dict, extra: list[str]) -> str:
  cmd = ["xdkt", "run", f"--config={args.config}", "--workdir=<WORKDIR>", *extra]
  cmd += [f"--config.{k}={v}" for k, v in chosen.items()]
  return shlex.join(cmd)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", required=True)
  ap.add_argument("--root", default="runs/tune")
  ap.add_argument("--grid", action="append", default=[], help="key=v1,v2 (repeatable)")
  ap.add_argument("--method", default="xdkt", help="whose valid metric selects")
  ap.add_argument("--metric", default="ndcg@10")
  ap.add_argument("--run", action="store_true", help="run the points (else print them)")
  args, extra = ap.parse_known_args(argv)
  if any(
    x.startswith(("--config.recommend.eval_part", "--config.recommend.tuning")) for x in extra
  ):
    raise SystemExit("tune: eval_part and tuning are set by tune itself")
  grid = parse_grid(args.grid) if args.grid else config_grid(args.config)
  cmds = run_commands(args, grid, extra)
  root = Path(args.root)
  if args.run and shares_upstream(grid) and len(cmds) > 1:
    base = root / "base"
    first = [c for c in cmds[0][2] if not c.startswith("--workdir=")]
    upstream = first + [f"--workdir={base}", "--config.stages=data,pretrain,adapt,extract"]
    if call(upstream):
      return 1
    for _, wd, _ in cmds:
      link_upstream(base, wd)
  for _, _, c in cmds:
    if not args.run:
      print(shlex.join(c), flush=True)
    elif call(c):
      print("tune: stopped: a point failed", file=sys.stderr)
      return 1
  if not args.run:
    return 0
  scores = [{"point": p, "valid": score(wd, args.method, args.metric)} for p, wd, _ in cmds]
  best = max(range(len(scores)), key=lambda i: (scores[i]["valid"]["mean"], -i))
  chosen = scores[best]["point"]
  out = {
    "config": args.config,
    "grid": grid,
    "method": args.method,
    "metric": args.metric,
    "split": "valid",
    "points": scores,
    "chosen": chosen,
    "test_command": test_command(args, chosen, extra),
  }
  root.mkdir(parents=True, exist_ok=True)
  (root / "selection.json").write_text(json.dumps(out, indent=1))
  for s in scores:
    v = s["valid"]
    print(
      f"{point_name(s['point'])}: valid {args.method} {args.metric} {v['mean']:.4f} "
      f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]"
    )
  print(f"chosen on valid: {point_name(chosen)}\n{out['test_command']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
