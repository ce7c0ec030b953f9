//! Serving one client connection on the shard that owns it, whatever its wire protocol: the
//! loop every front end shares. A front end (a [`Protocol`]) reads its frames and handles them;
//! everything else is here.
//!
//! Tasks, all on this shard's core:
//! - the reader (this function's future) reads requests in arrival order and runs their
//!   handlers, so produce offsets follow the order the client sent; a long poll that has to
//!   wait is parked as its own task (at most `PARKED_PULLS_PER_CONNECTION_MAX` at once:
//!   [`Conn::may_park`]);
//! - the writer (`outbox::run_writer`) sends replies in the order they were queued, first
//!   waiting for the fdatasync a `flush = sync` ack needs (so the reader keeps taking batches
//!   that share that fdatasync).
//!
//! Bounds: request bodies take the shard's request budget as they arrive (`body`); replies take
//! the connection's and the shard's reply budgets until written (`outbox`); the watchdog closes
//! a connection whose frame body or socket write stalls past the stall timeout.
//!
//! Ending, and what is released: the connection's [`Closer`] ends it. The client closing its
//! side lets the writer finish what is queued, then closes; a write error, a stall or an
//! untrustworthy frame (answered first, if the protocol has an answer) closes it at once. Every
//! task races its waits against the closer, so the socket, queued replies, budgets, parked polls
//! and the connection slot are all released however the connection ends; the protocol is told
//! last ([`Protocol::closed`]), so its members leave their groups.
#![allow(async_fn_in_trait)] // executor-local futures, never sent across threads

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use event_listener::Event;
use futures_lite::io::{BufReader, BufWriter, ReadHalf};

use crate::limits::{PARKED_PULLS_PER_CONNECTION_MAX, SLOW_REQUEST, SOCKET_BUFFER_BYTES};
use crate::server::body::socket_arrived;
use crate::server::closer::Closer;
use crate::server::context::ShardContext;
use crate::server::outbox::{self, Outbox, Reply};
use crate::server::tls::Stream;
use crate::server::watchdog::Progress;

/// The read side of a connection, buffered.
pub type Reader = BufReader<ReadHalf<Stream>>;

/// A reply that comes later: a parked long poll.
pub type LaterReply = Pin<Box<dyn Future<Output = Reply>>>;

/// What handling one request gave.
pub enum Handled {
    Reply(Reply),
    /// A reply in the budget its request reserved before reading its data (`Outbox::reserve`).
    Reserved(Reply, outbox::Reservation),
    /// A oneway request, or one answered some other way.
    Nothing,
    Later(LaterReply),
}

/// Why no frame came.
pub enum FrameFailure {
    /// The stream cannot be trusted any more (a bad frame header): answer `reply`, if any, and
    /// close.
    Fatal {
        reason: String,
        reply: Option<Reply>,
    },
    /// The socket failed or the client went away mid-frame.
    Ended(String),
}

/// One wire protocol's part of a connection.
pub trait Protocol: Sized + 'static {
    type Frame;

    /// A short name for logs.
    const NAME: &'static str;

    /// Reads the next request frame; `Ok(None)` at a clean end of stream.
    async fn read_frame(
        conn: &Conn<Self>,
        reader: &mut Reader,
        arrived: &dyn Fn() -> usize,
    ) -> Result<Option<Self::Frame>, FrameFailure>;

    /// Handles one request; the request's kind (a metrics label and the slow-request log's
    /// name for it) comes back with the outcome.
    async fn handle(conn: &Rc<Conn<Self>>, frame: Self::Frame) -> (Handled, &'static str);

    /// The connection has ended; nothing more will be written.
    fn closed(conn: &Conn<Self>);
}

/// What a connection's tasks share: the machinery and the protocol's own state.
pub struct Conn<P> {
    pub ctx: Rc<ShardContext>,
    pub outbox: Outbox,
    pub closer: Rc<Closer>,
    pub progress: Rc<Progress>,
    pub peer: String,
    /// Long polls parked now, and a notification each time one ends.
    parked: Cell<usize>,
    parked_ended: Event,
    pub proto: P,
}

impl<P> Conn<P> {
    /// Whether another long poll may park on this connection (otherwise it answers at once).
    pub fn may_park(&self) -> bool {
        self.parked.get() < PARKED_PULLS_PER_CONNECTION_MAX
    }

    /// Queues an unasked frame (a notification) for the writer, from a task of its own.
    pub fn push(self: &Rc<Self>, reply: Reply)
    where
        P: 'static,
    {
        let conn = self.clone();
        glommio::spawn_local(async move {
            let _ = conn.outbox.send(reply).await;
        })
        .detach();
    }
}

/// Why the reader stopped.
enum ReadEnd {
    /// The client closed its side, or the socket failed.
    Eof,
    Shutdown,
    /// The stream can no longer be trusted; `reply` goes out first.
    Fatal(Option<Reply>),
}

