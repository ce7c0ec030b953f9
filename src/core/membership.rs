//! Group calls through the core: every one is served by the group's coordinator shard
//! (`groups::coordinator_of`), here or over the mesh; changes are announced to members on
//! whatever shard their connection lives; housekeeping expires silent members and writes the
//! groups file.
//!
//! A subscription's filter is parsed when the member joins, on the shard it joined through, so
//! a bad expression is refused then, with the position of the error, and never reaches a pull.

use std::rc::Rc;
use std::time::{Duration, Instant};

use shardmq_protocol::limits::validate_group_name;

use super::error::{CoreError, CoreResult};
use super::filter::Filter;
use super::groups::coordinator::Changed;
use super::groups::{coordinator_of, persist, GroupInfo, GroupView, JoinCall, NotifyTarget};
use super::remote::{RemoteCall, RemoteReply};
use super::Core;

/// How often housekeeping runs: member expiry, queue lock expiry, the groups file.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);

/// One call about one group, served by its coordinator.
#[derive(Debug, Clone)]
pub enum GroupOp {
    Join(JoinCall),
    Leave {
        group: String,
        member_id: String,
        only_via: Option<NotifyTarget>,
    },
    View {
        group: String,
        member_id: String,
    },
    Info {
        group: String,
    },
    /// Every group this shard coordinates.
    List,
    Delete {
        group: String,
    },
}

#[derive(Debug, Clone)]
pub enum GroupAnswer {
    View(Option<GroupView>),
    Info(Option<GroupInfo>),
    List(Vec<GroupInfo>),
    Done(bool),
}

/// Something that can tell a connected member its group changed (each front end's own way:
/// a native frame, a RocketMQ `NOTIFY_CONSUMER_IDS_CHANGED`).
pub trait GroupNotifier {
    fn group_changed(&self, group: &str, generation: u64);
}

impl Core {
    /// Checks a group name (RocketMQ's rule).
    pub fn check_group(name: &str) -> CoreResult<()> {
        validate_group_name(name).map_err(|reason| CoreError::InvalidArgument(reason.into()))
    }

    /// A member joins or heartbeats; returns its view of the group.
    pub async fn join_group(&self, call: JoinCall) -> CoreResult<GroupView> {
        Self::check_group(&call.group)?;
        if call.member_id.is_empty() || call.member_id.len() > 255 {
            return Err(CoreError::InvalidArgument(
                "member id must hold 1..=255 bytes".into(),
            ));
        }
        for subscription in &call.subscriptions {
            shardmq_protocol::limits::validate_topic_name(&subscription.topic)
                .map_err(|reason| CoreError::InvalidArgument(reason.into()))?;
            Filter::parse(&subscription.filter)?;
        }
        self.check_may_consume(&call.group, call.mode == super::groups::Mode::Broadcasting)?;
        match self
            .group_op(&call.group.clone(), GroupOp::Join(call))
            .await?
        {
            GroupAnswer::View(Some(view)) => Ok(view),
            other => Err(unexpected(other)),
        }
    }

    pub async fn leave_group(
        &self,
        group: &str,
        member_id: &str,
        only_via: Option<NotifyTarget>,
    ) -> CoreResult<()> {
        let op = GroupOp::Leave {
            group: group.to_string(),
            member_id: member_id.to_string(),
            only_via,
        };
        self.group_op(group, op).await.map(drop)
    }

    /// The group's members (sorted) and `member_id`'s assignment; `None` if no such group.
    pub async fn group_view(&self, group: &str, member_id: &str) -> CoreResult<Option<GroupView>> {
        Self::check_group(group)?;
        let op = GroupOp::View {
            group: group.to_string(),
            member_id: member_id.to_string(),
        };
        match self.group_op(group, op).await? {
            GroupAnswer::View(view) => Ok(view),
            other => Err(unexpected(other)),
        }
    }

