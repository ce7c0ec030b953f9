//! [`ShardMetrics`]: what one shard's core and front ends count, in `Cell`s on that shard.
//!
//! Recording is an add, or a histogram observation, into small tables keyed by `&'static str`
//! labels (request kinds and rejection reasons are a fixed vocabulary) or topic ids; a table
//! grows only when a label or topic is first seen. Topics are few (the registry's bound), so
//! the per-topic table is bounded with it. Nothing here allocates per request.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use shardmq_shards::stats::{Histogram, HistogramSnapshot};

/// Per topic: what was produced to and consumed from this shard's queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub produced_messages: u64,
    pub produced_bytes: u64,
    pub consumed_messages: u64,
    pub consumed_bytes: u64,
}

/// A small table keyed by `(protocol, label)`, found by a linear scan (a few dozen entries).
struct Labelled<T> {
    rows: RefCell<Vec<((&'static str, &'static str), T)>>,
}

impl<T: Default> Labelled<T> {
    fn new() -> Self {
        Labelled {
            rows: RefCell::new(Vec::new()),
        }
    }

    fn with(&self, key: (&'static str, &'static str), f: impl FnOnce(&T)) {
        let mut rows = self.rows.borrow_mut();
        let at = match rows.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                rows.push((key, T::default()));
                rows.len() - 1
            }
        };
        f(&rows[at].1);
    }
}

/// The request kinds that produce, in every protocol (the names `Protocol::handle` reports):
/// what the dashboard's produce latency sums.
pub const PRODUCE_KINDS: [&str; 4] = [
    "produce",
    "SEND_MESSAGE",
    "SEND_MESSAGE_V2",
    "SEND_BATCH_MESSAGE",
];

pub struct ShardMetrics {
    topics: RefCell<HashMap<u32, TopicCounts>>,
    requests: Labelled<Histogram>,
    rejected: Labelled<Cell<u64>>,
    accepted: Labelled<Cell<u64>>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            topics: RefCell::new(HashMap::new()),
            requests: Labelled::new(),
            rejected: Labelled::new(),
            accepted: Labelled::new(),
        }
    }
}

/// The numbers of a [`ShardMetrics`] at one moment (`Send`).
#[derive(Debug, Clone, Default)]
pub struct ShardMetricsSnapshot {
    pub topics: Vec<(u32, TopicCounts)>,
    /// `(protocol, request kind)` and its latency histogram.
    pub requests: Vec<((&'static str, &'static str), HistogramSnapshot)>,
    /// `(protocol, reason)` and how many requests were refused for it.
    pub rejected: Vec<((&'static str, &'static str), u64)>,
    /// `(protocol, "")` and how many connections were accepted.
    pub accepted: Vec<(&'static str, u64)>,
}

fn bump(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

impl ShardMetrics {
    pub fn produced(&self, topic_id: u32, messages: u64, bytes: u64) {
        let mut topics = self.topics.borrow_mut();
        let t = topics.entry(topic_id).or_default();
        t.produced_messages += messages;
        t.produced_bytes += bytes;
    }

    pub fn consumed(&self, topic_id: u32, messages: u64, bytes: u64) {
        let mut topics = self.topics.borrow_mut();
        let t = topics.entry(topic_id).or_default();
        t.consumed_messages += messages;
        t.consumed_bytes += bytes;
    }

    /// A request of `kind` over `protocol` was handled in `took` (until its reply was queued).
    pub fn request(&self, protocol: &'static str, kind: &'static str, took: Duration) {
        self.requests.with((protocol, kind), |h| h.observe(took));
    }

    pub fn rejected(&self, protocol: &'static str, reason: &'static str) {
        self.rejected.with((protocol, reason), |c| bump(c, 1));
    }

    pub fn accepted(&self, protocol: &'static str) {
        self.accepted.with((protocol, ""), |c| bump(c, 1));
    }

    pub fn snapshot(&self) -> ShardMetricsSnapshot {
        let mut topics: Vec<_> = self.topics.borrow().iter().map(|(k, v)| (*k, *v)).collect();
        topics.sort_by_key(|(k, _)| *k);
        ShardMetricsSnapshot {
            topics,
            requests: self
                .requests
                .rows
                .borrow()
                .iter()
                .map(|(k, h)| (*k, h.snapshot()))
                .collect(),
            rejected: self
                .rejected
                .rows
                .borrow()
                .iter()
                .map(|(k, c)| (*k, c.get()))
                .collect(),
            accepted: self
                .accepted
                .rows
                .borrow()
                .iter()
                .map(|((p, _), c)| (*p, c.get()))
                .collect(),
        }
    }
}
