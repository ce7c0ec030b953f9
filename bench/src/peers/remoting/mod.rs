//! The RocketMQ remoting driver, and the rocketmq-rust peer it drives.
//!
//! `--peer rocketmq-rust` (and `rocketmq-rust-sync`, SYNC_FLUSH) starts
//! `rocketmq-namesrv-rust` and `rocketmq-broker-rust` (from `PATH`; `cargo install --locked
//! rocketmq-namesrv rocketmq-broker`) on loopback with a fresh store, creates the topic with
//! `--peer-queues` queues (UPDATE_AND_CREATE_TOPIC), and runs the engine's workload against the
//! broker directly (the bench knows the broker's address, so it skips route lookups):
//! - a batch of 1 is one SEND_MESSAGE_V2 (310) with the payload as body; a larger batch is one
//!   SEND_BATCH_MESSAGE (320) with the §5.6 batch body; both acknowledged by code 0;
//! - a consumer is a PULL_MESSAGE (11) long-poll loop per queue from the queue's max offset
//!   (GET_MAX_OFFSET; end-to-end) or min offset (GET_MIN_OFFSET; draining a backlog), with the subscription `*` in the request (no heartbeat
//!   needed), reading the stored-message records of the response body.
//!
//! Peer configuration, for fairness: `commitLogMicroBatchMaxWaitMicros = 0`. By default the
//! port's commit-log append worker waits 50 µs for more requests to batch, and tokio timers
//! round that up to the next millisecond, so with one request in flight every send took ~1.4 ms
//! (p50) on loopback; with 0 it still batches whatever is already queued but never waits
//! (`rocketmq-store-local` `commit_log/append/sequencer.rs`, `next_batch`).
//!
//! Tags (`--tags`) travel as the `TAGS` property. A consumer's filter (`--filter-tags`,
//! `--filter-sql`) is the subscription expression of its pulls (sysFlag SUBSCRIPTION). A group
//! run (`--group`) has no broker-side assignment in RocketMQ 4.x (clients rebalance), so the
//! bench gives member m of n the queues q with q mod n = m (every queue when broadcasting), and
//! a clustering member commits its position in each pull (sysFlag COMMIT_OFFSET) as a RocketMQ
//! push consumer does; broadcasting members keep their offsets themselves, as RocketMQ's do.
//! SQL92 needs the broker's `enablePropertyFilter`; without it the pulls fail and say so.
//!
//! `--peer shardmq-remoting --peer-namesrv ADDR` drives a running shardmq broker's RocketMQ
//! port the same way, starting from its name server as a stock client does: the route lists
//! each shard as a broker of its own, and every queue is sent to and pulled from the broker the
//! route names for it (`route`), with no shard awareness beyond that.

pub mod command;
pub mod connection;
pub mod route;

use std::ffi::OsString;
use std::time::Duration;

use command::{
    batch_body, for_each_stored_body, tag_properties, Command, GET_MAX_OFFSET, GET_MIN_OFFSET,
    PULL_MESSAGE, SEND_BATCH_MESSAGE, SEND_MESSAGE_V2, SUCCESS, SYSTEM_BUSY,
    UPDATE_AND_CREATE_TOPIC,
};
use connection::RemotingConnection;
use route::RoutedQueue;

use crate::engine::{BenchFilter, Driver, GroupRun, Position, Publisher, Subscriber};
use crate::error::BenchError;

use super::{free_port, PeerServer, PeerTarget};

const PRODUCER_GROUP: &str = "shardmq_bench";
const CONSUMER_GROUP: &str = "shardmq_bench_e2e";
/// Messages asked for per pull.
const PULL_BATCH: u32 = 1024;
/// Java's `WAIT=true` property: the send waits for the store (and the flush under SYNC_FLUSH).
const SEND_PROPERTIES: &str = "WAIT\u{1}true\u{2}";
/// PULL_MESSAGE sysFlag bits (`PullSysFlag`).
const PULL_COMMIT_OFFSET: u32 = 0x1;
const PULL_SUSPEND: u32 = 0x2;
const PULL_SUBSCRIPTION: u32 = 0x4;

