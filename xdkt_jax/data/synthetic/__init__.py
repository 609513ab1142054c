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

  vocab.py     concepts, filler, per-domain nouns, brand names
  params.py    DEFAULTS / default_config, the validated Params, the seeded random streams
  world.py     World / DomainLatents: concept, brand, item and user latents
  text.py      item titles, categories and brands written from the latents
  sampling.py  history lengths, the global timeline, per-domain item (and rating) sampling
"""

from __future__ import annotations

import numpy as np

from xdkt_jax.data.schema import CrossDomainDataset, Domain, ItemTable, PrepLog, UserIndex
from xdkt_jax.data.synthetic import params as params_lib
from xdkt_jax.data.synthetic import sampling
from xdkt_jax.data.synthetic.params import DEFAULTS, default_config
from xdkt_jax.data.synthetic.text import item_text
from xdkt_jax.data.synthetic.vocab import CONCEPTS, DOMAIN_NOUNS, FILLER
from xdkt_jax.data.synthetic.world import DomainLatents, World, latents

__all__ = [
  "CONCEPTS",
  "DEFAULTS",
  "DOMAIN_NOUNS",
  "FILLER",
  "DomainLatents",
  "World",
  "default_config",
  "generate",
  "generate_with_latents",
  "world_latents",
]


def world_latents(cfg=None) -> World:
  """The latents `generate(cfg)` uses (same seed streams), without sampling interactions."""
  p = params_lib.from_config(cfg)
  return latents(p, params_lib.streams(p))


def generate_with_latents(cfg=None) -> tuple[CrossDomainDataset, World]:
  """`generate(cfg)` and the World it was drawn from."""
  p = params_lib.from_config(cfg)
  rs = params_lib.streams(p)
  w = latents(p, rs)
  su, sd, slen = sampling.lengths(p, w, rs["lengths"])
  row_user, row_dom, phase, t = sampling.timeline(p, su, sd, slen, rs["timeline"])
  uidx = UserIndex()
  width = max(6, len(str(p.n_users - 1)))
  uidx.encode([f"u{i:0{width}d}" for i in range(p.n_users)])
  domains, log = {}, PrepLog()
  for j, name in enumerate(p.domains):
    rows = np.flatnonzero(row_dom == j)
    inter = sampling.sample_domain(p, w, name, row_user[rows], phase[rows], rs[f"sample/{name}"])
    inter.order = t[rows]
    n = p.items[j]
    iw = max(5, len(str(n - 1)))
    items = ItemTable(
      ids=np.array([f"{name}_i{i:0{iw}d}" for i in range(n)], dtype=object),
      text=item_text(p, w, name, rs[f"text/{name}"]),
    )
    domains[name] = Domain(name=name, items=items, inter=inter, source=f"synthetic(seed={p.seed})")
    log.raw[name] = {
      "users": int(len(np.unique(inter.user))),
      "items": n,
      "interactions": int(len(inter)),
    }
  ds = CrossDomainDataset(
    domains=domains, user_ids=uidx.to_array(), real_timestamps=True, name="synthetic", log=log
  )
  return ds, w


def generate(cfg=None) -> CrossDomainDataset:
  """A synthetic CrossDomainDataset; identical arrays for the same cfg (incl. seed)."""
  return generate_with_latents(cfg)[0]
