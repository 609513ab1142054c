import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT
from xdkt_jax.data.batching import Batcher, fixed_shape_batches, pad_sequences


def arrays(n=103):
  return {"x": np.arange(n, dtype=np.int32), "y": np.arange(n, dtype=np.float32) * 2}


def test_pad_sequences_keep_last_and_first():
  off = np.array([0, 3, 3, 8])
  items = np.arange(1, 9, dtype=np.int32)
  ids, mask = pad_sequences(off, items, 4)
  assert ids.tolist() == [[1, 2, 3, 0], [0, 0, 0, 0], [5, 6, 7, 8]]
  assert mask.sum(1).tolist() == [3, 0, 4]
  ids, _ = pad_sequences(off, items, 4, keep="first", pad_value=-1)
  assert ids[2].tolist() == [4, 5, 6, 7] and ids[0].tolist() == [1, 2, 3, -1]


def test_fixed_shape_batches_cover_every_row_once_in_order_and_pad_with_the_fill():
  arrays = {"ids": np.arange(14).reshape(7, 2), "mask": np.ones((7, 2), np.int8)}
  got = list(fixed_shape_batches(arrays, 3, fill={"mask": 1}))
  assert [k for _, k in got] == [3, 3, 1]
  assert all(b["ids"].shape == (3, 2) and b["mask"].dtype == np.int8 for b, _ in got)
  np.testing.assert_array_equal(np.concatenate([b["ids"][:k] for b, k in got]), arrays["ids"])
  last, _ = got[-1]
  np.testing.assert_array_equal(last["ids"][1:], 0)
  np.testing.assert_array_equal(last["mask"][1:], 1)
  assert list(fixed_shape_batches({"ids": np.zeros((0, 2))}, 3)) == []


def test_deterministic_in_seed_and_epoch():
  a = Batcher(arrays(), 10, seed=3, process_index=0, process_count=1)
  b = Batcher(arrays(), 10, seed=3, process_index=0, process_count=1)
  c = Batcher(arrays(), 10, seed=4, process_index=0, process_count=1)
  for s in (0, 5, 10, 23):
    assert np.array_equal(a.batch_at(s)["x"], b.batch_at(s)["x"])
  assert not np.array_equal(a.batch_at(0)["x"], c.batch_at(0)["x"])
  # epochs differ in order; each epoch is a permutation without repeats
  e0 = np.concatenate([a.batch_at(s)["x"] for s in range(a.steps_per_epoch)])
  e1 = np.concatenate([a.batch_at(s)["x"] for s in range(a.steps_per_epoch, 2 * a.steps_per_epoch)])
  assert len(set(e0.tolist())) == len(e0) == 100
  assert not np.array_equal(e0, e1)


def test_resume_from_step_matches_straight_run():
  b = Batcher(arrays(), 8, seed=1, process_index=0, process_count=1)
  straight = [x["x"] for x in b.iterate(0, 30)]
  resumed = [x["x"] for x in b.iterate(17, 13)]
  assert all(np.array_equal(p, q) for p, q in zip(straight[17:], resumed))
  prefetched = [x["x"] for x in b.iterate(17, 13, prefetch=3)]
  assert all(np.array_equal(p, q) for p, q in zip(resumed, prefetched))


def test_host_slices_partition_the_global_batch():
  n_proc = 4
  hosts = [
    Batcher(arrays(), 12, seed=0, process_index=i, process_count=n_proc) for i in range(n_proc)
  ]
  full = Batcher(arrays(), 12, seed=0, process_index=0, process_count=1)
  for s in (0, 7):
    joined = np.concatenate([h.batch_at(s)["x"] for h in hosts])
    assert np.array_equal(joined, full.batch_at(s)["x"])
    assert all(len(h.batch_at(s)["x"]) == 3 for h in hosts)


def test_padded_last_batch_has_fixed_shape_and_mask():
  b = Batcher(arrays(10), 4, shuffle=False, drop_remainder=False, process_index=0, process_count=1)
  assert b.steps_per_epoch == 3
  last = b.batch_at(2)
  assert last["x"].shape == (4,) and last["example_mask"].tolist() == [True, True, False, False]


