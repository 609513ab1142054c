"""Data-layer timings: Art+Office with tokenisation (cold cache, then warm) and the synthetic
world at 1M interactions (generate + preprocess + tokenise).

  .venv/bin/python benchmarks/data_load.py [--shared ../shared/data] [--interactions 1000000]
Prints one line per measurement; results go to benchmarks/RESULTS.md by hand, with the machine.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs import amazon_art_office, default  # noqa: E402
from xdkt_jax.data import load  # noqa: E402
from xdkt_jax.data import protocols  # noqa: E402


def cpu_model() -> str:
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def timed(label, fn):
  t = time.perf_counter()
  out = fn()
  print(f"{label}: {time.perf_counter() - t:.2f} s", flush=True)
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
  ap.add_argument("--interactions", type=int, default=1_000_000)
  args = ap.parse_args()
  print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")
  with tempfile.TemporaryDirectory() as cache:
    art = Path(args.shared) / "amazon_art_office"
    if art.is_dir():
      cfg = amazon_art_office.get_config()
      with cfg.unlocked():
        cfg.data.path = str(art)
        cfg.data.cache_dir = cache
      ds, tok = timed(
        "art_office load+preprocess+tokenise (cold cache)", lambda: load.load(cfg.data)
      )
      ds, tok = timed(
        "art_office load+preprocess+tokenise (warm cache)", lambda: load.load(cfg.data)
      )
      assert tok.cache_hit
      timed("art_office warm split", lambda: protocols.make_split(ds, cfg))
    else:
      print(f"art_office: skipped ({art} not found)")
    cfg = default.get_config()
    with cfg.unlocked():
      cfg.data.cache_dir = cache
      cfg.data.synthetic.interactions = args.interactions
      cfg.data.synthetic.n_users = max(2000, args.interactions // 25)
      cfg.data.synthetic.items_per_domain = max(1000, args.interactions // 50)
    ds, tok = timed(
      f"synthetic {args.interactions:,} generate+preprocess+tokenise (cold cache)",
      lambda: load.load(cfg.data),
    )
    n = sum(len(d.inter) for d in ds.domains.values())
    raw = sum(r["interactions"] for r in ds.log.raw.values())
    print(
      f"synthetic interactions generated: {raw:,}; after dedup: {n:,}, users {ds.n_users:,}, items "
      f"{sum(d.n_items for d in ds.domains.values()):,}"
    )
    timed("synthetic split (cold_start k=1)", lambda: protocols.make_split(ds, cfg))


if __name__ == "__main__":
  main()
