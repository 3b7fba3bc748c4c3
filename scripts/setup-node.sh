#!/usr/bin/env bash
# Installs the e2e suite's node tools into tests/e2e/node/node_modules, exactly as
# pinned by its package-lock.json: the cloud storage emulators the fixtures start
# (Azurite for Azure Blob) and playwright-core, which drives the browser of the web
# UI tests (tests/e2e/test_ui.py), with Debian's chromium (playwright-core never
# downloads a browser). A no-op when the lock file has not changed since the last
# install; installs node, npm and chromium with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../tests/e2e/node"

if ! [ -x "${FERROFLOW_E2E_CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "chromium not found: installing Debian's (or set FERROFLOW_E2E_CHROMIUM)" >&2
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -x node_modules/.bin/azurite-blob ] && [ -f node_modules/playwright-core/package.json ] \
   && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm not found: installing Debian's nodejs and npm" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
echo "== installing Azurite and playwright-core into tests/e2e/node"
# No install scripts: neither package needs one (playwright-core's would fetch
# nothing anyway), and the lock file pins every package.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
