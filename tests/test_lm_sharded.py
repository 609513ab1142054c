"""The masked-LM encoder train step (xdkt_jax.lm's loss, the shared engine) on 8 fake CPU
devices with a (data=4, fsdp=2) mesh equals the same steps on 1 device."""

import json
import subprocess
import sys
import textwrap

from conftest import ROOT

WORKER = textwrap.dedent("""
  import os, sys, json
  n = int(sys.argv[1])
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
  import jax, jax.numpy as jnp, numpy as np
  import ml_collections as mlc
  from xdkt_jax import lm
  from xdkt_jax.models.encoder import LanguageModel
  from xdkt_jax.models.encoder_config import EncoderConfig
  from xdkt_jax.train import mesh as mesh_lib, optim, state as state_lib, steps as steps_lib
  cfg = EncoderConfig.tiny(vocab_size=1000, max_len=16, hidden_size=32, num_heads=4)
  model = LanguageModel(cfg)
  special = lm.Special(mask_token_id=103, special_ids=(0, 101, 102, 103), vocab_size=1000)
  mesh = mesh_lib.make_mesh(mlc.ConfigDict(dict(data=4 if n == 8 else 1,
                                                fsdp=2 if n == 8 else 1, model=1)))
  rules = mesh_lib.DEFAULT_RULES
  init_fn = lambda r: model.init(r, jnp.zeros((1, 16), jnp.int32), jnp.ones((1, 16), jnp.int32))
  # lr 1e-3: Adam normalises updates, so reduction-order noise in tiny gradients becomes
  # O(lr) parameter noise; at 1e-3 it stays well under the 1e-5 bound.
  tx = optim.make_optimizer(dict(lr=1e-3, warmup_steps=0, total_steps=10, schedule="constant",
                                 clip_norm=1.0), None)
  key = jax.random.PRNGKey(0)
  state, sharding = state_lib.create_train_state(init_fn, tx, key, mesh, rules)
  step = steps_lib.make_train_step(lm.make_loss_fn(model, special), tx, mesh=mesh,
                                   state_sharding=sharding,
                                   batch_sharding=mesh_lib.batch_sharding(mesh), rules=rules)
  rng = np.random.default_rng(0)
  losses = []
  for i in range(3):
    ids = rng.integers(200, 1000, size=(16, 16)).astype(np.int32)
    mask = (np.arange(16)[None] < rng.integers(4, 17, size=16)[:, None]).astype(np.int32)
    ids[:, 0] = 101
    batch = mesh_lib.shard_batch({"ids": ids * mask, "mask": mask},
                                 mesh_lib.batch_sharding(mesh))
    state, metrics = step(state, batch, key)
    jax.block_until_ready((state, metrics))   # see DEVELOPERS.md: block on every CPU step
    losses.append(float(metrics["loss"]))
  k = state.params["encoder"]["layers_0"]["mlp_in"]["kernel"]
  flat = np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(state.params)])
  np.save(sys.argv[2], flat)
  print("RESULT " + json.dumps({"losses": losses, "devices": len(k.sharding.device_set),
                                "shard": list(k.addressable_shards[0].data.shape),
                                "shape": list(k.shape)}))
""")


def run(n, out):
  r = subprocess.run(
    [sys.executable, "-c", WORKER, str(n), str(out)],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert r.returncode == 0, r.stderr[-3000:]
  line = next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))
  return json.loads(line[7:])


def test_encoder_step_data4_fsdp2_equals_one_device(tmp_path):
  import numpy as np

  one = run(1, tmp_path / "one.npy")
  eight = run(8, tmp_path / "eight.npy")
  assert eight["devices"] == 8 and one["devices"] == 1
  assert eight["shard"][0] == eight["shape"][0] // 2  # embed dim split over fsdp=2
  np.testing.assert_allclose(eight["losses"], one["losses"], atol=1e-5)
  diff = np.abs(np.load(tmp_path / "one.npy") - np.load(tmp_path / "eight.npy")).max()
  assert diff < 1e-5, diff
