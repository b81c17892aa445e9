//! The queue consumer's sink post fails after the sink has stored the batch (the
//! answer is lost on the way back): the worker retries the same batch with the same
//! `X-Batch-Id`, the sink deduplicates it, and every event is stored exactly once.
//!
//! A proxy on loopback stands between the worker and the real sink: it forwards every
//! `POST /v1/batches` to the sink, but answers the first one `502` whatever the sink
//! said, and records the batch ids it saw.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::harness::{http, serial, wait_for, Edge, Incoming};
use crate::sink::Sink;

const TOKEN: &str = "retry-test-token";

/// What the proxy saw: per post, its batch id, the sink's status and the status the
/// worker was given.
type Seen = Arc<Mutex<Vec<(String, u16, u16)>>>;

struct FailingProxy {
    url: String,
    seen: Seen,
}

impl FailingProxy {
    fn start(port: u16, sink_url: String) -> FailingProxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("proxy cannot bind 127.0.0.1:{port}: {e}"));
        let seen: Seen = Arc::default();
        let s = seen.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, sink_url) = (s.clone(), sink_url.clone());
                thread::spawn(move || relay(conn, &sink_url, &s));
            }
        });
        FailingProxy {
            url: format!("http://127.0.0.1:{port}"),
            seen,
        }
    }
}

// The first post is answered 502 whatever the sink said; every later one gets the
// sink's answer.
fn relay(conn: TcpStream, sink_url: &str, seen: &Mutex<Vec<(String, u16, u16)>>) {
    let Some(req) = Incoming::read(conn) else {
        return;
    };
    let reply = req.forward(sink_url);
    let batch_id = req.header("x-batch-id").unwrap_or_default().to_owned();
    let given = {
        let mut s = seen.lock().unwrap();
        let given = if s.is_empty() { 502 } else { reply.status };
        s.push((batch_id, reply.status, given));
        given
    };
    req.answer(given, None);
}

#[test]
fn a_lost_sink_answer_is_retried_and_deduplicated() {
    let _serial = serial();
    let sink = Sink::start("retry", 19343, TOKEN);
    let proxy = FailingProxy::start(19344, sink.url().to_owned());
    let edge = Edge::start("retry", 19360, &proxy.url, TOKEN, false, &[]);

    let body: String = (1..=20)
        .map(|i| format!(r#"{{"site":"example.com","url":"https://example.com/retry/{i}"}}"#))
        .collect::<Vec<_>>()
        .join("\n");
    let r = http("POST", &edge.url("/e"), &[], Some(body.as_bytes()));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["accepted"], 20);

    // The first post was stored but answered 502; the retry must carry the same id.
    let retried = wait_for("the retried post", Duration::from_secs(90), || {
        let s = proxy.seen.lock().unwrap().clone();
        let first = s.first()?.clone();
        s.iter()
            .skip(1)
            .any(|p| p.0 == first.0 && (200..300).contains(&p.2))
            .then_some(s)
    });
    let (first_id, first_sink_status, first_given) = retried[0].clone();
    assert!(!first_id.is_empty(), "the consumer sends X-Batch-Id");
    assert!(
        (200..300).contains(&first_sink_status),
        "the sink stored the first post: {retried:?}"
    );
    assert_eq!(first_given, 502);

    // Every event exactly once, even after the retry reached the sink.
    let rows = wait_for("all 20 events in the sink", Duration::from_secs(60), || {
        let rows = sink.rows();
        (rows
            .iter()
            .filter(|r| r.pathname.starts_with("/retry/"))
            .count()
            >= 20)
            .then_some(rows)
    });
    thread::sleep(Duration::from_secs(2));
    let rows = {
        let later = sink.rows();
        if later.len() > rows.len() {
            later
        } else {
            rows
        }
    };
    for i in 1..=20 {
        let path = format!("/retry/{i}");
        let n = rows.iter().filter(|r| r.pathname == path).count();
        assert_eq!(n, 1, "{path} stored {n} times; posts seen: {retried:?}");
    }
}
