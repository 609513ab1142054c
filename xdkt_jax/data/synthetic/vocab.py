"""The words the synthetic world is written in: concepts, filler, nouns and brand names."""

from __future__ import annotations

import numpy as np

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
FILLER = (
  "edition",
  "series",
  "volume",
  "special",
  "complete",
  "new",
  "original",
  "collection",
  "deluxe",
  "ultimate",
  "premium",
  "select",
  "standard",
  "extended",
  "annotated",
  "remastered",
  "essential",
  "limited",
  "anniversary",
  "bundle",
)

_SYLLABLES = (
  "ka",
  "lo",
  "ven",
  "tri",
  "mo",
  "zar",
  "el",
  "qui",
  "dra",
  "no",
  "bel",
  "sta",
  "rix",
  "ton",
  "fa",
  "gen",
  "lu",
  "mar",
  "pel",
  "sor",
  "vik",
  "ya",
  "zen",
  "cor",
  "ul",
  "bri",
  "dex",
  "om",
  "pra",
  "sil",
)

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


def brand_names(n: int, rng: np.random.Generator) -> list[str]:
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
