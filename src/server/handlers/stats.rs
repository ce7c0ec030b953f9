//! ShardStats: what the serving shard holds right now (connections, buffered bytes).

use shardmq_protocol::messages::ShardStats;

use super::Reply;
use crate::server::context::ShardContext;
use crate::server::error::HandlerError;

pub fn shard_stats(ctx: &ShardContext) -> Result<Reply, HandlerError> {
    Reply::meta(&ShardStats {
        shard_id: ctx.shard_id,
        connections: ctx.open_connections(),
        request_bytes_buffered: ctx.request_budget.in_use(),
        request_bytes_max: ctx.request_budget.capacity(),
        reply_bytes_queued: ctx.reply_budget.in_use(),
        reply_bytes_max: ctx.reply_budget.capacity(),
    })
}
