//! `compare`'s figures: each load's median over the rounds, each ratio the median of
//! its ratio within each round (two loads a few seconds apart on the same machine
//! drift less than one load across rounds; one round: the figures themselves); printed
//! as tables and written as JSON (`--json`).

use benches::json_arrow::Workload;
use serde_json::{json, Value};

use crate::loads::Round;
use crate::Args;

/// Every load of a round, in the order the table prints them.
const LOADS: [&str; 7] = [
    "sink_e2e",
    "sink_batches_e2e",
    "sink_loader",
    "sink_loader_plain",
    "clickhouse_crate",
    "curl_native_lz4",
    "curl_jsoneachrow",
];

/// The targets: name, the two loads whose rows/s are compared, the target.
const LOAD_TARGETS: [(&str, &str, &str, f64); 3] = [
    (
        "loader_vs_clickhouse_crate",
        "sink_loader",
        "clickhouse_crate",
        1.4,
    ),
    (
        "loader_vs_curl_native_lz4",
        "sink_loader",
        "curl_native_lz4",
        0.9,
    ),
    (
        "e2e_vs_curl_jsoneachrow",
        "sink_e2e",
        "curl_jsoneachrow",
        1.0,
    ),
];

/// Ratios without a target that say what bounds the e2e one: the server's own limit for
/// our 33-column table (a pre-built Native body), itself against JSONEachRow into a
/// 12-column table of the raw fields; what leaving LZ4 out (the sink's default to a
/// loopback URL) does to the loader; the edge's path against JSONEachRow.
const CONTEXT: [(&str, &str, &str); 4] = [
    ("e2e_vs_curl_native_lz4", "sink_e2e", "curl_native_lz4"),
    (
        "curl_native_lz4_vs_curl_jsoneachrow",
        "curl_native_lz4",
        "curl_jsoneachrow",
    ),
    (
        "loader_plain_vs_loader_lz4",
        "sink_loader_plain",
        "sink_loader",
    ),
    (
        "batches_e2e_vs_curl_jsoneachrow",
        "sink_batches_e2e",
        "curl_jsoneachrow",
    ),
];

