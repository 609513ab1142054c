"""The training loop shared by every stage.

Step numbers count *completed* steps: the metrics of the call that turned
``state.step`` from t-1 into t are logged, checked and checkpointed as step t.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import threading
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
import tqdm

from xdkt_jax.train import checkpoint as ckpt_lib
from xdkt_jax.train import mesh as mesh_lib


class NonFiniteMetricError(FloatingPointError):
  """Metrics became NaN/Inf; carries the step and the (first) metric name."""

  def __init__(self, step: int, bad: dict[str, float]):
    listed = ", ".join(f"{k!r} = {v}" for k, v in bad.items())
    super().__init__(f"Non-finite metric {listed} at step {step}.")
    self.step, self.bad = step, bad
    self.name, self.value = next(iter(bad.items()))


class StepIndexedData:
  """Iterator over ``batch_fn(step)`` whose position is just the step.

  The simplest resumable data source: the position saved with a checkpoint
  is {'step': n}, and restoring it replays nothing.  Any iterator with
  `get_state() -> dict` / `set_state(dict)` works in the loop as well.
  """

  def __init__(self, batch_fn: Callable[[int], Any], steps_per_epoch: int = 0):
    self.batch_fn, self.steps_per_epoch, self.step = batch_fn, steps_per_epoch, 0

  def __iter__(self):
    return self

  def __next__(self):
    batch = self.batch_fn(self.step)
    self.step += 1
    return batch

  def get_state(self) -> dict:
    state = {"step": self.step}
    if self.steps_per_epoch:
      state["epoch"] = self.step // self.steps_per_epoch
    return state

  def set_state(self, state: dict):
    self.step = int(state.get("step", 0))


@dataclasses.dataclass
class LoopResult:
  state: Any
  step: int
  preempted: bool
  metrics: dict  # last host-side metrics seen


def default_block_every_step() -> bool:
  """Block per step on multi-device CPU.

  Measured here: XLA:CPU's all-reduce rendezvous can hang when many sharded
  steps are queued without waiting.  Accelerators pipeline fine.
  """
  return jax.device_count() > 1 and jax.default_backend() == "cpu"


class _Preemption:
  """SIGTERM -> flag, polled once per step (handlers must not do real work)."""

  def __init__(self, enabled: bool):
    self.flag = False
    self._old = None
    self._enabled = enabled and (threading.current_thread() is threading.main_thread())

  def __enter__(self):
    if self._enabled:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning("Signal %d: will checkpoint and stop.", signum)
    self.flag = True

  def reached(self, step: int) -> bool:
    if jax.process_count() > 1:
      # All hosts must agree on the step to stop at, else the collective
      # save deadlocks; JAX's preemption service provides that consensus.
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      try:
        return self.flag or multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:  # service not running (no distributed init).
        return self.flag
    return self.flag

  def __exit__(self, *exc):
    if self._enabled:
      signal.signal(signal.SIGTERM, self._old)


def check_finite(step: int, metrics: dict):
  """Raises NonFiniteMetricError naming every bad metric, 'loss' first."""
  order = sorted(metrics, key=lambda k: (k != "loss", k))
  bad = {k: float(metrics[k]) for k in order if not math.isfinite(float(metrics[k]))}
  if bad:
    raise NonFiniteMetricError(step, bad)


class _StepMetrics:
  """Host side of the metrics: fetches one step's device metrics, checks them, shows the
  loss on the progress bar and writes window means every `log_every` steps."""

  def __init__(self, bar, writer, log_every: int):
    self.bar, self.writer, self.log_every = bar, writer, log_every
    self.window: dict[str, list[float]] = {}
    self.window_t0, self.window_steps = time.time(), 0
    self.last: dict = {}

  def fetch(self, at: int, device_metrics) -> None:
    metrics = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
    check_finite(at, metrics)
    self.last = metrics
    for k, v in metrics.items():
      self.window.setdefault(k, []).append(v)
    self.window_steps += 1
    if "loss" in metrics:
      self.bar.set_postfix(loss=f"{metrics['loss']:.4g}", refresh=False)
    if self.writer is not None and self.log_every and at % self.log_every == 0:
      elapsed = max(time.time() - self.window_t0, 1e-9)
      scalars = {f"train/{k}": float(np.mean(v)) for k, v in self.window.items()}
      scalars["train/steps_per_sec"] = self.window_steps / elapsed
      self.writer.write_scalars(at, scalars)
      self.window.clear()
      self.window_t0, self.window_steps = time.time(), 0


def train_loop(
  *,
  state,
  train_step: Callable[..., Any],
  data: Iterator[Any],
  rng: jax.Array,
  total_steps: int,
  batch_sharding=None,
  ckpt_mngr=None,
  writer=None,
  log_every: int = 50,
  block_every_step: bool | None = None,
  progress: bool = True,
  handle_sigterm: bool = True,
) -> LoopResult:
  """Runs `train_step` from ``state.step`` up to `total_steps`.

  * metrics are fetched one step late (device_get of step t-1 while step t
    runs), except on checkpoint steps, where they are fetched first so a
    NaN never reaches a checkpoint;
  * a non-finite metric raises NonFiniteMetricError(step, name);
  * SIGTERM: checkpoint the current step, wait for the write, return with
    ``preempted=True`` (the caller exits 0);
  * `data` yields host batches (this process's slice) that are assembled
    into global arrays with `batch_sharding`; `data.get_state()` is saved
    with every checkpoint.
  """
  block = default_block_every_step() if block_every_step is None else (block_every_step)
  step = int(jax.device_get(state.step))
  bar = tqdm.tqdm(
    total=total_steps,
    initial=step,
    unit="step",
    disable=not (progress and jax.process_index() == 0),
    dynamic_ncols=True,
  )
  host = _StepMetrics(bar, writer, log_every)
  pending = None  # (step, device metrics) not yet fetched
  saved_step = None

  def checkpoint(at, force=False):
    nonlocal saved_step
    if ckpt_mngr is None or saved_step == at or ckpt_mngr.latest_step() == at:
      return False
    get_state = getattr(data, "get_state", None)
    if ckpt_lib.save(ckpt_mngr, at, state, get_state() if get_state else {}, force=force):
      saved_step = at
      return True
    return False

  preempted = False
  with _Preemption(handle_sigterm) as preemption:
    try:
      while step < total_steps:
        batch = next(data)
        if batch_sharding is not None:
          batch = mesh_lib.shard_batch(batch, batch_sharding)
        state, metrics = train_step(state, batch, rng)
        step += 1
        if block:
          jax.block_until_ready((state, metrics))
        if pending is not None:
          host.fetch(*pending)
        pending = (step, metrics)
        bar.update(1)
        stop = preemption.reached(step)
        if stop or (ckpt_mngr is not None and ckpt_mngr.should_save(step)):
          host.fetch(*pending)
          pending = None
          checkpoint(step, force=stop)
        if stop:
          preempted = True
          break
      if pending is not None:
        host.fetch(*pending)
        pending = None
      checkpoint(step, force=True)
    finally:
      bar.close()
      if ckpt_mngr is not None:
        ckpt_mngr.wait_until_finished()
      if writer is not None:
        writer.flush()
    # A SIGTERM after the last step's check must not be swallowed: the final
    # checkpoint is written, and the caller stops as it would have one step
    # earlier.
    preempted = preempted or preemption.flag
  return LoopResult(state=state, step=step, preempted=preempted, metrics=host.last)
