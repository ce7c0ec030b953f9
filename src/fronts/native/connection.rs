//! Serving one native-protocol connection on the shard that owns it.
//!
//! Tasks, all on this shard's core:
//! - the reader (this function's future) decodes requests in arrival order and runs their
//!   handlers, so produce offsets follow the order the client sent; a long poll that has to
//!   wait is parked as its own task;
//! - the writer (`outbox::run_writer`) sends replies in the order they were queued, first
//!   waiting for the fdatasync a `flush = sync` ack needs (so the reader keeps taking batches
//!   that share that fdatasync).
//!
//! Bounds: request bodies take the shard's request budget as they arrive (`body`); replies take
//! the connection's and the shard's reply budgets until written (`outbox`); at most
//! `PARKED_PULLS_PER_CONNECTION_MAX` long polls wait at once (more are answered at once); the
//! watchdog closes a connection whose frame body or socket write stalls past the stall timeout.
//!
//! Ending, and what is released: the connection's [`Closer`] ends it. The client closing its
//! side lets the writer finish what is queued, then closes; a write error, a stall or a bad
//! frame header closes it at once. Every task races its waits against the closer, so the socket,
//! queued replies, budgets, parked polls and the connection slot are all released however the
//! connection ends.
//!
//! Bad input: a frame whose header is invalid (oversize length, unknown kind) gets a BadFrame
//! error reply and the connection is closed, since the stream can no longer be trusted; a
//! well-framed request with bad contents (garbage metadata, a batch with a wrong CRC) gets an
//! error reply and the connection goes on. Either way the reason is logged and nothing else on
//! the shard is affected.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::{Rc, Weak};

use event_listener::Event;
use futures_lite::io::{BufReader, BufWriter, ReadHalf};
use glommio::net::TcpStream;
use shardmq_protocol::envelope;
use shardmq_protocol::frame::FLAG_ONEWAY;
use shardmq_protocol::limits::FRAME_PAYLOAD_BYTES_MAX;
use shardmq_protocol::messages::{GroupChanged, HelloReply};
use shardmq_protocol::{FrameKind, ProtocolError};

use super::dispatch::{self, dispatch, finish_pull, Dispatched, LaterPull};
use super::error::NativeError;
use super::frame_io::{native_reply, read_frame, FrameError, InFrame};
use super::groups::Session;
use super::request::Request;
use crate::core::membership::GroupNotifier;
use crate::limits::{PARKED_PULLS_PER_CONNECTION_MAX, SLOW_REQUEST, SOCKET_BUFFER_BYTES};
use crate::server::body::socket_arrived;
use crate::server::closer::Closer;
use crate::server::context::ShardContext;
use crate::server::outbox::{self, Outbox};
use crate::server::watchdog::Progress;

/// What one connection's tasks share.
struct Connection {
    ctx: Rc<ShardContext>,
    outbox: Outbox,
    closer: Rc<Closer>,
    progress: Rc<Progress>,
    peer: String,
    /// Long polls parked now, and a notification each time one ends.
    parked: Cell<usize>,
    parked_ended: Event,
    /// Where group changes reach this connection, and the members that joined through it.
    session: Session,
}

/// Tells a connection's members that their group changed: a `GroupChanged` frame, unasked.
struct Notifier {
    connection: Weak<Connection>,
}

impl GroupNotifier for Notifier {
    fn group_changed(&self, group: &str, generation: u64) {
        let Some(conn) = self.connection.upgrade() else {
            return;
        };
        let changed = GroupChanged {
            group: group.to_string(),
            generation,
        };
        let Ok(prefix) = envelope::encode(&changed) else {
            return;
        };
        let Ok(frame) = native_reply(FrameKind::GroupChanged, 0, prefix, Vec::new()) else {
            return;
        };
        glommio::spawn_local(async move {
            let _ = conn.outbox.send(frame).await;
        })
        .detach();
    }
}

impl Connection {
    /// Unregisters the connection's notifier and lets its members leave their groups (only
    /// those still registered through this connection).
    fn leave_groups(&self) {
        let core = self.ctx.core.clone();
        let target = self.session.notify;
        core.unregister_notifier(target);
        let joined = std::mem::take(&mut *self.session.joined.borrow_mut());
        if joined.is_empty() {
            return;
        }
        glommio::spawn_local(async move {
            for (group, member) in joined {
                if let Err(err) = core.leave_group(&group, &member, Some(target)).await {
                    tracing::debug!(%group, %member, error = %err, "a closed connection's member could not leave its group");
                }
            }
        })
        .detach();
    }
}

