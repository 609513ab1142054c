"""The method's stages, one module per group; pipeline.py runs them in order.

common.py    a stage's folder, fingerprint, claim, atomic JSON; StageEncoder
encoders.py  pretrain (L_p), adapt (L_t), the initial encoder, W_p read back
extract.py   L_k and item knowledge
ranking.py   recommend, evaluate, report
"""
