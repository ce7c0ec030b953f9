//! The seam between the workload engine and a system under test.
//!
//! A [`Driver`] is created once per bench executor (so it may hold `Rc`s and executor-local
//! connections) and knows how to reach one system: shardmq's native protocol, RocketMQ
//! remoting, Redis Streams, NATS JetStream. It hands out [`Publisher`]s (one per producer) and
//! [`Subscriber`]s (one per queue, positioned at the queue's current end). Everything here is
//! executor-local: the futures are `!Send` by design, which is why the traits use `async fn`
//! without `Send` bounds.
//!
//! Contract the engine relies on:
//! - `publish` resolves once the system acknowledged *all* `count` records of the batch (its
//!   durability is whatever the system was started with), and returns how many it accepted;
//!   any failure is an `Err`, counted by the engine, never hidden.
//! - `publish` may be called again before an earlier call resolved (`--in-flight` > 1).
//! - `poll` returns within about the driver's long-poll wait even when nothing arrives, calling
//!   `each` with every record payload received, in queue order.
#![allow(async_fn_in_trait)] // executor-local futures, never sent across threads

use super::group::GroupRun;
use crate::error::BenchError;

pub trait Driver: 'static {
    type Publisher: Publisher + 'static;
    type Subscriber: Subscriber + 'static;

    /// The system's name in reports (`shardmq`, `rocketmq-rust`, …).
    fn system(&self) -> &'static str;

    /// The topic's queue count (creating the topic where the system needs that).
    async fn queues(&self) -> Result<u32, BenchError>;

    /// A producer, with its connections open, that will publish to `queues`.
    async fn publisher(&self, index: u32, queues: &[u32]) -> Result<Self::Publisher, BenchError>;

    /// A consumer of `queue` from `from`: the queue's first record, or its current end.
    async fn subscriber(&self, queue: u32, from: Position) -> Result<Self::Subscriber, BenchError>;

    /// Member `member` of `members` of the consumer group `group`: joins it, waits until the
    /// group is whole and its assignment settled, and returns a consumer of each queue the
    /// member was given, from the queue's current end, filtering as the group's subscription
    /// says and committing its progress in the group.
    async fn group_subscribers(
        &self,
        group: &GroupRun,
        member: u32,
        members: u32,
    ) -> Result<Vec<Self::Subscriber>, BenchError> {
        let _ = (group, member, members);
        Err(BenchError::InvalidArgs(format!(
            "the bench has no consumer groups for {}",
            self.system()
        )))
    }

    /// Ends what the driver holds open beyond its publishers and subscribers (group members
    /// leave); called once per executor when its part of the run is over.
    async fn close(&self) {}
}

/// Where a [`Subscriber`] starts reading its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The oldest record still stored (draining a backlog).
    Start,
    /// After the newest record stored when it subscribed (end-to-end runs).
    End,
}

pub trait Publisher {
    /// A request's worth of records, encoded for the wire.
    type Batch;

    /// Encodes `count` records, each with `payload` (so a stamp at the start of `payload` is in
    /// every record) and tagged `tag`. Systems without tags are never given one (`--tags` is
    /// refused for them).
    fn encode(&self, count: u32, payload: &[u8], tag: Option<&str>) -> Self::Batch;

    /// Sends `batch` to `queue`; resolves with the records the system acknowledged.
    async fn publish(&self, queue: u32, batch: &Self::Batch) -> Result<u32, BenchError>;
}

pub trait Subscriber {
    /// Waits for the next records of the queue; calls `each` with every payload received and
    /// returns how many there were (0 after a long poll that found nothing).
    async fn poll(&mut self, each: &mut dyn FnMut(&[u8])) -> Result<u64, BenchError>;
}
