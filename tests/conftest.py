"""Shared test helpers.  Tests run on CPU with one device unless a test starts its own
subprocess with fake devices."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from xdkt_jax.data.schema import (
  CrossDomainDataset,
  Domain,
  Interactions,  # noqa: E402
  ItemTable,
  PrepLog,
  UserIndex,
  counts,
)


def shared_data_dir() -> Path:
  env = os.environ.get("XDKT_SHARED_DATA")
  return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data():
  p = shared_data_dir()
  if not p.is_dir():
    pytest.skip(f"shared data not found at {p} (set XDKT_SHARED_DATA)")
  return p


def make_dataset(
  spec: dict, *, texts: dict | None = None, real_timestamps=False, user_split: dict | None = None
) -> CrossDomainDataset:
  """spec: {domain: [(user_name, item_idx, order), ...]}; items are 'i<idx>' with text
  'text <domain> <idx>' unless `texts[domain]` gives the list."""
  uidx = UserIndex()
  domains, log = {}, PrepLog()
  for name, rows in spec.items():
    n_items = max(r[1] for r in rows) + 1 if rows else 1
    if texts and name in texts:
      n_items = max(n_items, len(texts[name]))
      tx = list(texts[name]) + [""] * (n_items - len(texts[name]))
    else:
      tx = [f"text {name} {i}" for i in range(n_items)]
    items = ItemTable(
      ids=np.array([f"{name}{i}" for i in range(n_items)], dtype=object),
      text={"title": np.array(tx, dtype=object)},
    )
    inter = Interactions(
      user=uidx.encode([r[0] for r in rows]),
      item=np.array([r[1] for r in rows], np.int32),
      order=np.array([r[2] for r in rows], np.float64),
    )
    domains[name] = Domain(name, items, inter, source=f"<{name}>")
    log.raw[name] = counts(domains[name])
  ds = CrossDomainDataset(
    domains=domains, user_ids=uidx.to_array(), real_timestamps=real_timestamps, log=log
  )
  if user_split:
    ds.user_split = np.array([user_split.get(u, "") for u in ds.user_ids], dtype=object)
  return ds


def write_file(path: Path, text: str, *, gz: bool = False) -> Path:
  """Writes a fixture file (gzip-compressed with gz=True), creating its folder."""
  import gzip  # pylint: disable=import-outside-toplevel

  path.parent.mkdir(parents=True, exist_ok=True)
  if gz:
    with gzip.open(path, "wt", encoding="utf-8") as f:
      f.write(text)
  else:
    path.write_text(text, encoding="utf-8")
  return path


def sequential_settings(**over) -> dict:
  """What sequential.train_sasrec requires: the run config's recommend.sequential and
  recommend.xdkt sections (configs/common.py, their one source) with `over` on top."""
  from configs import common  # pylint: disable=import-outside-toplevel

  rc = common.recommend_config()
  return {**rc.sequential.to_dict(), **rc.xdkt.to_dict(), **over}


def small_world_config():
  """The default config on the 2,000-user world the model/baseline tests were written for
  (the default itself grew to 3,000 users for a larger cold-start test set)."""
  from configs import default  # pylint: disable=import-outside-toplevel

  c = default.get_config()
  with c.unlocked():
    c.data.synthetic.n_users = 2000
    c.data.synthetic.interactions = 100_000
    c.protocol_cold_frac = 0.2
  return c
