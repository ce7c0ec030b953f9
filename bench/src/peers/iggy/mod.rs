//! The Apache Iggy driver: starts `iggy-server` (built from apache/iggy's sources, see
//! `../shared/peers/README.md` and `perf-reports/`) on loopback with a fresh data directory and
//! runs the engine's workload against it over Iggy's TCP protocol (`proto`, `connection`; no
//! tokio SDK, so it runs on the same glommio executors as every driver).
//!
//! Mapping: stream `bench`, topic `<topic>` with one partition per queue; queue `q` is partition
//! `q`. A batch of N records is one send of N messages, acknowledged as a whole; a publisher
//! sends on up to `PUBLISHER_CONNECTIONS` connections at once (one request in flight each).
//!
//! Durability, which is per topic in this Iggy (options given at creation):
//! - `--peer iggy`: Iggy's defaults — a send is acknowledged from memory and written every 1024
//!   messages or 1 MiB, never fsynced: the peer of shardmq's `--flush async`;
//! - `--peer iggy-fsync`: `enforce_fsync = true` and `messages_required_to_save = 1`, so each
//!   send is written and fdatasynced before its acknowledgement: the `--flush sync` peer.
//!
//! Consumers poll by offset (Iggy has no long poll): a poll that finds nothing sleeps
//! `EMPTY_POLL_PAUSE` before returning, so an idle consumer does not spin a core.

mod connection;
pub mod proto;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::rc::Rc;
use std::time::Duration;

use connection::IggyConnection;
use event_listener::Event;

use crate::engine::{Driver, Position, Publisher, Subscriber};
use crate::error::BenchError;

use super::{PeerServer, PeerTarget};

const STREAM: &str = "bench";
const USER: &str = "iggy";
const PASSWORD: &str = "iggy";
/// Messages one poll asks for.
const POLL_COUNT: u32 = 1000;
const EMPTY_POLL_PAUSE: Duration = Duration::from_micros(100);

/// Starts `iggy-server` (from `$IGGY_SERVER`, else the PATH) with one shard, TCP only, and
/// the root user `iggy`/`iggy`, pinned to `cpu` by the bench (Iggy's own pinning off).
pub fn start(cpu: Option<usize>) -> Result<PeerServer, BenchError> {
    let program = std::env::var("IGGY_SERVER").unwrap_or_else(|_| "iggy-server".into());
    PeerServer::start_with_env(&program, cpu, |port, dir| {
        let env = [
            ("IGGY_TCP_ADDRESS", format!("127.0.0.1:{port}")),
            ("IGGY_SYSTEM_PATH", dir.join("iggy").display().to_string()),
            ("IGGY_HTTP_ENABLED", "false".into()),
            ("IGGY_QUIC_ENABLED", "false".into()),
            ("IGGY_WEBSOCKET_ENABLED", "false".into()),
            ("IGGY_SYSTEM_SHARDING_CPU_ALLOCATION", "1".into()),
            ("IGGY_SYSTEM_SHARDING_PIN_CORES", "false".into()),
            ("IGGY_ROOT_USERNAME", USER.into()),
            ("IGGY_ROOT_PASSWORD", PASSWORD.into()),
        ];
        let env = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        (Vec::<OsString>::new(), env)
    })
}

fn peer_error(message: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        system: "iggy",
        message: message.to_string(),
    }
}

/// Reaches one iggy-server; one per bench executor.
pub struct Iggy {
    addr: String,
    topic: String,
    queues: u32,
    timeout: Duration,
    durable: bool,
}

impl From<PeerTarget> for Iggy {
    fn from(t: PeerTarget) -> Self {
        Iggy {
            addr: t.addr,
            topic: t.topic,
            queues: t.queues,
            timeout: t.timeout,
            durable: false,
        }
    }
}

/// The same, with per-send fsync (`--peer iggy-fsync`).
pub struct IggyFsync(Iggy);

