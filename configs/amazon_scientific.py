"""Amazon 2018 Industrial & Scientific in the UniSRec downstream format (given split kept).

Reads ../shared/data/amazon_scientific (or $XDKT_SHARED_DATA/amazon_scientific).
  xdkt run --config=configs/amazon_scientific.py --workdir=runs/scientific
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "unisrec"
  c.data.path = str(common.shared_data_dir() / "amazon_scientific")
  c.data.domains = "Scientific"
  c.data.target_domain = "Scientific"
  c.data.kcore = 0                 # already 5-core; the given split is kept exactly
  c.data.max_text_len = 64
  c.protocol = "in_domain"
  c.lock()
  return c
