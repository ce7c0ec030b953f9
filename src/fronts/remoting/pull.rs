//! Pulls over remoting: PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361), as core pulls.
//!
//! - Queue: the client's number on this shard, mapped to the topic's queue.
//! - Filter: the request's own expression when it carries one (sysFlag SUBSCRIPTION), else the
//!   subscription its group announced in heartbeats (this shard's copy, else the group's record
//!   on its coordinator); neither is SUBSCRIPTION_NOT_EXIST, as in Java. Filtered-out messages
//!   never leave the broker.
//! - Commit: with sysFlag COMMIT_OFFSET, `commitOffset` is committed for the group first.
//! - Long polling: with sysFlag SUSPEND the pull waits up to `suspendTimeoutMillis` (capped at
//!   `PULL_WAIT_MS_MAX`) for a matching message; a message that does not match sends it back to
//!   waiting (the core's long poll).
//! - Answer (§4.4): 0 with the stored-message records of §5.1 (at most `maxMsgNums`, and a body
//!   of at most `PULL_BODY_BYTES_MAX`, never less than one message), 19 nothing new, 20 nothing
//!   matched, 21 offset out of range with the offset to go to; every answer carries
//!   nextBeginOffset, minOffset, maxOffset and suggestWhichBrokerId.
//!
//! A record's physical offset is its batch's log position plus its index in the batch: unique
//! in the shard's log, and what its offset message id names.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use shardmq_protocol::batch::{ArchivedRecord, BatchView};
use shardmq_protocol::limits::PULL_WAIT_MS_MAX;
use shardmq_protocol::remoting::codes::{pull_flag, response};
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::properties::{self, key};
use shardmq_protocol::remoting::stored::{StoredMessage, PROPERTIES_BYTES_MAX};
use shardmq_protocol::remoting::RemotingCommand;

use super::connection::Remoting;
use super::dispatch::{refused, Answer};
use super::error::Refusal;
use super::frame_io::reply;
use super::state::RemotingShard;
use crate::core::filter::Filter;
use crate::core::groups::{FilterKind, FilterSpec};
use crate::core::pull::{PullCall, PullCommit, PullStart, PullStatus, Pulled};
use crate::core::CoreResult;
use crate::server::connection::Conn;

/// The most messages one pull answers with.
const PULL_MESSAGES_MAX: u32 = 1024;
/// The most body bytes one pull answer carries (a frame must stay under 16 MiB).
pub const PULL_BODY_BYTES_MAX: usize = 8 << 20;
/// Bytes of stored batches read for a pull that names no `maxMsgBytes`.
const PULL_READ_BYTES_DEFAULT: u32 = 4 << 20;

/// What the answer's encoding needs to know of the request.
struct Asked {
    topic: String,
    local: u32,
    offset: u64,
    max_messages: u32,
}

pub async fn pull(conn: &Rc<Conn<Remoting>>, req: RemotingCommand) -> Answer {
    match start(conn, &req).await {
        Ok(answer) => answer,
        Err(refusal) => Answer::Now(refused(&req, refusal)),
    }
}

/// The filter of the pull: its own expression, else its group's subscription.
async fn filter_of(
    conn: &Conn<Remoting>,
    f: &Fields<'_>,
    group: &str,
    topic: &str,
    sys_flag: i32,
) -> Result<Option<FilterSpec>, Refusal> {
    let spec = if sys_flag & pull_flag::SUBSCRIPTION != 0 {
        let sql = f
            .opt_str(&["expressionType"])
            .is_some_and(|t| t.eq_ignore_ascii_case("SQL92"));
        FilterSpec {
            kind: if sql {
                FilterKind::Sql92
            } else {
                FilterKind::Tag
            },
            expression: f.opt_str(&["subscription"]).unwrap_or("*").to_string(),
        }
    } else if let Some(spec) = conn.proto.shard.subscription(group, topic) {
        spec
    } else {
        let info = conn.ctx.core.group_info(group).await?;
        info.and_then(|i| i.subscriptions.into_iter().find(|s| s.topic == topic))
            .map(|s| s.filter)
            .ok_or_else(|| {
                Refusal::new(
                    response::SUBSCRIPTION_NOT_EXIST,
                    format!(
                        "the consumer's subscription not exist, group: {group}, topic: {topic}"
                    ),
                )
            })?
    };
    Filter::parse(&spec).map_err(|e| Refusal::new(response::SUBSCRIPTION_PARSE_FAILED, e))?;
    Ok((spec != FilterSpec::all()).then_some(spec))
}

