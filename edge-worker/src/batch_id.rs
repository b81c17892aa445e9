//! The id of a batch posted to the sink (`X-Batch-Id`), which the sink uses to
//! deduplicate: a redelivered Queue batch, or a retried direct-mode post, must carry the
//! same id as the first attempt.
//!
//! Queue mode sends one IPC record batch per Queue message and one id per message
//! (`X-Batch-Ids`, [`message_batch_id`]), derived from that message's id alone, which
//! Cloudflare keeps across redeliveries: a redelivery may group retried messages with
//! others, and the sink still stores each message once. It also sends `X-Batch-Id` of
//! the whole set of message ids, which a sink without `X-Batch-Ids` uses (and a newer
//! one ignores). Direct mode derives one id from the event ids of the batch. The ids of
//! a set are sorted first, because the Queue does not promise an order within a batch.

use sha2::{Digest, Sha256};

/// `hex(SHA-256(sorted ids joined by '\n'))[..32]`: 128 bits, plenty against collisions
/// between distinct batches, short enough for a header and a log line.
///
/// ```
/// use edge_worker::batch_id::batch_id;
/// let a = batch_id(["m2", "m1"]);
/// assert_eq!(a, batch_id(["m1", "m2"]));
/// assert_ne!(a, batch_id(["m1"]));
/// assert_eq!(a.len(), 32);
/// ```
pub fn batch_id<I, S>(ids: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut ids: Vec<S> = ids.into_iter().collect();
    ids.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    let mut h = Sha256::new();
    for id in &ids {
        h.update(id.as_ref().as_bytes());
        // A separator, so ["ab","c"] and ["a","bc"] differ.
        h.update(b"\n");
    }
    hex(&h.finalize()[..16])
}

/// The id of one Queue message's record batch (`X-Batch-Ids`): [`batch_id`] of that
/// message id alone, so it does not depend on which other messages a delivery
/// groups it with.
pub fn message_batch_id(message_id: &str) -> String {
    batch_id([message_id])
}

/// The `X-Batch-Ids` header: the ids in order, comma-separated (one per IPC record
/// batch of the body).
pub fn batch_ids_header<I, S>(ids: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for id in ids {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(id.as_ref());
    }
    out
}

/// The batch id of events already carrying unique 16-byte ids (direct mode).
pub fn batch_id_of_events(event_ids: impl IntoIterator<Item = [u8; 16]>) -> String {
    batch_id(event_ids.into_iter().map(|id| hex(&id)))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_separator_does() {
        assert_eq!(batch_id(["b", "a", "c"]), batch_id(["c", "b", "a"]));
        assert_ne!(batch_id(["ab", "c"]), batch_id(["a", "bc"]));
        assert_ne!(batch_id::<[&str; 0], &str>([]), batch_id([""]));
    }

    /// A message's id is the same whatever delivery it comes in: a redelivery that
    /// groups it with other messages still names it alike.
    #[test]
    fn a_message_id_does_not_depend_on_its_delivery() {
        let alone = message_batch_id("m2");
        assert_eq!(alone, batch_id(["m2"]));
        assert_eq!(alone.len(), 32);
        assert!(alone.bytes().all(|c| c.is_ascii_hexdigit()));
        let first = batch_ids_header(["m1", "m2"].map(message_batch_id));
        let again = batch_ids_header(["m3", "m2"].map(message_batch_id));
        assert_eq!(first.split(',').nth(1), again.split(',').nth(1));
        assert_eq!(
            first,
            format!("{},{}", message_batch_id("m1"), message_batch_id("m2"))
        );
        assert_eq!(batch_ids_header::<[&str; 0], &str>([]), "");
    }

    #[test]
    fn event_ids_are_hex_encoded() {
        let a = batch_id_of_events([[1; 16], [2; 16]]);
        let b = batch_id([
            "01010101010101010101010101010101",
            "02020202020202020202020202020202",
        ]);
        assert_eq!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