/// Serves a connection until the client closes it, a fatal frame error, a stall, or shutdown.
/// `make` builds the protocol's state (with a weak handle for pushes); `first` is written
/// before any request is read (the native Hello's answer).
pub async fn serve<P: Protocol>(
    ctx: Rc<ShardContext>,
    stream: Stream,
    make: impl FnOnce(&Rc<ShardContext>, Weak<Conn<P>>) -> P,
    first: impl FnOnce(&Conn<P>) -> Option<Reply>,
) {
    let _slot = ctx.connection_slot();
    ctx.core.metrics.accepted(P::NAME);
    if let Err(err) = stream.tcp().set_nodelay(true) {
        tracing::warn!(error = %err, "could not set TCP_NODELAY");
    }
    let peer = stream
        .tcp()
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
    let conn = Rc::new_cyclic(|weak: &Weak<Conn<P>>| Conn {
        proto: make(&ctx, weak.clone()),
        ctx,
        outbox,
        closer,
        progress: watched.progress.clone(),
        peer,
        parked: Cell::new(0),
        parked_ended: Event::new(),
    });
    if let Some(reply) = first(&conn) {
        let _ = conn.outbox.send(reply).await;
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
    P::closed(&conn);
    if let Some(reason) = conn.closer.reason() {
        tracing::debug!(shard = conn.ctx.core.shard_id, protocol = P::NAME, peer = %conn.peer, %reason, "connection closed");
    }
}

/// After the reader stopped: answer what must be answered, then let the writer end the
/// connection once everything queued is written.
async fn finish<P>(conn: &Conn<P>, ended: Option<ReadEnd>) {
    match ended {
        None => return, // closed already: nothing more is written
        Some(ReadEnd::Fatal(reply)) => {
            if let Some(reply) = reply {
                let _ = conn.outbox.send(reply).await;
            }
        }
        Some(ReadEnd::Shutdown) => {
            // Parked polls answer at once on shutdown; let their replies go out first.
            futures_lite::future::or(wait_parked_ended(conn), conn.closer.wait()).await;
        }
        Some(ReadEnd::Eof) => {}
    }
    conn.outbox.finish().await;
}

async fn wait_parked_ended<P>(conn: &Conn<P>) {
    while conn.parked.get() > 0 {
        let listener = conn.parked_ended.listen();
        if conn.parked.get() == 0 {
            return;
        }
        listener.await;
    }
}

async fn read_requests<P: Protocol>(
    conn: &Rc<Conn<P>>,
    reader: &mut Reader,
    arrived: &dyn Fn() -> usize,
) -> ReadEnd {
    let ctx = &conn.ctx;
    // One listener for the connection's life: it stays registered until shutdown notifies it.
    let mut shutdown = ctx.core.shutdown.listen();
    if ctx.core.is_shutting_down() {
        return ReadEnd::Shutdown;
    }
    loop {
        let next = futures_lite::future::or(
            async { Some(P::read_frame(conn, reader, arrived).await) },
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
            Some(Err(FrameFailure::Fatal { reason, reply })) => {
                tracing::warn!(shard = ctx.core.shard_id, protocol = P::NAME, peer = %conn.peer, %reason, "closing connection: bad frame");
                return ReadEnd::Fatal(reply);
            }
            Some(Err(FrameFailure::Ended(reason))) => {
                tracing::debug!(shard = ctx.core.shard_id, protocol = P::NAME, peer = %conn.peer, %reason, "connection ended");
                return ReadEnd::Eof;
            }
        };
        let started = std::time::Instant::now();
        let (handled, what) = P::handle(conn, frame).await;
        let took = started.elapsed();
        ctx.core.metrics.request(P::NAME, what, took);
        if took >= SLOW_REQUEST {
            tracing::warn!(shard = ctx.core.shard_id, protocol = P::NAME, peer = %conn.peer, request = %what, took_us = took.as_micros() as u64, "slow request");
        }
        match handled {
            Handled::Reply(reply) => {
                count_rejection::<P>(ctx, &reply);
                if conn.outbox.send(reply).await.is_err() {
                    return ReadEnd::Eof;
                }
            }
            Handled::Reserved(reply, reserved) => {
                count_rejection::<P>(ctx, &reply);
                if conn.outbox.send_reserved(reply, reserved).await.is_err() {
                    return ReadEnd::Eof;
                }
            }
            Handled::Nothing => {}
            Handled::Later(later) => park(conn, later),
        }
    }
}

fn count_rejection<P: Protocol>(ctx: &ShardContext, reply: &Reply) {
    if let Some(reason) = reply.rejected {
        ctx.core.metrics.rejected(P::NAME, reason);
    }
}

/// Runs a parked pull as a task of its own: it answers when data comes, its wait ends or
/// shutdown begins, and gives up silently if the connection closes first.
fn park<P: Protocol>(conn: &Rc<Conn<P>>, later: LaterReply) {
    conn.parked.set(conn.parked.get() + 1);
    let conn = conn.clone();
    glommio::spawn_local(async move {
        let answered = futures_lite::future::or(async { Some(later.await) }, async {
            conn.closer.wait().await;
            None
        })
        .await;
        if let Some(reply) = answered {
            count_rejection::<P>(&conn.ctx, &reply);
            let _ = conn.outbox.send(reply).await;
        }
        conn.parked.set(conn.parked.get() - 1);
        conn.parked_ended.notify(usize::MAX);
    })
    .detach();
}
