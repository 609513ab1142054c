"""A synthetic cross-domain world in which transfer genuinely matters and text carries meaning.

Why it is built this way: downstream tests demand that a transfer method beats a target-only
recommender on cold-start users, so the world must contain signal that only the source domain
(or the item text) can supply.  Hence:

* ONE latent taste space.  Categories are shared concepts ("outdoor", "horror", ...) with one
  latent vector each; every item in every domain belongs to a category (and a brand from a
  shared pool) and sits near that category's vector.  Each user has one taste vector used in
  every domain, so what a user picks in Books predicts what they pick in Movies.
* Text is generated from the same latents: a title "<brand> <descriptor> <category> <noun>"
  with several descriptor words per concept, so text names the concept in every domain and
  bridges catalogues whose item ids never overlap.
* Choices follow softmax(taste_weight * <taste, item_vec> + log popularity) with Zipf
  popularity, so a popularity baseline is strong but beatable.
* A real global clock: each user's interactions across all domains lie on one timeline, taste
  drifts along it (towards a third concept), and some steps repeat the previous step's category
  (momentum), so recent history and cross-domain order carry signal.

Everything is vectorised numpy; 1M interactions take a few seconds on 2 CPU cores.  Each part
of the world draws from its own child of SeedSequence(seed), so latents do not depend on the
interaction count and `world_latents(cfg)` can rebuild them without sampling interactions.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from xdkt_jax.data.schema import (CrossDomainDataset, Domain, Interactions, ItemTable,
                                  PrepLog, UserIndex)

# Shared concepts -> descriptor adjectives.  Every word is unique across the table so that a
# word in a title identifies one concept (tests check this).
CONCEPTS: dict[str, tuple[str, ...]] = {
  "vintage": ("retro", "antique", "nostalgic"),
  "science": ("quantum", "physics", "experimental"),
  "outdoor": ("rugged", "trail", "alpine"),
  "romance": ("passionate", "tender", "heartfelt"),
  "kids": ("playful", "colorful", "bedtime"),
  "minimalist": ("sleek", "simple", "uncluttered"),
  "horror": ("haunted", "creepy", "sinister"),
  "history": ("ancient", "medieval", "imperial"),
  "cooking": ("savory", "gourmet", "culinary"),
  "fantasy": ("enchanted", "magical", "mythic"),
  "travel": ("exotic", "nomadic", "wanderlust"),
  "sports": ("athletic", "championship", "competitive"),
  "music": ("melodic", "rhythmic", "acoustic"),
  "mystery": ("cryptic", "puzzling", "detective"),
  "comedy": ("hilarious", "witty", "goofy"),
  "nature": ("wild", "botanical", "woodland"),
  "technology": ("digital", "robotic", "smart"),
  "fitness": ("energetic", "cardio", "muscular"),
  "art": ("artistic", "painted", "creative"),
  "business": ("executive", "strategic", "corporate"),
  "spiritual": ("mindful", "sacred", "serene"),
  "space": ("cosmic", "galactic", "stellar"),
  "war": ("tactical", "heroic", "battlefield"),
  "family": ("wholesome", "heartwarming", "homely"),
  "crime": ("gritty", "noir", "undercover"),
  "animals": ("furry", "feline", "canine"),
  "ocean": ("nautical", "marine", "tidal"),
  "urban": ("metropolitan", "downtown", "streetwise"),
}

# Neutral filler: carries no concept, so text_noise dilutes the signal without lying.
FILLER = ("edition", "series", "volume", "special", "complete", "new", "original",
          "collection", "deluxe", "ultimate", "premium", "select", "standard", "extended",
          "annotated", "remastered", "essential", "limited", "anniversary", "bundle")

_SYLLABLES = ("ka", "lo", "ven", "tri", "mo", "zar", "el", "qui", "dra", "no", "bel", "sta",
              "rix", "ton", "fa", "gen", "lu", "mar", "pel", "sor", "vik", "ya", "zen", "cor",
              "ul", "bri", "dex", "om", "pra", "sil")

_VOCAB = frozenset(w for k, v in CONCEPTS.items() for w in (k, *v)) | frozenset(FILLER)

# Domain name (lower case) -> nouns for titles; unknown domains use their own singular name.
DOMAIN_NOUNS: dict[str, tuple[str, ...]] = {
  "books": ("book", "novel", "guide"),
  "movies": ("film", "movie", "feature"),
  "music": ("album", "record", "soundtrack"),
  "games": ("game", "adventure", "quest"),
  "videogames": ("game", "adventure", "quest"),
  "electronics": ("device", "gadget", "speaker"),
  "clothing": ("jacket", "shirt", "sneakers"),
  "office": ("notebook", "planner", "desk organizer"),
  "arts": ("paint set", "sketchbook", "canvas"),
  "toys": ("toy", "puzzle", "playset"),
  "beauty": ("cream", "palette", "serum"),
  "food": ("snack", "sauce", "tea"),
  "home": ("lamp", "rug", "mug"),
}

DEFAULTS = dict(
  seed=0,
  domains=("Books", "Movies"),
  n_users=2000,
  items_per_domain=1000,       # int, or one int per domain
  interactions=100_000,        # total over all domains
  overlap=0.5,                 # fraction of users active in >= 2 domains
  latent_dim=8,
  n_categories=12,
  n_brands=40,
  popularity_alpha=1.1,        # Zipf exponent of per-domain item popularity
  taste_weight=6.0,            # scale of <taste, item> against log popularity
  text_noise=0.15,             # expected fraction of title words that are filler
  item_noise=0.35,             # spread of items around their category vector
  brand_weight=0.3,            # how much a brand's own latent moves its items
  drift=0.4,                   # how far taste moves towards a third concept over a timeline
  n_phases=3,                  # drift is piecewise constant over this many timeline phases
  momentum=0.2,                # P(a step repeats the previous step's category in its domain)
  ratings=True,
  start_time=1.5e9,            # unix seconds of the earliest possible first interaction
  mean_gap_s=86_400.0,         # mean seconds between a user's consecutive interactions
)


def default_config():
  """An ml_collections ConfigDict holding DEFAULTS.

  Not type-safe: items_per_domain may switch between an int and a per-domain sequence.
  """
  import ml_collections
  return ml_collections.ConfigDict(dict(DEFAULTS), type_safe=False)


@dataclasses.dataclass
class DomainLatents:
  """Hidden attributes of one domain's catalogue; row i is item i."""
  category: np.ndarray               # [n_items] int32, index into World.categories
  brand: np.ndarray                  # [n_items] int32, index into World.brands
  vec: np.ndarray                    # [n_items, latent_dim] float32
  log_pop: np.ndarray                # [n_items] float32, within-category Zipf log-popularity


