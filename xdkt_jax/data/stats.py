"""Per-domain statistics: raw vs after preprocessing, drops, overlap, length percentiles."""

from __future__ import annotations

import numpy as np

from xdkt_jax.data.schema import CrossDomainDataset, counts

_PCTS = (50, 90, 99)


def _percentiles(x: np.ndarray) -> dict[str, float]:
  if len(x) == 0:
    return {f"p{p}": 0.0 for p in _PCTS} | {"max": 0.0, "mean": 0.0}
  q = np.percentile(x, _PCTS)
  return {f"p{p}": float(v) for p, v in zip(_PCTS, q)} | {
    "max": float(np.max(x)),
    "mean": float(np.mean(x)),
  }


def dataset_stats(ds: CrossDomainDataset, tok=None) -> dict:
  """The object `xdkt stats --json` prints (see README)."""
  out = {"name": ds.name, "fingerprint": ds.fingerprint(), "domains": {}, "overlap": ds.overlap()}
  for name, d in ds.domains.items():
    after = counts(d)
    hist = np.bincount(d.inter.user)
    hist = hist[hist > 0]
    words = np.array([len(s.split()) for s in d.items.joined_text()], dtype=np.int64)
    entry = {
      "raw": dict(ds.log.raw.get(name, {})),
      "after": after,
      "dropped": dict(ds.log.dropped.get(name, {})),
      "notes": dict(ds.log.notes.get(name, {})),
      "density": (after["interactions"] / max(after["users"] * after["items"], 1)),
      "history_len": _percentiles(hist),
      "text_words": _percentiles(words),
    }
    if tok is not None and name in tok.mask:
      ntok = tok.mask[name].sum(axis=1)
      entry["text_tokens"] = _percentiles(ntok)
      entry["text_tokens"]["truncated_frac"] = float(np.mean(ntok >= tok.mask[name].shape[1]))
    out["domains"][name] = entry
  # Drops recorded against something other than a domain (e.g. users.tsv rows whose user has
  # no interactions) are reported too: nothing is dropped silently.
  other = {k: v for k, v in ds.log.dropped.items() if k not in ds.domains}
  if other:
    out["dropped_other"] = other
  other_notes = {k: v for k, v in ds.log.notes.items() if k not in ds.domains and v}
  if other_notes:
    out["notes_other"] = other_notes
  return out


def format_table(stats: dict) -> str:
  """Human-readable table of `dataset_stats` output."""
  lines = []
  hdr = (
    f"{'domain':<14}{'users':>9}{'items':>9}{'inter':>10}{'density':>10}"
    f"{'hist p50/p90/max':>19}{'words p50/p90':>15}"
  )
  lines.append(hdr)
  lines.append("-" * len(hdr))
  for name, e in stats["domains"].items():
    for label, c in (("raw", e["raw"]), ("after", e["after"])):
      if not c:
        continue
      tail = ""
      if label == "after":
        h, w = e["history_len"], e["text_words"]
        tail = f"{h['p50']:>7.0f}/{h['p90']:.0f}/{h['max']:.0f}".rjust(
          19
        ) + f"{w['p50']:>9.0f}/{w['p90']:.0f}".rjust(15)
      dens = f"{e['density']:.2e}" if label == "after" else ""
      lines.append(
        f"{(name + ' ' + label):<14}{c['users']:>9,}{c['items']:>9,}"
        f"{c['interactions']:>10,}{dens:>10}{tail}"
      )
    dropped = ", ".join(f"{k}={v:,}" for k, v in e["dropped"].items()) or "nothing"
    lines.append(f"  dropped: {dropped}")
    if e.get("notes"):
      lines.append("  notes: " + ", ".join(f"{k}={v:,}" for k, v in e["notes"].items()))
    if "text_tokens" in e:
      t = e["text_tokens"]
      lines.append(
        f"  tokens p50/p90/max: {t['p50']:.0f}/{t['p90']:.0f}/{t['max']:.0f}, "
        f"truncated: {100 * t['truncated_frac']:.1f}%"
      )
  for src, d in stats.get("dropped_other", {}).items():
    lines.append(f"{src} dropped: " + ", ".join(f"{k}={v:,}" for k, v in d.items()))
  for src, d in stats.get("notes_other", {}).items():
    lines.append(f"{src} notes: " + ", ".join(f"{k}={v:,}" for k, v in d.items()))
  if stats["overlap"]:
    lines.append(
      "overlap (users in both): "
      + ", ".join(f"{k.replace('|', '∩')}={v:,}" for k, v in stats["overlap"].items())
    )
  return "\n".join(lines)
