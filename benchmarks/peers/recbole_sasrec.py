"""RecBole 1.2.1 SASRec on the Amazon Scientific UniSRec split: the PyTorch peer of
benchmarks/vs_recbole.py.  Runs in its own venv (benchmarks/peers/setup.sh):

  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 benchmarks/peers/.venv-recbole/bin/python \
      benchmarks/peers/recbole_sasrec.py --data-dir ../shared/data/amazon_scientific --epochs 1

Data: RecBole's benchmark-file mode reads Scientific.{train,valid,test}.inter as given (one row =
one (history, next item) example, histories already capped at 50), so it trains on exactly the
UniSRec split.  Model: SASRec, CE loss over the full catalogue (no negative sampling), Adam,
no gradient clipping, RecBole's defaults otherwise (post-LN, gelu, attention dropout = dropout).

Timing: each epoch is one `trainer._train_epoch` call (what `trainer.fit` runs per epoch,
without its validation / checkpoint side work), wall clock.  The TEST full-ranking evaluation
(`trainer.evaluate`) runs twice: `eval_first_s` is the first call, `eval_s` the second (the
steady state, as for the jitted xdkt side).  RecBole does NOT remove history items from a
sequential model's ranking (only the padding item 0).

Stdout ends with ONE JSON line:
  {"impl": "recbole", "train_s_per_epoch", "train_examples", "eval_s", "recall@10", "ndcg@10",
   "epochs", ...}
Everything else (RecBole's own logging, diagnostics) goes to stderr.

`prepare_data` (stdlib only, no recbole import) is shared with xdkt_sasrec.py, so both sides
read the same files, including the same --max-rows subset.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DATASET = "Scientific"
PARTS = ("train", "valid", "test")


def add_common_args(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
  """The flags both peers take (vs_recbole.py passes the same ones to each)."""
  ap.add_argument(
    "--data-dir",
    required=True,
    help=f"folder with {DATASET}.{{train,valid,test}}.inter (UniSRec format)",
  )
  ap.add_argument("--epochs", type=int, default=1)
  ap.add_argument("--hidden", type=int, default=300)
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--heads", type=int, default=2)
  ap.add_argument("--inner", type=int, default=256)
  ap.add_argument("--max-len", type=int, default=50)
  ap.add_argument(
    "--batch", type=int, default=2048, help="training examples (next-item transitions) per step"
  )
  ap.add_argument(
    "--eval-batch",
    type=int,
    default=4096,
    help="evaluation rows per batch (RecBole's default 4096)",
  )
  ap.add_argument("--lr", type=float, default=1e-3)
  ap.add_argument("--dropout", type=float, default=0.5)
  ap.add_argument("--seed", type=int, default=2020)
  ap.add_argument(
    "--max-rows",
    type=int,
    default=0,
    help="smoke tests: keep only the first N users (the first N test lines and "
    "those users' valid / train lines), written to a temp copy",
  )
  return ap


def _read_lines(path: Path) -> list[str]:
  with open(path, encoding="utf-8") as f:
    return f.read().splitlines()


def prepare_data(src: str, work: str, max_rows: int = 0) -> Path:
  """A folder `work/Scientific` holding the split (RecBole wants data_path/<dataset>/), and
  returns it.  Full data: symlinks.  `max_rows` > 0: the first max_rows users of the test
  file with all their lines in every .inter file, so both peers see the same users; the
  catalogue files (.text, .item2index, .user2index, needed by the xdkt reader) stay whole."""
  src_dir = Path(src).resolve()
  dst = Path(work) / DATASET
  dst.mkdir(parents=True, exist_ok=True)
  inter = {f"{DATASET}.{p}.inter" for p in PARTS}
  for name in inter:
    if not (src_dir / name).is_file():
      raise SystemExit(f"{src_dir / name} not found (--data-dir must hold the UniSRec files)")
  for f in src_dir.iterdir():
    if f.name.startswith(DATASET + ".") and f.is_file() and (not max_rows or f.name not in inter):
      (dst / f.name).symlink_to(f)
  if max_rows:
    test = _read_lines(src_dir / f"{DATASET}.test.inter")
    keep = {line.split("\t", 1)[0] for line in test[1 : max_rows + 1] if line}
    for name in sorted(inter):
      lines = _read_lines(src_dir / name)
      rows = [line for line in lines[1:] if line and line.split("\t", 1)[0] in keep]
      (dst / name).write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
  return dst


def longest_history(folder: Path) -> int:
  """RecBole cuts token_seq fields to `seq_len` by keeping the FIRST items, which would drop
  the most recent ones; so histories must already fit max_len (UniSRec caps them at 50)."""
  longest = 0
  for p in PARTS:
    for line in _read_lines(folder / f"{DATASET}.{p}.inter")[1:]:
      if line:
        longest = max(longest, len(line.split("\t")[1].split()))
  return longest


def recbole_config(args, data_path: Path, work: Path) -> dict:
  """Benchmark-file SASRec with CE over the full catalogue, CPU, full-ranking Recall/NDCG@10."""
  return {
    "data_path": str(data_path),
    "benchmark_filename": list(PARTS),
    "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
    "alias_of_item_id": ["item_id_list"],
    "MAX_ITEM_LIST_LENGTH": args.max_len,
    "hidden_size": args.hidden,
    "n_layers": args.layers,
    "n_heads": args.heads,
    "inner_size": args.inner,
    "hidden_dropout_prob": args.dropout,
    "attn_dropout_prob": args.dropout,
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "epochs": args.epochs,
    "train_batch_size": args.batch,
    "eval_batch_size": args.eval_batch,
    "learning_rate": args.lr,
    "learner": "adam",
    "clip_grad_norm": None,
    "eval_args": {
      "split": {"LS": "valid_and_test"},
      "order": "TO",
      "mode": "full",
      "group_by": "user",
    },
    "metrics": ["Recall", "NDCG"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    # No validation or early stopping: this script drives the epochs itself.
    "eval_step": 0,
    "stopping_step": 10**9,
    "gpu_id": "",
    "use_gpu": False,
    "worker": 0,
    "show_progress": False,
    "seed": args.seed,
    "reproducibility": True,
    "state": "WARNING",
    "checkpoint_dir": str(work / "saved"),
  }


def run(args, work: Path) -> dict:
  # Imported here so that xdkt_sasrec.py can import prepare_data without recbole installed.
  # pylint: disable=import-outside-toplevel
  import torch
  from recbole.config import Config
  from recbole.data import create_dataset, data_preparation
  from recbole.utils import get_model, get_trainer, init_seed

  folder = prepare_data(args.data_dir, str(work / "data"), args.max_rows)
  longest = longest_history(folder)
  if longest > args.max_len:
    raise SystemExit(f"--max-len {args.max_len} < longest history {longest} in the files")
  os.chdir(work)  # RecBole writes log_tensorboard/ and saved/ under the working directory
  sys.argv = sys.argv[:1]  # Config would also read `--key=value` flags as RecBole settings
  config = Config(
    model="SASRec", dataset=DATASET, config_dict=recbole_config(args, folder.parent, work)
  )
  init_seed(config["seed"], config["reproducibility"])
  dataset = create_dataset(config)
  train_data, _, test_data = data_preparation(config, dataset)
  init_seed(config["seed"], config["reproducibility"])
  model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
  trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
  trainer.eval_collector.data_collect(train_data)  # as fit() does before its first epoch

  epoch_s, losses = [], []
  for epoch in range(args.epochs):
    t = time.perf_counter()
    losses.append(float(trainer._train_epoch(train_data, epoch, show_progress=False)))
    epoch_s.append(time.perf_counter() - t)
    print(
      f"recbole: epoch {epoch} {epoch_s[-1]:.2f} s, loss sum {losses[-1]:.4f}",
      file=sys.stderr,
      flush=True,
    )

  evals = []
  for _ in range(2):
    t = time.perf_counter()
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    evals.append(time.perf_counter() - t)
  return {
    "impl": "recbole",
    "train_s_per_epoch": sum(epoch_s) / len(epoch_s),
    "train_examples": len(train_data._dataset),
    "eval_s": evals[1],
    "eval_first_s": evals[0],
    "recall@10": float(result["recall@10"]),
    "ndcg@10": float(result["ndcg@10"]),
    "epochs": args.epochs,
    "epoch_s": epoch_s,
    "loss_sum_per_epoch": losses,
    "steps_per_epoch": len(train_data),
    "batch": args.batch,
    "test_examples": len(test_data._dataset),
    "n_items": int(dataset.item_num) - 1,
    "torch_threads": torch.get_num_threads(),
    "torch": torch.__version__,
    "max_rows": args.max_rows,
    "exclude_history": False,
  }


def main():
  args = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args()
  # torch >= 2.6 defaults torch.load to weights_only, which RecBole 1.2.1's loaders predate.
  os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
  cwd = os.getcwd()
  with tempfile.TemporaryDirectory(prefix="recbole_sasrec_") as work:
    try:
      out = run(args, Path(work))
    finally:
      os.chdir(cwd)
  print(json.dumps(out), flush=True)


if __name__ == "__main__":
  main()
