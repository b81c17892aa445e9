//! The sink's `POST /v1/batches` in its embedded default (no ClickHouse): the bearer
//! token, batch ids (`X-Batch-Id`, and `X-Batch-Ids` one per record batch) stored once,
//! the body limits, the IPC decode limits, damaged bodies.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{RecordBatch, StringArray};
use ingest_core::{read_ipc, write_ipc};
use serde_json::Value;

use super::sink_embedded::read_parquet;
use crate::support::load;
use crate::support::sink::{Sink, TOKEN};

#[test]
fn batches_need_the_token_and_a_repeated_id_is_stored_once() {
    let sink = Sink::start(&["--flush-interval", "200ms"]);
    let http = reqwest::blocking::Client::new();
    let (body, _) = load::arrow(0, 100);
    for auth in [None, Some("wrong-token-0123456789"), Some("")] {
        let mut rq = http.post(sink.url("/v1/batches")).body(body.clone());
        if let Some(a) = auth {
            rq = rq.bearer_auth(a);
        }
        let r = rq.send().unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "unauthorized");
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.metric("sink_loaded_rows_total"), 0.0);
    assert_eq!(sink.metric("sink_events_accepted_total"), 0.0);
    // Same id twice: stored once.
    let post = || {
        http.post(sink.url("/v1/batches"))
            .bearer_auth(TOKEN)
            .header("x-batch-id", "abc-1")
            .body(body.clone())
            .send()
            .unwrap()
    };
    let r = post();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().unwrap()["accepted"], 100);
    let r = post();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["already_stored"], true);
    // Not CORS, garbage is a 400, never a 5xx.
    let r = http
        .post(sink.url("/v1/batches"))
        .bearer_auth(TOKEN)
        .body("garbage")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    sink.wait_until("rows loaded", Duration::from_secs(10), || {
        sink.metric("sink_loaded_rows_total") == 100.0
    });
    let v = read_parquet(&sink.data_dir().join("parquet"));
    assert_eq!(v["duckdb"]["rows"], 100);
}

/// `X-Batch-Ids`: one id per record batch, each checked on its own, so a redelivery
/// that regroups messages stores only the ones not stored before.
#[test]
fn batch_ids_deduplicate_each_record_batch() {
    let sink = Sink::start(&["--flush-interval", "200ms", "--max-batch-ids", "3"]);
    let http = reqwest::blocking::Client::new();
    let post = |ids: &str, runs: &[(u64, u64)]| {
        http.post(sink.url("/v1/batches"))
            .bearer_auth(TOKEN)
            // Ignored beside X-Batch-Ids (an older edge's id of the whole set).
            .header("x-batch-id", "whole-set")
            .header("x-batch-ids", ids)
            .body(load::arrow_runs(runs))
            .send()
            .unwrap()
    };
    let (a, b, c) = ((0, 10), (100, 20), (200, 40));
    let r = post("id-a,id-b", &[a, b]);
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v.get("already_stored_batches")),
        (Some(30), None)
    );
    // b again, grouped with c: only c's rows are stored.
    let r = post("id-b, id-c", &[b, c]);
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["already_stored_batches"].as_u64()),
        (Some(40), Some(1))
    );
    // All three again: nothing stored.
    let r = post("id-a,id-b,id-c", &[a, b, c]);
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["accepted"], 0);
    assert_eq!(v["already_stored"], true);
    assert_eq!(v["already_stored_batches"], 3);
    // Ids and record batches must match one to one; at most --max-batch-ids ids.
    for (ids, runs, code) in [
        ("id-d", &[(300, 1), (400, 1)][..], "count_mismatch"),
        ("id-d,id-e", &[(300, 1)][..], "count_mismatch"),
        ("id-d,,id-e", &[(300, 1), (400, 1), (500, 1)][..], "invalid"),
        (
            "i1,i2,i3,i4",
            &[(300, 1), (400, 1), (500, 1), (600, 1)][..],
            "too_many",
        ),
    ] {
        let r = post(ids, runs);
        assert_eq!(r.status(), 400, "{ids}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["field"], "x-batch-ids", "{ids}: {v}");
        assert_eq!(v["error"]["code"], code, "{ids}: {v}");
    }
    assert_eq!(sink.metric("sink_events_accepted_total"), 70.0);
    sink.wait_until("rows loaded", Duration::from_secs(10), || {
        sink.metric("sink_loaded_rows_total") == 70.0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.metric("sink_loaded_rows_total"), 70.0);
    let v = read_parquet(&sink.data_dir().join("parquet"));
    assert_eq!(v["duckdb"]["rows"], 70);
    assert_eq!(v["duckdb"]["distinct_ids"], 70);
}

/// `body` posted to the sink's `/v1/batches` with the token and batch id `id`.
fn post_batch(sink: &Sink, body: Vec<u8>, id: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(sink.url("/v1/batches"))
        .bearer_auth(TOKEN)
        .header("x-batch-id", id)
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn batch_limits_at_and_past() {
    let post = post_batch;
    // Rows.
    let sink = Sink::start(&["--max-batch-rows", "100"]);
    assert_eq!(post(&sink, load::arrow(0, 100).0, "r1").status(), 202);
    let r = post(&sink, load::arrow(1000, 101).0, "r2");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "body");
    // Batch id length: 255 bytes is fine, 256 is not.
    assert_eq!(
        post(&sink, load::arrow(2000, 1).0, &"i".repeat(255)).status(),
        202
    );
    let r = post(&sink, load::arrow(3000, 1).0, &"i".repeat(256));
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "x-batch-id");
    drop(sink);
    // Bytes.
    let (body, _) = load::arrow(0, 100);
    let limit = body.len().to_string();
    let sink = Sink::start(&["--max-batch-bytes", &limit]);
    assert_eq!(post(&sink, body.clone(), "b1").status(), 202);
    let mut over = body;
    over.push(0);
    let r = post(&sink, over, "b2");
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "body_too_large"
    );
}

