//! Per-shard state every connection handler on that shard sees. Lives on one core (`Rc`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use event_listener::Event;
use shardmq_protocol::messages::TopicInfo;
use shardmq_protocol::routing::shard_for_queue;
use shardmq_shards::ShardStore;

use crate::limits::{REPLY_BYTES_QUEUED_PER_SHARD_MAX, REQUEST_BYTES_BUFFERED_PER_SHARD_MAX};
use crate::server::budget::ByteBudget;
use crate::server::error::HandlerError;
use crate::server::watchdog::Watchdog;
use crate::topics::TopicRegistry;

pub struct ShardContext {
    pub shard_id: u32,
    pub shard_count: u32,
    pub store: ShardStore,
    topics: Arc<TopicRegistry>,
    /// Read cache of the registry; topics never change once created.
    topic_cache: RefCell<HashMap<String, TopicInfo>>,
    shutting_down: Cell<bool>,
    /// Notified once when shutdown begins: readers stop reading, long polls return.
    pub shutdown: Event,
    open_connections: Cell<u64>,
    /// Notified whenever a connection closes.
    pub connection_closed: Event,
    /// Bytes of request frames every connection of this shard holds while reading or handling
    /// them.
    pub request_budget: ByteBudget,
    /// Bytes of replies every connection of this shard has queued for its writer.
    pub reply_budget: Rc<ByteBudget>,
    /// Closes connections whose frame bodies or socket writes stall.
    pub watchdog: Rc<Watchdog>,
}

/// One connection's place in the shard's count; given back when dropped, however the
/// connection ends.
pub struct ConnectionSlot {
    ctx: Rc<ShardContext>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.ctx.connection_done();
    }
}

impl ShardContext {
    pub fn new(
        shard_id: u32,
        shard_count: u32,
        store: ShardStore,
        topics: Arc<TopicRegistry>,
        stall_timeout: Duration,
    ) -> Self {
        ShardContext {
            shard_id,
            shard_count,
            store,
            topics,
            topic_cache: RefCell::new(HashMap::new()),
            shutting_down: Cell::new(false),
            shutdown: Event::new(),
            open_connections: Cell::new(0),
            connection_closed: Event::new(),
            request_budget: ByteBudget::new(REQUEST_BYTES_BUFFERED_PER_SHARD_MAX),
            reply_budget: Rc::new(ByteBudget::new(REPLY_BYTES_QUEUED_PER_SHARD_MAX)),
            watchdog: Watchdog::new(shard_id, stall_timeout),
        }
    }

    pub fn registry(&self) -> &Arc<TopicRegistry> {
        &self.topics
    }

    pub fn topic(&self, name: &str) -> Result<TopicInfo, HandlerError> {
        if let Some(topic) = self.topic_cache.borrow().get(name) {
            return Ok(topic.clone());
        }
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| HandlerError::TopicNotFound(name.to_string()))?;
        self.topic_cache
            .borrow_mut()
            .insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// Resolves a queue this shard must own: the topic exists, the queue exists, and the routing
    /// function assigns it here.
    pub fn owned_queue(&self, topic_name: &str, queue_id: u32) -> Result<TopicInfo, HandlerError> {
        let topic = self.topic(topic_name)?;
        if queue_id >= topic.queues {
            return Err(HandlerError::QueueNotFound {
                topic: topic.name,
                queue_id,
                queues: topic.queues,
            });
        }
        let owner = shard_for_queue(topic_name, queue_id, self.shard_count);
        if owner != self.shard_id {
            return Err(HandlerError::WrongShard {
                topic: topic.name,
                queue_id,
                this: self.shard_id,
                owner,
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

    /// Counts a connection in; the slot counts it out when dropped.
    pub fn connection_slot(self: &Rc<Self>) -> ConnectionSlot {
        self.open_connections.set(self.open_connections.get() + 1);
        ConnectionSlot { ctx: self.clone() }
    }

    fn connection_done(&self) {
        self.open_connections.set(self.open_connections.get() - 1);
        self.connection_closed.notify(usize::MAX);
    }

    pub fn open_connections(&self) -> u64 {
        self.open_connections.get()
    }
}
