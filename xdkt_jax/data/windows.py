"""Item sequences → the recommender's examples: training windows, packed rows, per-segment
users, and scoring inputs.  NumPy only, on the host, before anything reaches a device.

Every training transition is predicted exactly once: a user's sequence s is read as
(input, target) pairs over [BOS, s] (token id N = n_items is the BOS) and cut from the END
into consecutive windows of max_len pairs, right-padded (positions 0..L−1 from the window
start).  Windows are packed several to a row because most are far shorter than max_len.
At scoring time a history shorter than the evaluator's width is complete, so it gets the BOS;
a full-width one may be truncated, so it does not (as for a non-first training window).
"""

from __future__ import annotations

import numpy as np


def training_windows(offsets: np.ndarray, items: np.ndarray, *, n_items: int, max_len: int):
  """Per user CSR sequence s → windows of (input, target) pairs over [BOS, s]: inputs
  [BOS, s_0..s_{n−2}], targets s_0..s_{n−1}, cut from the END into windows of max_len pairs.

  Returns dict of [W, max_len] arrays: inputs, targets, users (int32: the window's user in
  every slot), mask (int8, 1 at real pairs).  Right-padded; padded slots have input 0, mask 0.
  """
  ins, tgts, lens, owners = [], [], [], []
  for u in np.nonzero(np.diff(offsets))[0]:
    s = items[offsets[u] : offsets[u + 1]]
    inp = np.concatenate([[n_items], s[:-1]]).astype(np.int32)
    end = len(s)
    while end > 0:
      lo = max(0, end - max_len)
      ins.append(inp[lo:end])
      tgts.append(s[lo:end])
      lens.append(end - lo)
      owners.append(u)
      end = lo
  w = len(lens)
  out = {
    "inputs": np.zeros((w, max_len), np.int32),
    "targets": np.zeros((w, max_len), np.int32),
    "users": np.zeros((w, max_len), np.int32),
    "mask": np.zeros((w, max_len), np.int8),
  }
  for r, (i, t, n, u) in enumerate(zip(ins, tgts, lens, owners)):
    out["inputs"][r, :n], out["targets"][r, :n], out["mask"][r, :n] = i, t, 1
    out["users"][r, :n] = u
  return out


def pack_windows(windows: dict, *, max_len: int, max_segments: int = 0) -> dict:
  """Packs windows into rows of max_len tokens (best-fit decreasing).

  Why: on the synthetic world the median window is ~15 of 50 slots, so unpacked batches spend
  most of their FLOPs on padding.  Adds `segments` (1, 2, … per window in a row; 0 = pad) and
  `positions` (restarting at 0 per window); `encode` keeps windows from seeing each other.
  `max_segments` > 0 caps the windows per row (the full method computes per-segment source
  knowledge, [rows, S, source_len], so S = the most segments in any row is its cost).
  """
  lens = windows["mask"].astype(np.int64).sum(1)
  order = np.argsort(-lens, kind="stable")
  rows: list[list[int]] = []
  by_free: list[list[int]] = [[] for _ in range(max_len + 1)]  # free slots → open rows
  for w in order:
    n = int(lens[w])
    fit = next((f for f in range(n, max_len + 1) if by_free[f]), None)  # best fit
    if fit is None:
      rows.append([w])
      by_free[max_len - n].append(len(rows) - 1)
    else:
      r = by_free[fit].pop()
      rows[r].append(w)
      if not max_segments or len(rows[r]) < max_segments:
        by_free[fit - n].append(r)
  out = {
    k: np.zeros((len(rows), max_len), np.int32)
    for k in ("inputs", "targets", "users", "segments", "positions")
  }
  out["mask"] = np.zeros((len(rows), max_len), np.int8)
  for r, ws in enumerate(rows):
    at = 0
    for seg, w in enumerate(ws, start=1):
      n = int(lens[w])
      sl = slice(at, at + n)
      out["inputs"][r, sl] = windows["inputs"][w, :n]
      out["targets"][r, sl] = windows["targets"][w, :n]
      out["users"][r, sl] = windows["users"][w, :n]
      out["mask"][r, sl] = 1
      out["segments"][r, sl] = seg
      out["positions"][r, sl] = np.arange(n)
      at += n
  return out


def bucket_width(length: int, max_len: int, smallest: int = 8) -> int:
  """The scoring width for a batch whose longest token sequence is `length`: the next power of
  two ≥ `smallest`, capped at max_len.  A causal model with right padding computes the same
  state at the last real token at any width ≥ its length, so bucketing is exact; a handful of
  widths keeps the jitted scorer to a handful of traces."""
  w = smallest
  while w < length:
    w *= 2
  return min(w, max_len)


def score_inputs(
  hist_BxH: np.ndarray,
  hist_mask_BxH: np.ndarray,
  *,
  n_items: int,
  max_len: int,
  bucket: bool = False,
):
  """Eval histories (right-padded, most recent last) → model tokens [B, W] + mask.

  A history shorter than its array width H is complete, so it starts with BOS; a full-width
  one may have been truncated, so it does not.  Keeps the most recent max_len tokens.
  W = max_len, or with `bucket` the `bucket_width` of the batch's longest sequence (the
  evaluator batches histories in length order, so most batches are far narrower than max_len).
  """
  hist, m = np.asarray(hist_BxH), np.asarray(hist_mask_BxH).astype(bool)
  b, h = hist.shape
  lens = m.sum(1)
  seqs = []
  for r in range(b):
    seq = hist[r][m[r]]
    if lens[r] < h:
      seq = np.concatenate([[n_items], seq])
    seqs.append(seq[-max_len:])
  width = bucket_width(max((len(q) for q in seqs), default=1), max_len) if bucket else max_len
  tokens = np.zeros((b, width), np.int32)
  mask = np.zeros((b, width), np.int8)
  for r, seq in enumerate(seqs):
    tokens[r, : len(seq)], mask[r, : len(seq)] = seq, 1
  return tokens, mask


def segment_users(data: dict) -> dict:
  """Adds seg_users [R, S] (the user of segment s+1 of each row; S = the most segments in a
  row) and seg_index [R, L] (0-based segment of each token) to packed or unpacked rows."""
  users, mask = data["users"], data["mask"].astype(bool)
  seg = data.get("segments")
  if seg is None:
    seg = mask.astype(np.int32)
  n_seg = max(int(seg.max()) if seg.size else 1, 1)
  out = dict(data)
  out["seg_users"] = np.zeros((len(users), n_seg), np.int32)
  for s in range(1, n_seg + 1):
    hit = seg == s
    row_has = hit.any(1)
    first = hit.argmax(1)
    out["seg_users"][row_has, s - 1] = users[row_has, first[row_has]]
  out["seg_index"] = np.maximum(seg - 1, 0).astype(np.int32)
  return out
