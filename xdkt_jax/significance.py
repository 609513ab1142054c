"""Intervals, paired tests, multiple-comparison correction and the transfer gain (NumPy/SciPy,
host side), each at a level that says what it measures.

A trained method's per-example metrics form a [seeds, users] array (`per_user.npz` of every
seed); a deterministic method's has one seed row.  Every number here is computed from those
arrays, the same way for every method:

  * interval of a mean, and of a paired difference: a TWO-LEVEL percentile bootstrap that
    resamples seeds and users, each with replacement, independently (`two_level_ci`), so it
    carries both training randomness and test-set sampling.  With one seed (a deterministic
    method, or a one-seed run) the seed level has nothing to resample and the interval is a
    bootstrap over users; `ci_method` says which;
  * paired test over users: the per-user difference averaged over seeds, a one-sample t-test on
    its mean (primary: the reported metrics are means) and the Wilcoxon signed-rank test
    (secondary, a median test; zero differences dropped);
  * Holm's step-down correction over the family of comparisons a table reports (`holm`);
  * a difference is called significant only when its Holm-corrected p < α AND its two-level
    interval excludes 0 (`compare`).

Seeds are paired by position (seed i of both runs); a one-seed (deterministic) side is
compared with every seed of the other.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats

DEFAULT_N_BOOT = 2000


def as_seeds_by_users(x) -> np.ndarray:
  """[users] or [seeds, users] → float64 [seeds, users]."""
  a = np.asarray(x, np.float64)
  if a.ndim == 1:
    a = a[None]
  if a.ndim != 2 or a.shape[1] == 0:
    raise ValueError(f"significance: expected [seeds, users] values, got shape {a.shape}")
  if np.isnan(a).any():
    raise ValueError("significance: NaN in per-user values")
  return a


def two_level_means(
  values_SxU: np.ndarray, seed_idx_BxS: np.ndarray, user_idx_BxU: np.ndarray
) -> np.ndarray:
  """[B] means of the resampled arrays values[seed_idx[b]][:, user_idx[b]] — the statistic of
  the two-level bootstrap for given draws (counts instead of gathers: B × S × U never exists)."""
  v = np.asarray(values_SxU, np.float64)
  s, u = v.shape
  return np.einsum("bs,bs->b", _counts(seed_idx_BxS, s), _counts(user_idx_BxU, u) @ v.T)


_CACHE_CELLS = 30_000_000  # user-weight matrices up to this many cells are kept for reuse


def _counts(idx_BxK: np.ndarray, k: int) -> np.ndarray:
  b = len(idx_BxK)
  return (
    np.bincount((idx_BxK + np.arange(b)[:, None] * k).ravel(), minlength=b * k).reshape(b, k) / k
  )


def _user_weights(rng, u: int, n_boot: int):
  """[n_boot, u] resampling weights (counts / u), drawn in blocks of ≤ 2M indices."""
  block = max(1, min(n_boot, 2_000_000 // u))
  for lo in range(0, n_boot, block):
    yield _counts(rng.integers(0, u, size=(min(block, n_boot - lo), u)), u)


@functools.lru_cache(maxsize=4)
def _draws(s: int, u: int, n_boot: int, seed: int):
  """The resampling weights of (seeds, users, n_boot, seed): every metric and method of a
  report is resampled with the SAME draws (common random numbers: one test set, one bootstrap),
  and large ones are not recomputed for each interval."""
  rng = np.random.default_rng(seed)
  seed_w = _counts(rng.integers(0, s, size=(n_boot, s)), s)
  return seed_w, np.concatenate(list(_user_weights(rng, u, n_boot)))


def two_level_ci(
  values_SxU, *, level: float = 0.95, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> tuple[float, float]:
  """Percentile interval of the mean of a [seeds, users] array under resampling of seeds and
  users (module docstring).  The draws: `n_boot` rows of seed indices, then `n_boot` rows of
  user indices in blocks of ≤ 2M, from `default_rng(seed)`; the same arguments give the same
  interval, and arrays of one shape share their draws."""
  v = as_seeds_by_users(values_SxU)
  s, u = v.shape
  if n_boot * u <= _CACHE_CELLS:
    seed_w, user_w = _draws(s, u, n_boot, seed)
    means = np.einsum("bs,bs->b", seed_w, user_w @ v.T)
  else:  # too large to keep: the same draws, streamed
    rng = np.random.default_rng(seed)
    seed_w = _counts(rng.integers(0, s, size=(n_boot, s)), s)
    parts, at = [], 0
    for w in _user_weights(rng, u, n_boot):
      parts.append(np.einsum("bs,bs->b", seed_w[at : at + len(w)], w @ v.T))
      at += len(w)
    means = np.concatenate(parts)
  a = (1.0 - level) / 2.0
  return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


def ci_method(n_seeds: int, n_boot: int = DEFAULT_N_BOOT) -> str:
  return (
    f"two-level bootstrap over {n_seeds} seeds x users ({n_boot} resamples)"
    if n_seeds > 1
    else f"bootstrap over users, one run ({n_boot} resamples)"
  )


def interval(values, *, level: float = 0.95, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict:
  """A method's mean with its two-level interval, and the per-seed means it came from."""
  v = as_seeds_by_users(values)
  lo, hi = two_level_ci(v, level=level, n_boot=n_boot, seed=seed)
  return {
    "mean": float(v.mean()),
    "ci95": [lo, hi],
    "ci_method": ci_method(len(v), n_boot),
    "per_seed": [float(x) for x in v.mean(axis=1)],
    "n_seeds": int(len(v)),
    "n_users": int(v.shape[1]),
  }


