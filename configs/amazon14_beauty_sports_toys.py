"""Amazon 2014 5-core Beauty, Sports & Outdoors, Toys & Games: multi-domain (N = 3).

Reads ../shared/data/amazon14_beauty_sports_toys (or $XDKT_SHARED_DATA/...).
  xdkt run --config=configs/amazon14_beauty_sports_toys.py --workdir=runs/bst
Every domain is ranked in turn with the other two as its sources (leave-one-out per domain;
no domain's held-out items train anywhere): runs/bst/targets/<domain>/ holds each target's
recommend / evaluate / report, runs/bst/results.json and report.md the summary.

The whole dataset (77k users, 42k items, 662k interactions) takes hours on a 2-core CPU.  To
try it there, keep the 5k users active in >= 2 domains plus 1k others, each whole
(benchmarks/RESULTS.md has this run):
  xdkt run --config=configs/amazon14_beauty_sports_toys.py --workdir=runs/bst6k \
      --config.data.max_users=6000 --config.data.subsample=overlap_first
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "recbole"
  c.data.path = str(common.shared_data_dir() / "amazon14_beauty_sports_toys")
  c.data.domains = "Beauty,Sports,Toys"
  c.data.max_text_len = 32  # item text is ~5 keywords
  c.protocol = "multi_domain"
  # MiniLM ships without an MLM head: fit one first (encoder frozen), so L_t starts from a
  # trained head and its "before" perplexity measures the pre-trained encoder.
  c.adapt.head_warmup_steps = 100
  c.lock()
  return c
