//! Small calls about one queue, served by the shard that owns it: the queue's offsets, consumer
//! offsets (commit, query, reset, first-start), searches by store time. Each is a [`QueueOp`];
//! [`Core::queue_op`] runs it here or forwards it to the owner over the mesh, so every front end
//! reaches every queue through one path.
//!
//! Consumer offsets keep RocketMQ's rules: a commit never moves an offset backward (a reset
//! does); a group with no stored offset starts where its policy says — the first offset, the
//! last one (RocketMQ's `CONSUME_FROM_LAST_OFFSET`: offset 0 when the queue still starts at 0
//! with that record in memory, otherwise the end), or the first record stored at or after a
//! time. Broadcasting members keep their own offsets under `group@member`.

use std::rc::Rc;

use shardmq_shards::consumer_offsets::OffsetKey;

use super::error::CoreResult;
use super::remote::{RemoteCall, RemoteReply};
use super::Core;

/// The group an offset owner names: `group` itself, or `group` for a broadcasting member's
/// `group@member`. Group checks (existence, permissions, ACL) are made on this.
pub fn offset_owner_group(owner: &str) -> &str {
    owner.split('@').next().unwrap_or_default()
}

/// Where a consumer with no stored offset starts (RocketMQ's `ConsumeFromWhere`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    First,
    Last,
    /// The first record stored at or after this time (ms since the epoch).
    Timestamp(u64),
}

/// Where a reset moves offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    /// The first record stored at or after this time.
    Timestamp(u64),
}

