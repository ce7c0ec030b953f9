//! The dashboard's JSON endpoints, assembled on the HTTP thread from the shards' answers.
//!
//! - `/api/overview`: the broker and each shard (connections, disk, log), cumulative produce
//!   and consume totals and the produce latency histogram (the page turns successive samples
//!   into rates and percentiles);
//! - `/api/topics`: every topic with each queue's shard and offsets;
//! - `/api/groups`: every consumer group, its members, and per queue its committed offset and
//!   lag;
//! - `/api/messages?topic=&queue=&offset=&max=`: a queue's messages from an offset.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shardmq_shards::stats::LATENCY_BUCKETS_SECONDS;

use super::request::Request;
use super::routes::snapshots;
use super::{Response, Shared, SHARD_ANSWER_TIMEOUT};
use crate::ops::metrics::snapshot::ShardSnapshot;
use crate::ops::query::ShardQuery;

fn json_response(status: u16, value: &Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

fn error(status: u16, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

pub fn overview(shared: &Shared) -> Response {
    let shards = snapshots(shared);
    let total = |pick: fn(&crate::ops::metrics::shard::TopicCounts) -> u64| -> u64 {
        shards
            .iter()
            .flat_map(|s| s.metrics.topics.iter().map(move |(_, t)| pick(t)))
            .sum()
    };
    let mut produce_latency = vec![0u64; LATENCY_BUCKETS_SECONDS.len() + 1];
    for s in &shards {
        for ((_, kind), h) in &s.metrics.requests {
            if crate::ops::metrics::shard::PRODUCE_KINDS.contains(kind) {
                for (acc, c) in produce_latency.iter_mut().zip(&h.counts) {
                    *acc += c;
                }
            }
        }
    }
    let per_shard: Vec<Value> = shards
        .iter()
        .map(|s| {
            json!({
                "shard": s.shard_id,
                "connections": s.open_connections,
                "segments": s.store.segments,
                "logBytes": s.store.log_bytes,
                "hotTailBytes": s.store.hot_tail_bytes,
                "diskUsedRatio": s.store.disk_used_percent.map(|p| p / 100.0),
                "diskFreeBytes": s.store.disk_free_bytes,
                "refusingWrites": s.store.refusing_writes,
                "fsyncs": s.store.fsyncs,
            })
        })
        .collect();
    json_response(
        200,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "timeMs": crate::core::now_ms(),
            "shardCount": shared.shards.len(),
            "shards": per_shard,
            "producedMessages": total(|t| t.produced_messages),
            "consumedMessages": total(|t| t.consumed_messages),
            "producedBytes": total(|t| t.produced_bytes),
            "consumedBytes": total(|t| t.consumed_bytes),
            "produceLatency": { "le": LATENCY_BUCKETS_SECONDS, "counts": produce_latency },
        }),
    )
}

pub fn topics(shared: &Shared) -> Response {
    let shards = snapshots(shared);
    let Some(first) = shards.first() else {
        return error(503, "no shard answered");
    };
    let mut queues: BTreeMap<(&str, u32), (u32, u64, u64)> = BTreeMap::new();
    for s in &shards {
        for q in &s.queues {
            queues.insert(
                (&q.topic, q.queue_id),
                (s.shard_id, q.min_offset, q.max_offset),
            );
        }
    }
    let topics: Vec<Value> = first
        .topics
        .iter()
        .map(|t| {
            let rows: Vec<Value> = (0..t.queues)
                .map(|q| {
                    let shard = shardmq_protocol::routing::shard_for_queue(
                        &t.name,
                        q,
                        shared.shards.len() as u32,
                    );
                    let (_, min, max) = queues
                        .get(&(t.name.as_str(), q))
                        .copied()
                        .unwrap_or((shard, 0, 0));
                    json!({ "queue": q, "shard": shard, "min": min, "max": max })
                })
                .collect();
            json!({ "name": t.name, "id": t.topic_id, "perm": t.perm, "queues": rows })
        })
        .collect();
    json_response(200, &Value::Array(topics))
}

/// Asks shard 0 (which answers for all) and waits a bounded time.
fn ask(
    shared: &Shared,
    make: impl FnOnce(super::super::query::JsonReply) -> ShardQuery,
) -> Result<Value, Response> {
    let Some(shard) = shared.shards.first() else {
        return Err(error(503, "no shard"));
    };
    let (tx, rx) = flume::bounded(1);
    shard
        .try_send(make(tx))
        .map_err(|_| error(503, "the broker is busy; try again"))?;
    match rx.recv_timeout(SHARD_ANSWER_TIMEOUT) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(error(400, message)),
        Err(_) => Err(error(503, "the broker did not answer in time")),
    }
}

pub fn groups(shared: &Shared) -> Response {
    let listed = match ask(shared, ShardQuery::Groups) {
        Ok(v) => v,
        Err(response) => return response,
    };
    let shards = snapshots(shared);
    let lag = lag_by_group(&shards);
    let mut names: Vec<String> = lag.keys().cloned().collect();
    let mut out: Vec<Value> = Vec::new();
    for mut g in listed.as_array().cloned().unwrap_or_default() {
        let name = g["name"].as_str().unwrap_or_default().to_string();
        names.retain(|n| *n != name);
        attach_lag(&mut g, lag.get(&name));
        out.push(g);
    }
    // Groups with committed offsets but no live record (RocketMQ clients' groups, or groups
    // whose members all left): their progress is still worth seeing.
    for name in names {
        let mut g = json!({ "name": name, "members": [] });
        attach_lag(&mut g, lag.get(&name));
        out.push(g);
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json_response(200, &Value::Array(out))
}

fn lag_by_group(shards: &[ShardSnapshot]) -> BTreeMap<String, Vec<Value>> {
    let mut by_group: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in shards {
        for row in &s.lag {
            by_group.entry(row.group.clone()).or_default().push(json!({
                "topic": row.topic, "queue": row.queue_id, "shard": s.shard_id,
                "committed": row.committed, "max": row.max_offset, "lag": row.lag(),
            }));
        }
    }
    by_group
}

fn attach_lag(group: &mut Value, rows: Option<&Vec<Value>>) {
    let rows = rows.cloned().unwrap_or_default();
    let total: u64 = rows.iter().filter_map(|r| r["lag"].as_u64()).sum();
    group["queues"] = Value::Array(rows);
    group["lag"] = json!(total);
}

pub fn messages(shared: &Shared, req: &Request) -> Response {
    let Some(topic) = req.param("topic").filter(|t| !t.is_empty()) else {
        return error(400, "give ?topic=NAME&queue=N&offset=N");
    };
    let number = |key: &str, default: u64| -> Result<u64, Response> {
        match req.param(key) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| error(400, format!("{key}={v:?} is not a number"))),
        }
    };
    let parsed = (|| {
        Ok((
            number("queue", 0)?,
            number("offset", 0)?,
            number("max", 20)?,
        ))
    })();
    let (queue, offset, max) = match parsed {
        Ok(v) => v,
        Err(response) => return response,
    };
    let Ok(queue_id) = u32::try_from(queue) else {
        return error(400, "queue out of range");
    };
    let topic = topic.to_string();
    let max = max.min(u64::from(u32::MAX)) as u32;
    match ask(shared, |reply| ShardQuery::Messages {
        topic,
        queue_id,
        offset,
        max,
        reply,
    }) {
        Ok(v) => json_response(200, &v),
        Err(response) => response,
    }
}
