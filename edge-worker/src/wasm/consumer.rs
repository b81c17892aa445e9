//! `#[event(queue)]`: the consumer that turns a whole Queue message batch into one Arrow
//! batch and posts it to the sink.
//!
//! The batch id is derived from the Queue message ids ([`crate::batch_id`]), which a
//! redelivery keeps, so the sink stores a retried batch once. A failed post retries the
//! messages (Queue retry semantics, `max_retries` in `wrangler.toml`, then the
//! dead-letter queue). A message that cannot be decoded is retried alone, so it ends in
//! the dead-letter queue instead of blocking or silently dropping the others.

use ingest_core::Event;
use worker::{console_error, console_log, event, Context, Env, MessageBatch, MessageExt, Result};

use super::sink::post_batch;
use super::with_isolate;
use crate::batch_id::batch_id;

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let config = match with_isolate(&env, |iso| iso.config.clone()) {
        Ok(c) => c,
        Err(e) => {
            console_error!("configuration: {e}; retrying the batch");
            batch.retry_all();
            return Ok(());
        }
    };
    let messages: Vec<_> = batch.raw_iter().collect();
    let mut bodies = Vec::with_capacity(messages.len());
    for m in &messages {
        match m.body().as_string() {
            Some(s) => bodies.push(Some(s)),
            None => {
                console_error!("queue message {} is not text; retrying it alone", m.id());
                m.retry();
                bodies.push(None);
            }
        }
    }
    let mut events: Vec<Event<'_>> = Vec::new();
    let mut good = Vec::with_capacity(messages.len());
    for (m, body) in messages.iter().zip(&bodies) {
        let Some(body) = body else { continue };
        match serde_json::from_str::<Vec<Event<'_>>>(body) {
            Ok(evs) => {
                events.extend(evs);
                good.push(m);
            }
            Err(e) => {
                console_error!(
                    "queue message {} does not decode ({e}); retrying it alone",
                    m.id()
                );
                m.retry();
            }
        }
    }
    if good.is_empty() {
        return Ok(());
    }
    let id = batch_id(good.iter().map(|m| m.id()));
    match post_batch(&config, &events, &id).await {
        Ok(()) => {
            console_log!(
                "batch {id}: {} events from {} messages posted",
                events.len(),
                good.len()
            );
            good.iter().for_each(|m| m.ack());
        }
        Err(e) => {
            console_error!("batch {id}: {e}; the messages will be redelivered");
            good.iter().for_each(|m| m.retry());
        }
    }
    Ok(())
}
