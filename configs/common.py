"""Shared config pieces.  Every experiment config is `get_config()` → a locked ConfigDict."""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections as mlc

from xdkt_jax.train.mesh import DEFAULT_RULES


def shared_data_dir() -> Path:
  """`../shared/data` beside the repository (or $XDKT_SHARED_DATA).  Only the configs that
  name a real dataset use it; the installed product runs without it (synthetic default)."""
  env = os.environ.get("XDKT_SHARED_DATA")
  if env:
    return Path(env)
  return Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic_config() -> mlc.ConfigDict:
  """The synthetic world's knobs (defaults and meanings: xdkt_jax/data/synthetic/params.py)."""
  from xdkt_jax.data import synthetic  # pylint: disable=import-outside-toplevel

  c = synthetic.default_config()
  c.domains = ",".join(c.domains)
  return c


def data_config() -> mlc.ConfigDict:
  return mlc.ConfigDict(
    dict(
      source="synthetic",  # synthetic | recbole | unisrec | amazon | tfds
      path="",  # folder of the files (or the TFDS data_dir)
      domains="",  # comma-separated; '' = every domain in the folder
      source_domains="",  # comma-separated; with target_domain, picks the domains
      target_domain="",  # '' = the last domain
      on_unknown_item="error",  # error | drop (counted)
      real_timestamps=False,  # order keys are real times comparable across domains
      use_cross_domain_order=False,
      use_given_user_split=True,  # users.tsv split, where the data ships one
      text_fields="",  # comma-separated item fields; '' = all
      dedup="first",  # first | last | all
      drop_items_without_text=True,
      kcore=0,
      user_k=-1,
      item_k=-1,
      kcore_prune_catalogue=True,
      # Keep at most max_users users (0 = all), whole, in every domain: try a large dataset
      # on a laptop.  subsample: uniform | overlap_first (multi-domain users first: biased).
      max_users=0,
      subsample="uniform",
      subsample_seed=0,
      tokenize=True,
      tokenizer="minilm",
      max_text_len=64,
      cache_dir="~/.cache/xdkt_jax",
      synthetic=synthetic_config(),
    )
  )


def encoder_config() -> mlc.ConfigDict:
  return mlc.ConfigDict(
    dict(
      init_from="minilm",  # HF folder or alias 'minilm'; '' = from scratch (preset)
      preset="tiny",  # scratch only: tiny | minilm | bert_base | gpt2_small
      family="",  # scratch only: override the preset's family (bert | gpt2)
      hidden_size=0,
      num_layers=0,
      num_heads=0,
      mlp_dim=0,  # scratch only: > 0 overrides
      dropout=-1.0,  # < 0: the checkpoint's / preset's own
      dtype="float32",  # compute dtype; 'bfloat16' on accelerators
      pooling="mean",  # mean | cls | last
    )
  )


def lm_stage_config(steps: int, lr: float) -> mlc.ConfigDict:
  return mlc.ConfigDict(
    dict(
      steps=steps,
      batch_size=32,
      eval_batch_size=64,
      lr=lr,
      warmup_steps=-1,  # -1: 10% of steps
      schedule="cosine",
      weight_decay=0.01,
      grad_accum=1,
      heldout_frac=0.05,
    )
  )


ALL_METHODS = (
  "xdkt,target_only,pop,itemknn,userknn,bpr_mf,sasrec,text_knn,hybrid,emcdr,cmf,unisrec_style"
)


def knowledge_config() -> mlc.ConfigDict:
  """L_k: the knowledge head over the adapted encoder (knowledge/train.py), and which words
  are knowledge (knowledge/entities.py).  The only place these settings get values."""
  return mlc.ConfigDict(
    dict(
      steps=100,
      batch_size=32,
      lr=1e-3,
      warmup_steps=-1,  # -1: 10% of steps
      schedule="cosine",
      weight_decay=0.01,
      dropout=0.1,
      entity_dim=64,
      finetune_encoder=False,  # False: the encoder stays frozen (W_k = W_t + head)
      heldout_frac=0.1,  # items per domain never trained on, for the L_k report
      eval_batch_size=64,
      eval_max_items=2048,  # the L_k report: per domain and part
      entity_mode="predicted",  # predicted (tagger's expected entity embedding) | none
      entity_fields="categories,brand",
      min_df=2,
      min_domain_df=1,
      max_size=2000,
      max_df_frac=0.5,
      cross_domain_only=False,
    )
  )


