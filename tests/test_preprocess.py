import numpy as np
import ml_collections as mlc
import pytest

from conftest import make_dataset
from xdkt_jax.data import preprocess as prep
from xdkt_jax.data.schema import DataError


def test_normalize_text_cases():
  assert prep.normalize_text("  Caf\u00e9&amp;Co <b>bold</b>\x07 x\t\ny ") == "Café&Co bold x y"
  assert prep.normalize_text(None) == ""
  assert prep.normalize_text(float("nan")) == ""
  assert prep.normalize_text("\uff21\uff22") == "AB"  # NFKC full-width


def test_normalize_counts_missing_text():
  ds = make_dataset({"A": [("u", 0, 0), ("u", 1, 1)]}, texts={"A": ["ok", "   "]})
  out = prep.normalize(ds)
  assert out.domains["A"].items.text["title"].tolist() == ["ok", ""]
  assert out.log.notes["A"]["missing_text"] == 1


@pytest.mark.parametrize("keep,expected_orders", [("first", [0, 1]), ("last", [1, 2]),
                                                  ("all", [0, 1, 2])])
def test_dedup(keep, expected_orders):
  # u: item0 at t0, item1 at t1, item0 again at t2
  ds = make_dataset({"A": [("u", 0, 0), ("u", 1, 1), ("u", 0, 2)]})
  out = prep.dedup(ds, keep)
  assert sorted(out.domains["A"].inter.order.tolist()) == expected_orders
  assert out.log.dropped.get("A", {}).get("dedup", 0) == 3 - len(expected_orders)


def test_dedup_bad_value():
  ds = make_dataset({"A": [("u", 0, 0)]})
  with pytest.raises(ValueError, match="first|last|all"):
    prep.dedup(ds, "newest")


def test_drop_items_without_text_reindexes_and_counts():
  ds = make_dataset({"A": [("u", 0, 0), ("u", 1, 1), ("v", 2, 0), ("v", 1, 1)]},
                    texts={"A": ["a", "", "c"]})
  out = prep.drop_items_without_text(ds)
  d = out.domains["A"]
  assert d.items.ids.tolist() == ["A0", "A2"]
  assert sorted(d.items.text["title"][d.inter.item].tolist()) == ["a", "c"]
  assert out.log.dropped["A"] == {"no_text_items": 1, "no_text_interactions": 2}


def test_kcore_is_iterative():
  # k=2.  Item 3 has one interaction → removed; then user w has 1 left → removed; then item 2
  # (only w and x) drops to 1 → removed; x drops to 1 → removed.  u, v with items 0, 1 survive.
  rows = [("u", 0, 0), ("u", 1, 1), ("v", 0, 0), ("v", 1, 1),
          ("w", 2, 0), ("w", 3, 1), ("x", 2, 0), ("x", 4, 1), ("y", 4, 0)]
  ds = make_dataset({"A": rows})
  out = prep.kcore(ds, 2, 2)
  d = out.domains["A"]
  assert len(d.inter) == 4
  assert sorted(d.items.ids.tolist()) == ["A0", "A1"]
  assert out.log.dropped["A"]["kcore_interactions"] == 5
  assert out.log.dropped["A"]["kcore_items"] == 3
  # result really is a 2-core
  assert np.bincount(d.inter.user)[np.unique(d.inter.user)].min() >= 2
  assert np.bincount(d.inter.item).min() >= 2


def test_kcore_keep_catalogue():
  rows = [("u", 0, 0), ("u", 1, 1), ("v", 0, 0), ("v", 1, 1), ("w", 2, 0)]
  out = prep.kcore(make_dataset({"A": rows}), 2, 2, prune_catalogue=False)
  assert out.domains["A"].n_items == 3
  assert len(out.domains["A"].inter) == 4


def test_preprocess_pipeline_and_empty_domain_error():
  cfg = mlc.ConfigDict(dict(dedup="first", drop_items_without_text=True, kcore=2, user_k=-1,
                            item_k=-1, kcore_prune_catalogue=True))
  ds = make_dataset({"A": [("u", 0, 0), ("u", 1, 1), ("v", 0, 0), ("v", 1, 1), ("u", 0, 3)],
                     "B": [("u", 0, 0), ("v", 1, 0)]})
  with pytest.raises(DataError, match="no interactions left"):
    prep.preprocess(ds, cfg)
  cfg.kcore = 0
  out = prep.preprocess(ds, cfg)
  assert out.log.dropped["A"]["dedup"] == 1
  assert ds.log.dropped == {}  # the input's log is not mutated
