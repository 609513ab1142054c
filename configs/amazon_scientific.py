"""Amazon 2018 Industrial & Scientific in the UniSRec downstream format (given split kept).

Reads ../shared/data/amazon_scientific (or $XDKT_SHARED_DATA/amazon_scientific).
  xdkt run --config=configs/amazon_scientific.py --workdir=runs/scientific

On the published anchors' footing (RecBole sequential full-sort, no history masked), with the
Art + Office-adapted encoder of configs/amazon_art_office.py and neighbourhood fusion (the
report also gives every fused model's rows without fusion; benchmarks/RESULTS.md):
  xdkt run --config=configs/amazon_scientific.py --workdir=runs/sci \
      --config.encoder.init_from=runs/art_office_adapt/adapt/hf --config.adapt.steps=50 \
      --config.eval.convention=recbole_seq \
      --config.recommend.methods=xdkt,target_only,sasrec,unisrec_style,pop,itemknn \
      --config.recommend.neighbour_blend=0.03,0.1,0.3,1,3
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "unisrec"
  c.data.path = str(common.shared_data_dir() / "amazon_scientific")
  c.data.domains = "Scientific"
  c.data.target_domain = "Scientific"
  c.data.kcore = 0  # already 5-core; the given split is kept exactly
  c.data.max_text_len = 64
  c.protocol = "in_domain"
  # The split ships with the data: by default nothing is masked (recommend.exclude_history=
  # auto → none), the rule of the published anchors on it (VQ-Rec, UniSRec, MISSRec: RecBole's
  # sequential full-sort).  Every sequential run keeps its best valid epoch (ceiling 40).
  c.recommend.sequential.epochs = 40
  c.recommend.sequential.select_epoch = True
  c.recommend.sequential.patience = 3
  c.lock()
  return c
