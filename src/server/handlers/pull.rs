//! Pull: whole stored batches from a queue, starting with the one that holds the asked offset.
//! With `wait_ms > 0` and nothing at the offset yet, the connection parks the request (long
//! poll) and calls [`pull`] again when data arrives, the wait ends or shutdown begins.

use shardmq_protocol::limits::PULL_WAIT_MS_MAX;
use shardmq_protocol::messages::{Pull, PullReply};

use super::Reply;
use crate::limits::PULL_BYTES_MAX;
use crate::server::context::ShardContext;
use crate::server::error::HandlerError;

pub enum PullOutcome {
    Ready(Reply),
    /// Nothing yet: wait up to this many ms for the queue to reach the offset, then pull again.
    Wait {
        topic_id: u32,
        wait_ms: u32,
    },
}

pub async fn pull(
    ctx: &ShardContext,
    request: &Pull,
    may_wait: bool,
) -> Result<PullOutcome, HandlerError> {
    let topic = ctx.owned_queue(&request.topic, request.queue_id)?;
    if request.wait_ms > PULL_WAIT_MS_MAX {
        return Err(HandlerError::InvalidArgument(format!(
            "wait_ms {} exceeds {PULL_WAIT_MS_MAX}",
            request.wait_ms
        )));
    }
    let max_messages = request.max_messages.max(1);
    let max_bytes = request.max_bytes.clamp(1, PULL_BYTES_MAX);
    let outcome = ctx
        .store
        .read(
            topic.topic_id,
            request.queue_id,
            request.offset,
            max_messages,
            max_bytes,
        )
        .await?;
    if outcome.batches.is_empty() && may_wait && request.wait_ms > 0 {
        return Ok(PullOutcome::Wait {
            topic_id: topic.topic_id,
            wait_ms: request.wait_ms,
        });
    }
    let meta = PullReply {
        batch_count: outcome.batches.len() as u32,
        next_offset: outcome.next_offset,
        max_offset: outcome.max_offset,
    };
    Ok(PullOutcome::Ready(Reply::with_data(&meta, outcome.batches)))
}