/// One call about one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOp {
    /// `(min, max)` offsets.
    Offsets,
    Commit {
        group: String,
        offset: u64,
    },
    Query {
        group: String,
    },
    /// Moves the group's offset (and its broadcasting members' own) to `to`, backward too.
    Reset {
        group: String,
        to: ResetTarget,
    },
    /// The stored offset, or where `from` says a new consumer starts.
    Initial {
        group: String,
        from: StartFrom,
    },
    SearchByTime {
        timestamp_ms: u64,
    },
    EarliestStoreTime,
    /// When the record at `offset` was stored (`None` past the end).
    StoreTimeAt {
        offset: u64,
    },
    /// Take or renew the group's lock of the queue for `member_id` (orderly consumption).
    Lock {
        group: String,
        member_id: String,
    },
    Unlock {
        group: String,
        member_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueAnswer {
    Offsets { min: u64, max: u64 },
    Committed(bool),
    Offset(Option<u64>),
    Done,
    Time(Option<u64>),
    Locked(bool),
}

impl Core {
    /// Runs `op` for `(topic, queue_id)` on the shard that owns the queue.
    pub async fn queue_op(
        &self,
        topic: &str,
        queue_id: u32,
        op: QueueOp,
    ) -> CoreResult<QueueAnswer> {
        let owner = self.owner(topic, queue_id);
        if owner == self.shard_id {
            return self.queue_op_here(topic, queue_id, op).await;
        }
        let call = RemoteCall::Queue {
            topic: topic.to_string(),
            queue_id,
            op,
        };
        match self.call(owner, call).await? {
            RemoteReply::Queue(result) => result,
            other => Err(other.unexpected(owner)),
        }
    }

    pub(crate) async fn queue_op_here(
        &self,
        topic: &str,
        queue_id: u32,
        op: QueueOp,
    ) -> CoreResult<QueueAnswer> {
        assert_eq!(
            self.owner(topic, queue_id),
            self.shard_id,
            "a queue call runs on its owner"
        );
        let topic_id = self.topic_queue(topic, queue_id)?.topic_id;
        let key = |group: String| OffsetKey {
            group: Rc::from(group),
            topic_id,
            queue_id,
        };
        let offsets = self.store.consumer_offsets();
        Ok(match op {
            QueueOp::Offsets => {
                let (min, max) = self.store.offsets(topic_id, queue_id);
                QueueAnswer::Offsets { min, max }
            }
            QueueOp::Commit { group, offset } => {
                let (_, max) = self.store.offsets(topic_id, queue_id);
                let moved = offsets.commit(key(group), offset.min(max));
                offsets.durable().await?;
                QueueAnswer::Committed(moved)
            }
            QueueOp::Query { group } => QueueAnswer::Offset(offsets.get(&key(group))),
            QueueOp::Reset { group, to } => {
                let (min, max) = self.store.offsets(topic_id, queue_id);
                let offset = match to {
                    ResetTarget::Earliest => min,
                    ResetTarget::Latest => max,
                    ResetTarget::Timestamp(ms) => {
                        self.store.offset_by_time(topic_id, queue_id, ms).await?
                    }
                };
                let members = format!("{group}@");
                let own = offsets.entries(|k| {
                    k.topic_id == topic_id
                        && k.queue_id == queue_id
                        && k.group.starts_with(&members)
                });
                for (member_key, _) in own {
                    offsets.reset(member_key, offset);
                }
                offsets.reset(key(group), offset);
                offsets.durable().await?;
                QueueAnswer::Offset(Some(offset))
            }
            QueueOp::Initial { group, from } => {
                let stored = offsets.get(&key(group));
                let offset = match stored {
                    Some(offset) => offset,
                    None => self.first_start(topic_id, queue_id, from).await?,
                };
                QueueAnswer::Offset(Some(offset))
            }
            QueueOp::SearchByTime { timestamp_ms } => QueueAnswer::Offset(Some(
                self.store
                    .offset_by_time(topic_id, queue_id, timestamp_ms)
                    .await?,
            )),
            QueueOp::EarliestStoreTime => {
                QueueAnswer::Time(self.store.earliest_store_time(topic_id, queue_id).await?)
            }
            QueueOp::StoreTimeAt { offset } => {
                QueueAnswer::Time(self.store.store_time_at(topic_id, queue_id, offset).await?)
            }
            QueueOp::Lock { group, member_id } => QueueAnswer::Locked(self.locks.lock(
                &group,
                topic_id,
                queue_id,
                &member_id,
                std::time::Instant::now(),
            )),
            QueueOp::Unlock { group, member_id } => {
                QueueAnswer::Locked(self.locks.unlock(&group, topic_id, queue_id, &member_id))
            }
        })
    }

    /// Where a consumer with no stored offset starts.
    async fn first_start(&self, topic_id: u32, queue_id: u32, from: StartFrom) -> CoreResult<u64> {
        let (min, max) = self.store.offsets(topic_id, queue_id);
        Ok(match from {
            StartFrom::First => min,
            StartFrom::Last => {
                let starts_in_memory =
                    min == 0 && self.store.offset_in_memory(topic_id, queue_id, 0).await?;
                if starts_in_memory {
                    0
                } else {
                    max
                }
            }
            StartFrom::Timestamp(ms) => self.store.offset_by_time(topic_id, queue_id, ms).await?,
        })
    }

    /// The queue's `(min, max)` offsets, from the shard that owns it.
    pub async fn queue_offsets(&self, topic: &str, queue_id: u32) -> CoreResult<(u64, u64)> {
        match self.queue_op(topic, queue_id, QueueOp::Offsets).await? {
            QueueAnswer::Offsets { min, max } => Ok((min, max)),
            other => Err(unexpected(other)),
        }
    }

    /// Commits a group's offset (never moving it back); true if it moved.
    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> CoreResult<bool> {
        let op = QueueOp::Commit {
            group: group.to_string(),
            offset,
        };
        match self.queue_op(topic, queue_id, op).await? {
            QueueAnswer::Committed(moved) => Ok(moved),
            other => Err(unexpected(other)),
        }
    }

    /// Takes (`lock`) or releases the group's locks of `queues` for a member; returns the
    /// queues the member holds afterwards (RocketMQ's `LOCK_BATCH_MQ` answer).
    pub async fn lock_queues(
        &self,
        group: &str,
        member_id: &str,
        queues: &[(String, u32)],
        lock: bool,
    ) -> CoreResult<Vec<(String, u32)>> {
        Self::check_group(group)?;
        let mut held = Vec::new();
        for (topic, queue_id) in queues {
            let (group, member_id) = (group.to_string(), member_id.to_string());
            let op = if lock {
                QueueOp::Lock { group, member_id }
            } else {
                QueueOp::Unlock { group, member_id }
            };
            match self.queue_op(topic, *queue_id, op).await? {
                QueueAnswer::Locked(true) if lock => held.push((topic.clone(), *queue_id)),
                QueueAnswer::Locked(_) => {}
                other => return Err(unexpected(other)),
            }
        }
        Ok(held)
    }

    /// A queue op whose answer is an offset.
    pub async fn offset_op(
        &self,
        topic: &str,
        queue_id: u32,
        op: QueueOp,
    ) -> CoreResult<Option<u64>> {
        match self.queue_op(topic, queue_id, op).await? {
            QueueAnswer::Offset(offset) => Ok(offset),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(answer: QueueAnswer) -> super::CoreError {
    tracing::error!(?answer, "a queue call got an answer of another kind");
    super::CoreError::InvalidArgument("internal: unexpected answer to a queue call".into())
}
