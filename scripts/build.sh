#!/usr/bin/env bash
# Builds every function to functions/<name>/build (Wasm + JS shim) with worker-build.
set -euo pipefail
source "$(dirname "$0")/env.sh"
for f in $FUNCTIONS; do
  echo "build: $f"
  (cd "$ROOT/functions/$f" && worker-build --release 2>&1 | grep -v '^\s*$' | tail -n 3)
done
