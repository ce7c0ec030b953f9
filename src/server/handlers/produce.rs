//! Produce: validate the batch, append it to the owning shard's log, ack with its offsets.
//! Under `flush = sync` the ack is held until an fdatasync covers the batch (the connection's
//! writer waits, so the reader keeps taking requests and many batches share one fdatasync).

use bytes::BytesMut;
use shardmq_protocol::messages::{Produce, ProduceReply};
use shardmq_protocol::ValidatedBatch;

use super::Reply;
use crate::server::context::ShardContext;
use crate::server::error::HandlerError;

pub async fn produce(
    ctx: &ShardContext,
    request: Produce,
    batch: BytesMut,
) -> Result<Reply, HandlerError> {
    let topic = ctx.owned_queue(&request.topic, request.queue_id)?;
    let batch = ValidatedBatch::new(batch).map_err(HandlerError::BadBatch)?;
    let outcome = ctx
        .store
        .append(topic.topic_id, request.queue_id, batch)
        .await?;
    let mut reply = Reply::meta(&ProduceReply {
        base_offset: outcome.base_offset,
        count: outcome.count,
    })?;
    if ctx.store.acknowledgement_waits() {
        reply.wait_synced = Some(outcome.end);
    }
    Ok(reply)
}
