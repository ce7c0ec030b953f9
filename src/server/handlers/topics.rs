//! CreateTopic, ListTopics, ShardMap: metadata requests any shard serves.

use shardmq_protocol::messages::{CreateTopic, ShardMap, TopicList};
use shardmq_protocol::routing::ROUTING_NAME;

use super::Reply;
use crate::server::context::ShardContext;
use crate::server::error::HandlerError;

/// Creates the topic in the shared registry. The registry writes its file, so this runs on a
/// blocking thread, not on the shard's executor.
pub async fn create_topic(ctx: &ShardContext, request: CreateTopic) -> Result<Reply, HandlerError> {
    let registry = ctx.registry().clone();
    let topic = glommio::executor()
        .spawn_blocking(move || registry.create(&request.name, request.queues))
        .await?;
    tracing::info!(shard = ctx.shard_id, topic = %topic.name, queues = topic.queues, id = topic.topic_id, "topic created");
    Reply::meta(&topic)
}

pub fn list_topics(ctx: &ShardContext) -> Result<Reply, HandlerError> {
    Reply::meta(&TopicList {
        topics: ctx.registry().list(),
    })
}

pub fn shard_map(ctx: &ShardContext) -> Result<Reply, HandlerError> {
    Reply::meta(&ShardMap {
        shard_count: ctx.shard_count,
        routing: ROUTING_NAME.to_string(),
        serving_shard: ctx.shard_id,
    })
}
