"""Interactions drawn from the latents: history lengths, one global timeline per user, and
per-domain item choices (softmax over taste, with momentum and ratings)."""

from __future__ import annotations

import math

import numpy as np

from xdkt_jax.data.schema import Interactions
from xdkt_jax.data.synthetic.params import Params
from xdkt_jax.data.synthetic.world import DomainLatents, World

_BLOCK = 32  # items per block of the two-level sampler


def sample_grouped(
  logits_fn,
  counts: np.ndarray,
  n_items: int,
  rng: np.random.Generator,
  chunk_elems: int = 1 << 22,
  block: int = _BLOCK,
) -> np.ndarray:
  """Draw counts[g] items from softmax(logits_fn(lo, hi)[g - lo]) for every group g.

  Inverse-CDF sampling per chunk of groups: exp the logits once, then every draw of the chunk
  binary-searches its own row, vectorised over draws.  Cost is O(groups * items + draws *
  log items), versus O(draws * items) for Gumbel-max.  When draws are few per group (many
  users, short histories) a full per-row cumsum dominates, so the CDF is then two-level:
  block sums are searched first and only the chosen block is cumsummed per draw.
  """
  out = np.empty(int(counts.sum()), np.int32)
  starts = np.concatenate([[0], np.cumsum(counts)])
  n_blk = -(-n_items // block)
  width = n_blk * block
  step = max(1, chunk_elems // width)
  for lo in range(0, len(counts), step):
    hi = min(lo + step, len(counts))
    lg = logits_fn(lo, hi).astype(np.float32, copy=False)
    lg -= lg.max(axis=1, keepdims=True)
    np.exp(lg, out=lg)
    if lg.shape[1] != width:  # zero-probability padding items
      lg = np.pad(lg[:, :n_items], ((0, 0), (0, width - n_items)))
    g = np.repeat(np.arange(hi - lo), counts[lo:hi])
    u = rng.random(len(g), dtype=np.float32)
    if len(g) * block >= lg.size:  # many draws per group: full CDF
      cdf = np.cumsum(lg, axis=1, out=lg)
      idx = _search_rows(cdf, g, u * cdf[g, -1])
    else:
      blocks = lg.reshape(hi - lo, n_blk, block)
      bcdf = np.cumsum(blocks.sum(axis=2), axis=1)  # [groups, n_blk]
      target = u * bcdf[g, -1]
      b = _search_rows(bcdf, g, target)
      before = np.where(b > 0, bcdf[g, np.maximum(b - 1, 0)], 0)
      within = np.cumsum(blocks[g, np.minimum(b, n_blk - 1)], axis=1)
      pos = (within <= (target - before)[:, None]).sum(axis=1)
      idx = b * block + np.minimum(pos, block - 1)  # float32 block sums vs cumsum rounding
    out[starts[lo] : starts[hi]] = np.minimum(idx, n_items - 1)
  return out


def _search_rows(cdf: np.ndarray, row: np.ndarray, target: np.ndarray) -> np.ndarray:
  """For each draw, the first column j with cdf[row, j] > target (vectorised binary search)."""
  flat = cdf.ravel()
  base = row.astype(np.int64) * cdf.shape[1]
  left = np.zeros(len(row), np.int64)
  right = np.full(len(row), cdf.shape[1] - 1, np.int64)
  for _ in range(max(1, int(cdf.shape[1]).bit_length())):
    mid = (left + right) >> 1
    go_right = flat[base + mid] <= target
    left = np.where(go_right, mid + 1, left)
    right = np.where(go_right, right, mid)
  return left


def sample_within(cat: np.ndarray, lat: DomainLatents, rng: np.random.Generator) -> np.ndarray:
  """One item per row from category cat[row], by popularity alone (momentum steps)."""
  K = int(lat.category.max()) + 1
  order = np.argsort(lat.category, kind="stable")
  pop = np.exp(lat.log_pop[order].astype(np.float64))
  sorted_cat = lat.category[order]
  cdf = np.cumsum(pop)
  first = np.searchsorted(sorted_cat, np.arange(K))
  last = np.searchsorted(sorted_cat, np.arange(K), side="right")
  base = np.concatenate([[0.0], cdf])[first]  # mass before each category
  total = cdf[last - 1] - base
  cdf = (cdf - base[sorted_cat]) / total[sorted_cat] + sorted_cat  # row-offset per category
  pos = np.searchsorted(cdf, cat + rng.random(len(cat)), side="right")
  pos = np.clip(pos, first[cat], last[cat] - 1)
  return order[pos].astype(np.int32)


def lengths(p: Params, w: World, rng: np.random.Generator):
  """(user, domain, length) per active slot, sorted by user; lengths >= 3, sum = target."""
  su, sd = np.nonzero(w.user_domains)
  n_slots = len(su)
  extra_total = p.interactions - 3 * n_slots
  if extra_total < 0:
    raise ValueError(
      f"synthetic: interactions={p.interactions} < 3 per active (user, domain) "
      f"slot ({n_slots} slots); raise interactions or lower n_users"
    )
  # Heavy users are heavy everywhere (user factor) with per-domain variation (slot factor).
  act = rng.lognormal(0.0, 0.8, size=p.n_users)[su] * rng.lognormal(0.0, 0.6, size=n_slots)
  x = act / act.sum() * extra_total
  extra = np.floor(x).astype(np.int64)
  short = extra_total - int(extra.sum())
  if short:
    extra[np.argpartition(-(x - extra), short - 1)[:short]] += 1
  return su, sd, 3 + extra


def timeline(p: Params, su, sd, slen, rng: np.random.Generator):
  """Rows of all users' cross-domain timelines: user, domain, phase, timestamp (sorted)."""
  n = int(slen.sum())
  row_user = np.repeat(su, slen)
  row_dom = np.repeat(sd, slen)
  # Interleave the user's domains at random along their timeline.
  # Users are sorted already; the key stays inside [2u, 2u + 1] even when rounding.
  row_dom = row_dom[np.argsort(2.0 * row_user + rng.random(n))]
  n_u = np.bincount(su, weights=slen, minlength=p.n_users).astype(np.int64)
  u_start = np.concatenate([[0], np.cumsum(n_u)[:-1]])
  pos = np.arange(n) - u_start[row_user]
  phase = (pos * p.n_phases) // n_u[row_user]
  sigma = 1.0
  gaps = np.maximum(
    1.0, np.round(rng.lognormal(math.log(p.mean_gap_s) - sigma**2 / 2, sigma, size=n))
  )
  cs = np.cumsum(gaps)
  first = u_start[n_u > 0]
  rel = cs - np.repeat(cs[first] - gaps[first], n_u[n_u > 0])
  span = 2 * 365 * 86_400.0
  t0 = p.start_time + np.floor(rng.random(p.n_users) * span)
  return row_user, row_dom, phase, t0[row_user] + rel


def sample_domain(
  p: Params, w: World, name: str, user: np.ndarray, phase: np.ndarray, rng: np.random.Generator
) -> Interactions:
  """Items (and ratings) for one domain's rows, already sorted by user then time."""
  lat = w.domains[name]
  n_items = len(lat.category)
  key = user.astype(np.int64) * p.n_phases + phase
  new = np.concatenate([[True], key[1:] != key[:-1]])
  g_start = np.flatnonzero(new)
  counts = np.diff(np.concatenate([g_start, [len(key)]]))
  g_taste = w.taste_at(user[g_start], phase[g_start])
  # logits = [taste, 1] @ [tw * vec; log_pop] in one matmul (a separate broadcast add cost
  # more than the matmul), padded to the sampler's block width with impossible items.
  block = _BLOCK
  width = -(-n_items // block) * block
  d = g_taste.shape[1]
  rhs = np.zeros((d + 1, width), np.float32)
  rhs[:d, :n_items] = p.taste_weight * lat.vec.T
  rhs[d] = -1e30
  rhs[d, :n_items] = lat.log_pop
  lhs = np.concatenate([g_taste, np.ones((len(g_taste), 1), np.float32)], axis=1)

  def logits(lo, hi):
    return lhs[lo:hi] @ rhs

  item = sample_grouped(logits, counts, n_items, rng, block=block)
  if p.momentum > 0:
    # Momentum: a step may repeat the category of the last taste-driven step of this user in
    # this domain; the anchor is found with a running max, so no Python loop over steps.
    first_of_user = np.concatenate([[True], user[1:] != user[:-1]])
    rep = (rng.random(len(item)) < p.momentum) & ~first_of_user
    anchor = np.maximum.accumulate(np.where(rep, 0, np.arange(len(item))))
    idx = np.flatnonzero(rep)
    item[idx] = sample_within(lat.category[item[anchor[idx]]], lat, rng)
  rating = None
  if p.ratings:
    taste_row = np.repeat(g_taste, counts, axis=0)
    aff = np.einsum("nd,nd->n", taste_row, lat.vec[item])
    z = (aff - aff.mean()) / (aff.std() + 1e-6)
    rating = np.clip(np.round(3.6 + 0.9 * z + 0.7 * rng.standard_normal(len(z))), 1, 5)
    rating = rating.astype(np.float32)
  return Interactions(user=user.astype(np.int32), item=item, order=None, rating=rating)
