//! The queue consumer's backoff and dead-lettering (queue mode), in workerd.
//!
//! A scripted proxy on loopback stands between the worker and the real sink: per post
//! to `/v1/batches` it forwards to the sink, answers a status of its own, or closes the
//! connection without an answer, and it records when each post came, its `X-Batch-Ids`
//! (one id per queue message) and the pathnames of each message's events (it decodes
//! the Arrow IPC body with ingest-core).
//!
//! The dead-letter queue `pageview-events-dlq` is observed through a second worker run
//! in the same local runtime (`scripts/edge-dev --with-config`, wrangler's multi-worker
//! dev, so the two share their queues): a few lines of JavaScript that consume that
//! queue and post each message to a recorder of the test. The edge worker itself has no
//! test hook. The consumer is needed: locally (miniflare) a queue without a consumer
//! drops what it is sent, so nothing sent to the DLQ could be seen otherwise.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ingest_core::{batch_to_events, read_ipc};

use crate::harness::{http, scratch, serial, wait_for, Edge, Incoming};
use crate::sink::{Row, Sink};

const TOKEN: &str = "deadletter-test-token";

/// What the proxy does with one post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Forward it to the sink and give the worker the sink's answer.
    Forward,
    /// Answer the worker this status (with `Retry-After` when set), without forwarding.
    Answer(u16, Option<u32>),
    /// Read the post, then close the connection without any answer (a sink that is
    /// unreachable as far as the worker can tell).
    Drop,
}

/// One post the proxy received.
#[derive(Debug, Clone)]
struct Post {
    /// When the proxy had read it.
    at: Instant,
    /// `X-Batch-Ids`: one id per queue message, in the order of the record batches.
    ids: Vec<String>,
    /// The pathnames of each record batch's (message's) events.
    paths: Vec<Vec<String>>,
    /// What the proxy did: `Forward` is recorded as `Answer(status the sink gave)`.
    action: Action,
}

type Script = Arc<dyn Fn(usize, &[Vec<String>]) -> Action + Send + Sync>;

struct ScriptedProxy {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl ScriptedProxy {
    /// Listens on `port`; `script` decides each post from its index (0 for the first)
    /// and its messages' pathnames.
    fn start(port: u16, sink_url: String, script: Script) -> ScriptedProxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("proxy cannot bind 127.0.0.1:{port}: {e}"));
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let p = posts.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (p, sink_url, script) = (p.clone(), sink_url.clone(), script.clone());
                thread::spawn(move || relay(conn, &sink_url, &p, &script));
            }
        });
        ScriptedProxy {
            url: format!("http://127.0.0.1:{port}"),
            posts,
        }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

fn relay(conn: TcpStream, sink_url: &str, posts: &Mutex<Vec<Post>>, script: &Script) {
    let Some(req) = Incoming::read(conn) else {
        return;
    };
    let at = Instant::now();
    let ids: Vec<String> = req
        .header("x-batch-ids")
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    // A body that does not decode is recorded with no messages (the tests then fail on
    // what they expected to find in it).
    let paths: Vec<Vec<String>> = read_ipc(&req.body, 1_000_000)
        .unwrap_or_default()
        .iter()
        .map(|b| {
            batch_to_events(b)
                .unwrap_or_default()
                .iter()
                .map(|ev| ev.pathname.to_string())
                .collect()
        })
        .collect();
    let index = {
        // Numbered in arrival order, under the lock (posts may overlap in time).
        let mut p = posts.lock().unwrap();
        p.push(Post {
            at,
            ids,
            paths: paths.clone(),
            action: Action::Forward,
        });
        p.len() - 1
    };
    let action = script(index, &paths);
    let recorded = match action {
        Action::Forward => {
            let reply = req.forward(sink_url);
            req.answer(reply.status, None);
            Action::Answer(reply.status, None)
        }
        Action::Answer(status, retry_after) => {
            req.answer(status, retry_after);
            action
        }
        Action::Drop => {
            let _ = req.reader.get_ref().shutdown(Shutdown::Both);
            action
        }
    };
    posts.lock().unwrap()[index].action = recorded;
}

/// A message the dead-letter consumer received.
#[derive(Debug, Clone)]
struct DeadLetter {
    /// The message body: the JSON array of events the edge had enqueued.
    body: String,
}

/// The consumer of `pageview-events-dlq`, as a second worker of the local runtime, and
/// the recorder it posts each message to.
struct DeadLetterTap {
    config: PathBuf,
    received: Arc<Mutex<Vec<DeadLetter>>>,
}

const TAP_WORKER: &str = r#"// Test-only: consumes the edge's dead-letter queue and posts every message to the
// test's recorder (TAP_URL). A failed post throws, so the message is delivered again.
export default {
  async queue(batch, env) {
    for (const m of batch.messages) {
      const body = typeof m.body === "string" ? m.body : JSON.stringify(m.body);
      const r = await fetch(env.TAP_URL, { method: "POST", body });
      if (!r.ok) throw new Error(`recorder answered ${r.status}`);
      m.ack();
    }
  },
};
"#;

