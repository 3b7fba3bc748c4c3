#!/usr/bin/env bash
# Creates .venv with the pinned mlflow client and the e2e test tools; a no-op
# when the requirements have not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=tests/e2e/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "== installing Python test dependencies into .venv"
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -r "$requirements"
echo "$want" > "$stamp"
