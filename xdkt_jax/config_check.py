"""The config checked at the CLI boundary, before any work: unknown fields with a suggestion,
values out of range, a workdir that cannot hold a run — each one line (ValueError), naming the
field and what it accepts.

Checks that need the data (text fields that exist, a split with test users) run where the
data is read (data/load.py, data/protocols.py); checks that belong to one component stay
beside it (recommend.check_config, conventions.resolve).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Callable

# field → (test, what it must be).  Only fields that exist in the config are checked.
_POS = (lambda v: v > 0, "> 0")
_NONNEG = (lambda v: v >= 0, ">= 0")
_FRAC_OPEN = (lambda v: 0 < v < 1, "in (0, 1)")
_FRAC = (lambda v: 0 <= v < 1, "in [0, 1)")
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
  "protocol_k": _NONNEG,
  "protocol_cold_frac": _FRAC_OPEN,
  "protocol_fraction": (lambda v: 0 < v <= 1, "in (0, 1]"),
  "data.max_text_len": _POS,
  "data.max_users": _NONNEG,
  "data.kcore": _NONNEG,
  "adapt.target_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
  "adapt.freeze_layers": _NONNEG,
  "adapt.head_warmup_steps": _NONNEG,
  "knowledge.steps": _NONNEG,
  "knowledge.batch_size": _POS,
  "knowledge.heldout_frac": _FRAC,
  "recommend.seeds": _POS,
  "recommend.eval_batch_size": _POS,
  "recommend.workers": _POS,
  "recommend.sequential.hidden": _POS,
  "recommend.sequential.layers": _POS,
  "recommend.sequential.heads": _POS,
  "recommend.sequential.mlp": _POS,
  "recommend.sequential.max_len": _POS,
  "recommend.sequential.batch": _POS,
  "recommend.sequential.epochs": _POS,
  "recommend.sequential.steps": _NONNEG,
  "recommend.sequential.lr": _POS,
  "recommend.sequential.dropout": _FRAC,
  "recommend.sequential.attn_dropout": _FRAC,
  "recommend.sequential.text_dropout": _FRAC,
  "recommend.sequential.patience": _POS,
  "eval.alpha": _FRAC_OPEN,
  "eval.n_boot": (lambda v: v >= 100, ">= 100"),
}
for _stage in ("pretrain", "adapt"):
  RULES.update(
    {
      f"{_stage}.steps": _NONNEG,
      f"{_stage}.batch_size": _POS,
      f"{_stage}.lr": _POS,
      f"{_stage}.heldout_frac": _FRAC,
    }
  )
CHOICES = {
  "data.dedup": ("first", "last", "all"),
  "data.subsample": ("uniform", "overlap_first"),
  "data.on_unknown_item": ("error", "drop"),
  "recommend.eval_part": ("valid", "test"),
}


def flat_keys(config, prefix: str = "") -> list[str]:
  """Every leaf field of a ConfigDict as a dotted path."""
  out = []
  for k in config.keys():
    v = config[k]
    path = f"{prefix}{k}"
    if hasattr(v, "keys") and callable(v.keys):
      out += flat_keys(v, path + ".")
    else:
      out.append(path)
  return out


def unknown_field_message(path: str, keys: list[str]) -> str:
  near = difflib.get_close_matches(path, keys, n=1, cutoff=0.6)
  hint = f" (did you mean '{near[0]}'?)" if near else ""
  return f"--config.{path}: unknown config field{hint}"


def unknown_overrides(argv: list[str], keys: list[str]) -> list[str]:
  """The `--config.a.b=v` paths of argv that name no field (nor a dict of fields)."""
  known = set(keys)
  prefixes = {k.rsplit(".", i)[0] for k in keys for i in range(1, k.count(".") + 1)}
  bad = []
  for a in argv:
    if a.startswith("--config.") and "=" in a:
      path = a[len("--config.") :].split("=", 1)[0]
      if path not in known and path not in prefixes:
        bad.append(path)
  return bad


def _get(config, path: str):
  v = config
  for part in path.split("."):
    if part not in v:
      return None
    v = v[part]
  return v


def check(config) -> None:
  """Ranges and choices of the fields in RULES / CHOICES; raises ValueError (one line)."""
  for path, (ok, what) in RULES.items():
    v = _get(config, path)
    if v is None or isinstance(v, bool):
      continue
    if not ok(v):
      raise ValueError(f"config.{path} must be {what}, got {v!r}")
  for path, allowed in CHOICES.items():
    v = _get(config, path)
    if v is not None and v not in allowed:
      raise ValueError(f"config.{path} must be one of {', '.join(allowed)}, got {v!r}")
  cache = _get(config, "data.cache_dir")
  if cache and Path(str(cache)).expanduser().is_file():
    raise ValueError(f"config.data.cache_dir={cache} is a file; give a folder (or '' for none)")
  ks = _get(config, "recommend.ks")
  if ks is not None:
    parts = [x.strip() for x in str(ks).split(",") if x.strip()]
    if not parts or not all(x.isdigit() and int(x) > 0 for x in parts):
      raise ValueError(f"config.recommend.ks must be comma-separated positive integers, got {ks!r}")


def check_workdir(workdir: str) -> None:
  """A run's workdir must be (or become) a writable folder: refused before any work."""
  p = Path(workdir).expanduser()
  for q in [p, *p.parents]:
    if q.exists():
      if not q.is_dir():
        what = "is a file" if q == p else f"lies under a file ({q})"
        raise ValueError(f"--workdir={workdir}: {what}; give a folder")
      if not os.access(q, os.W_OK | os.X_OK):
        raise ValueError(
          f"--workdir={workdir}: {q} is not writable; choose another folder "
          "or change its permissions"
        )
      return
