"""The TFDS builder writes array_record from a manual_dir and reads back the same dataset."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from xdkt_jax.data.readers import read
from xdkt_jax.data.schema import DataError
from xdkt_jax.data.tfds_builder import build, load_tfds


def _write(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")


def _assert_same(a, b):
  assert a.domain_names == b.domain_names
  np.testing.assert_array_equal(a.user_ids, b.user_ids)
  assert a.real_timestamps == b.real_timestamps and a.name == b.name
  assert (a.user_split is None) == (b.user_split is None)
  if a.user_split is not None:
    np.testing.assert_array_equal(a.user_split, b.user_split)
  for n, da in a.domains.items():
    db = b.domains[n]
    np.testing.assert_array_equal(da.items.ids, db.items.ids)
    assert list(da.items.text) == list(db.items.text)
    for f in da.items.text:
      np.testing.assert_array_equal(da.items.text[f], db.items.text[f])
    for k in ("user", "item", "order", "rating"):
      x, y = getattr(da.inter, k), getattr(db.inter, k)
      assert (x is None) == (y is None), k
      if x is not None:
        assert x.dtype == y.dtype, k
        np.testing.assert_array_equal(x, y)  # exact, float64 order included
    assert (da.given_split is None) == (db.given_split is None)
    if da.given_split is not None:
      assert list(da.given_split.parts) == list(db.given_split.parts)
      for p, arrs in da.given_split.parts.items():
        for x, y in zip(arrs, db.given_split.parts[p]):
          assert x.dtype == y.dtype
          np.testing.assert_array_equal(x, y)
  assert a.log == b.log
  assert a.fingerprint() == b.fingerprint()


def test_recbole_round_trip(tmp_path):
  m = tmp_path / "manual"
  _write(
    m / "Art.inter",
    "user_id:token\titem_id:token\ttimestamp:float\trating:float\n"
    "u1\ta1\t1600000000.123456\t5\nu2\ta2\t2\t3\nu1\ta2\t3\t4\nu3\tzz\t4\t1\n",
  )
  _write(
    m / "Art.item",
    "item_id:token\ttitle:token_seq\tcategories:token_seq\na1\tred pen\tarts\na2\tcafé ink\t\n",
  )
  _write(m / "Office.inter", "user_id:token\titem_id:token\nu9\to1\nu1\to1\n")
  _write(m / "users.tsv", "user_id\tsplit\nu1\ttrain\nu9\ttest\n")
  direct = read("recbole", str(m), on_unknown_item="drop")
  builder = build(m, tmp_path / "tfds", fmt="recbole", name="art_office", on_unknown_item="drop")
  src = builder.as_data_source()
  assert set(src) == {"interactions", "items", "users"}
  assert len(src["interactions"]) == 4 and len(src["items"]) == 3  # one per (domain, user)
  first = src["interactions"][0]  # TFDS's own decoding
  assert first["domain"] == b"Art" and first["user"] == 0
  np.testing.assert_array_equal(first["items"], [0, 1])  # u1's rows, file order
  np.testing.assert_array_equal(first["rows"], [0, 2])
  np.testing.assert_array_equal(
    np.asarray(first["order_bits"], np.int64).view(np.float64), [1600000000.123456, 3]
  )
  assert builder.info.file_format.value == "array_record"
  back = load_tfds(builder)
  _assert_same(direct, back)
  assert back.log.dropped == {"Art": {"unknown_item": 1}}
  # Also by registered name + data_dir, as a training job would.
  by_name = tfds.data_source("xdkt_cross_domain/art_office", data_dir=str(tmp_path / "tfds"))
  assert len(by_name["interactions"]) == 4
  _assert_same(direct, load_tfds("xdkt_cross_domain/art_office", tmp_path / "tfds"))


def test_unisrec_given_split_round_trip(tmp_path):
  m = tmp_path / "manual"
  head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
  _write(m / "Sci.item2index", "B0A\t0\nB0B\t1\nB0C\t2\n")
  _write(m / "Sci.user2index", "AX\t0\nAY\t1\n")
  _write(m / "Sci.text", "item_id:token\ttext:token_seq\nB0A\tglue.\nB0C\tsaw.\n")
  _write(m / "Sci.train.inter", head + "0\t2\t0\n1\t1\t0\n")
  _write(m / "Sci.valid.inter", head + "0\t2 0\t1\n1\t1 0\t2\n")
  _write(m / "Sci.test.inter", head + "0\t2 0 1\t2\n1\t1 0 2\t1\n")
  builder = build(m, tmp_path / "tfds", fmt="unisrec", domains=["Sci"])
  assert "given" in builder.as_data_source()
  _assert_same(read("unisrec", str(m)), load_tfds(builder))


def test_amazon_round_trip(tmp_path):
  m = tmp_path / "manual"
  _write(
    m / "Toys.jsonl",
    "".join(
      json.dumps(r) + "\n"
      for r in [
        {"user_id": "U1", "parent_asin": "P1", "rating": 4.0, "timestamp": 1600000000123},
        {"user_id": "U2", "parent_asin": "P1", "rating": 2.0, "timestamp": 1600000000999},
      ]
    ),
  )
  _write(m / "meta_Toys.jsonl", json.dumps({"parent_asin": "P1", "title": "Ball"}) + "\n")
  back = load_tfds(build(m, tmp_path / "tfds", fmt="amazon"))
  _assert_same(read("amazon", str(m)), back)
  assert back.real_timestamps is True


def test_bad_manual_dir_is_a_data_error(tmp_path):
  m = tmp_path / "manual"
  _write(m / "Art.inter", "user_id:token\titem_id:tokn\nu1\ta1\n")
  with pytest.raises(DataError, match=r"Art.inter:1: field 'item_id': unknown type 'tokn'"):
    build(m, tmp_path / "tfds", fmt="recbole", name="bad")


def test_load_unprepared_builder_is_a_data_error(tmp_path):
  from xdkt_jax.data.tfds_builder import XdktCrossDomain

  builder = XdktCrossDomain(
    config="recbole",
    data_dir=str(tmp_path / "empty"),
    file_format=tfds.core.FileFormat.ARRAY_RECORD,
  )
  with pytest.raises(DataError, match="not prepared"):
    load_tfds(builder)
