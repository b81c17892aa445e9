//! Load generation for the sink tests: NDJSON requests through the tracker routes and
//! Arrow batches through `/v1/batches`, keeping a tally of what was acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ingest_core::{events_to_batch, write_ipc, Event};

/// A desktop Chrome user agent (not a bot).
pub const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// What the sink acknowledged (2xx).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Rows acknowledged.
    pub rows: u64,
    /// Sum of `screen_width` over them.
    pub sum_screen_width: u64,
    /// Rows per site.
    pub per_site: BTreeMap<String, u64>,
    /// First event number of every acknowledged NDJSON request (its events have the
    /// pathname prefix `/r<first>/`).
    pub requests: BTreeSet<u64>,
}

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, o: &Tally) {
        self.rows += o.rows;
        self.sum_screen_width += o.sum_screen_width;
        for (k, v) in &o.per_site {
            *self.per_site.entry(k.clone()).or_default() += v;
        }
        self.requests.extend(o.requests.iter().copied());
    }
}

/// Site of event `i`.
pub fn site(i: u64) -> String {
    format!("site{}.example", i % 7)
}

/// Screen width of event `i`.
pub fn width(i: u64) -> u16 {
    320 + (i % 1700) as u16
}

/// NDJSON body of events `from..from+n`, and its tally.
pub fn ndjson(from: u64, n: u64) -> (String, Tally) {
    let mut s = String::with_capacity(n as usize * 120);
    let mut t = Tally::default();
    for i in from..from + n {
        let site = site(i);
        s.push_str(&format!(
            "{{\"site\":\"{site}\",\"url\":\"https://{site}/r{from}/{}?utm_source=test\",\"screen_width\":{}}}\n",
            i % 50,
            width(i)
        ));
        t.rows += 1;
        t.sum_screen_width += u64::from(width(i));
        *t.per_site.entry(site).or_default() += 1;
    }
    t.requests.insert(from);
    (s, t)
}

/// An Arrow IPC body of events `from..from+n` (ids derived from `i`), and its tally.
pub fn arrow(from: u64, n: u64) -> (Vec<u8>, Tally) {
    let mut t = Tally::default();
    let events: Vec<Event<'static>> = (from..from + n)
        .map(|i| {
            let site = site(i);
            t.rows += 1;
            t.sum_screen_width += u64::from(width(i));
            *t.per_site.entry(site.clone()).or_default() += 1;
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.to_le_bytes());
            id[8..].copy_from_slice(b"batchtst");
            Event {
                event_id: id,
                received_at_ms: 1_763_900_000_000 + i as i64,
                hostname: site.clone().into(),
                site_id: site.into(),
                name: "pageview".into(),
                pathname: format!("/b/{}", i % 10).into(),
                browser: "Chrome".into(),
                device: "desktop".into(),
                screen_width: width(i),
                visitor_id: i * 31,
                ..Event::default()
            }
        })
        .collect();
    let body = write_ipc(&[events_to_batch(&events)]).expect("ipc");
    (body, t)
}

/// An Arrow IPC body of one record batch per run `(from, n)`: the events of
/// [`arrow`]`(from, n)` each.
pub fn arrow_runs(runs: &[(u64, u64)]) -> Vec<u8> {
    let batches: Vec<_> = runs
        .iter()
        .map(|&(from, n)| {
            let body = arrow(from, n).0;
            ingest_core::read_ipc(&body, n as usize)
                .expect("ipc")
                .remove(0)
        })
        .collect();
    write_ipc(&batches).expect("ipc")
}

/// Outcome of a load run.
#[derive(Debug, Default, Clone)]
pub struct Run {
    /// What was acknowledged.
    pub acked: Tally,
    /// Non-2xx answers by status (0 = connection error).
    pub refused: BTreeMap<u16, u64>,
}

/// Sends `requests` NDJSON requests of `per_request` events each to `url` from
/// `clients` threads. Event numbers start at `base`. Stops early when `stop()`.
pub fn send_ndjson(
    url: &str,
    base: u64,
    requests: u64,
    per_request: u64,
    clients: u64,
    stop: impl Fn() -> bool + Sync,
) -> Run {
    let run = Arc::new(Mutex::new(Run::default()));
    std::thread::scope(|sc| {
        for c in 0..clients {
            let run = run.clone();
            let stop = &stop;
            sc.spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut r = c;
                while r < requests && !stop() {
                    let (body, t) = ndjson(base + r * per_request, per_request);
                    let res = http
                        .post(url)
                        .header("user-agent", UA)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send();
                    let mut g = run.lock().unwrap();
                    match res {
                        Ok(resp) if resp.status().is_success() => {
                            drop(g);
                            let v: serde_json::Value = resp.json().expect("json reply");
                            assert_eq!(
                                v["accepted"].as_u64(),
                                Some(per_request),
                                "partial accept: {v}"
                            );
                            run.lock().unwrap().acked.add(&t);
                        }
                        Ok(resp) => *g.refused.entry(resp.status().as_u16()).or_default() += 1,
                        Err(_) => *g.refused.entry(0).or_default() += 1,
                    }
                    r += clients;
                }
            });
        }
    });
    let r = run.lock().unwrap().clone();
    r
}

/// Posts `batches` Arrow batches of `rows` rows each (ids `id_prefix-N`).
pub fn send_batches(
    url: &str,
    token: &str,
    base: u64,
    batches: u64,
    rows: u64,
    clients: u64,
    stop: impl Fn() -> bool + Sync,
) -> Run {
    let run = Arc::new(Mutex::new(Run::default()));
    std::thread::scope(|sc| {
        for c in 0..clients {
            let run = run.clone();
            let stop = &stop;
            sc.spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut b = c;
                while b < batches && !stop() {
                    let from = base + b * rows;
                    let (body, t) = arrow(from, rows);
                    let res = http
                        .post(url)
                        .bearer_auth(token)
                        .header("x-batch-id", format!("batch-{from}"))
                        .header("content-type", "application/vnd.apache.arrow.stream")
                        .body(body)
                        .send();
                    let mut g = run.lock().unwrap();
                    match res {
                        Ok(resp) if resp.status().as_u16() == 202 => g.acked.add(&t),
                        Ok(resp) => *g.refused.entry(resp.status().as_u16()).or_default() += 1,
                        Err(_) => *g.refused.entry(0).or_default() += 1,
                    }
                    b += clients;
                }
            });
        }
    });
    let r = run.lock().unwrap().clone();
    r
}
