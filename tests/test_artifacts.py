"""Sealed stages: a damaged or missing output is named and the stage reopened; unreadable
caches are recomputed with one line."""

import numpy as np

from xdkt_jax import artifacts


def _stage(tmp_path):
  d = tmp_path / "extract"
  (d / "ckpt" / "5").mkdir(parents=True)
  (d / "ckpt" / "5" / "blob").write_bytes(b"orbax keeps its own")
  np.savez(d / "knowledge.npz", a=np.arange(10))
  (d / "metrics.json").write_text("{}")
  artifacts.finish(d, "fp1")
  return d


def test_a_sealed_stage_verifies_and_names_what_broke(tmp_path):
  d = _stage(tmp_path)
  assert artifacts.is_done(d, "fp1") and not artifacts.is_done(d, "fp2")
  manifest = (d / artifacts.MANIFEST).read_text()
  assert "knowledge.npz" in manifest and "ckpt" not in manifest and "DONE" not in manifest
  (d / "ckpt" / "5" / "blob").write_bytes(b"changed")  # not an output: ignored
  assert artifacts.problem(d) is None
  data = (d / "knowledge.npz").read_bytes()
  (d / "knowledge.npz").write_bytes(data[: len(data) // 2])  # truncated
  logs = []
  assert not artifacts.is_done(d, "fp1", logs.append, "extract")
  assert logs == [
    f"extract: {d / 'knowledge.npz'} is damaged (its size or checksum differs "
    "from MANIFEST.json); redoing it"
  ]
  assert not (d / "DONE").exists()  # reopened for the redo


def test_a_missing_output_and_a_stage_sealed_before_manifests(tmp_path):
  d = _stage(tmp_path)
  (d / "metrics.json").unlink()
  assert artifacts.problem(d) == f"{d / 'metrics.json'} is missing"
  (d / artifacts.MANIFEST).unlink()
  (d / "DONE").write_text("fp1")
  assert artifacts.is_done(d, "fp1")  # nothing to check: reused as before


def test_read_or_none_names_an_unreadable_cache(tmp_path):
  p = tmp_path / "tok-1.npz"
  p.write_bytes(b"PK\x03\x04 not a zip")
  logs = []
  assert artifacts.read_or_none(p, np.load, logs.append, "tokenisation cache") is None
  assert logs[0].startswith(f"tokenisation cache {p} cannot be read (")
  assert logs[0].endswith("); recomputing it")