impl DeadLetterTap {
    fn start(name: &str, port: u16) -> DeadLetterTap {
        let dir = scratch(&format!("{name}-tap"));
        std::fs::write(dir.join("tap.mjs"), TAP_WORKER).expect("write the tap worker");
        let config = dir.join("wrangler.toml");
        std::fs::write(
            &config,
            format!(
                r#"name = "edge-it-dead-letter-tap"
main = "tap.mjs"
compatibility_date = "2026-04-01"

[vars]
TAP_URL = "http://127.0.0.1:{port}/dead-letter"

[[queues.consumers]]
queue = "pageview-events-dlq"
max_batch_size = 10
max_batch_timeout = 1
"#
            ),
        )
        .expect("write the tap's wrangler.toml");
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("the tap's recorder cannot bind 127.0.0.1:{port}: {e}"));
        let received: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
        let r = received.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let Some(req) = Incoming::read(conn) else {
                    continue;
                };
                r.lock().unwrap().push(DeadLetter {
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                });
                req.answer(200, None);
            }
        });
        DeadLetterTap { config, received }
    }

    fn received(&self) -> Vec<DeadLetter> {
        self.received.lock().unwrap().clone()
    }
}

/// The worker, the proxy, the real sink and the dead-letter tap of one test. The
/// backoff starts at 1 s (`QUEUE_RETRY_BASE_SECS`), so retries are quick.
struct Rig {
    sink: Sink,
    proxy: ScriptedProxy,
    tap: DeadLetterTap,
    edge: Edge,
}

impl Rig {
    /// Ports: `base` the sink, `base + 1` the proxy, `base + 2` the tap's recorder;
    /// `edge_port` (and the next) the worker.
    fn start(name: &str, base: u16, edge_port: u16, script: Script) -> Rig {
        let sink = Sink::start(name, base, TOKEN);
        let proxy = ScriptedProxy::start(base + 1, sink.url().to_owned(), script);
        let tap = DeadLetterTap::start(name, base + 2);
        let vars = [("QUEUE_RETRY_BASE_SECS", "1".to_owned())];
        let edge = Edge::start_with(
            name,
            edge_port,
            &proxy.url,
            TOKEN,
            false,
            &vars,
            std::slice::from_ref(&tap.config),
        );
        Rig {
            sink,
            proxy,
            tap,
            edge,
        }
    }

    /// Posts NDJSON events with these pathnames (one request: one queue message).
    fn send(&self, paths: &[String]) {
        let body: String = paths
            .iter()
            .map(|p| format!(r#"{{"site":"example.com","url":"https://example.com{p}"}}"#))
            .collect::<Vec<_>>()
            .join("\n");
        let r = http("POST", &self.edge.url("/e"), &[], Some(body.as_bytes()));
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["accepted"], paths.len());
    }

    /// A request the edge refuses (400, an empty event): it builds the isolate's state
    /// and enqueues nothing.
    fn warm_up(&self) {
        let r = http("POST", &self.edge.url("/e"), &[], Some(b"{}"));
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    }

    /// The sink's rows once every path of `paths` is stored, and a moment later (so a
    /// late duplicate would show).
    fn stored(&self, paths: &[String]) -> Vec<Row> {
        wait_for("the events in the sink", Duration::from_secs(90), || {
            let rows = self.sink.rows();
            paths
                .iter()
                .all(|p| rows.iter().any(|r| &r.pathname == p))
                .then_some(())
        });
        thread::sleep(Duration::from_secs(3));
        self.sink.rows()
    }

    fn context(&self) -> String {
        format!(
            "posts: {:#?}\ndead letters: {:?}\nwrangler log:\n{}",
            self.proxy.posts(),
            self.tap.received(),
            self.edge.log()
        )
    }
}

fn paths(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}/{i}")).collect()
}

/// The proxy forwarded the post and the sink answered 2xx.
fn stored_ok(p: &Post) -> bool {
    matches!(p.action, Action::Answer(s, None) if (200..300).contains(&s))
}

fn count(rows: &[Row], path: &str) -> usize {
    rows.iter().filter(|r| r.pathname == path).count()
}

