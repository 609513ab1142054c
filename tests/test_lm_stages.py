"""The LM stages end to end on a small synthetic world, and `xdkt embed` parity with the
PyTorch MiniLM reference."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from configs import default, tiny
from xdkt_jax import pipeline
from xdkt_jax.main import parse


def small_config(tmp_path, **over):
  """configs/tiny.py's world and scratch encoder, with LM stages long enough to learn."""
  c = tiny.get_config()
  with c.unlocked():
    c.data.cache_dir = str(tmp_path / "cache")
    c.pretrain.steps = 30
    c.pretrain.lr = 3e-3
    c.adapt.steps = 10
    c.adapt.lr = 1e-3
    c.adapt.freeze_layers = 1
    c.ckpt.every_steps = 200
    c.stages = "data,pretrain,adapt"  # the later stages: tests/test_run_e2e.py
    for k, v in over.items():
      obj = c
      *path, last = k.split(".")
      for p in path:
        obj = obj[p]
      obj[last] = v
  return c


def test_pretrain_and_adapt_stages(tmp_path):
  c = small_config(tmp_path)
  wd = tmp_path / "run"
  lines = []
  pipeline.run(c, str(wd), log=lines.append)
  pre = json.loads((wd / "pretrain" / "metrics.json").read_text())
  ada = json.loads((wd / "adapt" / "metrics.json").read_text())
  for d in ("Books", "Movies"):
    # from scratch, 30 steps at a high rate: the held-out masked-LM perplexity must fall
    assert pre["heldout_perplexity_after"][d] < pre["heldout_perplexity_before"][d]
    # adapt starts where pretrain ended: same held-out items, same fixed masks
    assert ada["heldout_perplexity_before"][d] == pytest.approx(
      pre["heldout_perplexity_after"][d], rel=1e-5
    )
  assert (wd / "adapt" / "hf" / "model.safetensors").exists()
  assert any("held-out perplexity" in l for l in lines)
  assert (wd / "adapt" / "logs" / "metrics.jsonl").exists()
  # the lower layer was frozen during adapt: bit-identical to pretrain's
  from xdkt_jax.models import hf_weights

  _, p_pre = hf_weights.load_pretrained(str(wd / "pretrain" / "hf"))
  _, p_ada = hf_weights.load_pretrained(str(wd / "adapt" / "hf"))
  l0 = lambda p: p["encoder"]["layers_0"]["attn"]["query"]["kernel"]
  l1 = lambda p: p["encoder"]["layers_1"]["attn"]["query"]["kernel"]
  assert np.array_equal(l0(p_pre), l0(p_ada))
  assert not np.array_equal(l1(p_pre), l1(p_ada))
  # rerun: finished stages are reused, not retrained
  lines.clear()
  pipeline.run(c, str(wd), log=lines.append)
  assert sum("reusing finished stage" in l for l in lines) == 2
  # a changed stage setting redoes that stage
  c2 = small_config(tmp_path, **{"adapt.steps": 12})
  lines.clear()
  pipeline.run(c2, str(wd), log=lines.append)
  assert sum("reusing finished stage" in l for l in lines) == 1
  # ...from its start, not from the old run's step-10 checkpoint
  assert json.loads((wd / "adapt" / "metrics.json").read_text())["resumed_from"] == "scratch"


def test_head_warmup_fits_head_with_encoder_frozen(tmp_path):
  c = small_config(
    tmp_path,
    **{
      "adapt.head_warmup_steps": 5,
      "adapt.freeze_layers": 0,
      "pretrain.steps": 3,
      "adapt.steps": 3,
    },
  )
  wd = tmp_path / "run"
  pipeline.run(c, str(wd), log=lambda *_: None)
  m = json.loads((wd / "adapt" / "metrics.json").read_text())
  hw = m["head_warmup"]
  assert hw["steps"] == 5
  for d in ("Books", "Movies"):
    assert m["heldout_perplexity_before"][d] == pytest.approx(
      hw["heldout_perplexity_after"][d], rel=1e-5
    )


def test_gpt_family_from_scratch(tmp_path):
  c = small_config(
    tmp_path, **{"encoder.family": "gpt2", "stages": "data,pretrain", "pretrain.steps": 20}
  )
  pipeline.run(c, str(tmp_path / "run"), log=lambda *_: None)
  m = json.loads((tmp_path / "run" / "pretrain" / "metrics.json").read_text())
  assert m["encoder"]["model_type"] == "gpt2"
  assert all(
    m["heldout_perplexity_after"][d] < m["heldout_perplexity_before"][d]
    for d in ("Books", "Movies")
  )


def test_embed_cli_matches_pytorch_minilm(tmp_path):
  """`xdkt embed` (MiniLM weights, mean pooling, max_text_len 64) vs the PyTorch reference."""
  ref = np.load(ROOT / "tests" / "fixtures" / "minilm_reference.npz")
  texts = tmp_path / "texts.txt"
  texts.write_text("\n".join(str(t) for t in ref["texts"]) + "\n")
  out = tmp_path / "emb.npy"
  r = subprocess.run(
    [
      sys.executable,
      "-m",
      "xdkt_jax.main",
      "embed",
      "--config=configs/default.py",
      f"--texts={texts}",
      f"--out={out}",
      "--config.data.max_text_len=64",
      "--config.encoder.pooling=mean",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert r.returncode == 0, r.stderr[-2000:]
  got = np.load(out)
  assert got.shape == (len(ref["texts"]), 384) and got.dtype == np.float32
  diff = np.abs(got - ref["embeddings"]).max()
  assert diff < 1e-4, diff


def test_embed_with_workdir_and_empty_lines(tmp_path):
  c = small_config(tmp_path, **{"stages": "data,pretrain", "pretrain.steps": 2})
  wd = tmp_path / "run"
  pipeline.run(c, str(wd), log=lambda *_: None)
  texts = tmp_path / "t.txt"
  texts.write_text("rugged trail book\n\nminimalist movie\n")
  vecs = pipeline.embed(c, str(texts), str(tmp_path / "o.npy"), workdir=str(wd))
  assert vecs.shape == (3, 32)  # tiny preset width; the empty line is an empty text
  assert np.isfinite(vecs).all()
  with pytest.raises(ValueError, match="no finished"):
    pipeline.embed(c, str(texts), str(tmp_path / "o.npy"), workdir=str(tmp_path / "none"))


def test_cli_parse_overrides():
  cmd, cfg, fv = parse(
    [
      "xdkt",
      "stats",
      "--config=configs/default.py",
      "--config.protocol_k=3",
      "--config.data.target_domain=Books",
      "--json",
    ]
  )
  assert cmd == "stats" and cfg.protocol_k == 3 and cfg.data.target_domain == "Books"
  assert fv["json"].value
