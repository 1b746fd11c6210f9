#!/usr/bin/env bash
# Fetches what the viewer tests need from npm (run by `make test-deps`, which has the network):
#   .cache/ohif/<version>/dist   the prebuilt OHIF viewer from `npm pack @ohif/app@<version>`
#   tests/browser/node_modules   playwright-core + pngjs, pinned by tests/browser/package-lock.json
# Idempotent: a second run with everything in place does nothing and needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

OHIF_VERSION=${OHIF_VERSION:-3.13.2}
CACHE=.cache/ohif
TARGET="$CACHE/$OHIF_VERSION"

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is not installed: the OHIF viewer tests are skipped (and fail under CI=true)" >&2
  exit 0
fi

if [[ ! -f "$TARGET/dist/index.html" ]]; then
  echo "fetching @ohif/app@$OHIF_VERSION into $TARGET"
  mkdir -p "$CACHE"
  work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  tarball=$(cd "$work" && npm pack --silent "@ohif/app@$OHIF_VERSION" | tail -n 1)
  tar -xzf "$work/$tarball" -C "$work" package/dist
  mkdir -p "$TARGET"
  rm -rf "$TARGET/dist"
  mv "$work/package/dist" "$TARGET/dist"
fi

lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.package-lock.json
if [[ ! -f "$stamp" || "$lock" -nt "$stamp" ]]; then
  echo "installing tests/browser (playwright-core, pngjs) from $lock"
  npm ci --silent --no-audit --no-fund --prefix tests/browser
fi
