//! Posting Arrow IPC batches to the sink's `POST /v1/batches`.

use ingest_core::{events_to_batch, write_ipc, Event};
use worker::{js_sys::Uint8Array, Fetch, Headers, Method, Request, RequestInit};

use crate::config::EdgeConfig;
use crate::retry::parse_retry_after;

/// A post the sink did not answer 2xx.
pub(super) struct PostError {
    /// The sink's status; `None` when there was no answer (or nothing was sent).
    pub status: Option<u16>,
    /// The sink's `Retry-After`, seconds.
    pub retry_after: Option<u32>,
    /// What went wrong, for the log.
    pub message: String,
}

impl PostError {
    fn local(message: String) -> Self {
        PostError {
            status: None,
            retry_after: None,
            message,
        }
    }
}

/// Builds one Arrow batch of `events` (ingest-core), encodes it as an Arrow IPC stream
/// with LZ4 (`write_ipc`), and posts it with the bearer token and `X-Batch-Id`.
/// `Ok` only for a 2xx from the sink (which answers 2xx only once the batch is on disk).
pub(super) async fn post_batch(
    config: &EdgeConfig,
    events: &[Event<'_>],
    batch_id: &str,
) -> Result<(), String> {
    let batch = events_to_batch(events);
    let bytes = write_ipc(&[batch]).map_err(|e| format!("encoding the batch: {e}"))?;
    post_ipc(config, &bytes, &[("X-Batch-Id", batch_id)])
        .await
        .map_err(|e| e.message)
}

/// Posts an Arrow IPC stream `bytes` with the bearer token and the id headers `ids`
/// (`X-Batch-Id`, `X-Batch-Ids`). `Ok` only for a 2xx from the sink.
pub(super) async fn post_ipc(
    config: &EdgeConfig,
    bytes: &[u8],
    ids: &[(&str, &str)],
) -> Result<(), PostError> {
    let url = config
        .batches_url()
        .map_err(|e| PostError::local(e.to_string()))?;
    let token = config.batch_token.as_deref().ok_or_else(|| {
        PostError::local("BATCH_TOKEN: not set: `wrangler secret put BATCH_TOKEN`".into())
    })?;
    let headers = Headers::new();
    let set = |k: &str, v: &str| {
        headers
            .set(k, v)
            .map_err(|e| PostError::local(e.to_string()))
    };
    set("Authorization", &format!("Bearer {token}"))?;
    for (k, v) in ids {
        set(k, v)?;
    }
    set("Content-Type", "application/vnd.apache.arrow.stream")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(Uint8Array::from(bytes).into()));
    let req = Request::new_with_init(&url, &init).map_err(|e| PostError::local(e.to_string()))?;
    let mut resp = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| PostError::local(format!("POST {url}: {e}")))?;
    let status = resp.status_code();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .ok()
            .flatten()
            .and_then(|v| parse_retry_after(&v));
        let text = resp.text().await.unwrap_or_default();
        Err(PostError {
            status: Some(status),
            retry_after,
            message: format!(
                "POST {url}: {status} {}",
                text.chars().take(300).collect::<String>()
            ),
        })
    }
}
