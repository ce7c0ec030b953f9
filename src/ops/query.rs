//! Questions the HTTP thread asks a shard, and the task on each shard that answers them.
//!
//! Each shard has a bounded channel of [`ShardQuery`]s; every query carries the sender its
//! answer goes back on. The HTTP thread waits for an answer a bounded time and goes on
//! without a shard that does not answer, so a stuck shard cannot hang a scrape for good.

use std::rc::Rc;

use crate::ops::metrics::snapshot::{self, ShardSnapshot};
use crate::server::context::ShardContext;

/// Queries waiting for a shard at most; a scraper that floods them gets refused at once.
pub const QUERY_QUEUE_DEPTH: usize = 64;

pub enum ShardQuery {
    Snapshot(flume::Sender<ShardSnapshot>),
}

/// One shard's query channel.
pub fn channel() -> (flume::Sender<ShardQuery>, flume::Receiver<ShardQuery>) {
    flume::bounded(QUERY_QUEUE_DEPTH)
}

/// Answers queries until the HTTP thread goes away.
pub async fn serve(ctx: Rc<ShardContext>, queries: flume::Receiver<ShardQuery>) {
    while let Ok(query) = queries.recv_async().await {
        match query {
            ShardQuery::Snapshot(reply) => {
                let _ = reply.send(snapshot::take(&ctx));
            }
        }
    }
}
