"""tools/same_results.py, the check that a refactor moved no result: it must see a change in
the last digit anywhere in results.json, and nothing else."""

import importlib.util
import json

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("same_results", ROOT / "tools" / "same_results.py")
same_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(same_results)

RESULT = {
  "metrics": {
    "xdkt": {"ndcg@10": {"mean": 0.123456789, "ci95": [0.1, 0.2]}},
    "pop": {"ndcg@10": {"mean": float("nan")}},
  },
  "seeds": {"xdkt": [0, 1, 2]},
  "config": {"data": {"cache_dir": "/a"}, "seed": 0},
  "timings_s": {"recommend": 12.5},
}


def _write(tmp_path, name, r):
  path = tmp_path / name
  path.write_text(json.dumps(r))
  return path


def test_identical_apart_from_wall_times_and_the_cache_folder(tmp_path):
  other = json.loads(json.dumps(RESULT))
  other["timings_s"]["recommend"] = 99.0
  other["config"]["data"]["cache_dir"] = "/b"
  a, b = _write(tmp_path, "a.json", RESULT), _write(tmp_path, "b.json", other)
  assert same_results.differences(same_results.comparable(a), same_results.comparable(b)) == []
  assert same_results.report("t", a, b)


def test_a_last_digit_a_missing_key_or_a_seed_is_a_difference(tmp_path):
  a = _write(tmp_path, "a.json", RESULT)
  for change in (
    lambda r: r["metrics"]["xdkt"]["ndcg@10"].update(mean=0.123456788),
    lambda r: r["metrics"]["xdkt"]["ndcg@10"]["ci95"].append(0.3),
    lambda r: r["metrics"].pop("pop"),
    lambda r: r["seeds"].update(xdkt=[0, 1, 3]),
    lambda r: r["config"].update(seed=1),
    lambda r: r["seeds"].update(xdkt=[0.0, 1, 2]),
  ):  # a type change
    other = json.loads(json.dumps(RESULT))
    change(other)
    b = _write(tmp_path, "b.json", other)
    assert (
      len(same_results.differences(same_results.comparable(a), same_results.comparable(b))) == 1
    )
    assert not same_results.report("t", a, b)


def test_named_config_changes_are_the_only_ones_allowed(tmp_path):
  """A retired config key may be missing on one side when named, and only that key: a
  metric or another config key still differs."""
  old = json.loads(json.dumps(RESULT))
  old["config"]["knowledge"] = {"steps": 100, "user_mode": "mean"}
  new = json.loads(json.dumps(RESULT))
  new["config"]["knowledge"] = {"steps": 100}
  a, b = _write(tmp_path, "a.json", old), _write(tmp_path, "b.json", new)
  assert not same_results.report("t", a, b)
  assert same_results.report("t", a, b, ["knowledge.user_mode"])
  new["config"]["knowledge"]["steps"] = 200
  new["metrics"]["xdkt"]["ndcg@10"]["mean"] = 0.5
  b = _write(tmp_path, "b.json", new)
  diffs = same_results.differences(
    same_results.comparable(a, ["knowledge.user_mode"]),
    same_results.comparable(b, ["knowledge.user_mode"]),
  )
  assert len(diffs) == 2