    pub async fn group_info(&self, group: &str) -> CoreResult<Option<GroupInfo>> {
        Self::check_group(group)?;
        match self
            .group_op(
                group,
                GroupOp::Info {
                    group: group.to_string(),
                },
            )
            .await?
        {
            GroupAnswer::Info(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Every group of the broker, from every coordinator, sorted by name.
    pub async fn list_groups(&self) -> CoreResult<Vec<GroupInfo>> {
        let mut all = match self.group_op_here(GroupOp::List).await {
            GroupAnswer::List(groups) => groups,
            other => return Err(unexpected(other)),
        };
        let peers: Vec<u32> = self.mesh.peers().collect();
        for peer in peers {
            match self.call(peer, RemoteCall::Group(GroupOp::List)).await? {
                RemoteReply::Group(GroupAnswer::List(groups)) => all.extend(groups),
                other => return Err(other.unexpected(peer)),
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Deletes a group: its coordinator forgets it (members are told) and every shard drops its
    /// offsets. True if it existed.
    pub async fn delete_group(&self, group: &str) -> CoreResult<bool> {
        Self::check_group(group)?;
        let existed = match self
            .group_op(
                group,
                GroupOp::Delete {
                    group: group.to_string(),
                },
            )
            .await?
        {
            GroupAnswer::Done(existed) => existed,
            other => return Err(unexpected(other)),
        };
        self.drop_group_data(group);
        let name = group.to_string();
        self.call_peers(|| RemoteCall::DropGroupData {
            group: name.clone(),
        })
        .await?;
        Ok(existed)
    }

    /// Forgets this shard's offsets of a deleted group (its broadcasting members' too).
    pub(crate) fn drop_group_data(&self, group: &str) {
        let own = format!("{group}@");
        self.store
            .consumer_offsets()
            .remove(|key| key.group.as_ref() == group || key.group.starts_with(&own));
    }

    /// Runs `op` on the group's coordinator shard.
    pub async fn group_op(&self, group: &str, op: GroupOp) -> CoreResult<GroupAnswer> {
        let coordinator = coordinator_of(group, self.shard_count);
        if coordinator == self.shard_id {
            return Ok(self.group_op_here(op).await);
        }
        match self.call(coordinator, RemoteCall::Group(op)).await? {
            RemoteReply::Group(answer) => Ok(answer),
            other => Err(other.unexpected(coordinator)),
        }
    }

    pub(crate) async fn group_op_here(&self, op: GroupOp) -> GroupAnswer {
        let now = Instant::now();
        let queues_of = |topic: &str| self.topics.get(topic).map_or(0, |t| t.queues);
        let coordinator = &self.coordinator;
        match op {
            GroupOp::Join(call) => {
                let (view, changed) = coordinator.join(call, now, &queues_of);
                self.announce(changed);
                GroupAnswer::View(Some(view))
            }
            GroupOp::Leave {
                group,
                member_id,
                only_via,
            } => {
                let changed = coordinator.leave(&group, &member_id, only_via, &queues_of);
                let left = changed.is_some();
                self.announce(changed);
                GroupAnswer::Done(left)
            }
            GroupOp::View { group, member_id } => {
                GroupAnswer::View(coordinator.view(&group, &member_id))
            }
            GroupOp::Info { group } => GroupAnswer::Info(coordinator.info(&group, now)),
            GroupOp::List => GroupAnswer::List(coordinator.list(now)),
            GroupOp::Delete { group } => {
                let changed = coordinator.delete(&group);
                let existed = changed.is_some();
                self.announce(changed);
                GroupAnswer::Done(existed)
            }
        }
    }

    /// Tells every member of a changed group, wherever its connection is. Off the caller's
    /// path: delivery to other shards is a task of its own.
    fn announce(&self, changed: Option<Changed>) {
        let Some(changed) = changed else { return };
        for target in changed.notify {
            if target.shard == self.shard_id {
                self.deliver(target.connection, &changed.group, changed.generation);
                continue;
            }
            let Some(core) = self.me.upgrade() else {
                return;
            };
            let (group, generation) = (changed.group.clone(), changed.generation);
            glommio::spawn_local(async move {
                let call = RemoteCall::Notify { connection: target.connection, group, generation };
                if let Err(err) = core.call(target.shard, call).await {
                    tracing::debug!(shard = target.shard, error = %err, "a group change could not be announced");
                }
            })
            .detach();
        }
    }

    /// Tells the member behind `connection` on this shard, if it is still connected.
    pub(crate) fn deliver(&self, connection: u64, group: &str, generation: u64) {
        let notifier = self.notifiers.borrow().get(&connection).cloned();
        if let Some(notifier) = notifier {
            notifier.group_changed(group, generation);
        }
    }

    /// Registers a connection that can be told about group changes; members joining through it
    /// name the returned target.
    pub fn register_notifier(&self, notifier: Rc<dyn GroupNotifier>) -> NotifyTarget {
        let connection = self.next_connection.get();
        self.next_connection.set(connection + 1);
        self.notifiers.borrow_mut().insert(connection, notifier);
        NotifyTarget {
            shard: self.shard_id,
            connection,
        }
    }

    pub fn unregister_notifier(&self, target: NotifyTarget) {
        self.notifiers.borrow_mut().remove(&target.connection);
    }

    /// A connection closed: its notifier goes, and the `(group, member)` that joined through it
    /// leave their groups (those still registered through it), in a task of their own.
    pub fn connection_closed(
        self: &Rc<Self>,
        target: NotifyTarget,
        joined: std::collections::BTreeSet<(String, String)>,
    ) {
        self.unregister_notifier(target);
        if joined.is_empty() {
            return;
        }
        let core = self.clone();
        glommio::spawn_local(async move {
            for (group, member) in joined {
                if let Err(err) = core.leave_group(&group, &member, Some(target)).await {
                    tracing::debug!(%group, %member, error = %err, "a closed connection's member could not leave its group");
                }
            }
        })
        .detach();
    }

    /// Expires silent members, expired queue locks, and writes the groups file when it
    /// changed; every `HOUSEKEEPING_INTERVAL` until dropped.
    pub async fn housekeeping(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(HOUSEKEEPING_INTERVAL).await;
            let queues_of = |topic: &str| self.topics.get(topic).map_or(0, |t| t.queues);
            for changed in self.coordinator.expire(Instant::now(), &queues_of) {
                self.announce(Some(changed));
            }
            self.expire_locks(Instant::now());
            self.persist_groups().await;
        }
    }

    /// Writes the groups file if a group's record changed.
    pub async fn persist_groups(&self) {
        if let Some(records) = self.coordinator.take_dirty_records() {
            if let Err(err) = persist::write(self.store.dir(), &records).await {
                tracing::warn!(shard = self.shard_id, error = %err, "writing the groups file failed; will retry");
                self.coordinator.mark_dirty();
            }
        }
    }
}

fn unexpected(answer: GroupAnswer) -> CoreError {
    tracing::error!(?answer, "a group call got an answer of another kind");
    CoreError::InvalidArgument("internal: unexpected answer to a group call".into())
}

/// One queue of a group as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupQueueStatus {
    pub topic: String,
    pub queue_id: u32,
    pub shard_id: u32,
    /// A broadcasting member's own progress, or `None` for the group's.
    pub member_id: Option<String>,
    pub committed: Option<u64>,
    pub max_offset: u64,
    pub lag: u64,
}

impl Core {
    /// A group with its members and, per subscribed queue, its committed offset and lag.
    pub async fn describe_group(
        &self,
        group: &str,
    ) -> CoreResult<Option<(GroupInfo, Vec<GroupQueueStatus>)>> {
        let Some(info) = self.group_info(group).await? else {
            return Ok(None);
        };
        let broadcasting = info.mode == super::groups::Mode::Broadcasting;
        let progress_keys: Vec<(String, Option<String>)> = if broadcasting {
            info.members
                .iter()
                .map(|m| {
                    (
                        format!("{group}@{}", m.member_id),
                        Some(m.member_id.clone()),
                    )
                })
                .collect()
        } else {
            vec![(group.to_string(), None)]
        };
        let mut queues = Vec::new();
        for subscription in &info.subscriptions {
            let Some(topic) = self.topics.get(&subscription.topic) else {
                continue;
            };
            for queue_id in 0..topic.queues {
                let (_, max_offset) = self.queue_offsets(&topic.name, queue_id).await?;
                for (key, member_id) in &progress_keys {
                    let query = super::queue_ops::QueueOp::Query { group: key.clone() };
                    let committed = self.offset_op(&topic.name, queue_id, query).await?;
                    queues.push(GroupQueueStatus {
                        topic: topic.name.clone(),
                        queue_id,
                        shard_id: self.owner(&topic.name, queue_id),
                        member_id: member_id.clone(),
                        committed,
                        max_offset,
                        lag: max_offset.saturating_sub(committed.unwrap_or(0)),
                    });
                }
            }
        }
        Ok(Some((info, queues)))
    }

    /// Moves a group's offsets of every queue of `topic`; returns `(queue, new offset)`.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: super::queue_ops::ResetTarget,
    ) -> CoreResult<Vec<(u32, u64)>> {
        Self::check_group(group)?;
        let queues = self.topic(topic)?.queues;
        let mut moved = Vec::with_capacity(queues as usize);
        for queue_id in 0..queues {
            let op = super::queue_ops::QueueOp::Reset {
                group: group.to_string(),
                to,
            };
            let offset = self.offset_op(topic, queue_id, op).await?.unwrap_or(0);
            moved.push((queue_id, offset));
        }
        tracing::info!(shard = self.shard_id, group, topic, ?to, "offsets reset");
        Ok(moved)
    }
}
