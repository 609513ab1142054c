#!/usr/bin/env bash
# TPU pod: the same command on every worker; jax.distributed.initialize() (config.multihost=True)
# discovers the pod.  The repository and its .venv must already be on every worker
# (e.g. `gcloud compute tpus tpu-vm scp --worker=all`), at the same path.
#   launch/tpu_pod.sh my-tpu us-central2-b configs/amazon_art_office.py /mnt/shared/runs/ao
set -euo pipefail
tpu=${1:?tpu name}; zone=${2:?zone}; cfg=${3:?config file}; wd=${4:?workdir}; shift 4
repo_dir=${REPO_DIR:-xdkt_jax}
extra=$(printf ' %q' "$@")
gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command \
  "cd $repo_dir && .venv/bin/xdkt run --config=$cfg --workdir=$wd --config.multihost=True$extra"
