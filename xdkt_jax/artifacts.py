"""Finished artifacts you can trust on a rerun.

A stage (or one recommend run) that finishes writes MANIFEST.json — the size and SHA-256 of
every file it produced — and then DONE, the fingerprint of its inputs.  A rerun reuses it only
when DONE matches AND every file still matches its manifest; a damaged or missing file is
named in one log line and the stage is redone (its checkpoints, which Orbax keeps apart, let
an LM stage finish again without retraining).  Caches and files read back outside a stage's
own rerun get `read_or_none` / `damaged`: the file named, never a library traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, TypeVar

MANIFEST = "MANIFEST.json"
MARKERS = ("DONE", "INPUTS", MANIFEST)
UNSEALED_DIRS = ("ckpt", "logs")  # Orbax checkpoints and event logs: not outputs
T = TypeVar("T")


def _sha256(path: Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _outputs(stage_dir: Path) -> list[Path]:
  out = []
  for p in sorted(stage_dir.rglob("*")):
    rel = p.relative_to(stage_dir)
    if (
      p.is_file()
      and rel.name not in MARKERS
      and not any(part in UNSEALED_DIRS for part in rel.parts[:-1])
      and rel.suffix != ".tmp"
    ):
      out.append(p)
  return out


def finish(stage_dir: Path, fp: str) -> None:
  """Seals a finished stage: MANIFEST.json of its outputs, then DONE (last, so a crash in
  between leaves an unfinished stage, never a finished one without its manifest)."""
  stage_dir = Path(stage_dir)
  manifest = {
    str(p.relative_to(stage_dir)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
    for p in _outputs(stage_dir)
  }
  tmp = stage_dir / (MANIFEST + ".tmp")
  tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
  tmp.replace(stage_dir / MANIFEST)
  (stage_dir / "DONE").write_text(fp)


def problem(stage_dir: Path) -> str | None:
  """What is wrong with a sealed stage's outputs (first file only), or None.  A stage sealed
  before manifests existed has nothing to check."""
  path = Path(stage_dir) / MANIFEST
  if not path.exists():
    return None
  try:
    manifest = json.loads(path.read_text())
  except (ValueError, OSError):
    return f"{path} is damaged"
  for rel, want in sorted(manifest.items()):
    p = Path(stage_dir) / rel
    if not p.is_file():
      return f"{p} is missing"
    if p.stat().st_size != want["bytes"] or _sha256(p) != want["sha256"]:
      return f"{p} is damaged (its size or checksum differs from {MANIFEST})"
  return None


def is_done(stage_dir: Path, fp: str, log=print, what: str = "") -> bool:
  """DONE holds `fp` and every output verifies; a damaged one is logged and the stage is
  reopened (DONE removed) so the caller redoes it."""
  stage_dir = Path(stage_dir)
  marker = stage_dir / "DONE"
  if not (marker.exists() and marker.read_text().strip() == fp):
    return False
  bad = problem(stage_dir)
  if bad is None:
    return True
  log(f"{what or stage_dir.name}: {bad}; redoing it")
  marker.unlink()
  return False


def read_or_none(path: Path, read: Callable[[Path], T], log=print, what: str = "cache") -> T | None:
  """`read(path)`, or None (with one log line naming the file) when the file cannot be read:
  a damaged cache is recomputed, not a traceback."""
  try:
    return read(path)
  except Exception as e:  # pylint: disable=broad-except  (any unreadable file, any library)
    log(f"{what} {path} cannot be read ({_first_line(e)}); recomputing it")
    return None


def _first_line(e: Exception) -> str:
  text = str(e).splitlines()[0][:120] if str(e) else ""
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


def damaged(path: Path, how_to_fix: str) -> ValueError:
  """The one-line error for an artifact that a later stage needs and cannot read."""
  return ValueError(f"{path} is damaged or unreadable; {how_to_fix}")
