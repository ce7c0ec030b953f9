//! One shard's numbers for one scrape, built on that shard and sent to the HTTP thread.
//!
//! The HTTP thread asks each shard over its query channel (`ops::query`) and waits (bounded)
//! for the [`ShardSnapshot`] that comes back: a copy of plain numbers, so nothing of a shard is
//! shared with the scraper and a slow scrape costs a shard only the copy.

use std::collections::HashMap;

use shardmq_shards::stats::StoreStatsSnapshot;

use super::shard::ShardMetricsSnapshot;
use crate::server::context::ShardContext;

/// A queue this shard owns: its offsets now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub topic: String,
    pub queue_id: u32,
    pub min_offset: u64,
    pub max_offset: u64,
}

/// A consumer group's committed offset of a queue this shard owns, and the queue's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagRow {
    pub group: String,
    pub topic: String,
    pub queue_id: u32,
    pub committed: u64,
    pub max_offset: u64,
}

impl LagRow {
    pub fn lag(&self) -> u64 {
        self.max_offset.saturating_sub(self.committed)
    }
}

/// A topic as every shard's registry view has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRow {
    pub name: String,
    pub topic_id: u32,
    pub queues: u32,
    pub perm: u8,
}

#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub shard_id: u32,
    pub topics: Vec<TopicRow>,
    pub store: StoreStatsSnapshot,
    pub metrics: ShardMetricsSnapshot,
    pub topic_names: HashMap<u32, String>,
    pub open_connections: u64,
    pub queues: Vec<QueueRow>,
    pub lag: Vec<LagRow>,
}

impl ShardSnapshot {
    /// The topic's name, or its id for a topic deleted since it was counted.
    pub fn topic_name(&self, topic_id: u32) -> String {
        self.topic_names
            .get(&topic_id)
            .cloned()
            .unwrap_or_else(|| format!("#{topic_id}"))
    }
}

/// Builds this shard's snapshot now.
pub fn take(ctx: &ShardContext) -> ShardSnapshot {
    let core = &ctx.core;
    let store = &core.store;
    let topics: Vec<TopicRow> = core
        .topics
        .list()
        .iter()
        .map(|t| TopicRow {
            name: t.name.clone(),
            topic_id: t.topic_id,
            queues: t.queues,
            perm: t.perm,
        })
        .collect();
    let topic_names: HashMap<u32, String> = topics
        .iter()
        .map(|t| (t.topic_id, t.name.clone()))
        .collect();
    let mut queues: Vec<QueueRow> = store
        .queue_keys()
        .into_iter()
        .filter_map(|(topic_id, queue_id)| {
            let topic = topic_names.get(&topic_id)?.clone();
            let (min_offset, max_offset) = store.offsets(topic_id, queue_id);
            Some(QueueRow {
                topic,
                queue_id,
                min_offset,
                max_offset,
            })
        })
        .collect();
    queues.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
    let lag = store
        .consumer_offsets()
        .entries(|_| true)
        .into_iter()
        .filter_map(|(key, committed)| {
            let topic = topic_names.get(&key.topic_id)?.clone();
            Some(LagRow {
                group: key.group.to_string(),
                topic,
                queue_id: key.queue_id,
                committed,
                max_offset: store.offsets(key.topic_id, key.queue_id).1,
            })
        })
        .collect();
    ShardSnapshot {
        shard_id: core.shard_id,
        topics,
        store: store.stats(),
        metrics: core.metrics.snapshot(),
        topic_names,
        open_connections: ctx.open_connections(),
        queues,
        lag,
    }
}
