//! Posting one Arrow IPC batch to the sink's `POST /v1/batches`.

use ingest_core::{events_to_batch, write_ipc, Event};
use worker::{js_sys::Uint8Array, Fetch, Headers, Method, Request, RequestInit};

use crate::config::EdgeConfig;

/// Builds one Arrow batch of `events` (ingest-core), encodes it as an Arrow IPC stream
/// with LZ4 (`write_ipc`), and posts it with the bearer token and `X-Batch-Id`.
/// `Ok` only for a 2xx from the sink (which answers 2xx only once the batch is on disk).
pub(super) async fn post_batch(
    config: &EdgeConfig,
    events: &[Event<'_>],
    batch_id: &str,
) -> Result<(), String> {
    let url = config.batches_url().map_err(|e| e.to_string())?;
    let token = config
        .batch_token
        .as_deref()
        .ok_or("BATCH_TOKEN: not set: `wrangler secret put BATCH_TOKEN`")?;
    let batch = events_to_batch(events);
    let bytes = write_ipc(&[batch]).map_err(|e| format!("encoding the batch: {e}"))?;

    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| e.to_string());
    set("Authorization", &format!("Bearer {token}"))?;
    set("X-Batch-Id", batch_id)?;
    set("Content-Type", "application/vnd.apache.arrow.stream")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(Uint8Array::from(bytes.as_slice()).into()));
    let req = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let mut resp = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status_code();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "POST {url}: {status} {}",
            text.chars().take(300).collect::<String>()
        ))
    }
}
