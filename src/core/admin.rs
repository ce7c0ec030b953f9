//! Topic administration through the core: create, update, delete, and each queue's status.
//! Registry changes write a file, so they run on a blocking thread, never on the shard's
//! executor. A delete frees the topic's queues on every shard before it returns.

use shardmq_protocol::routing::shard_for_queue;

use super::error::CoreResult;
use super::remote::RemoteCall;
use super::topics::PERM_READ_WRITE;
use super::topics::{Topic, TopicChange};
use super::Core;

/// Where one queue of a topic stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    pub queue_id: u32,
    pub shard_id: u32,
    pub min_offset: u64,
    pub max_offset: u64,
}

impl Core {
    pub async fn create_topic(&self, name: &str, queues: u32, perm: u8) -> CoreResult<Topic> {
        let registry = self.topics.registry().clone();
        let owned = name.to_string();
        let topic = glommio::executor()
            .spawn_blocking(move || registry.create(&owned, queues, perm, false))
            .await?;
        tracing::info!(shard = self.shard_id, topic = %topic.name, queues = topic.queues, id = topic.topic_id, "topic created");
        Ok(topic)
    }

    /// A system topic (`%RETRY%<group>` and the like), created with `queues` queues if it does
    /// not exist yet.
    pub async fn ensure_system_topic(
        &self,
        name: &str,
        queues: u32,
    ) -> CoreResult<std::rc::Rc<Topic>> {
        if let Some(topic) = self.topics.get(name) {
            return Ok(topic);
        }
        let registry = self.topics.registry().clone();
        let owned = name.to_string();
        let created = glommio::executor()
            .spawn_blocking(move || registry.create(&owned, queues, PERM_READ_WRITE, true))
            .await;
        match created {
            Ok(topic) => {
                tracing::info!(shard = self.shard_id, topic = %topic.name, queues, "system topic created");
            }
            Err(super::topics::TopicError::Exists(_)) => {}
            Err(err) => return Err(err.into()),
        }
        self.topic(name)
    }

    pub async fn update_topic(&self, name: &str, change: TopicChange) -> CoreResult<Topic> {
        let registry = self.topics.registry().clone();
        let owned = name.to_string();
        let topic = glommio::executor()
            .spawn_blocking(move || registry.update(&owned, change))
            .await?;
        tracing::info!(shard = self.shard_id, topic = %topic.name, queues = topic.queues, perm = topic.perm, "topic updated");
        Ok(topic)
    }

    /// Deletes a topic: out of the registry first (no new produce or pull finds it), then its
    /// queues' indexes on every shard.
    pub async fn delete_topic(&self, name: &str) -> CoreResult<Topic> {
        let registry = self.topics.registry().clone();
        let owned = name.to_string();
        let topic = glommio::executor()
            .spawn_blocking(move || registry.delete(&owned, false))
            .await?;
        let (topic_id, queues) = (topic.topic_id, topic.queues);
        self.drop_topic_data(topic_id, queues).await;
        self.call_peers(|| RemoteCall::DropTopicData { topic_id, queues })
            .await?;
        tracing::info!(shard = self.shard_id, topic = %topic.name, id = topic_id, "topic deleted");
        Ok(topic)
    }

    /// Frees this shard's queues of a deleted topic.
    pub(crate) async fn drop_topic_data(&self, topic_id: u32, queues: u32) {
        self.store
            .consumer_offsets()
            .remove(|key| key.topic_id == topic_id);
        for queue_id in 0..queues {
            if let Err(err) = self.store.delete_queue(topic_id, queue_id).await {
                tracing::warn!(shard = self.shard_id, topic_id, queue_id, error = %err, "cannot remove a deleted queue's index; it is removed at the next start");
            }
        }
    }

    /// Every queue of a topic with its shard and offsets.
    pub async fn topic_status(
        &self,
        name: &str,
    ) -> CoreResult<(std::rc::Rc<Topic>, Vec<QueueStatus>)> {
        let topic = self.topic(name)?;
        let mut queues = Vec::with_capacity(topic.queues as usize);
        for queue_id in 0..topic.queues {
            let (min_offset, max_offset) = self.queue_offsets(name, queue_id).await?;
            queues.push(QueueStatus {
                queue_id,
                shard_id: shard_for_queue(name, queue_id, self.shard_count),
                min_offset,
                max_offset,
            });
        }
        Ok((topic, queues))
    }
}