/// A failure of the peer `system` (the driver's system name).
fn peer_error(system: &'static str, message: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        system,
        message: message.to_string(),
    }
}

fn failed(what: &str, c: &Command) -> String {
    format!(
        "{what}: response code {} {}",
        c.code,
        c.remark.as_deref().unwrap_or("")
    )
}

/// The name server and broker of a rocketmq-rust peer; both stopped on drop.
pub struct RocketMqServers {
    _namesrv: PeerServer,
    broker: PeerServer,
}

impl RocketMqServers {
    /// Starts both on loopback with fresh directories, `SYNC_FLUSH` when `sync_flush`.
    pub fn start(cpu: Option<usize>, sync_flush: bool) -> Result<Self, BenchError> {
        let namesrv = PeerServer::start("rocketmq-namesrv-rust", cpu, &[], |port, dir| {
            let mut args: Vec<OsString> = vec!["--rocketmqHome".into(), dir.into()];
            args.extend(
                [
                    "--bindAddress",
                    "127.0.0.1",
                    "--listenPort",
                    &port.to_string(),
                ]
                .map(OsString::from),
            );
            args.push("--kvConfigPath".into());
            args.push(dir.join("kvConfig.json").into());
            args
        })?;
        let namesrv_addr = format!("127.0.0.1:{}", namesrv.port);
        let ha_port = free_port()?;
        let flush = if sync_flush {
            "SYNC_FLUSH"
        } else {
            "ASYNC_FLUSH"
        };
        let mut config_error = None;
        let broker = PeerServer::start(
            "rocketmq-broker-rust",
            cpu,
            &[("ROCKETMQ_SECURITY_PROFILE", "development-insecure-loopback")],
            |port, dir| {
                let store = dir.join("store");
                let config = format!(
                    "[broker]\nnamesrvAddr = \"{namesrv_addr}\"\nbrokerIp1 = \"127.0.0.1\"\n\
                     listenPort = {port}\nstorePathRootDir = \"{store}\"\n\
                     [broker.brokerServerConfig]\nbindAddress = \"127.0.0.1\"\n\
                     [broker.brokerIdentity]\nbrokerName = \"broker-a\"\n\
                     brokerClusterName = \"DefaultCluster\"\nbrokerId = 0\n\
                     [store]\nstoreType = \"LocalFile\"\nbrokerRole = \"ASYNC_MASTER\"\n\
                     flushDiskType = \"{flush}\"\nstorePathRootDir = \"{store}\"\n\
                     commitLogMicroBatchMaxWaitMicros = 0\n\
                     haListenAddress = \"127.0.0.1\"\nhaListenPort = {ha_port}\n",
                    store = store.display(),
                );
                let path = dir.join("broker.toml");
                if let Err(e) = std::fs::write(&path, config) {
                    config_error = Some(e);
                }
                vec![
                    "-c".into(),
                    path.into(),
                    "-n".into(),
                    namesrv_addr.clone().into(),
                ]
            },
        )?;
        if let Some(e) = config_error {
            return Err(peer_error(
                "rocketmq-rust",
                format!("writing broker.toml: {e}"),
            ));
        }
        Ok(RocketMqServers {
            _namesrv: namesrv,
            broker,
        })
    }

    pub fn broker_addr(&self) -> String {
        format!("127.0.0.1:{}", self.broker.port)
    }
}

/// Reaches a RocketMQ broker over remoting; one per bench executor.
pub struct RocketMq {
    /// The broker's address, or the name server's when `routed`.
    pub addr: String,
    /// Start from the name server and follow the topic's route (`--peer shardmq-remoting`).
    pub routed: bool,
    pub system: &'static str,
    pub topic: String,
    pub queues: u32,
    pub timeout: Duration,
    pub wait: Duration,
    pub filter: Option<BenchFilter>,
}

