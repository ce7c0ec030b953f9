//! The broker core: RocketMQ's semantics on one shard, independent of any wire protocol.
//!
//! Every front end (`fronts::native` today; RocketMQ remoting and gRPC next) decodes a request
//! into a call of [`Core`], and encodes the plain result it gets back. A feature is written here
//! once; a protocol adds bytes, not semantics (`DESIGN.md` §3).
//!
//! Where state lives: a queue's data, index (and, as they come, its consumer offsets and locks)
//! live on the shard that owns the queue (`routing::shard_for_queue`); topics are process-wide
//! (`topics`). A call about a queue another shard owns is forwarded over the mesh and served
//! there by the same code (`remote`), never refused.
//!
//! Map:
//! - [`topics`]: the topic registry and each shard's lock-free view of it.
//! - [`produce`]: appending a validated batch; when its acknowledgement may go.
//! - [`pull`]: reading a queue, with long polling.
//! - [`queue_ops`]: calls about one queue: offsets, consumer offsets, searches by time.
//! - [`admin`]: topic create / update / delete / status across shards.
//! - [`groups`]: consumer groups on their coordinator shard; [`membership`] wires them to calls
//!   and notifications.
//! - [`group_configs`]: subscription group settings (process-wide), what they refuse.
//! - [`filter`]: tag and SQL92 filters.
//! - [`locks`]: queue locks for orderly consumption.
//! - [`remote`]: the calls one shard makes on another, and their handler.
//! - [`error`]: the errors every call can fail with (`CoreError`).

pub mod admin;
pub mod error;
pub mod filter;
pub mod group_configs;
pub mod groups;
pub mod locks;
pub mod membership;
pub mod pop;
pub mod produce;
pub mod pull;
pub mod queue_ops;
pub mod remote;
pub mod topics;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use event_listener::Event;
use shardmq_protocol::routing::shard_for_queue;
use shardmq_shards::ShardStore;

pub use error::{CoreError, CoreResult};
use filter::FilterCache;
use group_configs::{GroupConfigView, GroupConfigs};
use groups::persist::GroupRecord;
use groups::Coordinator;
use locks::QueueLocks;
use membership::GroupNotifier;
use remote::CoreMesh;
use topics::{Topic, TopicRegistry, TopicView};

/// Wall-clock milliseconds since the epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Settings of the core that every shard shares.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// A produce to a topic that does not exist creates it (RocketMQ's
    /// `autoCreateTopicEnable`, on by default there too).
    pub auto_create_topics: bool,
    /// Queues of a topic created that way.
    pub default_topic_queues: u32,
    /// How long a queue lock for orderly consumption lasts unless renewed (RocketMQ's
    /// `rocketmq.broker.rebalance.lockMaxLiveTime`, 60 s).
    pub queue_lock_expiry: Duration,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            auto_create_topics: true,
            default_topic_queues: 8,
            queue_lock_expiry: Duration::from_secs(60),
        }
    }
}

/// One shard's core. Lives on that shard's executor (`Rc`).
pub struct Core {
    pub shard_id: u32,
    pub shard_count: u32,
    pub store: ShardStore,
    pub topics: TopicView,
    /// Subscription group settings, process-wide, and this shard's view of them.
    pub group_configs: Arc<GroupConfigs>,
    pub group_view: GroupConfigView,
    pub config: CoreConfig,
    mesh: CoreMesh,
    shutting_down: Cell<bool>,
    /// Notified once when shutdown begins: long polls answer at once.
    pub shutdown: Event,
    /// This core itself, for tasks it spawns.
    me: Weak<Core>,
    /// The groups this shard coordinates.
    coordinator: Coordinator,
    /// Connections that can be told about group changes, by id.
    notifiers: RefCell<HashMap<u64, Rc<dyn GroupNotifier>>>,
    next_connection: Cell<u64>,
    /// Parsed subscription filters.
    filters: FilterCache,
    /// Orderly-consumption locks of the queues this shard owns.
    locks: QueueLocks,
    /// POP consumers' progress over the queues this shard owns.
    pop: pop::PopStates,
    /// What this shard counts about its work (`ops::metrics`).
    pub metrics: crate::ops::metrics::ShardMetrics,
}

impl Core {
    /// A shard's core over its opened store; `groups` are the records of the groups this shard
    /// coordinates (`groups::persist::load`).
    pub fn new(
        store: ShardStore,
        shard_count: u32,
        registry: Arc<TopicRegistry>,
        group_configs: Arc<GroupConfigs>,
        config: CoreConfig,
        mesh: CoreMesh,
        groups: Vec<GroupRecord>,
    ) -> Rc<Core> {
        Rc::new_cyclic(|me| Core {
            shard_id: store.shard_id(),
            shard_count,
            store,
            topics: TopicView::new(registry),
            group_view: GroupConfigView::new(group_configs.clone()),
            group_configs,
            locks: QueueLocks::new(config.queue_lock_expiry),
            metrics: crate::ops::metrics::ShardMetrics::default(),
            config,
            mesh,
            shutting_down: Cell::new(false),
            shutdown: Event::new(),
            me: me.clone(),
            coordinator: Coordinator::with_records(groups),
            notifiers: RefCell::new(HashMap::new()),
            next_connection: Cell::new(1),
            filters: FilterCache::default(),
            pop: pop::PopStates::default(),
        })
    }

    /// Writes what the core keeps across restarts (the groups file); before the store closes.
    pub async fn close(&self) {
        self.persist_groups().await;
    }

    pub(crate) fn expire_locks(&self, now: std::time::Instant) {
        self.locks.expire(now);
    }

    /// The shard that owns `(topic, queue_id)`.
    pub fn owner(&self, topic: &str, queue_id: u32) -> u32 {
        shard_for_queue(topic, queue_id, self.shard_count)
    }

    pub fn topic(&self, name: &str) -> CoreResult<Rc<Topic>> {
        self.topics
            .get(name)
            .ok_or_else(|| CoreError::TopicNotFound(name.to_string()))
    }

    /// The topic, checked to have queue `queue_id`.
    pub fn topic_queue(&self, name: &str, queue_id: u32) -> CoreResult<Rc<Topic>> {
        let topic = self.topic(name)?;
        if queue_id >= topic.queues {
            return Err(CoreError::QueueNotFound {
                topic: name.to_string(),
                queue_id,
                queues: topic.queues,
            });
        }
        Ok(topic)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        self.shutdown.notify(usize::MAX);
    }

    /// Resolves once shutdown has begun (at once if it has).
    pub async fn until_shutdown(&self) {
        loop {
            if self.shutting_down.get() {
                return;
            }
            let listener = self.shutdown.listen();
            if self.shutting_down.get() {
                return;
            }
            listener.await;
        }
    }

    /// Removes the stored queues of topics that no longer exist (deleted while a shard was
    /// down, or brought back by a log rescan). Called once at start.
    pub async fn drop_orphaned_queues(&self) {
        let orphaned: Vec<(u32, u32)> = self
            .store
            .queue_keys()
            .into_iter()
            .filter(|(topic_id, _)| !self.topics.has_id(*topic_id))
            .collect();
        for (topic_id, queue_id) in orphaned {
            if let Err(err) = self.store.delete_queue(topic_id, queue_id).await {
                tracing::warn!(shard = self.shard_id, topic_id, queue_id, error = %err, "cannot remove the index of a deleted topic");
            }
        }
    }
}
