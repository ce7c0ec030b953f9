//! [`Connection`]: one TCP connection to one broker shard, with pipelining.
//!
//! Owns the socket, a write lock, the table of requests awaiting replies, and a reader task.
//! Many requests may be in flight: each gets a fresh correlation id and a [`Slot`] in the
//! pending table, writes its frame under the write lock (frames never interleave), and waits on
//! its slot. The reader task reads frames one after another and completes the slot whose id the
//! reply carries, so replies may arrive in any order. A reply whose id is no longer pending (its
//! request timed out or was dropped) is discarded.
//!
//! Handshake: `Hello` is the first frame and nothing else is sent until `HelloReply` has been
//! read (the broker may be handing the socket to another shard in between); only then does the
//! reader task start.
//!
//! Failure: a read error, an undecodable frame, or a frame torn by a cancelled write closes the
//! connection for good: the socket is shut down, every pending request fails with the cause, and
//! later requests fail with it at once. [`crate::Client`] replaces a closed connection on its
//! next use. Dropping the last handle shuts the socket down and cancels the reader.
//!
//! Runs on the glommio executor that created it (the reader is a `spawn_local` task); `!Send`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use rkyv::api::high::HighSerializer;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::Serialize;
use shardmq_protocol::envelope;
use shardmq_protocol::frame::FLAG_ONEWAY;
use shardmq_protocol::messages::{Hello, HelloReply};
use shardmq_protocol::FrameKind;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::frame_io::{self, Reply};
use crate::signal::{with_timeout, Slot};
use crate::socket::Socket;

/// Correlation id of the `Hello` frame; requests count up from 1.
const HELLO_CORRELATION_ID: u64 = 0;

type ReplySlot = Rc<Slot<Result<Reply>>>;

/// A cheap-to-clone handle to one connection. All clones share the socket and reader.
#[derive(Clone)]
pub struct Connection {
    inner: Rc<Inner>,
}

struct Inner {
    socket: Rc<Socket>,
    shared: Rc<Shared>,
    /// One permit: held while a frame is being written.
    write_lock: glommio::sync::Semaphore,
    /// Reused frame buffer; only touched while holding `write_lock`.
    scratch: RefCell<Vec<u8>>,
    next_id: Cell<u64>,
    hello: HelloReply,
    request_timeout: Duration,
    /// Dropping the task cancels the reader.
    _reader: glommio::Task<()>,
}

/// State shared between request futures and the reader task.
struct Shared {
    pending: RefCell<HashMap<u64, ReplySlot>>,
    /// Set once, when the connection fails or is dropped.
    closed: RefCell<Option<ClientError>>,
    /// `GroupChanged` frames the broker pushed, the newest generation per group.
    group_changes: Rc<GroupChanges>,
}

/// The newest generation the broker announced for each group a member joined through this
/// connection, and an event that fires on every announcement (and when the connection closes,
/// so waiters look again).
#[derive(Default)]
pub struct GroupChanges {
    generations: RefCell<HashMap<String, u64>>,
    pub changed: event_listener::Event,
}

impl GroupChanges {
    /// The newest generation announced for `group`.
    pub fn generation(&self, group: &str) -> Option<u64> {
        self.generations.borrow().get(group).copied()
    }

    fn announce(&self, group: String, generation: u64) {
        let mut generations = self.generations.borrow_mut();
        let newest = generations.entry(group).or_insert(0);
        *newest = (*newest).max(generation);
        self.changed.notify(usize::MAX);
    }
}

impl Shared {
    /// Marks the connection closed (first cause wins) and fails every pending request.
    fn fail(&self, cause: ClientError) {
        let cause = {
            let mut closed = self.closed.borrow_mut();
            closed.get_or_insert(cause).clone()
        };
        let drained: Vec<ReplySlot> = self.pending.borrow_mut().drain().map(|(_, s)| s).collect();
        for slot in drained {
            slot.set(Err(cause.clone()));
        }
    }

