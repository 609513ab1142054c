"""The world's latents: concept and brand vectors, per-domain catalogues and users' tastes.

Each part draws only from its own stream (params.streams), so the latents do not depend on how
many interactions are later sampled from them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from xdkt_jax.data.synthetic.params import Params
from xdkt_jax.data.synthetic.vocab import CONCEPTS, brand_names


@dataclasses.dataclass
class DomainLatents:
  """Hidden attributes of one domain's catalogue; row i is item i."""

  category: np.ndarray  # [n_items] int32, index into World.categories
  brand: np.ndarray  # [n_items] int32, index into World.brands
  vec: np.ndarray  # [n_items, latent_dim] float32
  log_pop: np.ndarray  # [n_items] float32, within-category Zipf log-popularity


@dataclasses.dataclass
class World:
  """Every latent of the world, for tests and diagnostics (never for training)."""

  categories: list[str]  # concept words in use, length n_categories
  descriptors: list[tuple[str, ...]]  # descriptor words per category
  category_vec: np.ndarray  # [n_categories, latent_dim] float32, unit norm
  brands: list[str]
  brand_vec: np.ndarray  # [n_brands, latent_dim] float32
  user_taste: np.ndarray  # [n_users, latent_dim] float32, taste at timeline start
  user_fav: np.ndarray  # [n_users, 2] int32, the two favourite categories
  user_drift_to: np.ndarray  # [n_users] int32, category taste drifts towards
  user_domains: np.ndarray  # [n_users, n_domains] bool, domains the user is active in
  domains: dict[str, DomainLatents]
  drift: float
  n_phases: int

  def taste_at(self, users: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Taste of `users` in timeline `phase` (0 .. n_phases-1): a move towards user_drift_to."""
    a = self.drift * phase.astype(np.float32) / max(1, self.n_phases - 1)
    return (
      (1 - a)[:, None] * self.user_taste[users]
      + a[:, None] * self.category_vec[self.user_drift_to[users]]
    ).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_popularity(cat: np.ndarray, K: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
  """Zipf(alpha) log-popularity over a random order of items WITHIN each category.

  Each category's popularity sums to 1, so which concept a user picks is decided by taste,
  not by which category happened to draw the global rank-1 item (with one global Zipf, the
  category of the top few items dominates and a popularity baseline wins); items inside a
  category still have a heavy tail.
  """
  order = np.lexsort((rng.random(len(cat)), cat))
  sorted_cat = cat[order]
  first = np.searchsorted(sorted_cat, np.arange(K))
  rank = np.empty(len(cat), np.int64)
  rank[order] = np.arange(len(cat)) - first[sorted_cat] + 1
  w = rank.astype(np.float64) ** -alpha
  mass = np.bincount(cat, weights=w, minlength=K)
  return np.log(w / mass[cat]).astype(np.float32)


def latents(p: Params, rs: dict[str, np.random.Generator]) -> World:
  """Concepts, brands, per-domain catalogues and users' tastes; no interactions."""
  K, d = p.n_categories, p.latent_dim
  rng = rs["concepts"]
  words = list(CONCEPTS)
  cats = [words[i] for i in np.sort(rng.choice(len(words), size=K, replace=False))]
  cat_vec = _unit(rng.standard_normal((K, d))).astype(np.float32)
  cat_prior = rng.dirichlet(np.full(K, 6.0))  # some concepts are more common

  rng = rs["brands"]
  brands = brand_names(p.n_brands, rng)
  brand_vec = (rng.standard_normal((p.n_brands, d)) / math.sqrt(d)).astype(np.float32)
  brand_home = rng.permutation(p.n_brands) % K  # each brand mainly serves one concept

  doms = {
    name: _catalogue(p, n, cat_vec, cat_prior, brand_vec, brand_home, rs[f"items/{name}"])
    for name, n in zip(p.domains, p.items)
  }
  taste, fav, drift_to, active = _users(p, cat_vec, cat_prior, rs["users"])
  return World(
    categories=cats,
    descriptors=[CONCEPTS[c] for c in cats],
    category_vec=cat_vec,
    brands=brands,
    brand_vec=brand_vec,
    user_taste=taste.astype(np.float32),
    user_fav=fav.astype(np.int32),
    user_drift_to=drift_to.astype(np.int32),
    user_domains=active,
    domains=doms,
    drift=p.drift,
    n_phases=p.n_phases,
  )


def _catalogue(
  p: Params,
  n: int,
  cat_vec: np.ndarray,
  cat_prior: np.ndarray,
  brand_vec: np.ndarray,
  brand_home: np.ndarray,
  rng: np.random.Generator,
) -> DomainLatents:
  """One domain's n items: category, brand, latent vector and popularity."""
  K, d = p.n_categories, p.latent_dim
  # Each category at least once per domain, the rest by a domain-specific category mix.
  mix = rng.dirichlet(20.0 * cat_prior + 0.5)
  cat = rng.permutation(np.concatenate([np.arange(K), rng.choice(K, size=n - K, p=mix)]))
  # 75% of items carry a brand whose home is their category, the rest any brand.
  by_home = np.argsort(brand_home, kind="stable")
  n_home = np.bincount(brand_home, minlength=K)
  first = np.concatenate([[0], np.cumsum(n_home)[:-1]])
  own = by_home[
    np.minimum(first[cat] + (rng.random(n) * n_home[cat]).astype(np.int64), p.n_brands - 1)
  ]
  use_own = (rng.random(n) < 0.75) & (n_home[cat] > 0)
  brand = np.where(use_own, own, rng.integers(p.n_brands, size=n))
  vec = (
    cat_vec[cat]
    + p.brand_weight * brand_vec[brand]
    + p.item_noise / math.sqrt(d) * rng.standard_normal((n, d))
  )
  return DomainLatents(
    category=cat.astype(np.int32),
    brand=brand.astype(np.int32),
    vec=vec.astype(np.float32),
    log_pop=_log_popularity(cat, K, p.popularity_alpha, rng),
  )


def _users(p: Params, cat_vec: np.ndarray, cat_prior: np.ndarray, rng: np.random.Generator):
  """(taste, fav, drift_to, active domains) of every user, unconverted (see World)."""
  K, d = p.n_categories, p.latent_dim
  U = p.n_users
  fav = np.stack([rng.choice(K, size=U, p=cat_prior), rng.choice(K, size=U, p=cat_prior)], 1)
  w1 = rng.uniform(0.55, 0.85, size=U)[:, None]
  taste = (
    w1 * cat_vec[fav[:, 0]]
    + (1 - w1) * cat_vec[fav[:, 1]]
    + 0.3 / math.sqrt(d) * rng.standard_normal((U, d))
  )
  drift_to = rng.choice(K, size=U, p=cat_prior)
  # Overlapping users: exactly round(overlap * U) of them, active in 2..D domains.
  D = len(p.domains)
  n_over = int(round(p.overlap * U))
  is_over = np.zeros(U, bool)
  is_over[rng.choice(U, size=n_over, replace=False)] = True
  k_active = np.where(is_over, rng.integers(2, D + 1, size=U), 1)
  order = np.argsort(rng.random((U, D)), axis=1)  # random domain preference per user
  active = np.zeros((U, D), bool)
  np.put_along_axis(active, order, np.arange(D)[None, :] < k_active[:, None], axis=1)
  return taste, fav, drift_to, active
