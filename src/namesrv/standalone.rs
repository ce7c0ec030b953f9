//! `shardmq namesrv`: the name server alone, for several brokers (shardmq or Java ones) that
//! register with it (`shardmq broker --namesrv …`) and form one cluster that clients spread
//! over. It keeps no state on disk: brokers re-register every 30 s.
//!
//! A control plane: a thread per connection with blocking sockets (`blocking`), bounded
//! (`--connections-max`), each closed when it sends no request for `--idle-timeout-ms` or stalls
//! inside a frame for the stall timeout; the bytes buffered for frames being read are bounded
//! as a whole (`BUFFERED_BYTES_MAX`) as well as per frame (16 MiB). Answers come from
//! `service`. SIGTERM or SIGINT stop it (exit 0) within a tick of the accept loop.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::blocking::{read_frame_rest, wait_for_frame, write_command, FrameError};
use super::registry::BrokerRegistry;
use super::service;
use crate::fronts::remoting::dispatch::refused;

/// The most frame bytes all connections together may hold while reading.
const BUFFERED_BYTES_MAX: usize = 256 << 20;
const ACCEPT_TICK: Duration = Duration::from_millis(50);
/// How long the name server may take to stop after SIGTERM or SIGINT.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
pub struct NamesrvArgs {
    /// Where clients and brokers reach it, HOST:PORT (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub listen: String,
    /// A connection that sends no request for this long is closed, in ms (Java's 120 s).
    #[arg(long, default_value_t = 120_000)]
    pub idle_timeout_ms: u64,
    /// Connections served at once; more are refused (closed at once, logged).
    #[arg(long, default_value_t = 4096)]
    pub connections_max: usize,
}

struct Shared {
    registry: Mutex<BrokerRegistry>,
    connections: AtomicUsize,
    buffered: AtomicUsize,
    idle: Duration,
}

/// Runs until SIGTERM or SIGINT (`shardmq namesrv`).
pub fn run_until_signalled(args: NamesrvArgs) -> Result<(), String> {
    let signals = crate::boot::block_termination_signals();
    let shutdown = Arc::new(AtomicBool::new(false));
    crate::boot::spawn_signal_thread(signals, shutdown.clone(), SHUTDOWN_DEADLINE);
    run(args, shutdown)
}

/// Runs until `shutdown`. Prints `shardmq ready namesrv=ADDR` once it listens.
pub fn run(args: NamesrvArgs, shutdown: Arc<AtomicBool>) -> Result<(), String> {
    let listener = TcpListener::bind(&args.listen)
        .map_err(|e| format!("cannot listen on {} (namesrv): {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared {
        registry: Mutex::new(BrokerRegistry::default()),
        connections: AtomicUsize::new(0),
        buffered: AtomicUsize::new(0),
        idle: Duration::from_millis(args.idle_timeout_ms.max(1)),
    });
    println!("shardmq ready namesrv={addr}");
    tracing::info!(%addr, "name server listening");
    while !shutdown.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => admit(&shared, stream, peer, args.connections_max),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_TICK),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(ACCEPT_TICK);
            }
        }
    }
    tracing::info!("name server stopped");
    Ok(())
}

fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: std::net::SocketAddr, max: usize) {
    if shared.connections.fetch_add(1, Ordering::AcqRel) >= max {
        shared.connections.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(%peer, max, "connection refused: too many connections");
        return;
    }
    let serving = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("namesrv-conn".into())
        .spawn(move || {
            // Releases the slot however the thread ends, a panic included.
            struct Slot<'a>(&'a AtomicUsize);
            impl Drop for Slot<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let _slot = Slot(&serving.connections);
            if let Err(reason) = serve(&serving, stream) {
                tracing::info!(%peer, %reason, "namesrv connection closed");
            }
        });
    if let Err(e) = spawned {
        shared.connections.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(%peer, error = %e, "cannot start a connection thread");
    }
}

/// Holds `bytes` of the shared frame budget until dropped.
struct Reserved<'a> {
    shared: &'a Shared,
    bytes: usize,
}

impl Reserved<'_> {
    /// Takes `bytes` more, or refuses when every connection together holds the most allowed.
    fn take(&mut self, bytes: usize) -> Result<(), FrameError> {
        let before = self.shared.buffered.fetch_add(bytes, Ordering::AcqRel);
        self.bytes += bytes;
        if before + bytes > BUFFERED_BYTES_MAX {
            return Err(FrameError::Bad(format!(
                "the name server holds {BUFFERED_BYTES_MAX} bytes of frames being read already"
            )));
        }
        Ok(())
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.shared.buffered.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

fn serve(shared: &Shared, mut stream: TcpStream) -> Result<(), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(STALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    loop {
        // The idle timeout until a frame begins; then the whole frame within the stall timeout.
        stream
            .set_read_timeout(Some(shared.idle))
            .map_err(|e| e.to_string())?;
        let first = match wait_for_frame(&mut stream) {
            Ok(first) => first,
            Err(FrameError::Closed) => return Ok(()),
            Err(FrameError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "no request for {} ms (idle timeout)",
                    shared.idle.as_millis()
                ))
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut reserved = Reserved { shared, bytes: 0 };
        let mut grow = |bytes: usize| reserved.take(bytes);
        let deadline = std::time::Instant::now() + STALL_TIMEOUT;
        let command = read_frame_rest(&mut stream, first, deadline, &mut grow)
            .map_err(|e| format!("{e} (a frame must arrive whole within {STALL_TIMEOUT:?})"))?;
        if command.is_response() {
            continue;
        }
        let response = service::answer(None, &shared.registry, &command)
            .unwrap_or_else(|refusal| refused(&command, refusal));
        if !command.is_oneway() {
            write_command(&mut stream, &response).map_err(|e| e.to_string())?;
        }
    }
}
