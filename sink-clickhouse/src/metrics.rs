//! Prometheus metrics (`GET /metrics`, text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label: the HTTP route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// `/api/event`, `/e`, `/e.gif`, `/v1/batches`.
    pub route: &'static str,
}

/// Label: a reason code (ingest-core's `Error::code`, or `rate_limited`, `quota`…).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason code.
    pub reason: String,
}

/// Label: a ClickHouse error code (the server's number, or `network`, `timeout`…).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The code.
    pub code: String,
}

/// Label: a route and the HTTP status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The route.
    pub route: &'static str,
    /// The status code.
    pub status: u16,
}

/// Every metric of the sink.
pub struct Metrics {
    registry: Registry,
    /// Events received (before validation), by route.
    pub received: Family<RouteLabel, Counter>,
    /// Events accepted and spooled, by route.
    pub accepted: Family<RouteLabel, Counter>,
    /// Events or requests rejected, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Requests answered, by route and status.
    pub requests: Family<StatusLabel, Counter>,
    /// Requests refused by the per-client rate limit.
    pub rate_limited: Counter,
    /// Requests refused by a site's quota.
    pub quota_refused: Counter,
    /// Events dropped because the user agent is a bot.
    pub bots: Counter,
    /// Posted batches answered "already stored".
    pub duplicate_batches: Counter,
    /// Bytes of spool segments on disk.
    pub spool_bytes: Gauge,
    /// Sealed segments waiting to be loaded.
    pub spool_segments: Gauge,
    /// Bytes of loaded segments' files kept for reuse (beside `spool_bytes`).
    pub spool_recycled_bytes: Gauge,
    /// Age of the oldest unloaded sealed segment, seconds.
    pub spool_oldest_age_seconds: Gauge,
    /// Bytes written to the spool since start.
    pub spool_written_bytes: Counter,
    /// Group-commit rounds (one fsync each) since start.
    pub spool_fsyncs: Counter,
    /// Rows loaded (ClickHouse acknowledged, or Parquet file durable).
    pub loaded_rows: Counter,
    /// Inserts / Parquet files written.
    pub loaded_batches: Counter,
    /// Duration of one insert (or one Parquet file), seconds.
    pub load_latency: Histogram,
    /// ClickHouse errors, by code.
    pub clickhouse_errors: Family<CodeLabel, Counter>,
    /// Segments or batches moved to the quarantine folder.
    pub quarantined: Counter,
    /// Panics caught in request handlers.
    pub panics: Counter,
}

impl Metrics {
    /// Registers every metric under the `sink_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sink");
        let m = Metrics {
            received: Family::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            requests: Family::default(),
            rate_limited: Counter::default(),
            quota_refused: Counter::default(),
            bots: Counter::default(),
            duplicate_batches: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_segments: Gauge::default(),
            spool_recycled_bytes: Gauge::default(),
            spool_oldest_age_seconds: Gauge::default(),
            spool_written_bytes: Counter::default(),
            spool_fsyncs: Counter::default(),
            loaded_rows: Counter::default(),
            loaded_batches: Counter::default(),
            load_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            clickhouse_errors: Family::default(),
            quarantined: Counter::default(),
            panics: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "events_received",
            "Events received, before validation",
            m.received.clone(),
        );
        r.register(
            "events_accepted",
            "Events accepted and spooled",
            m.accepted.clone(),
        );
        r.register(
            "events_rejected",
            "Events or requests rejected, by reason",
            m.rejected.clone(),
        );
        r.register(
            "requests",
            "HTTP requests answered, by route and status",
            m.requests.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by the per-client rate limit",
            m.rate_limited.clone(),
        );
        r.register(
            "quota_refused",
            "Requests refused by a site's quota",
            m.quota_refused.clone(),
        );
        r.register(
            "bots",
            "Events dropped because the user agent is a bot",
            m.bots.clone(),
        );
        r.register(
            "duplicate_batches",
            "Posted batches answered already stored",
            m.duplicate_batches.clone(),
        );
        r.register(
            "spool_bytes",
            "Bytes of spool segments on disk",
            m.spool_bytes.clone(),
        );
        r.register(
            "spool_segments",
            "Sealed spool segments waiting to be loaded",
            m.spool_segments.clone(),
        );
        r.register(
            "spool_recycled_bytes",
            "Bytes of loaded spool segments' files kept for the next segments (--spool-recycle), beside spool_bytes",
            m.spool_recycled_bytes.clone(),
        );
        r.register(
            "spool_oldest_age_seconds",
            "Age of the oldest unloaded segment",
            m.spool_oldest_age_seconds.clone(),
        );
        r.register(
            "spool_written_bytes",
            "Bytes written to the spool",
            m.spool_written_bytes.clone(),
        );
        r.register(
            "spool_fsyncs",
            "Group-commit rounds, one fsync each",
            m.spool_fsyncs.clone(),
        );
        r.register(
            "loaded_rows",
            "Rows loaded into ClickHouse or Parquet",
            m.loaded_rows.clone(),
        );
        r.register(
            "loaded_batches",
            "Inserts or Parquet files written",
            m.loaded_batches.clone(),
        );
        r.register(
            "load_latency_seconds",
            "Duration of one insert or Parquet file",
            m.load_latency.clone(),
        );
        r.register(
            "clickhouse_errors",
            "ClickHouse errors, by code",
            m.clickhouse_errors.clone(),
        );
        r.register(
            "quarantined",
            "Segments or batches moved to quarantine",
            m.quarantined.clone(),
        );
        r.register(
            "panics",
            "Panics caught in request handlers",
            m.panics.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts `n` rejections for `reason`.
    pub fn reject(&self, reason: &str, n: u64) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(8192);
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
