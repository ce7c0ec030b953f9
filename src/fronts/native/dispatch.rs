//! The native front end's requests as calls of the broker core, and the core's plain results
//! encoded as native replies. One function per request kind; no semantics here, only
//! translation: what a call means is the core's.

use std::time::Duration;

use rkyv::api::high::HighSerializer;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use shardmq_protocol::envelope;
use shardmq_protocol::messages::{
    CreateTopic, ProduceReply, Pull, PullReply, QueueOffsetsReply, QueueStatus, ShardMap,
    ShardStats, TopicInfo, TopicList, TopicStatus,
};
use shardmq_protocol::routing::ROUTING_NAME;
use shardmq_protocol::{FrameKind, ValidatedBatch};
use shardmq_shards::StorageError;

use super::error::NativeError;
use super::frame_io::native_reply;
use super::groups::{self, filter_spec, Session};
use super::request::Request;
use crate::core::produce::{Ack, Produced};
use crate::core::pull::{Parked, PullCall, PullCommit, PullStart, PullStatus, Pulled};
use crate::core::topics::{Topic, TopicChange, PERM_READ_WRITE};
use crate::core::CoreError;
use crate::server::context::ShardContext;
use crate::server::outbox::{Reply, SyncGate};

/// A reply now, or a long poll whose reply comes later ([`finish_pull`]).
pub enum Dispatched {
    Now(Reply),
    Later(LaterPull),
}

/// A parked pull and what its reply needs.
pub struct LaterPull {
    id: u64,
    offset: u64,
    parked: Parked,
}

/// Waits out a parked pull and encodes its reply.
pub async fn finish_pull(ctx: &ShardContext, later: LaterPull) -> Reply {
    let result = ctx.core.finish_parked(later.parked).await;
    pull_reply(later.id, later.offset, result)
}

/// Runs one decoded request against the core. `may_park`: the connection may hold another long
/// poll (otherwise a pull answers with what is there).
pub async fn dispatch(
    ctx: &ShardContext,
    session: &Session,
    kind: FrameKind,
    id: u64,
    request: Request,
    may_park: bool,
) -> Dispatched {
    let core = &ctx.core;
    let result = match request {
        Request::JoinGroup(r) => groups::join(core, session, id, r).await,
        Request::LeaveGroup(r) => groups::leave(core, session, id, r).await,
        Request::GroupMembers(r) => groups::members(core, id, r).await,
        Request::CommitOffset(r) => groups::commit(core, id, r).await,
        Request::QueryOffset(r) => groups::query(core, id, r).await,
        Request::SearchOffset(r) => groups::search(core, id, r).await,
        Request::ResetOffsets(r) => groups::reset(core, id, r).await,
        Request::LockQueues(r) => groups::lock(core, id, r).await,
        Request::ListGroups => groups::list(core, id).await,
        Request::DescribeGroup(r) => groups::describe(core, id, &r.group).await,
        Request::DeleteGroup(r) => groups::delete(core, id, &r.group).await,
        Request::Produce { request, batch } => {
            return Dispatched::Now(produce(ctx, id, &request.topic, request.queue_id, batch).await)
        }
        Request::Pull(pull) => return start_pull(ctx, id, pull, may_park).await,
        Request::QueueOffsets(r) => core
            .queue_offsets(&r.topic, r.queue_id)
            .await
            .map_err(NativeError::from)
            .and_then(|(min_offset, max_offset)| {
                meta(
                    kind,
                    id,
                    &QueueOffsetsReply {
                        min_offset,
                        max_offset,
                    },
                )
            }),
        Request::CreateTopic(r) => create_topic(ctx, kind, id, r).await,
        Request::UpdateTopic(r) => {
            let change = TopicChange {
                queues: r.queues,
                perm: r.perm,
            };
            topic_reply(kind, id, core.update_topic(&r.name, change).await)
        }
        Request::DeleteTopic(r) => topic_reply(kind, id, core.delete_topic(&r.name).await),
        Request::TopicStatus(r) => topic_status(ctx, kind, id, &r.name).await,
        Request::ListTopics => meta(
            kind,
            id,
            &TopicList {
                topics: core.topics.list().iter().map(|t| topic_info(t)).collect(),
            },
        ),
        Request::ShardMap => meta(
            kind,
            id,
            &ShardMap {
                shard_count: core.shard_count,
                routing: ROUTING_NAME.to_string(),
                serving_shard: core.shard_id,
            },
        ),
        Request::ShardStats => meta(kind, id, &shard_stats(ctx)),
    };
    Dispatched::Now(result.unwrap_or_else(|err| error(id, &err)))
}

/// A successful reply of metadata only.
pub fn meta<T>(kind: FrameKind, id: u64, meta: &T) -> Result<Reply, NativeError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let prefix = envelope::encode(meta).map_err(NativeError::ReplyTooLarge)?;
    native_reply(kind.reply(), id, prefix, Vec::new()).map_err(NativeError::ReplyTooLarge)
}

/// An error reply. An error reply is small by construction (bounded message), so its header
/// always fits; should it not, nothing is sent rather than a broken frame.
pub fn error(id: u64, err: &NativeError) -> Reply {
    let mut reply =
        native_reply(FrameKind::Error, id, err.encode_reply(), Vec::new()).unwrap_or(Reply {
            head: Vec::new(),
            data: Vec::new(),
            gate: None,
            rejected: None,
        });
    reply.rejected = Some(err.code().name());
    reply
}

fn sync_failure(id: u64, err: StorageError) -> Vec<u8> {
    error(id, &NativeError::from(err)).head
}

