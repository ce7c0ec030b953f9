//! The router: the one listener, the handshake, and the handoff of each connection to the shard
//! that will serve it.
//!
//! Shard 0 accepts every connection and reads its first frame, a `Hello`. A shard-aware client
//! names the shard it wants (`wanted_shard`, computed with `routing::shard_for_queue`); the
//! socket itself, as a duplicated file descriptor, then travels over a bounded cross-core
//! channel to that shard, which answers the Hello and serves the connection alone. After the
//! handoff no request on it ever crosses a core. A client that names no shard stays on shard 0.
//!
//! Which shard owns which queue is decided by `shardmq_protocol::routing` and nowhere else; the
//! receiving shard re-checks ownership on every request (`ShardContext::owned_queue`).
//!
//! Limits: the Hello must arrive within `HANDSHAKE_TIMEOUT`; at most `HANDOFF_QUEUE_DEPTH`
//! sockets wait in each shard's handoff queue.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::AsyncWrite;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use glommio::net::{TcpListener, TcpStream};
use shardmq_protocol::envelope;
use shardmq_protocol::messages::Hello;
use shardmq_protocol::FrameKind;

use super::error::NativeError;
use super::frame_io::{native_reply, read_frame, FrameError};
use super::{access, connection};
use crate::acl::Account;
use crate::limits::{CONNECTIONS_PER_SHARD_MAX, HANDSHAKE_TIMEOUT, HELLO_BYTES_MAX};
use crate::server::body::BodySource;
use crate::server::context::ShardContext;
use crate::server::tls::Stream;

/// A socket on its way to another shard. Owns the duplicated descriptor, so a handoff dropped
/// in flight closes it instead of leaking it.
pub struct Handoff {
    pub socket: OwnedFd,
    pub hello_correlation_id: u64,
    /// The ACL account the Hello proved (with ACL on); the receiving shard looks it up in its
    /// own handle of the same table.
    pub access_key: Option<String>,
}

/// Duplicates the socket's descriptor (close-on-exec) and drops the original stream.
fn detach(stream: TcpStream) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor the stream owns; the result is ours alone.
    let fd = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(stream);
    // SAFETY: `fd` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Rebuilds a stream on the receiving shard's executor.
pub fn attach(socket: OwnedFd) -> TcpStream {
    // SAFETY: the descriptor is a connected TCP socket whose ownership we take here.
    unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) }
}

pub async fn reject<S: AsyncWrite + Unpin>(mut stream: S, correlation_id: u64, err: NativeError) {
    use futures_lite::AsyncWriteExt;
    tracing::warn!(reason = %err, "handshake rejected");
    let Ok(reply) = native_reply(FrameKind::Error, correlation_id, err.encode_reply(), vec![])
    else {
        return;
    };
    // One send: the socket has TCP_NODELAY, and the client reads the whole frame before close.
    if stream.write_all(&reply.head).await.is_ok() {
        let _ = stream.flush().await;
    }
}

/// Accepts connections on shard 0 until shutdown.
pub async fn accept_loop(
    ctx: Rc<ShardContext>,
    listener: TcpListener,
    handoffs: Rc<Vec<Option<ConnectedSender<Handoff>>>>,
) {
    let serving = ctx.clone();
    crate::server::listener::accept_until_shutdown(ctx, listener, "native", move |stream| {
        glommio::spawn_local(handshake(serving.clone(), stream, handoffs.clone())).detach();
    })
    .await;
}

/// A Hello read and, with ACL on, authenticated.
pub struct Greeted {
    pub correlation_id: u64,
    pub hello: Hello,
    pub account: Option<Arc<Account>>,
}

