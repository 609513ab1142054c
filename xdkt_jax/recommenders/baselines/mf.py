"""Matrix factorisation with BPR in JAX: `bpr_mf` (target only) and `cmf` (collective MF).

One trainer serves both: items live in one table (for `cmf`, the target catalogue followed by
the global source catalogue), and each positive row draws its sampled negative uniformly from
its OWN domain's block [lo, hi), so the loss never asks "movie vs book".  The whole run
(epochs × steps) is one `lax.scan` under one `jit`, with per-step negatives from
`fold_in(key, step)`, so a fit is bit-reproducible from its seed.

Users without a trained factor (no training row at all) are folded in at score time: their
factor is the mean of the item factors of their input items (`hist`, and for `cmf` also
`src_hist`).  A user with no trained factor and no input is scored by training popularity:
the learned item bias alone ranks worse than popularity, because BPR also stores
popularity in a shared direction of the factors.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xdkt_jax.recommenders.baselines import common

# Tuned on the synthetic world's warm VALID split: this data is small per user, so BPR
# overfits without strong L2; big batches keep a fit cheap.
DEFAULTS = dict(seed=0, dim=32, epochs=40, batch_size=4096, lr=1e-2, l2=3e-2, init_std=0.1)
CMF_DEFAULTS = dict(DEFAULTS, source_weight=1.0)


def bpr_loss(params, u_B, i_B, j_B, w_B, *, l2: float):
  """Weighted mean of -log σ(x_ui - x_uj) + l2 (|p_u|² + |q_i|² + |q_j|²) over the batch."""
  p, qi, qj = params["user"][u_B], params["item"][i_B], params["item"][j_B]
  b = params["bias"]
  x = jnp.sum(p * (qi - qj), -1) + b[i_B] - b[j_B]
  reg = l2 * (jnp.sum(p * p, -1) + jnp.sum(qi * qi, -1) + jnp.sum(qj * qj, -1))
  return jnp.sum(w_B * (-jax.nn.log_sigmoid(x) + reg)) / jnp.sum(w_B)


@functools.lru_cache(maxsize=8)
def _runner(lr: float, l2: float):
  """A jitted whole-fit function per (lr, l2); cached so refits of one shape compile once."""
  tx = optax.adam(lr)
  grad = jax.value_and_grad(functools.partial(bpr_loss, l2=l2))

  @jax.jit
  def run(params, idx_SxB, users, items, lo, hi, w, key):
    def step(carry, xs):
      params, opt_state = carry
      t, idx = xs
      j = jax.random.randint(jax.random.fold_in(key, t), idx.shape, lo[idx], hi[idx])
      loss, g = grad(params, users[idx], items[idx], j, w[idx])
      upd, opt_state = tx.update(g, opt_state, params)
      return (optax.apply_updates(params, upd), opt_state), loss

    steps = jnp.arange(idx_SxB.shape[0])
    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), (steps, idx_SxB))
    return params, losses

  return run


def train_bpr(users, items, lo, hi, weight, *, n_users: int, n_items: int, o):
  """BPR-MF over positive rows (users[r], items[r]); negatives from [lo[r], hi[r]).

  Returns ({'user' [n_users, dim], 'item' [n_items, dim], 'bias' [n_items]} as numpy,
  per-step losses).  Epochs are shuffled with numpy from the seed; the remainder of each
  epoch is dropped (every row is still seen across epochs).
  """
  n = len(users)
  if n == 0:
    raise ValueError("bpr: no training rows in the domain(s) this model trains on")
  bsz = min(int(o.batch_size), n)
  spe = n // bsz
  rng = np.random.default_rng([int(o.seed), 0xB9])
  idx = (
    np.stack([rng.permutation(n)[: spe * bsz].reshape(spe, bsz) for _ in range(int(o.epochs))])
    .reshape(-1, bsz)
    .astype(np.int32)
  )
  key = jax.random.key(int(o.seed))
  ku, ki, kt = jax.random.split(key, 3)
  std, d = float(o.init_std), int(o.dim)
  params = {
    "user": std * jax.random.normal(ku, (n_users, d), jnp.float32),
    "item": std * jax.random.normal(ki, (n_items, d), jnp.float32),
    "bias": jnp.zeros((n_items,), jnp.float32),
  }
  as_i32 = lambda a: jnp.asarray(np.asarray(a, np.int32))
  params, losses = _runner(float(o.lr), float(o.l2))(
    params,
    jnp.asarray(idx),
    as_i32(users),
    as_i32(items),
    as_i32(lo),
    as_i32(hi),
    jnp.asarray(np.asarray(weight, np.float32)),
    kt,
  )
  losses = np.asarray(losses)
  if not np.isfinite(losses).all():
    raise FloatingPointError(f"bpr: non-finite loss at step {int(np.argmin(np.isfinite(losses)))}")
  return jax.tree.map(np.asarray, params), losses


@dataclasses.dataclass
class MFModel:
  """score = p_u · q_j + b_j over the target catalogue (the first n_items rows of `item`).

  p_u is the trained factor when the user had training rows (`known`), else the fold-in:
  mean factor of the input items (target hist, plus src_hist when `fold_source`).
  """

  train: common.TrainData
  user: np.ndarray  # [n_users, D]
  item: np.ndarray  # [n_items (+ n_source_items for cmf), D]
  bias: np.ndarray  # [same]
  known: np.ndarray  # [n_users] bool
  fold_source: bool
  losses: np.ndarray

  def user_factors(self, batch) -> tuple[np.ndarray, np.ndarray]:
    """([B, D] factors, [B] bool: the row has a factor at all)."""
    n = self.train.n_items
    u = np.asarray(batch["user"])
    mask = np.asarray(batch["hist_mask"]).astype(np.float32)
    ids = np.asarray(batch["hist"])
    if self.fold_source:
      ids = np.concatenate([ids, np.asarray(batch["src_hist"]) + n], 1)
      mask = np.concatenate([mask, np.asarray(batch["src_mask"]).astype(np.float32)], 1)
    fold, n_in = common.mean_rows(self.item, ids, mask)
    known = self.known[u]
    return np.where(known[:, None], self.user[u], fold), known | (n_in > 0)

  def score(self, batch) -> np.ndarray:
    p, has = self.user_factors(batch)
    return scores_or_pop(p, has, self.item, self.bias, self.train)


def scores_or_pop(p_BxD, has_B, item, bias, train: common.TrainData) -> np.ndarray:
  """p·q + b over the target catalogue; rows without a user factor get training popularity."""
  n = train.n_items
  s = (p_BxD @ item[:n].T + bias[:n]).astype(np.float32)
  s[~has_B] = train.pop
  return s


def fit_bpr_mf(ds, split, *, target: str, cfg=None) -> MFModel:
  o = common.options(cfg, DEFAULTS, "bpr_mf")
  td = common.train_data(ds, split, target, consumer="bpr_mf")
  u, i = td.pairs()
  n = td.n_items
  params, losses = train_bpr(
    u, i, np.zeros_like(i), np.full_like(i, n), np.ones(len(u)), n_users=td.n_users, n_items=n, o=o
  )
  known = np.diff(td.target.indptr) > 0
  return MFModel(td, params["user"], params["item"], params["bias"], known, False, losses)


def fit_cmf(ds, split, *, target: str, cfg=None) -> MFModel:
  """Collective MF: ONE user factor shared by the target and every source domain, trained by a
  joint BPR over both domains' training rows.  A cold user (no target rows) still has a
  factor learnt from their source rows — that is the transfer.  With no source domain in the
  split (in_domain, multi_domain) it is exactly a target-only BPR-MF."""
  o = common.options(cfg, CMF_DEFAULTS, "cmf")
  td = common.train_data(ds, split, target, consumer="cmf")
  n, ns = td.n_items, td.source.shape[1]
  tu, ti = td.pairs()
  if len(tu) == 0:  # e.g. new_domain: target item factors would stay at their random init
    raise ValueError("cmf: no training rows in the target domain (use text_knn for new_domain)")
  sc = td.source.tocoo()
  users = np.concatenate([tu, sc.row])
  items = np.concatenate([ti, sc.col + n])
  slo, shi = td.source_block(sc.col)
  lo = np.concatenate([np.zeros(len(tu), np.int64), slo + n])
  hi = np.concatenate([np.full(len(tu), n), shi + n])
  w = np.concatenate([np.ones(len(tu)), np.full(len(sc.row), float(o.source_weight))])
  params, losses = train_bpr(users, items, lo, hi, w, n_users=td.n_users, n_items=n + ns, o=o)
  known = (np.diff(td.target.indptr) > 0) | (np.diff(td.source.indptr) > 0)
  return MFModel(td, params["user"], params["item"], params["bias"], known, ns > 0, losses)
