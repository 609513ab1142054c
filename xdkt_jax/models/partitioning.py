"""Parameter helpers every module shares: the initializer and the logical axis names that the
mesh rules (train/mesh.py) map onto devices."""

from __future__ import annotations

import flax.linen as nn

# BERT / GPT-2 `initializer_range`, used by SASRec and UniSRec alike.
NORMAL_002 = nn.initializers.normal(stddev=0.02)


def logical(init, axes):
  """`init` with logical axis names attached (one per dimension; None = replicated)."""
  return nn.with_logical_partitioning(init, axes)


def unboxed(v):
  """The array inside a variable that may carry partitioning metadata."""
  return v.value if isinstance(v, nn.meta.AxisMetadata) else v