/// Reads the first frame, which must be a Hello, within the handshake timeout, and proves its
/// account. `None`: the connection was answered (when it could be) and is to be dropped.
pub async fn read_hello<S: BodySource + AsyncWrite>(
    ctx: &ShardContext,
    stream: &mut S,
) -> Option<Greeted> {
    let first = glommio::timer::timeout(HANDSHAKE_TIMEOUT, async {
        Ok(read_frame(
            &mut *stream,
            HELLO_BYTES_MAX,
            &ctx.request_budget,
            None,
            || 0,
        )
        .await)
    })
    .await;
    let (header, payload) = match first {
        Ok(Ok(Some(frame))) => (frame.header, frame.payload),
        Ok(Ok(None)) => return None,
        Ok(Err(err)) => {
            let reason = err.to_string();
            if let FrameError::Protocol(p) = err {
                reject(stream, 0, NativeError::BadFrame(p)).await;
            }
            tracing::warn!(%reason, "handshake failed");
            return None;
        }
        Err(_) => {
            tracing::warn!("no Hello within the handshake timeout; closing");
            return None;
        }
    };
    let id = header.correlation_id;
    if header.kind != FrameKind::Hello {
        let err = NativeError::InvalidArgument(format!(
            "the first frame must be Hello, got {:?}",
            header.kind
        ));
        reject(stream, id, err).await;
        return None;
    }
    let version = shardmq_protocol::frame::hello_version(header.flags);
    if version != shardmq_protocol::frame::PROTOCOL_VERSION {
        let err = NativeError::Unsupported(format!(
            "the client speaks native protocol version {version} (0: a client from before \
             versions were sent), this broker version {}: use a client of the broker's release",
            shardmq_protocol::frame::PROTOCOL_VERSION
        ));
        reject(stream, id, err).await;
        return None;
    }
    let hello = match envelope::decode::<Hello>(&payload) {
        Ok(hello) => hello,
        Err(err) => {
            reject(stream, id, NativeError::BadFrame(err)).await;
            return None;
        }
    };
    let account = match &ctx.acl {
        None => None,
        Some(acl) => {
            match access::authenticate(acl, &hello, shardmq_protocol::auth::unix_time_ms()) {
                Ok(account) => Some(account),
                Err(denied) => {
                    reject(stream, id, NativeError::Unauthenticated(denied)).await;
                    return None;
                }
            }
        }
    };
    Some(Greeted {
        correlation_id: id,
        hello,
        account,
    })
}

/// The refusal of a connection this shard cannot take, if any.
pub fn refuse_at_capacity(ctx: &ShardContext) -> Option<NativeError> {
    (ctx.open_connections() >= CONNECTIONS_PER_SHARD_MAX).then(|| {
        NativeError::InvalidArgument(format!(
            "shard {} serves its maximum of {CONNECTIONS_PER_SHARD_MAX} connections",
            ctx.core.shard_id
        ))
    })
}

async fn handshake(
    ctx: Rc<ShardContext>,
    mut stream: TcpStream,
    handoffs: Rc<Vec<Option<ConnectedSender<Handoff>>>>,
) {
    let _ = stream.set_nodelay(true);
    let Some(Greeted {
        correlation_id: id,
        hello,
        account,
    }) = read_hello(&ctx, &mut stream).await
    else {
        return;
    };
    let target = hello.wanted_shard.unwrap_or(ctx.core.shard_id);
    if target >= ctx.core.shard_count {
        let err = NativeError::InvalidArgument(format!(
            "shard {target} does not exist; this broker has {}",
            ctx.core.shard_count
        ));
        return reject(stream, id, err).await;
    }
    if target == ctx.core.shard_id {
        if let Some(err) = refuse_at_capacity(&ctx) {
            return reject(stream, id, err).await;
        }
        return connection::serve(ctx, Stream::Plain(stream), Some(id), account).await;
    }
    let Some(Some(sender)) = handoffs.get(target as usize) else {
        return reject(
            stream,
            id,
            NativeError::InvalidArgument(format!("no route to shard {target}")),
        )
        .await;
    };
    match detach(stream) {
        Ok(socket) => {
            if sender
                .send(Handoff {
                    socket,
                    hello_correlation_id: id,
                    access_key: account.map(|a| a.access_key.clone()),
                })
                .await
                .is_err()
            {
                tracing::warn!(target, "shard is not taking connections; handoff dropped");
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not duplicate socket for handoff"),
    }
}

/// Receives handed-off sockets on shard `k > 0` and serves them until shutdown.
pub async fn receive_loop(ctx: Rc<ShardContext>, receiver: ConnectedReceiver<Handoff>) {
    loop {
        let shutdown = ctx.core.shutdown.listen();
        if ctx.core.is_shutting_down() {
            return;
        }
        let next = futures_lite::future::or(async { receiver.recv().await }, async {
            shutdown.await;
            None
        })
        .await;
        let Some(handoff) = next else { return };
        let stream = attach(handoff.socket);
        if let Some(err) = refuse_at_capacity(&ctx) {
            glommio::spawn_local(reject(stream, handoff.hello_correlation_id, err)).detach();
            continue;
        }
        let account = match (&ctx.acl, &handoff.access_key) {
            (Some(acl), Some(key)) => match acl.account(key) {
                Ok(account) => Some(account.clone()),
                Err(denied) => {
                    let err = NativeError::Unauthenticated(denied);
                    glommio::spawn_local(reject(stream, handoff.hello_correlation_id, err))
                        .detach();
                    continue;
                }
            },
            _ => None,
        };
        glommio::spawn_local(connection::serve(
            ctx.clone(),
            Stream::Plain(stream),
            Some(handoff.hello_correlation_id),
            account,
        ))
        .detach();
    }
}
