#!/usr/bin/env bash
# Minifies the website snippet k.js to k.min.js (committed; the track worker embeds it with
# include_str! and serves it at GET /k.js). Fails if the snippet grows past 2 KB gzipped.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
esbuild="$(dirname "$0")/../../../node_modules/.bin/esbuild"
limit=2048

"$esbuild" "$dir/k.js" --minify --target=es2017 --charset=utf8 --log-level=warning \
  --outfile="$dir/k.min.js"

raw=$(wc -c <"$dir/k.min.js")
gz=$(gzip -9 -c "$dir/k.min.js" | wc -c)
echo "k.min.js: ${raw} bytes raw, ${gz} bytes gzip -9 (limit ${limit})"
if [ "$gz" -gt "$limit" ]; then
  echo "k.min.js: over the ${limit}-byte gzip budget" >&2
  exit 1
fi
