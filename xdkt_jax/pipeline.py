"""The method's stages, each reading/writing artifacts in the workdir so a rerun resumes.

Stages (config.stages, comma-separated, in this order): data → pretrain → adapt → ...
Each finished stage leaves `<workdir>/<stage>/DONE` holding the fingerprint of its inputs; a
rerun with the same inputs reuses the artifacts, a changed input redoes the stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from xdkt_jax.data import load as data_load
from xdkt_jax.data import protocols
from xdkt_jax.data import stats as data_stats

STAGE_ORDER = ("data",)


def stats(config) -> dict:
  ds, tok = data_load.load(config.data)
  return data_stats.dataset_stats(ds, tok)


def _stage_dir(workdir: Path, name: str) -> Path:
  p = workdir / name
  p.mkdir(parents=True, exist_ok=True)
  return p


def _write_json(path: Path, obj) -> None:
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=1, default=str))
  tmp.replace(path)


def data_stage(config, workdir: Path, log=print):
  """Load + preprocess + tokenise + split.  Writes data/stats.json and data/split.json."""
  t0 = time.time()
  ds, tok = data_load.load(config.data)
  split = protocols.make_split(ds, config)
  out = _stage_dir(workdir, "data")
  st = data_stats.dataset_stats(ds, tok)
  _write_json(out / "stats.json", st)
  _write_json(out / "split.json", protocols.summary(split))
  log(data_stats.format_table(st))
  s = protocols.summary(split)
  log(f"split: protocol={s['protocol']} k={s['k']} targets={s['targets']} "
      f"sources={s['sources']} eval={s['eval']} info={s['info']} "
      f"fingerprint={s['fingerprint']}")
  log(f"data stage: {time.time() - t0:.1f}s")
  return ds, tok, split


def run(config, workdir: str, log=print) -> dict:
  """Runs the configured stages in order; returns {stage: seconds}."""
  wd = Path(workdir).expanduser()
  wd.mkdir(parents=True, exist_ok=True)
  stages = data_load.split_list(config.stages)
  unknown = [s for s in stages if s not in STAGE_ORDER]
  if unknown:
    raise ValueError(f"config.stages: unknown stage(s) {unknown}; known: {STAGE_ORDER}")
  timings = {}
  t = time.time()
  data_stage(config, wd, log)
  timings["data"] = time.time() - t
  _write_json(wd / "timings.json", timings)
  return timings