    fn check_open(&self) -> Result<()> {
        match &*self.closed.borrow() {
            None => Ok(()),
            Some(cause) => Err(cause.clone()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.fail(ClientError::Closed);
        self.socket.shutdown();
    }
}

impl Connection {
    /// Connects to `addr`, sends `Hello { client_name, wanted_shard }` and waits for the
    /// `HelloReply`. With `Some(k)` the reply must come from shard `k`.
    pub async fn connect(
        addr: &str,
        client_name: &str,
        wanted_shard: Option<u32>,
        config: &ClientConfig,
    ) -> Result<Connection> {
        let socket = with_timeout(config.connect_timeout, async {
            Ok(Socket::connect_with(addr, config.connect_timeout, config.tls.as_ref()).await?)
        })
        .await?;
        let hello = Hello {
            client_name: client_name.to_owned(),
            wanted_shard,
            credentials: config.credentials.as_ref().map(|c| c.hello(client_name)),
        };
        let reply = with_timeout(config.request_timeout, handshake(&socket, &hello)).await?;
        if reply.shard_count == 0 || reply.shard_id >= reply.shard_count {
            return Err(ClientError::UnexpectedReply(format!(
                "HelloReply names shard {} of {}",
                reply.shard_id, reply.shard_count
            )));
        }
        if let Some(wanted) = wanted_shard {
            if reply.shard_id != wanted {
                return Err(ClientError::UnexpectedReply(format!(
                    "asked for shard {wanted}, HelloReply came from shard {}",
                    reply.shard_id
                )));
            }
        }
        tracing::debug!(
            peer = %socket.peer(),
            shard = reply.shard_id,
            shards = reply.shard_count,
            "connected"
        );
        let socket = Rc::new(socket);
        let shared = Rc::new(Shared {
            pending: RefCell::new(HashMap::new()),
            closed: RefCell::new(None),
            group_changes: Rc::new(GroupChanges::default()),
        });
        let reader = glommio::spawn_local(read_loop(socket.clone(), shared.clone()));
        Ok(Connection {
            inner: Rc::new(Inner {
                socket,
                shared,
                write_lock: glommio::sync::Semaphore::new(1),
                scratch: RefCell::new(Vec::with_capacity(frame_io::INLINE_DATA_BYTES_MAX)),
                next_id: Cell::new(HELLO_CORRELATION_ID + 1),
                hello: reply,
                request_timeout: config.request_timeout,
                _reader: reader,
            }),
        })
    }

    /// The handshake reply: which shard serves this connection, how many shards there are.
    pub fn hello(&self) -> &HelloReply {
        &self.inner.hello
    }

    pub fn shard_id(&self) -> u32 {
        self.inner.hello.shard_id
    }

    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// True once the connection has failed or been shut down; it never reopens.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.borrow().is_some()
    }

    /// The group changes the broker announced on this connection.
    pub fn group_changes(&self) -> Rc<GroupChanges> {
        self.inner.shared.group_changes.clone()
    }

    /// Sends a request that wants no reply (RocketMQ's oneway): the broker answers nothing,
    /// for success or failure. Returns once the frame is written.
    pub async fn send_oneway(&self, kind: FrameKind, prefix: &[u8], data: &[u8]) -> Result<()> {
        frame_io::check_frame_len(prefix, data)?;
        self.inner.shared.check_open()?;
        let id = self.inner.next_id.get();
        self.inner
            .next_id
            .set(id.wrapping_add(1).max(HELLO_CORRELATION_ID + 1));
        self.write_frame(kind, id, prefix, data, FLAG_ONEWAY).await
    }

    /// Number of requests awaiting replies.
    pub fn in_flight(&self) -> usize {
        self.inner.shared.pending.borrow().len()
    }

    /// Sends `kind` with `meta` and `data` and waits for the reply, within the connection's
    /// request timeout. An `Error` reply or a reply of the wrong kind is returned as an error.
    pub async fn request<T>(&self, kind: FrameKind, meta: &T, data: &[u8]) -> Result<Reply>
    where
        T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        self.request_with_timeout(kind, meta, data, self.inner.request_timeout)
            .await
    }

    /// [`Connection::request`] with an explicit timeout (pulls add their long-poll wait).
    pub async fn request_with_timeout<T>(
        &self,
        kind: FrameKind,
        meta: &T,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Reply>
    where
        T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        let prefix = envelope::encode_prefix(meta, data.len())?;
        self.request_raw(kind, &prefix, data, timeout).await
    }

    /// [`Connection::request_with_timeout`] with the envelope prefix already encoded (by
    /// `envelope::encode_prefix(meta, data.len())`).
    pub async fn request_raw(
        &self,
        kind: FrameKind,
        prefix: &[u8],
        data: &[u8],
        timeout: Duration,
    ) -> Result<Reply> {
        with_timeout(timeout, async {
            self.send_request(kind, prefix, data).await?.wait().await
        })
        .await
    }

    /// First half of a request: writes the frame (envelope `prefix` already encoded for
    /// `data.len()`) and returns a handle to await the reply with. Frames never interleave, but
    /// concurrent callers may be written in any order; a caller that awaits each `send_request`
    /// before starting the next gets its frames onto the wire in that order (the producer relies
    /// on this for per-queue ordering).
    ///
    /// Cancelling this future after the frame started going out closes the connection (the
    /// frame would be torn); cancelling the returned [`PendingReply`] just abandons the reply.
    pub async fn send_request(
        &self,
        kind: FrameKind,
        prefix: &[u8],
        data: &[u8],
    ) -> Result<PendingReply> {
        frame_io::check_frame_len(prefix, data)?;
        self.inner.shared.check_open()?;
        let id = self.inner.next_id.get();
        self.inner
            .next_id
            .set(id.wrapping_add(1).max(HELLO_CORRELATION_ID + 1));
        let slot: ReplySlot = Rc::new(Slot::new());
        self.inner
            .shared
            .pending
            .borrow_mut()
            .insert(id, slot.clone());
        // From here on, dropping `pending` unregisters the id.
        let pending = PendingReply {
            shared: self.inner.shared.clone(),
            id,
            slot,
            request: kind,
        };
        self.write_frame(kind, id, prefix, data, 0).await?;
        Ok(pending)
    }

