//! Serving one client connection on the shard that owns it.
//!
//! Two tasks per connection, both on this shard's core:
//! - the reader decodes requests in arrival order and runs their handlers, so produce offsets
//!   follow the order the client sent; a parked long poll runs as its own task;
//! - the writer sends replies in the order they were queued, first waiting for the fdatasync a
//!   `flush = sync` ack needs (so the reader keeps taking batches that share that fdatasync).
//!
//! Syscalls: both directions are buffered (`SOCKET_BUFFER_BYTES`). The reader's one `recv`
//! brings in every request the client pipelined so far; the writer appends replies to its buffer
//! and sends only when no further reply is queued (or the buffer is full, or before waiting for
//! an fdatasync), so a burst of pipelined acks leaves in one `send`. Large frames bypass the
//! buffers. A reply is never held back while the writer idles: an empty queue means flush.
//!
//! The reply queue is bounded in replies (`REPLIES_QUEUED_PER_CONNECTION_MAX`) and in bytes
//! (`REPLY_BYTES_QUEUED_PER_CONNECTION_MAX`): a client that pipelines more, or does not read its
//! socket, stops being read until replies drain. At most `PARKED_PULLS_PER_CONNECTION_MAX` long
//! polls wait at once per connection; more are answered at once.
//!
//! Bad input: a frame whose header is invalid (oversize length, unknown kind) gets a BadFrame
//! error reply and the connection is closed, since the stream can no longer be trusted; a
//! well-framed request with bad contents (garbage metadata, a batch with a wrong CRC) gets an
//! error reply and the connection goes on. Either way the reason is logged and nothing else on
//! the shard is affected.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::io::{BufReader, BufWriter, ReadHalf, WriteHalf};
use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use shardmq_protocol::messages::{HelloReply, Pull};
use shardmq_protocol::{FrameHeader, FrameKind};
use shardmq_shards::durability::Appended;

use super::context::ShardContext;
use super::error::HandlerError;
use super::frame_io::{read_frame, write_frame, FrameError, OutFrame};
use super::handlers::pull::PullOutcome;
use super::handlers::{offsets, produce, pull, topics, Reply};
use super::request::Request;
use crate::limits::{
    PARKED_PULLS_PER_CONNECTION_MAX, REPLIES_QUEUED_PER_CONNECTION_MAX,
    REPLY_BYTES_QUEUED_PER_CONNECTION_MAX, SLOW_REQUEST, SOCKET_BUFFER_BYTES,
};

struct Outgoing {
    frame: OutFrame,
    wait_synced: Option<Appended>,
    /// This reply's share of the connection's queued-bytes budget, given back once written.
    budget: Option<StaticPermit>,
}

/// The reader side of a connection's reply queue, bounded in replies (the channel), in bytes
/// (`REPLY_BYTES_QUEUED_PER_CONNECTION_MAX`, so a client that pipelines pulls and never reads
/// cannot make the shard hold gigabytes) and in parked long polls.
struct Replies {
    sender: LocalSender<Outgoing>,
    bytes: Rc<Semaphore>,
    parked: Cell<usize>,
}

impl Replies {
    /// Queues a reply for the writer, waiting for room in the byte budget first.
    async fn send(&self, mut out: Outgoing) -> Result<(), ()> {
        let size = (out.frame.payload_len() as u64).clamp(1, REPLY_BYTES_QUEUED_PER_CONNECTION_MAX);
        out.budget = Some(self.bytes.acquire_static_permit(size).await.map_err(drop)?);
        self.sender.send(out).await.map_err(drop)
    }
}

type ReplySender = Rc<Replies>;

fn outgoing(kind: FrameKind, correlation_id: u64, result: Result<Reply, HandlerError>) -> Outgoing {
    match result {
        Ok(reply) => Outgoing {
            frame: OutFrame {
                kind: kind.reply(),
                correlation_id,
                prefix: reply.prefix,
                data: reply.data,
            },
            wait_synced: reply.wait_synced,
            budget: None,
        },
        Err(err) => error_outgoing(correlation_id, &err),
    }
}

