"""Item text written from the latents, so titles name each item's concept in every domain."""

from __future__ import annotations

import numpy as np

from xdkt_jax.data.synthetic.params import Params
from xdkt_jax.data.synthetic.vocab import DOMAIN_NOUNS, FILLER
from xdkt_jax.data.synthetic.world import World


def item_text(p: Params, w: World, name: str, rng: np.random.Generator) -> dict:
  """title / categories / brand strings for one domain's items, from their latents."""
  lat = w.domains[name]
  n = len(lat.category)
  nouns = DOMAIN_NOUNS.get(
    name.lower().replace(" ", "").replace("_", ""), (name.lower().rstrip("s") or name.lower(),)
  )
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
    for j in range(n_fill[i]):  # filler goes anywhere after the brand
      words.insert(1 + int(slots[at + j] * len(words)), FILLER[fill[at + j]])
    at += n_fill[i]
    title[i] = " ".join(words)
    cats[i] = f"{dom_word} > {w.categories[k]}"
  return {"title": title, "categories": cats, "brand": brand}
