//! What the remoting front end of one shard knows beyond the core: how its queues are numbered
//! for RocketMQ clients, its broker name and advertised address, the subscriptions its clients
//! announced in heartbeats (so a pull that does not carry its expression finds it without a
//! cross-shard call), what each client said of itself in its heartbeats (for the connection
//! lists admin tools ask for), and the directory of every shard's broker (for the name server).
//!
//! A RocketMQ client heartbeats every broker of its routes, so each shard hears every remoting
//! client of a group and needs no cross-shard call to describe it. Member entries go when the
//! client unregisters or its connection closes; subscriptions stay (they are the group's, and
//! a pull without one falls back to the group's record). Both maps are bounded
//! (`REMEMBERED_MAX` entries): past that, nothing more is remembered, which costs a pull a
//! cross-shard call and a connection list a client's address, never a wrong answer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::shard_queues::{broker_name, ShardQueues};
use crate::core::groups::FilterSpec;

/// The most subscriptions, and separately the most members, one shard remembers.
pub const REMEMBERED_MAX: usize = 65_536;

/// One shard as a RocketMQ broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardBroker {
    pub shard_id: u32,
    pub broker_name: String,
    /// Where clients reach it (the store host of its messages).
    pub addr: SocketAddr,
}

/// Every shard's broker, known once all of them are listening (before the ready line), and
/// what every RocketMQ-facing listener (brokers and name server) shares.
#[derive(Debug, Default)]
pub struct Directory {
    pub cluster: String,
    /// A connection that sends no request for this long is closed (Java's
    /// `serverChannelMaxIdleTimeSeconds`, 120 s; clients heartbeat every 30 s).
    pub client_idle: Duration,
    brokers: OnceLock<Vec<ShardBroker>>,
}

impl Directory {
    pub fn new(cluster: &str, client_idle: Duration) -> Arc<Directory> {
        Arc::new(Directory {
            cluster: cluster.to_string(),
            client_idle,
            brokers: OnceLock::new(),
        })
    }

    /// Set once by boot, in shard order.
    pub fn publish(&self, brokers: Vec<ShardBroker>) {
        let _ = self.brokers.set(brokers);
    }

    pub fn brokers(&self) -> &[ShardBroker] {
        self.brokers.get().map_or(&[], Vec::as_slice)
    }
}

/// The remoting side of one shard. Lives on its executor (`Rc`).
pub struct RemotingShard {
    pub queues: ShardQueues,
    pub broker_name: String,
    pub advertised: SocketAddr,
    pub directory: Arc<Directory>,
    /// `(group, topic)` → the filter the group's clients last announced here.
    subscriptions: RefCell<HashMap<(String, String), FilterSpec>>,
    /// `(group, client id)` → what the client's last heartbeat here said of it.
    members: RefCell<HashMap<(String, String), MemberMeta>>,
}

/// What a consumer's heartbeat says of it beyond its subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMeta {
    pub addr: SocketAddr,
    /// `LanguageCode` name from the request header.
    pub language: String,
    pub version: i32,
    pub consume_type: &'static str,
    pub consume_from_where: &'static str,
}

impl RemotingShard {
    pub fn new(
        shard_id: u32,
        shard_count: u32,
        name: &str,
        advertised: SocketAddr,
        directory: Arc<Directory>,
    ) -> RemotingShard {
        RemotingShard {
            queues: ShardQueues::new(shard_id, shard_count),
            broker_name: broker_name(name, shard_id, shard_count),
            advertised,
            directory,
            subscriptions: RefCell::new(HashMap::new()),
            members: RefCell::new(HashMap::new()),
        }
    }

    pub fn remember_subscription(&self, group: &str, topic: &str, filter: FilterSpec) {
        let mut subscriptions = self.subscriptions.borrow_mut();
        let key = (group.to_string(), topic.to_string());
        if subscriptions.len() < REMEMBERED_MAX || subscriptions.contains_key(&key) {
            subscriptions.insert(key, filter);
        }
    }

    pub fn remember_member(&self, group: &str, client_id: &str, meta: MemberMeta) {
        let mut members = self.members.borrow_mut();
        let key = (group.to_string(), client_id.to_string());
        if members.len() < REMEMBERED_MAX || members.contains_key(&key) {
            members.insert(key, meta);
        }
    }

    /// Forgets a client of a group, if it was last heard from `addr` (a client that moved to
    /// another connection keeps its entry).
    pub fn forget_member(&self, group: &str, client_id: &str, addr: SocketAddr) {
        let key = (group.to_string(), client_id.to_string());
        let mut members = self.members.borrow_mut();
        if members.get(&key).is_some_and(|m| m.addr == addr) {
            members.remove(&key);
        }
    }

    pub fn member(&self, group: &str, client_id: &str) -> Option<MemberMeta> {
        self.members
            .borrow()
            .get(&(group.to_string(), client_id.to_string()))
            .cloned()
    }

    pub fn subscription(&self, group: &str, topic: &str) -> Option<FilterSpec> {
        self.subscriptions
            .borrow()
            .get(&(group.to_string(), topic.to_string()))
            .cloned()
    }
}
