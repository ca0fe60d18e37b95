#!/usr/bin/env bash
# Installs the pinned toolchain from the package registries alone (no other downloads):
# the wasm32 target, worker-build, wasm-bindgen-cli at exactly Cargo.lock's version, and from
# package-lock.json Node.js 22, wrangler (with workerd) and binaryen's wasm-opt.
# Idempotent: when everything is in place it only checks, in a few seconds.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

say() { printf 'bootstrap: %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (several minutes on a fresh machine)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --force
fi

# The CLI must match the wasm-bindgen library in Cargo.lock exactly. Installed without
# --locked: a transitive crate its lock pins is missing from the registry mirror here.
BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $BINDGEN_VERSION (several minutes on a fresh machine)"
  cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION" --force
fi

# npm ci only when the lock changed since the last install.
STAMP="node_modules/.kindling-lock"
if [ ! -f "$STAMP" ] || ! cmp -s package-lock.json "$STAMP"; then
  say "installing Node.js 22, wrangler and binaryen from package-lock.json"
  npm ci --no-audit --no-fund
  cp package-lock.json "$STAMP"
fi

# Headless Chromium for the snippet's browser test, from Debian's packages.
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium (browser tests)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

# npm may warn that install scripts were not approved; check the binaries really run.
node_major="$(node --version | sed 's/^v\([0-9]*\).*/\1/')"
[ "$node_major" -ge 22 ] || { say "node 22 from node_modules does not run (got $(node --version))"; exit 1; }
wasm-opt --version >/dev/null
"$ESBUILD_BIN" --version >/dev/null
wrangler --version >/dev/null
workerd --version >/dev/null
say "toolchain ready"