async fn start(conn: &Rc<Conn<Remoting>>, req: &RemotingCommand) -> Result<Answer, Refusal> {
    let f = Fields(&req.ext);
    let group = f.str(&["consumerGroup"])?.to_string();
    crate::core::Core::check_group(&group)?;
    conn.ctx.core.check_may_consume(&group, false)?;
    let (topic, global) = super::dispatch::global_queue(conn, &f)?;
    let local: u32 = f.num(&["queueId"])?;
    let offset: i64 = f.num(&["queueOffset"])?;
    let max_messages: i64 = f.num(&["maxMsgNums"])?;
    let sys_flag: i32 = f.num(&["sysFlag"])?;
    let commit_offset: i64 = f.opt_num(&["commitOffset"])?.unwrap_or(-1);
    let suspend_ms: i64 = f.opt_num(&["suspendTimeoutMillis"])?.unwrap_or(0);
    let max_bytes: Option<i64> = f.opt_num(&["maxMsgBytes"])?;
    let filter = filter_of(conn, &f, &group, &topic, sys_flag).await?;
    let commit =
        (sys_flag & pull_flag::COMMIT_OFFSET != 0 && commit_offset >= 0).then(|| PullCommit {
            group: group.clone(),
            offset: commit_offset as u64,
        });
    let wait = if sys_flag & pull_flag::SUSPEND != 0 && conn.may_park() {
        Duration::from_millis(suspend_ms.clamp(0, i64::from(PULL_WAIT_MS_MAX)) as u64)
    } else {
        Duration::ZERO
    };
    let asked = Asked {
        topic: topic.clone(),
        local,
        offset: u64::try_from(offset).unwrap_or(0),
        max_messages: max_messages.clamp(1, i64::from(PULL_MESSAGES_MAX)) as u32,
    };
    let call = PullCall {
        topic,
        queue_id: global,
        offset: asked.offset,
        max_messages: asked.max_messages,
        max_bytes: max_bytes
            .and_then(|b| u32::try_from(b).ok())
            .filter(|&b| b > 0)
            .unwrap_or(PULL_READ_BYTES_DEFAULT)
            .min(PULL_BODY_BYTES_MAX as u32),
        wait,
        filter,
        commit,
    };
    let request = req.clone().with_body(bytes::Bytes::new());
    match conn.ctx.core.pull(call).await {
        PullStart::Ready(result) => Ok(Answer::Now(answer(
            &conn.proto.shard,
            &request,
            &asked,
            result,
        ))),
        PullStart::Park(parked) => {
            let (ctx, shard) = (conn.ctx.clone(), conn.proto.shard.clone());
            Ok(Answer::Later(Box::pin(async move {
                let result = ctx.core.finish_parked(parked).await;
                reply(&answer(&shard, &request, &asked, result))
            })))
        }
    }
}

fn answer(
    shard: &RemotingShard,
    req: &RemotingCommand,
    asked: &Asked,
    result: CoreResult<Pulled>,
) -> RemotingCommand {
    let pulled = match result {
        Ok(pulled) => pulled,
        Err(err) => return refused(req, err.into()),
    };
    let (code, next, body) = match pulled.status {
        PullStatus::Found => {
            let (body, next) = encode_messages(shard, asked, &pulled);
            if body.is_empty() {
                (response::PULL_RETRY_IMMEDIATELY, next, body)
            } else {
                (response::SUCCESS, next, body)
            }
        }
        PullStatus::NoNewMessages => (response::PULL_NOT_FOUND, asked.offset, Vec::new()),
        PullStatus::NoMatch => (
            response::PULL_RETRY_IMMEDIATELY,
            pulled.next_offset,
            Vec::new(),
        ),
        PullStatus::OffsetTooSmall => (response::PULL_OFFSET_MOVED, pulled.min_offset, Vec::new()),
        PullStatus::OffsetOverflow => {
            let code = if pulled.max_offset == 0 && asked.offset == 0 {
                response::PULL_NOT_FOUND
            } else {
                response::PULL_OFFSET_MOVED
            };
            (code, pulled.max_offset, Vec::new())
        }
    };
    RemotingCommand::response_to(req, code)
        .with_ext("suggestWhichBrokerId", 0)
        .with_ext("nextBeginOffset", next)
        .with_ext("minOffset", pulled.min_offset)
        .with_ext("maxOffset", pulled.max_offset)
        .with_body(body)
}

