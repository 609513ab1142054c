#!/usr/bin/env bash
# One host, every local device (CPU, one or more GPUs):
#   launch/local.sh configs/default.py runs/default [--config.x=y ...]
set -euo pipefail
cfg=${1:?config file}; wd=${2:?workdir}; shift 2
cd "$(dirname "$0")/.."
exec .venv/bin/xdkt run --config="$cfg" --workdir="$wd" "$@"
