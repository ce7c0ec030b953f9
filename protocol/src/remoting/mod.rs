//! RocketMQ's remoting protocol (4.x and the 5.x remoting client), shared by the broker's
//! remoting front end, its name server and the bench's RocketMQ driver
//! (`../shared/reference/rocketmq-protocol.md` §2–§5, appendices B and C). No I/O.
//!
//! - [`codes`]: request, response and language codes, version ordinals, flag bits.
//! - [`command`]: [`RemotingCommand`], the frame: liberal decoding (JSON or binary header),
//!   strict JSON encoding.
//! - [`ext`]: typed, liberal reads of header fields with errors that name the field.
//! - [`properties`]: the `key 0x01 value 0x02` property string.
//! - [`stored`]: the stored-message record that pull responses carry.
//! - [`batch_body`]: the SEND_BATCH_MESSAGE body.
//! - [`bodies`]: the JSON bodies (heartbeats, locks, routes, cluster info, topic configs).
//! - [`admin_bodies`]: the admin bodies (topic and consume stats, connections, subscription
//!   group configs).
//! - [`msg_id`]: offset message ids.
//! - [`fuzzing`]: what the remoting fuzz targets check.

pub mod admin_bodies;
pub mod batch_body;
mod binary;
pub mod bodies;
pub mod codes;
pub mod command;
mod cursor;
pub mod ext;
pub mod fuzzing;
pub mod msg_id;
pub mod properties;
pub mod stored;

pub use command::{decode, frame_length, RemotingCommand, RemotingError, FRAME_BYTES_MAX};
