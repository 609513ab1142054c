"""Amazon 2018 Arts, Crafts & Sewing → Office Products (RecBole atomic files + users.tsv).

Reads ../shared/data/amazon_art_office (or $XDKT_SHARED_DATA/amazon_art_office).
Timestamps there are positions in a mixed sequence: cross-domain order is NOT real.

MiniLM domain adaptation on Art + Office text, once (benchmarks/RESULTS.md):
  xdkt run --config=configs/amazon_art_office.py --workdir=runs/art_office_adapt \
      --config.stages=data,adapt --config.adapt.head_warmup_steps=400 \
      --config.adapt.steps=300 --config.adapt.lr=5e-5 --config.adapt.heldout_frac=0.02

The whole method, warm, reusing that adapted encoder, with neighbourhood fusion (every
sequential method, the control included, scores z(model) + w·z(item-kNN), w picked on the
valid users; the report also gives each fused model's rows without fusion):
  xdkt run --config=configs/amazon_art_office.py --workdir=runs/aow \
      --config.encoder.init_from=runs/art_office_adapt/adapt/hf --config.adapt.steps=0 \
      --config.recommend.methods=xdkt,target_only,sasrec,emcdr,cmf,text_knn,pop,itemknn,bpr_mf \
      --config.recommend.neighbour_blend=0.03,0.1,0.3,1,3

Cold start k = 0, 1, 3 (`python launch/sweep.py --config=<this file>` prints the three
commands), each as above plus
      --config.protocol=cold_start --config.protocol_k=K \
      --config.recommend.methods=xdkt,target_only,emcdr,cmf,text_knn,pop,itemknn

Settings chosen on the valid split (the selections and the history of each: benchmarks/
RESULTS.md, "Amazon Art → Office" and "Where the shipped settings came from"):
  * epochs: every sequential run keeps its best epoch on the 577 valid users (early stopping,
    ceiling 20);
  * recommend.sequential.dropout = 0.5, picked by launch/tune.py over get_tune_grid() on the
    control's valid NDCG@10:
      python launch/tune.py --config=configs/amazon_art_office.py --root=runs/tune_aow \
          --method=target_only --run --config.encoder.init_from=runs/art_office_adapt/adapt/hf \
          --config.adapt.steps=0 --config.recommend.seeds=1
  * recommend.xdkt.source_repr stays `fused` (common.py): not re-selected on valid for this pair;
  * the neighbourhood-fusion weight, picked per run on valid (recommend.neighbour_blend).
"""

from configs import common


def get_config():
  c = common.base_config()
  c.data.source = "recbole"
  c.data.path = str(common.shared_data_dir() / "amazon_art_office")
  c.data.source_domains = "Art"
  c.data.target_domain = "Office"
  c.data.real_timestamps = False
  c.data.kcore = 0  # keep the dataset's own user split intact
  c.data.max_text_len = 64
  c.protocol = "warm"
  # Real category paths are long and shared words are many: an entity must name >= 5 items
  # in each domain to count as bridging knowledge.
  c.knowledge.min_domain_df = 5
  c.recommend.sequential.epochs = 20  # the ceiling of early stopping on valid
  c.recommend.sequential.select_epoch = True
  c.recommend.sequential.patience = 3
  c.recommend.sequential.dropout = 0.5  # picked on valid (see the docstring)
  c.lock()
  return c


def get_sweep():
  """Cold-start Art → Office at k = 0, 1, 3 (launch/sweep.py expands it)."""
  return {"protocol": ["cold_start"], "protocol_k": [0, 1, 3]}


def get_tune_grid():
  """The shared recommender setting launch/tune.py picks on the valid split (selected by the
  control, target_only: the conservative choice for a transfer claim)."""
  return {"recommend.sequential.dropout": [0.2, 0.5]}
