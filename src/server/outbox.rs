//! A connection's replies on their way out, whatever the protocol: a bounded queue filled by the
//! connection's reader (and its parked long polls), and the writer task that empties it in order.
//!
//! A reply is bytes already encoded by its front end: a head (frame header and metadata) and
//! data chunks sent from where they are (batches from the hot tail or a disk read, no copy). A
//! reply may be gated on durability: under `flush = sync` a produce ack is written only once an
//! fdatasync covers the batch; if the sync fails, the front end's failure encoder writes an error
//! in its place. Replies never overtake each other.
//!
//! Bounds: at most `REPLIES_QUEUED_PER_CONNECTION_MAX` replies queued; their bytes count against
//! the connection's budget (`REPLY_BYTES_QUEUED_PER_CONNECTION_MAX`) and the shard's
//! (`REPLY_BYTES_QUEUED_PER_SHARD_MAX`) until written, so a client that pipelines pulls without
//! reading stops being read, and many such clients together cannot exhaust memory. A reply
//! whose data is read into memory of its own (a pull from disk) takes its budget *before* the
//! read ([`Outbox::reserve`], its largest size, cut to its real size when queued): otherwise
//! every connection waiting for room would hold one unbudgeted reply in its hands, and a shard's
//! slow readers together could hold `connections × PULL_BYTES_MAX` beyond the shard's bound.
//!
//! Syscalls: the writer appends replies to its buffer and sends when no further reply is queued
//! (or the buffer fills, or before waiting on an fdatasync), so a burst of pipelined acks leaves
//! in one `send`; large chunks bypass the buffer, in pieces of `WRITE_PIECE_BYTES` so the
//! watchdog sees progress on a slow but live reader.
//!
//! Ending: the writer stops at the close marker ([`Outbox::finish`]) after writing everything
//! queued before it, or at the first write error; either way it closes the connection's
//! [`Closer`] and its reply budget, which wakes and fails everything still waiting on them.

use std::rc::Rc;

