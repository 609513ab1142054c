import numpy as np
import pytest

from conftest import make_dataset
from xdkt_jax.data import tokenization as T


def ds(texts):
  return make_dataset({"A": [("u", i, i) for i in range(len(texts))]}, texts={"A": texts})


def test_tokenize_truncates_pads_and_caches(tmp_path):
  texts = ["red pencil set", "a very long " + "word " * 100, ""]
  out = T.tokenize_items(ds(texts), tokenizer="minilm", max_len=16, cache_dir=str(tmp_path))
  ids, mask = out.ids["A"], out.mask["A"]
  assert ids.shape == (3, 16) and ids.dtype == np.int32
  assert mask[0].sum() == 5  # [CLS] red pencil set [SEP]
  assert mask[1].sum() == 16  # truncated at max_len
  assert mask[2].sum() == 2  # [CLS] [SEP]
  assert (ids[mask == 0] == out.pad_id).all()
  assert not out.cache_hit
  again = T.tokenize_items(ds(texts), tokenizer="minilm", max_len=16, cache_dir=str(tmp_path))
  assert again.cache_hit and again.fingerprint == out.fingerprint
  assert np.array_equal(again.ids["A"], ids)


def test_fingerprint_covers_text_and_settings(tmp_path):
  a = T.tokenize_items(ds(["x y"]), tokenizer="minilm", max_len=8, cache_dir=str(tmp_path))
  b = T.tokenize_items(ds(["x z"]), tokenizer="minilm", max_len=8, cache_dir=str(tmp_path))
  c = T.tokenize_items(ds(["x y"]), tokenizer="minilm", max_len=9, cache_dir=str(tmp_path))
  assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
  assert not b.cache_hit and not c.cache_hit
  assert len(list(tmp_path.glob("tok-*.npz"))) == 3


def test_tokenizer_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    T.resolve_tokenizer_dir(str(tmp_path / "nope"))
  with pytest.raises(ValueError, match="no tokenizer files"):
    T.resolve_tokenizer_dir(str(tmp_path))
