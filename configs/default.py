"""The embedded default: a seeded synthetic cross-domain world (Books → Movies), no files needed.

Stages today: data → pretrain (0 steps: the MiniLM weights are W_p) → adapt (L_t, 100 steps).

  xdkt run --config=configs/default.py --workdir=runs/default
  xdkt stats --config=configs/default.py --json
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "synthetic"
  c.data.source_domains = "Books"
  c.data.target_domain = "Movies"
  c.data.real_timestamps = True
  c.data.max_text_len = 32         # synthetic titles are ~17 tokens; 64 would be mostly padding
  # MiniLM has no masked-LM head: fit one first (encoder frozen) so "perplexity before
  # adaptation" measures the pretrained encoder rather than a random head.
  c.adapt.head_warmup_steps = 50
  c.adapt.heldout_frac = 0.1       # 100 of 1000 items per domain are never trained on
  c.protocol = "cold_start"
  c.protocol_k = 1
  c.lock()
  return c
