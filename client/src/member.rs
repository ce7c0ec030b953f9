//! [`GroupMember`]: one member of a consumer group — it joins, heartbeats, and always knows its
//! current assignment.
//!
//! The member joins through the group's coordinator shard and heartbeats (re-joins) every
//! `heartbeat_interval`; the broker announces every change of the group on that connection
//! (`GroupChanged`), and the member re-joins at once to learn its new assignment, so a queue it
//! lost stops being consumed without waiting for the next heartbeat. If the connection breaks,
//! the next heartbeat opens a new one and joins again (the broker had let the member leave when
//! the old one closed). [`GroupMember::leave`] leaves at once; dropping the member stops its
//! heartbeats and the broker expires it after its session timeout.
//!
//! Runs on the glommio executor of its [`Client`]; `!Send`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use event_listener::Event;
use shardmq_protocol::messages::{FilterSpec, GroupView, JoinGroup, QueueRef, Subscription};

use crate::client::Client;
use crate::error::Result;
use crate::group_calls::check_group;

/// RocketMQ's message models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each queue to one member of the group; the group's offsets.
    #[default]
    Clustering,
    /// Every member gets every message; each member's own offsets.
    Broadcasting,
}

/// How the broker divides queues among members (RocketMQ's allocation strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Average,
    Circle,
}

/// What a subscription lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `*`, or tags joined by `||`.
    Tags(String),
    /// RocketMQ's SQL92 over message properties (and `TAGS`, `KEYS`, `UNIQ_KEY`).
    Sql92(String),
}

impl Filter {
    pub fn all() -> Filter {
        Filter::Tags("*".into())
    }

    pub fn to_spec(&self) -> FilterSpec {
        match self {
            Filter::Tags(e) => FilterSpec {
                kind: 0,
                expression: e.clone(),
            },
            Filter::Sql92(e) => FilterSpec {
                kind: 1,
                expression: e.clone(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub group: String,
    /// Unique within the group; default: the client's name and a random suffix.
    pub member_id: String,
    pub mode: Mode,
    pub strategy: Strategy,
    /// `(topic, filter)` pairs.
    pub subscriptions: Vec<(String, Filter)>,
    /// The broker lets the member go after this long without a heartbeat.
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
}

impl MemberConfig {
    /// A clustering member of `group` subscribed to everything of `topic`.
    pub fn new(group: &str, topic: &str) -> MemberConfig {
        MemberConfig {
            group: group.to_owned(),
            member_id: format!("member-{:016x}", random_u64()),
            mode: Mode::Clustering,
            strategy: Strategy::Average,
            subscriptions: vec![(topic.to_owned(), Filter::all())],
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(3),
        }
    }

    fn join_request(&self) -> JoinGroup {
        JoinGroup {
            group: self.group.clone(),
            member_id: self.member_id.clone(),
            mode: match self.mode {
                Mode::Clustering => 0,
                Mode::Broadcasting => 1,
            },
            strategy: match self.strategy {
                Strategy::Average => 0,
                Strategy::Circle => 1,
            },
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(topic, filter)| Subscription {
                    topic: topic.clone(),
                    filter: filter.to_spec(),
                })
                .collect(),
            session_timeout_ms: self.session_timeout.as_millis().min(u128::from(u32::MAX)) as u32,
        }
    }

    /// The group key this member's offsets are committed under.
    pub fn offsets_key(&self) -> String {
        match self.mode {
            Mode::Clustering => self.group.clone(),
            Mode::Broadcasting => format!("{}@{}", self.group, self.member_id),
        }
    }

    /// The filter of `topic`'s subscription.
    pub fn filter_of(&self, topic: &str) -> Option<&Filter> {
        self.subscriptions
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, f)| f)
    }
}

/// A pseudo-random number for ids, from the clock and the process (not for security).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

pub struct GroupMember {
    client: Client,
    config: MemberConfig,
    view: RefCell<GroupView>,
    /// Notified whenever the view changes.
    changed: Event,
    left: Cell<bool>,
    heartbeats: RefCell<Option<glommio::Task<()>>>,
}

impl GroupMember {
    /// Joins the group (the first join is awaited: a bad subscription fails here) and starts
    /// heartbeating.
    pub async fn join(client: &Client, config: MemberConfig) -> Result<Rc<GroupMember>> {
        check_group(&config.group)?;
        let view = client.join_group(&config.join_request()).await?;
        let member = Rc::new(GroupMember {
            client: client.clone(),
            config,
            view: RefCell::new(view),
            changed: Event::new(),
            left: Cell::new(false),
            heartbeats: RefCell::new(None),
        });
        let task = glommio::spawn_local(heartbeat_loop(Rc::downgrade(&member)));
        *member.heartbeats.borrow_mut() = Some(task);
        Ok(member)
    }

    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    pub fn member_id(&self) -> &str {
        &self.config.member_id
    }

    /// The queues this member consumes now.
    pub fn assignment(&self) -> Vec<QueueRef> {
        self.view.borrow().assignment.clone()
    }

    /// Every member of the group, sorted.
    pub fn members(&self) -> Vec<String> {
        self.view.borrow().members.clone()
    }

    pub fn generation(&self) -> u64 {
        self.view.borrow().generation
    }

    /// Resolves once the view's generation differs from `seen`.
    pub async fn changed_since(&self, seen: u64) {
        loop {
            let listener = self.changed.listen();
            if self.generation() != seen || self.left.get() {
                return;
            }
            listener.await;
        }
    }

    /// Joins again now and takes the answer.
    async fn rejoin(&self) -> Result<()> {
        let view = self.client.join_group(&self.config.join_request()).await?;
        let moved = view != *self.view.borrow();
        *self.view.borrow_mut() = view;
        if moved {
            self.changed.notify(usize::MAX);
        }
        Ok(())
    }

    /// Leaves the group now; the heartbeats stop.
    pub async fn leave(&self) -> Result<()> {
        self.left.set(true);
        self.heartbeats.borrow_mut().take();
        *self.view.borrow_mut() = GroupView {
            generation: u64::MAX,
            members: Vec::new(),
            assignment: Vec::new(),
        };
        self.changed.notify(usize::MAX);
        self.client
            .leave_group(&self.config.group, &self.config.member_id)
            .await
    }
}

/// Heartbeats until the member is dropped or leaves; re-joins at once when the broker announces
/// a change newer than the member's view.
async fn heartbeat_loop(member: std::rc::Weak<GroupMember>) {
    loop {
        let Some(strong) = member.upgrade() else {
            return;
        };
        let interval = strong.config.heartbeat_interval;
        let changes = match strong.client.coordinator(&strong.config.group).await {
            Ok(conn) => Some(conn.group_changes()),
            Err(_) => None,
        };
        let group = strong.config.group.clone();
        let seen = strong.generation();
        drop(strong);
        let announced = async {
            let Some(changes) = changes else {
                return std::future::pending().await;
            };
            loop {
                let listener = changes.changed.listen();
                if changes.generation(&group).is_some_and(|g| g > seen) {
                    return;
                }
                listener.await;
            }
        };
        futures_lite::future::or(announced, glommio::timer::sleep(interval)).await;
        let Some(strong) = member.upgrade() else {
            return;
        };
        if strong.left.get() {
            return;
        }
        if let Err(err) = strong.rejoin().await {
            tracing::debug!(group = %strong.config.group, error = %err, "heartbeat failed; retrying");
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
    }
}
