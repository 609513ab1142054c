"""The readers reproduce the README's counts on the real shared data (read-only, not copied).

Skipped with a message when the data is not there: set XDKT_SHARED_DATA to its folder, or
check the repository out next to `shared/` (…/shared/data beside …/main).
"""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from xdkt_jax.data.readers import read


def _data_dir() -> Path:
  env = os.environ.get("XDKT_SHARED_DATA")
  return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


DATA = _data_dir()
pytestmark = pytest.mark.skipif(
  not DATA.is_dir(), reason=f"shared data not found at {DATA} (set XDKT_SHARED_DATA)"
)


# Speed is measured in CPU seconds (time.process_time): CI runs test files in parallel on two
# cores, and wall time would measure the neighbours.


@pytest.fixture(scope="module")
def art_office():
  t = time.process_time()
  ds = read("recbole", str(DATA / "amazon_art_office"))
  return ds, time.process_time() - t


@pytest.fixture(scope="module")
def scientific():
  return read("unisrec", str(DATA / "amazon_scientific"))


@pytest.fixture(scope="module")
def bst():
  t = time.process_time()
  ds = read("recbole", str(DATA / "amazon14_beauty_sports_toys"))
  return ds, time.process_time() - t


def test_art_office_counts(art_office):
  ds, seconds = art_office
  assert ds.log.raw == {
    "Art": {"users": 9_577, "items": 18_639, "interactions": 110_877},
    "Office": {"users": 9_577, "items": 19_757, "interactions": 97_664},
  }
  assert ds.n_users == 9_577 and ds.overlap() == {"Art|Office": 9_577}
  assert ds.log.dropped == {}
  assert len(np.unique(ds.domains["Office"].inter.item)) == 15_780  # catalogue items used
  split, n = np.unique(ds.user_split, return_counts=True)
  assert dict(zip(split.tolist(), n.tolist())) == {"train": 8_000, "valid": 577, "test": 1_000}
  assert ds.real_timestamps is False  # timestamps are positions here
  assert list(ds.domains["Art"].items.text) == ["title", "categories"]
  assert seconds < 2.0, f"Art+Office took {seconds:.2f} CPU s"


def test_scientific_counts_and_given_split(scientific):
  ds = scientific
  sci = ds.domains["Scientific"]
  assert ds.log.raw == {"Scientific": {"users": 8_442, "items": 4_385, "interactions": 59_384}}
  assert ds.n_users == 8_442 and len(sci.inter) == 59_384
  assert sci.items.ids[0] == "B00TNNWMXI"  # row i = item2index i
  assert (sci.items.text["text"] != "").all()
  parts = sci.given_split.parts
  assert {p: len(parts[p][0]) for p in parts} == {"train": 34_101, "valid": 8_442, "test": 8_442}
  # Each test target is the last interaction of its user's sequence.
  user, _, _, target = parts["test"]
  last = np.flatnonzero(np.r_[sci.inter.user[1:] != sci.inter.user[:-1], True])
  np.testing.assert_array_equal(sci.inter.user[last], user)
  np.testing.assert_array_equal(sci.inter.item[last], target)


def test_scientific_shares_reviewers_with_art_office(scientific, art_office):
  assert len(set(scientific.user_ids.tolist()) & set(art_office[0].user_ids.tolist())) == 708


def test_beauty_sports_toys_counts(bst):
  ds, seconds = bst
  assert ds.log.raw == {
    "Beauty": {"users": 22_363, "items": 12_101, "interactions": 198_502},
    "Sports": {"users": 35_598, "items": 18_357, "interactions": 296_337},
    "Toys": {"users": 19_412, "items": 11_924, "interactions": 167_597},
  }
  assert ds.overlap() == {"Beauty|Sports": 1_625, "Beauty|Toys": 2_073, "Sports|Toys": 1_734}
  assert ds.log.dropped == {}
  assert seconds < 5.0, f"Beauty+Sports+Toys took {seconds:.2f} CPU s"


def test_configured_subset(bst):
  ds = read("recbole", str(DATA / "amazon14_beauty_sports_toys"), domains=["Toys", "Beauty"])
  assert ds.domain_names == ["Toys", "Beauty"]
  assert ds.overlap() == {"Toys|Beauty": 2_073}
  assert ds.log.raw["Toys"] == bst[0].log.raw["Toys"]


def test_scientific_given_split_keeps_repeat_purchases(scientific):
  """The shipped UniSRec split evaluates repeat purchases as they are (RecBole, VQ-Rec do):
  the split is made, every test line kept, and the repeats counted."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  from configs import amazon_scientific  # pylint: disable=import-outside-toplevel
  from xdkt_jax.data import protocols  # pylint: disable=import-outside-toplevel

  cfg = ml_collections.ConfigDict(amazon_scientific.get_config().to_dict())
  split = protocols.make_split(scientific, cfg)
  assert len(split.eval["Scientific"]["test"]) == 8_442
  assert split.info["Scientific/test/given_split_repeat_targets"] == 37
  assert split.info["Scientific/valid/given_split_repeat_targets"] == 54