/// Why the reader stopped.
enum ReadEnd {
    /// The client closed its side, or the socket failed.
    Eof,
    Shutdown,
    /// The stream can no longer be trusted; the error is answered first.
    BadFrame(ProtocolError),
}

/// The HelloReply that tells the client which shard serves it.
fn hello_reply(ctx: &ShardContext, correlation_id: u64) -> outbox::Reply {
    let reply = HelloReply {
        shard_id: ctx.core.shard_id,
        shard_count: ctx.core.shard_count,
        broker_version: env!("CARGO_PKG_VERSION").into(),
    };
    envelope::encode(&reply)
        .map_err(NativeError::ReplyTooLarge)
        .and_then(|prefix| {
            native_reply(FrameKind::HelloReply, correlation_id, prefix, Vec::new())
                .map_err(NativeError::ReplyTooLarge)
        })
        .unwrap_or_else(|err| dispatch::error(correlation_id, &err))
}

/// Serves a connection until the client closes it, a fatal frame error, a stall, or shutdown.
/// `hello` is the correlation id of the Hello the router already read, to be answered here.
pub async fn serve(ctx: Rc<ShardContext>, stream: TcpStream, hello: Option<u64>) {
    let _slot = ctx.connection_slot();
    if let Err(err) = stream.set_nodelay(true) {
        tracing::warn!(error = %err, "could not set TCP_NODELAY");
    }
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let closer = Rc::new(Closer::default());
    let watched = ctx.watchdog.watch(closer.clone(), &peer);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let (reader, writer) = futures_lite::io::split(stream);
    let (outbox, queue) = outbox::new(ctx.reply_budget.clone(), closer.clone());
    let writer_task = glommio::spawn_local(outbox::run_writer(
        BufWriter::with_capacity(SOCKET_BUFFER_BYTES, writer),
        queue,
        ctx.core.store.clone(),
        watched.progress.clone(),
        closer.clone(),
    ));
    let conn = Rc::new_cyclic(|weak: &Weak<Connection>| {
        let notifier = Rc::new(Notifier {
            connection: weak.clone(),
        });
        let notify = ctx.core.register_notifier(notifier);
        Connection {
            ctx,
            outbox,
            closer,
            progress: watched.progress.clone(),
            peer,
            parked: Cell::new(0),
            parked_ended: Event::new(),
            session: Session {
                notify,
                joined: RefCell::new(BTreeSet::new()),
            },
        }
    });
    if let Some(correlation_id) = hello {
        let _ = conn
            .outbox
            .send(hello_reply(&conn.ctx, correlation_id))
            .await;
    }
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, reader);
    // The descriptor stays open while `reader` (which owns half the stream) lives.
    let arrived = move || socket_arrived(fd).unwrap_or(0);
    let ended = futures_lite::future::or(
        async { Some(read_requests(&conn, &mut reader, &arrived).await) },
        async {
            conn.closer.wait().await;
            None
        },
    )
    .await;
    finish(&conn, ended).await;
    futures_lite::future::or(
        async {
            writer_task.await;
        },
        conn.closer.wait(),
    )
    .await;
    conn.closer.close("the connection ended");
    conn.leave_groups();
    if let Some(reason) = conn.closer.reason() {
        tracing::debug!(shard = conn.ctx.core.shard_id, peer = %conn.peer, %reason, "connection closed");
    }
}

/// After the reader stopped: answer what must be answered, then let the writer end the
/// connection once everything queued is written.
async fn finish(conn: &Connection, ended: Option<ReadEnd>) {
    match ended {
        None => return, // closed already: nothing more is written
        Some(ReadEnd::BadFrame(err)) => {
            let _ = conn
                .outbox
                .send(dispatch::error(0, &NativeError::BadFrame(err)))
                .await;
        }
        Some(ReadEnd::Shutdown) => {
            // Parked polls answer at once on shutdown; let their replies go out first.
            futures_lite::future::or(wait_parked_ended(conn), conn.closer.wait()).await;
        }
        Some(ReadEnd::Eof) => {}
    }
    conn.outbox.finish().await;
}

async fn wait_parked_ended(conn: &Connection) {
    while conn.parked.get() > 0 {
        let listener = conn.parked_ended.listen();
        if conn.parked.get() == 0 {
            return;
        }
        listener.await;
    }
}

