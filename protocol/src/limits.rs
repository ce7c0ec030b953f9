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

/// Topic names: 1..=TOPIC_NAME_BYTES_MAX bytes of `[A-Za-z0-9_%|-]`, RocketMQ's rule
/// (`TopicValidator`: `^[%|a-zA-Z0-9_-]+$`, at most 127 characters).
pub const TOPIC_NAME_BYTES_MAX: usize = 127;

/// Consumer group names: RocketMQ 5.x's bound (so `%RETRY%<group>` stays a valid topic), same
/// characters as topics.
pub const GROUP_NAME_BYTES_MAX: usize = 120;

/// Queues per topic.
pub const QUEUES_PER_TOPIC_MAX: u32 = 1024;

/// Longest long-poll a pull may ask for.
pub const PULL_WAIT_MS_MAX: u32 = 60_000;

/// Alignment of rkyv archives and of batches inside frames and the log.
pub const ARCHIVE_ALIGNMENT_BYTES: usize = 16;

const _: () = assert!(BATCH_BYTES_MAX < FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(META_BYTES_MAX < FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!((FRAME_PAYLOAD_BYTES_MAX as usize).is_multiple_of(ARCHIVE_ALIGNMENT_BYTES));

fn name_char_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '%' | '|')
}

/// Checks a topic name; the reason names the rule that failed.
pub fn validate_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("topic name is empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err("topic name is longer than 127 bytes");
    }
    if !name.chars().all(name_char_allowed) {
        return Err("topic name may only hold A-Z a-z 0-9 _ - % |");
    }
    Ok(())
}

/// Checks a consumer (or producer) group name; the reason names the rule that failed.
pub fn validate_group_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("group name is empty");
    }
    if name.len() > GROUP_NAME_BYTES_MAX {
        return Err("group name is longer than 120 bytes");
    }
    if !name.chars().all(name_char_allowed) {
        return Err("group name may only hold A-Z a-z 0-9 _ - % |");
    }
    Ok(())
}

/// Topics the broker owns (RocketMQ's system topics and the per-group retry and dead-letter
/// topics): clients may not create, change or delete them.
pub fn is_system_topic(name: &str) -> bool {
    const NAMES: [&str; 6] = [
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "BenchmarkTest",
        "OFFSET_MOVED_EVENT",
        "SELF_TEST_TOPIC",
        "TRANS_CHECK_MAX_TIME_TOPIC",
    ];
    const PREFIXES: [&str; 4] = ["RMQ_SYS_", "rmq_sys_", "%RETRY%", "%DLQ%"];
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
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
        assert!(validate_topic_name("orders_eu-1%|x").is_ok());
        assert!(
            validate_topic_name("orders.eu").is_err(),
            "RocketMQ refuses dots"
        );
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(128)).is_err());
        assert!(validate_topic_name(&"x".repeat(127)).is_ok());
    }

    #[test]
    fn group_names_and_system_topics() {
        assert!(validate_group_name("cg_1").is_ok());
        assert!(validate_group_name(&"g".repeat(121)).is_err());
        assert!(validate_group_name("a b").is_err());
        assert!(is_system_topic("TBW102") && is_system_topic("%RETRY%cg"));
        assert!(is_system_topic("RMQ_SYS_TRANS_HALF_TOPIC"));
        assert!(!is_system_topic("orders"));
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 16);
        assert_eq!(align_up(16), 16);
        assert_eq!(align_up(17), 32);
    }
}
