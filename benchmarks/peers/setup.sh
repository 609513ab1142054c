#!/usr/bin/env bash
# Creates the PyTorch peer's own venv, benchmarks/peers/.venv-recbole, for
# benchmarks/vs_recbole.py (RecBole SASRec vs xdkt_jax SASRec).  Run from anywhere:
#   bash benchmarks/peers/setup.sh
# A separate venv because RecBole 1.2.1 needs numpy<2 / pandas<3 and pkg_resources
# (setuptools<81), which must not leak into the project's .venv.
# Idempotent: a stamp holding the exact requirement list skips the install when it matches,
# so editing REQS below reinstalls.  PYTHON=... picks the base interpreter (default python3).
# The CPU torch wheel comes from this machine's local wheel folder (pip's find-links); the
# exact pin keeps pip from resolving any other torch build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
venv=".venv-recbole"
stamp="$venv/.installed"
REQS=(torch==2.13.0 recbole==1.2.1 "numpy<2" "pandas<3" "setuptools<81")

if [[ -f "$stamp" && "$(cat "$stamp")" == "${REQS[*]}" ]]; then
  echo "setup: $PWD/$venv is up to date (delete $stamp to reinstall)"
  exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q "${REQS[@]}"
# Fail here, not in the first benchmark run, if the stack does not import.
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$venv/bin/python" -c \
  "import recbole, torch; print('setup: recbole', recbole.__version__, 'torch', torch.__version__)"
echo "${REQS[*]}" > "$stamp"
