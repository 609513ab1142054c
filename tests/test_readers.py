"""The three readers on small hand-written folders: arrays, text, shared users, raw counts."""

import gzip
import json
import time

import numpy as np
import pytest

from xdkt_jax.data.readers import read, read_amazon, read_recbole, read_unisrec
from xdkt_jax.data.schema import DataError
from xdkt_jax.data.textio import open_text
from conftest import write_file


_write = write_file


@pytest.fixture
def recbole_dir(tmp_path):
  _write(
    tmp_path / "Art.inter",
    "user_id:token\titem_id:token\ttimestamp:float\trating:float\n"
    "alice\ta1\t0\t5\nbob\ta2\t2\t3\nalice\ta2\t4\t4\n\n",
  )  # trailing blank line
  _write(
    tmp_path / "Art.item",
    "item_id:token\ttitle:token_seq\tcategories:token_seq\tprice:float\n"
    "a0\tunused easel\tarts\t9.5\na1\tred pen\tarts office\t1\na2\tblue ink\t\t2\n",
  )
  _write(
    tmp_path / "Office.inter",
    "item_id:token\tuser_id:token\ttimestamp:float\n"  # any column order
    "o1\tcarol\t1\no1\tbob\t3\n",
  )
  _write(tmp_path / "Office.item", "item_id:token\ttitle:token_seq\no1\tstapler\n")
  _write(tmp_path / "users.tsv", "user_id\tsplit\nalice\ttrain\ncarol\ttest\n")
  return tmp_path


def test_recbole_two_domains(recbole_dir):
  ds = read("recbole", str(recbole_dir))
  assert ds.domain_names == ["Art", "Office"]  # sorted when not configured
  assert ds.user_ids.tolist() == ["alice", "bob", "carol"]
  art, office = ds.domains["Art"], ds.domains["Office"]
  assert art.items.ids.tolist() == ["a0", "a1", "a2"]
  assert list(art.items.text) == ["title", "categories"]  # float columns are not text
  assert art.items.text["categories"].tolist() == ["arts", "arts office", ""]
  np.testing.assert_array_equal(art.inter.user, [0, 1, 0])
  np.testing.assert_array_equal(art.inter.item, [1, 2, 2])
  np.testing.assert_array_equal(art.inter.order, [0, 2, 4])
  np.testing.assert_array_equal(art.inter.rating, [5, 3, 4])
  assert art.inter.user.dtype == np.int32 and art.inter.order.dtype == np.float64
  assert art.inter.rating.dtype == np.float32
  assert office.inter.rating is None
  np.testing.assert_array_equal(office.inter.user, [2, 1])  # bob shares his index
  assert ds.overlap() == {"Art|Office": 1}
  assert ds.log.raw == {
    "Art": {"users": 2, "items": 3, "interactions": 3},
    "Office": {"users": 2, "items": 1, "interactions": 2},
  }
  assert ds.log.dropped == {}
  assert ds.user_split.tolist() == ["train", "", "test"]
  assert ds.real_timestamps is False and ds.name == recbole_dir.name
  assert art.source.endswith("Art.inter")


def test_recbole_configured_domains_keep_order(recbole_dir):
  ds = read_recbole(recbole_dir, domains=["Office", "Art"], real_timestamps=True)
  assert ds.domain_names == ["Office", "Art"] and ds.real_timestamps
  assert ds.user_ids.tolist()[:2] == ["carol", "bob"]
  assert read_recbole(recbole_dir, domains="Art").domain_names == ["Art"]


def test_recbole_without_item_file_or_timestamp(tmp_path):
  _write(tmp_path / "Toys.inter", "user_id:token\titem_id:token\nu1\tx\nu2\ty\nu1\tx\n")
  ds = read("recbole", str(tmp_path))
  toys = ds.domains["Toys"]
  assert toys.items.ids.tolist() == ["x", "y"] and toys.items.text == {}
  np.testing.assert_array_equal(toys.inter.order, [0, 1, 2])  # file row order
  assert ds.log.raw["Toys"] == {"users": 2, "items": 2, "interactions": 3}
  assert ds.user_split is None


