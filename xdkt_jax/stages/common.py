"""What every stage shares: its folder, atomic JSON, the fingerprint of its inputs, the claim
that clears a folder left by other inputs, and the encoder one stage hands to the next."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from xdkt_jax import artifacts, stopping


class StageEncoder(NamedTuple):
  """An encoder as one stage hands it to the next: its config, its weights, and the
  fingerprint of everything that produced them (a later stage's inputs include it)."""

  config: Any
  params: Any
  fingerprint: str


def stage_dir(workdir: Path, name: str) -> Path:
  p = workdir / name
  p.mkdir(parents=True, exist_ok=True)
  return p


def write_json(path: Path, obj) -> None:
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=1, default=str))
  tmp.replace(path)


def read_json(path: Path, how_to_fix: str):
  got = artifacts.read_or_none(path, lambda p: json.loads(p.read_text()), log=lambda _: None)
  if got is None:
    raise artifacts.damaged(path, how_to_fix)
  return got


def fingerprint(*parts) -> str:
  return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def claim(stage_dir: Path, fp: str) -> None:
  """A stage dir holds one set of inputs: checkpoints left by a run with other inputs would
  otherwise be resumed as if they were this run's, so they are cleared first."""
  marker = stage_dir / "INPUTS"
  if marker.exists() and marker.read_text().strip() != fp:
    shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
  marker.write_text(fp)


def between(stage: str) -> None:
  """A SIGTERM whose exception was swallowed inside a stage stops the run here."""
  stopping.check(f"stopped on SIGTERM after the {stage} stage; rerun the same command to resume")
