//! Reading and writing whole native frames on a [`Socket`], and the [`Reply`] a read yields.
//!
//! A frame is the 16-byte `FrameHeader` then the payload (envelope prefix, then data). Writing:
//! header + envelope prefix + data go out as one contiguous buffer when the data is small, or as
//! header+prefix followed by the caller's data slice (no copy) when it is large; the socket has
//! `TCP_NODELAY`, so small frames must not be split. Reading: the payload goes into a buffer
//! allocated 16-byte aligned, so the envelope's data part (16-aligned relative to the payload
//! start) is 16-aligned in memory and rkyv batch archives in it can be accessed in place.
//!
//! The length prefix is bounds-checked (by `FrameHeader::decode`) before anything is allocated.
//! Runs on the connection's executor thread.

use rkyv::api::high::HighValidator;
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize};
use shardmq_protocol::envelope;
use shardmq_protocol::frame::FRAME_HEADER_BYTES;
use shardmq_protocol::limits::FRAME_PAYLOAD_BYTES_MAX;
use shardmq_protocol::messages::ErrorReply;
use shardmq_protocol::{FrameHeader, FrameKind};

use crate::error::{ClientError, Result};
use crate::socket::Socket;

/// Frames whose data part is at most this long are copied into one buffer and written with one
/// send; longer data is written straight from the caller's slice after the header and prefix.
pub(crate) const INLINE_DATA_BYTES_MAX: usize = 64 * 1024;

/// One frame received from the broker: its kind, correlation id and 16-byte aligned payload.
#[derive(Debug)]
pub struct Reply {
    pub kind: FrameKind,
    pub correlation_id: u64,
    payload: AlignedVec<16>,
}

impl Reply {
    /// The whole payload (envelope prefix, metadata, data). Starts 16-byte aligned.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn into_payload(self) -> AlignedVec<16> {
        self.payload
    }

    /// The metadata archive and the data part, lengths checked.
    pub fn split(&self) -> Result<(&[u8], &[u8])> {
        Ok(envelope::split(&self.payload)?)
    }

    /// Decodes the metadata of a payload that carries no data part.
    pub fn decode<T>(&self) -> Result<T>
    where
        T: Archive,
        T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
            + Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
    {
        Ok(envelope::decode(&self.payload)?)
    }

    /// Turns an `Error` frame into [`ClientError::Broker`] and a reply of any kind other than
    /// `request.reply()` into [`ClientError::UnexpectedReply`].
    pub fn expect_reply_to(self, request: FrameKind) -> Result<Reply> {
        if self.kind == FrameKind::Error {
            let error: ErrorReply = self.decode()?;
            return Err(error.into());
        }
        if self.kind != request.reply() {
            return Err(ClientError::UnexpectedReply(format!(
                "{:?} answered with {:?}",
                request, self.kind
            )));
        }
        Ok(self)
    }
}

/// Checks that a frame with this envelope prefix and data fits the protocol's frame limit.
pub(crate) fn check_frame_len(prefix: &[u8], data: &[u8]) -> Result<usize> {
    let len = prefix.len() + data.len();
    if len > FRAME_PAYLOAD_BYTES_MAX as usize {
        return Err(ClientError::InvalidArgument(format!(
            "frame payload of {len} bytes exceeds the limit of {FRAME_PAYLOAD_BYTES_MAX}"
        )));
    }
    Ok(len)
}

/// Writes one frame. `scratch` is reused between calls to avoid an allocation per frame. The
/// caller holds the connection's write lock; a future dropped mid-write leaves a torn frame on
/// the socket, which the caller must treat as fatal for the connection.
pub(crate) async fn write_frame(
    socket: &Socket,
    scratch: &mut Vec<u8>,
    kind: FrameKind,
    correlation_id: u64,
    prefix: &[u8],
    data: &[u8],
    flags: u16,
) -> Result<()> {
    let payload_len = check_frame_len(prefix, data)?;
    let mut header = FrameHeader::new(kind, correlation_id, payload_len)?;
    header.flags = flags;
    let header = header.encode();
    scratch.clear();
    scratch.extend_from_slice(&header);
    scratch.extend_from_slice(prefix);
    if data.len() <= INLINE_DATA_BYTES_MAX {
        scratch.extend_from_slice(data);
        socket.write_all(scratch).await?;
    } else {
        socket.write_all(scratch).await?;
        socket.write_all(data).await?;
    }
    Ok(())
}

/// Reads one frame: the header, then exactly `payload_len` bytes into an aligned buffer.
pub(crate) async fn read_frame(socket: &Socket) -> Result<Reply> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    socket.read_exact(&mut head).await?;
    let header = FrameHeader::decode(&head)?;
    let len = header.payload_len as usize;
    let mut payload = AlignedVec::<16>::with_capacity(len);
    payload.resize(len, 0);
    socket.read_exact(&mut payload).await?;
    Ok(Reply {
        kind: header.kind,
        correlation_id: header.correlation_id,
        payload,
    })
}

#[cfg(test)]
pub(crate) fn reply_for_test(kind: FrameKind, payload: &[u8]) -> Reply {
    let mut aligned = AlignedVec::<16>::new();
    aligned.extend_from_slice(payload);
    Reply {
        kind,
        correlation_id: 1,
        payload: aligned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_protocol::messages::TopicList;
    use shardmq_protocol::ErrorCode;

    #[test]
    fn error_frames_become_broker_errors() {
        let payload = envelope::encode(&ErrorReply {
            code: ErrorCode::TopicNotFound as u16,
            message: "no such topic".into(),
            owner_shard: None,
        })
        .unwrap();
        let reply = reply_for_test(FrameKind::Error, &payload);
        let err = reply.expect_reply_to(FrameKind::ListTopics).unwrap_err();
        assert!(err.is_code(ErrorCode::TopicNotFound), "{err}");
    }

    #[test]
    fn wrong_reply_kind_is_unexpected() {
        let payload = envelope::encode(&TopicList { topics: vec![] }).unwrap();
        let reply = reply_for_test(FrameKind::ListTopicsReply, &payload);
        let err = reply.expect_reply_to(FrameKind::Pull).unwrap_err();
        assert!(matches!(err, ClientError::UnexpectedReply(_)), "{err}");
        let reply = reply_for_test(FrameKind::ListTopicsReply, &payload);
        let ok = reply.expect_reply_to(FrameKind::ListTopics).unwrap();
        assert_eq!(
            ok.decode::<TopicList>().unwrap(),
            TopicList { topics: vec![] }
        );
    }
}
