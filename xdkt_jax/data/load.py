"""config.data → a preprocessed `CrossDomainDataset` (+ tokenised item text).

The one place that knows which reader serves which `config.data.source`.
"""

from __future__ import annotations

import dataclasses

from xdkt_jax.data.schema import CrossDomainDataset, DataError
from xdkt_jax.data import preprocess as prep
from xdkt_jax.data import tokenization

SOURCES = ("synthetic", "recbole", "unisrec", "amazon", "tfds")


def split_list(s) -> list[str]:
  """'A, B' → ['A', 'B'] (config values are comma-separated strings so CLI overrides work)."""
  if isinstance(s, (list, tuple)):
    return [str(x).strip() for x in s if str(x).strip()]
  return [x.strip() for x in str(s or "").split(",") if x.strip()]


def wanted_domains(data_cfg) -> list[str] | None:
  """Explicit domain list: source_domains + target_domain if given, else `domains`, else all."""
  src, tgt = split_list(data_cfg.get("source_domains", "")), data_cfg.get("target_domain", "")
  if src or tgt:
    names = src + ([tgt] if tgt and tgt not in src else [])
    return names
  return split_list(data_cfg.get("domains", "")) or None


def read_raw(data_cfg) -> CrossDomainDataset:
  source = data_cfg.source
  if source not in SOURCES:
    raise ValueError(f"config.data.source: unknown source {source!r}; one of {SOURCES}")
  if source == "synthetic":
    from xdkt_jax.data import synthetic  # pylint: disable=import-outside-toplevel

    scfg = data_cfg.synthetic
    ds = synthetic.generate(scfg)
    names = wanted_domains(data_cfg)
    if names:
      missing = [n for n in names if n not in ds.domains]
      if missing:
        raise ValueError(
          f"config.data: domains {missing} are not in the synthetic world "
          f"{list(ds.domains)} (set config.data.synthetic.domains)"
        )
      ds = dataclasses.replace(ds, domains={n: ds.domains[n] for n in names})
    return ds
  if not data_cfg.path:
    raise ValueError(
      f"config.data.path is empty: source {source!r} reads a folder (--config.data.path=DIR)"
    )
  if source == "tfds":
    from xdkt_jax.data import tfds_builder  # pylint: disable=import-outside-toplevel

    ds = tfds_builder.load_tfds(data_cfg.get("tfds_name", "xdkt_cross_domain"), data_cfg.path)
    names = wanted_domains(data_cfg)
    if names:
      ds = dataclasses.replace(ds, domains={n: ds.domains[n] for n in names})
    return ds
  from xdkt_jax.data import readers  # pylint: disable=import-outside-toplevel

  kw = {}
  if source == "recbole":
    kw["real_timestamps"] = bool(data_cfg.get("real_timestamps", False))
  ds = readers.read(
    source,
    data_cfg.path,
    domains=wanted_domains(data_cfg),
    on_unknown_item=data_cfg.get("on_unknown_item", "error"),
    **kw,
  )
  names = wanted_domains(data_cfg)
  if names:  # the configured order: sources first, target last
    ds = dataclasses.replace(ds, domains={n: ds.domains[n] for n in names})
  return ds


def check_text_fields(ds, fields: list[str]) -> None:
  """Every listed text field must be a field of some domain's items (a typo would otherwise
  blank every item's text without a word)."""
  present = sorted({f for d in ds.domains.values() for f in d.items.text})
  missing = [f for f in fields if f not in present]
  if missing:
    raise ValueError(
      f"config.data.text_fields: {', '.join(map(repr, missing))} is not a text "
      f"field of any domain (fields: {', '.join(present) or 'none'})"
    )


def load(data_cfg, *, tokenize: bool | None = None):
  """Reads, preprocesses and (optionally) tokenises.  Returns (dataset, TokenizedItems|None)."""
  ds = read_raw(data_cfg)
  for name, d in ds.domains.items():
    if len(d.inter) == 0:
      raise DataError(d.source or name, f"domain '{name}' has no interactions")
  check_text_fields(ds, split_list(data_cfg.get("text_fields", "")))
  ds = prep.preprocess(ds, data_cfg)
  tok = None
  if data_cfg.get("tokenize", True) if tokenize is None else tokenize:
    tok = tokenization.tokenize_items(
      ds,
      tokenizer=data_cfg.tokenizer,
      max_len=int(data_cfg.max_text_len),
      fields=split_list(data_cfg.get("text_fields", "")) or None,
      cache_dir=data_cfg.get("cache_dir", "") or None,
    )
  return ds, tok
