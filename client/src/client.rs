//! [`Client`]: the shard-aware entry point. Owns one [`Connection`] per broker shard it has
//! needed so far, opened lazily with `Hello { wanted_shard: Some(k) }`.
//!
//! Routing: a request about a queue goes to the connection of
//! `routing::shard_for_queue(topic, queue, shard_count)`; admin requests (topics, shard map) go
//! to any open connection. The bootstrap connection (`wanted_shard: None`) tells the shard count
//! and is kept as the connection of the shard that accepted it. `connect` also fetches the
//! shard map and refuses a broker whose routing function this client does not implement.
//!
//! Invariants: at most one connection per shard is being opened at a time (a per-shard lock);
//! a closed connection is replaced on its shard's next use, but requests that were in flight on
//! it are not retried (a produce may or may not have been stored).
//!
//! `Client` is a cheap `Rc` handle: clone it to share connections between producers and
//! consumers on the same glommio executor. It is `!Send`; a program with several executors
//! creates one `Client` per executor.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use shardmq_protocol::limits::{
    validate_topic_name, BATCH_BYTES_MAX, PULL_WAIT_MS_MAX, QUEUES_PER_TOPIC_MAX,
};
use shardmq_protocol::messages::{
    CreateTopic, DeleteTopic, ListTopics, ProduceReply, Pull, QueueOffsets, QueueOffsetsReply,
    ShardMap, ShardMapRequest, ShardStats, ShardStatsRequest, TopicInfo, TopicList, TopicStatus,
    TopicStatusRequest, UpdateTopic,
};
use shardmq_protocol::messages::{HelloReply, Produce};
use shardmq_protocol::routing::{shard_for_queue, ROUTING_NAME};
use shardmq_protocol::{envelope, FrameKind};

use crate::config::ClientConfig;
use crate::connection::{Connection, PendingReply};
use crate::error::{ClientError, Result};
use crate::pull::PullResult;
use crate::signal::with_timeout;

#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

struct Inner {
    /// Index = shard id: where that shard's connection is opened (the one address, or with
    /// TLS every shard's own TLS listener).
    shard_addrs: Vec<String>,
    name: String,
    config: ClientConfig,
    shard_count: u32,
    broker_version: String,
    /// Index = shard id.
    connections: RefCell<Vec<Option<Connection>>>,
    /// Index = shard id; one permit each, held while opening that shard's connection.
    connect_locks: Vec<glommio::sync::Semaphore>,
}

/// Where each shard's connection is opened: `addr` for all of them, or over TLS each shard's
/// own TLS listener as the broker's `HelloReply` lists them.
fn shard_addresses(addr: &str, config: &ClientConfig, hello: &HelloReply) -> Result<Vec<String>> {
    let n = hello.shard_count as usize;
    if config.tls.is_none() {
        return Ok(vec![addr.to_owned(); n]);
    }
    if hello.tls_addresses.len() != n || hello.tls_addresses.iter().any(String::is_empty) {
        return Err(ClientError::UnexpectedReply(format!(
            "a TLS HelloReply lists {} TLS addresses for {n} shards",
            hello.tls_addresses.len()
        )));
    }
    Ok(hello.tls_addresses.clone())
}

impl Client {
    /// Connects to a broker at `addr` (`HOST:PORT`) with the default [`ClientConfig`].
    pub async fn connect(addr: &str, name: &str) -> Result<Client> {
        Self::connect_with(addr, name, ClientConfig::default()).await
    }

    pub async fn connect_with(addr: &str, name: &str, config: ClientConfig) -> Result<Client> {
        let bootstrap = Connection::connect(addr, name, None, &config).await?;
        let hello = bootstrap.hello().clone();
        let shard_count = hello.shard_count;
        let shard_addrs = shard_addresses(addr, &config, &hello)?;
        let mut connections = vec![None; shard_count as usize];
        connections[hello.shard_id as usize] = Some(bootstrap.clone());
        let client = Client {
            inner: Rc::new(Inner {
                shard_addrs,
                name: name.to_owned(),
                config,
                shard_count,
                broker_version: hello.broker_version,
                connections: RefCell::new(connections),
                connect_locks: (0..shard_count)
                    .map(|_| glommio::sync::Semaphore::new(1))
                    .collect(),
            }),
        };
        let map = client.shard_map().await?;
        if map.routing != ROUTING_NAME {
            return Err(ClientError::Incompatible(format!(
                "broker routes with {:?}, this client implements {ROUTING_NAME:?}",
                map.routing
            )));
        }
        if map.shard_count != shard_count {
            return Err(ClientError::Incompatible(format!(
                "HelloReply says {shard_count} shards, ShardMap says {}",
                map.shard_count
            )));
        }
        Ok(client)
    }

    pub fn shard_count(&self) -> u32 {
        self.inner.shard_count
    }

