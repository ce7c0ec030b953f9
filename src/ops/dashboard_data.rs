//! What the dashboard asks a shard beyond metrics, answered on that shard as JSON: the consumer
//! groups (from the shard every group call goes through) and a queue's messages from an offset
//! (on the shard that owns the queue, through the same pull every consumer uses).
//!
//! Limits: at most [`MESSAGES_MAX`] messages per read and [`BODY_PREVIEW_BYTES`] of each body;
//! bad parameters (no such topic or queue, an offset out of range) answer an error the page
//! shows, never a failure of the shard.

use serde_json::{json, Value};
use shardmq_protocol::BatchView;

use crate::core::groups::{GroupInfo, Mode};
use crate::core::pull::{PullCall, PullStart, PullStatus};
use crate::core::Core;

pub const MESSAGES_MAX: u32 = 100;
pub const BODY_PREVIEW_BYTES: usize = 256;
/// Bytes one read of messages may pull.
const READ_BYTES_MAX: u32 = 4 << 20;

/// Every consumer group with its members, as the dashboard lists them.
pub async fn groups(core: &Core) -> Result<Value, String> {
    let groups = core.list_groups().await.map_err(|e| e.to_string())?;
    Ok(Value::Array(groups.iter().map(group_json).collect()))
}

fn group_json(g: &GroupInfo) -> Value {
    let mode = |m: Mode| match m {
        Mode::Clustering => "clustering",
        Mode::Broadcasting => "broadcasting",
    };
    json!({
        "name": g.name,
        "mode": mode(g.mode),
        "generation": g.generation,
        "subscriptions": g.subscriptions.iter().map(|s| json!({
            "topic": s.topic, "expression": s.filter.expression,
        })).collect::<Vec<_>>(),
        "members": g.members.iter().map(|m| json!({
            "id": m.member_id,
            "protocol": m.protocol,
            "idleMs": m.idle_ms,
            "assignment": m.assignment.iter().map(|(t, q)| format!("{t}:{q}")).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Up to `max` messages of `(topic, queue)` from `offset` (clamped to the queue's start).
pub async fn messages(
    core: &Core,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max: u32,
) -> Result<Value, String> {
    let max = max.clamp(1, MESSAGES_MAX);
    let mut call = PullCall::at_once(topic, queue_id, offset, max, READ_BYTES_MAX);
    let mut pulled = pull_now(core, &call).await?;
    if pulled.status == PullStatus::OffsetTooSmall {
        call.offset = pulled.next_offset;
        pulled = pull_now(core, &call).await?;
    }
    let mut rows = Vec::new();
    for stored in &pulled.batches {
        let view = BatchView::trusted(&stored.bytes).map_err(|e| e.to_string())?;
        let base = view.header.base_offset;
        let store_ms = view.header.append_timestamp_ms;
        for (delta, r) in view.records_trusted().iter() {
            let at = base + delta;
            if at < call.offset || rows.len() >= max as usize {
                continue;
            }
            let body: &[u8] = &r.payload;
            let preview = &body[..body.len().min(BODY_PREVIEW_BYTES)];
            rows.push(json!({
                "offset": at,
                "storeMs": store_ms,
                "bornMs": r.born_timestamp_ms.to_native(),
                "tags": r.tags.as_str(),
                "keys": r.keys.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "uniqueId": r.unique_id.as_str(),
                "properties": r.properties.iter().map(|p| json!({
                    "name": p.name.as_str(), "value": p.value.as_str(),
                })).collect::<Vec<_>>(),
                "bodyBytes": body.len(),
                "body": String::from_utf8_lossy(preview),
            }));
        }
    }
    Ok(json!({
        "topic": topic,
        "queue": queue_id,
        "from": call.offset,
        "next": pulled.next_offset,
        "min": pulled.min_offset,
        "max": pulled.max_offset,
        "messages": rows,
    }))
}

async fn pull_now(core: &Core, call: &PullCall) -> Result<crate::core::pull::Pulled, String> {
    let result = match core.pull(call.clone()).await {
        PullStart::Ready(result) => result,
        PullStart::Park(parked) => core.finish_parked(parked).await,
    };
    result.map_err(|e| e.to_string())
}
