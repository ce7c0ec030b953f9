//! The native front end's consumer-group and offset requests as core calls: join (heartbeat),
//! leave, members, offsets (commit, query, search, reset), queue locks, and the operator's
//! list / describe / delete. Translation only; what each means is the core's.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use shardmq_protocol::messages::{
    self as wire, CommitOffset, CommitReply, Deleted, GroupDescription, GroupList, GroupMembers,
    GroupQueue, GroupSummary, JoinGroup, LeaveGroup, LockQueues, LockReply, MemberDescription,
    OffsetReply, QueryOffset, QueueOffset, QueueRef, ResetOffsets, ResetReply, SearchOffset,
};
use shardmq_protocol::FrameKind;

use super::dispatch::meta;
use super::error::NativeError;
use crate::core::groups::{
    FilterKind, FilterSpec, GroupView, JoinCall, Mode, NotifyTarget, Strategy, Subscription,
};
use crate::core::queue_ops::{QueueOp, ResetTarget, StartFrom};
use crate::core::Core;
use crate::server::outbox::Reply;

/// Longest session a member may ask for: a member silent that long is gone.
const SESSION_TIMEOUT_MAX: Duration = Duration::from_secs(300);
const SESSION_TIMEOUT_MIN: Duration = Duration::from_millis(100);

/// What a connection's group requests need from the connection: where to notify its members,
/// and which members joined through it (they leave when it closes).
pub struct Session {
    pub notify: NotifyTarget,
    pub joined: RefCell<BTreeSet<(String, String)>>,
}

fn invalid(what: String) -> NativeError {
    NativeError::InvalidArgument(what)
}

pub fn filter_spec(wire: &wire::FilterSpec) -> Result<FilterSpec, NativeError> {
    let kind = FilterKind::from_code(wire.kind).ok_or_else(|| {
        invalid(format!(
            "filter kind {} is not 0 (tag) or 1 (SQL92)",
            wire.kind
        ))
    })?;
    Ok(FilterSpec {
        kind,
        expression: wire.expression.clone(),
    })
}

fn wire_filter(spec: &FilterSpec) -> wire::FilterSpec {
    wire::FilterSpec {
        kind: spec.kind.code(),
        expression: spec.expression.clone(),
    }
}

fn queue_refs(queues: &[(String, u32)]) -> Vec<QueueRef> {
    queues
        .iter()
        .map(|(topic, queue_id)| QueueRef {
            topic: topic.clone(),
            queue_id: *queue_id,
        })
        .collect()
}

fn view_reply(kind: FrameKind, id: u64, view: GroupView) -> Result<Reply, NativeError> {
    meta(
        kind,
        id,
        &wire::GroupView {
            generation: view.generation,
            members: view.members,
            assignment: queue_refs(&view.assignment),
        },
    )
}

pub async fn join(
    core: &Core,
    session: &Session,
    id: u64,
    r: JoinGroup,
) -> Result<Reply, NativeError> {
    let mode =
        Mode::from_code(r.mode).ok_or_else(|| invalid(format!("mode {} is not 0 or 1", r.mode)))?;
    let strategy = Strategy::from_code(r.strategy)
        .ok_or_else(|| invalid(format!("strategy {} is not 0 or 1", r.strategy)))?;
    let subscriptions = r
        .subscriptions
        .iter()
        .map(|s| {
            Ok(Subscription {
                topic: s.topic.clone(),
                filter: filter_spec(&s.filter)?,
            })
        })
        .collect::<Result<Vec<_>, NativeError>>()?;
    let session_timeout = Duration::from_millis(r.session_timeout_ms.into())
        .clamp(SESSION_TIMEOUT_MIN, SESSION_TIMEOUT_MAX);
    let call = JoinCall {
        group: r.group.clone(),
        member_id: r.member_id.clone(),
        mode,
        strategy,
        subscriptions,
        session_timeout,
        notify: Some(session.notify),
        protocol: "native",
    };
    let view = core.join_group(call).await?;
    session.joined.borrow_mut().insert((r.group, r.member_id));
    view_reply(FrameKind::JoinGroup, id, view)
}

pub async fn leave(
    core: &Core,
    session: &Session,
    id: u64,
    r: LeaveGroup,
) -> Result<Reply, NativeError> {
    core.leave_group(&r.group, &r.member_id, None).await?;
    session.joined.borrow_mut().remove(&(r.group, r.member_id));
    meta(FrameKind::LeaveGroup, id, &Deleted { existed: true })
}

pub async fn members(core: &Core, id: u64, r: GroupMembers) -> Result<Reply, NativeError> {
    let view = core
        .group_view(&r.group, &r.member_id)
        .await?
        .unwrap_or_default();
    view_reply(FrameKind::GroupMembers, id, view)
}

