"""The synthetic world's knobs: DEFAULTS, their validated reading and the seeded random streams."""

from __future__ import annotations

import dataclasses

import numpy as np

from xdkt_jax.data.synthetic.vocab import CONCEPTS

DEFAULTS = dict(
  seed=0,
  domains=("Books", "Movies"),
  n_users=2000,
  items_per_domain=1000,  # int, or one int per domain
  interactions=100_000,  # total over all domains
  overlap=0.5,  # fraction of users active in >= 2 domains
  latent_dim=8,
  n_categories=12,
  n_brands=40,
  popularity_alpha=1.1,  # Zipf exponent of per-domain item popularity
  taste_weight=6.0,  # scale of <taste, item> against log popularity
  text_noise=0.15,  # expected fraction of title words that are filler
  item_noise=0.35,  # spread of items around their category vector
  brand_weight=0.3,  # how much a brand's own latent moves its items
  drift=0.4,  # how far taste moves towards a third concept over a timeline
  n_phases=3,  # drift is piecewise constant over this many timeline phases
  momentum=0.2,  # P(a step repeats the previous step's category in its domain)
  ratings=True,
  start_time=1.5e9,  # unix seconds of the earliest possible first interaction
  mean_gap_s=86_400.0,  # mean seconds between a user's consecutive interactions
)


def default_config():
  """An ml_collections ConfigDict holding DEFAULTS.

  Not type-safe: items_per_domain may switch between an int and a per-domain sequence.
  """
  import ml_collections

  return ml_collections.ConfigDict(dict(DEFAULTS), type_safe=False)


@dataclasses.dataclass(frozen=True)
class Params:
  """DEFAULTS read from a config, typed and validated (see DEFAULTS for the meanings)."""

  seed: int
  domains: tuple[str, ...]
  n_users: int
  items: tuple[int, ...]
  interactions: int
  overlap: float
  latent_dim: int
  n_categories: int
  n_brands: int
  popularity_alpha: float
  taste_weight: float
  text_noise: float
  item_noise: float
  brand_weight: float
  drift: float
  n_phases: int
  momentum: float
  ratings: bool
  start_time: float
  mean_gap_s: float


def from_config(cfg) -> Params:
  """Read cfg (ConfigDict, dict, any attribute object or None) over DEFAULTS and validate."""

  def get(name):
    if isinstance(cfg, dict):
      return cfg.get(name, DEFAULTS[name])
    return getattr(cfg, name, DEFAULTS[name]) if cfg is not None else DEFAULTS[name]

  domains = get("domains")
  # A comma-separated string is what a CLI override (--config.data.synthetic.domains=A,B) gives.
  domains = (
    tuple(d.strip() for d in domains.split(",") if d.strip())
    if isinstance(domains, str)
    else tuple(str(d) for d in domains)
  )
  if len(domains) < 2 or len(set(domains)) != len(domains):
    raise ValueError(f"synthetic: need >= 2 distinct domain names, got {domains}")
  ipd = get("items_per_domain")
  items = (int(ipd),) * len(domains) if np.isscalar(ipd) else tuple(int(x) for x in ipd)
  if len(items) != len(domains):
    raise ValueError(
      f"synthetic: items_per_domain has {len(items)} entries for {len(domains)} domains"
    )
  p = Params(
    seed=int(get("seed")),
    domains=domains,
    n_users=int(get("n_users")),
    items=items,
    interactions=int(get("interactions")),
    overlap=float(get("overlap")),
    latent_dim=int(get("latent_dim")),
    n_categories=int(get("n_categories")),
    n_brands=int(get("n_brands")),
    popularity_alpha=float(get("popularity_alpha")),
    taste_weight=float(get("taste_weight")),
    text_noise=float(get("text_noise")),
    item_noise=float(get("item_noise")),
    brand_weight=float(get("brand_weight")),
    drift=float(get("drift")),
    n_phases=int(get("n_phases")),
    momentum=float(get("momentum")),
    ratings=bool(get("ratings")),
    start_time=float(get("start_time")),
    mean_gap_s=float(get("mean_gap_s")),
  )
  if not 1 <= p.n_categories <= len(CONCEPTS):
    raise ValueError(f"synthetic: n_categories must be in 1..{len(CONCEPTS)}")
  if min(p.items) < p.n_categories:
    raise ValueError("synthetic: every domain needs >= n_categories items")
  if not 0.0 <= p.overlap <= 1.0 or not 0.0 <= p.text_noise < 1.0:
    raise ValueError("synthetic: overlap must be in [0, 1] and text_noise in [0, 1)")
  if not 0.0 <= p.momentum < 1.0 or p.n_phases < 1 or p.n_users < 1 or p.n_brands < 1:
    raise ValueError(
      "synthetic: need 0 <= momentum < 1, n_phases >= 1, n_users >= 1, n_brands >= 1"
    )
  return p


def streams(p: Params) -> dict[str, np.random.Generator]:
  """Independent generators per world part, so e.g. more interactions keep the same latents."""
  names = ("concepts", "brands", "users", "lengths", "timeline")
  per_domain = ("items", "sample", "text")
  kids = np.random.SeedSequence(p.seed).spawn(len(names) + len(per_domain))
  out = {n: np.random.default_rng(k) for n, k in zip(names, kids)}
  for tag, k in zip(per_domain, kids[len(names) :]):
    for name, kk in zip(p.domains, k.spawn(len(p.domains))):
      out[f"{tag}/{name}"] = np.random.default_rng(kk)
  return out
