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


@pytest.mark.parametrize(
  "keep,expected_orders", [("first", [0, 1]), ("last", [1, 2]), ("all", [0, 1, 2])]
)
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
  ds = make_dataset(
    {"A": [("u", 0, 0), ("u", 1, 1), ("v", 2, 0), ("v", 1, 1)]}, texts={"A": ["a", "", "c"]}
  )
  out = prep.drop_items_without_text(ds)
  d = out.domains["A"]
  assert d.items.ids.tolist() == ["A0", "A2"]
  assert sorted(d.items.text["title"][d.inter.item].tolist()) == ["a", "c"]
  assert out.log.dropped["A"] == {"no_text_items": 1, "no_text_interactions": 2}


def test_kcore_is_iterative():
  # k=2.  Item 3 has one interaction → removed; then user w has 1 left → removed; then item 2
  # (only w and x) drops to 1 → removed; x drops to 1 → removed.  u, v with items 0, 1 survive.
  rows = [
    ("u", 0, 0),
    ("u", 1, 1),
    ("v", 0, 0),
    ("v", 1, 1),
    ("w", 2, 0),
    ("w", 3, 1),
    ("x", 2, 0),
    ("x", 4, 1),
    ("y", 4, 0),
  ]
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
  cfg = mlc.ConfigDict(
    dict(
      dedup="first",
      drop_items_without_text=True,
      kcore=2,
      user_k=-1,
      item_k=-1,
      kcore_prune_catalogue=True,
    )
  )
  ds = make_dataset(
    {
      "A": [("u", 0, 0), ("u", 1, 1), ("v", 0, 0), ("v", 1, 1), ("u", 0, 3)],
      "B": [("u", 0, 0), ("v", 1, 0)],
    }
  )
  with pytest.raises(DataError, match="no interactions left"):
    prep.preprocess(ds, cfg)
  cfg.kcore = 0
  out = prep.preprocess(ds, cfg)
  assert out.log.dropped["A"]["dedup"] == 1
  assert ds.log.dropped == {}  # the input's log is not mutated


def _subsample_world():
  # u, v in both domains; w, x, y in A only; z in B only.  Item A4 is used by y alone.
  return make_dataset(
    {
      "A": [
        ("u", 0, 0),
        ("u", 1, 1),
        ("v", 1, 0),
        ("w", 2, 0),
        ("w", 3, 1),
        ("x", 0, 0),
        ("y", 4, 0),
      ],
      "B": [("u", 0, 0), ("v", 1, 0), ("v", 0, 1), ("z", 2, 0)],
    }
  )


def _kept_users(ds):
  return {ds.user_ids[u] for d in ds.domains.values() for u in d.inter.user}


def test_subsample_users_keeps_whole_users_in_every_domain_and_counts():
  ds = _subsample_world()
  out = prep.subsample_users(ds, 3, mode="uniform", seed=1)
  kept = _kept_users(out)
  assert len(kept) == 3
  for name, d in ds.domains.items():
    o = out.domains[name]
    names = lambda dom: sorted(
      (dom.items.ids[i], dom.inter.order[j])
      for j, i in enumerate(dom.inter.item)
      if ds.user_ids[dom.inter.user[j]] in kept
    )
    # every row of a kept user survives (same item ids and order keys), no other row does
    assert names(o) == names(d)
    assert {ds.user_ids[u] for u in o.inter.user} == {ds.user_ids[u] for u in d.inter.user} & kept
    # the catalogue holds exactly the items still used; drops are counted
    assert o.n_items == len(np.unique(o.inter.item)) and o.inter.item.max() < o.n_items
    dropped = out.log.dropped.get(name, {})
    assert dropped.get("subsample_interactions", 0) == len(d.inter) - len(o.inter)
    assert dropped.get("subsample_items", 0) == d.n_items - o.n_items
  # seeded: the same sample again, another seed may differ; 0 or >= users keeps everything
  assert _kept_users(prep.subsample_users(_subsample_world(), 3, seed=1)) == kept
  assert prep.subsample_users(ds, 0).domains is ds.domains
  assert prep.subsample_users(ds, 6).domains is ds.domains


def test_subsample_overlap_first_takes_multi_domain_users_first():
  for seed in range(5):
    out = prep.subsample_users(_subsample_world(), 3, mode="overlap_first", seed=seed)
    kept = _kept_users(out)
    assert {"u", "v"} <= kept and len(kept) == 3
  out = prep.subsample_users(_subsample_world(), 1, mode="overlap_first", seed=0)
  assert _kept_users(out) in ({"u"}, {"v"})
  with pytest.raises(ValueError, match="subsample"):
    prep.subsample_users(_subsample_world(), 3, mode="popular")
  with pytest.raises(ValueError, match="max_users"):
    prep.subsample_users(_subsample_world(), -1)


def test_preprocess_runs_the_subsample_from_config():
  cfg = mlc.ConfigDict(
    dict(
      dedup="first",
      drop_items_without_text=True,
      kcore=0,
      user_k=-1,
      item_k=-1,
      kcore_prune_catalogue=True,
      max_users=2,
      subsample="overlap_first",
      subsample_seed=0,
    )
  )
  out = prep.preprocess(_subsample_world(), cfg)
  assert _kept_users(out) == {"u", "v"}
  assert out.log.dropped["A"]["subsample_interactions"] == 4  # w, x, y's rows
  assert out.log.dropped["B"]["subsample_interactions"] == 1  # z's row