    pub fn broker_version(&self) -> &str {
        &self.inner.broker_version
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The shard that owns `(topic, queue_id)`.
    pub fn shard_for(&self, topic: &str, queue_id: u32) -> u32 {
        shard_for_queue(topic, queue_id, self.inner.shard_count)
    }

    /// The open connection to `shard`, opening (or reopening) it if needed.
    pub async fn connection(&self, shard: u32) -> Result<Connection> {
        if shard >= self.inner.shard_count {
            return Err(ClientError::InvalidArgument(format!(
                "shard {shard} does not exist (broker has {})",
                self.inner.shard_count
            )));
        }
        if let Some(conn) = self.open_connection(shard) {
            return Ok(conn);
        }
        let _permit = self.inner.connect_locks[shard as usize]
            .acquire_permit(1)
            .await
            .map_err(|_| ClientError::Closed)?;
        // Someone else may have opened it while we waited for the lock.
        if let Some(conn) = self.open_connection(shard) {
            return Ok(conn);
        }
        let conn = Connection::connect(
            &self.inner.shard_addrs[shard as usize],
            &self.inner.name,
            Some(shard),
            &self.inner.config,
        )
        .await?;
        if conn.hello().shard_count != self.inner.shard_count {
            return Err(ClientError::Incompatible(format!(
                "shard count changed from {} to {}",
                self.inner.shard_count,
                conn.hello().shard_count
            )));
        }
        self.inner.connections.borrow_mut()[shard as usize] = Some(conn.clone());
        Ok(conn)
    }

    /// The connection for the shard that owns `(topic, queue_id)`.
    pub async fn connection_for_queue(&self, topic: &str, queue_id: u32) -> Result<Connection> {
        self.connection(self.shard_for(topic, queue_id)).await
    }

    fn open_connection(&self, shard: u32) -> Option<Connection> {
        self.inner.connections.borrow()[shard as usize]
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Any open connection, for admin requests; opens shard 0's if none is open.
    pub(crate) async fn any_connection(&self) -> Result<Connection> {
        let open = self
            .inner
            .connections
            .borrow()
            .iter()
            .flatten()
            .find(|c| !c.is_closed())
            .cloned();
        match open {
            Some(conn) => Ok(conn),
            None => self.connection(0).await,
        }
    }

    pub async fn create_topic(&self, name: &str, queues: u32) -> Result<TopicInfo> {
        self.create_topic_with(name, queues, None).await
    }

    /// [`Client::create_topic`] with a permission (RocketMQ bits: read 4, write 2; `None` is
    /// both).
    pub async fn create_topic_with(
        &self,
        name: &str,
        queues: u32,
        perm: Option<u8>,
    ) -> Result<TopicInfo> {
        check_topic(name)?;
        if queues == 0 || queues > QUEUES_PER_TOPIC_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "queue count {queues} not in 1..={QUEUES_PER_TOPIC_MAX}"
            )));
        }
        let request = CreateTopic {
            name: name.to_owned(),
            queues,
            perm,
        };
        let conn = self.any_connection().await?;
        conn.request(FrameKind::CreateTopic, &request, &[])
            .await?
            .decode()
    }

    /// Changes a topic: more queues, or its permission (RocketMQ bits: read 4, write 2).
    pub async fn update_topic(
        &self,
        name: &str,
        queues: Option<u32>,
        perm: Option<u8>,
    ) -> Result<TopicInfo> {
        check_topic(name)?;
        let request = UpdateTopic {
            name: name.to_owned(),
            queues,
            perm,
        };
        let conn = self.any_connection().await?;
        conn.request(FrameKind::UpdateTopic, &request, &[])
            .await?
            .decode()
    }

    /// Deletes a topic and frees its queues; a topic created again under the name starts empty.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicInfo> {
        check_topic(name)?;
        let request = DeleteTopic {
            name: name.to_owned(),
        };
        let conn = self.any_connection().await?;
        conn.request(FrameKind::DeleteTopic, &request, &[])
            .await?
            .decode()
    }

    /// A topic with every queue's shard and offsets.
    pub async fn topic_status(&self, name: &str) -> Result<TopicStatus> {
        check_topic(name)?;
        let request = TopicStatusRequest {
            name: name.to_owned(),
        };
        let conn = self.any_connection().await?;
        conn.request(FrameKind::TopicStatus, &request, &[])
            .await?
            .decode()
    }

    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let conn = self.any_connection().await?;
        let list: TopicList = conn
            .request(FrameKind::ListTopics, &ListTopics {}, &[])
            .await?
            .decode()?;
        Ok(list.topics)
    }

    /// The topic named `name`, if it exists (from [`Client::list_topics`]).
    pub async fn topic(&self, name: &str) -> Result<Option<TopicInfo>> {
        Ok(self
            .list_topics()
            .await?
            .into_iter()
            .find(|t| t.name == name))
    }

    pub async fn shard_map(&self) -> Result<ShardMap> {
        let conn = self.any_connection().await?;
        conn.request(FrameKind::ShardMap, &ShardMapRequest {}, &[])
            .await?
            .decode()
    }

    /// What `shard` holds right now: connections and buffered bytes.
    pub async fn shard_stats(&self, shard: u32) -> Result<ShardStats> {
        let conn = self.connection(shard).await?;
        conn.request(FrameKind::ShardStats, &ShardStatsRequest {}, &[])
            .await?
            .decode()
    }

    pub async fn queue_offsets(&self, topic: &str, queue_id: u32) -> Result<QueueOffsetsReply> {
        check_topic(topic)?;
        let request = QueueOffsets {
            topic: topic.to_owned(),
            queue_id,
        };
        let conn = self.connection_for_queue(topic, queue_id).await?;
        conn.request(FrameKind::QueueOffsets, &request, &[])
            .await?
            .decode()
    }

    /// Sends one encoded batch (from `batch::encode_batch` or `BatchBuilder::finish`) to the
    /// shard owning the queue, and waits for its acknowledgement.
    pub async fn produce_batch(
        &self,
        topic: &str,
        queue_id: u32,
        batch: &[u8],
    ) -> Result<ProduceReply> {
        let prefix = produce_prefix(topic, queue_id, batch)?;
        let conn = self.connection_for_queue(topic, queue_id).await?;
        conn.request_raw(FrameKind::Produce, &prefix, batch, conn.request_timeout())
            .await?
            .decode()
    }

    /// Sends one encoded batch without waiting for, or getting, an acknowledgement (RocketMQ's
    /// oneway): returns once the frame is written. Whether it was stored, nobody is told.
    pub async fn produce_oneway(&self, topic: &str, queue_id: u32, batch: &[u8]) -> Result<()> {
        let prefix = produce_prefix(topic, queue_id, batch)?;
        let conn = self.connection_for_queue(topic, queue_id).await?;
        conn.send_oneway(FrameKind::Produce, &prefix, batch).await
    }

    /// Pulls up to `max_messages` records / `max_bytes` bytes of `(topic, queue_id)` from
    /// `offset`, waiting up to `wait_ms` for data when there is none. The request times out after
    /// the request timeout plus `wait_ms`.
    pub async fn pull(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
        wait_ms: u32,
    ) -> Result<PullResult> {
        self.send_pull(topic, queue_id, offset, max_messages, max_bytes, wait_ms)
            .await?
            .wait()
            .await
    }

    /// First half of [`Client::pull`]: sends the request and returns a handle to await its
    /// reply, so a consumer can have the next pull in flight while it processes this one.
    pub async fn send_pull(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
        wait_ms: u32,
    ) -> Result<PendingPull> {
        let request = Pull {
            topic: topic.to_owned(),
            queue_id,
            offset,
            max_messages,
            max_bytes,
            wait_ms,
            filter: None,
            commit: None,
        };
        self.send_pull_request(request).await
    }

    /// [`Client::send_pull`] of a whole pull request: with a filter (only matching records
    /// come back) and an offset to commit for a group first.
    pub async fn send_pull_request(&self, request: Pull) -> Result<PendingPull> {
        check_topic(&request.topic)?;
        if request.wait_ms > PULL_WAIT_MS_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "wait_ms {} exceeds {PULL_WAIT_MS_MAX}",
                request.wait_ms
            )));
        }
        let (queue_id, offset, wait_ms) = (request.queue_id, request.offset, request.wait_ms);
        let filtered = request.filter.is_some();
        let conn = self.connection_for_queue(&request.topic, queue_id).await?;
        let timeout = conn.request_timeout() + Duration::from_millis(u64::from(wait_ms));
        let prefix = envelope::encode(&request)?;
        let pending =
            with_timeout(timeout, conn.send_request(FrameKind::Pull, &prefix, &[])).await?;
        Ok(PendingPull {
            pending,
            queue_id,
            offset,
            timeout,
            filtered,
        })
    }
}

