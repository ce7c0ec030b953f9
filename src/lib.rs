//! The shardmq broker: boot, routing, connection serving, request handlers, topic registry.
//! The storage engine is the `shardmq-shards` crate, the wire formats `shardmq-protocol`.
//!
//! Map:
//! - [`boot`]: process start and shutdown; one pinned glommio executor per shard.
//! - [`router`]: the listener, the Hello handshake and the socket handoff to the owning shard.
//! - [`server`]: per-shard context, connections (reader + writer tasks), handlers, errors.
//! - [`topics`]: the shared topic registry and its file.
//! - [`config`]: broker flags and how they map onto store configs.
//! - [`lock`]: the data directory lock.
//! - [`layout`]: the shard count and routing a data directory was written with.
//! - [`limits`]: every bound the broker enforces.
//! - [`tune`]: `shardmq tune`, host checks for a thread-per-core io_uring broker.
//! - [`admin`]: `shardmq admin`, topic and queue administration through the client.
//! - [`cli`]: the `shardmq` command line (broker, admin, bench).

pub mod admin;
pub mod boot;
pub mod cli;
pub mod config;
pub mod layout;
pub mod limits;
pub mod lock;
pub mod router;
pub mod server;
pub mod topics;
pub mod tune;
