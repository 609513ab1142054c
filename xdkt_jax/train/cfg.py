"""Reading optional settings from a ConfigDict, a dict, an attribute object or None."""

from __future__ import annotations

from typing import Any


def cfg_get(cfg, name: str, default: Any) -> Any:
  """`cfg.name` with a default; a None value also means "use the default"."""
  if cfg is None:
    return default
  value = cfg.get(name, default) if hasattr(cfg, "get") else getattr(cfg, name, default)
  return default if value is None else value