@dataclasses.dataclass
class World:
  """Every latent of the world, for tests and diagnostics (never for training)."""
  categories: list[str]              # concept words in use, length n_categories
  descriptors: list[tuple[str, ...]]  # descriptor words per category
  category_vec: np.ndarray           # [n_categories, latent_dim] float32, unit norm
  brands: list[str]
  brand_vec: np.ndarray              # [n_brands, latent_dim] float32
  user_taste: np.ndarray             # [n_users, latent_dim] float32, taste at timeline start
  user_fav: np.ndarray               # [n_users, 2] int32, the two favourite categories
  user_drift_to: np.ndarray          # [n_users] int32, category taste drifts towards
  user_domains: np.ndarray           # [n_users, n_domains] bool, domains the user is active in
  domains: dict[str, DomainLatents]
  drift: float
  n_phases: int

  def taste_at(self, users: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Taste of `users` in timeline `phase` (0 .. n_phases-1): a move towards user_drift_to."""
    a = self.drift * phase.astype(np.float32) / max(1, self.n_phases - 1)
    return ((1 - a)[:, None] * self.user_taste[users]
            + a[:, None] * self.category_vec[self.user_drift_to[users]]).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class _Params:
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


def _params(cfg) -> _Params:
  """Read cfg (ConfigDict, dict, any attribute object or None) over DEFAULTS and validate."""
  def get(name):
    if isinstance(cfg, dict):
      return cfg.get(name, DEFAULTS[name])
    return getattr(cfg, name, DEFAULTS[name]) if cfg is not None else DEFAULTS[name]

  domains = get("domains")
  # A comma-separated string is what a CLI override (--config.data.synthetic.domains=A,B) gives.
  domains = (tuple(d.strip() for d in domains.split(",") if d.strip())
             if isinstance(domains, str) else tuple(str(d) for d in domains))
  if len(domains) < 2 or len(set(domains)) != len(domains):
    raise ValueError(f"synthetic: need >= 2 distinct domain names, got {domains}")
  ipd = get("items_per_domain")
  items = ((int(ipd),) * len(domains) if np.isscalar(ipd) else tuple(int(x) for x in ipd))
  if len(items) != len(domains):
    raise ValueError(f"synthetic: items_per_domain has {len(items)} entries for "
                     f"{len(domains)} domains")
  p = _Params(
    seed=int(get("seed")), domains=domains, n_users=int(get("n_users")), items=items,
    interactions=int(get("interactions")), overlap=float(get("overlap")),
    latent_dim=int(get("latent_dim")), n_categories=int(get("n_categories")),
    n_brands=int(get("n_brands")), popularity_alpha=float(get("popularity_alpha")),
    taste_weight=float(get("taste_weight")), text_noise=float(get("text_noise")),
    item_noise=float(get("item_noise")), brand_weight=float(get("brand_weight")),
    drift=float(get("drift")), n_phases=int(get("n_phases")), momentum=float(get("momentum")),
    ratings=bool(get("ratings")), start_time=float(get("start_time")),
    mean_gap_s=float(get("mean_gap_s")))
  if not 1 <= p.n_categories <= len(CONCEPTS):
    raise ValueError(f"synthetic: n_categories must be in 1..{len(CONCEPTS)}")
  if min(p.items) < p.n_categories:
    raise ValueError("synthetic: every domain needs >= n_categories items")
  if not 0.0 <= p.overlap <= 1.0 or not 0.0 <= p.text_noise < 1.0:
    raise ValueError("synthetic: overlap must be in [0, 1] and text_noise in [0, 1)")
  if not 0.0 <= p.momentum < 1.0 or p.n_phases < 1 or p.n_users < 1 or p.n_brands < 1:
    raise ValueError("synthetic: need 0 <= momentum < 1, n_phases >= 1, n_users >= 1, "
                     "n_brands >= 1")
  return p


def _streams(p: _Params) -> dict[str, np.random.Generator]:
  """Independent generators per world part, so e.g. more interactions keep the same latents."""
  names = ("concepts", "brands", "users", "lengths", "timeline")
  per_domain = ("items", "sample", "text")
  kids = np.random.SeedSequence(p.seed).spawn(len(names) + len(per_domain))
  out = {n: np.random.default_rng(k) for n, k in zip(names, kids)}
  for tag, k in zip(per_domain, kids[len(names):]):
    for name, kk in zip(p.domains, k.spawn(len(p.domains))):
      out[f"{tag}/{name}"] = np.random.default_rng(kk)
  return out


def _brand_names(n: int, rng: np.random.Generator) -> list[str]:
  """n distinct pronounceable names built from syllables (shared by all domains)."""
  if n > 20_000:
    raise ValueError(f"synthetic: n_brands={n} exceeds the syllable name space")
  names, seen = [], set()
  while len(names) < n:
    k = 2 + int(rng.random() < 0.5)
    name = "".join(rng.choice(_SYLLABLES, size=k)).capitalize()
    if name.lower() not in seen and name.lower() not in _VOCAB:
      seen.add(name.lower())
      names.append(name)
  return names


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_popularity(cat: np.ndarray, K: int, alpha: float,
                    rng: np.random.Generator) -> np.ndarray:
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


def _latents(p: _Params, rs: dict[str, np.random.Generator]) -> World:
  """Concepts, brands, per-domain catalogues and users' tastes; no interactions."""
  K, d = p.n_categories, p.latent_dim
  rng = rs["concepts"]
  words = list(CONCEPTS)
  cats = [words[i] for i in np.sort(rng.choice(len(words), size=K, replace=False))]
  cat_vec = _unit(rng.standard_normal((K, d))).astype(np.float32)
  cat_prior = rng.dirichlet(np.full(K, 6.0))        # some concepts are more common

  rng = rs["brands"]
  brands = _brand_names(p.n_brands, rng)
  brand_vec = (rng.standard_normal((p.n_brands, d)) / math.sqrt(d)).astype(np.float32)
  brand_home = rng.permutation(p.n_brands) % K        # each brand mainly serves one concept

  doms = {}
  for name, n in zip(p.domains, p.items):
    rng = rs[f"items/{name}"]
    # Each category at least once per domain, the rest by a domain-specific category mix.
    mix = rng.dirichlet(20.0 * cat_prior + 0.5)
    cat = rng.permutation(np.concatenate([np.arange(K), rng.choice(K, size=n - K, p=mix)]))
    # 75% of items carry a brand whose home is their category, the rest any brand.
    by_home = np.argsort(brand_home, kind="stable")
    n_home = np.bincount(brand_home, minlength=K)
    first = np.concatenate([[0], np.cumsum(n_home)[:-1]])
    own = by_home[np.minimum(first[cat] + (rng.random(n) * n_home[cat]).astype(np.int64),
                             p.n_brands - 1)]
    use_own = (rng.random(n) < 0.75) & (n_home[cat] > 0)
    brand = np.where(use_own, own, rng.integers(p.n_brands, size=n))
    vec = (cat_vec[cat] + p.brand_weight * brand_vec[brand]
           + p.item_noise / math.sqrt(d) * rng.standard_normal((n, d)))
    doms[name] = DomainLatents(category=cat.astype(np.int32), brand=brand.astype(np.int32),
                               vec=vec.astype(np.float32),
                               log_pop=_log_popularity(cat, K, p.popularity_alpha, rng))

  rng = rs["users"]
  U = p.n_users
  fav = np.stack([rng.choice(K, size=U, p=cat_prior), rng.choice(K, size=U, p=cat_prior)], 1)
  w1 = rng.uniform(0.55, 0.85, size=U)[:, None]
  taste = (w1 * cat_vec[fav[:, 0]] + (1 - w1) * cat_vec[fav[:, 1]]
           + 0.3 / math.sqrt(d) * rng.standard_normal((U, d)))
  drift_to = rng.choice(K, size=U, p=cat_prior)
  # Overlapping users: exactly round(overlap * U) of them, active in 2..D domains.
  D = len(p.domains)
  n_over = int(round(p.overlap * U))
  is_over = np.zeros(U, bool)
  is_over[rng.choice(U, size=n_over, replace=False)] = True
  k_active = np.where(is_over, rng.integers(2, D + 1, size=U), 1)
  order = np.argsort(rng.random((U, D)), axis=1)       # random domain preference per user
  active = np.zeros((U, D), bool)
  np.put_along_axis(active, order, np.arange(D)[None, :] < k_active[:, None], axis=1)
  return World(categories=cats, descriptors=[CONCEPTS[c] for c in cats], category_vec=cat_vec,
               brands=brands, brand_vec=brand_vec, user_taste=taste.astype(np.float32),
               user_fav=fav.astype(np.int32), user_drift_to=drift_to.astype(np.int32),
               user_domains=active, domains=doms, drift=p.drift, n_phases=p.n_phases)


def world_latents(cfg=None) -> World:
  """The latents `generate(cfg)` uses (same seed streams), without sampling interactions."""
  p = _params(cfg)
  return _latents(p, _streams(p))


def _item_text(p: _Params, w: World, name: str, rng: np.random.Generator) -> dict:
  """title / categories / brand strings for one domain's items, from their latents."""
  lat = w.domains[name]
  n = len(lat.category)
  nouns = DOMAIN_NOUNS.get(name.lower().replace(" ", "").replace("_", ""),
                           (name.lower().rstrip("s") or name.lower(),))
  desc_pick = rng.integers(0, 1 << 30, size=n)
  noun_pick = rng.integers(len(nouns), size=n)
  # Titles have 4 content words; Poisson filler with mean 4t/(1-t) makes filler ~ t of words.
  n_fill = rng.poisson(4 * p.text_noise / (1 - p.text_noise), size=n)
  fill = rng.integers(len(FILLER), size=int(n_fill.sum()))
  slots = rng.random(int(n_fill.sum()))
  title = np.empty(n, dtype=object)
  cats = np.empty(n, dtype=object)
  brand = np.array([w.brands[b] for b in lat.brand], dtype=object)
  dom_word = name.lower()
  at = 0
  for i in range(n):
    k = lat.category[i]
    descs = w.descriptors[k]
    words = [brand[i], descs[desc_pick[i] % len(descs)], w.categories[k], nouns[noun_pick[i]]]
    for j in range(n_fill[i]):          # filler goes anywhere after the brand
      words.insert(1 + int(slots[at + j] * len(words)), FILLER[fill[at + j]])
    at += n_fill[i]
    title[i] = " ".join(words)
    cats[i] = f"{dom_word} > {w.categories[k]}"
  return {"title": title, "categories": cats, "brand": brand}


_BLOCK = 32     # items per block of the two-level sampler


def _sample_grouped(logits_fn, counts: np.ndarray, n_items: int, rng: np.random.Generator,
                    chunk_elems: int = 1 << 22, block: int = _BLOCK) -> np.ndarray:
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
    if lg.shape[1] != width:                          # zero-probability padding items
      lg = np.pad(lg[:, :n_items], ((0, 0), (0, width - n_items)))
    g = np.repeat(np.arange(hi - lo), counts[lo:hi])
    u = rng.random(len(g), dtype=np.float32)
    if len(g) * block >= lg.size:                     # many draws per group: full CDF
      cdf = np.cumsum(lg, axis=1, out=lg)
      idx = _search_rows(cdf, g, u * cdf[g, -1])
    else:
      blocks = lg.reshape(hi - lo, n_blk, block)
      bcdf = np.cumsum(blocks.sum(axis=2), axis=1)    # [groups, n_blk]
      target = u * bcdf[g, -1]
      b = _search_rows(bcdf, g, target)
      before = np.where(b > 0, bcdf[g, np.maximum(b - 1, 0)], 0)
      within = np.cumsum(blocks[g, np.minimum(b, n_blk - 1)], axis=1)
      pos = (within <= (target - before)[:, None]).sum(axis=1)
      idx = b * block + np.minimum(pos, block - 1)   # float32 block sums vs cumsum rounding
    out[starts[lo]:starts[hi]] = np.minimum(idx, n_items - 1)
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


def _sample_within(cat: np.ndarray, lat: DomainLatents, rng: np.random.Generator) -> np.ndarray:
  """One item per row from category cat[row], by popularity alone (momentum steps)."""
  K = int(lat.category.max()) + 1
  order = np.argsort(lat.category, kind="stable")
  pop = np.exp(lat.log_pop[order].astype(np.float64))
  sorted_cat = lat.category[order]
  cdf = np.cumsum(pop)
  first = np.searchsorted(sorted_cat, np.arange(K))
  last = np.searchsorted(sorted_cat, np.arange(K), side="right")
  base = np.concatenate([[0.0], cdf])[first]          # mass before each category
  total = cdf[last - 1] - base
  cdf = (cdf - base[sorted_cat]) / total[sorted_cat] + sorted_cat   # row-offset per category
  pos = np.searchsorted(cdf, cat + rng.random(len(cat)), side="right")
  pos = np.clip(pos, first[cat], last[cat] - 1)
  return order[pos].astype(np.int32)


def _lengths(p: _Params, w: World, rng: np.random.Generator):
  """(user, domain, length) per active slot, sorted by user; lengths >= 3, sum = target."""
  su, sd = np.nonzero(w.user_domains)
  n_slots = len(su)
  extra_total = p.interactions - 3 * n_slots
  if extra_total < 0:
    raise ValueError(f"synthetic: interactions={p.interactions} < 3 per active (user, domain) "
                     f"slot ({n_slots} slots); raise interactions or lower n_users")
  # Heavy users are heavy everywhere (user factor) with per-domain variation (slot factor).
  act = rng.lognormal(0.0, 0.8, size=p.n_users)[su] * rng.lognormal(0.0, 0.6, size=n_slots)
  x = act / act.sum() * extra_total
  extra = np.floor(x).astype(np.int64)
  short = extra_total - int(extra.sum())
  if short:
    extra[np.argpartition(-(x - extra), short - 1)[:short]] += 1
  return su, sd, 3 + extra


def _timeline(p: _Params, su, sd, slen, rng: np.random.Generator):
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
  gaps = np.maximum(1.0, np.round(rng.lognormal(math.log(p.mean_gap_s) - sigma ** 2 / 2,
                                                sigma, size=n)))
  cs = np.cumsum(gaps)
  first = u_start[n_u > 0]
  rel = cs - np.repeat(cs[first] - gaps[first], n_u[n_u > 0])
  span = 2 * 365 * 86_400.0
  t0 = p.start_time + np.floor(rng.random(p.n_users) * span)
  return row_user, row_dom, phase, t0[row_user] + rel


def _sample_domain(p: _Params, w: World, name: str, user: np.ndarray, phase: np.ndarray,
                   rng: np.random.Generator) -> Interactions:
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

  item = _sample_grouped(logits, counts, n_items, rng, block=block)
  if p.momentum > 0:
    # Momentum: a step may repeat the category of the last taste-driven step of this user in
    # this domain; the anchor is found with a running max, so no Python loop over steps.
    first_of_user = np.concatenate([[True], user[1:] != user[:-1]])
    rep = (rng.random(len(item)) < p.momentum) & ~first_of_user
    anchor = np.maximum.accumulate(np.where(rep, 0, np.arange(len(item))))
    idx = np.flatnonzero(rep)
    item[idx] = _sample_within(lat.category[item[anchor[idx]]], lat, rng)
  rating = None
  if p.ratings:
    taste_row = np.repeat(g_taste, counts, axis=0)
    aff = np.einsum("nd,nd->n", taste_row, lat.vec[item])
    z = (aff - aff.mean()) / (aff.std() + 1e-6)
    rating = np.clip(np.round(3.6 + 0.9 * z + 0.7 * rng.standard_normal(len(z))), 1, 5)
    rating = rating.astype(np.float32)
  return Interactions(user=user.astype(np.int32), item=item, order=None, rating=rating)


def generate_with_latents(cfg=None) -> tuple[CrossDomainDataset, World]:
  """`generate(cfg)` and the World it was drawn from."""
  p = _params(cfg)
  rs = _streams(p)
  w = _latents(p, rs)
  su, sd, slen = _lengths(p, w, rs["lengths"])
  row_user, row_dom, phase, t = _timeline(p, su, sd, slen, rs["timeline"])
  uidx = UserIndex()
  width = max(6, len(str(p.n_users - 1)))
  uidx.encode([f"u{i:0{width}d}" for i in range(p.n_users)])
  domains, log = {}, PrepLog()
  for j, name in enumerate(p.domains):
    rows = np.flatnonzero(row_dom == j)
    inter = _sample_domain(p, w, name, row_user[rows], phase[rows], rs[f"sample/{name}"])
    inter.order = t[rows]
    n = p.items[j]
    iw = max(5, len(str(n - 1)))
    items = ItemTable(ids=np.array([f"{name}_i{i:0{iw}d}" for i in range(n)], dtype=object),
                      text=_item_text(p, w, name, rs[f"text/{name}"]))
    domains[name] = Domain(name=name, items=items, inter=inter,
                           source=f"synthetic(seed={p.seed})")
    log.raw[name] = {"users": int(len(np.unique(inter.user))), "items": n,
                     "interactions": int(len(inter))}
  ds = CrossDomainDataset(domains=domains, user_ids=uidx.to_array(), real_timestamps=True,
                          name="synthetic", log=log)
  return ds, w


def generate(cfg=None) -> CrossDomainDataset:
  """A synthetic CrossDomainDataset; identical arrays for the same cfg (incl. seed)."""
  return generate_with_latents(cfg)[0]
