#!/usr/bin/env bash
# Artifact proxy benchmark (not a test): a 1 GiB file and 1,000 small files up and down through
# ferroflow and through `mlflow server` (the pinned 3.17.2), local destination, peak RSS of each.
#
#   benches/artifacts.sh                 # the full run
#   benches/artifacts.sh --size-mb 256   # a quicker one
#
# Uses the e2e venv (.venv, made by scripts/setup-python.sh) for the mlflow CLI and the client.
# Set BENCH_NO_BUILD=1 to skip `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-python.sh
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  echo "== cargo build --release"
  cargo build --release --quiet
fi
exec .venv/bin/python benches/artifacts.py --mlflow .venv/bin/mlflow "$@"
