//! QueueOffsets: the first and one-past-last offsets of a queue this shard owns.

use shardmq_protocol::messages::{QueueOffsets, QueueOffsetsReply};

use super::Reply;
use crate::server::context::ShardContext;
use crate::server::error::HandlerError;

pub fn queue_offsets(ctx: &ShardContext, request: &QueueOffsets) -> Result<Reply, HandlerError> {
    let topic = ctx.owned_queue(&request.topic, request.queue_id)?;
    let (min_offset, max_offset) = ctx.store.offsets(topic.topic_id, request.queue_id);
    Reply::meta(&QueueOffsetsReply {
        min_offset,
        max_offset,
    })
}
