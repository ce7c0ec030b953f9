//! Serving clients on a shard: per-shard context, connections, frame I/O, handlers, errors.

pub mod connection;
pub mod context;
pub mod error;
pub mod frame_io;
pub mod handlers;
pub mod listener;
pub mod request;