impl From<PeerTarget> for IggyFsync {
    fn from(t: PeerTarget) -> Self {
        IggyFsync(Iggy {
            durable: true,
            ..Iggy::from(t)
        })
    }
}

impl Iggy {
    async fn connect(&self) -> Result<IggyConnection, BenchError> {
        IggyConnection::connect(&self.addr, USER, PASSWORD, self.timeout)
            .await
            .map_err(peer_error)
    }

    /// Creates the stream and the topic, accepting either already there.
    async fn create_topic(&self) -> Result<(), BenchError> {
        let connection = self.connect().await?;
        let stream = proto::create_stream_body(STREAM);
        expect_created(
            &connection.call(proto::OP_CREATE_STREAM, 0, &stream).await,
            proto::STREAM_EXISTS,
            "create stream",
        )?;
        let topic = proto::create_topic_body(STREAM, &self.topic, self.queues, self.durable);
        expect_created(
            &connection.call(proto::OP_CREATE_TOPIC, 0, &topic).await,
            proto::TOPIC_EXISTS,
            "create topic",
        )
    }
}

fn expect_created(
    reply: &Result<connection::Reply, String>,
    exists: u32,
    what: &str,
) -> Result<(), BenchError> {
    let reply = reply.as_ref().map_err(peer_error)?;
    if reply.status != 0 {
        return Err(peer_error(format!("{what}: status {}", reply.status)));
    }
    match proto::result_code(&reply.body).map_err(peer_error)? {
        None => Ok(()),
        Some(code) if code == exists => Ok(()),
        Some(code) => Err(peer_error(format!("{what}: error code {code}"))),
    }
}

impl Driver for Iggy {
    type Publisher = IggyPublisher;
    type Subscriber = IggySubscriber;

    fn system(&self) -> &'static str {
        if self.durable {
            "iggy-fsync"
        } else {
            "iggy"
        }
    }

    async fn queues(&self) -> Result<u32, BenchError> {
        self.create_topic().await?;
        Ok(self.queues)
    }

    async fn publisher(&self, _index: u32, _queues: &[u32]) -> Result<IggyPublisher, BenchError> {
        let mut connections = Vec::with_capacity(PUBLISHER_CONNECTIONS);
        for _ in 0..PUBLISHER_CONNECTIONS {
            connections.push(self.connect().await?);
        }
        Ok(IggyPublisher {
            connections,
            idle: RefCell::new((0..PUBLISHER_CONNECTIONS).collect()),
            returned: Event::new(),
            topic: self.topic.clone(),
            next_id: Cell::new(1),
        })
    }

    async fn subscriber(&self, queue: u32, from: Position) -> Result<IggySubscriber, BenchError> {
        let mut subscriber = IggySubscriber {
            connection: self.connect().await?,
            topic: self.topic.clone(),
            partition: queue,
            next: 0,
        };
        if from == Position::End {
            subscriber.next = subscriber.end_offset().await?;
        }
        Ok(subscriber)
    }
}

/// `--peer iggy-fsync`: the same driver, its topic created with per-send fsync.
impl Driver for IggyFsync {
    type Publisher = IggyPublisher;
    type Subscriber = IggySubscriber;

    fn system(&self) -> &'static str {
        self.0.system()
    }

    async fn queues(&self) -> Result<u32, BenchError> {
        self.0.queues().await
    }

    async fn publisher(&self, index: u32, queues: &[u32]) -> Result<IggyPublisher, BenchError> {
        self.0.publisher(index, queues).await
    }

    async fn subscriber(&self, queue: u32, from: Position) -> Result<IggySubscriber, BenchError> {
        self.0.subscriber(queue, from).await
    }
}

/// An Iggy connection has one request in flight (its replies carry nothing to match them by),
/// so a publisher holds a few and sends each batch on an idle one: `--in-flight` up to this
/// many is real concurrency at the server, as it is on shardmq's one pipelined connection.
const PUBLISHER_CONNECTIONS: usize = 4;