/// Prints the tables and writes `--json`. `json_secs`: each JSON → Arrow path's median
/// seconds; `native_mb`: the size of curl's Native body; `ok`: every row count right.
pub fn report(
    args: &Args,
    w: &Workload,
    json_secs: &[(&'static str, f64)],
    runs: &[Round],
    native_mb: f64,
    ok: bool,
) -> Result<(), String> {
    let n = args.events;
    let mb = w.bytes() as f64 / 1e6;
    let per_run = |k: &str| -> Vec<f64> { runs.iter().map(|r| r.rows_per_s(k, n)).collect() };
    let load_ratio = |a: &str, b: &str| -> Vec<f64> {
        runs.iter()
            .map(|r| r.rows_per_s(a, n) / r.rows_per_s(b, n))
            .collect()
    };
    let rows: Vec<(&str, f64)> = LOADS.iter().map(|&k| (k, median(per_run(k)))).collect();
    let eps: Vec<(&str, f64)> = json_secs.iter().map(|(k, s)| (*k, n as f64 / s)).collect();
    let get = |v: &[(&str, f64)], k: &str| v.iter().find(|(n, _)| *n == k).map(|x| x.1).unwrap();
    let ratio_runs: Vec<(&str, Vec<f64>)> = LOAD_TARGETS
        .iter()
        .map(|&(k, a, b, _)| (k, load_ratio(a, b)))
        .collect();
    let mut ratios = vec![
        (
            "json_plain_vs_arrow_json",
            get(&eps, "ingest_core_plain") / get(&eps, "arrow_json"),
            1.5,
        ),
        (
            "json_full_vs_arrow_json",
            get(&eps, "ingest_core_full") / get(&eps, "arrow_json"),
            1.0,
        ),
    ];
    for ((k, v), (_, _, _, target)) in ratio_runs.iter().zip(LOAD_TARGETS) {
        ratios.push((k, median(v.clone()), target));
    }
    let context: Vec<(&str, f64)> = CONTEXT
        .iter()
        .map(|&(k, a, b)| (k, median(load_ratio(a, b))))
        .collect();
    let peak = |what: &str| runs.iter().filter_map(|r| r.sink(what).rss).max();
    let (rss, rss_batches) = (peak("sink_e2e"), peak("sink_batches_e2e"));
    let mib = |b: Option<u64>| b.map(|b| b as f64 / (1 << 20) as f64);
    // CPU per row, in µs: the median over the rounds.
    let cpu_per_row = |server: bool| -> Vec<(&'static str, f64)> {
        LOADS
            .iter()
            .filter_map(|&k| {
                let v: Vec<f64> = runs.iter().filter_map(|r| r.cpu(k, server)).collect();
                (!v.is_empty()).then(|| (k, median(v) * 1e6 / n as f64))
            })
            .collect()
    };
    let (ch_cpu, client_cpu) = (cpu_per_row(true), cpu_per_row(false));

    println!("\n{n} events, NDJSON {mb:.1} MB, Native+LZ4 {native_mb:.1} MB\n");
    if runs.len() > 1 {
        println!(
            "loads: the median of {} rounds; ratios: the median of each round's\n",
            runs.len()
        );
    }
    println!("| JSON → Arrow | events/s | MB/s | ns/event |");
    println!("|---|---|---|---|");
    for (k, e) in &eps {
        println!(
            "| {k} | {:.2} M | {:.0} | {:.0} |",
            e / 1e6,
            e * mb / n as f64,
            1e9 / e
        );
    }
    let look = |v: &[(&str, f64)], k: &str| {
        v.iter()
            .find(|(n, _)| *n == k)
            .map_or("—".to_string(), |x| format!("{:.2}", x.1))
    };
    println!("\n| load into ClickHouse 18.16 | rows/s | seconds | server CPU µs/row | our side's CPU µs/row |");
    println!("|---|---|---|---|---|");
    for (k, r) in &rows {
        println!(
            "| {k} | {:.3} M | {:.2} | {} | {} |",
            r / 1e6,
            n as f64 / r,
            look(&ch_cpu, k),
            look(&client_cpu, k)
        );
    }
    let show = |m: Option<f64>| m.map_or("unknown".into(), |m| format!("{m:.0} MiB"));
    println!(
        "\nsink peak RSS: {} (target ≤ 256 MiB); on /v1/batches: {}\n",
        show(mib(rss)),
        show(mib(rss_batches))
    );
    println!("| ratio | measured | target | met |");
    println!("|---|---|---|---|");
    for (k, r, t) in &ratios {
        println!(
            "| {k} | {r:.3} | ≥ {t} | {} |",
            if r >= t { "yes" } else { "no" }
        );
    }
    println!("\n| context ratio (no target) | measured |");
    println!("|---|---|");
    for (k, r) in &context {
        println!("| {k} | {r:.3} |");
    }

    let Some(path) = &args.json else {
        return Ok(());
    };
    let obj = |v: &[(&str, f64)]| {
        Value::Object(v.iter().map(|(k, x)| (k.to_string(), json!(x))).collect())
    };
    let sink_runs = |what: &str| {
        let rss: Vec<Option<u64>> = runs.iter().map(|r| r.sink(what).rss).collect();
        let reports: Vec<_> = runs.iter().map(|r| &r.sink(what).report).collect();
        (rss, reports)
    };
    let (rss_runs, reports) = sink_runs("sink_e2e");
    let (rss_batches_runs, reports_batches) = sink_runs("sink_batches_e2e");
    let out = json!({
        "events": n,
        "seed": args.seed,
        "ndjson_bytes": w.bytes(),
        "events_per_request": args.events_per_request,
        "concurrency": args.concurrency,
        "rows_per_s": obj(&rows),
        "json_to_arrow_events_per_s": obj(&eps),
        "sink_peak_rss_bytes": rss,
        "sink_peak_rss_mb": mib(rss),
        "ratios": Value::Object(ratios.iter().map(|(k, r, _)| (k.to_string(), json!(r))).collect()),
        "targets": Value::Object(ratios.iter().map(|(k, _, t)| (k.to_string(), json!(t))).collect()),
        "context_ratios": obj(&context),
        "load_reps": runs.len(),
        "rows_per_s_runs": Value::Object(
            LOADS.iter().map(|&k| (k.to_string(), json!(per_run(k)))).collect()
        ),
        "ratio_runs": Value::Object(
            ratio_runs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
        ),
        "sink_peak_rss_bytes_runs": rss_runs,
        "load_generator": reports.last(),
        "load_generator_runs": reports,
        "sink_batches_peak_rss_bytes_runs": rss_batches_runs,
        "load_generator_batches_runs": reports_batches,
        "server_cpu_us_per_row": obj(&ch_cpu),
        "client_cpu_us_per_row": obj(&client_cpu),
        "row_counts_ok": ok,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&out).unwrap())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The median of `v` (the upper one of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
