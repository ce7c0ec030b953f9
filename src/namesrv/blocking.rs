//! Remoting frames over blocking sockets, for the name server's control plane (the standalone
//! name server's connections, a broker's registrations): a handful of connections that send a
//! request every few seconds, on threads of their own, never on a shard.
//!
//! A frame's length is checked against the 16 MiB limit before anything is allocated, and its
//! bytes are read in chunks, so memory follows what arrives; every read and write has a
//! deadline (the socket timeouts its owner sets).

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::Bytes;
use shardmq_protocol::remoting::{decode, frame_length, RemotingCommand};

/// Bytes read at a time into a frame's buffer.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Bad(String),
}

/// Reads one command; `Closed` at a clean end of stream before a frame starts. `grow` is told
/// of every chunk of buffer before it is allocated, and may refuse it.
pub fn read_command(
    stream: &mut TcpStream,
    grow: &mut dyn FnMut(usize) -> Result<(), FrameError>,
) -> Result<RemotingCommand, FrameError> {
    let mut prefix = [0u8; 4];
    let first = stream.read(&mut prefix)?;
    if first == 0 {
        return Err(FrameError::Closed);
    }
    stream.read_exact(&mut prefix[first..])?;
    let len = frame_length(prefix).map_err(|e| FrameError::Bad(e.to_string()))?;
    let mut rest = Vec::with_capacity(len.min(READ_CHUNK));
    while rest.len() < len {
        let want = (len - rest.len()).min(READ_CHUNK);
        let start = rest.len();
        grow(want)?;
        rest.resize(start + want, 0);
        stream.read_exact(&mut rest[start..])?;
    }
    decode(Bytes::from(rest)).map_err(|e| FrameError::Bad(e.to_string()))
}

pub fn write_command(stream: &mut TcpStream, command: &RemotingCommand) -> Result<(), FrameError> {
    let bytes = command
        .encode()
        .map_err(|e| FrameError::Bad(e.to_string()))?;
    stream.write_all(&bytes)?;
    Ok(())
}

/// Sends a request and reads until its response (skipping anything else the peer sends).
pub fn call(
    stream: &mut TcpStream,
    request: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    write_command(stream, request)?;
    loop {
        let reply = read_command(stream, &mut |_| Ok(()))?;
        if reply.is_response() && reply.opaque == request.opaque {
            return Ok(reply);
        }
    }
}
