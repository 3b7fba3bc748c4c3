#!/usr/bin/env bash
# Installs the cloud storage emulators the e2e suite starts (Azurite for Azure
# Blob) into tests/e2e/node/node_modules, exactly as pinned by its
# package-lock.json; a no-op when the lock file has not changed since the last
# install. Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/../tests/e2e/node"

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -x node_modules/.bin/azurite-blob ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm not found: installing Debian's nodejs and npm" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
echo "== installing Azurite into tests/e2e/node"
# No install scripts: Azurite needs none, and the lock file pins every package.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
