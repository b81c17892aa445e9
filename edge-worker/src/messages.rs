//! One request's accepted events as Queue messages: kept apart from the Workers glue so
//! the sizes are unit-tested natively.
//!
//! Cloudflare Queues take at most 128 KB per message, and one `sendBatch` takes at most
//! 100 messages and 256 KB in all. A request's messages go in one `sendBatch`, so they
//! are enqueued all or none: a failed send is answered 503 and the client's retry does
//! not duplicate a part already enqueued. Sizes are measured on the serialized JSON (what
//! the Queue counts), which JSON escaping can make larger than the decoded field limits:
//!
//! - an event over [`MAX_MESSAGE_BYTES`] alone can never be sent; it is rejected by
//!   itself (`props`, `too_large`) and the request's other events go on;
//! - a request whose messages are over [`MAX_BATCH_BYTES`] or [`MAX_BATCH_MESSAGES`] is
//!   refused whole (413) before anything is enqueued. With the default `MAX_BODY_BYTES`
//!   (128 KiB) a request reaches this only by escaping-heavy properties: a normal request
//!   is a few KB, and even a full body of plain events is under 200 KB encoded.

use serde::Serialize;

/// Serialized events per Queue message, at most (Cloudflare's limit is 128 KB per
/// message; the margin covers the envelope and content type).
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;
/// Messages per `sendBatch`, at most (Cloudflare's limit).
pub const MAX_BATCH_MESSAGES: usize = 100;
/// Serialized events per `sendBatch` (one request), at most (Cloudflare's limit is
/// 256 KB in all; the margin covers the per-message envelope).
pub const MAX_BATCH_BYTES: usize = 224 * 1024;

/// A request's events packed into messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Packed {
    /// JSON arrays of events, each at most [`MAX_MESSAGE_BYTES`].
    pub messages: Vec<String>,
    /// The events left out: (position in the events given, serialized bytes), each one
    /// alone over [`MAX_MESSAGE_BYTES`].
    pub too_large: Vec<(usize, usize)>,
    /// Events in `messages`.
    pub events: usize,
    /// Bytes of all `messages`.
    pub bytes: usize,
}

impl Packed {
    /// True when the messages fit one `sendBatch`.
    pub fn fits_one_batch(&self) -> bool {
        self.messages.len() <= MAX_BATCH_MESSAGES && self.bytes <= MAX_BATCH_BYTES
    }
}

/// Packs `events` as JSON arrays of at most [`MAX_MESSAGE_BYTES`] each (one message per
/// request in practice; a large request is split), leaving out every event that alone is
/// over the limit.
pub fn pack<T: Serialize>(events: &[T]) -> serde_json::Result<Packed> {
    let mut packed = Packed::default();
    let mut cur = String::from("[");
    let mut one = Vec::new();
    for (pos, ev) in events.iter().enumerate() {
        one.clear();
        serde_json::to_writer(&mut one, ev)?;
        if one.len() + 2 > MAX_MESSAGE_BYTES {
            packed.too_large.push((pos, one.len()));
            continue;
        }
        if cur.len() > 1 && cur.len() + one.len() + 2 > MAX_MESSAGE_BYTES {
            cur.push(']');
            packed.bytes += cur.len();
            packed
                .messages
                .push(std::mem::replace(&mut cur, String::from("[")));
        }
        if cur.len() > 1 {
            cur.push(',');
        }
        // serde_json writes UTF-8.
        cur.push_str(std::str::from_utf8(&one).expect("serde_json writes UTF-8"));
        packed.events += 1;
    }
    if cur.len() > 1 {
        cur.push(']');
        packed.bytes += cur.len();
        packed.messages.push(cur);
    }
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn event(i: usize, props_bytes: usize) -> Value {
        json!({"site_id": "example.com", "pathname": format!("/{i}"), "prop_values": ["x".repeat(props_bytes)]})
    }

    #[test]
    fn small_events_are_one_message() {
        let events: Vec<Value> = (0..3).map(|i| event(i, 10)).collect();
        let p = pack(&events).unwrap();
        assert_eq!((p.messages.len(), p.events), (1, 3));
        assert!(p.too_large.is_empty() && p.fits_one_batch());
        let back: Vec<Value> = serde_json::from_str(&p.messages[0]).unwrap();
        assert_eq!(back, events);
        assert_eq!(p.bytes, p.messages[0].len());
        assert_eq!(pack::<Value>(&[]).unwrap(), Packed::default());
    }

    #[test]
    fn a_large_request_is_split_under_the_message_limit() {
        let events: Vec<Value> = (0..5).map(|i| event(i, 40 * 1024)).collect();
        let p = pack(&events).unwrap();
        assert_eq!((p.messages.len(), p.events), (3, 5));
        assert!(p.messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
        assert!(p.fits_one_batch(), "{} bytes", p.bytes);
    }

    /// An event whose JSON (escaping included) is over the message limit is left out
    /// alone; the others are packed.
    #[test]
    fn an_event_over_the_message_limit_is_left_out() {
        // 30 000 control characters: 30 000 bytes decoded, 180 000 as JSON (`\u0001`).
        let escaped = json!({"site_id": "example.com", "prop_values": ["\u{1}".repeat(30_000)]});
        let events = vec![event(0, 10), escaped, event(2, 10)];
        let p = pack(&events).unwrap();
        assert_eq!(p.too_large.len(), 1);
        assert_eq!(p.too_large[0].0, 1);
        assert!(p.too_large[0].1 > MAX_MESSAGE_BYTES);
        assert_eq!((p.messages.len(), p.events), (1, 2));
        let back: Vec<Value> = serde_json::from_str(&p.messages[0]).unwrap();
        assert_eq!(back, [events[0].clone(), events[2].clone()]);
        // Only that event: nothing to send.
        let p = pack(&events[1..2]).unwrap();
        assert!(p.messages.is_empty() && p.events == 0);
    }

    #[test]
    fn a_request_over_one_send_batch_does_not_fit() {
        let events: Vec<Value> = (0..4).map(|i| event(i, 90 * 1024)).collect();
        let p = pack(&events).unwrap();
        assert_eq!(p.messages.len(), 4);
        assert!(!p.fits_one_batch(), "{} bytes", p.bytes);
    }
}
