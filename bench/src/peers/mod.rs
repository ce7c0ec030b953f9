//! Drivers for peer systems, so the same workload runs against them in the same run and every
//! shardmq figure can be a ratio. A driver starts its peer itself (`--peer`), on loopback, with a
//! fresh data directory, runs the workload and stops the peer; results come out as the same
//! [`crate::Report`] (and JSON) as shardmq's, with `system` naming the peer.
//!
//! - [`redis`]: Redis Streams (`XADD`, AOF), the in-memory broker a user might pick instead.
//! - [`nats`]: NATS JetStream with file storage.
//! - [`remoting`]: RocketMQ remoting, against rocketmq-rust (RocketMQ's Rust port); runs on the
//!   workload engine, so it has every workload kind (produce, end-to-end, threads, warm-up).

pub mod nats;
pub mod redis;
pub mod remoting;

use std::ffi::OsString;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::args::ProduceArgs;
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
    /// rocketmq-rust (RocketMQ's Rust port) over remoting, ASYNC_FLUSH.
    RocketmqRust,
    /// rocketmq-rust with SYNC_FLUSH (durable per write, the `--flush sync` peer).
    RocketmqRustSync,
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
        let dir = tempfile::Builder::new()
            .prefix(&format!("shardmq-peer-{program}-"))
            .tempdir()
            .map_err(|e| BenchError::InvalidArgs(format!("temp dir: {e}")))?;
        let port = free_port()?;
        let mut command = Command::new(program);
        command
            .args(args(port, dir.path()))
            .envs(env.iter().copied())
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
}

/// Runs `workload` against `peer`, which this starts and stops itself.
pub fn run_workload(
    peer: Peer,
    args: &ProduceArgs,
    workload: &crate::engine::Workload,
    wait_ms: u32,
) -> Result<Report, BenchError> {
    let target = |addr: String| PeerTarget {
        addr,
        topic: args.topic.clone(),
        queues: args.peer_queues,
        timeout: Duration::from_millis(args.timeout_ms),
        wait: Duration::from_millis(u64::from(wait_ms)),
    };
    let loopback = |server: &PeerServer| format!("127.0.0.1:{}", server.port);
    match peer {
        Peer::RocketmqRust | Peer::RocketmqRustSync => {
            let sync = peer == Peer::RocketmqRustSync;
            let servers = remoting::RocketMqServers::start(args.peer_cpu, sync)?;
            let system = if sync {
                "rocketmq-rust-sync-flush"
            } else {
                "rocketmq-rust"
            };
            let target = target(servers.broker_addr());
            drive::<remoting::RocketMq>(system, args, workload, target)
        }
        Peer::Redis | Peer::RedisAlways => {
            let always = peer == Peer::RedisAlways;
            let server = redis::start(always, args.peer_cpu)?;
            let system = if always {
                "redis-streams-always"
            } else {
                "redis-streams"
            };
            drive::<redis::Redis>(system, args, workload, target(loopback(&server)))
        }
        Peer::Nats => {
            let server = nats::start(args.peer_cpu)?;
            drive::<nats::Nats>("nats-jetstream", args, workload, target(loopback(&server)))
        }
    }
}

/// Runs the engine with a driver of type `D` per executor, built from `target`.
fn drive<D: crate::engine::Driver + From<PeerTarget>>(
    system: &'static str,
    args: &ProduceArgs,
    workload: &crate::engine::Workload,
    target: PeerTarget,
) -> Result<Report, BenchError> {
    let measured = crate::engine::run(workload, move |topic| {
        D::from(PeerTarget {
            topic: topic.to_owned(),
            ..target.clone()
        })
    })?;
    Ok(crate::produce::workload_report(
        system,
        &args.topic,
        workload,
        &measured,
    ))
}
