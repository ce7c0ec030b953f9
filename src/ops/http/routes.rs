//! What each path answers.

use super::request::Request;
use super::{Response, Shared, SHARD_ANSWER_TIMEOUT};
use crate::ops::metrics::exposition::{self, ProcessStats};
use crate::ops::metrics::snapshot::ShardSnapshot;
use crate::ops::query::ShardQuery;

/// The dashboard: one page, its script and styles inline, no external asset.
const DASHBOARD: &str = include_str!("dashboard.html");

pub fn route(shared: &Shared, req: &Request) -> Response {
    match req.path.as_str() {
        "/metrics" => metrics(shared),
        "/healthz" => Response::text(200, "ok\n"),
        "/" | "/index.html" => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: DASHBOARD.as_bytes().to_vec(),
        },
        "/api/overview" => super::api::overview(shared),
        "/api/topics" => super::api::topics(shared),
        "/api/groups" => super::api::groups(shared),
        "/api/messages" => super::api::messages(shared, req),
        _ => Response::text(404, format!("no page at {}\n", req.path)),
    }
}

/// Every shard's snapshot; a shard that does not answer in time is left out.
pub fn snapshots(shared: &Shared) -> Vec<ShardSnapshot> {
    let pending: Vec<_> = shared
        .shards
        .iter()
        .filter_map(|shard| {
            let (tx, rx) = flume::bounded(1);
            shard.try_send(ShardQuery::Snapshot(tx)).ok().map(|()| rx)
        })
        .collect();
    let deadline = std::time::Instant::now() + SHARD_ANSWER_TIMEOUT;
    pending
        .into_iter()
        .filter_map(|rx| rx.recv_deadline(deadline).ok())
        .collect()
}

fn metrics(shared: &Shared) -> Response {
    let shards = snapshots(shared);
    let process = ProcessStats::read(shared.shards.len() as u32);
    Response {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: exposition::render(&shards, &process).into_bytes(),
    }
}
