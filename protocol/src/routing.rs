//! Queue ownership: the one pure function that says which shard owns `(topic, queue_id)`.
//! The broker, the client and the tests all call this; nothing else decides ownership.
//!
//! `shard = (fnv1a32(topic) + queue_id) mod shard_count`: consecutive queues of a topic land on
//! consecutive shards, so a topic with `Q >= shard_count` queues uses every shard evenly. The
//! function is stable across versions; a change needs a new [`ROUTING_NAME`].

pub const ROUTING_NAME: &str = "fnv1a32+queue/v1";

pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The shard that coordinates a consumer group (its members, generation and assignment):
/// `fnv1a32(group) mod shard_count`. A shard-aware member joins through that shard.
pub fn shard_for_group(group: &str, shard_count: u32) -> u32 {
    assert!(shard_count > 0, "a broker has at least one shard");
    fnv1a32(group.as_bytes()) % shard_count
}

pub fn shard_for_queue(topic: &str, queue_id: u32, shard_count: u32) -> u32 {
    assert!(shard_count > 0, "a broker has at least one shard");
    ((u64::from(fnv1a32(topic.as_bytes())) + u64::from(queue_id)) % u64::from(shard_count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(shard_for_queue("anything", 5, 1), 0);
    }

    #[test]
    fn queues_spread_evenly() {
        for shards in 1..=8u32 {
            let mut counts = vec![0; shards as usize];
            for q in 0..(shards * 4) {
                counts[shard_for_queue("orders", q, shards) as usize] += 1;
            }
            assert!(
                counts.iter().all(|&c| c == 4),
                "{shards} shards: {counts:?}"
            );
        }
    }
}