fn topic_info(topic: &Topic) -> TopicInfo {
    TopicInfo {
        name: topic.name.clone(),
        topic_id: topic.topic_id,
        queues: topic.queues,
        perm: topic.perm,
    }
}

fn topic_reply(
    kind: FrameKind,
    id: u64,
    result: Result<Topic, CoreError>,
) -> Result<Reply, NativeError> {
    meta(kind, id, &topic_info(&result?))
}

async fn create_topic(
    ctx: &ShardContext,
    kind: FrameKind,
    id: u64,
    r: CreateTopic,
) -> Result<Reply, NativeError> {
    let perm = r.perm.unwrap_or(PERM_READ_WRITE);
    topic_reply(
        kind,
        id,
        ctx.core.create_topic(&r.name, r.queues, perm).await,
    )
}

async fn topic_status(
    ctx: &ShardContext,
    kind: FrameKind,
    id: u64,
    name: &str,
) -> Result<Reply, NativeError> {
    let (topic, queues) = ctx.core.topic_status(name).await?;
    let status = TopicStatus {
        topic: topic_info(&topic),
        queues: queues
            .into_iter()
            .map(|q| QueueStatus {
                queue_id: q.queue_id,
                shard_id: q.shard_id,
                min_offset: q.min_offset,
                max_offset: q.max_offset,
            })
            .collect(),
    };
    meta(kind, id, &status)
}

fn shard_stats(ctx: &ShardContext) -> ShardStats {
    let store = ctx.core.store.stats();
    let (rocketmq_broker, remoting_addr) = ctx.remoting_broker.borrow().clone().unwrap_or_default();
    ShardStats {
        shard_id: ctx.core.shard_id,
        connections: ctx.open_connections(),
        request_bytes_buffered: ctx.request_budget.in_use(),
        request_bytes_max: ctx.request_budget.capacity(),
        reply_bytes_queued: ctx.reply_budget.in_use(),
        reply_bytes_max: ctx.reply_budget.capacity(),
        broker_version: env!("CARGO_PKG_VERSION").into(),
        segments: store.segments,
        log_bytes: store.log_bytes,
        disk_used_per_mille: store.disk_used_percent.map(|p| (p * 10.0).round() as u32),
        disk_free_bytes: store.disk_free_bytes,
        refusing_writes: store.refusing_writes,
        rocketmq_broker,
        remoting_addr,
        log_written_bytes: store.written_bytes,
        log_device_write_bytes: store.device_write_bytes,
        fsyncs: store.fsyncs,
        synced_batches: store.synced_batches,
    }
}

async fn produce(
    ctx: &ShardContext,
    id: u64,
    topic: &str,
    queue_id: u32,
    batch: bytes::BytesMut,
) -> Reply {
    let produced = match ValidatedBatch::new(batch) {
        Ok(batch) => ctx.core.produce(topic, queue_id, batch).await,
        Err(err) => Err(CoreError::BadBatch(err)),
    };
    match produced
        .map_err(NativeError::from)
        .and_then(|p| produce_reply(id, &p))
    {
        Ok(reply) => reply,
        Err(err) => error(id, &err),
    }
}

fn produce_reply(id: u64, produced: &Produced) -> Result<Reply, NativeError> {
    let reply = ProduceReply {
        base_offset: produced.base_offset,
        count: produced.count,
    };
    let mut out = meta(FrameKind::Produce, id, &reply)?;
    if let Ack::AfterSync(end) = produced.ack {
        out.gate = Some(SyncGate {
            end,
            correlation_id: id,
            on_failure: sync_failure,
        });
    }
    Ok(out)
}

async fn start_pull(ctx: &ShardContext, id: u64, pull: Pull, may_park: bool) -> Dispatched {
    let wait = if may_park {
        Duration::from_millis(pull.wait_ms.into())
    } else {
        Duration::ZERO
    };
    let filter = match pull.filter.as_ref().map(filter_spec).transpose() {
        Ok(filter) => filter,
        Err(err) => return Dispatched::Now(error(id, &err)),
    };
    let call = PullCall {
        topic: pull.topic,
        queue_id: pull.queue_id,
        offset: pull.offset,
        max_messages: pull.max_messages,
        max_bytes: pull.max_bytes,
        wait,
        filter,
        commit: pull.commit.map(|c| PullCommit {
            group: c.group,
            offset: c.offset,
        }),
    };
    let offset = call.offset;
    match ctx.core.pull(call).await {
        PullStart::Ready(result) => Dispatched::Now(pull_reply(id, offset, result)),
        PullStart::Park(parked) => Dispatched::Later(LaterPull { id, offset, parked }),
    }
}

fn pull_reply(id: u64, offset: u64, result: Result<Pulled, CoreError>) -> Reply {
    let encoded = result.map_err(NativeError::from).and_then(|pulled| {
        if pulled.status == PullStatus::OffsetOverflow {
            return Err(NativeError::OffsetOutOfRange {
                offset,
                min: pulled.min_offset,
                max: pulled.max_offset,
            });
        }
        let meta = PullReply {
            batch_count: pulled.batches.len() as u32,
            next_offset: pulled.next_offset,
            min_offset: pulled.min_offset,
            max_offset: pulled.max_offset,
        };
        let data: Vec<bytes::Bytes> = pulled.batches.into_iter().map(|b| b.bytes).collect();
        let len = data.iter().map(bytes::Bytes::len).sum();
        let prefix = envelope::encode_prefix(&meta, len).map_err(NativeError::ReplyTooLarge)?;
        native_reply(FrameKind::PullReply, id, prefix, data).map_err(NativeError::ReplyTooLarge)
    });
    encoded.unwrap_or_else(|err| error(id, &err))
}
