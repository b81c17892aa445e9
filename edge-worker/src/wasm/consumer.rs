//! The Queue consumer: turns a message batch into Arrow record batches, one per
//! message, and posts them in one body to the sink.
//!
//! Deduplication is per message: `X-Batch-Ids` lists, in order, one id per record batch
//! derived from that message's id alone ([`crate::batch_id::message_batch_id`]), so a
//! redelivery that groups retried messages with others still finds each stored one
//! (`X-Batch-Id`, of the whole set, is sent too, for a sink that predates
//! `X-Batch-Ids`).
//!
//! A failed post ([`crate::retry`]): a network error, a 5xx, 401/403 (a token changing
//! during a deploy), 408, 429… retries each message with exponential backoff by its
//! delivery attempt (`QUEUE_RETRY_BASE_SECS` doubling up to `QUEUE_RETRY_MAX_SECS`,
//! never sooner than the sink's `Retry-After`), so `max_retries` in `wrangler.toml`
//! spans hours of sink outage before Cloudflare dead-letters a message. A permanent
//! refusal (400, 413, 422) will never succeed: the messages are posted one by one, and
//! those the sink refuses alone go to the dead-letter queue at once (`DEAD_LETTERS`
//! producer binding), logged loudly; so does a message that cannot be decoded.

use std::panic::AssertUnwindSafe;

use ingest_core::{events_to_batch, write_ipc, Event};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::Reflect;
use worker::{
    console_error, console_log, console_warn, worker_sys, Env, MessageBatch, MessageExt,
    QueueContentType, QueueRetryOptionsBuilder, RawMessage, RawMessageBuilder,
};

use super::sink::{post_ipc, PostError};
use super::with_isolate;
use crate::batch_id::{batch_id, batch_ids_header, message_batch_id};
use crate::config::{EdgeConfig, DEAD_LETTER_BINDING};
use crate::retry::{classify, Backoff, Failure};

/// The `queue` export, written out as `#[event(queue)]` would write it, because the
/// handler needs each message's `attempts`, which workers-rs 0.8.7 does not expose
/// (`Message` has no `attempts()`): it is read from the JS messages here.
#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
pub async fn queue(
    event: worker_sys::MessageBatch,
    env: Env,
    _ctx: worker_sys::Context,
) -> Result<JsValue, JsValue> {
    AssertUnwindSafe(async move {
        let attempts = attempts_of(&event);
        consume(MessageBatch::<String>::from(event), &attempts, &env).await;
        Ok(JsValue::UNDEFINED)
    })
    .await
}

/// Each message's delivery attempt (1 for the first), in the order of the batch.
fn attempts_of(batch: &worker_sys::MessageBatch) -> Vec<u32> {
    let Ok(messages) = batch.messages() else {
        return Vec::new();
    };
    messages
        .iter()
        .map(|m| {
            Reflect::get(&m, &JsValue::from_str("attempts"))
                .ok()
                .and_then(|a| a.as_f64())
                .map_or(1, |a| a.clamp(1.0, f64::from(u32::MAX)) as u32)
        })
        .collect()
}

/// One message whose events are to be posted.
struct Part<'a> {
    message: &'a RawMessage,
    attempts: u32,
    events: Vec<Event<'a>>,
}

