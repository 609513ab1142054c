"""The embedded default: a seeded synthetic cross-domain world (Books → Movies), no files needed.

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
  c.protocol = "cold_start"
  c.protocol_k = 1
  c.lock()
  return c
