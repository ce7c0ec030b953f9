//! Serving clients on a shard. Protocol-independent connection machinery — byte budgets, the
//! body reader, the reply queue and writer, the closer, the watchdog, listeners — and, for now,
//! the native protocol's connection, frame I/O, request decoding and handlers.

pub mod body;
pub mod budget;
pub mod closer;
pub mod connection;
pub mod context;
pub mod error;
pub mod frame_io;
pub mod handlers;
pub mod listener;
pub mod outbox;
pub mod request;
pub mod watchdog;
