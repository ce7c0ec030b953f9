//! A broker registering with external name servers (`shardmq broker --namesrv A;B`), as a Java
//! broker does: every shard is registered as the broker it is advertised as (its name, its
//! remoting address, the queues it owns of every topic, TBW102 when auto-creation is on), at
//! start, every 30 s, and within a second of a topic change; each shard is unregistered at
//! shutdown. On a thread of its own with blocking sockets (3 s deadlines), one persistent
//! connection per name server (a Java name server forgets the brokers of a connection that
//! closes), re-opened after a failure, which is logged and retried on the next round.
//!
//! A registration is split so that no body exceeds `REGISTER_BODY_BYTES_MAX` (well under the
//! 16 MiB frame limit); each part is a registration of its own with a new data version, so a
//! Java name server applies every part (it applies a body only when its version changed) and
//! both merge the parts (topics a body does not list are kept). So a topic deleted here is
//! deleted there explicitly (DELETE_TOPIC_IN_NAMESRV, as `mqadmin deleteTopic` does); another
//! broker that still has it brings it back with its next registration.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardmq_protocol::remoting::bodies::{self, TopicConfig};
use shardmq_protocol::remoting::codes::{request, response};
use shardmq_protocol::remoting::RemotingCommand;

use super::blocking::{call, FrameError};
use crate::core::topics::{TopicRegistry, PERM_INHERIT, PERM_READ_WRITE};
use crate::fronts::remoting::shard_queues::ShardQueues;
use crate::fronts::remoting::state::{Directory, ShardBroker};
use crate::namesrv::routes::AUTO_CREATE_TEMPLATE;

/// Java's `registerNameServerPeriod`.
pub const REGISTER_INTERVAL: Duration = Duration::from_secs(30);
/// The largest registration body sent (Java splits at 800 topics; a frame may hold 16 MiB).
pub const REGISTER_BODY_BYTES_MAX: usize = 4 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(3);
const TICK: Duration = Duration::from_millis(200);

/// What the registration thread needs.
pub struct Registrar {
    pub namesrvs: Vec<String>,
    pub directory: Arc<Directory>,
    pub topics: Arc<TopicRegistry>,
    /// `Some(default queues)` when topics are auto-created (TBW102 is registered).
    pub auto_create_queues: Option<u32>,
    pub shutdown: Arc<AtomicBool>,
}

/// Parses `--namesrv`: addresses separated by `;` (Java's `namesrvAddr` form).
pub fn parse_namesrv_list(value: &str) -> Result<Vec<String>, String> {
    let addrs: Vec<String> = value
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(format!("--namesrv {value:?} names no address"));
    }
    for addr in &addrs {
        addr.to_socket_addrs()
            .map_err(|e| format!("--namesrv: {addr:?} is not HOST:PORT: {e}"))?;
    }
    Ok(addrs)
}

/// The topics one shard registers: its share of every topic, and TBW102 when auto-creating.
pub fn shard_topics(
    broker: &ShardBroker,
    shard_count: u32,
    topics: &TopicRegistry,
    auto_create_queues: Option<u32>,
) -> Vec<TopicConfig> {
    let view = ShardQueues::new(broker.shard_id, shard_count);
    let mut out: Vec<TopicConfig> = topics
        .list()
        .into_iter()
        .filter_map(|t| {
            let local = view.local_count(&t.name, t.queues);
            (local > 0).then(|| TopicConfig {
                name: t.name.clone(),
                read_queue_nums: local,
                write_queue_nums: local,
                perm: u32::from(t.perm),
            })
        })
        .collect();
    if let Some(queues) = auto_create_queues {
        let least = (queues / shard_count).max(1);
        out.push(TopicConfig {
            name: AUTO_CREATE_TEMPLATE.into(),
            read_queue_nums: least,
            write_queue_nums: least,
            perm: u32::from(PERM_READ_WRITE | PERM_INHERIT),
        });
    }
    out
}

