//! Remoting frames on a socket. The 4-byte length prefix is checked against Java's 16 MiB frame
//! limit before anything is allocated; the rest is read by `body::read_body`, whose memory and
//! budget follow the bytes that arrive. A frame whose header cannot be decoded closes the
//! connection (its opaque is unknown, so nothing can be answered), as the Java broker does, and
//! so does a connection that sends no request for the idle timeout.

use std::time::Duration;

use bytes::Bytes;
use futures_lite::AsyncReadExt;
use shardmq_protocol::remoting::codes::response;
use shardmq_protocol::remoting::{decode, frame_length, RemotingCommand};

use crate::server::body::{read_body, BodyError};
use crate::server::budget::Held;
use crate::server::connection::{Conn, FrameFailure, Reader};
use crate::server::outbox::Reply;

/// A request read from a client, with the request budget its bytes hold.
pub struct InCommand {
    pub command: RemotingCommand,
    pub held: Held,
}

/// Reads one command; `Ok(None)` at a clean end of stream. A connection whose next frame does
/// not begin within `idle` fails.
pub async fn read_command<P>(
    conn: &Conn<P>,
    reader: &mut Reader,
    arrived: &dyn Fn() -> usize,
    idle: Duration,
) -> Result<Option<InCommand>, FrameFailure> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    // The watchdog closes the connection if no frame begins within `idle` (no timer per read).
    conn.progress.idle_started(idle);
    while filled < prefix.len() {
        let n = reader
            .read(&mut prefix[filled..])
            .await
            .map_err(|e| FrameFailure::Ended(e.to_string()))?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameFailure::Ended("closed inside a frame's length".into()))
            };
        }
        filled += n;
        conn.progress.idle_done();
        conn.progress.body_started();
    }
    let len = frame_length(prefix).map_err(|e| FrameFailure::Fatal {
        reason: e.to_string(),
        reply: None,
    })?;
    conn.progress.body_started();
    let body = read_body(reader, len, &conn.ctx.request_budget, arrived).await;
    conn.progress.body_done();
    let (rest, held) = body.map_err(|e| match e {
        BodyError::Truncated => FrameFailure::Ended("closed inside a frame".into()),
        other => FrameFailure::Ended(other.to_string()),
    })?;
    let command = decode(Bytes::from(rest)).map_err(|e| FrameFailure::Fatal {
        reason: e.to_string(),
        reply: None,
    })?;
    Ok(Some(InCommand { command, held }))
}

/// A command as a reply for the writer. One too large to encode (a body near 16 MiB) becomes a
/// SYSTEM_ERROR answer saying so.
pub fn reply(command: &RemotingCommand) -> Reply {
    let head = command.encode().unwrap_or_else(|err| {
        RemotingCommand {
            code: response::SYSTEM_ERROR,
            body: Bytes::new(),
            ext: Default::default(),
            ..command.clone()
        }
        .with_remark(err.to_string())
        .encode()
        .unwrap_or_default()
    });
    Reply {
        head,
        data: Vec::new(),
        gate: None,
        rejected: rejection(command.code),
    }
}

/// The metrics label of a response that refuses its request; `None` for a success and for the
/// pull answers a consumer expects (nothing new, retry, offset moved).
fn rejection(code: i32) -> Option<&'static str> {
    match code {
        response::SUCCESS
        | response::PULL_NOT_FOUND
        | response::PULL_RETRY_IMMEDIATELY
        | response::PULL_OFFSET_MOVED
        | response::QUERY_NOT_FOUND => None,
        code => Some(response::name(code)),
    }
}
