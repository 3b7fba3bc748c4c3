#!/usr/bin/env bash
# Runs every test: Rust unit tests, the store suite on SQLite and PostgreSQL,
# and the end-to-end suite that drives a real ferroflow with the stock
# `mlflow` client (and `mlflow server` for cross-compatibility).
#
# Needs PostgreSQL at FERROFLOW_TEST_PG_URL (default
# postgresql://postgres@127.0.0.1:5432, trust auth); creates the Python venv
# in .venv and installs the pinned Azurite (Azure Blob emulator) into
# tests/e2e/node on first use. Extra arguments go to pytest (e.g. -k sqlite).
set -euo pipefail
cd "$(dirname "$0")/.."

# The PostgreSQL cases of `cargo test` run only when this is set.
export FERROFLOW_TEST_PG_URL=${FERROFLOW_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432}

scripts/setup-python.sh
scripts/setup-node.sh

echo "== cargo test"
cargo build --locked
cargo test --locked

echo "== auth plugin (clients/python): wheel, its tests, installed for the e2e suite"
rm -rf target/wheels
.venv/bin/pip wheel --quiet --no-deps --wheel-dir target/wheels ./clients/python
.venv/bin/pip install --quiet --no-deps --force-reinstall target/wheels/ferroflow_auth-*.whl
.venv/bin/python -m pytest clients/python/tests -q

echo "== end-to-end (mlflow client)"
.venv/bin/python -m pytest tests/e2e "$@"
