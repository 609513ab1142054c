"""Fixed-shape padded numpy batches → global `jax.Array`s.

Shapes never change between steps (so jitted steps compile once): the last partial batch is
either dropped or padded with masked rows.  The order is a pure function of (seed, epoch), so a
run resumed at step s sees exactly the batches it would have seen: `Batcher.iterate(start_step=s)`.
Each host materialises only its slice of the global batch (rows
[i*B/P, (i+1)*B/P) for process i of P) and `to_global` assembles the global array.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, Mapping

import numpy as np


def pad_sequences(
  offsets: np.ndarray, items: np.ndarray, max_len: int, *, pad_value: int = 0, keep: str = "last"
) -> tuple[np.ndarray, np.ndarray]:
  """Ragged rows (CSR) → right-padded [n, max_len] ids and int8 mask.

  keep='last' keeps the most recent max_len items of a longer row (what a sequential
  recommender should see); keep='first' truncates the tail.
  """
  n = len(offsets) - 1
  lens = np.diff(offsets)
  take = np.minimum(lens, max_len)
  start = offsets[:-1] + (lens - take if keep == "last" else 0)
  out = np.full((n, max_len), pad_value, dtype=np.int32)
  mask = np.zeros((n, max_len), dtype=np.int8)
  col = np.arange(max_len)
  valid = col[None, :] < take[:, None]
  src = (start[:, None] + col[None, :])[valid]
  out[valid] = items[src]
  mask[valid] = 1
  return out, mask


def fixed_shape_batches(
  arrays: Mapping[str, np.ndarray], batch_size: int, *, fill: Mapping[str, int] | None = None
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
  """In order, every `batch_size` rows of `arrays` (same first dimension), the last batch
  padded up to the same shape so a jitted function compiles once; yields (batch, n_real).
  Padded rows hold 0, or `fill[key]` (e.g. an all-ones mask, so a mean over tokens stays
  finite); the caller keeps the first n_real rows of what it computes."""
  fill = fill or {}
  n = len(next(iter(arrays.values())))
  for lo in range(0, n, batch_size):
    batch = {k: np.asarray(v[lo : lo + batch_size]) for k, v in arrays.items()}
    k = min(batch_size, n - lo)
    if k < batch_size:
      batch = {
        key: np.concatenate(
          [v, np.full((batch_size - k,) + v.shape[1:], fill.get(key, 0), v.dtype)]
        )
        for key, v in batch.items()
      }
    yield batch, k


class Batcher:
  """Deterministic, resumable, host-sliced batches over a dict of equal-length arrays."""

  def __init__(
    self,
    arrays: Mapping[str, np.ndarray],
    global_batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
  ):
    lens = {k: len(v) for k, v in arrays.items()}
    if len(set(lens.values())) != 1:
      raise ValueError(f"Batcher: arrays differ in length: {lens}")
    self.arrays = dict(arrays)
    self.n = next(iter(lens.values()))
    if process_index is None or process_count is None:
      import jax  # pylint: disable=import-outside-toplevel

      process_index, process_count = jax.process_index(), jax.process_count()
    if global_batch_size % process_count:
      raise ValueError(
        f"global batch {global_batch_size} is not divisible by {process_count} processes"
      )
    self.global_batch_size = global_batch_size
    self.local_batch_size = global_batch_size // process_count
    self.process_index, self.process_count = process_index, process_count
    self.seed, self.shuffle, self.drop_remainder = seed, shuffle, drop_remainder
    if drop_remainder and self.n < global_batch_size:
      raise ValueError(
        f"{self.n} examples < global batch {global_batch_size} with "
        "drop_remainder=True: no batch could be formed"
      )
    self.steps_per_epoch = (
      self.n // global_batch_size if drop_remainder else -(-self.n // global_batch_size)
    )

  def epoch_order(self, epoch: int) -> np.ndarray:
    if not self.shuffle:
      return np.arange(self.n)
    return np.random.default_rng([self.seed, epoch]).permutation(self.n)

  def batch_at(self, step: int) -> dict[str, np.ndarray]:
    """This host's slice of global batch number `step` (counting across epochs)."""
    epoch, i = divmod(step, self.steps_per_epoch)
    order = self.epoch_order(epoch)
    lo = i * self.global_batch_size + self.process_index * self.local_batch_size
    idx = order[lo : lo + self.local_batch_size]
    valid = np.ones(self.local_batch_size, dtype=bool)
    if len(idx) < self.local_batch_size:  # last partial batch: pad with masked copies of row 0
      valid[len(idx) :] = False
      idx = np.concatenate([idx, np.zeros(self.local_batch_size - len(idx), idx.dtype)])
    out = {k: v[idx] for k, v in self.arrays.items()}
    out["example_mask"] = valid
    return out

  def iterate(
    self, start_step: int = 0, num_steps: int | None = None, prefetch: int = 0
  ) -> Iterator[dict[str, np.ndarray]]:
    stop = None if num_steps is None else start_step + num_steps
    gen = _count_batches(self, start_step, stop)
    return _prefetch(gen, prefetch) if prefetch > 0 else gen


def _count_batches(b: Batcher, start: int, stop: int | None):
  step = start
  while stop is None or step < stop:
    yield b.batch_at(step)
    step += 1


def _prefetch(gen, size: int):
  """Runs `gen` in a background thread, `size` batches ahead, so the device never waits."""
  q: queue.Queue = queue.Queue(maxsize=size)
  done = object()
  err: list = []

  def work():
    try:
      for x in gen:
        q.put(x)
    except BaseException as e:  # surfaced in the consumer, not lost in the thread
      err.append(e)
    q.put(done)

  threading.Thread(target=work, daemon=True).start()
  while True:
    x = q.get()
    if x is done:
      if err:
        raise err[0]
      return
    yield x


def to_global(local_batch: Mapping[str, np.ndarray], mesh, batch_axes=("data", "fsdp")):
  """Host-local numpy slices → global jax.Arrays, leading dim sharded over `batch_axes`."""
  import jax  # pylint: disable=import-outside-toplevel
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=import-outside-toplevel

  axes = tuple(a for a in batch_axes if a in mesh.axis_names)
  out = {}
  for k, v in local_batch.items():
    spec = P(axes, *([None] * (np.ndim(v) - 1)))
    out[k] = jax.make_array_from_process_local_data(NamedSharding(mesh, spec), np.asarray(v))
  return out