/// Splits topics into parts whose bodies stay under `max_bytes` (each part at least one
/// topic). A topic's size is bounded from above: its name twice plus the fixed fields.
pub fn split(topics: Vec<TopicConfig>, max_bytes: usize) -> Vec<Vec<TopicConfig>> {
    const FIXED: usize = 256;
    let mut parts = vec![Vec::new()];
    let mut size = 0;
    for topic in topics {
        let bytes = FIXED + 2 * topic.name.len();
        let current = parts.last_mut().expect("never empty");
        if !current.is_empty() && size + bytes > max_bytes {
            parts.push(Vec::new());
            size = 0;
        }
        size += bytes;
        parts.last_mut().expect("never empty").push(topic);
    }
    parts
}

/// One name server's connection.
struct Peer {
    addr: String,
    stream: Option<TcpStream>,
    /// Topics deleted here that this name server has not confirmed deleting yet.
    deletions: BTreeSet<String>,
}

impl Peer {
    fn connect(&mut self) -> Result<&mut TcpStream, FrameError> {
        if self.stream.is_none() {
            let target: SocketAddr = self
                .addr
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| FrameError::Bad(format!("{} names no address", self.addr)))?;
            let stream = TcpStream::connect_timeout(&target, IO_TIMEOUT)?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_write_timeout(Some(IO_TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        Ok(self.stream.as_mut().expect("just connected"))
    }

    /// Sends a request; a failure drops the connection so the next call reconnects.
    /// Sends a request; a failure drops the connection, and a request that failed on a
    /// connection opened in an earlier round (which the name server may have closed as idle) is
    /// sent once more on a fresh one.
    fn call(&mut self, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
        let reused = self.stream.is_some();
        let result = self.connect().and_then(|stream| call(stream, req));
        if result.is_ok() {
            return result;
        }
        self.stream = None;
        if !reused {
            return result;
        }
        let retried = self.connect().and_then(|stream| call(stream, req));
        if retried.is_err() {
            self.stream = None;
        }
        retried
    }
}

struct Round<'a> {
    registrar: &'a Registrar,
    opaque: i32,
    version: u64,
}

impl Round<'_> {
    fn next_opaque(&mut self) -> i32 {
        self.opaque = self.opaque.wrapping_add(1).max(1);
        self.opaque
    }

    fn header(&mut self, code: i32, broker: &ShardBroker) -> RemotingCommand {
        let ha = SocketAddr::new(broker.addr.ip(), broker.addr.port().wrapping_add(1));
        RemotingCommand::request(code, self.next_opaque())
            .with_ext("brokerName", &broker.broker_name)
            .with_ext("brokerAddr", broker.addr)
            .with_ext("clusterName", &self.registrar.directory.cluster)
            .with_ext("haServerAddr", ha)
            .with_ext("brokerId", 0)
    }

    /// Tells `peer` that `topics` are gone from this broker.
    /// Tells `peer` of the topics it has yet to delete; each leaves the list once confirmed.
    fn delete_topics(&mut self, peer: &mut Peer) -> Result<(), String> {
        for topic in peer.deletions.clone() {
            let opaque = self.next_opaque();
            let req = RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV, opaque)
                .with_ext("topic", &topic)
                .with_ext("clusterName", &self.registrar.directory.cluster);
            let reply = peer.call(&req).map_err(|e| e.to_string())?;
            if reply.code != response::SUCCESS {
                return Err(format!("deleting {topic}: code {}", reply.code));
            }
            peer.deletions.remove(&topic);
        }
        Ok(())
    }

    /// Registers every shard with `peer`; the first failure ends the round for it.
    fn register_all(&mut self, peer: &mut Peer) -> Result<(), String> {
        let brokers = self.registrar.directory.brokers().to_vec();
        let shard_count = brokers.len() as u32;
        for broker in &brokers {
            let topics = shard_topics(
                broker,
                shard_count,
                &self.registrar.topics,
                self.registrar.auto_create_queues,
            );
            for part in split(topics, REGISTER_BODY_BYTES_MAX) {
                self.version += 1;
                let wrapper =
                    bodies::topic_config_wrapper(&part, self.version, crate::core::now_ms());
                let body = bodies::register_broker_body(wrapper);
                let crc = crc32fast::hash(&body) & 0x7FFF_FFFF;
                let req = self
                    .header(request::REGISTER_BROKER, broker)
                    .with_ext("compressed", false)
                    .with_ext("bodyCrc32", crc)
                    .with_body(body);
                let reply = peer.call(&req).map_err(|e| e.to_string())?;
                if reply.code != response::SUCCESS {
                    return Err(format!(
                        "refused {}: code {} {}",
                        broker.broker_name,
                        reply.code,
                        reply.remark.unwrap_or_default()
                    ));
                }
            }
        }
        Ok(())
    }

    fn unregister_all(&mut self, peer: &mut Peer) {
        for broker in self.registrar.directory.brokers().to_vec() {
            let req = self.header(request::UNREGISTER_BROKER, &broker);
            if let Err(e) = peer.call(&req) {
                tracing::warn!(namesrv = %peer.addr, broker = %broker.broker_name, error = %e, "cannot unregister");
                return;
            }
        }
    }
}