async fn consume(batch: MessageBatch<String>, attempts: &[u32], env: &Env) {
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    let attempt = |i: usize| attempts.get(i).copied().unwrap_or(1);
    let config = match with_isolate(env, |iso| iso.config.clone()) {
        Ok(c) => c,
        Err(e) => {
            console_error!("configuration: {e}; retrying the batch");
            for (i, m) in messages.iter().enumerate() {
                retry(m, Backoff::default(), attempt(i), None);
            }
            return;
        }
    };
    let backoff = config.retry;
    let bodies: Vec<Option<String>> = messages.iter().map(|m| m.body().as_string()).collect();
    let mut parts = Vec::with_capacity(messages.len());
    for (i, (m, body)) in messages.iter().zip(&bodies).enumerate() {
        let Some(body) = body else {
            dead_letter(env, m, "is not text", backoff, attempt(i)).await;
            continue;
        };
        match serde_json::from_str::<Vec<Event<'_>>>(body) {
            // Nothing to store.
            Ok(events) if events.is_empty() => m.ack(),
            Ok(events) => parts.push(Part {
                message: m,
                attempts: attempt(i),
                events,
            }),
            Err(e) => {
                let why = format!("does not decode ({e})");
                dead_letter(env, m, &why, backoff, attempt(i)).await;
            }
        }
    }
    if parts.is_empty() {
        return;
    }
    let Err(e) = post(&config, &parts).await else {
        let events: usize = parts.iter().map(|p| p.events.len()).sum();
        console_log!("{events} events from {} messages posted", parts.len());
        parts.iter().for_each(|p| p.message.ack());
        return;
    };
    match classify(e.status) {
        Failure::Transient => {
            console_error!(
                "{} messages: {}; retrying them with backoff",
                parts.len(),
                e.message
            );
            for p in &parts {
                retry(p.message, backoff, p.attempts, e.retry_after);
            }
        }
        Failure::Permanent if parts.len() == 1 => {
            dead_letter(
                env,
                parts[0].message,
                &e.message,
                backoff,
                parts[0].attempts,
            )
            .await;
        }
        Failure::Permanent => {
            console_warn!(
                "the sink refused a body of {} messages for good ({}); posting each alone",
                parts.len(),
                e.message
            );
            for p in &parts {
                match post(&config, std::slice::from_ref(p)).await {
                    Ok(()) => p.message.ack(),
                    Err(e) if classify(e.status) == Failure::Permanent => {
                        dead_letter(env, p.message, &e.message, backoff, p.attempts).await;
                    }
                    Err(e) => {
                        console_error!(
                            "queue message {}: {}; retrying it",
                            p.message.id(),
                            e.message
                        );
                        retry(p.message, backoff, p.attempts, e.retry_after);
                    }
                }
            }
        }
    }
}

/// Posts `parts` as one body: one record batch per message, `X-Batch-Ids` in order.
async fn post(config: &EdgeConfig, parts: &[Part<'_>]) -> Result<(), PostError> {
    let message_ids: Vec<String> = parts.iter().map(|p| p.message.id()).collect();
    let ids = batch_ids_header(message_ids.iter().map(|id| message_batch_id(id)));
    let set_id = batch_id(&message_ids);
    let batches: Vec<_> = parts.iter().map(|p| events_to_batch(&p.events)).collect();
    let bytes = write_ipc(&batches).map_err(|e| PostError {
        status: None,
        retry_after: None,
        message: format!("encoding the batch: {e}"),
    })?;
    post_ipc(
        config,
        &bytes,
        &[("X-Batch-Id", &set_id), ("X-Batch-Ids", &ids)],
    )
    .await
}

/// Redelivers `m` after the backoff of its `attempts`-th delivery.
fn retry(m: &RawMessage, backoff: Backoff, attempts: u32, retry_after: Option<u32>) {
    let delay = backoff.delay_secs(attempts, retry_after);
    m.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(delay)
            .build(),
    );
}

/// Sends `m` to the dead-letter queue now (and acks it here), loudly: it can never be
/// stored. Without the `DEAD_LETTERS` binding, or when that send fails, it is retried
/// with backoff instead, and `max_retries` takes it there.
async fn dead_letter(env: &Env, m: &RawMessage, why: &str, backoff: Backoff, attempts: u32) {
    console_error!(
        "DEAD LETTER: queue message {} {why}: it will never be stored; moving it to the dead-letter queue",
        m.id()
    );
    let sent = match env.queue(DEAD_LETTER_BINDING) {
        Ok(q) => {
            let body = m.body();
            let kind = if body.is_string() {
                QueueContentType::Text
            } else {
                QueueContentType::V8
            };
            q.send_raw(RawMessageBuilder::new(body).build_with_content_type(kind))
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("no {DEAD_LETTER_BINDING} binding: {e}")),
    };
    match sent {
        Ok(()) => m.ack(),
        Err(e) => {
            console_error!(
                "queue message {} cannot be dead-lettered now ({e}); retrying it with backoff",
                m.id()
            );
            retry(m, backoff, attempts, None);
        }
    }
}