impl From<PeerTarget> for RocketMq {
    fn from(t: PeerTarget) -> Self {
        RocketMq {
            addr: t.addr,
            routed: t.routed,
            system: if t.routed {
                "shardmq-remoting"
            } else {
                "rocketmq-rust"
            },
            topic: t.topic,
            queues: t.queues,
            timeout: t.timeout,
            wait: t.wait,
            filter: t.filter,
        }
    }
}

/// The `(subscription, expressionType)` of a pull under `filter`.
fn subscription_of(filter: Option<&BenchFilter>) -> (String, &'static str) {
    match filter {
        None => ("*".into(), "TAG"),
        Some(BenchFilter::Tags(e)) => (e.clone(), "TAG"),
        Some(BenchFilter::Sql(e)) => (e.clone(), "SQL92"),
    }
}

impl RocketMq {
    async fn connect_to(&self, addr: &str) -> Result<RemotingConnection, BenchError> {
        RemotingConnection::connect(addr, self.timeout)
            .await
            .map_err(|e| self.error(e))
    }

    fn error(&self, message: impl std::fmt::Display) -> BenchError {
        peer_error(self.system, message)
    }

    /// The topic's queues as a client addresses them.
    async fn route(&self) -> Result<Vec<RoutedQueue>, BenchError> {
        if !self.routed {
            return Ok(route::single_broker(&self.addr, self.queues));
        }
        let namesrv = self.connect_to(&self.addr).await?;
        route::topic_route(&namesrv, &self.topic)
            .await
            .map_err(|e| self.error(e))
    }

    /// The broker topics are created through, and how many queues to ask it for: with a name
    /// server, the cluster's first broker and the queues spread over every broker (shardmq
    /// makes a remoting topic of n queues n per shard).
    async fn creation_target(&self) -> Result<(String, u32), BenchError> {
        if !self.routed {
            return Ok((self.addr.clone(), self.queues));
        }
        let namesrv = self.connect_to(&self.addr).await?;
        let brokers = route::cluster_brokers(&namesrv)
            .await
            .map_err(|e| self.error(e))?;
        let first = brokers
            .first()
            .ok_or_else(|| self.error("the name server knows no broker"))?;
        Ok((first.clone(), self.queues.div_ceil(brokers.len() as u32)))
    }
}

impl Driver for RocketMq {
    type Publisher = RemotingPublisher;
    type Subscriber = RemotingSubscriber;

