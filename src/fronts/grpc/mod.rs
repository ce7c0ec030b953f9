//! The RocketMQ 5.x gRPC front end (`apache.rocketmq.v2.MessagingService`, port 8081 by
//! default, `--grpc-listen`): tonic on a tokio runtime of its own thread, never on a shard
//! executor (`DESIGN.md` §3). Requests become calls of the core on the shard that owns their
//! queue, over bounded channels (`shard_calls`). The judge of compatibility is the official
//! Node client, rocketmq-client-nodejs 1.0.8, unpatched (`docs/grpc-5x-client.md`).
//!
//! What it serves today: producers — routes, Settings over Telemetry, heartbeats, sends of
//! normal and FIFO messages, termination (`service`, `send`) — and SimpleConsumers — POP
//! receive, ack, change of invisibility (`receive`, `core::pop`). Push and pull consumers and
//! the other message kinds are refused with a reason, not half served.
//!
//! Invariants and limits:
//! - A send is answered OK only once the core says it may be acknowledged (after the fdatasync
//!   that covers it under `flush = sync`); a refused send stores nothing.
//! - Connections: at most `listener::CONNECTIONS_MAX`, each with `listener::HANDSHAKE_TIMEOUT`
//!   to show its first byte and finish TLS; [`STREAMS_PER_CONNECTION_MAX`] calls open on each.
//! - Memory: a call's message is at most [`MESSAGE_BYTES_MAX`] (tonic reserves the announced
//!   length but memory is touched only as bytes arrive); at most [`CALLS_IN_PROGRESS_MAX`]
//!   unary calls are decoded or served at once broker-wide, more wait in HTTP/2 flow control
//!   with their bodies unread; a call's body must arrive, and the call be answered, within the
//!   client's `grpc-timeout` and at most [`CALL_TIMEOUT`], or the call is dropped with what it
//!   held. Telemetry streams hold one command at a time each. Receives long-poll in tasks of
//!   their own, at most `service::RECEIVES_MAX` at once (more are answered TOO_MANY_REQUESTS),
//!   each holding one batch of at most `receive::BATCH_MAX` messages.
//! - Shutdown: when the broker's shutdown flag rises the server stops taking calls, gives those
//!   in progress [`SHUTDOWN_GRACE`], then drops every connection (telemetry streams never end
//!   by themselves); a call the closing shards can no longer serve fails, and nothing it stored
//!   is lost.
//! - TLS (`--tls-cert`/`--tls-key`): on the same port, by the connection's first byte.

mod access;
mod clients;
#[doc(hidden)]
pub mod fuzzing;
mod listener;
mod receive;
mod send;
mod service;
pub mod shard_calls;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardmq_grpc_proto::v2::messaging_service_server::MessagingServiceServer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::acl::Acl;
use crate::core::topics::TopicRegistry;

/// Calls open at once on one connection.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 32;
/// The largest gRPC message a client may send: a 4 MiB body with room for its properties.
pub const MESSAGE_BYTES_MAX: usize = clients::MAX_BODY_BYTES as usize + 1024 * 1024;
/// Unary calls in progress broker-wide at most.
pub const CALLS_IN_PROGRESS_MAX: usize = 64;
/// The longest a unary call may take, from its headers to its answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the thread looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);
/// How long calls in progress may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

async fn shutdown_raised(shutdown: &AtomicBool) {
    while !shutdown.load(Ordering::SeqCst) {
        tokio::time::sleep(SHUTDOWN_POLL).await;
    }
}

/// What the gRPC thread needs.
pub struct GrpcBoot {
    pub listener: std::net::TcpListener,
    pub shards: Vec<flume::Sender<shard_calls::ShardCall>>,
    pub topics: Arc<TopicRegistry>,
    pub acl: Option<Arc<Acl>>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub broker_name: String,
    pub advertise_host: Option<String>,
    pub shutdown: Arc<AtomicBool>,
}

/// Binds the gRPC listener at start, so a taken address stops the broker before it serves.
pub fn bind(listen: &str) -> Result<std::net::TcpListener, String> {
    std::net::TcpListener::bind(listen).map_err(|e| format!("--grpc-listen {listen}: {e}"))
}

/// Starts the gRPC thread; it ends once the shutdown flag is up.
pub fn start(boot: GrpcBoot) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("grpc".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the gRPC runtime; gRPC is off");
                    return;
                }
            };
            runtime.block_on(serve(boot));
        })
}

async fn serve(boot: GrpcBoot) {
    let GrpcBoot {
        listener,
        shards,
        topics,
        acl,
        tls,
        broker_name,
        advertise_host,
        shutdown,
    } = boot;
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the gRPC listener; gRPC is off");
            return;
        }
    };
    let (ready, incoming) = mpsc::channel(64);
    tokio::spawn(listener::accept(
        listener,
        tls.as_deref().map(listener::tls_acceptor),
        ready,
    ));
    let mut messaging = service::Messaging::new(shard_calls::Shards::new(shards), topics, acl);
    messaging.broker_name = broker_name;
    messaging.advertise_host = advertise_host;
    let server = MessagingServiceServer::new(service::Service(Arc::new(messaging)))
        .max_decoding_message_size(MESSAGE_BYTES_MAX);
    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .timeout(CALL_TIMEOUT)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            CALLS_IN_PROGRESS_MAX,
        ))
        .add_service(server)
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), shutdown_raised(&shutdown));
    // A graceful stop waits for every stream to end, and a client's telemetry stream lives as
    // long as the client: past the grace, what is still open is dropped with the runtime.
    let served = tokio::select! {
        served = served => served,
        () = async {
            shutdown_raised(&shutdown).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the gRPC server stopped");
    }
}
