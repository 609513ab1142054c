import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "launch"))
import sweep  # noqa: E402


def test_sweep_expands_product_and_lists(tmp_path):
  cfg = tmp_path / "exp.py"
  cfg.write_text("def get_sweep():\n  return {'protocol_k': [0, 1], 'data.dedup': ['first', 'all']}\n")
  cmds = sweep.commands(str(cfg), sweep.load_sweep(str(cfg)), "runs/s", ["--config.seed=3"])
  assert len(cmds) == 4
  assert cmds[0] == ["xdkt", "run", f"--config={cfg}", "--workdir=runs/s/protocol_k=0_dedup=first",
                     "--config.protocol_k=0", "--config.data.dedup=first", "--config.seed=3"]
  cfg.write_text("def get_sweep():\n  return [{'seed': 1}, {'seed': 2, 'protocol': 'warm'}]\n")
  cmds = sweep.commands(str(cfg), sweep.load_sweep(str(cfg)), "r", [])
  assert [c[-1] for c in cmds] == ["--config.seed=1", "--config.protocol=warm"]


def test_sweep_cli_prints_the_art_office_sweep():
  r = subprocess.run([sys.executable, "launch/sweep.py", "--config=configs/amazon_art_office.py"],
                     cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert r.returncode == 0, r.stderr
  lines = r.stdout.strip().splitlines()
  assert len(lines) == 3 and all("--config.protocol=cold_start" in l for l in lines)
  assert "--config.protocol_k=3" in lines[-1]
