"""The runlocal variant: every stage of the method on a tiny synthetic world in seconds, with a
small scratch encoder (no pretrained weights).  For tests and for trying a change end to end;
its numbers mean nothing.

  xdkt run --config=configs/tiny.py --workdir=/tmp/xdkt_tiny
"""

from configs import default


def get_config():
  c = default.get_config()
  with c.unlocked():
    c.data.max_text_len = 24
    c.data.synthetic.n_users = 300
    c.data.synthetic.items_per_domain = 120
    c.data.synthetic.interactions = 6000
    c.encoder.init_from = ""
    c.encoder.preset = "tiny"
    for stage in (c.pretrain, c.adapt):
      stage.steps = 2
      stage.batch_size = 16
      stage.heldout_frac = 0.2
    c.adapt.head_warmup_steps = 0
    c.knowledge.steps = 2
    c.knowledge.batch_size = 16
    c.recommend.seeds = 2
    c.recommend.sequential.steps = 2
    c.recommend.sequential.batch = 16
    c.ckpt.every_steps = 1000
    c.progress = False
  return c