def test_errors():
  with pytest.raises(ValueError, match="differ in length"):
    Batcher({"a": np.zeros(3), "b": np.zeros(4)}, 2, process_index=0, process_count=1)
  with pytest.raises(ValueError, match="not divisible"):
    Batcher(arrays(), 10, process_index=0, process_count=3)
  with pytest.raises(ValueError, match="no batch"):
    Batcher(arrays(5), 8, process_index=0, process_count=1)


def test_global_arrays_on_fake_devices():
  """Two simulated hosts' slices assemble to the same global array as one host's batch."""
  code = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, numpy as np
    from jax.sharding import Mesh
    from xdkt_jax.data.batching import Batcher, to_global
    mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("data", "fsdp"))
    arr = {"x": np.arange(40, dtype=np.int32).reshape(20, 2)}
    b = Batcher(arr, 8, seed=0, process_index=0, process_count=1)
    g = to_global(b.batch_at(3), mesh)
    x = jax.block_until_ready(g["x"])
    assert x.shape == (8, 2), x.shape
    assert len(x.sharding.device_set) == 4
    assert np.array_equal(np.asarray(x), b.batch_at(3)["x"])
    shards = sorted((s.index[0].start, s.data.shape) for s in x.addressable_shards)
    assert [s[1] for s in shards] == [(2, 2)] * 4, shards
    print("OK")
  """)
  r = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
  )
  assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


_WORKER = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, numpy as np
    from jax.sharding import Mesh
    from xdkt_jax.data.batching import Batcher, to_global
    from xdkt_jax.train.writers import maybe_initialize_distributed
    pid, port = int(sys.argv[1]), sys.argv[2]
    assert maybe_initialize_distributed(dict(multihost=True, num_processes=2, process_id=pid,
                                             coordinator_address=f"localhost:{port}"))
    mesh = Mesh(np.array(jax.devices()).reshape(4, 1), ("data", "fsdp"))
    arr = {"x": np.arange(64, dtype=np.float32).reshape(32, 2)}
    b = Batcher(arr, 8, seed=0, process_index=jax.process_index(),
                process_count=jax.process_count())
    out = {"process": jax.process_index(), "devices": jax.device_count(), "steps": []}
    for step in (0, 3):
      local = b.batch_at(step)
      g = to_global(local, mesh)
      total = float(jax.block_until_ready(jax.jit(lambda x: (x * x).sum())(g["x"])))
      out["steps"].append({"local": local["x"][:, 0].tolist(), "shape": list(g["x"].shape),
                           "sum_sq": total})
    print("RESULT " + json.dumps(out), flush=True)
    jax.distributed.shutdown()
  """)


def test_two_real_processes_each_read_their_slice():
  """Two processes joined by jax.distributed (gloo on CPU): each builds only its half of the
  global batch, the halves are disjoint and make up the one-process batch, and a jitted
  reduction over the assembled global array sees all of it on both."""
  import socket  # pylint: disable=import-outside-toplevel

  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = str(s.getsockname()[1])
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", _WORKER, str(i), port],
      cwd=ROOT,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  results = []
  for p in procs:
    out, err = p.communicate(timeout=180)
    line = [x for x in out.splitlines() if x.startswith("RESULT ")]
    assert p.returncode == 0 and line, err[-2000:]
    results.append(json.loads(line[0][len("RESULT ") :]))
  arr = {"x": np.arange(64, dtype=np.float32).reshape(32, 2)}
  full = Batcher(arr, 8, seed=0, process_index=0, process_count=1)
  assert sorted(r["process"] for r in results) == [0, 1]
  assert all(r["devices"] == 4 for r in results)
  for i, step in enumerate((0, 3)):
    want = full.batch_at(step)["x"]
    halves = [r["steps"][i]["local"] for r in sorted(results, key=lambda r: r["process"])]
    assert all(len(h) == 4 for h in halves)
    assert not set(halves[0]) & set(halves[1])
    assert halves[0] + halves[1] == want[:, 0].tolist()
    for r in results:
      assert r["steps"][i]["shape"] == [8, 2]
      assert r["steps"][i]["sum_sq"] == float((want * want).sum())
