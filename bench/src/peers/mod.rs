//! Drivers for peer systems, so the same workload runs against them in the same run and every
//! shardmq figure can be a ratio. A driver starts its peer itself (`--peer`), on loopback, with a
//! fresh data directory, runs the workload and stops the peer; results come out as the same
//! [`crate::Report`] (and JSON) as shardmq's, with `system` naming the peer.
//!
//! - [`redis`]: Redis Streams (`XADD`, AOF), the in-memory broker a user might pick instead.
//! - [`nats`]: NATS JetStream with file storage.
//! - [`iggy`]: Apache Iggy (thread-per-core on io_uring, the design closest to shardmq's), as
//!   shipped and with per-send fsync.
//! - [`remoting`]: RocketMQ remoting, against rocketmq-rust (RocketMQ's Rust port); runs on the
//!   workload engine, so it has every workload kind (produce, end-to-end, threads, warm-up).

pub mod iggy;
pub mod nats;
pub mod redis;
pub mod remoting;
pub mod wire;

use std::ffi::OsString;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::args::{ConsumeArgs, ProduceArgs};
use crate::engine::{Drain, Driver, GroupRun, TagMix, Workload};
use crate::error::BenchError;
use crate::report::Report;

/// The systems `--peer` can start and drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// Redis Streams with an append-only file, fsync every second.
    Redis,
    /// Redis Streams with `appendfsync always` (durable per write, the `--flush sync` peer).
    RedisAlways,
    /// NATS JetStream, file storage.
    Nats,
    /// Apache Iggy as shipped: acknowledged from memory, written every 1024 messages or 1 MiB
    /// (the `--flush async` peer). `iggy-server` from $IGGY_SERVER or the PATH.
    Iggy,
    /// Apache Iggy with `enforce_fsync` and `messages_required_to_save = 1`: each send written
    /// and fdatasynced before its acknowledgement (the `--flush sync` peer).
    IggyFsync,
    /// rocketmq-rust (RocketMQ's Rust port) over remoting, ASYNC_FLUSH.
    RocketmqRust,
    /// rocketmq-rust with SYNC_FLUSH (durable per write, the `--flush sync` peer).
    RocketmqRustSync,
    /// A running shardmq broker's RocketMQ port, reached from its name server
    /// (`--peer-namesrv`) as a stock client reaches it: not started by the bench.
    ShardmqRemoting,
}

pub(crate) fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::InvalidArgs(format!("no free port: {e}")))?;
    Ok(listener
        .local_addr()
        .map_err(|e| BenchError::InvalidArgs(e.to_string()))?
        .port())
}

