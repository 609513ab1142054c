"""The encoder's shape and numerics (EncoderConfig), and the HF config it reads and writes.

Kept apart from the Flax modules (encoder.py): every stage that handles weights needs the
config, not the modules.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn

FAMILIES = ("bert", "gpt2")
POOL_MODES = ("mean", "cls", "last")

# HF activation names -> functions.  BERT's "gelu" is the exact erf form; GPT-2's
# "gelu_new" is the tanh approximation.  Getting this wrong costs ~1e-3 in parity.
ACTIVATIONS = {
  "gelu": lambda x: nn.gelu(x, approximate=False),
  "gelu_new": lambda x: nn.gelu(x, approximate=True),
  "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
  "gelu_fast": lambda x: nn.gelu(x, approximate=True),
  "relu": nn.relu,
}
_DEFAULT_ACT = {"bert": "gelu", "gpt2": "gelu_new"}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Shape and numerics of the encoder.  Frozen so it can be a static jit argument."""

  family: str = "bert"
  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  mlp_dim: int = 1536
  max_len: int = 512
  type_vocab_size: int = 2
  dropout: float = 0.1
  attention_dropout: float = 0.1
  layer_norm_eps: float = 1e-12
  dtype: str = "float32"  # compute dtype ("bfloat16" for mixed precision)
  param_dtype: str = "float32"  # storage dtype of parameters
  pad_token_id: int = 0
  hidden_act: str | None = None  # None -> family default ("gelu" / "gelu_new")

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"EncoderConfig.family must be one of {FAMILIES}, got {self.family!r}")
    if self.hidden_act is None:  # resolve now so equal configs compare equal
      object.__setattr__(self, "hidden_act", _DEFAULT_ACT[self.family])
    if self.hidden_size % self.num_heads:
      raise ValueError(
        f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
      )
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"unsupported hidden_act {self.activation!r}; known: {sorted(ACTIVATIONS)}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def activation(self) -> str:
    return self.hidden_act

  @property
  def causal(self) -> bool:
    return self.family == "gpt2"

  def replace(self, **changes) -> "EncoderConfig":
    return dataclasses.replace(self, **changes)

  # ---- presets -----------------------------------------------------------------------

  @classmethod
  def tiny(cls, family: str = "bert", **kw) -> "EncoderConfig":
    """A few-thousand-parameter model for tests."""
    base = dict(
      family=family,
      vocab_size=101,
      hidden_size=32,
      num_layers=2,
      num_heads=4,
      mlp_dim=64,
      max_len=32,
      dropout=0.0,
      attention_dropout=0.0,
    )
    if family == "gpt2":
      base.update(layer_norm_eps=1e-5, type_vocab_size=0)
    return cls(**{**base, **kw})

  @classmethod
  def minilm(cls, **kw) -> "EncoderConfig":
    """sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 x 384)."""
    return cls(
      **{
        **dict(
          family="bert",
          vocab_size=30522,
          hidden_size=384,
          num_layers=6,
          num_heads=12,
          mlp_dim=1536,
          max_len=512,
        ),
        **kw,
      }
    )

  @classmethod
  def bert_base(cls, **kw) -> "EncoderConfig":
    return cls(
      **{
        **dict(
          family="bert",
          vocab_size=30522,
          hidden_size=768,
          num_layers=12,
          num_heads=12,
          mlp_dim=3072,
          max_len=512,
        ),
        **kw,
      }
    )

  @classmethod
  def gpt2_small(cls, **kw) -> "EncoderConfig":
    return cls(
      **{
        **dict(
          family="gpt2",
          vocab_size=50257,
          hidden_size=768,
          num_layers=12,
          num_heads=12,
          mlp_dim=3072,
          max_len=1024,
          type_vocab_size=0,
          layer_norm_eps=1e-5,
          pad_token_id=50256,
        ),
        **kw,
      }
    )

  # ---- HF config.json ------------------------------------------------------------------

  @classmethod
  def from_hf(cls, config: Mapping[str, Any], **overrides) -> "EncoderConfig":
    """From a Hugging Face ``config.json`` dict (model_type "bert" or "gpt2")."""
    model_type = config.get("model_type")
    if model_type == "bert":
      if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
          "only absolute position embeddings are supported, got "
          f"{config['position_embedding_type']!r}"
        )
      kw = dict(
        family="bert",
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        mlp_dim=config["intermediate_size"],
        max_len=config["max_position_embeddings"],
        type_vocab_size=config.get("type_vocab_size", 2),
        dropout=config.get("hidden_dropout_prob", 0.1),
        attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=config.get("layer_norm_eps", 1e-12),
        pad_token_id=config.get("pad_token_id") or 0,
        hidden_act=config.get("hidden_act", "gelu"),
      )
    elif model_type == "gpt2":
      for flag in (
        "scale_attn_by_inverse_layer_idx",
        "reorder_and_upcast_attn",
        "add_cross_attention",
      ):
        if config.get(flag):
          raise ValueError(f"GPT-2 option {flag}=True is not supported")
      if config.get("scale_attn_weights") is False:
        raise ValueError("GPT-2 option scale_attn_weights=False is not supported")
      d = config["n_embd"]
      pad = config.get("pad_token_id")
      kw = dict(
        family="gpt2",
        vocab_size=config["vocab_size"],
        hidden_size=d,
        num_layers=config["n_layer"],
        num_heads=config["n_head"],
        mlp_dim=config.get("n_inner") or 4 * d,
        max_len=config["n_positions"],
        type_vocab_size=0,
        dropout=config.get("resid_pdrop", 0.1),
        attention_dropout=config.get("attn_pdrop", 0.1),
        layer_norm_eps=config.get("layer_norm_epsilon", 1e-5),
        pad_token_id=pad if pad is not None else config.get("eos_token_id", 0),
        hidden_act=config.get("activation_function", "gelu_new"),
      )
    else:
      raise ValueError(f"unsupported HF model_type {model_type!r} (expected 'bert' or 'gpt2')")
    return cls(**{**kw, **overrides})

  def to_hf(self) -> dict[str, Any]:
    """The HF ``config.json`` dict for this config (inverse of ``from_hf``)."""
    if self.family == "bert":
      return dict(
        architectures=["BertForMaskedLM"],
        model_type="bert",
        vocab_size=self.vocab_size,
        hidden_size=self.hidden_size,
        num_hidden_layers=self.num_layers,
        num_attention_heads=self.num_heads,
        intermediate_size=self.mlp_dim,
        max_position_embeddings=self.max_len,
        type_vocab_size=self.type_vocab_size,
        hidden_dropout_prob=self.dropout,
        attention_probs_dropout_prob=self.attention_dropout,
        layer_norm_eps=self.layer_norm_eps,
        pad_token_id=self.pad_token_id,
        hidden_act=self.activation,
        position_embedding_type="absolute",
        initializer_range=0.02,
        tie_word_embeddings=True,
      )
    return dict(
      architectures=["GPT2LMHeadModel"],
      model_type="gpt2",
      vocab_size=self.vocab_size,
      n_embd=self.hidden_size,
      n_layer=self.num_layers,
      n_head=self.num_heads,
      n_inner=self.mlp_dim,
      n_positions=self.max_len,
      resid_pdrop=self.dropout,
      embd_pdrop=self.dropout,
      attn_pdrop=self.attention_dropout,
      layer_norm_epsilon=self.layer_norm_eps,
      activation_function=self.activation,
      pad_token_id=self.pad_token_id,
      bos_token_id=self.pad_token_id,
      eos_token_id=self.pad_token_id,
      initializer_range=0.02,
      tie_word_embeddings=True,
    )
