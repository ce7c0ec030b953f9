//! [`Message`]: one consumed record with where it came from, owned, for consumers whose
//! handlers keep messages beyond the pull that brought them; and [`unique_id`], the ids a
//! producer gives messages that have none.

use shardmq_protocol::Record;

use crate::pull::{PullResult, RecordRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub queue_id: u32,
    /// The record's queue offset.
    pub offset: u64,
    /// When the broker stored it (ms since the epoch).
    pub store_timestamp_ms: u64,
    pub record: Record,
}

impl Message {
    fn from_ref(topic: &str, queue_id: u32, r: RecordRef<'_>) -> Option<Message> {
        let record = rkyv::deserialize::<Record, rkyv::rancor::Error>(r.record).ok()?;
        Some(Message {
            topic: topic.to_owned(),
            queue_id,
            offset: r.offset,
            store_timestamp_ms: r.store_timestamp_ms,
            record,
        })
    }
}

/// The messages of a validated pull reply, owned.
pub fn messages_of(topic: &str, queue_id: u32, pulled: &PullResult) -> crate::Result<Vec<Message>> {
    let mut out = Vec::new();
    for r in pulled.records()? {
        let message = Message::from_ref(topic, queue_id, r).ok_or_else(|| {
            crate::ClientError::Protocol(shardmq_protocol::ProtocolError::BadArchive(
                "a validated record does not deserialize".into(),
            ))
        })?;
        out.push(message);
    }
    Ok(out)
}

/// A message id in the shape of RocketMQ's `UNIQ_KEY`: 16 bytes as 32 upper-case hex digits —
/// 4 bytes of this process's random prefix, 2 of its pid, 4 of a random per-process value, 4
/// of milliseconds since the process's first id, and a 2-byte counter — unique per process
/// and time-ordered within it.
pub fn unique_id() -> String {
    use std::cell::Cell;
    use std::sync::OnceLock;
    static PREFIX: OnceLock<(u32, u16, u32, std::time::Instant)> = OnceLock::new();
    thread_local! {
        static COUNTER: Cell<u16> = const { Cell::new(0) };
    }
    let (random, pid, salt, start) = *PREFIX.get_or_init(|| {
        let r = crate::member::random_u64();
        (
            (r >> 32) as u32,
            std::process::id() as u16,
            r as u32,
            std::time::Instant::now(),
        )
    });
    let millis = start.elapsed().as_millis() as u32;
    let count = COUNTER.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    format!("{random:08X}{pid:04X}{salt:08X}{millis:08X}{count:04X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let a = unique_id();
        let b = unique_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }
}
