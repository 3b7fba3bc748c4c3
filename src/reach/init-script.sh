#!/usr/bin/env bash
# ferroflow cluster init script: sends this cluster's MLflow tracking and
# model registry to the ferroflow workspace at
#   @TRACKING_URI_TEXT@
# with the ferroflow auth plugin renewing its tokens.
#
# Made by `ferroflow workspace init-script`. The API key is never written
# here: give the cluster an environment variable filled from a secret, e.g.
#   FERROFLOW_API_KEY={{secrets/ferroflow/api-key}}
# Running the script again changes nothing. Files are written under
# $FERROFLOW_INIT_ROOT when it is set (tests), under / otherwise; the
# Python that gets the plugin is $FERROFLOW_PYTHON, else the cluster's.
set -euo pipefail

tracking_uri=@TRACKING_URI@
plugin_version=@PLUGIN_VERSION@
root="${FERROFLOW_INIT_ROOT:-}"
root="${root%/}"
begin_marker="# >>> ferroflow: written by its init script >>>"
end_marker="# <<< ferroflow <<<"

if [ -z "${FERROFLOW_API_KEY:-}" ]; then
  echo "ferroflow init script: FERROFLOW_API_KEY is not set; set it on the" \
    "cluster from a secret, e.g. FERROFLOW_API_KEY={{secrets/ferroflow/api-key}}" >&2
  exit 1
fi

python="${FERROFLOW_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x /databricks/python/bin/python ]; then
    python=/databricks/python/bin/python
  else
    python=python3
  fi
fi
if ! command -v "$python" > /dev/null; then
  echo "ferroflow init script: no Python at '$python'; set FERROFLOW_PYTHON" >&2
  exit 1
fi

# The plugin's sources go to a temporary directory, removed however the
# script ends.
src=""
trap 'if [ -n "$src" ]; then rm -rf "$src"; fi' EXIT

# The plugin, from the sources below, unless this version is installed.
install_plugin() {
  if "$python" -c "import sys, ferroflow_auth; sys.exit(ferroflow_auth.__version__ != '$plugin_version')" 2>/dev/null; then
    return
  fi
  src=$(mktemp -d)
  mkdir -p "$src/ferroflow_auth"
  cat > "$src/pyproject.toml" <<'FERROFLOW_PLUGIN_EOF'
@PLUGIN_PYPROJECT@
FERROFLOW_PLUGIN_EOF
  cat > "$src/README.md" <<'FERROFLOW_PLUGIN_EOF'
@PLUGIN_README@
FERROFLOW_PLUGIN_EOF
  cat > "$src/ferroflow_auth/__init__.py" <<'FERROFLOW_PLUGIN_EOF'
@PLUGIN_MODULE@
FERROFLOW_PLUGIN_EOF
  "$python" -m pip install --quiet --disable-pip-version-check "$src"
  rm -rf "$src"
}

# Puts stdin between ferroflow's markers at the end of $1 (under the root),
# replacing an earlier block; a file whose content would not change is not
# touched.
write_block() {
  local file="$root$1" new
  mkdir -p "$(dirname "$file")"
  [ -e "$file" ] || : > "$file"
  new=$(mktemp)
  awk -v begin="$begin_marker" -v end="$end_marker" '
    $0 == begin { skipping = 1; next }
    $0 == end { skipping = 0; next }
    !skipping' "$file" > "$new"
  { echo "$begin_marker"; cat; echo "$end_marker"; } >> "$new"
  if ! cmp -s "$new" "$file"; then
    cat "$new" > "$file"
  fi
  rm -f "$new"
}

install_plugin

# The driver and executors read Spark's environment file.
write_block /databricks/spark/conf/spark-env.sh <<EOF_SPARK_ENV
export MLFLOW_TRACKING_URI='$tracking_uri'
export MLFLOW_REGISTRY_URI='$tracking_uri'
export MLFLOW_TRACKING_AUTH=ferroflow
EOF_SPARK_ENV

# Every login and process started through PAM reads /etc/environment.
write_block /etc/environment <<EOF_ENVIRONMENT
MLFLOW_TRACKING_URI="$tracking_uri"
MLFLOW_REGISTRY_URI="$tracking_uri"
MLFLOW_TRACKING_AUTH="ferroflow"
EOF_ENVIRONMENT
