//! shardmq wire formats. No I/O happens in this crate: every function takes bytes and returns
//! values or typed errors, so the broker, the client and the fuzzers share one definition.
//!
//! Map:
//! - [`auth`]: request signatures (RocketMQ's remoting ACL signature, the native Hello's).
//! - [`limits`]: every bound on untrusted input, in one place, units in the names.
//! - [`frame`]: the 16-byte frame header `[len][kind][flags][correlation id]` and [`FrameKind`].
//! - [`envelope`]: a frame payload = rkyv metadata + optional raw data (a batch, or batches).
//! - [`messages`]: the rkyv request / reply types of the native protocol.
//! - [`record`]: the record (a RocketMQ message's producer-side fields) and tag codes.
//! - [`batch`]: the record batch, the unit that travels producer → log → consumer unchanged.
//! - [`remoting`]: RocketMQ remoting frames, headers, stored-message records, batch bodies.
//! - [`routing`]: the one pure function that maps a queue to its owning shard.
//! - [`text`]: peer-supplied text shown in replies and logs, escaped and bounded.
//! - [`fuzzing`]: what the native fuzz target checks (remoting has its own, `remoting::fuzzing`).
//! - [`error`]: [`ProtocolError`] (decoding failures) and [`ErrorCode`] (codes on the wire).

pub mod auth;
pub mod batch;
pub mod envelope;
pub mod error;
pub mod frame;
pub mod fuzzing;
pub mod limits;
pub mod messages;
pub mod mutate;
pub mod record;
pub mod remoting;
pub mod routing;
pub mod text;

pub use batch::{BatchBuilder, BatchHeader, BatchView, ValidatedBatch};
pub use error::{ErrorCode, ProtocolError};
pub use frame::{FrameHeader, FrameKind};
pub use record::{Property, Record, RecordRef};

#[cfg(test)]
mod garbage_tests;
