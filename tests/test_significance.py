"""Two-level bootstrap, paired tests, Holm correction and the significance verdict, each
against a NumPy/SciPy reference on constructed cases."""

import numpy as np
import pytest
from scipy import stats

from xdkt_jax import significance as S


def _slow_two_level_means(values, seed_idx, user_idx):
  """Loop reference: the mean of each resampled array, built element by element."""
  out = []
  for sb, ub in zip(seed_idx, user_idx):
    cells = [values[s, u] for s in sb for u in ub]
    out.append(np.mean(cells))
  return np.array(out)


def test_two_level_means_equal_the_loop_reference_for_the_same_draws():
  rng = np.random.default_rng(0)
  v = rng.random((3, 17))
  seeds_ = rng.integers(0, 3, (25, 3))
  users_ = rng.integers(0, 17, (25, 17))
  np.testing.assert_allclose(
    S.two_level_means(v, seeds_, users_), _slow_two_level_means(v, seeds_, users_), rtol=1e-12
  )


@pytest.mark.parametrize("cached", [True, False])
def test_two_level_ci_reference_quantiles_and_determinism(cached, monkeypatch):
  """The interval is the percentile interval of the means of the draws the documented
  generator makes (all seed rows, then user rows in blocks), reproduced here by hand, whether
  the draws are kept for reuse or streamed."""
  if not cached:
    monkeypatch.setattr(S, "_CACHE_CELLS", 0)
  rng = np.random.default_rng(1)
  v = rng.random((3, 40))
  lo, hi = S.two_level_ci(v, n_boot=300, seed=5)
  g = np.random.default_rng(5)
  sd = g.integers(0, 3, (300, 3))
  us = np.concatenate([g.integers(0, 40, (min(300, 2_000_000 // 40), 40))])
  means = _slow_two_level_means(v, sd, us)
  assert lo == pytest.approx(np.quantile(means, 0.025))
  assert hi == pytest.approx(np.quantile(means, 0.975))
  assert S.two_level_ci(v, n_boot=300, seed=5) == (lo, hi)


def test_streamed_draws_equal_kept_draws_across_blocks(monkeypatch):
  v = np.random.default_rng(8).random((2, 9000))  # 2M // 9000 = 222 rows a block: 3 blocks
  kept = S.two_level_ci(v, n_boot=500, seed=3)
  monkeypatch.setattr(S, "_CACHE_CELLS", 0)
  assert S.two_level_ci(v, n_boot=500, seed=3) == pytest.approx(kept, rel=1e-12)


def test_two_level_interval_carries_both_levels():
  """values[s, u] = a_s + b_u: the bootstrap variance of the mean is about
  var(a)(S−1)/S² + var(b)(U−1)/U², so an interval from seeds alone or users alone is too narrow."""
  rng = np.random.default_rng(2)
  a = rng.normal(0, 0.05, 5)
  b = rng.normal(0, 0.5, 2000)
  v = a[:, None] + b[None, :]
  lo, hi = S.two_level_ci(v, n_boot=4000, seed=0)
  var = a.var() / 5 + b.var() / 2000
  assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(var), rel=0.15)
  u_lo, u_hi = S.two_level_ci(v.mean(0), n_boot=4000, seed=0)  # users only: narrower
  assert u_hi - u_lo < 0.8 * (hi - lo)


def test_one_seed_interval_is_a_user_bootstrap():
  rng = np.random.default_rng(3)
  x = rng.normal(0.2, 0.1, 3000)
  r = S.interval(x)
  se = x.std() / np.sqrt(len(x))
  assert r["n_seeds"] == 1 and "over users" in r["ci_method"]
  assert r["ci95"][1] - r["ci95"][0] == pytest.approx(2 * 1.96 * se, rel=0.15)
  assert r["ci95"][0] < r["mean"] < r["ci95"][1]


def test_holm_against_a_reference():
  p = np.array([0.01, 0.04, 0.03, 0.005, 0.2])
  # sorted: .005 .01 .03 .04 .2 times 5 4 3 2 1 → .025 .04 .09 .08 .2, monotone → .09 for .04
  want = {0.005: 0.025, 0.01: 0.04, 0.03: 0.09, 0.04: 0.09, 0.2: 0.2}
  np.testing.assert_allclose(S.holm(p), [want[x] for x in p])
  np.testing.assert_allclose(S.holm([0.6, 0.7]), [1.0, 1.0])  # capped at 1
  assert S.holm([0.03]).tolist() == [0.03]


def test_paired_user_test_matches_scipy():
  rng = np.random.default_rng(4)
  d = rng.normal(0.01, 0.1, 500)
  assert S.paired_user_test(d, "ttest") == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
  assert S.paired_user_test(d, "wilcoxon") == pytest.approx(stats.wilcoxon(d).pvalue)
  assert S.paired_user_test(np.zeros(10)) == 1.0
  assert S.paired_user_test(np.full(10, 0.1)) == 0.0
  with pytest.raises(ValueError):
    S.paired_user_test(d, "sign")


def _pair(gain, n_users=600, n_seeds=3, seed=0):
  rng = np.random.default_rng(seed)
  control = rng.random((n_seeds, n_users))
  method = control + gain + rng.normal(0, 0.05, (n_seeds, n_users))
  return method, control


def test_compare_and_correct_call_a_clear_gain_significant():
  m, c = _pair(0.05)
  fam = S.correct({"x": S.transfer_gain(m, c)}, alpha=0.01)
  g = fam["x"]
  assert g["significant"] and g["ci95"][0] > 0 and g["p_holm"] < 0.01
  assert g["mean"] == pytest.approx(0.05, abs=0.01) and not g["negative"]
  assert g["p_ttest"] == pytest.approx(stats.ttest_1samp((m - c).mean(0), 0).pvalue)
  assert S.negative_transfer_warning(g) is None


def test_a_p_value_below_alpha_is_not_enough_when_the_interval_spans_zero():
  """A small consistent per-user gain (p tiny over users) that one seed reverses: the
  two-level interval includes 0, so the verdict is 'not significant'."""
  rng = np.random.default_rng(6)
  control = np.tile(rng.random(3000), (3, 1))
  shift = np.array([0.02, 0.02, -0.03])[:, None]  # seed-level disagreement
  method = control + shift + 0.004 + rng.normal(0, 0.001, (3, 3000))
  g = S.correct({"m": S.compare(method, control)}, alpha=0.05)["m"]
  assert g["p_ttest"] < 1e-6
  assert g["ci95"][0] < 0 < g["ci95"][1]
  assert not g["significant"]


def test_holm_changes_the_verdict_of_a_borderline_family_member():
  fam = {f"m{i}": {"p_ttest": p, "ci95": [0.01, 0.02]} for i, p in enumerate([0.03, 0.04, 0.5])}
  out = S.correct(fam, alpha=0.05)
  assert not out["m0"]["significant"] and out["m0"]["p_holm"] == pytest.approx(0.09)
  assert out["m0"]["family_size"] == 3


def test_negative_gain_warns_loudly_and_identical_runs_do_not():
  m, c = _pair(-0.03)
  g = S.correct({"x": S.transfer_gain(m, c)})["x"]
  msg = S.negative_transfer_warning(g, metric="ndcg@10")
  assert g["negative"] and "NEGATIVE TRANSFER" in msg and "ndcg@10" in msg
  same = S.correct({"x": S.transfer_gain(c, c)})["x"]
  assert same["mean"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p_value"] == 1.0
  assert not same["significant"] and S.negative_transfer_warning(same) is None


def test_pairing_rules_and_bad_input():
  a = np.arange(12.0).reshape(3, 4)
  det = np.ones(4)
  np.testing.assert_array_equal(S.paired_differences(a, det), a - 1)  # broadcast one run
  np.testing.assert_array_equal(S.paired_differences(a, a[:2]), a[:2] - a[:2])
  with pytest.raises(ValueError, match="users"):
    S.paired_differences(a, np.ones(5))
  with pytest.raises(ValueError, match="NaN"):
    S.interval(np.array([0.1, np.nan]))
  t = S.seed_t_interval([0.10, 0.12, 0.11, 0.13])
  half = stats.t.ppf(0.975, 3) * np.std([0.10, 0.12, 0.11, 0.13], ddof=1) / 2
  assert t["ci95"] == pytest.approx([0.115 - half, 0.115 + half])
  assert S.seed_t_interval([0.3])["ci95"] is None