fn error_outgoing(correlation_id: u64, err: &HandlerError) -> Outgoing {
    Outgoing {
        frame: OutFrame {
            kind: FrameKind::Error,
            correlation_id,
            prefix: err.encode_reply(),
            data: vec![],
        },
        wait_synced: None,
        budget: None,
    }
}

/// Serves a connection until the client closes it, a fatal frame error, or shutdown.
/// `hello` is the correlation id of the Hello the router already read, to be answered here.
pub async fn serve(ctx: Rc<ShardContext>, stream: TcpStream, hello: Option<u64>) {
    ctx.connection_opened();
    if let Err(err) = stream.set_nodelay(true) {
        tracing::warn!(error = %err, "could not set TCP_NODELAY");
    }
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (reader, writer) = futures_lite::io::split(stream);
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, reader);
    let (sender, receiver) =
        local_channel::new_bounded::<Outgoing>(REPLIES_QUEUED_PER_CONNECTION_MAX);
    let sender = Rc::new(Replies {
        sender,
        bytes: Rc::new(Semaphore::new(REPLY_BYTES_QUEUED_PER_CONNECTION_MAX)),
        parked: Cell::new(0),
    });
    let writer_ctx = ctx.clone();
    let writer_task = glommio::spawn_local(async move {
        let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, writer);
        loop {
            // Take the next reply if one is queued already; otherwise send what is buffered
            // before waiting for one.
            let next = match futures_lite::future::poll_once(receiver.recv()).await {
                Some(next) => next,
                None => {
                    if writer.flush().await.is_err() {
                        break;
                    }
                    receiver.recv().await
                }
            };
            let Some(out) = next else { break };
            if write_reply(&writer_ctx, &mut writer, out).await.is_err() {
                break;
            }
        }
        let _ = writer.close().await;
    });
    if let Some(correlation_id) = hello {
        let reply = HelloReply {
            shard_id: ctx.shard_id,
            shard_count: ctx.shard_count,
            broker_version: env!("CARGO_PKG_VERSION").into(),
        };
        let _ = sender
            .send(outgoing(
                FrameKind::Hello,
                correlation_id,
                Reply::meta(&reply),
            ))
            .await;
    }
    read_requests(&ctx, &mut reader, &sender, &peer).await;
    drop(sender);
    writer_task.await;
    ctx.connection_done();
}

async fn write_reply(
    ctx: &ShardContext,
    writer: &mut BufWriter<WriteHalf<TcpStream>>,
    mut out: Outgoing,
) -> std::io::Result<()> {
    if let Some(end) = out.wait_synced {
        // Replies already buffered must not wait for this one's fdatasync.
        writer.flush().await?;
        if let Err(err) = ctx.store.wait_synced(end).await {
            out = error_outgoing(out.frame.correlation_id, &HandlerError::Storage(err));
        }
    }
    write_frame(writer, &out.frame).await
}

async fn read_requests(
    ctx: &Rc<ShardContext>,
    reader: &mut BufReader<ReadHalf<TcpStream>>,
    sender: &ReplySender,
    peer: &str,
) {
    // One listener for the connection's life: it stays registered until shutdown notifies it,
    // and the loop returns then.
    let mut shutdown = ctx.shutdown.listen();
    if ctx.is_shutting_down() {
        return;
    }
    loop {
        let next = futures_lite::future::or(async { Some(read_frame(reader).await) }, async {
            (&mut shutdown).await;
            None
        })
        .await;
        let (header, payload) = match next {
            None | Some(Ok(None)) => return,
            Some(Ok(Some(frame))) => frame,
            Some(Err(FrameError::Protocol(err))) => {
                tracing::warn!(shard = ctx.shard_id, peer, reason = %err, "closing connection: bad frame header");
                let _ = sender
                    .send(error_outgoing(0, &HandlerError::BadFrame(err)))
                    .await;
                return;
            }
            Some(Err(err)) => {
                tracing::debug!(shard = ctx.shard_id, peer, reason = %err, "connection ended");
                return;
            }
        };
        let started = std::time::Instant::now();
        let out = handle(ctx, header, payload, sender, peer).await;
        let took = started.elapsed();
        if took >= SLOW_REQUEST {
            tracing::warn!(shard = ctx.shard_id, peer, kind = ?header.kind, took_us = took.as_micros() as u64, "slow request");
        }
        if let Some(out) = out {
            if sender.send(out).await.is_err() {
                return;
            }
        }
    }
}

