//! The `ndjson_to_arrow` example end to end: built with cargo, fed generated NDJSON,
//! its Arrow IPC output read by pyarrow (python3 and pyarrow must be installed; the
//! test fails saying which is missing), its rejects read from stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ingest_core::schema;

/// Builds the example (same profile and target dir as this test) and returns its path.
fn build_example() -> PathBuf {
    // Cargo and the checkout as cargo runs this now: the compile-time values are
    // those of the build, which a shared target folder may have kept from another path.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let status = Command::new(cargo)
        .args(["build", "-p", "ingest-core", "--example", "ndjson_to_arrow"])
        .current_dir(dir)
        .status()
        .expect("run cargo build --example ndjson_to_arrow");
    assert!(status.success(), "cargo build --example failed: {status}");
    // This test binary is <target>/debug/deps/it-<hash>; examples are in
    // <target>/debug/examples.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join("ndjson_to_arrow");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

fn require_pyarrow() {
    let out = Command::new("python3")
        .args(["-c", "import pyarrow; print(pyarrow.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is missing (needed to read the output): {e}"));
    assert!(
        out.status.success(),
        "pyarrow is missing for python3 (pip install pyarrow): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` events, one per line (an invalid one every 97th line), and a blank line
/// every 500 lines.
fn generate(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i % 97 == 50 {
            // Three kinds of bad line: no url, not JSON, a negative width.
            match (i / 97) % 3 {
                0 => s.push_str(r#"{"site":"example.com"}"#),
                1 => s.push_str("{not json"),
                _ => s.push_str(
                    r#"{"site":"example.com","url":"https://example.com/","screen_width":-1}"#,
                ),
            }
        } else {
            s.push_str(&format!(
                r#"{{"site":"site{}.test","url":"https://www.site{}.test/p/{i}?utm_source=news&x=1","referrer":"https://www.google.com/search?q={i}","screen_width":{},"ttfb_ms":{},"cls":0.02,"props":{{"i":"{i}"}}}}"#,
                i % 7,
                i % 7,
                320 + i % 1600,
                i % 900
            ));
        }
        s.push('\n');
        if i % 500 == 0 {
            s.push('\n'); // blank lines are not events but still count as lines
        }
    }
    s
}

#[test]
fn ndjson_to_arrow_output_is_read_by_pyarrow() {
    require_pyarrow();
    let bin = build_example();
    let ndjson = generate(2_500);
    // Recompute the invalid lines' numbers as the example counts them (blank lines
    // included).
    let bad_lines: Vec<usize> = ndjson
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.contains("\"url\":\"https://www.site") && !l.is_empty())
        .map(|(i, _)| i + 1)
        .collect();
    let valid = ndjson
        .lines()
        .filter(|l| l.contains("\"url\":\"https://www.site"))
        .count();
    assert_eq!(bad_lines.len(), 2_500 - valid);
    assert!(bad_lines.len() >= 25);

    let mut child = Command::new(&bin)
        .args(["--received-at", "1793491200000", "--batch-rows", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Feed stdin from a thread: the example writes output while it reads.
    let mut stdin = child.stdin.take().unwrap();
    let input = ndjson.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "example failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Rejects: one JSON line per invalid input line, naming the line and the field.
    let stderr = String::from_utf8(out.stderr).unwrap();
    let rejects: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let lines: Vec<usize> = rejects
        .iter()
        .map(|r| r["line"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(lines, bad_lines);
    for r in &rejects {
        assert!(r["field"].is_string() && r["code"].is_string() && r["reason"].is_string());
    }
    assert!(rejects
        .iter()
        .any(|r| r["field"] == "url" && r["code"] == "missing"));
    assert!(rejects.iter().any(|r| r["field"] == "screen_width"));

    // The stream, read by pyarrow: the v1 columns in order, the version, the row count.
    let script = r#"
import json, sys
import pyarrow as pa, pyarrow.ipc as ipc
reader = ipc.open_stream(sys.stdin.buffer)
batches = list(reader)
t = pa.Table.from_batches(batches, schema=reader.schema)
print(json.dumps({
    "columns": t.schema.names,
    "rows": t.num_rows,
    "batches": len(batches),
    "version": (t.schema.metadata or {}).get(b"pageview.schema_version", b"").decode(),
    "distinct_ids": len(set(t.column("event_id").to_pylist())),
    "received_at": str(t.schema.field("received_at").type),
    "hostnames": sorted(set(t.column("hostname").to_pylist())),
    "utm_source": sorted(set(t.column("utm_source").to_pylist())),
    "referrer_source": sorted(set(t.column("referrer_source").to_pylist())),
    "props": t.column("prop_keys").to_pylist()[0],
}))
"#;
    let mut py = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = py.stdin.take().unwrap();
    let arrows = out.stdout;
    let feeder = std::thread::spawn(move || stdin.write_all(&arrows));
    let py = py.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        py.status.success(),
        "pyarrow could not read the stream: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    let columns: Vec<&str> = r["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(columns, schema::COLUMNS);
    assert_eq!(r["rows"].as_u64().unwrap() as usize, valid);
    assert_eq!(r["distinct_ids"].as_u64().unwrap() as usize, valid);
    assert_eq!(
        r["batches"].as_u64().unwrap() as usize,
        valid.div_ceil(1000)
    );
    assert_eq!(r["version"], schema::VERSION);
    assert_eq!(r["received_at"], "timestamp[ms, tz=UTC]");
    let hosts: Vec<String> = (0..7).map(|i| format!("site{i}.test")).collect();
    assert_eq!(r["hostnames"], serde_json::json!(hosts));
    assert_eq!(r["utm_source"], serde_json::json!(["news"]));
    assert_eq!(r["referrer_source"], serde_json::json!(["Google"]));
    assert_eq!(r["props"], serde_json::json!(["i"]));
}
