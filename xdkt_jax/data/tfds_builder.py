"""A tensorflow-datasets builder over the readers, writing array_record (no TensorFlow needed).

Why: array_record + `tfds.data_source` gives random access to interactions for grain-style
input pipelines, and TFDS records the version and the raw counts next to the data.  The
builder reads a `manual_dir` holding any format `readers.read` understands.

TFDS gives one feature schema per builder, so every record has the same flat fields and the
split says which are meaningful:

  interactions  domain, user, items, order_bits, rating, rows   (one record per (domain, user):
                that user's rows in file order, and their row numbers in the domain's table)
  items         domain, item, id, text                          (text: one value per field)
  users         user, id, text ([split] when the data ships a user split, else [])
  given         domain, part, user, items (= history), item (= target)   (UniSRec split)

A user's sequence per record is the unit a sequential recommender reads, and it keeps the
record count (and TFDS's per-record Python cost) ~10x below one record per interaction.
tf.Example stores floats as float32 only, so the float64 order key travels as its IEEE-754
bit pattern in an int64 (`order_bits`): unix times need more than float32's 24 bits.
Everything the arrays cannot carry (domain order, text field names, whether ratings exist,
raw counts and drops) lives in `info.metadata`.  `load_tfds` turns it all back into a
`CrossDomainDataset` whose fingerprint equals the one read directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.utils import py_utils
from tensorflow_datasets.proto import tf_example_pb2

from xdkt_jax.data.readers import read
from xdkt_jax.data.schema import (
  CrossDomainDataset,
  DataError,
  Domain,
  GivenSplit,
  Interactions,
  ItemTable,
  PrepLog,
)

_CHUNK = 8192  # records decoded per data-source call when loading back


@dataclasses.dataclass(eq=False)
class XdktConfig(tfds.core.BuilderConfig):
  """Which reader to run over manual_dir, and its options."""

  fmt: str = "recbole"
  domains: tuple[str, ...] | None = None
  on_unknown_item: str = "error"


def _features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict(
    {
      "domain": tfds.features.Text(),
      "user": np.int32,
      "item": np.int32,
      "id": tfds.features.Text(),
      "text": tfds.features.Sequence(tfds.features.Text()),
      "part": tfds.features.Text(),
      "items": tfds.features.Sequence(np.int32),
      "order_bits": tfds.features.Sequence(np.int64),
      "rating": tfds.features.Sequence(np.float32),
      "rows": tfds.features.Sequence(np.int64),
    }
  )


# TFDS needs every feature in every record; these fill the ones a split does not use.
_BLANK = {
  "domain": "",
  "user": -1,
  "item": -1,
  "id": "",
  "text": [],
  "part": "",
  "items": [],
  "order_bits": [],
  "rating": [],
  "rows": [],
}


class XdktCrossDomain(tfds.core.GeneratorBasedBuilder):
  """Cross-domain interactions + item text from a manual_dir (RecBole / UniSRec / Amazon)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [XdktConfig(name=f, fmt=f) for f in ("recbole", "unisrec", "amazon")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put the data files in manual_dir: RecBole atomic files (<D>.inter, <D>.item), UniSRec "
    "downstream files (<D>.text, <D>.{train,valid,test}.inter, <D>.user2index, "
    "<D>.item2index) or Amazon dumps (reviews_<C>.json[.gz] / <C>.jsonl[.gz] + meta)."
  )

  @py_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup touches `importlib_resources`, which is not installed (nor needed).
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    # Not dataset_info_from_configs: that looks for CITATIONS.bib etc. beside this module.
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__.splitlines()[0],
      features=_features(),
      metadata=tfds.core.MetadataDict(),
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    try:
      manual = dl_manager.manual_dir
    except AssertionError as e:  # TFDS says "manual dir missing" with an assert.
      raise DataError(
        getattr(dl_manager, "_manual_dir", "manual_dir"), f"manual_dir missing or empty: {e}"
      ) from None
    ds = read(
      cfg.fmt,
      str(manual),
      domains=None if cfg.domains is None else list(cfg.domains),
      on_unknown_item=cfg.on_unknown_item,
    )
    self.info.metadata.update(_metadata(ds, cfg.fmt))
    splits = {
      "interactions": _interaction_records(ds),
      "items": _item_records(ds),
      "users": _user_records(ds),
    }
    if any(d.given_split is not None for d in ds.domains.values()):
      splits["given"] = _given_records(ds)
    return {k: self._generate_examples(v) for k, v in splits.items()}

  def _generate_examples(self, records):
    # Ascending integer keys + disable_shuffling keep file order = generation order.
    for k, rec in enumerate(records):
      yield k, {**_BLANK, **rec}