/// Runs one request. `None` when the reply will come later (a parked long poll).
async fn handle(
    ctx: &Rc<ShardContext>,
    header: FrameHeader,
    payload: BytesMut,
    sender: &ReplySender,
    peer: &str,
) -> Option<Outgoing> {
    let (kind, id) = (header.kind, header.correlation_id);
    let result = match Request::decode(kind, payload) {
        Ok(Request::Produce { request, batch }) => {
            if ctx.is_shutting_down() {
                Err(HandlerError::ShuttingDown)
            } else {
                produce::produce(ctx, request, batch).await
            }
        }
        Ok(Request::Pull(request)) => return handle_pull(ctx, request, id, sender).await,
        Ok(Request::QueueOffsets(request)) => offsets::queue_offsets(ctx, &request),
        Ok(Request::CreateTopic(request)) => topics::create_topic(ctx, request).await,
        Ok(Request::ListTopics) => topics::list_topics(ctx),
        Ok(Request::ShardMap) => topics::shard_map(ctx),
        Err(err) => Err(err),
    };
    if let Err(err) = &result {
        let level_is_warn = matches!(
            err,
            HandlerError::BadFrame(_)
                | HandlerError::BadBatch(_)
                | HandlerError::InvalidArgument(_)
        );
        if level_is_warn {
            tracing::warn!(shard = ctx.shard_id, peer, ?kind, reason = %err, "request rejected");
        } else {
            tracing::debug!(shard = ctx.shard_id, peer, ?kind, reason = %err, "request failed");
        }
    }
    // Frames that are not requests only ever get an error (the match above), so `kind.reply()`
    // is only taken for request kinds.
    Some(outgoing(kind, id, result))
}

async fn handle_pull(
    ctx: &Rc<ShardContext>,
    request: Pull,
    id: u64,
    sender: &ReplySender,
) -> Option<Outgoing> {
    // With too many polls parked on this connection already, this one is answered now.
    let may_park = sender.parked.get() < PARKED_PULLS_PER_CONNECTION_MAX;
    match pull::pull(ctx, &request, may_park).await {
        Ok(PullOutcome::Ready(reply)) => Some(outgoing(FrameKind::Pull, id, Ok(reply))),
        Err(err) => Some(outgoing(FrameKind::Pull, id, Err(err))),
        Ok(PullOutcome::Wait { topic_id, wait_ms }) => {
            let (ctx, sender) = (ctx.clone(), sender.clone());
            sender.parked.set(sender.parked.get() + 1);
            glommio::spawn_local(async move {
                let shutdown = ctx.shutdown.listen();
                if !ctx.is_shutting_down() {
                    let wait = ctx.store.wait_for_data(
                        topic_id,
                        request.queue_id,
                        request.offset,
                        Duration::from_millis(wait_ms.into()),
                    );
                    futures_lite::future::or(
                        async {
                            wait.await;
                        },
                        shutdown,
                    )
                    .await;
                }
                let result = pull::pull_now(&ctx, &request).await;
                sender.parked.set(sender.parked.get() - 1);
                let _ = sender.send(outgoing(FrameKind::Pull, id, result)).await;
            })
            .detach();
            None
        }
    }
}