def test_recbole_gzip_crlf_and_bom(tmp_path):
  p = tmp_path / "Toys.inter"
  with gzip.open(p, "wb") as f:
    f.write("\ufeffuser_id:token\titem_id:token\r\nu1\tx\r\n".encode())
  ds = read("recbole", str(tmp_path))
  assert ds.domains["Toys"].items.ids.tolist() == ["x"]
  assert list(open_text(p)) == [(1, "user_id:token\titem_id:token"), (2, "u1\tx")]


def test_recbole_is_fast(tmp_path):
  """200k rows (the size of Art+Office) must read in well under 3 s."""
  n, rng = 200_000, np.random.default_rng(0)
  users, items = rng.integers(0, 10_000, n), rng.integers(0, 30_000, n)
  _write(
    tmp_path / "Big.inter",
    "user_id:token\titem_id:token\ttimestamp:float\n"
    + "".join(f"U{u}\tI{i}\t{k}\n" for k, (u, i) in enumerate(zip(users.tolist(), items.tolist()))),
  )
  _write(
    tmp_path / "Big.item",
    "item_id:token\ttitle:token_seq\n" + "".join(f"I{i}\titem number {i}\n" for i in range(30_000)),
  )
  # CPU time, not wall time: CI runs test files in parallel on two cores.
  t = time.process_time()
  ds = read("recbole", str(tmp_path))
  elapsed = time.process_time() - t
  assert len(ds.domains["Big"].inter) == n
  np.testing.assert_array_equal(ds.domains["Big"].inter.item, items)
  assert elapsed < 2.0, f"200k rows took {elapsed:.2f} s of CPU"


# --- UniSRec ---------------------------------------------------------------------------------


@pytest.fixture
def unisrec_dir(tmp_path):
  head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
  _write(tmp_path / "Sci.item2index", "B0C\t2\nB0A\t0\nB0B\t1\nB0D\t3\n")  # any line order
  _write(tmp_path / "Sci.user2index", "AX\t0\nAY\t1\n")
  _write(
    tmp_path / "Sci.text",
    "item_id:token\ttext:token_seq\nB0A\tglue. tools. acme. \nB0B\ttape.\nB0C\tsaw.\n",
  )  # B0D has no text
  _write(tmp_path / "Sci.train.inter", head + "0\t2\t0\n0\t2 0\t1\n1\t3\t1\n")
  _write(tmp_path / "Sci.valid.inter", head + "0\t2 0 1\t3\n1\t3 1\t0\n")
  _write(tmp_path / "Sci.test.inter", head + "1\t3 1 0\t2\n0\t2 0 1 3\t1\n")
  return tmp_path


def test_unisrec(unisrec_dir):
  ds = read("unisrec", str(unisrec_dir))
  sci = ds.domains["Sci"]
  assert sci.items.ids.tolist() == ["B0A", "B0B", "B0C", "B0D"]  # row i = index i
  assert sci.items.text["text"].tolist() == ["glue. tools. acme. ", "tape.", "saw.", ""]
  assert ds.user_ids.tolist() == ["AY", "AX"]  # test-line order
  np.testing.assert_array_equal(sci.inter.user, [0, 0, 0, 0, 1, 1, 1, 1, 1])
  np.testing.assert_array_equal(sci.inter.item, [3, 1, 0, 2, 2, 0, 1, 3, 1])
  np.testing.assert_array_equal(sci.inter.order, [0, 1, 2, 3, 0, 1, 2, 3, 4])
  assert sci.inter.rating is None and ds.real_timestamps is False
  assert ds.log.raw == {"Sci": {"users": 2, "items": 4, "interactions": 9}}
  parts = sci.given_split.parts
  assert list(parts) == ["train", "valid", "test"]
  user, off, hist, target = parts["train"]
  np.testing.assert_array_equal(user, [1, 1, 0])  # shared indices
  np.testing.assert_array_equal(off, [0, 1, 3, 4])
  np.testing.assert_array_equal(hist, [2, 2, 0, 3])
  np.testing.assert_array_equal(target, [0, 1, 1])
  assert (user.dtype, off.dtype, hist.dtype, target.dtype) == (
    np.int32,
    np.int64,
    np.int32,
    np.int32,
  )
  user, off, hist, target = parts["test"]
  np.testing.assert_array_equal(user, [0, 1])
  np.testing.assert_array_equal(hist[off[1] : off[2]], [2, 0, 1, 3])


