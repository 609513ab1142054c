"""Checkpoint/resume: SIGKILL mid-run resumes bit-identically; SIGTERM exits 0.

Training runs in subprocesses (tests/test_train_harness.py) so the signals
are real and the pytest process is untouched.
"""

import json
import os
import signal
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_train_harness as harness  # pylint: disable=g-import-not-at-top,wrong-import-position

from xdkt_jax.train import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from xdkt_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from xdkt_jax.train import optim as optim_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from xdkt_jax.train import writers  # pylint: disable=g-import-not-at-top,wrong-import-position


def _events(stdout):
  return [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]


def _train(workdir, *extra):
  err = open(os.path.join(str(workdir) + ".stderr"), "w")
  return harness.spawn(
    ["train", f"--workdir={workdir}", "--steps=8", "--every=4", *extra], stderr=err
  )


def test_sigkill_after_checkpoint_then_resume_is_bit_identical(tmp_path):
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  p_straight, p_killed = _train(straight), _train(killed, "--kill_after=4")
  out_straight, _ = p_straight.communicate(timeout=120)
  out_killed, _ = p_killed.communicate(timeout=120)
  assert p_straight.returncode == 0, out_straight
  assert p_killed.returncode == -signal.SIGKILL, out_killed
  assert sorted(os.listdir(killed / "ckpt")) == ["4"]
  assert not (killed / "params_8.npz").exists()

  p_resumed = _train(killed)
  out_resumed, _ = p_resumed.communicate(timeout=120)
  assert p_resumed.returncode == 0, out_resumed
  resumed = _events(out_resumed)[0]
  assert resumed == {"event": "resumed", "source": "workdir", "step": 4}

  a = harness.load_params(straight / "params_8.npz")
  b = harness.load_params(killed / "params_8.npz")
  assert a.keys() == b.keys()
  for k in a:
    assert np.array_equal(a[k], b[k]), k
  # The per-step metrics after resume match the straight run's exactly, too.
  rows_a = {r["step"]: r for r in writers.read_jsonl(straight / "logs" / "metrics.jsonl")}
  rows_b = {r["step"]: r for r in writers.read_jsonl(killed / "logs" / "metrics.jsonl")}
  assert sorted(rows_b) == list(range(1, 9))
  for step in range(1, 9):
    assert rows_a[step]["train/loss"] == rows_b[step]["train/loss"], step


def test_sigterm_checkpoints_and_exits_zero(tmp_path):
  workdir = tmp_path / "run"
  err = open(str(workdir) + ".stderr", "w")
  proc = harness.spawn(
    ["train", f"--workdir={workdir}", "--steps=100000", "--every=100000", "--step_sleep=0.05"],
    stderr=err,
  )
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if json.loads(line).get("step", 0) >= 3 and "step" == json.loads(line)["event"]:
      proc.send_signal(signal.SIGTERM)
      break
  rest, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, "".join(lines) + rest
  done = _events(rest)[-1]
  assert done["event"] == "done" and done["preempted"] is True
  stopped = done["step"]
  assert 3 <= stopped < 100000

  # The checkpoint is complete and restores onto shardings at that step.
  cfg = harness.toy_config(steps=100000, every=100000)
  mesh = mesh_lib.make_mesh(cfg.mesh)
  _, abstract, _, _ = harness.build(cfg, mesh)
  mngr = ckpt_lib.make_manager(workdir / "ckpt", cfg.ckpt)
  assert mngr.latest_step() == stopped
  state, data = ckpt_lib.restore(mngr, stopped, abstract)
  mngr.close()
  assert int(state.step) == stopped
  assert data == {"step": stopped, "epoch": stopped // 4}
  saved = harness.load_params(workdir / f"params_{stopped}.npz")
  for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
    assert np.array_equal(np.asarray(leaf), saved[optim_lib.path_str(path)])


def test_a_damaged_checkpoint_is_named_in_one_line(tmp_path):
  """A truncated Orbax file or an emptied _METADATA: the stage refuses with the checkpoint
  folder named and what to delete — not a TensorStore traceback."""
  import pytest  # pylint: disable=import-outside-toplevel

  workdir = tmp_path / "run"
  p = _train(workdir)
  out, _ = p.communicate(timeout=120)
  assert p.returncode == 0, out
  step_dir = workdir / "ckpt" / "8"
  meta = [f for f in step_dir.rglob("_METADATA")]
  assert meta
  meta[0].write_text("")
  cfg = harness.toy_config(steps=8, every=4)
  mesh = mesh_lib.make_mesh(cfg.mesh)
  _, abstract, init_state, _ = harness.build(cfg, mesh)
  mngr = ckpt_lib.make_manager(workdir / "ckpt", cfg.ckpt)
  with pytest.raises(
    ValueError,
    match=r"checkpoint .*ckpt/8 cannot be read .* delete that "
    r"folder",
  ):
    ckpt_lib.restore_or_init(mngr, abstract, init_state)
  mngr.close()
