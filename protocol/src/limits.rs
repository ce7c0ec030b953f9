//! Every bound on what a peer may send, with its unit last. The broker's own sizing limits
//! (segment size, hot tail) live in the broker config; these are the ones both ends must agree on.

/// Largest frame payload either side accepts. Checked against the length prefix before any
/// allocation happens.
pub const FRAME_PAYLOAD_BYTES_MAX: u32 = 64 << 20;

/// Largest single batch (header + records). A batch must fit in one frame with its metadata.
pub const BATCH_BYTES_MAX: u32 = FRAME_PAYLOAD_BYTES_MAX - 64 * 1024;

/// Largest number of records in one batch.
pub const BATCH_RECORDS_MAX: u32 = 1 << 20;

/// Largest rkyv metadata part of a frame (topic names, lists of topics, errors). A list of every
/// topic of a full broker must fit (asserted in the broker's limits).
pub const META_BYTES_MAX: u32 = 4 << 20;

/// Topic names: 1..=TOPIC_NAME_BYTES_MAX bytes of `[A-Za-z0-9_.%|-]`, like RocketMQ's.
pub const TOPIC_NAME_BYTES_MAX: usize = 127;

/// Queues per topic.
pub const QUEUES_PER_TOPIC_MAX: u32 = 1024;

/// Longest long-poll a pull may ask for.
pub const PULL_WAIT_MS_MAX: u32 = 60_000;

/// Alignment of rkyv archives and of batches inside frames and the log.
pub const ARCHIVE_ALIGNMENT_BYTES: usize = 16;

const _: () = assert!(BATCH_BYTES_MAX < FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(META_BYTES_MAX < FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!((FRAME_PAYLOAD_BYTES_MAX as usize).is_multiple_of(ARCHIVE_ALIGNMENT_BYTES));

/// Checks a topic name; the reason names the rule that failed.
pub fn validate_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("topic name is empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err("topic name is longer than 127 bytes");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '%' | '|');
    if !name.chars().all(allowed) {
        return Err("topic name may only hold A-Z a-z 0-9 _ - . % |");
    }
    Ok(())
}

/// Rounds `n` up to the archive alignment.
pub const fn align_up(n: usize) -> usize {
    (n + ARCHIVE_ALIGNMENT_BYTES - 1) & !(ARCHIVE_ALIGNMENT_BYTES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.eu-1_%RETRY%g").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(128)).is_err());
        assert!(validate_topic_name(&"x".repeat(127)).is_ok());
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 16);
        assert_eq!(align_up(16), 16);
        assert_eq!(align_up(17), 32);
    }
}