pub struct IggyPublisher {
    connections: Vec<IggyConnection>,
    /// Idle connections, oldest first; a publish takes one and gives it back.
    idle: RefCell<VecDeque<usize>>,
    returned: Event,
    topic: String,
    next_id: Cell<u128>,
}

impl IggyPublisher {
    async fn take_idle(&self) -> usize {
        loop {
            let listener = self.returned.listen();
            if let Some(at) = self.idle.borrow_mut().pop_front() {
                return at;
            }
            listener.await;
        }
    }

    /// Sends one body on connection `at`, retrying while the partition is not routable yet.
    async fn send(&self, at: usize, body: &[u8], count: u32) -> Result<u32, BenchError> {
        for attempt in 0.. {
            let reply = self.connections[at]
                .call(proto::OP_SEND_MESSAGES, 0, body)
                .await
                .map_err(peer_error)?;
            match reply.status {
                0 => return Ok(count),
                proto::TRANSIENT_NOT_ACCEPTED if attempt < 100 => {
                    glommio::timer::sleep(Duration::from_millis(10)).await
                }
                status => return Err(peer_error(format!("send: status {status}"))),
            }
        }
        unreachable!("the loop returns")
    }
}

/// N messages of one payload; the send body is built per send (it names the partition, and
/// each message carries its own checksum and id).
pub struct IggyBatch {
    count: u32,
    payload: Rc<[u8]>,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Publisher for IggyPublisher {
    type Batch = IggyBatch;

    fn encode(&self, count: u32, payload: &[u8], _tag: Option<&str>) -> IggyBatch {
        IggyBatch {
            count,
            payload: payload.into(),
        }
    }

    async fn publish(&self, queue: u32, batch: &IggyBatch) -> Result<u32, BenchError> {
        let first_id = self.next_id.get();
        self.next_id.set(first_id + u128::from(batch.count));
        let body = proto::send_body(
            STREAM,
            &self.topic,
            queue,
            batch.count,
            &batch.payload,
            first_id,
            now_us(),
        );
        let at = self.take_idle().await;
        let sent = self.send(at, &body, batch.count).await;
        self.idle.borrow_mut().push_back(at);
        self.returned.notify(1);
        sent
    }
}

pub struct IggySubscriber {
    connection: IggyConnection,
    topic: String,
    partition: u32,
    next: u64,
}

impl IggySubscriber {
    async fn poll_from(
        &self,
        offset: u64,
        count: u32,
        each: &mut dyn FnMut(&[u8]),
    ) -> Result<(u64, u64, u64), BenchError> {
        let body = proto::poll_body(STREAM, &self.topic, self.partition, offset, count);
        let reply = self
            .connection
            .call(proto::OP_NON_REPLICATED, proto::CODE_POLL_MESSAGES, &body)
            .await
            .map_err(peer_error)?;
        if reply.status != 0 {
            return Err(peer_error(format!("poll: status {}", reply.status)));
        }
        let (n, next) = proto::poll_messages(&reply.body, offset, each).map_err(peer_error)?;
        let current = u64::from_le_bytes(reply.body[4..12].try_into().expect("checked length"));
        Ok((n, next, current))
    }

    /// The offset after the partition's last message (0 when it is empty).
    async fn end_offset(&self) -> Result<u64, BenchError> {
        let (n, _, current) = self.poll_from(0, 1, &mut |_| {}).await?;
        Ok(if n == 0 { 0 } else { current + 1 })
    }
}

impl Subscriber for IggySubscriber {
    async fn poll(&mut self, each: &mut dyn FnMut(&[u8])) -> Result<u64, BenchError> {
        let (n, next, _) = self.poll_from(self.next, POLL_COUNT, each).await?;
        self.next = next;
        if n == 0 {
            glommio::timer::sleep(EMPTY_POLL_PAUSE).await;
        }
        Ok(n)
    }
}
