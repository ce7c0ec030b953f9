//! Remoting frames over blocking sockets, for the name server's control plane (the standalone
//! name server's connections, a broker's registrations): a handful of connections that send a
//! request every few seconds, on threads of their own, never on a shard.
//!
//! A frame's length is checked against the 16 MiB limit before anything is allocated, and its
//! bytes are read in chunks, so memory follows what arrives; every read and write has a
//! deadline (the socket timeouts its owner sets).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shardmq_protocol::remoting::{decode, frame_length, RemotingCommand};

/// Bytes read at a time into a frame's buffer.
const READ_CHUNK: usize = 64 * 1024;
/// How long a response may take to arrive whole once it has begun.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Bad(String),
}

/// Waits for the first byte of the next frame under the socket's current read timeout;
/// `Closed` at a clean end of stream.
pub fn wait_for_frame(stream: &mut TcpStream) -> Result<u8, FrameError> {
    let mut first = [0u8; 1];
    match stream.read(&mut first)? {
        0 => Err(FrameError::Closed),
        _ => Ok(first[0]),
    }
}

/// Reads the rest of the frame whose first byte was `first`, all of it by `deadline` (each read
/// gets the time that is left, so a client trickling bytes cannot hold it longer). `grow` is
/// told of every chunk of buffer before it is allocated, and may refuse it.
pub fn read_frame_rest(
    stream: &mut TcpStream,
    first: u8,
    deadline: Instant,
    grow: &mut dyn FnMut(usize) -> Result<(), FrameError>,
) -> Result<RemotingCommand, FrameError> {
    let mut read_by_deadline = |buf: &mut [u8]| -> Result<(), FrameError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FrameError::Bad(
                "the frame did not arrive within its deadline".into(),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        stream.read_exact(buf)?;
        Ok(())
    };
    let mut prefix = [first, 0, 0, 0];
    read_by_deadline(&mut prefix[1..])?;
    let len = frame_length(prefix).map_err(|e| FrameError::Bad(e.to_string()))?;
    let mut rest = Vec::with_capacity(len.min(READ_CHUNK));
    while rest.len() < len {
        let want = (len - rest.len()).min(READ_CHUNK);
        let start = rest.len();
        grow(want)?;
        rest.resize(start + want, 0);
        read_by_deadline(&mut rest[start..])?;
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
        let first = wait_for_frame(stream)?;
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        let reply = read_frame_rest(stream, first, deadline, &mut |_| Ok(()))?;
        if reply.is_response() && reply.opaque == request.opaque {
            return Ok(reply);
        }
    }
}
