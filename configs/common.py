"""Shared config pieces.  Every experiment config is `get_config()` → a locked ConfigDict."""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections as mlc


def shared_data_dir() -> Path:
  """`../shared/data` beside the repository (or $XDKT_SHARED_DATA).  Only the configs that
  name a real dataset use it; the installed product runs without it (synthetic default)."""
  env = os.environ.get("XDKT_SHARED_DATA")
  if env:
    return Path(env)
  return Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic_config() -> mlc.ConfigDict:
  """The synthetic world's knobs (defaults and meanings: xdkt_jax/data/synthetic.py)."""
  from xdkt_jax.data import synthetic  # pylint: disable=import-outside-toplevel
  c = synthetic.default_config()
  c.domains = ",".join(c.domains)
  return c


def data_config() -> mlc.ConfigDict:
  return mlc.ConfigDict(dict(
      source="synthetic",          # synthetic | recbole | unisrec | amazon | tfds
      path="",                     # folder of the files (or the TFDS data_dir)
      domains="",                  # comma-separated; '' = every domain in the folder
      source_domains="",           # comma-separated; with target_domain, picks the domains
      target_domain="",            # '' = the last domain
      on_unknown_item="error",     # error | drop (counted)
      real_timestamps=False,       # order keys are real times comparable across domains
      use_cross_domain_order=False,
      use_given_user_split=True,   # users.tsv split, where the data ships one
      text_fields="",              # comma-separated item fields; '' = all
      dedup="first",               # first | last | all
      drop_items_without_text=True,
      kcore=0, user_k=-1, item_k=-1, kcore_prune_catalogue=True,
      tokenize=True, tokenizer="minilm", max_text_len=64,
      cache_dir="~/.cache/xdkt_jax",
      synthetic=synthetic_config(),
  ))


def base_config() -> mlc.ConfigDict:
  c = mlc.ConfigDict()
  c.seed = 0
  c.protocol = "cold_start"
  c.protocol_k = 1
  c.protocol_cold_frac = 0.2
  c.data = data_config()
  c.stages = "data"                # comma-separated stages `xdkt run` executes
  return c
