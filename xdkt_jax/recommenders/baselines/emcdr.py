"""`emcdr` (Man et al., IJCAI 2017): embed each domain separately, then learn a map from
source user factors to target user factors on the users present in both trainings.

Stages: (1) BPR-MF on the target training rows, (2) BPR-MF on the source training rows (all
sources as one catalogue of global source ids), (3) the mapping f: p_source → p_target on
overlapping training users, either `linear` (closed-form ridge, exact and seed-free) or `mlp`
(one tanh hidden layer, as in the paper, trained with adam on MSE).

At score time a user with fewer than `cold_below` target training rows who has a source
factor gets f(p_source): their own target factor is learnt from too little to trust.  Others
use their target factor, or the bpr_mf fold-in / popularity fallback.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from xdkt_jax.recommenders.baselines import common, mf

DEFAULTS = dict(
  mf.DEFAULTS,
  mapping="mlp",
  map_min_rows=3,
  cold_below=3,
  map_l2=1e-2,
  map_hidden=64,
  map_steps=500,
  map_lr=1e-2,
)
MAPPINGS = ("linear", "mlp")


class MapMLP(nn.Module):
  hidden: int
  out: int

  @nn.compact
  def __call__(self, x_BxD):
    return nn.Dense(self.out)(jnp.tanh(nn.Dense(self.hidden)(x_BxD)))


def fit_linear(x, y, l2: float):
  """Ridge with an unpenalised intercept: returns f(x) = x W + c."""
  mx, my = x.mean(0), y.mean(0)
  xc, yc = x - mx, y - my
  w = np.linalg.solve(xc.T @ xc + l2 * len(x) * np.eye(x.shape[1]), xc.T @ yc)
  c = my - mx @ w
  return lambda z: (np.asarray(z, np.float64) @ w + c).astype(np.float32)


def fit_mlp(x, y, o):
  """Full-batch adam on the mean squared error; deterministic in o.seed."""
  model = MapMLP(int(o.map_hidden), y.shape[1])
  params = model.init(jax.random.key(int(o.seed) + 1), jnp.zeros((1, x.shape[1])))
  tx = optax.adamw(float(o.map_lr), weight_decay=float(o.map_l2))
  xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

  def loss(p):
    return jnp.mean(jnp.sum((model.apply(p, xj) - yj) ** 2, -1))

  @jax.jit
  def run(p):
    def step(carry, _):
      p, s = carry
      g = jax.grad(loss)(p)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=int(o.map_steps))
    return p

  params = run(params)
  return lambda z: np.asarray(model.apply(params, jnp.asarray(z, jnp.float32)), np.float32)


@dataclasses.dataclass
class EMCDR:
  train: common.TrainData
  target_mf: mf.MFModel
  source_user: np.ndarray  # [n_users, D] source factors
  source_item: np.ndarray  # [n_source_items, D]
  source_known: np.ndarray  # [n_users] bool
  n_target_rows: np.ndarray  # [n_users] target training rows (distinct items)
  mapping: object  # [B, D] source factors -> [B, D] target factors
  cold_below: int

  def score(self, batch) -> np.ndarray:
    u = np.asarray(batch["user"])
    p, has = self.target_mf.user_factors(batch)
    fold, n_src = common.mean_rows(self.source_item, batch["src_hist"], batch["src_mask"])
    ps = np.where(self.source_known[u][:, None], self.source_user[u], fold)
    has_src = self.source_known[u] | (n_src > 0)
    cold = (self.n_target_rows[u] < self.cold_below) & has_src
    if cold.any():
      p = p.copy()
      p[cold] = self.mapping(ps[cold])
    m = self.target_mf
    return mf.scores_or_pop(p, has | cold, m.item, m.bias, self.train)


def fit(ds, split, *, target: str, cfg=None) -> EMCDR:
  o = common.options(cfg, DEFAULTS, "emcdr")
  if o.mapping not in MAPPINGS:
    raise ValueError(f"emcdr: mapping must be one of {MAPPINGS}, got {o.mapping!r}")
  mf_o = common.options(
    {k: v for k, v in vars(o).items() if k in mf.DEFAULTS}, mf.DEFAULTS, "emcdr"
  )
  td = common.train_data(ds, split, target, consumer="emcdr")
  if td.source.nnz == 0:
    raise ValueError(
      f"emcdr: the split ({split.protocol}) has no source training rows; "
      "it needs a source domain to map from"
    )
  tmf = mf.fit_bpr_mf(ds, split, target=target, cfg=vars(mf_o))
  sc = td.source.tocoo()
  lo, hi = td.source_block(sc.col)
  sp_, _ = mf.train_bpr(
    sc.row,
    sc.col,
    lo,
    hi,
    np.ones(len(sc.row)),
    n_users=td.n_users,
    n_items=td.source.shape[1],
    o=mf_o,
  )
  n_t = np.diff(td.target.indptr)
  s_known = np.diff(td.source.indptr) > 0
  both = np.nonzero((n_t >= int(o.map_min_rows)) & s_known)[0]
  if len(both) < 2:
    raise ValueError(
      f"emcdr: only {len(both)} users have >= {o.map_min_rows} target rows "
      "and source rows; cannot learn the mapping"
    )
  x, y = sp_["user"][both], tmf.user[both]
  mapping = fit_linear(x, y, float(o.map_l2)) if o.mapping == "linear" else fit_mlp(x, y, o)
  return EMCDR(td, tmf, sp_["user"], sp_["item"], s_known, n_t, mapping, int(o.cold_below))