def test_unisrec_and_recbole_share_users_by_reviewer_id(unisrec_dir):
  _write(unisrec_dir / "Art.inter", "user_id:token\titem_id:token\nAX\ta\n")
  rec, uni = read_recbole(unisrec_dir, domains=["Art"]), read_unisrec(unisrec_dir)
  assert set(rec.user_ids) & set(uni.user_ids) == {"AX"}


# --- Amazon ----------------------------------------------------------------------------------


def _jl(rows):
  return "".join(json.dumps(r) + "\n" for r in rows)


def test_amazon_2014_gzip_python_literal_meta(tmp_path):
  _write(
    tmp_path / "reviews_Beauty.json.gz",
    _jl(
      [
        {"reviewerID": "R1", "asin": "B2", "overall": 5.0, "unixReviewTime": 1300000000},
        {"reviewerID": "R2", "asin": "B1", "overall": 3.0, "unixReviewTime": 1200000000},
        {"reviewerID": "R1", "asin": "B9", "overall": 1.0, "unixReviewTime": 1100000000},
      ]
    ),
    gz=True,
  )
  meta = [
    {
      "asin": "B1",
      "title": "Lip balm",
      "categories": [["Beauty", "Lips"], ["Sale"]],
      "brand": "Acme",
      "description": "Soft.",
    },
    {"asin": "B2", "title": "Soap", "salesRank": {"Beauty": 3}},
    {"asin": "B1", "title": "duplicate row"},
  ]
  _write(tmp_path / "meta_Beauty.json.gz", "".join(repr(m) + "\n" for m in meta), gz=True)
  ds = read("amazon", str(tmp_path), on_unknown_item="drop")
  b = ds.domains["Beauty"]
  assert ds.domain_names == ["Beauty"] and ds.real_timestamps is True
  assert b.items.ids.tolist() == ["B1", "B2"]
  assert b.items.text["title"].tolist() == ["Lip balm", "Soap"]
  assert b.items.text["categories"].tolist() == ["Beauty Lips Sale", ""]
  assert b.items.text["brand"].tolist() == ["Acme", ""]
  assert b.items.text["description"].tolist() == ["Soft.", ""]
  np.testing.assert_array_equal(b.inter.item, [1, 0])
  np.testing.assert_array_equal(b.inter.order, [1300000000, 1200000000])
  np.testing.assert_array_equal(b.inter.rating, [5, 3])
  assert ds.log.raw["Beauty"] == {"users": 2, "items": 2, "interactions": 3}
  assert ds.log.dropped["Beauty"] == {"unknown_item": 1, "duplicate_meta": 1}


def test_amazon_2018_json_meta(tmp_path):
  _write(
    tmp_path / "Office_5.json",
    _jl(
      [
        {
          "reviewerID": "R1",
          "asin": "O1",
          "overall": 4,
          "unixReviewTime": 1500000000,
          "reviewText": "ok",
        }
      ]
    ),
  )
  _write(
    tmp_path / "meta_Office.json",
    _jl(
      [
        {
          "asin": "O1",
          "title": "Pen",
          "category": ["Office", "Pens"],
          "brand": "Bic",
          "description": ["Blue.", "Fine tip."],
        }
      ]
    ),
  )
  o = read_amazon(tmp_path).domains["Office_5"]  # k-core file, the category's meta
  assert o.items.text["categories"].tolist() == ["Office Pens"]
  assert o.items.text["description"].tolist() == ["Blue. Fine tip."]