use bytes::Bytes;
use futures_lite::{AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use shardmq_shards::durability::Appended;
use shardmq_shards::{ShardStore, StorageError};

use super::budget::{ByteBudget, Held};
use super::closer::Closer;
use super::watchdog::Progress;
use crate::limits::{REPLIES_QUEUED_PER_CONNECTION_MAX, REPLY_BYTES_QUEUED_PER_CONNECTION_MAX};

/// Large data chunks are written in pieces of at most this size.
const WRITE_PIECE_BYTES: usize = 1 << 20;

/// Encodes the error that replaces a gated reply whose fdatasync failed: `(correlation id, err)`.
pub type SyncFailureEncoder = fn(u64, StorageError) -> Vec<u8>;

/// One encoded reply.
pub struct Reply {
    pub head: Vec<u8>,
    pub data: Vec<Bytes>,
    pub gate: Option<SyncGate>,
    /// For an error answer: why, as a metrics label (`ops::metrics`).
    pub rejected: Option<&'static str>,
}

/// Write the reply only once the log is synced to `end`; on a sync failure write
/// `on_failure(correlation_id, err)` instead.
pub struct SyncGate {
    pub end: Appended,
    pub correlation_id: u64,
    pub on_failure: SyncFailureEncoder,
}

impl Reply {
    pub fn len(&self) -> usize {
        self.head.len() + self.data.iter().map(Bytes::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Queued {
    Reply(Reply, Held),
    /// Write what is queued before this, then end the connection.
    Finish,
}

/// Budget taken for a reply before it exists ([`Outbox::reserve`]); given back if dropped.
/// The default reserves nothing.
#[derive(Default)]
pub struct Reservation {
    held: Held,
    /// What was reserved in each budget.
    bytes: u64,
}

/// The connection was closed; the reply was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// The sending side, shared by the connection's reader and its parked long polls.
pub struct Outbox {
    sender: LocalSender<Queued>,
    connection_budget: Rc<ByteBudget>,
    shard_budget: Rc<ByteBudget>,
    closer: Rc<Closer>,
}

/// The receiving side, owned by the writer task.
pub struct Queue {
    receiver: LocalReceiver<Queued>,
    connection_budget: Rc<ByteBudget>,
}

/// A new reply queue of a connection that `closer` ends; its bytes count against
/// `shard_budget` too.
pub fn new(shard_budget: Rc<ByteBudget>, closer: Rc<Closer>) -> (Outbox, Queue) {
    let (sender, receiver) = local_channel::new_bounded(REPLIES_QUEUED_PER_CONNECTION_MAX);
    let connection_budget = Rc::new(ByteBudget::new(REPLY_BYTES_QUEUED_PER_CONNECTION_MAX));
    (
        Outbox {
            sender,
            connection_budget: connection_budget.clone(),
            shard_budget,
            closer,
        },
        Queue {
            receiver,
            connection_budget,
        },
    )
}

impl Outbox {
    /// Queues a reply, waiting for room in the queue and both budgets, unless the connection
    /// closes first.
    pub async fn send(&self, reply: Reply) -> Result<(), Closed> {
        self.send_reserved(reply, Reservation::default()).await
    }

    /// Takes `bytes` of both budgets for a reply that does not exist yet (waiting for room,
    /// unless the connection closes first); [`Outbox::send_reserved`] queues the reply in it.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, Closed> {
        let bytes = bytes.clamp(1, self.connection_budget.capacity());
        self.until_closed(async {
            let held = self.take_both(bytes).await?;
            Ok(Reservation { held, bytes })
        })
        .await
    }

    /// Queues a reply in the budget reserved for it: what it does not need is given back at
    /// once; should it need more than was reserved, the rest is waited for.
    pub async fn send_reserved(&self, reply: Reply, reserved: Reservation) -> Result<(), Closed> {
        let bytes = reply.len() as u64;
        let Reservation {
            mut held,
            bytes: covered,
        } = reserved;
        held.shrink_each_to(bytes);
        self.until_closed(async {
            if bytes > covered {
                held.merge(self.take_both(bytes - covered).await?);
            }
            let queued = self.sender.send(Queued::Reply(reply, held)).await;
            queued.map_err(|_| Closed)
        })
        .await
    }

    /// `bytes` of the connection's budget and of the shard's.
    async fn take_both(&self, bytes: u64) -> Result<Held, Closed> {
        let mut held = self
            .connection_budget
            .acquire(bytes)
            .await
            .map_err(|_| Closed)?;
        held.merge(self.shard_budget.acquire(bytes).await.map_err(|_| Closed)?);
        Ok(held)
    }

    /// `work`, unless the connection closes first.
    async fn until_closed<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Closed>>,
    ) -> Result<T, Closed> {
        futures_lite::future::or(work, async {
            self.closer.wait().await;
            Err(Closed)
        })
        .await
    }

    /// Asks the writer to end the connection once everything queued so far is written.
    pub async fn finish(&self) {
        let finish = async { self.sender.send(Queued::Finish).await.map_err(|_| Closed) };
        let _ = self.until_closed(finish).await;
    }
}

/// The writer task of a connection: writes queued replies in order until the close marker or a
/// write error, then closes the connection.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut writer: W,
    queue: Queue,
    store: ShardStore,
    progress: Rc<Progress>,
    closer: Rc<Closer>,
) {
    let outcome = write_until_finished(&mut writer, &queue, &store, &progress).await;
    progress.write_done();
    queue.connection_budget.close();
    match outcome {
        Ok(()) => {
            let _ = writer.close().await;
            closer.close("the connection ended");
        }
        Err(err) => closer.close(format!("writing a reply failed: {err}")),
    }
}

async fn write_until_finished<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queue: &Queue,
    store: &ShardStore,
    progress: &Progress,
) -> std::io::Result<()> {
    loop {
        // Take the next reply if one is queued already; otherwise send what is buffered before
        // waiting for one.
        let next = match futures_lite::future::poll_once(queue.receiver.recv()).await {
            Some(next) => next,
            None => {
                flush(writer, progress).await?;
                queue.receiver.recv().await
            }
        };
        match next {
            None | Some(Queued::Finish) => return flush(writer, progress).await,
            Some(Queued::Reply(reply, _held)) => {
                write_reply(writer, reply, store, progress).await?
            }
        }
    }
}

async fn write_reply<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut reply: Reply,
    store: &ShardStore,
    progress: &Progress,
) -> std::io::Result<()> {
    if let Some(gate) = reply.gate.take() {
        // Replies already buffered must not wait for this one's fdatasync.
        flush(writer, progress).await?;
        if let Err(err) = store.acknowledgeable(gate.end).await {
            reply = Reply {
                head: (gate.on_failure)(gate.correlation_id, err),
                data: Vec::new(),
                gate: None,
                rejected: Some("sync_failed"),
            };
        }
    }
    write_piece(writer, &reply.head, progress).await?;
    for chunk in &reply.data {
        for piece in chunk.chunks(WRITE_PIECE_BYTES) {
            write_piece(writer, piece, progress).await?;
        }
    }
    Ok(())
}

async fn write_piece<W: AsyncWrite + Unpin>(
    writer: &mut W,
    piece: &[u8],
    progress: &Progress,
) -> std::io::Result<()> {
    progress.write_started();
    writer.write_all(piece).await?;
    progress.write_done();
    Ok(())
}

async fn flush<W: AsyncWrite + Unpin>(writer: &mut W, progress: &Progress) -> std::io::Result<()> {
    progress.write_started();
    writer.flush().await?;
    progress.write_done();
    Ok(())
}
