"""Any folder of RecBole atomic files (<D>.inter, <D>.item, optional <D>.user):

  xdkt run --config=configs/recbole.py --config.data.path=DIR \
      --config.data.source_domains=A,B --config.data.target_domain=C \
      --config.protocol=cold_start --config.protocol_k=1 --workdir=runs/mine
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "recbole"
  c.protocol = "warm"
  c.lock()
  return c