def sequential_config() -> mlc.ConfigDict:
  """The SASRec-style recommender shared by xdkt, target_only, sasrec and unisrec_style (one
  setting, so the comparison isolates what each adds).  The only place these values are set:
  recommenders/sequential.py requires every key (SETTINGS).  Where they were chosen:
  benchmarks/RESULTS.md ("SASRec defaults"); unisrec_style always uses adaptor 'moe'."""
  return mlc.ConfigDict(
    dict(
      hidden=64,
      layers=2,
      heads=2,
      mlp=128,
      max_len=50,
      dropout=0.2,
      attn_dropout=0.0,
      text_dropout=0.1,
      inner_dropout=True,  # dropout after the FFN activation (original SASRec)
      norm="pre",
      act="relu",  # pre | post layer norm; relu | gelu
      dtype="float32",  # 'bfloat16' on GPU/TPU: the blocks' compute
      lr=3e-3,
      weight_decay=0.0,
      clip_norm=1.0,
      schedule="constant",
      warmup_steps=0,  # | cosine | linear decay
      batch=64,  # PACKED rows of max_len tokens
      epochs=12,
      steps=0,  # steps > 0 overrides epochs
      loss="full_softmax",
      num_negatives=100,
      first_item_loss=True,  # predicting a user's first item (input BOS) counts
      adaptor="whitening",  # whitening | moe: knowledge vectors → item space
      n_experts=8,
      fusion="gate",
      pack=True,  # several users' windows per row (data/windows.py)
      # early stopping on the VALID split, epochs = the ceiling
      select_epoch=False,
      patience=3,
      select_metric="ndcg@10",
    )
  )


def recommend_config() -> mlc.ConfigDict:
  return mlc.ConfigDict(
    dict(
      methods=ALL_METHODS,  # comma-separated, any of the keys of results.json
      seeds=3,  # every trained method runs once per seed 0..seeds-1
      eval_part="test",  # valid | test
      # A tuning run (launch/tune.py): eval_part=valid, and settings that select on valid
      # (early stopping, fusion) are allowed; its report says it is not for reporting.
      tuning=False,
      # Which seen items leave the ranking, the same for every method (xdkt_jax/conventions.py):
      # none | train | all | auto (none where the target ships its split, else all).
      exclude_history="auto",
      eval_batch_size=256,
      workers=1,  # (method, seed) runs at once, in threads (one device only)
      ks="5,10,20,50",
      sequential=sequential_config(),
      # Neighbourhood fusion of every sequential method (recommend.py): candidate weights w of
      # z(model) + w·z(item-kNN), one picked per run on the valid split; "" = off.
      neighbour_blend="",
      # The full method's own terms (models/xdkt.py).
      # align: none | infonce | mmd | mmd_linear | coral | adversarial (weight λ);
      # source_weight μ: the source side alone must predict target items (models/xdkt.py).
      xdkt=mlc.ConfigDict(
        dict(
          align="none",
          align_weight=0.1,
          align_temperature=0.1,
          align_items=256,
          adversarial_lambda=1.0,
          user_agg="mean",
          source_len=50,
          source_repr="fused",
          source_weight=1.0,
        )
      ),
    )
  )


def eval_config() -> mlc.ConfigDict:
  """How numbers are obtained and judged (xdkt_jax/conventions.py, significance.py)."""
  return mlc.ConfigDict(
    dict(
      convention="xdkt",  # xdkt | recbole_seq | recbole_cf: whose ranking rule
      alpha=0.05,  # significant: Holm-corrected p < alpha and CI excludes 0
      n_boot=2000,  # resamples of the two-level (seeds × users) bootstrap
    )
  )


def base_config() -> mlc.ConfigDict:
  c = mlc.ConfigDict()
  c.seed = 0
  c.protocol = "cold_start"
  c.protocol_k = 1
  c.protocol_cold_frac = 0.2
  c.protocol_fraction = 1.0  # target_fraction: share of the target's users whose rows train
  c.data = data_config()
  c.encoder = encoder_config()
  c.pretrain = lm_stage_config(0, 1e-4)  # L_p; 0 steps = the init_from weights are W_p
  c.adapt = lm_stage_config(100, 5e-5)  # L_t on source + target text
  c.adapt.target_ratio = 0.5  # share of each batch from the target domain
  c.adapt.freeze_layers = 0  # freeze the lower N encoder layers
  c.adapt.freeze_embeddings = False
  c.adapt.head_warmup_steps = 0  # fit a missing MLM head first, encoder frozen
  c.adapt.head_lr = 1e-3  # learning rate of that head-only warm-up
  c.mesh = mlc.ConfigDict(dict(data=-1, fsdp=1, model=1))
  c.rules = [list(r) for r in DEFAULT_RULES]
  c.ckpt = mlc.ConfigDict({"every_steps": 200, "keep": 2, "async": True})
  c.log_every = 10
  c.progress = True
  c.multihost = False  # True: jax.distributed.initialize() (pods, SLURM)
  c.knowledge = knowledge_config()  # L_k
  c.recommend = recommend_config()  # L_f, the baselines and the control
  c.eval = eval_config()  # conventions, intervals, tests
  c.stages = "data,pretrain,adapt,extract,recommend,evaluate,report"  # what `xdkt run` runs
  return c