/// Pins the calling process (the forked child, before exec) to `cpu`; every thread it starts
/// inherits the mask.
pub(crate) fn pin_before_exec(command: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity on a zeroed cpu_set_t is async-signal-safe, as pre_exec needs.
    unsafe {
        command.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
}

/// A peer's server process on loopback with a fresh data directory; killed (and the directory
/// removed) on drop, so a failed run never leaves it behind.
pub struct PeerServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PeerServer {
    /// Starts `program` with the arguments `args(port, data_dir)` returns, pinned to `cpu`, and
    /// waits until it accepts connections on `port`.
    pub(crate) fn start(
        program: &str,
        cpu: Option<usize>,
        env: &[(&str, &str)],
        args: impl FnOnce(u16, &Path) -> Vec<OsString>,
    ) -> Result<PeerServer, BenchError> {
        Self::start_with_env(program, cpu, |port, dir| {
            let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
            (args(port, dir), env.collect())
        })
    }

    /// [`PeerServer::start`] for a server configured through its environment: `configure(port,
    /// data_dir)` returns its arguments and environment.
    pub(crate) fn start_with_env(
        program: &str,
        cpu: Option<usize>,
        configure: impl FnOnce(u16, &Path) -> (Vec<OsString>, Vec<(String, String)>),
    ) -> Result<PeerServer, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!(
                "shardmq-peer-{}-",
                Path::new(program)
                    .file_name()
                    .map_or(program.into(), |n| n.to_string_lossy())
            ))
            .tempdir()
            .map_err(|e| BenchError::InvalidArgs(format!("temp dir: {e}")))?;
        let port = free_port()?;
        let (args, env) = configure(port, dir.path());
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(cpu) = cpu {
            pin_before_exec(&mut command, cpu);
        }
        let child = command.spawn().map_err(|e| {
            BenchError::InvalidArgs(format!(
                "cannot start {program} (see ../shared/peers/README.md to install it): {e}"
            ))
        })?;
        let server = PeerServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(BenchError::InvalidArgs(format!(
                    "{program} did not accept connections within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

/// Where and what a peer driver sends: the server's address, the topic and its queue count,
/// the request timeout and the consumers' long-poll wait. Every peer driver is built from one.
#[derive(Debug, Clone)]
pub struct PeerTarget {
    pub addr: String,
    pub topic: String,
    pub queues: u32,
    pub timeout: Duration,
    pub wait: Duration,
    /// What subscribers (not group members: theirs is the group's) let through.
    pub filter: Option<crate::engine::BenchFilter>,
    /// `addr` is a RocketMQ name server whose routes the driver follows.
    pub routed: bool,
}

/// A run against a started peer, generic over the peer's driver type.
trait PeerJob {
    /// Where the peer listens comes in `addr` (a name server when `routed`); the rest of the
    /// target is the job's.
    fn run<D: Driver + From<PeerTarget>>(
        self,
        system: &'static str,
        addr: String,
        routed: bool,
    ) -> Result<Report, BenchError>;
}

/// Starts `peer` (pinned to `--peer-cpu`), runs `job` against it, stops it (also on error).
fn with_peer<J: PeerJob>(
    peer: Peer,
    peers: &crate::args::PeerArgs,
    job: J,
) -> Result<Report, BenchError> {
    let cpu = peers.peer_cpu;
    let loopback = |server: &PeerServer| format!("127.0.0.1:{}", server.port);
    match peer {
        Peer::ShardmqRemoting => {
            let namesrv = peers.peer_namesrv.clone().ok_or_else(|| {
                BenchError::InvalidArgs(
                    "--peer shardmq-remoting needs --peer-namesrv: the running broker's name \
                     server (namesrv= on its ready line)"
                        .into(),
                )
            })?;
            job.run::<remoting::RocketMq>("shardmq-remoting", namesrv, true)
        }
        Peer::RocketmqRust | Peer::RocketmqRustSync => {
            let sync = peer == Peer::RocketmqRustSync;
            let servers = remoting::RocketMqServers::start(cpu, sync)?;
            let system = if sync {
                "rocketmq-rust-sync-flush"
            } else {
                "rocketmq-rust"
            };
            job.run::<remoting::RocketMq>(system, servers.broker_addr(), false)
        }
        Peer::Redis | Peer::RedisAlways => {
            let always = peer == Peer::RedisAlways;
            let server = redis::start(always, cpu)?;
            let system = if always {
                "redis-streams-always"
            } else {
                "redis-streams"
            };
            job.run::<redis::Redis>(system, loopback(&server), false)
        }
        Peer::Nats => {
            let server = nats::start(cpu)?;
            job.run::<nats::Nats>("nats-jetstream", loopback(&server), false)
        }
        Peer::Iggy => {
            let server = iggy::start(cpu)?;
            job.run::<iggy::Iggy>("iggy", loopback(&server), false)
        }
        Peer::IggyFsync => {
            let server = iggy::start(cpu)?;
            job.run::<iggy::IggyFsync>("iggy-fsync", loopback(&server), false)
        }
    }
}

/// Builds a driver per topic from `target`, the topic replaced.
fn per_topic<D: From<PeerTarget>>(target: PeerTarget) -> impl Fn(&str) -> D + Send + Sync {
    move |topic| {
        D::from(PeerTarget {
            topic: topic.to_owned(),
            ..target.clone()
        })
    }
}

/// Runs `workload` against `peer`, which this starts and stops itself.
pub fn run_workload(
    peer: Peer,
    args: &ProduceArgs,
    workload: &Workload,
    wait_ms: u32,
) -> Result<Report, BenchError> {
    struct Produce<'a> {
        args: &'a ProduceArgs,
        workload: &'a Workload,
        wait_ms: u32,
    }
    impl PeerJob for Produce<'_> {
        fn run<D: Driver + From<PeerTarget>>(
            self,
            system: &'static str,
            addr: String,
            routed: bool,
        ) -> Result<Report, BenchError> {
            let target = PeerTarget {
                addr,
                topic: self.args.topic.clone(),
                queues: self.args.peers.peer_queues,
                timeout: Duration::from_millis(self.args.run.timeout_ms),
                wait: Duration::from_millis(u64::from(self.wait_ms)),
                filter: None,
                routed,
            };
            let measured = crate::engine::run(self.workload, per_topic::<D>(target))?;
            Ok(crate::produce::workload_report(
                system,
                &self.args.topic,
                self.workload,
                &measured,
            ))
        }
    }
    let job = Produce {
        args,
        workload,
        wait_ms,
    };
    with_peer(peer, &args.peers, job)
}

/// The consume workload against `peer`: fills the topic with `--messages` records (untimed,
/// batches of `--fill-batch`), then drains every queue from its start (timed).
pub fn run_consume(peer: Peer, args: &ConsumeArgs) -> Result<Report, BenchError> {
    struct Consume<'a>(&'a ConsumeArgs);
    impl PeerJob for Consume<'_> {
        fn run<D: Driver + From<PeerTarget>>(
            self,
            system: &'static str,
            addr: String,
            routed: bool,
        ) -> Result<Report, BenchError> {
            let args = self.0;
            let cpu = crate::runtime::choose_cpu(args.run.cpu, &crate::runtime::allowed_cpus())?;
            let target = PeerTarget {
                addr,
                topic: args.topic.clone(),
                queues: args.peers.peer_queues,
                timeout: Duration::from_millis(args.run.timeout_ms),
                wait: Duration::from_millis(u64::from(args.wait_ms)),
                filter: args.filter.filter(),
                routed,
            };
            let fill = Workload {
                topics: vec![args.topic.clone()],
                messages: args.messages,
                duration: None,
                warmup: Duration::ZERO,
                size: args.size,
                batch: args.fill_batch,
                producers: 1,
                queues_per_producer: None,
                in_flight: 4,
                rate: 0.0,
                log_slow: None,
                producer_cpus: vec![cpu],
                consumer_cpus: Vec::new(),
                spin_us: 0,
                max_errors: args.run.max_errors,
                drain_timeout: Duration::from_secs(5),
                tags: TagMix::parse(args.fill_tags.as_deref().unwrap_or(""))?,
                // A group of no members, for the count of what the drain's filter selects.
                group: args.filter.filter().map(|filter| GroupRun {
                    name: String::new(),
                    broadcasting: false,
                    filter: Some(filter),
                }),
            };
            eprintln!("filling {} with {} messages", args.topic, args.messages);
            // What the fill stored (and the filter selects) is what the drain must find (a
            // few failed fill requests below --max-errors are not the drain's to miss).
            let filled = crate::engine::run(&fill, per_topic::<D>(target.clone()))?;
            let stored = filled.merged.acked;
            let selected =
                match (&fill.group, filled.expected_receipts) {
                    (None, _) => stored,
                    (Some(_), Some(selected)) => selected,
                    (Some(_), None) => return Err(BenchError::InvalidArgs(
                        "a peer drain with --filter-sql: the bench cannot count what it selects; \
                         use --filter-tags"
                            .into(),
                    )),
                };
            if args.drop_caches {
                crate::runtime::drop_page_cache(crate::runtime::DROP_CACHES_PATH.as_ref())?;
            }
            let drain = Drain {
                topics: vec![args.topic.clone()],
                expected: selected,
                consumer_cpus: vec![cpu],
                spin_us: args.run.spin_us,
                max_errors: args.run.max_errors,
                idle_timeout: Duration::from_millis(args.idle_timeout_ms),
            };
            let measured = crate::engine::drain(&drain, per_topic::<D>(target))?;
            crate::consume::drain_report(system, args, selected, &measured)
        }
    }
    with_peer(peer, &args.peers, Consume(args))
}
