//! The loaders `compare` runs against one ClickHouse: our loader alone, the official
//! `clickhouse` crate's `Inserter`, and `curl` (our sink over HTTP is
//! [`crate::sink_run`], driven by [`crate::loadgen`]); and the measures every run takes:
//! CPU seconds and peak RSS of a process, paired ratios. Each load returns the seconds
//! it took; `compare` checks the row counts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, TimestampMillisecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use serde::Serialize;

/// One schema-v1 row as the official crate serializes it (RowBinary) into the 18.16
/// table `sink-clickhouse migrate` creates: `UUID` as two little-endian u64 halves
/// (carried in a u128), `DateTime` as u32 seconds, strings as `String`.
#[derive(Debug, Serialize, ::clickhouse::Row)]
pub struct ChRow<'a> {
    event_id: u128,
    received_at: u32,
    site_id: &'a str,
    name: &'a str,
    hostname: &'a str,
    pathname: &'a str,
    referrer_host: &'a str,
    referrer_source: &'a str,
    utm_source: &'a str,
    utm_medium: &'a str,
    utm_campaign: &'a str,
    utm_content: &'a str,
    utm_term: &'a str,
    country: &'a str,
    region: &'a str,
    city: &'a str,
    browser: &'a str,
    browser_version: &'a str,
    os: &'a str,
    os_version: &'a str,
    device: &'a str,
    screen_width: u16,
    visitor_id: u64,
    ttfb_ms: Option<u32>,
    fcp_ms: Option<u32>,
    lcp_ms: Option<u32>,
    inp_ms: Option<u32>,
    load_ms: Option<u32>,
    cls: Option<f32>,
    scroll_depth: Option<u8>,
    engagement_ms: Option<u32>,
    prop_keys: Vec<&'a str>,
    prop_values: Vec<&'a str>,
}

/// The rows of a schema-v1 batch as [`ChRow`]s borrowing from it ("pre-parsed rows").
pub fn batch_rows(b: &RecordBatch) -> Vec<ChRow<'_>> {
    let s = |name: &str| b.column_by_name(name).expect(name).as_string::<i32>();
    let opt_u32 = |name: &str, i: usize| {
        let a = b
            .column_by_name(name)
            .expect(name)
            .as_primitive::<UInt32Type>();
        a.is_valid(i).then(|| a.value(i))
    };
    let ids = b.column_by_name("event_id").unwrap().as_fixed_size_binary();
    let at = b
        .column_by_name("received_at")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    let sw = b
        .column_by_name("screen_width")
        .unwrap()
        .as_primitive::<UInt16Type>();
    let vid = b
        .column_by_name("visitor_id")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let cls = b
        .column_by_name("cls")
        .unwrap()
        .as_primitive::<Float32Type>();
    let sd = b
        .column_by_name("scroll_depth")
        .unwrap()
        .as_primitive::<UInt8Type>();
    let keys = b.column_by_name("prop_keys").unwrap().as_list::<i32>();
    let vals = b.column_by_name("prop_values").unwrap().as_list::<i32>();
    fn strs(l: &arrow_array::ListArray, i: usize) -> Vec<&str> {
        let off = l.value_offsets();
        let v = l.values().as_string::<i32>();
        (off[i] as usize..off[i + 1] as usize)
            .map(|j| v.value(j))
            .collect()
    }
    let cols: Vec<_> = [
        "site_id",
        "name",
        "hostname",
        "pathname",
        "referrer_host",
        "referrer_source",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "country",
        "region",
        "city",
        "browser",
        "browser_version",
        "os",
        "os_version",
        "device",
    ]
    .iter()
    .map(|n| s(n))
    .collect();
    (0..b.num_rows())
        .map(|i| {
            let id = ids.value(i);
            let hi = u64::from_be_bytes(id[..8].try_into().unwrap());
            let lo = u64::from_be_bytes(id[8..].try_into().unwrap());
            let c = |k: usize| cols[k].value(i);
            ChRow {
                event_id: u128::from(hi) | (u128::from(lo) << 64),
                received_at: (at.value(i) / 1000) as u32,
                site_id: c(0),
                name: c(1),
                hostname: c(2),
                pathname: c(3),
                referrer_host: c(4),
                referrer_source: c(5),
                utm_source: c(6),
                utm_medium: c(7),
                utm_campaign: c(8),
                utm_content: c(9),
                utm_term: c(10),
                country: c(11),
                region: c(12),
                city: c(13),
                browser: c(14),
                browser_version: c(15),
                os: c(16),
                os_version: c(17),
                device: c(18),
                screen_width: sw.value(i),
                visitor_id: vid.value(i),
                ttfb_ms: opt_u32("ttfb_ms", i),
                fcp_ms: opt_u32("fcp_ms", i),
                lcp_ms: opt_u32("lcp_ms", i),
                inp_ms: opt_u32("inp_ms", i),
                load_ms: opt_u32("load_ms", i),
                cls: cls.is_valid(i).then(|| cls.value(i)),
                scroll_depth: sd.is_valid(i).then(|| sd.value(i)),
                engagement_ms: opt_u32("engagement_ms", i),
                prop_keys: strs(keys, i),
                prop_values: strs(vals, i),
            }
        })
        .collect()
}

