"""Metric writers (TensorBoard + JSON lines) and multi-host start-up."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Mapping

import jax


class MetricWriter:
  """Writes scalars to TensorBoard event files and `metrics.jsonl`.

  Only process 0 writes: every process sees the same replicated metrics, and
  many hosts appending to one file would interleave lines.  The JSON lines
  file is what tests and report scripts read (no TensorBoard dependency).
  """

  def __init__(self, logdir, *, enabled: bool | None = None, tensorboard: bool = True):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._tb = None
    self._jsonl = None
    if not self.enabled:
      return
    os.makedirs(logdir, exist_ok=True)
    self._jsonl = open(os.path.join(logdir, "metrics.jsonl"), "a")
    if tensorboard:
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

        self._tb = SummaryWriter(logdir)
      except ImportError:
        logging.warning("tensorboardX missing: writing metrics.jsonl only.")

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    if not self.enabled:
      return
    values = {k: float(v) for k, v in scalars.items()}
    record = {"step": int(step), "time": time.time()}
    # JSON has no NaN/Inf; write them as strings so the line stays valid.
    record.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(k, v, int(step))

  def flush(self):
    if self._tb is not None:
      self._tb.flush()
    if self._jsonl is not None:
      self._jsonl.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def read_jsonl(path) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def maybe_initialize_distributed(cfg) -> bool:
  """Calls ``jax.distributed.initialize`` when the config asks for multi-host.

  Reads `cfg.multihost` (bool) and optional coordinator_address /
  num_processes / process_id; with none of them set, JAX auto-detects the
  cluster (TPU pods, SLURM).  Must run before anything touches devices.
  Returns whether initialisation happened.
  """
  get = (
    (lambda k, d=None: cfg.get(k, d))
    if hasattr(cfg, "get")
    else (lambda k, d=None: getattr(cfg, k, d))
  )
  if not get("multihost", False):
    return False
  is_init = getattr(jax.distributed, "is_initialized", lambda: False)
  if is_init():
    return False
  kwargs = {
    k: get(k) for k in ("coordinator_address", "num_processes", "process_id") if get(k) is not None
  }
  # Cross-process collectives on the CPU backend (local multi-process runs and tests) need
  # gloo; accelerators ignore this setting.
  try:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except (AttributeError, ValueError):  # an older jax without the option
    pass
  jax.distributed.initialize(**kwargs)
  logging.info(
    "jax.distributed: process %d/%d, %d global devices.",
    jax.process_index(),
    jax.process_count(),
    jax.device_count(),
  )
  return True
