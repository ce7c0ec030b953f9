//! shardmq's native protocol: rkyv frames (`shardmq_protocol`), shard-aware clients.
//!
//! - [`router`]: the listener, the Hello handshake and the socket handoff to the owning shard.
//! - [`tls_listener`]: every shard's TLS listener (`--tls-listen`), served where accepted.
//! - [`connection`]: one connection's reader loop (and its parked long polls).
//! - [`frame_io`]: native frames on a socket; a reply's head.
//! - [`request`]: frames decoded once into typed requests, names validated.
//! - [`dispatch`]: requests as core calls, results as replies; [`groups`] for group and offset
//!   requests.
//! - [`access`]: ACL: the Hello's account, and what each request needs of it.
//! - [`error`]: [`error::NativeError`] and its wire codes.

pub mod access;
pub mod connection;
pub mod dispatch;
pub mod error;
pub mod frame_io;
pub mod groups;
pub mod request;
pub mod router;
pub mod tls_listener;
