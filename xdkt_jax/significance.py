"""Seeds, confidence intervals, paired tests and the transfer gain (NumPy/SciPy, host side).

Every transfer run is compared with its no-transfer control on the same split
(../shared/DESIGN.md): the gain gets a CI over seeds and a paired per-user test, and a negative
gain is reported loudly rather than hidden.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats


class MeanCI(NamedTuple):
  mean: float
  lo: float
  hi: float
  method: str  # 't' (over seeds) or 'bootstrap' (over users, one seed)


def _bootstrap_mean_ci(values: np.ndarray, level: float, n_boot: int, seed: int):
  """Percentile bootstrap of the mean, resampling in blocks so n_boot × n never sits in
  memory at once."""
  rng = np.random.default_rng(seed)
  n = len(values)
  means = np.empty(n_boot)
  block = max(1, min(n_boot, 2_000_000 // max(n, 1)))
  for lo in range(0, n_boot, block):
    m = min(block, n_boot - lo)
    means[lo:lo + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
  a = (1.0 - level) / 2.0
  return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


def mean_ci(per_seed_values, level: float = 0.95, *, per_user_values=None, n_boot: int = 2000,
            seed: int = 0) -> MeanCI:
  """Mean over seeds with a Student-t interval (seeds are the unit of replication).

  With a single seed there is no between-seed variance to estimate, so the interval is a
  bootstrap over users of that seed's per-user values (`per_user_values`, required then); it
  reflects test-set sampling only, not training randomness — say so when reporting it.
  """
  x = np.asarray(per_seed_values, np.float64).reshape(-1)
  if len(x) == 0:
    raise ValueError("mean_ci: no values")
  m = float(x.mean())
  if len(x) >= 2:
    sd = x.std(ddof=1)
    if sd == 0.0:
      return MeanCI(m, m, m, "t")
    half = stats.t.ppf((1.0 + level) / 2.0, len(x) - 1) * sd / np.sqrt(len(x))
    return MeanCI(m, float(m - half), float(m + half), "t")
  if per_user_values is None:
    raise ValueError("mean_ci: one seed needs per_user_values for a bootstrap-over-users CI")
  u = np.asarray(per_user_values, np.float64).reshape(-1)
  lo, hi = _bootstrap_mean_ci(u, level, n_boot, seed)
  return MeanCI(m, lo, hi, "bootstrap")


def paired_test(a_per_user, b_per_user, method: str = "wilcoxon") -> float:
  """Two-sided p-value of a paired test between two methods' per-user metrics (same users,
  same order).

  'wilcoxon' (signed rank; zero differences dropped — most users tie at 0 under top-k
  metrics) or 'ttest' (paired t).  All-zero differences give p = 1.0 (scipy would return
  NaN or raise); a constant non-zero difference gives p = 0.0 for the t-test.
  """
  if method not in ("wilcoxon", "ttest"):
    raise ValueError(f"paired_test: method must be 'wilcoxon' or 'ttest', got {method!r}")
  a = np.asarray(a_per_user, np.float64).reshape(-1)
  b = np.asarray(b_per_user, np.float64).reshape(-1)
  if a.shape != b.shape:
    raise ValueError(f"paired_test: shapes differ {a.shape} vs {b.shape} (pair the same users)")
  if np.isnan(a).any() or np.isnan(b).any():
    raise ValueError("paired_test: NaN in per-user values")
  d = a - b
  if not np.any(d != 0):
    return 1.0
  if method == "wilcoxon":
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
  if np.ptp(d) <= 1e-9 * np.abs(d).max():  # constant up to rounding: t is infinite
    return 0.0
  return float(stats.ttest_rel(a, b).pvalue)


def _per_user(x) -> np.ndarray:
  """[n] or [seeds, n] → [n]: per-user values averaged over seeds (users are the pairs)."""
  x = np.asarray(x, np.float64)
  return x.mean(axis=0) if x.ndim == 2 else x.reshape(-1)


def transfer_gain(method_per_seed, control_per_seed, method_per_user, control_per_user, *,
                  test: str = "wilcoxon") -> dict:
  """Gain of a transfer method over its no-transfer control on the same split.

  Seeds are paired by position (seed i of both runs).  The CI is over per-seed gains (or, with
  one seed, a bootstrap over users of the per-user differences); the p-value is a paired test
  over users (per-user values may be [n] or [seeds, n], averaged over seeds).
  """
  ms = np.asarray(method_per_seed, np.float64).reshape(-1)
  cs = np.asarray(control_per_seed, np.float64).reshape(-1)
  if ms.shape != cs.shape:
    raise ValueError(f"transfer_gain: {len(ms)} method seeds vs {len(cs)} control seeds")
  mu, cu = _per_user(method_per_user), _per_user(control_per_user)
  ci = mean_ci(ms - cs, 0.95, per_user_values=mu - cu)
  control = float(cs.mean())
  return {"mean": ci.mean, "ci95": [ci.lo, ci.hi],
          "p_value": paired_test(mu, cu, method=test), "negative": bool(ci.mean < 0),
          "relative": ci.mean / control if control else float("nan"),
          "n_seeds": int(len(ms)), "ci_method": ci.method}


def negative_transfer_warning(gain: dict, *, metric: str = "") -> str | None:
  """A loud one-paragraph message when the mean gain is below 0, else None."""
  if not gain["mean"] < 0:
    return None
  lo, hi = gain.get("ci95", (float("nan"), float("nan")))
  sure = "the whole 95% CI is below 0" if hi < 0 else "the 95% CI includes 0 (may be noise)"
  what = f" on {metric}" if metric else ""
  return (f"!!! NEGATIVE TRANSFER{what}: the transfer method is WORSE than the no-transfer "
          f"control by {gain['mean']:.4g} (95% CI [{lo:.4g}, {hi:.4g}], p = {gain['p_value']:.3g}; "
          f"{sure}).  Do not report this as a gain.")