/// A sink that fails for a while (503 with `Retry-After`, then no answer at all, then a
/// plain 503) gets the message again each time, no sooner than the backoff of that
/// delivery attempt, and stores its events exactly once when it answers; nothing goes
/// to the dead-letter queue.
#[test]
fn transient_failures_are_retried_with_backoff_and_stored_once() {
    let _serial = serial();
    // Attempt 1: 503 + Retry-After 12 (the delay is max(1 s base, 12 s) = 12 s; the
    // consumer's fallback `retry_delay` in wrangler.toml is 10 s, so a gap of 12 s can
    // only come from the worker's own per-message delay). Attempt 2: no answer (1 s
    // doubled: 2 s). Attempt 3: 503 without Retry-After (4 s). Then the sink's answer.
    let script: Script = Arc::new(|i, _| match i {
        0 => Action::Answer(503, Some(12)),
        1 => Action::Drop,
        2 => Action::Answer(503, None),
        _ => Action::Forward,
    });
    let rig = Rig::start("deadletter-transient", 19345, 19380, script);
    let sent = paths("/transient", 20);
    rig.send(&sent);

    let rows = rig.stored(&sent);
    let posts = rig.proxy.posts();
    let ctx = rig.context();
    assert_eq!(posts.len(), 4, "three failed posts and one stored: {ctx}");
    // The same single message every time: the same id, all 20 events.
    let ids = &posts[0].ids;
    assert_eq!(ids.len(), 1, "one queue message: {ctx}");
    for p in &posts {
        assert_eq!(&p.ids, ids, "every post carries the same message: {ctx}");
        assert_eq!(p.paths, vec![sent.clone()], "{ctx}");
    }
    assert!(stored_ok(&posts[3]), "the fourth post was stored: {ctx}");
    // Each redelivery no sooner than the backoff of the attempt that failed (lower
    // bounds only: the queue adds its batch timeout, and a busy machine more).
    for (k, min_secs) in [(1, 12), (2, 2), (3, 4)] {
        let gap = posts[k].at - posts[k - 1].at;
        eprintln!("redelivery {k}: {gap:?} after the failed post (backoff {min_secs} s)");
        assert!(
            gap >= Duration::from_secs(min_secs),
            "post {k} came {gap:?} after the failed one, sooner than the {min_secs} s backoff: {ctx}"
        );
    }
    for p in &sent {
        assert_eq!(count(&rows, p), 1, "{p} stored once: {ctx}");
    }
    assert!(
        rig.tap.received().is_empty(),
        "nothing is dead-lettered: {ctx}"
    );
}

/// The sink refuses one message for good (422) in a delivery of three: the worker
/// posts them one by one, the two others are stored (once), and only the refused one
/// reaches the dead-letter queue, at once (not after `max_retries`), and is not
/// delivered again.
#[test]
fn a_permanently_refused_message_alone_is_dead_lettered() {
    let _serial = serial();
    let script: Script = Arc::new(|_, messages| {
        let poisoned = messages.iter().flatten().any(|p| p.starts_with("/poison"));
        if poisoned {
            Action::Answer(422, None)
        } else {
            Action::Forward
        }
    });
    let rig = Rig::start("deadletter-permanent", 19352, 19390, script);
    let (good_a, poison, good_b) = (
        paths("/good-a", 3),
        paths("/poison", 2),
        paths("/good-b", 3),
    );
    // Three requests within the queue's batch timeout (1 s): one delivery of three
    // messages (checked below on the first post). The isolate is built first by a
    // request that enqueues nothing (its first request also reads the config and builds
    // the pipeline), and the three are then sent at once, so that on a busy machine
    // they still reach the queue well within that second.
    rig.warm_up();
    thread::scope(|s| {
        for p in [&good_a, &poison, &good_b] {
            s.spawn(|| rig.send(p));
        }
    });
    let sent = Instant::now();

    let dead = wait_for("the dead letter", Duration::from_secs(60), || {
        let d = rig.tap.received();
        (!d.is_empty()).then_some(d)
    });
    eprintln!("dead letter received {:?} after the sends", sent.elapsed());
    let good: Vec<String> = good_a.iter().chain(&good_b).cloned().collect();
    let rows = rig.stored(&good);
    let posts = rig.proxy.posts();
    let dead_after = rig.tap.received();
    let ctx = rig.context();

    assert_eq!(
        posts[0].paths.len(),
        3,
        "the three messages came in one delivery: {ctx}"
    );
    assert_eq!(posts[0].action, Action::Answer(422, None), "{ctx}");
    // Then each message alone: two stored, the poisoned one refused again.
    assert_eq!(posts.len(), 4, "{ctx}");
    for p in &posts[1..] {
        assert_eq!(p.ids.len(), 1, "posted alone: {ctx}");
        if p.paths[0] == poison {
            assert_eq!(p.action, Action::Answer(422, None), "{ctx}");
        } else {
            assert!(stored_ok(p), "{ctx}");
        }
    }
    let mut alone: Vec<&Vec<String>> = posts[1..].iter().map(|p| &p.paths[0]).collect();
    alone.sort();
    let mut want = vec![&good_a, &good_b, &poison];
    want.sort();
    assert_eq!(alone, want, "each message posted alone once: {ctx}");

    // Exactly the refused message in the dead-letter queue, with its events.
    assert_eq!(dead.len(), 1, "{ctx}");
    assert_eq!(dead_after.len(), 1, "dead-lettered once: {ctx}");
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&dead[0].body).expect("the dead letter is the JSON of its events");
    let dead_paths: Vec<&str> = events
        .iter()
        .map(|e| e["pathname"].as_str().expect("an event has its pathname"))
        .collect();
    assert_eq!(dead_paths, ["/poison/1", "/poison/2"], "{ctx}");

    // The others stored exactly once, the refused one not at all.
    for p in &good {
        assert_eq!(count(&rows, p), 1, "{p} stored once: {ctx}");
    }
    for p in &poison {
        assert_eq!(count(&rows, p), 0, "{p} is not stored: {ctx}");
    }
}