/// A pull whose request is on the wire; [`PendingPull::wait`] for its reply. Dropping it
/// abandons the reply.
pub struct PendingPull {
    pending: PendingReply,
    queue_id: u32,
    offset: u64,
    timeout: Duration,
    /// The pull carried a filter: the reply's batches may skip offsets.
    filtered: bool,
}

impl PendingPull {
    /// The offset this pull asked for.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub async fn wait(self) -> Result<PullResult> {
        let reply = with_timeout(self.timeout, self.pending.wait()).await?;
        let mut result = PullResult::new(reply.into_payload(), self.queue_id, self.offset)?;
        if self.filtered {
            result.allow_gaps();
        }
        Ok(result)
    }
}

pub(crate) fn check_topic(name: &str) -> Result<()> {
    validate_topic_name(name).map_err(|reason| ClientError::InvalidArgument(reason.to_owned()))
}

/// The envelope prefix of a produce request carrying `batch`, after checks the broker would
/// otherwise refuse the batch for.
pub(crate) fn produce_prefix(topic: &str, queue_id: u32, batch: &[u8]) -> Result<Vec<u8>> {
    check_topic(topic)?;
    if batch.is_empty() || batch.len() > BATCH_BYTES_MAX as usize {
        return Err(ClientError::InvalidArgument(format!(
            "batch of {} bytes not in 1..={BATCH_BYTES_MAX}",
            batch.len()
        )));
    }
    let meta = Produce {
        topic: topic.to_owned(),
        queue_id,
    };
    Ok(envelope::encode_prefix(&meta, batch.len())?)
}
