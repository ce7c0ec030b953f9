//! Questions the HTTP thread asks a shard, and the task on each shard that answers them.
//!
//! Each shard has a bounded channel of [`ShardQuery`]s; every query carries the sender its
//! answer goes back on. The HTTP thread waits for an answer a bounded time and goes on
//! without a shard that does not answer, so a stuck shard cannot hang a scrape for good.

use std::rc::Rc;

use crate::ops::dashboard_data;
use crate::ops::metrics::snapshot::{self, ShardSnapshot};
use crate::server::context::ShardContext;

/// Queries waiting for a shard at most; a scraper that floods them gets refused at once.
pub const QUERY_QUEUE_DEPTH: usize = 64;

/// A JSON answer, or why there is none (shown to the dashboard's user).
pub type JsonReply = flume::Sender<Result<serde_json::Value, String>>;

pub enum ShardQuery {
    Snapshot(flume::Sender<ShardSnapshot>),
    /// Every consumer group (any shard answers for all).
    Groups(JsonReply),
    /// A queue's messages from an offset (any shard answers; the owner reads).
    Messages {
        topic: String,
        queue_id: u32,
        offset: u64,
        max: u32,
        reply: JsonReply,
    },
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
            // Answered in tasks of their own: they wait on other shards and the disk.
            ShardQuery::Groups(reply) => {
                let ctx = ctx.clone();
                glommio::spawn_local(async move {
                    let _ = reply.send(dashboard_data::groups(&ctx.core).await);
                })
                .detach();
            }
            ShardQuery::Messages {
                topic,
                queue_id,
                offset,
                max,
                reply,
            } => {
                let ctx = ctx.clone();
                glommio::spawn_local(async move {
                    let answer =
                        dashboard_data::messages(&ctx.core, &topic, queue_id, offset, max).await;
                    let _ = reply.send(answer);
                })
                .detach();
            }
        }
    }
}