/// The records of the pulled batches from the asked offset on, as §5.1 stored messages, and
/// the offset the next pull starts at.
fn encode_messages(shard: &RemotingShard, asked: &Asked, pulled: &Pulled) -> (Vec<u8>, u64) {
    let mut body = Vec::new();
    let mut count = 0u32;
    for stored in &pulled.batches {
        let Ok(view) = BatchView::trusted(&stored.bytes) else {
            tracing::error!(
                position = stored.position,
                "a stored batch does not parse; pull answer cut before it"
            );
            return (body, pulled.next_offset);
        };
        let base = view.header.base_offset;
        for (delta, record) in view.records_trusted().iter() {
            let offset = base + delta;
            if offset < asked.offset {
                continue;
            }
            if count == asked.max_messages || (count > 0 && body.len() >= PULL_BODY_BYTES_MAX) {
                return (body, offset);
            }
            let message = Message {
                record,
                offset,
                physical: stored.position + delta,
                store_ms: view.header.append_timestamp_ms,
            };
            message.encode(shard, asked, &mut body);
            count += 1;
        }
    }
    (body, pulled.next_offset)
}

/// One stored record on its way out.
struct Message<'a> {
    record: &'a ArchivedRecord,
    offset: u64,
    physical: u64,
    store_ms: u64,
}

fn born_host(bytes: &[u8]) -> SocketAddr {
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match bytes.len() {
        6 => SocketAddr::new(
            IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]),
            port(&bytes[4..]),
        ),
        18 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16]);
            SocketAddr::new(IpAddr::from(octets), port(&bytes[16..]))
        }
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

/// The property string of a record: TAGS, KEYS, UNIQ_KEY, then its own properties in order.
/// Beyond RocketMQ's 32767 bytes (a native producer may send more), the record's own
/// properties are left out and that is logged.
pub fn properties_of(record: &ArchivedRecord) -> String {
    let mut fixed = String::new();
    if !record.tags.is_empty() {
        properties::push(&mut fixed, key::TAGS, &record.tags);
    }
    if !record.keys.is_empty() {
        let keys: Vec<&str> = record.keys.iter().map(|k| k.as_str()).collect();
        properties::push(&mut fixed, key::KEYS, &keys.join(" "));
    }
    if !record.unique_id.is_empty() {
        properties::push(&mut fixed, key::UNIQ_KEY, &record.unique_id);
    }
    let mut all = fixed.clone();
    for p in record.properties.iter() {
        properties::push(&mut all, &p.name, &p.value);
    }
    if all.len() <= PROPERTIES_BYTES_MAX {
        return all;
    }
    tracing::warn!(
        bytes = all.len(),
        "a message's properties exceed what RocketMQ clients read; sent without its own properties"
    );
    fixed.truncate(PROPERTIES_BYTES_MAX);
    fixed
}

impl Message<'_> {
    fn encode(&self, shard: &RemotingShard, asked: &Asked, out: &mut Vec<u8>) {
        let r = self.record;
        let properties = properties_of(r);
        let stored = StoredMessage {
            queue_id: asked.local as i32,
            flag: r.flag.to_native(),
            queue_offset: self.offset as i64,
            physical_offset: self.physical as i64,
            sys_flag: r.sys_flag.to_native() as i32,
            born_timestamp: r.born_timestamp_ms.to_native() as i64,
            born_host: born_host(&r.born_host),
            store_timestamp: self.store_ms as i64,
            store_host: shard.advertised,
            reconsume_times: r.reconsume_times.to_native() as i32,
            prepared_transaction_offset: 0,
            body: &r.payload,
            topic: &asked.topic,
            properties: &properties,
        };
        if let Err(err) = stored.encode_into(out) {
            tracing::error!(error = %err, "a message could not be encoded for a RocketMQ client");
        }
    }
}
