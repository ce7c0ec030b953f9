//! Pull: whole stored batches from a queue, starting with the one that holds the asked offset.
//! With `wait_ms > 0` and nothing at the offset yet, the connection parks the request (long
//! poll) and calls [`pull_now`] when data arrives, the wait ends or shutdown begins.

use shardmq_protocol::messages::{Pull, PullReply};
use shardmq_shards::{ReadOutcome, ReadRequest};

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

/// Pulls, asking to park the request when nothing is at the offset, the client asked to wait
/// and the connection `may_park` another poll (otherwise the reply is what is there: nothing).
pub async fn pull(
    ctx: &ShardContext,
    request: &Pull,
    may_park: bool,
) -> Result<PullOutcome, HandlerError> {
    let (topic_id, outcome) = read(ctx, request).await?;
    if outcome.batches.is_empty() && request.wait_ms > 0 && may_park {
        return Ok(PullOutcome::Wait {
            topic_id,
            wait_ms: request.wait_ms,
        });
    }
    Ok(PullOutcome::Ready(reply(outcome)?))
}

/// Pulls and replies with whatever is there, even nothing: the second half of a long poll.
pub async fn pull_now(ctx: &ShardContext, request: &Pull) -> Result<Reply, HandlerError> {
    let (_, outcome) = read(ctx, request).await?;
    reply(outcome)
}

async fn read(ctx: &ShardContext, request: &Pull) -> Result<(u32, ReadOutcome), HandlerError> {
    let topic = ctx.owned_queue(&request.topic, request.queue_id)?;
    let max_messages = request.max_messages.max(1);
    let max_bytes = request.max_bytes.clamp(1, PULL_BYTES_MAX);
    let outcome = ctx
        .store
        .read(
            topic.topic_id,
            request.queue_id,
            ReadRequest {
                offset: request.offset,
                max_messages,
                max_bytes,
            },
        )
        .await?;
    Ok((topic.topic_id, outcome))
}

fn reply(outcome: ReadOutcome) -> Result<Reply, HandlerError> {
    let meta = PullReply {
        batch_count: outcome.batches.len() as u32,
        next_offset: outcome.next_offset,
        max_offset: outcome.max_offset,
    };
    Reply::with_data(
        &meta,
        outcome.batches.into_iter().map(|b| b.bytes).collect(),
    )
}
