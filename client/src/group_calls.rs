//! The broker's consumer-group, offset and lock calls, one method each on [`Client`]. Group
//! calls go to the group's coordinator shard (`routing::shard_for_group`), so its
//! `GroupChanged` announcements arrive on that connection; offset and lock calls go to the
//! shard that owns the queue. Every name is checked before anything is sent.

use shardmq_protocol::limits::validate_group_name;
use shardmq_protocol::messages::{
    CommitOffset, CommitReply, DeleteGroup, Deleted, DescribeGroup, GroupDescription, GroupList,
    GroupMembers, GroupView, JoinGroup, LeaveGroup, ListGroups, LockQueues, LockReply, OffsetReply,
    QueryOffset, QueueRef, ResetOffsets, ResetReply, SearchOffset, StartFrom,
};
use shardmq_protocol::routing::shard_for_group;
use shardmq_protocol::FrameKind;

use crate::client::{check_topic, Client};
use crate::connection::Connection;
use crate::error::{ClientError, Result};

pub(crate) fn check_group(group: &str) -> Result<()> {
    // A broadcasting member's own offsets go under `group@member`.
    let name = group.split('@').next().unwrap_or_default();
    validate_group_name(name).map_err(|reason| ClientError::InvalidArgument(reason.to_owned()))
}

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    /// The first record stored at or after this time (ms since the epoch).
    Timestamp(u64),
}

impl Client {
    /// The connection to the shard that coordinates `group`.
    pub async fn coordinator(&self, group: &str) -> Result<Connection> {
        check_group(group)?;
        self.connection(shard_for_group(group, self.shard_count()))
            .await
    }

    /// Joins a group, or heartbeats in it; the reply is the member's view.
    pub async fn join_group(&self, request: &JoinGroup) -> Result<GroupView> {
        for subscription in &request.subscriptions {
            check_topic(&subscription.topic)?;
        }
        let conn = self.coordinator(&request.group).await?;
        conn.request(FrameKind::JoinGroup, request, &[])
            .await?
            .decode()
    }

    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let request = LeaveGroup {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
        };
        let conn = self.coordinator(group).await?;
        conn.request(FrameKind::LeaveGroup, &request, &[])
            .await?
            .decode::<Deleted>()
            .map(drop)
    }

    /// The group's members (sorted) and `member_id`'s assignment.
    pub async fn group_members(&self, group: &str, member_id: &str) -> Result<GroupView> {
        let request = GroupMembers {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
        };
        let conn = self.coordinator(group).await?;
        conn.request(FrameKind::GroupMembers, &request, &[])
            .await?
            .decode()
    }

    /// Commits a group's offset of a queue; false if it was below the committed one.
    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<bool> {
        check_group(group)?;
        check_topic(topic)?;
        let request = CommitOffset {
            group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            offset,
        };
        let conn = self.connection_for_queue(topic, queue_id).await?;
        let reply: CommitReply = conn
            .request(FrameKind::CommitOffset, &request, &[])
            .await?
            .decode()?;
        Ok(reply.moved)
    }

    /// The group's committed offset of a queue; with `start`, where a consumer with none
    /// starts (kind 0 first, 1 last, 2 at `timestamp_ms`).
    pub async fn query_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        start: Option<StartFrom>,
    ) -> Result<Option<u64>> {
        check_group(group)?;
        check_topic(topic)?;
        let request = QueryOffset {
            group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            start,
        };
        let conn = self.connection_for_queue(topic, queue_id).await?;
        let reply: OffsetReply = conn
            .request(FrameKind::QueryOffset, &request, &[])
            .await?
            .decode()?;
        Ok(reply.offset)
    }

    /// The first offset of a queue stored at or after `timestamp_ms` (the end if none).
    pub async fn search_offset(
        &self,
        topic: &str,
        queue_id: u32,
        timestamp_ms: u64,
    ) -> Result<u64> {
        check_topic(topic)?;
        let request = SearchOffset {
            topic: topic.to_owned(),
            queue_id,
            timestamp_ms,
        };
        let conn = self.connection_for_queue(topic, queue_id).await?;
        let reply: OffsetReply = conn
            .request(FrameKind::SearchOffset, &request, &[])
            .await?
            .decode()?;
        reply
            .offset
            .ok_or_else(|| ClientError::UnexpectedReply("a search answered no offset".into()))
    }

    /// Moves a group's offsets of every queue of a topic; returns `(queue, offset)`.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
    ) -> Result<Vec<(u32, u64)>> {
        check_group(group)?;
        check_topic(topic)?;
        let (kind, timestamp_ms) = match to {
            ResetTo::Earliest => (0, 0),
            ResetTo::Latest => (1, 0),
            ResetTo::Timestamp(ms) => (2, ms),
        };
        let request = ResetOffsets {
            group: group.to_owned(),
            topic: topic.to_owned(),
            to: kind,
            timestamp_ms,
        };
        let conn = self.any_connection().await?;
        let reply: ResetReply = conn
            .request(FrameKind::ResetOffsets, &request, &[])
            .await?
            .decode()?;
        Ok(reply
            .queues
            .into_iter()
            .map(|q| (q.queue_id, q.offset))
            .collect())
    }

    /// Takes or renews (`unlock` false) or releases a member's locks of `queues`; returns the
    /// queues it holds.
    pub async fn lock_queues(
        &self,
        group: &str,
        member_id: &str,
        queues: Vec<QueueRef>,
        unlock: bool,
    ) -> Result<Vec<QueueRef>> {
        check_group(group)?;
        let request = LockQueues {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
            queues,
            unlock,
        };
        let conn = self.any_connection().await?;
        let reply: LockReply = conn
            .request(FrameKind::LockQueues, &request, &[])
            .await?
            .decode()?;
        Ok(reply.held)
    }

    pub async fn list_groups(&self) -> Result<GroupList> {
        let conn = self.any_connection().await?;
        conn.request(FrameKind::ListGroups, &ListGroups {}, &[])
            .await?
            .decode()
    }

    /// A group's members, assignment and per-queue committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let request = DescribeGroup {
            group: group.to_owned(),
        };
        let conn = self.coordinator(group).await?;
        conn.request(FrameKind::DescribeGroup, &request, &[])
            .await?
            .decode()
    }

    /// Deletes a group and its offsets; true if it existed.
    pub async fn delete_group(&self, group: &str) -> Result<bool> {
        let request = DeleteGroup {
            group: group.to_owned(),
        };
        let conn = self.coordinator(group).await?;
        let reply: Deleted = conn
            .request(FrameKind::DeleteGroup, &request, &[])
            .await?
            .decode()?;
        Ok(reply.existed)
    }
}