async fn read_requests(
    conn: &Rc<Connection>,
    reader: &mut BufReader<ReadHalf<TcpStream>>,
    arrived: &impl Fn() -> usize,
) -> ReadEnd {
    let ctx = &conn.ctx;
    // One listener for the connection's life: it stays registered until shutdown notifies it.
    let mut shutdown = ctx.core.shutdown.listen();
    if ctx.core.is_shutting_down() {
        return ReadEnd::Shutdown;
    }
    loop {
        let next = futures_lite::future::or(
            async {
                Some(
                    read_frame(
                        reader,
                        FRAME_PAYLOAD_BYTES_MAX,
                        &ctx.request_budget,
                        Some(&conn.progress),
                        arrived,
                    )
                    .await,
                )
            },
            async {
                (&mut shutdown).await;
                None
            },
        )
        .await;
        let frame = match next {
            None => return ReadEnd::Shutdown,
            Some(Ok(None)) => return ReadEnd::Eof,
            Some(Ok(Some(frame))) => frame,
            Some(Err(FrameError::Protocol(err))) => {
                tracing::warn!(shard = ctx.core.shard_id, peer = %conn.peer, reason = %err, "closing connection: bad frame header");
                return ReadEnd::BadFrame(err);
            }
            Some(Err(err)) => {
                tracing::debug!(shard = ctx.core.shard_id, peer = %conn.peer, reason = %err, "connection ended");
                return ReadEnd::Eof;
            }
        };
        let kind = frame.header.kind;
        let started = std::time::Instant::now();
        let reply = handle(conn, frame).await;
        let took = started.elapsed();
        if took >= SLOW_REQUEST {
            tracing::warn!(shard = ctx.core.shard_id, peer = %conn.peer, ?kind, took_us = took.as_micros() as u64, "slow request");
        }
        if let Some(reply) = reply {
            if conn.outbox.send(reply).await.is_err() {
                return ReadEnd::Eof;
            }
        }
    }
}

/// Runs one request. `None` when the reply will come later (a parked long poll, which then
/// runs as its own task). The frame's request budget is held until the request is dispatched.
async fn handle(conn: &Rc<Connection>, frame: InFrame) -> Option<outbox::Reply> {
    let ctx = &conn.ctx;
    let InFrame {
        header,
        payload,
        held: _held,
    } = frame;
    let (kind, id) = (header.kind, header.correlation_id);
    let request = match Request::decode(kind, payload) {
        Ok(request) => request,
        Err(err) => {
            log_failure(conn, kind, &err);
            return Some(dispatch::error(id, &err));
        }
    };
    // With too many polls parked on this connection already, this one is answered now.
    let may_park = conn.parked.get() < PARKED_PULLS_PER_CONNECTION_MAX;
    let oneway = header.flags & FLAG_ONEWAY != 0;
    match dispatch(ctx, &conn.session, kind, id, request, may_park).await {
        // A oneway request gets no reply, for success or failure (RocketMQ's oneway).
        Dispatched::Now(_) if oneway => None,
        Dispatched::Now(reply) => Some(reply),
        Dispatched::Later(later) => {
            park(conn, later);
            None
        }
    }
}

/// Runs a parked pull as a task of its own: it answers when data comes, its wait ends or
/// shutdown begins, and gives up silently if the connection closes first.
fn park(conn: &Rc<Connection>, later: LaterPull) {
    conn.parked.set(conn.parked.get() + 1);
    let conn = conn.clone();
    glommio::spawn_local(async move {
        let answered =
            futures_lite::future::or(async { Some(finish_pull(&conn.ctx, later).await) }, async {
                conn.closer.wait().await;
                None
            })
            .await;
        if let Some(reply) = answered {
            let _ = conn.outbox.send(reply).await;
        }
        conn.parked.set(conn.parked.get() - 1);
        conn.parked_ended.notify(usize::MAX);
    })
    .detach();
}

fn log_failure(conn: &Connection, kind: FrameKind, err: &NativeError) {
    let shard = conn.ctx.core.shard_id;
    if err.is_rejection() {
        tracing::warn!(shard, peer = %conn.peer, ?kind, reason = %err, "request rejected");
    } else {
        tracing::debug!(shard, peer = %conn.peer, ?kind, reason = %err, "request failed");
    }
}
