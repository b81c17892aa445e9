//! Direct mode (no Queue binding, e.g. the free plan): accepted events are micro-batched
//! in the isolate and posted to the sink from `waitUntil`, at most `DIRECT_FLUSH_MS`
//! (default 1 s) after the first event of a batch, or at once at `DIRECT_MAX_ROWS`.
//!
//! **Durability: at most once.** The 202 is sent before the post. Events sit in the
//! isolate's memory until posted; if the isolate is evicted, or the sink stays
//! unreachable through the retries below (three attempts within about 1.5 s, the
//! same batch id each time so the sink deduplicates), they are lost, and the loss is
//! logged with its count. Use queue mode where that matters: there the 202 is sent
//! only after the Queue accepted the events, and failed posts are redelivered.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ingest_core::Event;
use worker::{console_error, Context, Delay};

use super::sink::post_batch;
use crate::batch_id::batch_id_of_events;
use crate::config::EdgeConfig;

#[derive(Default)]
struct Buffer {
    events: Vec<Event<'static>>,
    /// A flush is already scheduled (one `waitUntil` per batch, not per request).
    timer: bool,
}

thread_local! {
    static BUFFER: RefCell<Buffer> = RefCell::new(Buffer::default());
}

/// Adds accepted events to this isolate's micro-batch, scheduling its flush.
pub(super) fn push(events: Vec<Event<'static>>, config: &Rc<EdgeConfig>, ctx: &Context) {
    let (full, start_timer) = BUFFER.with(|b| {
        let mut b = b.borrow_mut();
        b.events.extend(events);
        if b.events.len() >= config.direct_max_rows {
            (Some(std::mem::take(&mut b.events)), false)
        } else if !b.timer && !b.events.is_empty() {
            b.timer = true;
            (None, true)
        } else {
            (None, false)
        }
    });
    if let Some(batch) = full {
        ctx.wait_until(post_with_retries(batch, config.clone()));
    }
    if start_timer {
        let config = config.clone();
        ctx.wait_until(async move {
            Delay::from(Duration::from_millis(config.direct_flush_ms)).await;
            let batch = BUFFER.with(|b| {
                let mut b = b.borrow_mut();
                b.timer = false;
                std::mem::take(&mut b.events)
            });
            if !batch.is_empty() {
                post_with_retries(batch, config).await;
            }
        });
    }
}

async fn post_with_retries(events: Vec<Event<'static>>, config: Rc<EdgeConfig>) {
    let id = batch_id_of_events(events.iter().map(|e| e.event_id));
    let mut last = String::new();
    for backoff_ms in [250u64, 1000, 0] {
        match post_batch(&config, &events, &id).await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        if backoff_ms > 0 {
            Delay::from(Duration::from_millis(backoff_ms)).await;
        }
    }
    console_error!(
        "direct mode: {} events of batch {id} lost after 3 attempts: {last}",
        events.len()
    );
}
