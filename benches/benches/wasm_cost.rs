//! The wasm cost: ingest-core's full pipeline compiled to wasm32 (the edge worker's
//! code path and release settings: `opt-level = "s"`, LTO) and run under Wasmtime's
//! Cranelift JIT, beside the same code compiled natively, on the same 20,000 events in
//! 100-event bodies. The wasm figure is the edge's CPU per event before the Workers
//! runtime's own per-request overhead.
//!
//! The probe (`benches/wasm-probe`) is built for `wasm32-unknown-unknown` here, with the
//! toolchain `scripts/setup-wasm` installs (rustup's wasm32 target where present, else
//! the Debian `debian-web` toolchain); without it this bench fails and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use benches::json_arrow::Workload;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wasmtime::{Engine, Instance, Module, Store, TypedFunc};

const EVENTS: usize = 20_000;
const PER_REQUEST: usize = 100;

/// The benches crate of the checkout cargo runs this from (the compile-time value is
/// where the binary was built, which a shared target folder may have kept).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

fn probe_dir() -> PathBuf {
    manifest_dir().join("wasm-probe")
}

/// Whether rustup's own wasm32 target is installed for the default toolchain.
fn rustup_has_wasm32() -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|root| {
            Path::new(root.trim())
                .join("lib/rustlib/wasm32-unknown-unknown")
                .is_dir()
        })
        .unwrap_or(false)
}

/// Builds the probe for wasm32 and returns the module's path.
fn build_wasm() -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../target"))
        .join("wasm-probe");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(probe_dir())
        .args([
            "build",
            "--profile",
            "worker-release",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // The bench's own build flags are for the host, not for wasm32.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if !rustup_has_wasm32() {
        cmd.env("RUSTUP_TOOLCHAIN", "debian-web");
    }
    let status = cmd.status().expect("running cargo for the wasm probe");
    assert!(
        status.success(),
        "building benches/wasm-probe for wasm32 failed: run scripts/setup-wasm first \
         (it installs the wasm32 toolchain this bench needs)"
    );
    target_dir.join("wasm32-unknown-unknown/worker-release/wasm_probe.wasm")
}

fn wasm_cost(c: &mut Criterion) {
    let w = Workload::new(1, EVENTS);
    let data = &w.ndjson;
    let wasm = build_wasm();
    eprintln!(
        "wasm probe: {} ({} bytes)",
        wasm.display(),
        std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0)
    );

    let engine = Engine::default();
    let module = Module::from_file(&engine, &wasm).expect("loading the wasm probe");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiating the probe");
    let alloc: TypedFunc<u32, u32> = instance
        .get_typed_func(&mut store, "alloc")
        .expect("probe export alloc");
    let run: TypedFunc<(u32, u32, u32), u64> = instance
        .get_typed_func(&mut store, "run")
        .expect("probe export run");
    let memory = instance
        .get_memory(&mut store, "memory")
        .expect("probe export memory");
    // One buffer, written once: `run` only reads it (each body is copied inside).
    let len = u32::try_from(data.len()).expect("workload under 4 GiB");
    let ptr = alloc.call(&mut store, len).expect("alloc");
    memory
        .write(&mut store, ptr as usize, data)
        .expect("writing the events into wasm memory");

    // Both sides must do the same work: every event becomes a row.
    let wasm_rows = run
        .call(&mut store, (ptr, len, PER_REQUEST as u32))
        .expect("run");
    let native_rows = wasm_probe::process(data, PER_REQUEST);
    assert_eq!(
        wasm_rows as usize, native_rows,
        "wasm and native rows differ"
    );
    assert_eq!(native_rows, EVENTS, "every generated event is a row");

    let mut g = c.benchmark_group("wasm_cost");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    g.bench_function("wasm32_wasmtime", |b| {
        b.iter(|| {
            run.call(&mut store, (ptr, len, PER_REQUEST as u32))
                .expect("run")
        })
    });
    g.bench_function("native", |b| {
        b.iter(|| wasm_probe::process(data, PER_REQUEST))
    });
    g.finish();
}

criterion_group!(benches, wasm_cost);
criterion_main!(benches);