pub async fn commit(core: &Core, id: u64, r: CommitOffset) -> Result<Reply, NativeError> {
    let moved = core
        .commit_offset(&r.group, &r.topic, r.queue_id, r.offset)
        .await?;
    meta(FrameKind::CommitOffset, id, &CommitReply { moved })
}

fn start_from(start: &wire::StartFrom) -> Result<StartFrom, NativeError> {
    match start.kind {
        0 => Ok(StartFrom::First),
        1 => Ok(StartFrom::Last),
        2 => Ok(StartFrom::Timestamp(start.timestamp_ms)),
        other => Err(invalid(format!("start kind {other} is not 0, 1 or 2"))),
    }
}

pub async fn query(core: &Core, id: u64, r: QueryOffset) -> Result<Reply, NativeError> {
    let op = match &r.start {
        None => QueueOp::Query { group: r.group },
        Some(start) => QueueOp::Initial {
            group: r.group,
            from: start_from(start)?,
        },
    };
    let offset = core.offset_op(&r.topic, r.queue_id, op).await?;
    meta(FrameKind::QueryOffset, id, &OffsetReply { offset })
}

pub async fn search(core: &Core, id: u64, r: SearchOffset) -> Result<Reply, NativeError> {
    let op = QueueOp::SearchByTime {
        timestamp_ms: r.timestamp_ms,
    };
    let offset = core.offset_op(&r.topic, r.queue_id, op).await?;
    meta(FrameKind::SearchOffset, id, &OffsetReply { offset })
}

pub async fn reset(core: &Core, id: u64, r: ResetOffsets) -> Result<Reply, NativeError> {
    let to = match r.to {
        0 => ResetTarget::Earliest,
        1 => ResetTarget::Latest,
        2 => ResetTarget::Timestamp(r.timestamp_ms),
        other => return Err(invalid(format!("reset target {other} is not 0, 1 or 2"))),
    };
    let moved = core.reset_offsets(&r.group, &r.topic, to).await?;
    let queues = moved
        .into_iter()
        .map(|(queue_id, offset)| QueueOffset { queue_id, offset })
        .collect();
    meta(FrameKind::ResetOffsets, id, &ResetReply { queues })
}

pub async fn lock(core: &Core, id: u64, r: LockQueues) -> Result<Reply, NativeError> {
    let queues: Vec<(String, u32)> = r
        .queues
        .iter()
        .map(|q| (q.topic.clone(), q.queue_id))
        .collect();
    let held = core
        .lock_queues(&r.group, &r.member_id, &queues, !r.unlock)
        .await?;
    meta(
        FrameKind::LockQueues,
        id,
        &LockReply {
            held: queue_refs(&held),
        },
    )
}

pub async fn list(core: &Core, id: u64) -> Result<Reply, NativeError> {
    let groups = core
        .list_groups()
        .await?
        .into_iter()
        .map(|g| GroupSummary {
            name: g.name,
            mode: g.mode.code(),
            members: g.members.len() as u32,
            generation: g.generation,
        })
        .collect();
    meta(FrameKind::ListGroups, id, &GroupList { groups })
}

pub async fn describe(core: &Core, id: u64, group: &str) -> Result<Reply, NativeError> {
    let (info, queues) = core.describe_group(group).await?.ok_or_else(|| {
        invalid(format!(
            "group {} does not exist",
            shardmq_protocol::text::Shown(group)
        ))
    })?;
    let members = info
        .members
        .into_iter()
        .map(|m| MemberDescription {
            member_id: m.member_id,
            mode: m.mode.code(),
            subscriptions: m
                .subscriptions
                .iter()
                .map(|s| wire::Subscription {
                    topic: s.topic.clone(),
                    filter: wire_filter(&s.filter),
                })
                .collect(),
            assignment: queue_refs(&m.assignment),
            idle_ms: m.idle_ms,
            protocol: m.protocol.to_string(),
        })
        .collect();
    let queues = queues
        .into_iter()
        .map(|q| GroupQueue {
            topic: q.topic,
            queue_id: q.queue_id,
            shard_id: q.shard_id,
            member_id: q.member_id,
            committed: q.committed,
            max_offset: q.max_offset,
            lag: q.lag,
        })
        .collect();
    let description = GroupDescription {
        name: info.name,
        mode: info.mode.code(),
        strategy: info.strategy.code(),
        generation: info.generation,
        members,
        queues,
    };
    meta(FrameKind::DescribeGroup, id, &description)
}

pub async fn delete(core: &Core, id: u64, group: &str) -> Result<Reply, NativeError> {
    let existed = core.delete_group(group).await?;
    meta(FrameKind::DeleteGroup, id, &Deleted { existed })
}