    fn system(&self) -> &'static str {
        self.system
    }

    /// Creates (or updates) the topic with `queues` read and write queues; idempotent. Routed,
    /// the count is what the route then holds (a multiple of the brokers).
    async fn queues(&self) -> Result<u32, BenchError> {
        let (broker, per_broker) = self.creation_target().await?;
        let connection = self.connect_to(&broker).await?;
        let n = per_broker.to_string();
        let ext = [
            ("topic", self.topic.clone()),
            ("defaultTopic", "TBW102".into()),
            ("readQueueNums", n.clone()),
            ("writeQueueNums", n),
            ("perm", "6".into()),
            ("topicFilterType", "SINGLE_TAG".into()),
            ("topicSysFlag", "0".into()),
            ("order", "false".into()),
        ];
        let reply = connection
            .request(UPDATE_AND_CREATE_TOPIC, &ext, &[], Duration::ZERO)
            .await
            .map_err(|e| self.error(e))?;
        if reply.code != SUCCESS {
            return Err(self.error(failed("creating the topic", &reply)));
        }
        Ok(self.route().await?.len() as u32)
    }

    async fn publisher(
        &self,
        _index: u32,
        _queues: &[u32],
    ) -> Result<RemotingPublisher, BenchError> {
        let route = self.route().await?;
        let mut brokers: Vec<String> = route.iter().map(|q| q.broker_addr.clone()).collect();
        brokers.sort();
        brokers.dedup();
        let mut connections = Vec::with_capacity(brokers.len());
        for addr in &brokers {
            connections.push(self.connect_to(addr).await?);
        }
        let slots = route
            .iter()
            .map(|q| {
                let broker = brokers.binary_search(&q.broker_addr).expect("listed above");
                (broker, q.queue_id)
            })
            .collect();
        Ok(RemotingPublisher {
            connections,
            slots,
            topic: self.topic.clone(),
            system: self.system,
        })
    }

    async fn subscriber(
        &self,
        queue: u32,
        from: Position,
    ) -> Result<RemotingSubscriber, BenchError> {
        let pulls = Pulls {
            group: CONSUMER_GROUP.to_owned(),
            filter: self.filter.clone(),
            commit: false,
        };
        self.positioned(queue, from, pulls).await
    }

    async fn group_subscribers(
        &self,
        group: &GroupRun,
        member: u32,
        members: u32,
    ) -> Result<Vec<RemotingSubscriber>, BenchError> {
        let mut subscribers = Vec::new();
        let total = self.route().await?.len() as u32;
        for queue in (0..total).filter(|q| group.broadcasting || q % members == member) {
            let pulls = Pulls {
                group: group.name.clone(),
                filter: group.filter.clone(),
                commit: !group.broadcasting,
            };
            subscribers.push(self.positioned(queue, Position::End, pulls).await?);
        }
        Ok(subscribers)
    }
}

/// How a subscriber's pulls ask: for which group, through which filter, committing or not.
struct Pulls {
    group: String,
    filter: Option<BenchFilter>,
    commit: bool,
}

impl RocketMq {
    /// A subscriber of `queue` at `from`, pulling as `pulls` says.
    async fn positioned(
        &self,
        queue: u32,
        from: Position,
        pulls: Pulls,
    ) -> Result<RemotingSubscriber, BenchError> {
        let routed = self
            .route()
            .await?
            .into_iter()
            .nth(queue as usize)
            .ok_or_else(|| self.error(format!("queue {queue} is not in the topic's route")))?;
        let connection = self.connect_to(&routed.broker_addr).await?;
        let ext = [
            ("topic", self.topic.clone()),
            ("queueId", routed.queue_id.to_string()),
        ];
        let (code, name) = match from {
            Position::Start => (GET_MIN_OFFSET, "GET_MIN_OFFSET"),
            Position::End => (GET_MAX_OFFSET, "GET_MAX_OFFSET"),
        };
        let reply = connection
            .request(code, &ext, &[], Duration::ZERO)
            .await
            .map_err(|e| self.error(e))?;
        let offset = match (reply.code, reply.ext_i64("offset")) {
            (SUCCESS, Some(offset)) => offset,
            _ => return Err(self.error(failed(name, &reply))),
        };
        Ok(RemotingSubscriber {
            connection,
            topic: self.topic.clone(),
            queue: routed.queue_id,
            system: self.system,
            offset,
            wait: self.wait,
            pulls,
        })
    }
}

pub struct RemotingPublisher {
    /// One connection per broker of the route.
    connections: Vec<RemotingConnection>,
    /// Bench queue → (its broker's connection, its queue id there).
    slots: Vec<(usize, u32)>,
    topic: String,
    system: &'static str,
}

/// One request's records: SEND_MESSAGE_V2 when `count` is 1, else a SEND_BATCH_MESSAGE body.
pub struct RemotingBatch {
    count: u32,
    body: Vec<u8>,
    /// The request's properties (a single message's own; a batch's carry theirs in the body).
    properties: String,
}

impl Publisher for RemotingPublisher {
    type Batch = RemotingBatch;

    fn encode(&self, count: u32, payload: &[u8], tag: Option<&str>) -> RemotingBatch {
        let tags = tag_properties(tag);
        RemotingBatch {
            count,
            body: if count == 1 {
                payload.to_vec()
            } else {
                batch_body(count, payload, &tags)
            },
            properties: format!("{SEND_PROPERTIES}{tags}"),
        }
    }