/// Runs the registrations until shutdown, then unregisters. Blocking: on its own thread.
pub fn run(registrar: Registrar) {
    let mut peers: Vec<Peer> = registrar
        .namesrvs
        .iter()
        .map(|addr| Peer {
            addr: addr.clone(),
            stream: None,
            deletions: BTreeSet::new(),
        })
        .collect();
    let mut round = Round {
        registrar: &registrar,
        opaque: 0,
        version: crate::core::now_ms(),
    };
    let mut last: Option<(Instant, u64)> = None;
    let mut known: BTreeSet<String> = BTreeSet::new();
    while !registrar.shutdown.load(Ordering::Acquire) {
        let version = registrar.topics.version();
        let due =
            last.is_none_or(|(at, seen)| at.elapsed() >= REGISTER_INTERVAL || seen != version);
        if due {
            let current: BTreeSet<String> = registrar
                .topics
                .list()
                .into_iter()
                .map(|t| t.name)
                .collect();
            let gone: Vec<String> = known.difference(&current).cloned().collect();
            known = current;
            for peer in &mut peers {
                peer.deletions.extend(gone.iter().cloned());
                // A topic created again since it was deleted is registered, not deleted.
                peer.deletions.retain(|t| !known.contains(t));
                if let Err(e) = round.delete_topics(peer) {
                    tracing::warn!(namesrv = %peer.addr, error = %e, "cannot delete a topic there");
                }
                match round.register_all(peer) {
                    Ok(()) => tracing::debug!(namesrv = %peer.addr, "registered"),
                    Err(e) => {
                        tracing::warn!(namesrv = %peer.addr, error = %e, "registration failed; retrying in the next round")
                    }
                }
            }
            last = Some((Instant::now(), version));
        }
        std::thread::sleep(TICK);
    }
    for peer in &mut peers {
        round.unregister_all(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicConfig {
        TopicConfig {
            name: name.into(),
            read_queue_nums: 1,
            write_queue_nums: 1,
            perm: 6,
        }
    }

    #[test]
    fn registrations_split_under_the_bound_and_lose_no_topic() {
        let topics: Vec<_> = (0..1000).map(|i| topic(&format!("topic-{i:04}"))).collect();
        let parts = split(topics.clone(), 10_000);
        assert!(parts.len() > 1);
        for part in &parts {
            let wrapper = bodies::topic_config_wrapper(part, 1, 0);
            let body = bodies::register_broker_body(wrapper);
            assert!(body.len() <= 10_000, "{} bytes", body.len());
            let (parsed, _) = bodies::parse_register_broker(&body).unwrap();
            assert_eq!(parsed.len(), part.len());
        }
        let all: Vec<_> = parts.into_iter().flatten().collect();
        assert_eq!(all, topics);
        assert_eq!(split(vec![topic("one")], 1), vec![vec![topic("one")]]);
    }

    #[test]
    fn namesrv_lists_are_checked() {
        assert_eq!(
            parse_namesrv_list("127.0.0.1:9876; 127.0.0.1:9877;").unwrap(),
            ["127.0.0.1:9876", "127.0.0.1:9877"]
        );
        assert!(parse_namesrv_list(" ; ").is_err());
        assert!(parse_namesrv_list("nohost").unwrap_err().contains("nohost"));
    }
}
