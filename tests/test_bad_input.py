"""Every user mistake in a data folder is a one-line DataError naming file, line and field.

Each case writes a small broken folder into tmp_path and checks the message pinpoints the
problem, because "KeyError: 'asin'" after ten minutes of reading is what we are replacing.
"""

import gzip
import json

import pytest

from xdkt_jax.data.readers import read
from xdkt_jax.data.schema import DataError
from xdkt_jax.data.textio import open_text
from conftest import write_file

INTER = "user_id:token\titem_id:token\ttimestamp:float\n"
ITEM = "item_id:token\ttitle:token_seq\n"


_write = write_file


def _recbole(
  tmp_path,
  inter=INTER + "u1\ti1\t1\nu2\ti2\t2\n",
  item=ITEM + "i1\tred pen\ni2\tblue ink\n",
  name="Art",
):
  _write(tmp_path / f"{name}.inter", inter)
  if item is not None:
    _write(tmp_path / f"{name}.item", item)
  return tmp_path


def _error(fmt, path, **kw) -> str:
  with pytest.raises(DataError) as e:
    read(fmt, str(path), **kw)
  msg = str(e.value)
  assert "\n" not in msg, msg
  return msg


def _unisrec(tmp_path, test_lines="0\t0 1\t2\n1\t1\t2\n"):
  d = tmp_path
  _write(d / "Sci.item2index", "B01\t0\nB02\t1\nB03\t2\n")
  _write(d / "Sci.user2index", "AU1\t0\nAU2\t1\n")
  _write(d / "Sci.text", "item_id:token\ttext:token_seq\nB01\tpen.\nB02\tink.\nB03\tpad.\n")
  head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
  _write(d / "Sci.train.inter", head + "0\t0\t1\n")
  _write(d / "Sci.valid.inter", head + "0\t0\t1\n1\t1\t2\n")
  _write(d / "Sci.test.inter", head + test_lines)
  return d


# --- files and folders -----------------------------------------------------------------------


def test_missing_folder(tmp_path):
  msg = _error("recbole", tmp_path / "nowhere")
  assert "nowhere" in msg and "folder not found" in msg


def test_missing_file(tmp_path):
  d = _unisrec(tmp_path)
  (d / "Sci.item2index").unlink()
  msg = _error("unisrec", d)
  assert "Sci.item2index" in msg and "not found" in msg


def test_open_text_missing_file(tmp_path):
  with pytest.raises(DataError, match="gone.txt: file not found"):
    list(open_text(tmp_path / "gone.txt"))


def test_configured_domain_not_in_folder(tmp_path):
  d = _recbole(tmp_path)
  _recbole(tmp_path, name="Office")
  msg = _error("recbole", d, domains=["Art", "Toys"])
  assert str(d) in msg and "'Toys'" in msg and "Art, Office" in msg


def test_folder_without_domains(tmp_path):
  msg = _error("recbole", tmp_path)
  assert str(tmp_path) in msg and "<D>.inter" in msg


def test_unknown_format(tmp_path):
  assert "unknown data format 'csv'" in _error("csv", tmp_path)


def test_bad_on_unknown_item_value(tmp_path):
  msg = _error("recbole", _recbole(tmp_path), on_unknown_item="ignore")
  assert "field 'on_unknown_item'" in msg


# --- headers ---------------------------------------------------------------------------------


def test_missing_header(tmp_path):
  d = _recbole(tmp_path, inter="u1\ti1\t1\nu2\ti2\t2\n")
  msg = _error("recbole", d)
  assert f"{d / 'Art.inter'}:1:" in msg and "missing header" in msg


def test_header_column_without_type(tmp_path):
  d = _recbole(tmp_path, inter="user_id:token\titem_id\ttimestamp:float\nu1\ti1\t1\n")
  msg = _error("recbole", d)
  assert f"Art.inter:1: field 'item_id'" in msg and "not 'name:type'" in msg


def test_unknown_type_suffix(tmp_path):
  d = _recbole(tmp_path, item="item_id:tokn\ttitle:token_seq\ni1\tpen\n")
  msg = _error("recbole", d)
  assert "Art.item:1: field 'item_id': unknown type 'tokn'" in msg


