//! Reading and writing native frames on a socket. Untrusted input is bounded here: the length
//! prefix is checked (`FrameHeader::decode`) before the payload buffer is allocated.

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use shardmq_protocol::frame::FRAME_HEADER_BYTES;
use shardmq_protocol::limits::FRAME_PAYLOAD_BYTES_MAX;
use shardmq_protocol::{FrameHeader, FrameKind, ProtocolError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
}

/// Reads one frame. `Ok(None)` is a clean end of stream at a frame boundary.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<(FrameHeader, BytesMut)>, FrameError> {
    read_frame_within(reader, FRAME_PAYLOAD_BYTES_MAX).await
}

/// [`read_frame`] with a tighter payload bound, for frames that can only be small (the Hello of
/// a connection nobody has identified yet must not make the broker allocate 64 MiB).
pub async fn read_frame_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    payload_bytes_max: u32,
) -> Result<Option<(FrameHeader, BytesMut)>, FrameError> {
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
    }
    let header = FrameHeader::decode(&header)?;
    if header.payload_len > payload_bytes_max {
        return Err(FrameError::Protocol(ProtocolError::FrameTooLarge {
            len: header.payload_len,
            max: payload_bytes_max,
        }));
    }
    let mut payload = BytesMut::zeroed(header.payload_len as usize);
    reader
        .read_exact(&mut payload)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::TruncatedFrame,
            _ => FrameError::Io(e),
        })?;
    Ok(Some((header, payload)))
}

/// One frame to send: an envelope prefix (rkyv metadata) and zero or more data chunks.
pub struct OutFrame {
    pub kind: FrameKind,
    pub correlation_id: u64,
    pub prefix: Vec<u8>,
    pub data: Vec<Bytes>,
}

impl OutFrame {
    pub fn payload_len(&self) -> usize {
        self.prefix.len() + self.data.iter().map(Bytes::len).sum::<usize>()
    }
}

/// Writes a frame: header, envelope prefix, then the data chunks, each straight from where it
/// is (no assembly copy). `writer` is expected to buffer (the connection's `BufWriter` gathers
/// small frames into one send and passes large chunks through); nothing is flushed here.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &OutFrame,
) -> std::io::Result<()> {
    let header = FrameHeader::new(frame.kind, frame.correlation_id, frame.payload_len())
        .map_err(std::io::Error::other)?
        .encode();
    writer.write_all(&header).await?;
    writer.write_all(&frame.prefix).await?;
    for chunk in &frame.data {
        writer.write_all(chunk).await?;
    }
    Ok(())
}
