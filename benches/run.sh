#!/usr/bin/env bash
# The one command for the benchmark: prepares what it needs on a fresh machine, then runs
# benches/bench.py with the arguments given (see `benches/run.sh --help`).
#
#   benches/run.sh --quick
#   benches/run.sh --servers ferroflow,mlflow --backends sqlite --workloads runs_create,log_batch
#   benches/run.sh --quick --servers ferroflow --baseline-bin /tmp/ferroflow-before   # A/B
#   benches/run.sh ui-page            # the web UI's experiment page on 10,000 runs
#   benches/run.sh gc                 # ferroflow gc vs mlflow gc on 100,000 deleted runs
#   benches/run.sh traces             # trace records: StartTraceV3 ingest, traces/search
#   benches/run.sh otlp               # span ingest over OTLP (/v1/traces) vs mlflow server
#
# Set BENCH_NO_BUILD=1 to skip `cargo build --release` (it is a no-op when up to date anyway).
set -euo pipefail
cd "$(dirname "$0")/.."

FASTTRACKML=fasttrackml==0.6.0
venv=benches/.venv
stamp=$venv/.requirements.sha256
want=$( (cat benches/requirements.txt; echo "$FASTTRACKML") | sha256sum | cut -d' ' -f1)
if [ ! -x $venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing benchmark dependencies into $venv"
  python3 -m venv $venv
  $venv/bin/pip install --quiet --upgrade pip
  $venv/bin/pip install --quiet -r benches/requirements.txt
  $venv/bin/pip install --quiet --no-deps "$FASTTRACKML"
  echo "$want" > "$stamp"
fi

if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  echo "== cargo build --release"
  cargo build --release --quiet
fi

# `benches/run.sh ui-page [...]`: the web UI's experiment page (benches/ui_page.py).
script=benches/bench.py
if [ "${1:-}" = ui-page ]; then
  shift
  script=benches/ui_page.py
fi
# `benches/run.sh gc [...]`: ferroflow gc against mlflow gc (benches/gc.py).
if [ "${1:-}" = gc ]; then
  shift
  script=benches/gc.py
fi
# `benches/run.sh traces [...]`: trace ingest and search against mlflow server (benches/traces.py).
if [ "${1:-}" = traces ]; then
  shift
  script=benches/traces.py
fi
# `benches/run.sh otlp [...]`: span ingest over OTLP against mlflow server (benches/otlp.py).
if [ "${1:-}" = otlp ]; then
  shift
  script=benches/otlp.py
fi
exec $venv/bin/python $script "$@"
