//! The shardmq broker: the protocol-independent core, its front ends, the connection machinery,
//! the cross-shard mesh, boot. The storage engine is the `shardmq-shards` crate, the wire
//! formats `shardmq-protocol`.
//!
//! Map:
//! - [`boot`]: process start and shutdown; one pinned glommio executor per shard.
//! - [`core`]: RocketMQ's semantics per shard (topics, produce, pull; groups and offsets next),
//!   called by every front end.
//! - [`fronts`]: one module per wire protocol (`native`), decoding into core calls.
//! - [`server`]: connection machinery shared by every front end (budgets, reply queue, writer,
//!   watchdog, listeners) and the per-shard context.
//! - [`mesh`]: the bounded cross-shard channels.
//! - [`config`]: broker flags and how they map onto store and core configs.
//! - [`config_file`]: the TOML file and `SHARDMQ_<KEY>` variables layered under the flags.
//! - [`layout`]: the shard count and routing a data directory was written with.
//! - [`lock`]: the data directory lock.
//! - [`sync`]: the registries' shared lock helper.
//! - [`json_file`]: JSON files replaced atomically (topics, layout, subscription groups).
//! - [`limits`]: every bound the broker enforces.
//! - [`ops`]: metrics and the HTTP listener (`/metrics`, the dashboard).
//! - [`tune`]: `shardmq tune`, host checks for a thread-per-core io_uring broker.
//! - [`admin`]: `shardmq admin`, topic and queue administration through the client.
//! - [`cli`]: the `shardmq` command line (broker, admin, bench).

pub mod acl;
pub mod admin;
pub mod boot;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod core;
pub mod fronts;
pub mod json_file;
pub mod layout;
pub mod limits;
pub mod lock;
pub mod memory;
pub mod mesh;
pub mod namesrv;
pub mod ops;
pub mod server;
pub mod sync;
pub mod tune;