def paired_differences(a, b) -> np.ndarray:
  """[seeds, users] differences a − b, seeds paired by position; a one-seed side is broadcast
  over the other's seeds; with unequal seed counts above one, the first min(S_a, S_b)."""
  a, b = as_seeds_by_users(a), as_seeds_by_users(b)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"significance: {a.shape[1]} vs {b.shape[1]} users (pair the same users)")
  if len(a) != len(b) and 1 not in (len(a), len(b)):
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
  return a - b


def paired_user_test(diff_U, test: str = "ttest") -> float:
  """Two-sided p of a paired test over users on per-user differences (already averaged over
  seeds): 'ttest' (one-sample t on the mean difference) or 'wilcoxon' (signed rank, zero
  differences dropped).  All-zero differences give 1.0; a constant non-zero difference 0.0."""
  if test not in ("ttest", "wilcoxon"):
    raise ValueError(f"paired test must be 'ttest' or 'wilcoxon', got {test!r}")
  d = np.asarray(diff_U, np.float64).reshape(-1)
  if np.isnan(d).any():
    raise ValueError("paired test: NaN in per-user differences")
  if not np.any(d != 0):
    return 1.0
  if test == "wilcoxon":
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
  if np.ptp(d) <= 1e-12 * np.abs(d).max():  # constant up to rounding: t is infinite
    return 0.0
  return float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(p_values) -> np.ndarray:
  """Holm's step-down adjusted p-values (same order as given): sorted ascending, the i-th
  (0-based) of m is multiplied by (m − i), made monotone, capped at 1."""
  p = np.asarray(p_values, np.float64).reshape(-1)
  m = len(p)
  order = np.argsort(p, kind="stable")
  adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
  out = np.empty(m)
  out[order] = adj
  return out


def compare(a, b, *, level: float = 0.95, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict:
  """The difference a − b of two methods on the same users: mean, two-level interval, the
  paired tests over users (p_ttest primary, p_wilcoxon secondary).  `p_holm` and
  `significant` are filled in by `correct` once the family is known."""
  d = paired_differences(a, b)
  lo, hi = two_level_ci(d, level=level, n_boot=n_boot, seed=seed)
  per_user = d.mean(axis=0)
  return {
    "mean": float(d.mean()),
    "ci95": [lo, hi],
    "ci_method": ci_method(len(d), n_boot),
    "p_ttest": paired_user_test(per_user, "ttest"),
    "p_wilcoxon": paired_user_test(per_user, "wilcoxon"),
    "test": "paired t-test over users on seed-averaged differences",
    "n_users": int(d.shape[1]),
    "n_seeds": int(len(d)),
  }


def correct(family: dict[str, dict], *, alpha: float = 0.05) -> dict[str, dict]:
  """Holm over the t-test p-values of `family` (name → `compare` result), in place; sets
  p_holm, p_value (= p_holm: the one to read) and significant (p_holm < alpha and the
  interval excludes 0)."""
  names = list(family)
  if not names:
    return family
  adj = holm([family[n]["p_ttest"] for n in names])
  for n, p in zip(names, adj):
    c = family[n]
    lo, hi = c["ci95"]
    c.update(
      p_holm=float(p),
      p_value=float(p),
      family_size=len(names),
      alpha=float(alpha),
      significant=bool(p < alpha and (lo > 0 or hi < 0)),
    )
  return family


def transfer_gain(
  method, control, *, level: float = 0.95, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> dict:
  """A transfer method's gain over its no-transfer control on one metric ([seeds, users] each):
  `compare` plus whether it is negative and its size relative to the control."""
  g = compare(method, control, level=level, n_boot=n_boot, seed=seed)
  control_mean = float(as_seeds_by_users(control).mean())
  g.update(
    negative=bool(g["mean"] < 0),
    relative=g["mean"] / control_mean if control_mean else float("nan"),
  )
  return g


def negative_transfer_warning(gain: dict, *, metric: str = "") -> str | None:
  """A loud one-paragraph message when the mean gain is below 0, else None."""
  if not gain["mean"] < 0:
    return None
  lo, hi = gain.get("ci95", (float("nan"), float("nan")))
  sure = "the whole 95% CI is below 0" if hi < 0 else "the 95% CI includes 0 (may be noise)"
  what = f" on {metric}" if metric else ""
  return (
    f"!!! NEGATIVE TRANSFER{what}: the transfer method is WORSE than the no-transfer "
    f"control by {gain['mean']:.4g} (95% CI [{lo:.4g}, {hi:.4g}], Holm-corrected "
    f"p = {gain['p_value']:.3g}; {sure}).  Do not report this as a gain."
  )


def seed_t_interval(per_seed, level: float = 0.95) -> dict:
  """For a set-level number (e.g. catalogue coverage: no per-user values): the mean over
  seeds with a Student-t interval over seeds, or no interval from one run."""
  x = np.asarray(per_seed, np.float64).reshape(-1)
  m = float(x.mean())
  if len(x) < 2 or x.std(ddof=1) == 0.0:
    ci = None if len(x) < 2 else [m, m]
  else:
    half = stats.t.ppf((1.0 + level) / 2.0, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    ci = [m - half, m + half]
  return {
    "mean": m,
    "ci95": ci,
    "ci_method": f"t over {len(x)} seeds (set-level)",
    "per_seed": [float(v) for v in x],
  }