/// `--max-ipc-expansion` and `--min-ipc-decoded-bytes` bound what a `/v1/batches` body
/// may decode to: a batch the defaults take is taken at each bound alone, and refused
/// (400 naming `body`, nothing stored) one below both — were either value ignored, its
/// default (64×, 16 MiB) would take it. The floor is given by its env var there.
#[test]
fn ipc_decode_limits_at_and_past() {
    let (body, _) = load::arrow(0, 1000);
    let decoded = ingest_core::scan_ipc(&body).unwrap().decoded_bytes;
    let len = body.len();
    // The smallest expansion that covers the body; at least 2, so that one less exists.
    let fits = decoded.div_ceil(len);
    assert!(fits >= 2, "{decoded} bytes decoded from {len}");
    let (fits_s, decoded_s) = (fits.to_string(), decoded.to_string());
    for (i, args) in [
        [
            "--max-ipc-expansion",
            &fits_s,
            "--min-ipc-decoded-bytes",
            "0",
        ],
        [
            "--max-ipc-expansion",
            "1",
            "--min-ipc-decoded-bytes",
            &decoded_s,
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let sink = Sink::start(&args);
        let r = post_batch(&sink, body.clone(), &format!("at-{i}"));
        assert_eq!(r.status(), 202, "{args:?}: {}", r.text().unwrap());
    }
    let floor = (decoded - 1).to_string();
    let sink = Sink::start_with_env(
        &["--max-ipc-expansion", &(fits - 1).to_string()],
        &[("SINK_MIN_IPC_DECODED_BYTES", &floor)],
    );
    let r = post_batch(&sink, body, "past");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["field"], "body", "{v}");
    let reason = v["error"]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("more than {floor} bytes")), "{v}");
    assert_eq!(sink.metric("sink_events_accepted_total"), 0.0);
}

