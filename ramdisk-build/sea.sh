#!/usr/bin/env bash
# Turns a CommonJS bundle into a Node single executable application:
#   ramdisk-build/sea.sh NODE_BINARY BUNDLE.cjs OUTPUT
# The blob is made by the same Node that becomes the executable (the code cache
# in it is only valid for that exact V8), then injected with postject.
set -euo pipefail
node_bin=$1 bundle=$2 out=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/metal-agent-sea.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/sea-config.json" <<EOF
{
  "main": "$(realpath "$bundle")",
  "output": "$work/sea.blob",
  "disableExperimentalSEAWarning": true,
  "useCodeCache": ${SEA_CODE_CACHE:-true}
}
EOF
"$node_bin" --experimental-sea-config "$work/sea-config.json" 2> >(grep -v "Can.t find string offset" >&2) >/dev/null

cp "$node_bin" "$work/agent"
chmod u+w "$work/agent"
# Node ships with full symbols (~30 MB); the SEA does not need them. Strip
# before injecting so the injected note is never touched by strip.
strip --strip-all "$work/agent"
node "$repo/node_modules/postject/dist/cli.js" "$work/agent" NODE_SEA_BLOB "$work/sea.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 2> >(grep -v "Can.t find string offset" >&2) >/dev/null
mkdir -p "$(dirname "$out")"
mv "$work/agent" "$out"