    async fn write_frame(
        &self,
        kind: FrameKind,
        id: u64,
        prefix: &[u8],
        data: &[u8],
        flags: u16,
    ) -> Result<()> {
        let inner = &*self.inner;
        let _permit = inner
            .write_lock
            .acquire_permit(1)
            .await
            .map_err(|_| ClientError::Closed)?;
        inner.shared.check_open()?;
        let mut scratch = std::mem::take(&mut *inner.scratch.borrow_mut());
        let mut torn = TornFrameGuard { inner, armed: true };
        let result =
            frame_io::write_frame(&inner.socket, &mut scratch, kind, id, prefix, data, flags).await;
        torn.armed = false;
        *inner.scratch.borrow_mut() = scratch;
        if let Err(e) = &result {
            inner.shared.fail(e.clone());
            inner.socket.shutdown();
        }
        result
    }
}

/// Closes the connection if a frame write is cancelled part way.
struct TornFrameGuard<'a> {
    inner: &'a Inner,
    armed: bool,
}

impl Drop for TornFrameGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            tracing::warn!("frame write cancelled part way; closing the connection");
            self.inner.shared.fail(ClientError::Closed);
            self.inner.socket.shutdown();
        }
    }
}

/// A request whose frame has been written; await [`PendingReply::wait`] for the reply.
/// Dropping it abandons the request (a late reply is discarded).
pub struct PendingReply {
    shared: Rc<Shared>,
    id: u64,
    slot: ReplySlot,
    request: FrameKind,
}

impl PendingReply {
    /// Waits for the reply (no timeout of its own: wrap it, as [`Connection::request`] does).
    /// `Error` replies and wrong kinds come back as errors.
    pub async fn wait(self) -> Result<Reply> {
        let reply = self.slot.take().await?;
        reply.expect_reply_to(self.request)
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if !self.slot.is_set() {
            self.shared.pending.borrow_mut().remove(&self.id);
        }
    }
}

async fn handshake(socket: &Socket, hello: &Hello) -> Result<HelloReply> {
    let prefix = envelope::encode(hello)?;
    let mut scratch = Vec::new();
    frame_io::write_frame(
        socket,
        &mut scratch,
        FrameKind::Hello,
        HELLO_CORRELATION_ID,
        &prefix,
        &[],
        shardmq_protocol::frame::HELLO_FLAGS,
    )
    .await?;
    let reply = frame_io::read_frame(socket).await?;
    if reply.correlation_id != HELLO_CORRELATION_ID {
        return Err(ClientError::UnexpectedReply(format!(
            "handshake reply has correlation id {}",
            reply.correlation_id
        )));
    }
    reply.expect_reply_to(FrameKind::Hello)?.decode()
}

/// The reader task: dispatches each reply to its pending slot until the connection fails.
async fn read_loop(socket: Rc<Socket>, shared: Rc<Shared>) {
    let cause = loop {
        match frame_io::read_frame(&socket).await {
            Ok(reply) if reply.kind == FrameKind::GroupChanged => {
                match reply.decode::<shardmq_protocol::messages::GroupChanged>() {
                    Ok(changed) => shared
                        .group_changes
                        .announce(changed.group, changed.generation),
                    Err(e) => tracing::warn!(error = %e, "undecodable GroupChanged frame"),
                }
            }
            Ok(reply) => {
                let slot = shared.pending.borrow_mut().remove(&reply.correlation_id);
                match slot {
                    Some(slot) => {
                        slot.set(Ok(reply));
                    }
                    None if reply.kind == FrameKind::Error => {
                        let detail = reply
                            .decode::<shardmq_protocol::messages::ErrorReply>()
                            .map(|e| ClientError::from(e).to_string())
                            .unwrap_or_else(|e| e.to_string());
                        tracing::warn!(
                            id = reply.correlation_id,
                            "error reply to no pending request: {detail}"
                        );
                    }
                    None => tracing::debug!(
                        id = reply.correlation_id,
                        kind = ?reply.kind,
                        "reply to an abandoned request discarded"
                    ),
                }
            }
            Err(ClientError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break ClientError::Closed;
            }
            Err(e) => break e,
        }
    };
    if shared.closed.borrow().is_none() {
        tracing::debug!("connection closed: {cause}");
    }
    shared.fail(cause);
    shared.group_changes.changed.notify(usize::MAX);
    socket.shutdown();
}