def _metadata(ds: CrossDomainDataset, fmt: str) -> dict:
  """What the records cannot carry; JSON-serialisable."""
  return {
    "format": fmt,
    "name": ds.name,
    "real_timestamps": bool(ds.real_timestamps),
    "has_user_split": ds.user_split is not None,
    "domains": list(ds.domains),
    "n_users": int(ds.n_users),
    "text_fields": {n: list(d.items.text) for n, d in ds.domains.items()},
    "has_rating": {n: d.inter.rating is not None for n, d in ds.domains.items()},
    "n_interactions": {n: len(d.inter) for n, d in ds.domains.items()},
    "given_parts": {
      n: list(d.given_split.parts) for n, d in ds.domains.items() if d.given_split is not None
    },
    "source": {n: d.source for n, d in ds.domains.items()},
    "log": dataclasses.asdict(ds.log),
  }


def _interaction_records(ds):
  for name, d in ds.domains.items():
    bits = np.ascontiguousarray(d.inter.order, dtype=np.float64).view(np.int64)
    perm = np.argsort(d.inter.user, kind="stable")  # rows of one user stay in file order
    users = d.inter.user[perm]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(perm)]):
      rows = perm[s:e]
      yield {
        "domain": name,
        "user": int(users[s]),
        "items": d.inter.item[rows],
        "order_bits": bits[rows],
        "rows": rows.astype(np.int64),
        "rating": [] if d.inter.rating is None else d.inter.rating[rows],
      }


def _item_records(ds):
  for name, d in ds.domains.items():
    cols = list(d.items.text.values())
    for i in range(len(d.items)):
      yield {"domain": name, "item": i, "id": d.items.ids[i], "text": [c[i] for c in cols]}


def _user_records(ds):
  for j, uid in enumerate(ds.user_ids.tolist()):
    yield {"user": j, "id": uid, "text": [] if ds.user_split is None else [ds.user_split[j]]}


def _given_records(ds):
  for name, d in ds.domains.items():
    if d.given_split is None:
      continue
    for part, (user, off, hist, target) in d.given_split.parts.items():
      for j in range(len(user)):
        yield {
          "domain": name,
          "part": part,
          "user": int(user[j]),
          "item": int(target[j]),
          "items": hist[off[j] : off[j + 1]],
        }


def build(
  manual_dir,
  data_dir,
  *,
  fmt: str,
  domains=None,
  on_unknown_item: str = "error",
  name: str | None = None,
) -> XdktCrossDomain:
  """Prepare (once) and return the builder for the data in manual_dir.

  The config name (the dataset's folder under data_dir) defaults to the format plus the
  options, e.g. 'recbole' or 'recbole-Art-Office-drop'.
  """
  domains = None if domains is None else tuple([domains] if isinstance(domains, str) else domains)
  if name is None:
    name = "-".join(
      [fmt, *(domains or ())] + ([on_unknown_item] if on_unknown_item != "error" else [])
    )
  cfg = XdktConfig(name=name, fmt=fmt, domains=domains, on_unknown_item=on_unknown_item)
  known = XdktCrossDomain.builder_configs.get(name)
  if known is not None:  # TFDS refuses a second config object under a registered name.
    if (known.fmt, known.domains, known.on_unknown_item) != (fmt, domains, on_unknown_item):
      raise ValueError(f"config name '{name}' is taken by {known}; pick another name")
    cfg = name
  builder = XdktCrossDomain(config=cfg, data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  )
  return builder


def _records(source) -> list[dict]:
  """All records of a split as {feature: list of values}.

  Raw bytes parsed with TFDS's own tf.Example proto: TFDS's per-record numpy decoder costs
  ~250 us a record (a minute for Art+Office), the proto parser a few us; the storage format
  (tf.Example in array_record) is the documented one.
  """
  n = len(source)
  out = []
  for s in range(0, n, _CHUNK):
    for raw in source.__getitems__(list(range(s, min(n, s + _CHUNK)))):
      feats = tf_example_pb2.Example.FromString(raw).features.feature
      out.append(
        {
          k: getattr(f, f.WhichOneof("kind")).value if f.WhichOneof("kind") else []
          for k, f in feats.items()
        }
      )
  return out


def _s(x) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _strings(values) -> np.ndarray:
  out = np.empty(len(values), dtype=object)
  out[:] = [_s(v) for v in values]
  return out