    async fn publish(&self, queue: u32, batch: &RemotingBatch) -> Result<u32, BenchError> {
        let error = |message: String| peer_error(self.system, message);
        let &(broker, queue) = self
            .slots
            .get(queue as usize)
            .ok_or_else(|| error(format!("queue {queue} is not in the topic's route")))?;
        let born_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut ext = vec![
            ("a", PRODUCER_GROUP.to_owned()),
            ("b", self.topic.clone()),
            ("c", "TBW102".into()),
            ("d", "4".into()),
            ("e", queue.to_string()),
            ("f", "0".into()),
            ("g", born_ms.to_string()),
            ("h", "0".into()),
            ("i", batch.properties.clone()),
            ("j", "0".into()),
            ("k", "false".into()),
        ];
        let code = if batch.count == 1 {
            SEND_MESSAGE_V2
        } else {
            ext.push(("m", "true".into()));
            SEND_BATCH_MESSAGE
        };
        let reply = self.connections[broker]
            .request(code, &ext, &batch.body, Duration::ZERO)
            .await
            .map_err(error)?;
        match reply.code {
            SUCCESS => Ok(batch.count),
            SYSTEM_BUSY => Err(BenchError::Busy {
                system: self.system,
                message: failed("send", &reply),
            }),
            _ => Err(error(failed("send", &reply))),
        }
    }
}

pub struct RemotingSubscriber {
    connection: RemotingConnection,
    topic: String,
    /// The queue's id on its broker.
    queue: u32,
    system: &'static str,
    offset: i64,
    wait: Duration,
    pulls: Pulls,
}

impl RemotingSubscriber {
    fn error(&self, message: impl std::fmt::Display) -> BenchError {
        peer_error(self.system, message)
    }
}

impl Subscriber for RemotingSubscriber {
    async fn poll(&mut self, each: &mut dyn FnMut(&[u8])) -> Result<u64, BenchError> {
        // SUSPEND (long poll) | SUBSCRIPTION (the expression is in this request), and
        // COMMIT_OFFSET: the position reached is everything the bench received before.
        let mut sys_flag = PULL_SUSPEND | PULL_SUBSCRIPTION;
        if self.pulls.commit {
            sys_flag |= PULL_COMMIT_OFFSET;
        }
        let (subscription, expression_type) = subscription_of(self.pulls.filter.as_ref());
        let ext = [
            ("consumerGroup", self.pulls.group.clone()),
            ("topic", self.topic.clone()),
            ("queueId", self.queue.to_string()),
            ("queueOffset", self.offset.to_string()),
            ("maxMsgNums", PULL_BATCH.to_string()),
            ("sysFlag", sys_flag.to_string()),
            (
                "commitOffset",
                if self.pulls.commit { self.offset } else { 0 }.to_string(),
            ),
            ("suspendTimeoutMillis", self.wait.as_millis().to_string()),
            ("subscription", subscription),
            ("subVersion", "0".into()),
            ("expressionType", expression_type.into()),
        ];
        let reply = self
            .connection
            .request(PULL_MESSAGE, &ext, &[], self.wait)
            .await
            .map_err(|e| self.error(e))?;
        let next = reply.ext_i64("nextBeginOffset");
        match reply.code {
            SUCCESS => {
                let count = for_each_stored_body(&reply.body, each).map_err(|e| self.error(e))?;
                self.offset = next.unwrap_or(self.offset + count as i64);
                Ok(count)
            }
            command::PULL_NOT_FOUND
            | command::PULL_RETRY_IMMEDIATELY
            | command::PULL_OFFSET_MOVED => {
                if let Some(next) = next {
                    self.offset = next;
                }
                Ok(0)
            }
            _ => Err(self.error(failed("pull", &reply))),
        }
    }
}
