//! Drivers for peer systems, so the same workload runs against them in the same run and every
//! shardmq figure can be a ratio. A driver starts its peer itself (`--peer`), on loopback, with a
//! fresh data directory, runs the workload and stops the peer; results come out as the same
//! [`crate::Report`] (and JSON) as shardmq's, with `system` naming the peer.
//!
//! - [`redis`]: Redis Streams (`XADD`, AOF), the in-memory broker a user might pick instead.

pub mod redis;

use clap::ValueEnum;

/// The systems `--peer` can start and drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// Redis Streams with an append-only file, fsync every second.
    Redis,
    /// Redis Streams with `appendfsync always` (durable per write, the `--flush sync` peer).
    RedisAlways,
}
