//! RocketMQ's 4.x remoting protocol as a front end of the broker core, so that stock RocketMQ
//! clients work unchanged (`../shared/reference/rocketmq-protocol.md`, `DESIGN.md` §3, §5).
//!
//! Every shard listens on a remoting port of its own and is advertised as a broker of its own
//! (`shard_queues`), so a client that knows nothing of shards reaches the core that owns each
//! queue directly; a request about a queue another shard owns is forwarded by the core.
//!
//! - [`access`]: ACL: each request's signature, and what it needs of its account.
//! - [`listener`]: each shard's accept loop (main and VIP port).
//! - [`connection`]: the protocol's part of a connection; group-change pushes.
//! - [`frame_io`]: remoting frames on a socket.
//! - [`dispatch`]: requests by code; [`send`], [`pull`], [`offsets`], [`clients`] (heartbeats,
//!   client lists, locks), [`admin`] (topics, runtime info), [`group_admin`] (subscription
//!   groups, topic and consume stats, connections) hold the handlers.
//! - [`shard_queues`]: shards as RocketMQ brokers, their queue numbers.
//! - [`state`]: what a shard's front end keeps; the directory of every shard's broker.
//! - [`error`]: core errors as response codes.

pub mod access;
pub mod admin;
pub mod clients;
pub mod connection;
pub mod dispatch;
pub mod error;
pub mod frame_io;
pub mod group_admin;
pub mod listener;
pub mod offsets;
pub mod pull;
pub mod send;
pub mod shard_queues;
pub mod state;
