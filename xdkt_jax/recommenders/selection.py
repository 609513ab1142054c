"""Early stopping on the valid split (RecBole's protocol): score the valid users after every
epoch with the run's own evaluator, keep the best epoch's parameters, stop after `patience`
epochs without a gain."""

from __future__ import annotations

import jax

from xdkt_jax import conventions
from xdkt_jax import evaluate as evaluate_lib
from xdkt_jax.data import inputs


def valid_arrays(ds, split, target: str, exclude_history: str) -> dict:
  rule = conventions.resolve(
    "xdkt", exclude_history, target_has_given_split=ds.domains[target].given_split is not None
  )
  arrays = inputs.eval_arrays(ds, split, target, "valid", exclude_history=rule.exclude_history)
  if len(arrays["target"]) == 0:
    raise ValueError(
      f"sasrec: select_epoch needs valid examples, and the {split.protocol!r} "
      f"split has none in {target!r}"
    )
  return arrays


def train_selecting_epoch(
  train_to,
  state,
  *,
  total: int,
  steps_per_epoch: int,
  scorer,
  valid: dict,
  n_items: int,
  metric: str,
  patience: int,
):
  """Trains epoch by epoch up to `total` steps; after each epoch scores the valid users
  (full ranking under the run's exclusion rule: the evaluator of the reported numbers) and
  keeps the parameters of the best epoch.  Stops once `patience` epochs in a row bring no gain.
  Returns (the last loop result, {params, best_epoch, best_valid, epochs_run,
  valid_curve, select_metric})."""
  evaluate_lib.selection_metric(metric, "sasrec")
  if patience < 1:
    raise ValueError(f"sasrec: patience must be >= 1, got {patience}")
  spe = max(1, int(steps_per_epoch))
  best, curve, at, epoch, result = None, [], 0, 0, None
  while at < total:
    result = train_to(state, at, min(total, at + spe))
    state, at, epoch = result.state, min(total, at + spe), epoch + 1
    scorer.params = state.params
    value = evaluate_lib.valid_score(scorer.score, valid, n_items=n_items, metric=metric)
    curve.append({"epoch": epoch, "step": at, metric: value})
    if best is None or value > best[0]:
      best = (value, epoch, jax.device_get(state.params))
    elif epoch - best[1] >= patience:
      break
  return result, {
    "params": best[2],
    "best_epoch": best[1],
    "best_valid": best[0],
    "epochs_run": epoch,
    "valid_curve": curve,
    "select_metric": metric,
  }