def _one(r, key, default=None):
  v = r.get(key, ())
  return v[0] if len(v) else default


def load_tfds(name_or_builder, data_dir=None) -> CrossDomainDataset:
  """Read a prepared builder (or its registered name, e.g. 'xdkt_cross_domain/recbole') back
  into the schema, via `as_data_source` (random-access array_record; no TensorFlow)."""
  builder = name_or_builder
  if isinstance(builder, (str, Path)):
    builder = tfds.builder(str(builder), data_dir=None if data_dir is None else str(data_dir))
  meta = builder.info.metadata
  if not meta or "domains" not in meta:
    raise DataError(
      builder.data_dir,
      "not prepared by XdktCrossDomain (no metadata); run download_and_prepare first",
    )
  src = builder.as_data_source(deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)

  users = sorted(_records(src["users"]), key=lambda r: _one(r, "user"))
  user_ids = _strings([_one(r, "id") for r in users])
  user_split = _strings([r["text"][0] for r in users]) if meta["has_user_split"] else None

  by_dom: dict[str, list] = {n: [] for n in meta["domains"]}
  for r in _records(src["items"]):
    by_dom[_s(_one(r, "domain"))].append(r)
  inter: dict[str, list] = {n: [] for n in meta["domains"]}
  for r in _records(src["interactions"]):
    inter[_s(_one(r, "domain"))].append(r)
  given: dict[str, dict[str, list]] = {
    n: {p: [] for p in parts} for n, parts in meta["given_parts"].items()
  }
  if "given" in src:
    for r in _records(src["given"]):
      given[_s(_one(r, "domain"))][_s(_one(r, "part"))].append(r)

  domains = {}
  for n in meta["domains"]:
    items = sorted(by_dom[n], key=lambda r: _one(r, "item"))
    fields = meta["text_fields"][n]
    text = {f: _strings([r["text"][k] for r in items]) for k, f in enumerate(fields)}
    dom = Domain(
      name=n,
      items=ItemTable(ids=_strings([_one(r, "id") for r in items]), text=text),
      inter=_interactions(
        inter[n],
        meta["n_interactions"][n],
        meta["has_rating"][n],
        f"{builder.data_dir} (domain {n})",
      ),
      source=meta["source"][n],
    )
    if n in given:
      dom.given_split = GivenSplit(parts={p: _given_part(rs) for p, rs in given[n].items()})
    domains[n] = dom
  # Every PrepLog field is {domain: {step: count}}; rebuild whichever fields were saved.
  log = PrepLog(
    **{
      f: {k: dict(v) for k, v in meta["log"][f].items()}
      for f in (x.name for x in dataclasses.fields(PrepLog))
      if f in meta["log"]
    }
  )
  return CrossDomainDataset(
    domains=domains,
    user_ids=user_ids,
    real_timestamps=meta["real_timestamps"],
    user_split=user_split,
    name=meta["name"],
    log=log,
  )


def _cat(rows, key, dtype):
  parts = [np.asarray(r.get(key, ()), dtype=dtype) for r in rows]
  return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _interactions(records, n: int, has_rating: bool, where: str) -> Interactions:
  """Scatter per-user records back to their row positions (the original file order)."""
  rows = _cat(records, "rows", np.int64)
  if len(rows) != n or (n and not np.array_equal(np.sort(rows), np.arange(n))):
    raise DataError(where, f"interaction records do not cover rows 0..{n - 1} exactly")
  user = np.empty(n, np.int32)
  user[rows] = np.repeat(
    [_one(r, "user") for r in records], [len(r.get("rows", ())) for r in records]
  ).astype(np.int32)
  item = np.empty(n, np.int32)
  item[rows] = _cat(records, "items", np.int32)
  order = np.empty(n, np.float64)
  order[rows] = _cat(records, "order_bits", np.int64).view(np.float64)
  rating = None
  if has_rating:
    rating = np.empty(n, np.float32)
    rating[rows] = _cat(records, "rating", np.float32)
  return Interactions(user=user, item=item, order=order, rating=rating)


def _given_part(rows):
  lengths = [len(r.get("items", ())) for r in rows]
  off = np.zeros(len(rows) + 1, dtype=np.int64)
  np.cumsum(lengths, out=off[1:])
  return (
    np.array([_one(r, "user") for r in rows], dtype=np.int32),
    off,
    _cat(rows, "items", np.int32),
    np.array([_one(r, "item") for r in rows], dtype=np.int32),
  )
