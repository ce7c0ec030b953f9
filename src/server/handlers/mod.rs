//! Request handlers, one file per area. Each takes the decoded request and returns a [`Reply`]
//! or a [`HandlerError`]; none touches the socket. The connection (`server::connection`) turns
//! either into a frame.

pub mod offsets;
pub mod produce;
pub mod pull;
pub mod stats;
pub mod topics;

use bytes::Bytes;
use rkyv::api::high::HighSerializer;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use shardmq_protocol::envelope;
use shardmq_shards::durability::Appended;

use crate::server::error::HandlerError;

/// A successful reply: metadata, optional data, and whether it may only be sent once the log is
/// synced past a position (`flush = sync` produce acks).
pub struct Reply {
    pub prefix: Vec<u8>,
    pub data: Vec<Bytes>,
    pub wait_synced: Option<Appended>,
}

impl Reply {
    /// A reply of metadata only. Fails when the metadata cannot be encoded within the limits.
    pub fn meta<T>(meta: &T) -> Result<Reply, HandlerError>
    where
        T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        Self::with_data(meta, Vec::new())
    }

    pub fn with_data<T>(meta: &T, data: Vec<Bytes>) -> Result<Reply, HandlerError>
    where
        T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        let len = data.iter().map(Bytes::len).sum();
        Ok(Reply {
            prefix: envelope::encode_prefix(meta, len).map_err(HandlerError::ReplyTooLarge)?,
            data,
            wait_synced: None,
        })
    }
}
