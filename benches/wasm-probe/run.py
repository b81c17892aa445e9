"""The wasm cost of ingest-core: ns per event under Wasmtime vs native.

Usage: python3 benches/wasm-probe/run.py [EVENTS]   (from the repo root)
Builds the probe for wasm32 with the Debian toolchain that scripts/setup-wasm links
as `debian-web`, and natively with the default toolchain; generates EVENTS events
with the benches `gen` binary; prints one JSON line.
Needs: PyPI `wasmtime` (pip install wasmtime), scripts/setup-wasm done.
"""
import json, os, subprocess, sys, time

import wasmtime

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
probe = os.path.join(root, "benches", "wasm-probe")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
ptarget = os.path.join(target, "wasm-probe")

def cargo(args, **env):
    e = dict(os.environ, CARGO_TARGET_DIR=ptarget, **env)
    subprocess.run(["cargo"] + args, cwd=probe, check=True, env=e)

cargo(["build", "--release", "--lib", "--target", "wasm32-unknown-unknown"], RUSTUP_TOOLCHAIN="debian-web")
cargo(["build", "--release", "--bin", "wasm-probe-native"])
data_path = os.path.join(ptarget, f"events-{n}.ndjson")
with open(data_path, "wb") as f:
    subprocess.run(["cargo", "run", "-q", "--release", "-p", "benches", "--bin", "gen", "--",
                    "--events", str(n)], cwd=root, check=True, stdout=f,
                   env=dict(os.environ, CARGO_TARGET_DIR=target))
data = open(data_path, "rb").read()

wasm = os.path.join(ptarget, "wasm32-unknown-unknown", "release", "wasm_probe.wasm")
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
module = wasmtime.Module.from_file(engine, wasm)
inst = wasmtime.Instance(store, module, [])
ex = inst.exports(store)
best = float("inf")
rows = 0
for _ in range(5):
    ptr = ex["alloc"](store, len(data))
    ex["memory"].write(store, data, ptr)
    t0 = time.perf_counter()
    rows = ex["run"](store, ptr, len(data), 100)
    best = min(best, time.perf_counter() - t0)
out = subprocess.run([os.path.join(ptarget, "release", "wasm-probe-native"), data_path, "5"],
                     check=True, capture_output=True, text=True).stdout.split()
native_rows, native_ns = int(out[0]), float(out[1])
assert rows == native_rows == n, (rows, native_rows, n)
wasm_ns = best * 1e9 / rows
print(json.dumps({"events": n, "wasm_ns_per_event": round(wasm_ns, 1),
                  "native_ns_per_event": native_ns, "wasm_over_native": round(wasm_ns / native_ns, 2),
                  "wasm_bytes": os.path.getsize(wasm), "runtime": f"wasmtime (PyPI) {wasmtime.__version__ if hasattr(wasmtime, '__version__') else ''}"}))