def test_missing_required_column(tmp_path):
  d = _recbole(tmp_path, inter="user_id:token\ttimestamp:float\nu1\t1\n")
  msg = _error("recbole", d)
  assert "Art.inter:1: field 'item_id': required column missing" in msg


# --- values ----------------------------------------------------------------------------------


def test_non_numeric_timestamp(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu2\ti2\tyesterday\n")
  msg = _error("recbole", d)
  assert "Art.inter:3: field 'timestamp': not a number: 'yesterday'" in msg


def test_non_finite_timestamp(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\tnan\n")
  assert "Art.inter:2: field 'timestamp': not a finite number" in _error("recbole", d)


def test_non_numeric_rating(tmp_path):
  inter = "user_id:token\titem_id:token\trating:float\nu1\ti1\t5\nu1\ti2\t4\nu2\ti2\tfive\n"
  msg = _error("recbole", _recbole(tmp_path, inter=inter))
  assert "Art.inter:4: field 'rating': not a number: 'five'" in msg


def test_too_few_columns(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu2\ti2\n")
  msg = _error("recbole", d)
  assert "Art.inter:3: field 'timestamp': missing" in msg and "2 tab-separated" in msg


def test_too_many_columns(tmp_path):
  d = _recbole(tmp_path, item=ITEM + "i1\tred\tpen\ni2\tink\n")
  msg = _error("recbole", d)
  assert "Art.item:2:" in msg and "3 tab-separated columns, the header has 2" in msg


def test_empty_domain_header_only(tmp_path):
  d = _recbole(tmp_path, inter=INTER)
  msg = _error("recbole", d)
  assert "Art.inter:1:" in msg and "empty" in msg


def test_empty_user_id(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\t1\n\ti2\t2\n")
  assert "Art.inter:3: field 'user_id': empty value" in _error("recbole", d)


def test_duplicate_item_id(tmp_path):
  d = _recbole(tmp_path, item=ITEM + "i1\tred pen\ni2\tblue ink\ni1\tgreen pen\n")
  msg = _error("recbole", d)
  assert "Art.item:4: field 'item_id': duplicate item id 'i1' (first on line 2)" in msg


def test_unknown_item_error_mode(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu2\tzz9\t2\nu2\tzz8\t3\n")
  msg = _error("recbole", d)
  assert "Art.inter:3: field 'item_id': unknown item 'zz9'" in msg and "2 row(s)" in msg


def test_unknown_item_drop_mode_is_counted(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu2\tzz9\t2\nu3\tzz8\t3\n")
  ds = read("recbole", str(d), on_unknown_item="drop")
  assert ds.log.dropped == {"Art": {"unknown_item": 2}}
  assert ds.log.raw["Art"] == {"users": 3, "items": 2, "interactions": 3}
  assert len(ds.domains["Art"].inter) == 1 and ds.user_ids.tolist() == ["u1"]


def test_drop_mode_refuses_to_drop_everything(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\tzz1\t1\nu2\tzz2\t2\n")
  msg = _error("recbole", d, on_unknown_item="drop")
  assert "Art.inter:2: field 'item_id': all 2 rows name items not in Art.item" in msg


def test_invalid_utf8_names_line(tmp_path):
  d = _recbole(tmp_path)
  (d / "Art.item").write_bytes(ITEM.encode() + b"i1\tred pen\ni2\tbl\xffue\n")
  msg = _error("recbole", d)
  assert "Art.item:3:" in msg and "invalid UTF-8" in msg


def test_duplicate_user_in_users_tsv(tmp_path):
  d = _recbole(tmp_path)
  _write(d / "users.tsv", "user_id\tsplit\nu1\ttrain\nu2\ttest\nu1\tvalid\n")
  assert "users.tsv:4: field 'user_id': user 'u1' listed twice" in _error("recbole", d)


# --- gzip --------------------------------------------------------------------------------------


def _reviews(n):
  return "".join(
    json.dumps(
      {
        "reviewerID": f"U{i % 50}",
        "asin": f"B{i % 300:04d}",
        "overall": 5.0,
        "unixReviewTime": 1_400_000_000 + i,
        "reviewText": f"review number {i} " * 5,
      }
    )
    + "\n"
    for i in range(n)
  )


def test_truncated_gzip(tmp_path):
  p = _write(tmp_path / "reviews_Toys.json.gz", _reviews(3000), gz=True)
  data = p.read_bytes()
  p.write_bytes(data[: len(data) // 2])
  msg = _error("amazon", tmp_path)
  assert "reviews_Toys.json.gz:" in msg and "truncated gzip" in msg
  line = int(msg.split("reviews_Toys.json.gz:")[1].split(":")[0])
  assert 1 < line <= 3000


def test_corrupt_gzip(tmp_path):
  p = _write(tmp_path / "reviews_Toys.json.gz", _reviews(3000), gz=True)
  data = bytearray(p.read_bytes())
  for k in range(200, 260):
    data[k] ^= 0x5A
  p.write_bytes(bytes(data))
  msg = _error("amazon", tmp_path)
  assert "reviews_Toys.json.gz:" in msg and "gzip" in msg


def test_invalid_utf8_inside_gzip(tmp_path):
  p = tmp_path / "Toys.inter"
  with gzip.open(p, "wb") as f:  # gzip detected by content, not by the name
    f.write(INTER.encode() + b"u1\ti1\t1\nu\xc3\x28\ti2\t2\n")
  _write(tmp_path / "Toys.item", ITEM + "i1\ta\ni2\tb\n")
  msg = _error("recbole", tmp_path)
  assert "Toys.inter:3:" in msg and "invalid UTF-8" in msg


# --- Amazon JSON -----------------------------------------------------------------------------


def test_malformed_json_line(tmp_path):
  lines = _reviews(3).splitlines()
  lines[1] = lines[1][:-5]
  _write(tmp_path / "reviews_Toys.json", "\n".join(lines) + "\n")
  msg = _error("amazon", tmp_path)
  assert "reviews_Toys.json:2: malformed JSON" in msg


def test_json_line_missing_required_key(tmp_path):
  recs = [json.loads(x) for x in _reviews(4).splitlines()]
  del recs[2]["asin"]
  _write(tmp_path / "Toys.json", "".join(json.dumps(r) + "\n" for r in recs))
  msg = _error("amazon", tmp_path)
  assert "Toys.json:3: field 'asin': missing required key" in msg


def test_json_line_non_numeric_rating(tmp_path):
  recs = [json.loads(x) for x in _reviews(4).splitlines()]
  recs[3]["overall"] = "great"
  _write(tmp_path / "Toys.json", "".join(json.dumps(r) + "\n" for r in recs))
  assert "Toys.json:4: field 'overall': not a number: 'great'" in _error("amazon", tmp_path)


def test_meta_line_neither_json_nor_literal(tmp_path):
  _write(tmp_path / "Toys.json", _reviews(3))
  _write(tmp_path / "meta_Toys.json", "{'asin': 'B0000', 'title': 'x'}\n{'asin': 'B0001', 'ti\n")
  msg = _error("amazon", tmp_path)
  assert "meta_Toys.json:2: malformed line" in msg


def test_meta_missing_asin(tmp_path):
  _write(tmp_path / "Toys.json", _reviews(3))
  _write(tmp_path / "meta_Toys.json", '{"asin": "B0000"}\n{"title": "no id"}\n')
  assert "meta_Toys.json:2: field 'asin': missing required key" in _error("amazon", tmp_path)


# --- UniSRec ---------------------------------------------------------------------------------


def test_unisrec_target_out_of_range(tmp_path):
  d = _unisrec(tmp_path, test_lines="0\t0 1\t2\n1\t1\t7\n")
  msg = _error("unisrec", d)
  assert "Sci.test.inter:3: field 'item_id': index 7 out of range: not in Sci.item2index" in msg


def test_unisrec_history_out_of_range(tmp_path):
  d = _unisrec(tmp_path, test_lines="0\t0 1\t2\n1\t1 3\t2\n")
  msg = _error("unisrec", d, on_unknown_item="drop")  # an index is never droppable
  assert "Sci.test.inter:3: field 'item_id_list': index 3 out of range" in msg


def test_unisrec_non_integer_index(tmp_path):
  d = _unisrec(tmp_path)
  _write(d / "Sci.item2index", "B01\t0\nB02\tone\nB03\t2\n")
  assert "Sci.item2index:2: field 'item_id index': not an integer index: 'one'" in _error(
    "unisrec", d
  )


def test_unisrec_text_names_unknown_item(tmp_path):
  d = _unisrec(tmp_path)
  _write(d / "Sci.text", "item_id:token\ttext:token_seq\nB01\tpen.\nB99\tghost.\n")
  assert "Sci.text:3: field 'item_id': unknown item 'B99'" in _error("unisrec", d)
  ds = read("unisrec", str(d), on_unknown_item="drop")
  assert ds.log.dropped == {"Sci": {"text_unknown_item": 1}}
  assert ds.domains["Sci"].items.text["text"].tolist() == ["pen.", "", ""]


def test_unisrec_user_twice_in_test(tmp_path):
  d = _unisrec(tmp_path, test_lines="0\t0 1\t2\n0\t1\t2\n")
  assert "Sci.test.inter:3: field 'user_id': user 0 has two test lines" in _error("unisrec", d)


# --- data contracts (issue: nothing lost, nothing cryptic) -----------------------------------


def test_users_tsv_labels_are_normalised_and_counted_or_refused(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu2\ti2\t2\nu3\ti1\t3\n")
  _write(d / "users.tsv", "user_id\tsplit\nu1\tTest\nu2\tvalid \n")
  ds = read("recbole", str(d))
  assert ds.user_split.tolist() == ["test", "valid", ""]
  assert ds.log.notes["users.tsv"] == {"labels_normalised": 2, "users_without_label": 1}
  _write(d / "users.tsv", "user_id\tsplit\nu1\ttest\nu2\tvalidation\n")
  assert "users.tsv:3: field 'split': unknown split label 'validation'" in _error("recbole", d)


def test_a_repeated_header_line_is_refused(tmp_path):
  d = _recbole(tmp_path, item=ITEM + "i1\tred pen\n" + ITEM + "i2\tblue ink\n")
  assert "Art.item:3: the header line is repeated inside the file" in _error("recbole", d)


def test_a_nul_byte_in_an_id_is_refused(tmp_path):
  d = _recbole(tmp_path, inter=INTER + "u1\ti1\t1\nu\x002\ti2\t2\n")
  assert "Art.inter:3: a NUL byte inside a field" in _error("recbole", d)


def test_deeply_nested_or_huge_json_is_one_line(tmp_path):
  recs = _reviews(2).splitlines()
  deep = json.loads(recs[1])
  deep["reviewText"] = "[" * 100_000 + "]" * 100_000
  _write(
    tmp_path / "Toys.json",
    recs[0]
    + "\n"
    + json.dumps(deep).replace(json.dumps(deep["reviewText"]), deep["reviewText"])
    + "\n",
  )
  assert "Toys.json:2: the JSON is nested too deeply to read" in _error("amazon", tmp_path)
  huge = json.loads(recs[1])
  _write(
    tmp_path / "Toys.json",
    recs[0] + "\n" + json.dumps(huge).replace('"overall": 5.0', '"overall": ' + "9" * 5000) + "\n",
  )
  msg = _error("amazon", tmp_path)
  assert "Toys.json:2: unreadable JSON value" in msg


def test_cr_only_line_breaks_and_a_dangling_link(tmp_path):
  d = _recbole(tmp_path, inter=(INTER + "u1\ti1\t1\n").replace("\n", "\r"))
  msg = _error("recbole", d)
  assert "Art.inter:1: line breaks are carriage returns alone" in msg and "\r" not in msg
  d = _recbole(tmp_path / "b", item=None)
  (d / "Art.item").symlink_to(tmp_path / "gone.item")
  assert "Art.item: a symbolic link to a missing file" in _error("recbole", d)


def test_unisrec_files_that_disagree_on_users(tmp_path):
  d = _unisrec(tmp_path, test_lines="0\t0 1\t2\n")  # user 1 valid, but no test line
  msg = _error("unisrec", d)
  assert "Sci.valid.inter:3: field 'user_id': user 1 has no line in Sci.test.inter" in msg


def test_unisrec_index_past_64_bits_names_its_line(tmp_path):
  d = _unisrec(tmp_path, test_lines="0\t0 1\t2\n1\t1\t" + "9" * 30 + "\n")
  assert (
    "Sci.test.inter:3: field 'item_id': integer index 99999999999999999999… is past the "
    "64-bit range" in _error("unisrec", d)
  )
