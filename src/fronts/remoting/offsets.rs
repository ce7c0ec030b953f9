//! Offset requests over remoting: consumer offsets (query 14, update 15), queue offsets (max 30,
//! min 31), search by store time (29), earliest store time (32). Every queue id is the client's
//! number on this shard, mapped to the topic's queue here (`shard_queues`).
//!
//! A query for a group with no stored offset answers as the Java broker does: 0 while the queue
//! still starts at offset 0 with that message in memory (so a new group on a fresh queue misses
//! nothing), otherwise QUERY_NOT_FOUND, after which the client picks its start itself
//! (GET_MAX_OFFSET for CONSUME_FROM_LAST_OFFSET). `setZeroIfNotFound=false` (5.x) always gets
//! QUERY_NOT_FOUND.

use std::rc::Rc;

use shardmq_protocol::remoting::codes::response;
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::RemotingCommand;

use super::connection::Remoting;
use super::dispatch::{global_queue, Handler};
use super::error::Refusal;
use crate::core::queue_ops::{QueueOp, StartFrom};
use crate::server::connection::Conn;

/// `(group, topic, global queue)` of a request's `consumerGroup`, `topic`, `queueId`.
fn group_queue(
    conn: &Conn<Remoting>,
    req: &RemotingCommand,
) -> Result<(String, String, u32), Refusal> {
    let f = Fields(&req.ext);
    let group = f.str(&["consumerGroup"])?.to_string();
    let (topic, queue) = global_queue(conn, &f)?;
    Ok((group, topic, queue))
}

pub async fn query_consumer_offset(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let core = &conn.ctx.core;
    let (group, topic, queue) = group_queue(conn, req)?;
    let zero_if_not_found = Fields(&req.ext)
        .opt_bool(&["setZeroIfNotFound"])?
        .unwrap_or(true);
    let stored = core
        .offset_op(
            &topic,
            queue,
            QueueOp::Query {
                group: group.clone(),
            },
        )
        .await?;
    let offset = match stored {
        Some(offset) => Some(offset),
        None if zero_if_not_found => {
            let start = QueueOp::Initial {
                group,
                from: StartFrom::Last,
            };
            core.offset_op(&topic, queue, start)
                .await?
                .filter(|&offset| offset == 0)
        }
        None => None,
    };
    match offset {
        Some(offset) => {
            Ok(RemotingCommand::response_to(req, response::SUCCESS).with_ext("offset", offset))
        }
        None => Err(Refusal::new(
            response::QUERY_NOT_FOUND,
            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
        )),
    }
}

pub async fn update_consumer_offset(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let (group, topic, queue) = group_queue(conn, req)?;
    let offset: i64 = Fields(&req.ext).num(&["commitOffset"])?;
    // A negative offset is what a client holds before it knows one: nothing to store.
    if let Ok(offset) = u64::try_from(offset) {
        conn.ctx
            .core
            .commit_offset(&group, &topic, queue, offset)
            .await?;
    }
    Ok(RemotingCommand::response_to(req, response::SUCCESS))
}

pub async fn queue_offset(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand, max: bool) -> Handler {
    let (topic, queue) = global_queue(conn, &Fields(&req.ext))?;
    let (min_offset, max_offset) = conn.ctx.core.queue_offsets(&topic, queue).await?;
    let offset = if max { max_offset } else { min_offset };
    Ok(RemotingCommand::response_to(req, response::SUCCESS).with_ext("offset", offset))
}

pub async fn search_offset(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let f = Fields(&req.ext);
    let (topic, queue) = global_queue(conn, &f)?;
    let timestamp: i64 = f.num(&["timestamp"])?;
    let op = QueueOp::SearchByTime {
        timestamp_ms: u64::try_from(timestamp).unwrap_or(0),
    };
    let offset = conn
        .ctx
        .core
        .offset_op(&topic, queue, op)
        .await?
        .unwrap_or(0);
    Ok(RemotingCommand::response_to(req, response::SUCCESS).with_ext("offset", offset))
}

pub async fn earliest_store_time(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Handler {
    let (topic, queue) = global_queue(conn, &Fields(&req.ext))?;
    let answer = conn
        .ctx
        .core
        .queue_op(&topic, queue, QueueOp::EarliestStoreTime)
        .await?;
    match answer {
        crate::core::queue_ops::QueueAnswer::Time(Some(ms)) => {
            Ok(RemotingCommand::response_to(req, response::SUCCESS).with_ext("timestamp", ms))
        }
        _ => Err(Refusal::system(format!(
            "no message in queue {} of {topic}",
            Fields(&req.ext).opt_str(&["queueId"]).unwrap_or("?")
        ))),
    }
}
