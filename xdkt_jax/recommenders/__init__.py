"""Recommenders as the recommend stage uses them: how each is trained and scored.

  sequential.py   train_sasrec: SASRec, the target_only control, the full method's recommender
  selection.py    early stopping on the valid split
  scoring.py      SASRecModel, a trained sequential model's `score(batch) -> [B, N]`
  baselines/      the non-LM baselines (pop, kNN, MF, EMCDR, CMF, text kNN, hybrid)

They sit above data/, models/, objectives and train/, and below recommend.py (the method
registry and the stage).
"""