/// (b): the official crate's `Inserter` (RowBinary + LZ4, validation off: its default
/// mode fails on 18.16), one commit per batch. Row conversion is not timed; writing,
/// serialization, compression, sending and the server's insert are.
pub async fn clickhouse_crate(
    url: &str,
    database: &str,
    table: &str,
    batches: &[RecordBatch],
) -> Result<Duration, String> {
    let client = ::clickhouse::Client::default()
        .with_url(url)
        .with_database(database)
        .with_validation(false)
        .with_compression(::clickhouse::Compression::Lz4);
    let mut inserter = client
        .inserter::<ChRow<'static>>(table)
        .with_max_rows(u64::MAX);
    let mut spent = Duration::ZERO;
    for b in batches {
        let rows = batch_rows(b);
        let t0 = Instant::now();
        for r in &rows {
            inserter.write(r).await.map_err(|e| e.to_string())?;
        }
        inserter.force_commit().await.map_err(|e| e.to_string())?;
        spent += t0.elapsed();
    }
    let t0 = Instant::now();
    inserter.end().await.map_err(|e| e.to_string())?;
    Ok(spent + t0.elapsed())
}

/// Inserts the sink's loader keeps in flight by default (`--load-concurrency`).
pub const LOAD_CONCURRENCY: usize = 2;

/// (a′): our loader alone — the pre-built Arrow batches cut into inserts of the
/// sink's default `--insert-rows` (as the loader cuts a segment; one batch alone in
/// halves, as the loader cuts a lone segment at the end of a burst), each encoded to
/// Native for the table's real types, LZ4-framed (or not: `compression`) and
/// inserted by the sink's `Client::insert`, up to [`LOAD_CONCURRENCY`] at once.
pub async fn sink_loader(
    url: &str,
    database: &str,
    table: &str,
    batches: &[RecordBatch],
    compression: sink_clickhouse::clickhouse::WireCompression,
) -> Result<Duration, String> {
    use sink_clickhouse::clickhouse::{ClickHouseConfig, Client};
    let client = Client::new(ClickHouseConfig {
        urls: vec![url.to_owned()],
        database: database.to_owned(),
        table: table.to_owned(),
        user: "default".into(),
        password: String::new(),
        timeout: Duration::from_secs(300),
        compression,
        block_rows: sink_clickhouse::clickhouse::DEFAULT_BLOCK_ROWS,
        sort_inserts: true,
    })
    .map_err(|e| e.to_string())?;
    // The sink reads the layout once at start-up; so does this.
    let layout = client.describe().await.map_err(|e| e.to_string())?;
    client.server_version().await.map_err(|e| e.to_string())?;
    let client = std::sync::Arc::new(client);
    let t0 = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    let insert_rows =
        usize::try_from(sink_clickhouse::config::DEFAULT_INSERT_ROWS).map_err(|e| e.to_string())?;
    let mut inserts: Vec<RecordBatch> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .step_by(insert_rows)
                .map(move |at| b.slice(at, insert_rows.min(b.num_rows() - at)))
        })
        .collect();
    // A segment alone in the spool is cut in halves inserted at once (the loader's
    // `cut_of`); so is a lone batch here.
    let min = usize::try_from(sink_clickhouse::loader::SPLIT_MIN_ROWS).unwrap_or(usize::MAX);
    if let [only] = &inserts[..] {
        let n = only.num_rows();
        if n / 2 >= min {
            inserts = vec![only.slice(0, n / 2), only.slice(n / 2, n - n / 2)];
        }
    }
    for b in inserts {
        if in_flight.len() >= LOAD_CONCURRENCY {
            join_one(&mut in_flight).await?;
        }
        let (client, layout) = (client.clone(), layout.clone());
        in_flight.spawn(async move { client.insert(&layout, &b, None).await });
    }
    while !in_flight.is_empty() {
        join_one(&mut in_flight).await?;
    }
    Ok(t0.elapsed())
}

/// Waits for one of the inserts in flight.
async fn join_one(
    set: &mut tokio::task::JoinSet<sink_clickhouse::clickhouse::Result<()>>,
) -> Result<(), String> {
    match set.join_next().await {
        Some(Ok(r)) => r.map_err(|e| e.to_string()),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(()),
    }
}

