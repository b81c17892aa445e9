#!/usr/bin/env bash
# Builds the worker (wrangler's [build] command; scripts/edge-dev calls it too):
# worker-build with the tools scripts/setup-wasm installed, then prints the wasm size.
#
#   EDGE_BUILD=release (default)  profile worker-release (opt-level s, LTO, 1 CGU) + wasm-opt
#   EDGE_BUILD=dev                profile worker-dev, no wasm-opt (fast; tests, edge-dev)
#   EDGE_SKIP_BUILD=1             do nothing (scripts/edge-dev built already)
#   EDGE_TARGET_DIR               cargo target dir (default $PAGEVIEW_CACHE/target-wasm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ "${EDGE_SKIP_BUILD:-}" = 1 ]; then
  echo "[edge-build] skipped (built by scripts/edge-dev)"
  exit 0
fi
export PAGEVIEW_CACHE=${PAGEVIEW_CACHE:-$HOME/.cache/pageview-ingest}
bin="$PAGEVIEW_CACHE/bin"
for tool in worker-build wasm-bindgen; do
  [ -x "$bin/$tool" ] || { echo "[edge-build] $bin/$tool is missing: run scripts/setup-wasm" >&2; exit 1; }
done
[ -x node_modules/.bin/wrangler ] || { echo "[edge-build] node_modules missing: run scripts/setup-wasm" >&2; exit 1; }
# rustup's wasm32 target where installed; else the Debian toolchain linked by setup-wasm.
if [ -z "${RUSTUP_TOOLCHAIN:-}" ]; then
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    RUSTUP_TOOLCHAIN=$(rustup show active-toolchain | cut -d' ' -f1)
  else
    RUSTUP_TOOLCHAIN=debian-web
  fi
fi
export RUSTUP_TOOLCHAIN
# worker-build would download these; point it at the local binaries (TOOLCHAIN.md step 6).
export WASM_BINDGEN_BIN="$bin/wasm-bindgen"
export ESBUILD_BIN="$here/node_modules/@esbuild/linux-x64/bin/esbuild"
export WASM_OPT_BIN="$here/node_modules/binaryen/bin/wasm-opt"
export CARGO_TARGET_DIR=${EDGE_TARGET_DIR:-$PAGEVIEW_CACHE/target-wasm}
case "${EDGE_BUILD:-release}" in
  release) args=(--profile worker-release) ;;
  dev) args=(--profile worker-dev --no-opt) ;;
  *) echo "[edge-build] EDGE_BUILD must be release or dev" >&2; exit 1 ;;
esac
start=$SECONDS
echo "[edge-build] worker-build ${args[*]} (toolchain $RUSTUP_TOOLCHAIN, target dir $CARGO_TARGET_DIR)"
"$bin/worker-build" "${args[@]}"
wasm=$(find build -name '*.wasm' | head -1)
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "[edge-build] ${EDGE_BUILD:-release} wasm: $wasm $raw bytes, gzip -9 $gz bytes ($((gz / 1024)) KiB; budget 1024 KiB) in $((SECONDS - start))s"
