"""The profiling benchmark still finds its kernels (trace format and HLO metadata drift with
jax versions): a tiny step, one profiled call, every major part of the model accounted for."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import step_profile  # noqa: E402


def test_step_profile_attributes_kernels_to_model_parts(capsys):
  parts = step_profile.main(
    [
      "--batch",
      "4",
      "--seq",
      "8",
      "--hidden",
      "16",
      "--mlp",
      "32",
      "--n-items",
      "50",
      "--segments",
      "2",
      "--steps",
      "2",
      "--top",
      "3",
    ]
  )
  out = capsys.readouterr().out
  assert "kernels" in out and "costliest 3 ops" in out
  for name in (
    "loss_head",
    "attention",
    "projections",
    "ffn",
    "layer_norm",
    "dropout",
    "optimizer",
  ):
    assert parts[name] > 0, (name, dict(parts))
  assert parts["other"] < sum(parts.values())


def test_part_of_maps_backward_ops_like_forward():
  fwd = "jvp(SASRec)/SASRec.encode/block_0/attn/bld,dhk->blhk/dot_general"
  bwd = "transpose(jvp(SASRec))/SASRec.encode/block_0/attn/bld,dhk->blhk/dot_general"
  assert step_profile.part_of(fwd) == step_profile.part_of(bwd) == "projections"
  assert step_profile.part_of("jvp()/dot_general") == "loss_head"
  assert step_profile.part_of("jvp(SASRec)/SASRec.encode/block_1/mlp_ln/mul") == "layer_norm"
  assert step_profile.part_of("jvp(SASRec)/SASRec.encode/in_drop/ge") == "dropout"
  assert step_profile.part_of("integer_pow") == "optimizer"  # AdamW's second moment
  assert step_profile.part_of("batch['inputs']") == "other"


def test_source_signal_finds_the_synthetic_worlds_cross_domain_signal(capsys):
  """benchmarks/source_signal.py on the default synthetic world at k = 0: the world is built so a
  user's Books taste predicts their Movies, so source co-consumption must beat popularity
  (paired p < 0.01), and every test user has a source history."""
  import source_signal  # pylint: disable=import-outside-toplevel

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = source_signal.main([f"--config={root}/configs/default.py", "--k=0"])
  assert out["has_source"] == 1.0 and 0.5 < out["reach"] <= 1.0
  assert out["cooc"]["ndcg@10"] > out["pop"]["ndcg@10"] + 0.05, out
  assert out["p_vs_pop"]["cooc"] < 0.01, out
  assert out["cooc+pop"]["recall@50"] >= out["pop"]["recall@50"], out
  assert out["blend"] is None  # k = 0: no target history to blend with
  text = capsys.readouterr().out
  assert "p (ndcg@10 vs pop" in text and "target co-occurs" in text
  # k = 1: the source adds to item-kNN over the one revealed item (λ picked on valid users).
  b = source_signal.main([f"--config={root}/configs/default.py", "--k=1"])["blend"]
  assert b["lambda"] > 0 and b["valid"][b["lambda"]] > b["valid"][0.0]
  assert b["blended"]["ndcg@10"] > b["itemknn"]["ndcg@10"], b