#[test]
fn damaged_arrow_bodies_are_a_400_never_a_500() {
    // A batch whose schema declares `event_id` of a negative fixed width: arrow-ipc's
    // reader panicked on it (the catch-panic layer then answered 500). Found by
    // flipping the sign bit of each byte in turn until the stream scan names it.
    let (body, _) = load::arrow(0, 10);
    let bad = (0..body.len())
        .map(|i| {
            let mut b = body.clone();
            b[i] ^= 0x80;
            b
        })
        .find(|b| {
            ingest_core::scan_ipc(b).is_err_and(|e| e.to_string().contains("negative fixed width"))
        })
        .expect("a byte of event_id's width");
    let sink = Sink::start(&[]);
    let post = |body: Vec<u8>, id: &str| post_batch(&sink, body, id);
    let r = post(bad, "bad");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["field"], "body");
    // Every other single-byte change of the stream: a 2xx or a 4xx, never a 5xx.
    for i in (0..body.len()).step_by(7) {
        let mut b = body.clone();
        b[i] ^= 0xFF;
        let status = post(b, &format!("flip-{i}")).status();
        assert!(status.as_u16() < 500, "byte {i}: {status}");
    }
    assert_eq!(post(body, "good").status(), 202);
}

/// The record batch of [`load::arrow`]`(0, 10)` with row `row`'s site id set to `site`.
fn batch_with_site(row: usize, site: &str) -> RecordBatch {
    let batch = read_ipc(&load::arrow(0, 10).0, 10).unwrap().remove(0);
    let col = batch.schema().index_of("site_id").unwrap();
    let ids: StringArray = batch
        .column(col)
        .as_string::<i32>()
        .iter()
        .enumerate()
        .map(|(i, s)| if i == row { Some(site) } else { s })
        .collect();
    let mut cols = batch.columns().to_vec();
    cols[col] = Arc::new(ids);
    RecordBatch::try_new(batch.schema(), cols).unwrap()
}

/// A posted batch whose `site_id` is not canonical (capitals, surrounding whitespace,
/// empty) is refused whole — 400 `schema` naming `site_id` and the row — and nothing of
/// it is stored, even beside a good record batch under `X-Batch-Ids` (the edge then
/// posts the two alone). The good batch alone is stored, its site ids as sent.
#[test]
fn non_canonical_site_ids_are_refused() {
    let sink = Sink::start(&["--flush-interval", "200ms"]);
    let refused = |r: reqwest::blocking::Response, row: usize, why: &str| {
        assert_eq!(r.status(), 400);
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["field"], "site_id", "{v}");
        assert_eq!(v["error"]["code"], "schema", "{v}");
        let reason = v["error"]["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("row {row}: the site id {why}")),
            "{v}"
        );
    };
    for (i, (row, site, why)) in [
        (3, "Site3.example", "has ASCII uppercase letters"),
        (
            0,
            " site0.example",
            "has leading or trailing ASCII whitespace",
        ),
        (
            9,
            "site2.example\t",
            "has leading or trailing ASCII whitespace",
        ),
        (5, "", "is empty"),
        (1, "  ", "is empty"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = write_ipc(&[batch_with_site(row, site)]).unwrap();
        refused(post_batch(&sink, body, &format!("bad-{i}")), row, why);
    }
    let good = read_ipc(&load::arrow(0, 10).0, 10).unwrap().remove(0);
    let bad = batch_with_site(7, "SITE0.example");
    let r = reqwest::blocking::Client::new()
        .post(sink.url("/v1/batches"))
        .bearer_auth(TOKEN)
        .header("x-batch-ids", "good,bad")
        .body(write_ipc(&[good.clone(), bad]).unwrap())
        .send()
        .unwrap();
    refused(r, 7, "has ASCII uppercase letters");
    assert_eq!(sink.metric("sink_events_accepted_total"), 0.0);

    let r = post_batch(&sink, write_ipc(&[good]).unwrap(), "good");
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().unwrap()["accepted"], 10);
    sink.wait_until("rows loaded", Duration::from_secs(10), || {
        sink.metric("sink_loaded_rows_total") == 10.0
    });
    let v = read_parquet(&sink.data_dir().join("parquet"));
    assert_eq!(v["duckdb"]["rows"], 10);
    let (_, tally) = load::arrow(0, 10);
    let per_site: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(v["duckdb"]["per_site"].clone()).unwrap();
    assert_eq!(per_site, tally.per_site);
}
