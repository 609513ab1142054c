"""Amazon 2014 5-core Beauty, Sports & Outdoors, Toys & Games: multi-domain (N = 3).

Reads ../shared/data/amazon14_beauty_sports_toys (or $XDKT_SHARED_DATA/...).
  xdkt run --config=configs/amazon14_beauty_sports_toys.py --workdir=runs/bst
Every domain is ranked in turn with the other two as its sources (leave-one-out per domain;
no domain's held-out items train anywhere): runs/bst/targets/<domain>/ holds each target's
recommend / evaluate / report, runs/bst/results.json and report.md the summary.
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "recbole"
  c.data.path = str(common.shared_data_dir() / "amazon14_beauty_sports_toys")
  c.data.domains = "Beauty,Sports,Toys"
  c.data.max_text_len = 32         # item text is ~5 keywords
  c.protocol = "multi_domain"
  c.lock()
  return c
