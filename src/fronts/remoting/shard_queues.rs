//! How a stock RocketMQ client sees a shardmq broker: each shard is a broker of its own
//! (`DESIGN.md` §3 "RocketMQ clients and shards"), with its own name, its own remoting address,
//! and the queues it owns, numbered from 0 as every RocketMQ broker numbers its queues.
//!
//! The mapping is pure arithmetic over `routing::shard_for_queue`, which puts queue q of a topic
//! on shard `(h + q) mod S` (h the topic's hash): shard k owns the global queues
//! `first(k), first(k) + S, first(k) + 2S, …` with `first(k) = (k − h) mod S`, and its local
//! queue j is global `first(k) + j·S`. Growing a topic appends local queues on every shard and
//! never renumbers an existing one, so offsets committed through either protocol stay attached to
//! the same queue.
//!
//! Broker names: `<name>-<k>`, k zero-padded to at least two digits so that RocketMQ clients,
//! which sort queues by broker name, see the shards in shard order.

use shardmq_protocol::routing::fnv1a32;

/// The queues of topics on one shard, as RocketMQ clients number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardQueues {
    pub shard_id: u32,
    pub shard_count: u32,
}

impl ShardQueues {
    pub fn new(shard_id: u32, shard_count: u32) -> ShardQueues {
        assert!(shard_id < shard_count, "shard {shard_id} of {shard_count}");
        ShardQueues {
            shard_id,
            shard_count,
        }
    }

    /// The first global queue of `topic` this shard owns (which may not exist yet).
    fn first(&self, topic: &str) -> u64 {
        let s = u64::from(self.shard_count);
        let h = u64::from(fnv1a32(topic.as_bytes())) % s;
        (u64::from(self.shard_id) + s - h) % s
    }

    /// How many of the topic's `global_queues` this shard owns.
    pub fn local_count(&self, topic: &str, global_queues: u32) -> u32 {
        let first = self.first(topic);
        let total = u64::from(global_queues);
        if first >= total {
            return 0;
        }
        ((total - first).div_ceil(u64::from(self.shard_count))) as u32
    }

    /// The global queue of local queue `local`; `None` beyond the topic's queues.
    pub fn global(&self, topic: &str, local: u32, global_queues: u32) -> Option<u32> {
        let global = self.first(topic) + u64::from(local) * u64::from(self.shard_count);
        (global < u64::from(global_queues)).then_some(global as u32)
    }

    /// The local number of global queue `global`, if this shard owns it.
    pub fn local(&self, topic: &str, global: u32) -> Option<u32> {
        let first = self.first(topic);
        let s = u64::from(self.shard_count);
        let g = u64::from(global);
        (g >= first && (g - first).is_multiple_of(s)).then(|| ((g - first) / s) as u32)
    }
}

/// The RocketMQ broker name of shard `shard_id` of broker `name`.
pub fn broker_name(name: &str, shard_id: u32, shard_count: u32) -> String {
    let width = (shard_count.saturating_sub(1).max(1)).ilog10() as usize + 1;
    format!("{name}-{shard_id:0width$}", width = width.max(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_protocol::routing::shard_for_queue;

    #[test]
    fn local_and_global_numbers_agree_with_the_routing_function() {
        for shards in 1..=5u32 {
            for topic in ["orders", "a", "TBW102", "%RETRY%g"] {
                for queues in 0..=13u32 {
                    let mut seen = vec![false; queues as usize];
                    for k in 0..shards {
                        let view = ShardQueues::new(k, shards);
                        let count = view.local_count(topic, queues);
                        for j in 0..count {
                            let g = view.global(topic, j, queues).expect("within the topic");
                            assert_eq!(shard_for_queue(topic, g, shards), k);
                            assert_eq!(view.local(topic, g), Some(j));
                            assert!(!seen[g as usize], "{g} twice");
                            seen[g as usize] = true;
                        }
                        assert_eq!(view.global(topic, count, queues), None);
                    }
                    assert!(seen.iter().all(|&s| s), "{topic} {queues} over {shards}");
                }
            }
        }
    }

    #[test]
    fn growing_a_topic_keeps_local_numbers() {
        let view = ShardQueues::new(1, 3);
        let before: Vec<_> = (0..view.local_count("t", 8))
            .map(|j| view.global("t", j, 8))
            .collect();
        let after: Vec<_> = (0..view.local_count("t", 16))
            .map(|j| view.global("t", j, 16))
            .collect();
        assert_eq!(&after[..before.len()], &before[..]);
    }

    #[test]
    fn broker_names_sort_in_shard_order() {
        assert_eq!(broker_name("b", 3, 4), "b-03");
        assert_eq!(broker_name("b", 0, 1), "b-00");
        let names: Vec<_> = (0..120).map(|k| broker_name("b", k, 120)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[7], "b-007");
    }
}
