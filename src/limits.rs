//! The broker's bounds, in one place, units last. Wire-level bounds shared with clients live in
//! `shardmq_protocol::limits`.

use std::time::Duration;

/// Connections one shard serves at once; an accept beyond it waits for a slot.
pub const CONNECTIONS_PER_SHARD_MAX: u64 = 16_384;

/// A new connection must send its Hello within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest Hello the router reads before a connection is identified; anything larger is refused
/// before a buffer is allocated for it.
pub const HELLO_BYTES_MAX: u32 = 64 * 1024;

/// Calls queued from one shard to another over the mesh before the caller waits.
pub const MESH_QUEUE_DEPTH: usize = 1024;

/// Sockets queued from the accepting shard to another shard.
pub const HANDOFF_QUEUE_DEPTH: usize = 1024;

/// Replies a connection may have queued for its writer before its reader stops reading
/// (pipelining depth per connection).
pub const REPLIES_QUEUED_PER_CONNECTION_MAX: usize = 256;

/// Bytes of replies a connection may have queued for its writer: a client that pipelines pulls
/// and does not read its socket stops being read once this much waits for it. Two maximal pull
/// replies.
pub const REPLY_BYTES_QUEUED_PER_CONNECTION_MAX: u64 = 2 * PULL_BYTES_MAX as u64;

/// Bytes of replies all connections of one shard may have queued together. A connection that
/// never reads holds its share until the watchdog closes it (`--stall-timeout-ms`).
pub const REPLY_BYTES_QUEUED_PER_SHARD_MAX: u64 = 512 << 20;

/// Bytes of request frames all connections of one shard may hold together while reading or
/// handling them; a body takes its share as it arrives (`server::body`).
pub const REQUEST_BYTES_BUFFERED_PER_SHARD_MAX: u64 = 256 << 20;

/// Long polls one connection may have parked at once; further ones are answered at once.
pub const PARKED_PULLS_PER_CONNECTION_MAX: usize = 64;

/// How long shutdown waits for connections to write their last replies.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a shard checks the process-wide shutdown flag.
pub const SHUTDOWN_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Pull replies carry at most this many bytes of batches (the first batch always goes whole).
pub const PULL_BYTES_MAX: u32 = 16 << 20;

/// What a pull's reservation of reply budget adds to its data for the reply's head (frame
/// header and metadata), before the read (`server::outbox`).
pub const PULL_REPLY_HEAD_BYTES: u64 = 64 << 10;

/// The latency goal of each shard's request task queue: glommio preempts long-running tasks
/// (background work) to meet it, and wakes the shard promptly for requests.
pub const REQUEST_LATENCY: Duration = Duration::from_millis(10);

/// A request whose handler takes longer than this is logged (before its reply is sent).
pub const SLOW_REQUEST: Duration = Duration::from_millis(100);

/// Topics in one broker.
pub const TOPICS_MAX: usize = 10_000;

/// A list of every topic (name plus the archived record around it, at most 64 bytes) fits in
/// one frame's metadata.
const _: () = assert!(
    TOPICS_MAX * (shardmq_protocol::limits::TOPIC_NAME_BYTES_MAX + 64)
        <= shardmq_protocol::limits::META_BYTES_MAX as usize
);

/// Read and write buffer of each connection: pipelined requests come in, and queued replies go
/// out, this many bytes per syscall at most (larger frames bypass the buffers).
pub const SOCKET_BUFFER_BYTES: usize = 64 * 1024;

const _: () =
    assert!((PULL_BYTES_MAX as u64) < shardmq_protocol::limits::FRAME_PAYLOAD_BYTES_MAX as u64);
// One maximal frame fits each shard budget (a budget clamps larger asks to its whole size, so
// this is about not serializing every large frame behind one another).
const _: () = assert!(
    REQUEST_BYTES_BUFFERED_PER_SHARD_MAX
        >= 2 * shardmq_protocol::limits::FRAME_PAYLOAD_BYTES_MAX as u64
);
const _: () =
    assert!(REPLY_BYTES_QUEUED_PER_SHARD_MAX >= 8 * REPLY_BYTES_QUEUED_PER_CONNECTION_MAX);