def test_amazon_2023_jsonl(tmp_path):
  _write(
    tmp_path / "Toys.jsonl",
    _jl(
      [
        {
          "user_id": "U1",
          "parent_asin": "P1",
          "asin": "C1",
          "rating": 4.0,
          "timestamp": 1600000000123,
        },
        {"user_id": "U2", "asin": "P2", "rating": 2.0, "timestamp": 1600000000000},
      ]
    ),
  )
  _write(
    tmp_path / "meta_Toys.jsonl",
    _jl(
      [
        {
          "parent_asin": "P2",
          "title": "Kite",
          "categories": ["Toys", "Outdoor"],
          "store": "SkyCo",
          "features": ["Red"],
          "description": ["Flies."],
        },
        {
          "parent_asin": "P1",
          "title": "Ball",
          "categories": [],
          "store": None,
          "features": [],
          "description": [],
        },
      ]
    ),
  )
  ds = read("amazon", str(tmp_path), domains=["Toys"])
  t = ds.domains["Toys"]
  assert t.items.ids.tolist() == ["P2", "P1"]
  assert t.items.text["brand"].tolist() == ["SkyCo", ""]
  assert t.items.text["description"].tolist() == ["Red Flies.", ""]
  np.testing.assert_array_equal(t.inter.item, [1, 0])
  np.testing.assert_allclose(t.inter.order, [1600000000.123, 1600000000.0])  # ms -> s


def test_amazon_without_meta(tmp_path):
  _write(
    tmp_path / "Toys.json",
    _jl(
      [
        {"reviewerID": "R1", "asin": "X", "overall": 5, "unixReviewTime": 1},
        {"reviewerID": "R2", "asin": "Y", "overall": 5, "unixReviewTime": 2},
        {"reviewerID": "R2", "asin": "X", "overall": 5, "unixReviewTime": 3},
      ]
    ),
  )
  ds = read("amazon", str(tmp_path))
  t = ds.domains["Toys"]
  assert t.items.ids.tolist() == ["X", "Y"]
  assert t.items.text["title"].tolist() == ["", ""]
  assert ds.log.raw["Toys"] == {"users": 2, "items": 2, "interactions": 3}


# --- textio: block boundaries ----------------------------------------------------------------

_TEXT = "h:token\r\nünï\tcödé\n\n\u2028 inside\x85 text\nlast line without break"


@pytest.mark.parametrize("gz", [False, True])
def test_open_text_is_block_size_independent(tmp_path, monkeypatch, gz):
  """Lines straddling blocks (and multi-byte characters split by them) come out whole."""
  p = _write(tmp_path / "t.txt", _TEXT, gz=gz)
  want = list(
    enumerate(["h:token", "ünï\tcödé", "", "\u2028 inside\x85 text", "last line without break"], 1)
  )
  for block in (1, 2, 3, 7, 1 << 22):
    monkeypatch.setattr("xdkt_jax.data.textio._BLOCK", block)
    assert list(open_text(p)) == want


def test_truncated_gzip_reports_the_cut_line(tmp_path, monkeypatch):
  monkeypatch.setattr("xdkt_jax.data.textio._BLOCK", 64)
  lines = [f"line {i} " + "x" * (i % 37) for i in range(5000)]
  p = _write(tmp_path / "t.gz", "\n".join(lines) + "\n", gz=True)
  data = p.read_bytes()
  p.write_bytes(data[: len(data) * 2 // 3])
  got = []
  with pytest.raises(DataError) as e:
    for ln, line in open_text(p):
      got.append(line)
  assert got == lines[: len(got)] and len(got) > 100  # everything before the cut, intact
  assert f"t.gz:{len(got) + 1}: truncated gzip" in str(e.value)
