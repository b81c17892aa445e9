//! The sink under test: a `sink-clickhouse serve` process on loopback, the requests the
//! load generator posts to it (`/e` as trackers send events, `/v1/batches` as the edge
//! worker's queue consumers do), and the wait until ClickHouse holds every row.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::chserver::free_port;

/// A running sink, killed by its PID when dropped.
pub struct Sink {
    /// The sink process.
    pub child: Child,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
}

/// The bearer token the benchmarks' sink takes on `/v1/batches`.
pub const BATCH_TOKEN: &str = "bench-batch-token";

/// Events per batch the edge worker's queue consumer posts at most (its wrangler.toml's
/// `max_batch_size`, one event a message).
pub const EDGE_BATCH_ROWS: usize = 100;

/// What a load generator posts: one body, and each request's range of it with its
/// header lines ([`crate::loadgen::load`]).
pub type Requests = (bytes::Bytes, Vec<crate::loadgen::Request>);

/// A load generator's requests for the sink's `/e`: the workload's NDJSON requests, each with its user agent
/// and client address.
pub fn tracker_requests(w: &crate::json_arrow::Workload) -> Requests {
    let requests = w
        .requests
        .iter()
        .map(|(range, ua, ip)| {
            let h = format!(
                "content-type: application/x-ndjson\r\nuser-agent: {ua}\r\nx-forwarded-for: {ip}\r\n"
            );
            (range.clone(), h)
        })
        .collect();
    (bytes::Bytes::from(w.ndjson.clone()), requests)
}

/// The same events as the edge worker's queue consumers post them to `/v1/batches`:
/// Arrow IPC + LZ4 (`write_ipc`) batches of [`EDGE_BATCH_ROWS`] events built by the full
/// pipeline, each with [`BATCH_TOKEN`] and its own batch id.
pub fn edge_requests(w: &crate::json_arrow::Workload) -> Result<Requests, String> {
    let mut body = Vec::new();
    let mut requests = Vec::new();
    for (i, b) in crate::json_arrow::pipeline_batches(w, EDGE_BATCH_ROWS)
        .iter()
        .enumerate()
    {
        let ipc = ingest_core::write_ipc(std::slice::from_ref(b)).map_err(|e| e.to_string())?;
        let at = body.len();
        body.extend_from_slice(&ipc);
        let h = format!(
            "content-type: application/vnd.apache.arrow.stream\r\n\
             authorization: Bearer {BATCH_TOKEN}\r\nx-batch-id: bench-{i}\r\n"
        );
        requests.push((at..body.len(), h));
    }
    Ok((bytes::Bytes::from(body), requests))
}

impl Sink {
    /// Starts `bin serve` on a free port of `ports`, spooling under `dir` and loading
    /// into `ch_url` (rate limiter off, 127.0.0.1 a trusted proxy, [`BATCH_TOKEN`] for
    /// `/v1/batches`); waits until ready.
    pub fn start(
        bin: &Path,
        ch_url: &str,
        dir: &Path,
        ports: std::ops::Range<u16>,
    ) -> Result<Sink, String> {
        let port = free_port(ports, &[]).ok_or("no free port for the sink")?;
        let child = Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .args(["--clickhouse-url", ch_url, "--client-rate", "0"])
            .args(["--salt-secret", "bench", "--trusted-proxy", "127.0.0.1/32"])
            .args(["--batch-token", BATCH_TOKEN])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut sink = Sink { child, port };
        let t0 = Instant::now();
        let http = reqwest::blocking::Client::new();
        loop {
            if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send() {
                if r.status().is_success() {
                    return Ok(sink);
                }
            }
            if let Ok(Some(st)) = sink.child.try_wait() {
                return Err(format!("the sink exited at start: {st}"));
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err("the sink was not ready in 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Sink {
    /// Waits until ClickHouse holds `n` rows of `table`, and returns the time since `t0`
    /// at which it was seen to (or at `deadline`, whatever it holds then).
    ///
    /// The end of a load is what the figures are made of, so it is watched closely but
    /// cheaply: every [`LOADED_POLL`] the sink's own `sink_loaded_rows_total` (rows
    /// whose insert ClickHouse has acknowledged, so already visible to a `count()`), and
    /// ClickHouse itself as soon as that reaches `n` — or every [`COUNT_POLL`] whatever
    /// the sink says, so a sink that miscounts cannot end a load early or stall it. A
    /// `count()` every few milliseconds instead would cost the server more CPU than
    /// the precision is worth; one every 50 ms overstated a 10⁶ run by ≈ 25 ms.
    pub fn wait_loaded(
        &self,
        ch: &crate::chserver::ClickHouseServer,
        table: &str,
        n: u64,
        t0: Instant,
        deadline: Duration,
    ) -> Result<Duration, String> {
        let http = reqwest::blocking::Client::new();
        let metrics = format!("http://127.0.0.1:{}/metrics", self.port);
        let mut last_count = Instant::now();
        let mut count_now = true;
        loop {
            if count_now {
                if ch.count(table)? >= n {
                    return Ok(t0.elapsed());
                }
                last_count = Instant::now();
            }
            if t0.elapsed() >= deadline {
                return Ok(t0.elapsed());
            }
            std::thread::sleep(LOADED_POLL);
            let loaded = http
                .get(&metrics)
                .send()
                .and_then(|r| r.text())
                .ok()
                .and_then(|t| loaded_rows(&t));
            count_now = loaded.is_some_and(|l| l >= n) || last_count.elapsed() >= COUNT_POLL;
        }
    }
}

/// How often [`Sink::wait_loaded`] reads the sink's loaded-rows counter.
pub const LOADED_POLL: Duration = Duration::from_millis(3);
/// How often [`Sink::wait_loaded`] asks ClickHouse whatever the sink's counter says.
pub const COUNT_POLL: Duration = Duration::from_millis(50);

/// `sink_loaded_rows_total` from the sink's Prometheus text.
fn loaded_rows(metrics: &str) -> Option<u64> {
    metrics.lines().find_map(|l| {
        let v = l.strip_prefix("sink_loaded_rows_total ")?;
        v.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_rows_is_read_from_the_sinks_prometheus_text() {
        let text = "# HELP sink_loaded_rows Rows loaded into ClickHouse or Parquet\n\
                    # TYPE sink_loaded_rows counter\n\
                    sink_loaded_rows_total 1000000\n\
                    sink_loaded_batches_total 20\n";
        assert_eq!(loaded_rows(text), Some(1_000_000));
        assert_eq!(loaded_rows("sink_loaded_batches_total 20\n"), None);
    }
}
