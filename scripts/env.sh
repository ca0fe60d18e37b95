# Sourced by every script: where the pinned tools live. The project's own node_modules come
# first on PATH, so its Node.js 22 runs wrangler rather than whatever the machine has.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$ROOT/node_modules/.bin:$CARGO_BIN:$PATH"
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
export WRANGLER_SEND_METRICS=false
export FUNCTIONS="track forms engine deliver api"
WORKER_BUILD_VERSION="0.8.7"
