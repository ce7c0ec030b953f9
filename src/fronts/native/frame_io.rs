//! Native frames on a socket. Untrusted input is bounded here: the length prefix is checked
//! (`FrameHeader::decode`, and a caller's tighter bound) before anything is allocated, and the
//! body is read by `body::read_body`, whose memory and budget follow the bytes that arrive.

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncReadExt;
use shardmq_protocol::frame::FRAME_HEADER_BYTES;
use shardmq_protocol::{FrameHeader, FrameKind, ProtocolError};
use thiserror::Error;

use crate::server::body::{read_body, BodyError, BodySource};
use crate::server::budget::{ByteBudget, Held};
use crate::server::outbox::Reply;
use crate::server::watchdog::Progress;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    #[error("the connection is closing")]
    Closed,
}

impl From<BodyError> for FrameError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Io(e) => FrameError::Io(e),
            BodyError::Truncated => FrameError::TruncatedFrame,
            BodyError::Closed => FrameError::Closed,
        }
    }
}

/// A frame read from a client, with the request budget its payload holds.
pub struct InFrame {
    pub header: FrameHeader,
    pub payload: BytesMut,
    pub held: Held,
}

/// Reads one frame whose payload is at most `payload_bytes_max`. `Ok(None)` is a clean end of
/// stream at a frame boundary. While the body is arriving, `progress` (if any) tells the
/// watchdog so; `arrived` tells how many bytes wait in the socket (see `body::read_body`).
pub async fn read_frame<R: BodySource>(
    reader: &mut R,
    payload_bytes_max: u32,
    budget: &ByteBudget,
    progress: Option<&Progress>,
    arrived: impl Fn() -> usize,
) -> Result<Option<InFrame>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut filled = 0;
    while filled < FRAME_HEADER_BYTES {
        let n = reader.read(&mut header[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::TruncatedFrame)
            };
        }
        filled += n;
        if let Some(progress) = progress {
            // A header that arrives in pieces is a frame in progress too.
            progress.body_started();
        }
    }
    let header = FrameHeader::decode(&header)?;
    if header.payload_len > payload_bytes_max {
        return Err(FrameError::Protocol(ProtocolError::FrameTooLarge {
            len: header.payload_len,
            max: payload_bytes_max,
        }));
    }
    if let Some(progress) = progress {
        progress.body_started();
    }
    let body = read_body(reader, header.payload_len as usize, budget, arrived).await;
    if let Some(progress) = progress {
        progress.body_done();
    }
    let (payload, held) = body?;
    Ok(Some(InFrame {
        header,
        payload,
        held,
    }))
}

/// A native reply: the frame header and the envelope prefix as the head, then the data chunks.
pub fn native_reply(
    kind: FrameKind,
    correlation_id: u64,
    prefix: Vec<u8>,
    data: Vec<Bytes>,
) -> Result<Reply, ProtocolError> {
    let payload_len = prefix.len() + data.iter().map(Bytes::len).sum::<usize>();
    let header = FrameHeader::new(kind, correlation_id, payload_len)?;
    let mut head = Vec::with_capacity(FRAME_HEADER_BYTES + prefix.len());
    head.extend_from_slice(&header.encode());
    head.extend_from_slice(&prefix);
    Ok(Reply {
        head,
        data,
        gate: None,
        rejected: None,
    })
}
