//! Producing: a validated batch appended to the queue's log on the shard that owns it.
//!
//! The front end validates the batch once (`ValidatedBatch`); this checks the topic (it exists,
//! or is created when auto-creation is on; the queue exists; the topic is writable), then
//! appends on the owning shard — here, or there over the mesh. When the acknowledgement may be
//! sent is the store's decision, handed back as an [`Ack`]: a local produce under
//! `flush = sync` returns [`Ack::AfterSync`] so the front end can queue the reply behind the
//! fdatasync while it keeps reading the batches that will share it; a forwarded produce is
//! answered by the owner only once acknowledgeable, so it always comes back [`Ack::Now`].

use shardmq_protocol::ValidatedBatch;
use shardmq_shards::durability::Appended;

use super::error::{CoreError, CoreResult};
use super::remote::{RemoteCall, RemoteReply};
use super::topics::{Topic, PERM_READ_WRITE};
use super::Core;

/// When a produce may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Now,
    /// Once `ShardStore::acknowledgeable(end)` resolves on this shard.
    AfterSync(Appended),
}

/// A stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub queue_id: u32,
    /// Queue offset of the first record; the batch holds `base_offset..base_offset + count`.
    pub base_offset: u64,
    pub count: u32,
    /// Log position of the batch on its shard (RocketMQ's physical offset of the first record).
    pub position: u64,
    pub shard_id: u32,
    pub store_ms: u64,
    pub ack: Ack,
}

impl Core {
    /// Appends `batch` to `(topic, queue_id)`, on whichever shard owns it.
    pub async fn produce(
        &self,
        topic: &str,
        queue_id: u32,
        batch: ValidatedBatch,
    ) -> CoreResult<Produced> {
        if self.is_shutting_down() {
            return Err(CoreError::ShuttingDown);
        }
        self.writable_topic(topic, queue_id).await?;
        let owner = self.owner(topic, queue_id);
        if owner == self.shard_id {
            return self.produce_here(topic, queue_id, batch).await;
        }
        let call = RemoteCall::Produce {
            topic: topic.to_string(),
            queue_id,
            batch,
        };
        match self.call(owner, call).await? {
            RemoteReply::Produced(result) => result,
            other => Err(other.unexpected(owner)),
        }
    }

    /// Waits, on this shard, until `produced` may be acknowledged; it then says so (`Ack::Now`).
    /// For callers that answer from elsewhere (the mesh, the gRPC thread) and so cannot queue
    /// their reply behind the fdatasync.
    pub async fn acknowledged(&self, mut produced: Produced) -> CoreResult<Produced> {
        if let Ack::AfterSync(end) = produced.ack {
            self.store.acknowledgeable(end).await?;
            produced.ack = Ack::Now;
        }
        Ok(produced)
    }

    /// The topic a produce goes to: created first if it does not exist and auto-creation is
    /// on (with `default_topic_queues` queues), else `TopicNotFound`.
    pub async fn topic_for_produce(&self, name: &str) -> CoreResult<std::rc::Rc<Topic>> {
        if self.topics.get(name).is_none() && self.config.auto_create_topics {
            let queues = self.config.default_topic_queues;
            match self.create_topic(name, queues, PERM_READ_WRITE).await {
                Ok(_) | Err(CoreError::Topic(super::topics::TopicError::Exists(_))) => {}
                Err(err) => return Err(err),
            }
        }
        self.topic(name)
    }

    /// The topic, created first if it does not exist and auto-creation is on; checked to have
    /// the queue and to be writable.
    async fn writable_topic(&self, name: &str, queue_id: u32) -> CoreResult<std::rc::Rc<Topic>> {
        self.topic_for_produce(name).await?;
        let topic = self.topic_queue(name, queue_id)?;
        if !topic.writable() {
            return Err(CoreError::NoPermission {
                topic: name.to_string(),
                what: "writable",
            });
        }
        Ok(topic)
    }

    /// The append itself, on the owning shard.
    pub(crate) async fn produce_here(
        &self,
        topic: &str,
        queue_id: u32,
        batch: ValidatedBatch,
    ) -> CoreResult<Produced> {
        assert_eq!(
            self.owner(topic, queue_id),
            self.shard_id,
            "a produce runs on the shard that owns its queue"
        );
        let topic = self.topic_queue(topic, queue_id)?;
        let bytes = batch.len() as u64;
        let appended = self.store.append(topic.topic_id, queue_id, batch).await?;
        self.metrics
            .produced(topic.topic_id, u64::from(appended.count), bytes);
        let ack = if self.store.acknowledgement_waits() {
            Ack::AfterSync(appended.end)
        } else {
            Ack::Now
        };
        Ok(Produced {
            queue_id,
            base_offset: appended.base_offset,
            count: appended.count,
            position: appended.position,
            shard_id: self.shard_id,
            store_ms: appended.store_ms,
            ack,
        })
    }
}

/// The queue a batch goes to when the broker picks it: its message group's (a hash, so a
/// group's messages stay in one queue, in order), or the next in turn (`turn` counts sends).
pub fn queue_for(group: Option<&str>, queues: u32, turn: u64) -> u32 {
    assert!(queues > 0, "a topic has at least one queue");
    match group {
        Some(g) => (xxhash_rust::xxh3::xxh3_64(g.as_bytes()) % u64::from(queues)) as u32,
        None => (turn % u64::from(queues)) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_keeps_its_queue_and_others_take_turns() {
        let q = queue_for(Some("order-7"), 8, 0);
        for turn in 0..20 {
            assert_eq!(queue_for(Some("order-7"), 8, turn), q);
        }
        let turns: Vec<u32> = (0..8).map(|t| queue_for(None, 4, t)).collect();
        assert_eq!(turns, [0, 1, 2, 3, 0, 1, 2, 3]);
    }
}
