//! Consumer groups: members, their subscriptions, and which member consumes which queue.
//!
//! Where state lives: a group has one home, its coordinator shard, picked by a pure function of
//! its name ([`coordinator_of`]), as Kafka's group coordinator is; every call about a group is
//! served there (`Core::group_op` forwards it). The coordinator holds the members in memory and
//! persists what survives a restart — the group's mode, strategy and subscriptions — in
//! `<shard dir>/groups` (members join again after a restart, as RocketMQ clients re-register by
//! heartbeat). Offsets live with the queues, not here (`queue_ops`).
//!
//! Membership: a member joins (or heartbeats) with its id, mode, strategy and subscriptions; it
//! leaves when it says so, when the connection it joined through closes, or when it misses its
//! heartbeats for its session timeout ([`Coordinator::expire`]). Every change recomputes the
//! assignment; when it or the member list changed the generation moves and every member is told
//! at once (`Notify`), so members do not wait for their next poll to stop consuming a queue they
//! lost.
//!
//! Assignment (clustering): for each subscribed topic, the topic's queues over the members that
//! subscribe to it, by the group's strategy (`assign`), members sorted by id; after a change
//! settles, no queue has two members. Broadcasting members each get every queue of what they
//! subscribe to. RocketMQ 4.x clients ignore the assignment and compute their own from the
//! member list ([`GroupView::members`]), with the same strategies.

pub mod assign;
pub mod coordinator;
pub mod persist;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shardmq_protocol::routing::shard_for_group;

pub use assign::Strategy;
pub use coordinator::Coordinator;

/// The shard that coordinates `group` (`routing::shard_for_group`).
pub fn coordinator_of(group: &str, shard_count: u32) -> u32 {
    shard_for_group(group, shard_count.max(1))
}

/// RocketMQ's message models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Mode {
    /// Each queue to one member; one offset per queue for the group.
    #[default]
    Clustering,
    /// Every member gets every message; each member's offsets are its own.
    Broadcasting,
}

impl Mode {
    pub fn from_code(code: u8) -> Option<Mode> {
        match code {
            0 => Some(Mode::Clustering),
            1 => Some(Mode::Broadcasting),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Mode::Clustering => 0,
            Mode::Broadcasting => 1,
        }
    }
}

/// How a subscription filters a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum FilterKind {
    /// `*`, or tags joined by `||`.
    #[default]
    Tag,
    /// RocketMQ's SQL92 over message properties.
    Sql92,
}

impl FilterKind {
    pub fn from_code(code: u8) -> Option<FilterKind> {
        match code {
            0 => Some(FilterKind::Tag),
            1 => Some(FilterKind::Sql92),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            FilterKind::Tag => 0,
            FilterKind::Sql92 => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilterSpec {
    pub kind: FilterKind,
    pub expression: String,
}

impl FilterSpec {
    /// Everything: `TAG *`.
    pub fn all() -> FilterSpec {
        FilterSpec {
            kind: FilterKind::Tag,
            expression: "*".into(),
        }
    }

    pub fn is_all(&self) -> bool {
        self.kind == FilterKind::Tag && matches!(self.expression.trim(), "*" | "")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub topic: String,
    pub filter: FilterSpec,
}

/// Where to tell a member that its group changed: a connection on some shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyTarget {
    pub shard: u32,
    pub connection: u64,
}

/// A member joining, or heartbeating (the same call).
#[derive(Debug, Clone)]
pub struct JoinCall {
    pub group: String,
    pub member_id: String,
    pub mode: Mode,
    pub strategy: Strategy,
    pub subscriptions: Vec<Subscription>,
    pub session_timeout: Duration,
    pub notify: Option<NotifyTarget>,
    /// The protocol the member speaks (`native`, `remoting`), for operators.
    pub protocol: &'static str,
}

/// What a member learns about its group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupView {
    /// Moves whenever the members or the assignment change.
    pub generation: u64,
    /// Every member's id, sorted (what RocketMQ's `GET_CONSUMER_LIST_BY_GROUP` answers).
    pub members: Vec<String>,
    /// The queues this member consumes: `(topic, queue id)`, sorted.
    pub assignment: Vec<(String, u32)>,
}

/// One member as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    pub mode: Mode,
    pub subscriptions: Vec<Subscription>,
    pub assignment: Vec<(String, u32)>,
    /// Milliseconds since its last heartbeat.
    pub idle_ms: u64,
    /// `native` or `remoting`.
    pub protocol: &'static str,
}

/// One group as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub mode: Mode,
    pub strategy: Strategy,
    pub generation: u64,
    /// Every topic any member subscribed to (kept across restarts).
    pub subscriptions: Vec<Subscription>,
    pub members: Vec<MemberInfo>,
}
