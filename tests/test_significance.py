"""Confidence intervals, paired tests, transfer gain and the negative-transfer warning."""

import numpy as np
import pytest
from scipy import stats

from xdkt_jax import significance as S


def _runs(gain, n_users=400, n_seeds=5, seed=0):
  """Control and method per user / per seed; method = control + gain per user, with noise."""
  rng = np.random.default_rng(seed)
  control_u = rng.random(n_users)
  method_u = control_u + gain + rng.normal(0, 0.02, n_users)
  control_s = control_u.mean() + rng.normal(0, 0.003, n_seeds)
  method_s = control_s + gain + rng.normal(0, 0.003, n_seeds)
  return method_s, control_s, method_u, control_u


def test_positive_gain_is_significant_and_ci_excludes_zero():
  ms, cs, mu, cu = _runs(0.05)
  g = S.transfer_gain(ms, cs, mu, cu)
  assert g["p_value"] < 0.01
  assert g["ci95"][0] > 0 and g["ci95"][0] < g["mean"] < g["ci95"][1]
  assert g["mean"] == pytest.approx(0.05, abs=0.01)
  assert not g["negative"] and S.negative_transfer_warning(g) is None
  assert S.paired_test(mu, cu, method="ttest") < 0.01


def test_identical_runs_p_one_no_warning():
  ms, cs, mu, cu = _runs(0.0)
  g = S.transfer_gain(cs, cs, cu, cu)
  assert g["p_value"] == 1.0 and g["mean"] == 0.0 and g["ci95"] == [0.0, 0.0]
  assert not g["negative"] and S.negative_transfer_warning(g) is None
  assert S.paired_test(cu, cu, method="ttest") == 1.0


def test_negative_gain_warns_loudly():
  ms, cs, mu, cu = _runs(-0.03)
  g = S.transfer_gain(ms, cs, mu, cu)
  assert g["negative"] and g["ci95"][1] < 0
  msg = S.negative_transfer_warning(g, metric="ndcg@10")
  assert msg is not None and "NEGATIVE TRANSFER" in msg and "ndcg@10" in msg


def test_mean_ci_t_interval_matches_formula():
  x = np.array([0.10, 0.12, 0.11, 0.13])
  ci = S.mean_ci(x)
  half = stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2.0
  assert ci.method == "t"
  assert ci.lo == pytest.approx(x.mean() - half) and ci.hi == pytest.approx(x.mean() + half)


def test_mean_ci_one_seed_bootstraps_over_users():
  rng = np.random.default_rng(3)
  per_user = rng.normal(0.2, 0.1, 2000)
  ci = S.mean_ci([per_user.mean()], per_user_values=per_user)
  se = per_user.std() / np.sqrt(len(per_user))
  assert ci.method == "bootstrap" and ci.lo < ci.mean < ci.hi
  assert ci.hi - ci.lo == pytest.approx(2 * 1.96 * se, rel=0.15)
  with pytest.raises(ValueError, match="per_user_values"):
    S.mean_ci([0.3])


def test_single_seed_transfer_gain_uses_bootstrap():
  ms, cs, mu, cu = _runs(0.05, n_seeds=1)
  g = S.transfer_gain(ms, cs, mu, cu)
  assert g["ci_method"] == "bootstrap" and g["ci95"][0] > 0 and g["p_value"] < 0.01


def test_paired_test_edge_cases():
  a = np.array([1.0, 0.0, 1.0, 0.0])
  assert S.paired_test(a, a) == 1.0
  assert S.paired_test(a + 0.1, a, method="ttest") == 0.0  # constant non-zero difference
  with pytest.raises(ValueError):
    S.paired_test(a, a[:3])
  with pytest.raises(ValueError):
    S.paired_test(a, a, method="sign")
