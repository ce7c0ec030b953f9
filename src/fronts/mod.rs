//! The wire protocols, each a front end of the broker core: it decodes requests into core calls
//! and encodes the core's plain results. `native` is shardmq's own protocol.
//! `remoting` is RocketMQ 4.x; `grpc` is RocketMQ 5.x, on a tokio thread of its own.

pub mod grpc;
pub mod native;
pub mod remoting;