/// The whole Native + LZ4 body of `batches`, as the sink's encoder makes it, for (c):
/// where the layout has a sorting key, all the rows in that order (blocks of
/// `DEFAULT_BLOCK_ROWS` cut from one order), so that the server, squashing the blocks
/// of the insert into one, finds it sorted and skips its sort as it does for the
/// loader's inserts: the server's own limit for the best body anyone could send.
pub fn native_lz4_body(
    layout: &sink_clickhouse::clickhouse::TableLayout,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, String> {
    use sink_clickhouse::clickhouse::{encode_native, encode_native_ordered, DEFAULT_BLOCK_ROWS};
    let mut raw = Vec::new();
    match layout.sort_key.as_ref().and_then(|k| k.order(batches)) {
        Some(order) => {
            for run in order.chunks(DEFAULT_BLOCK_ROWS) {
                encode_native_ordered(layout, batches, run, &mut raw).map_err(|e| e.to_string())?;
            }
        }
        None => {
            for b in batches {
                encode_native(layout, b, &mut raw).map_err(|e| e.to_string())?;
            }
        }
    }
    let mut framed = Vec::with_capacity(raw.len() / 3);
    sink_clickhouse::clickhouse::compress_lz4_frames(&raw, &mut framed);
    Ok(framed)
}

/// Posts `file` with `curl` to `url` (query string included); the time it took.
pub fn curl_post(url: &str, file: &Path) -> Result<Duration, String> {
    let t0 = Instant::now();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "-o",
            "-",
            "-H",
            "Expect:",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(url)
        .output()
        .map_err(|e| format!("running curl (apt-get install curl): {e}"))?;
    let spent = t0.elapsed();
    if !out.status.success() {
        return Err(format!(
            "curl failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(spent)
}

/// What the load generator saw.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LoadReport {
    /// Requests answered 2xx.
    pub ok_requests: usize,
    /// Requests answered 429/503 and retried.
    pub retried: usize,
    /// Requests that failed for good (other status, transport error, deadline).
    pub failed: usize,
    /// Wall time from the first request to the last answer.
    pub send_secs: f64,
}

/// CPU seconds (user + system) process `pid` has used so far, from `/proc/PID/stat`
/// (Linux; `None` elsewhere).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of one `/proc/PID/stat` line, in seconds.
fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // Fields after the command name (which may hold spaces) close with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // In clock ticks of USER_HZ, 100 on every Linux architecture (std has no sysconf).
    Some(ticks / 100.0)
}

/// Peak resident set of a process (`VmHWM`), bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The ratio `b / a` of runs measured in adjacent pairs (`a[i]` beside `b[i]`) as
/// the geometric mean of the pairs' ratios, with the standard error of that mean in
/// log terms (≈ a relative error: 0.017 is ±1.7%). Pairing cancels the drift of a
/// machine whose speed moves between runs; the medians of two builds' runs do not.
/// `None` with fewer than two pairs or a value that is not positive.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    let logs: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x > 0.0 && y > 0.0).then(|| (y / x).ln()))
        .collect::<Option<_>>()?;
    let n = logs.len();
    if n < 2 {
        return None;
    }
    let mean = logs.iter().sum::<f64>() / n as f64;
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((mean.exp(), (var / n as f64).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_come_from_utime_and_stime_whatever_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime …
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu_secs(line), Some(3.0));
        assert_eq!(stat_cpu_secs("42 (x) S 1"), None);
        // This process: it reads, and it grows with work done.
        let me = std::process::id();
        let t0 = cpu_secs(me).expect("/proc/self/stat");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_secs(me).unwrap() > t0, "{x}");
    }

    #[test]
    fn paired_ratios_are_geometric_means_with_their_standard_error() {
        // Every pair 10% faster whatever the drift: exactly 1.1, no spread.
        let a = [1.0, 2.0, 0.5, 4.0];
        let b: Vec<f64> = a.iter().map(|x| x * 1.1).collect();
        let (r, se) = paired_ratio(&a, &b).unwrap();
        assert!((r - 1.1).abs() < 1e-12 && se < 1e-12, "{r} {se}");
        // Ratios 2 and 1/2: mean 1; logs ±ln 2, sample sd ln 2 · √2, se ln 2.
        let (r, se) = paired_ratio(&[1.0, 1.0], &[2.0, 0.5]).unwrap();
        assert!((r - 1.0).abs() < 1e-12, "{r}");
        assert!((se - std::f64::consts::LN_2).abs() < 1e-12, "{se}");
        assert_eq!(paired_ratio(&[1.0], &[2.0]), None);
        assert_eq!(paired_ratio(&[1.0, 0.0], &[2.0, 1.0]), None);
    }
}
