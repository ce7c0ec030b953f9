//! What the peer connections (RocketMQ remoting, Redis RESP, NATS) share: the buffer their
//! reader tasks parse from, waiting for a reply with a deadline, and the connection shell that
//! owns the socket and its reader task.
//!
//! All executor-local (`Rc`), `!Send`.

use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::LocalReceiver;
use shardmq_client::socket::Socket;

/// Bytes received and not yet parsed: `buf[start..end]`. Reads append at `end`; when the tail
/// is full the unparsed bytes move to the front, or the buffer doubles when they fill it all
/// (one operation larger than the buffer). Never zero-filled per read.
pub struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    pub fn new(capacity: usize) -> Self {
        ReadBuffer {
            buf: vec![0u8; capacity.max(1)],
            start: 0,
            end: 0,
        }
    }

    /// Reads what the socket has (waiting for at least one byte); `Err` on end of stream or an
    /// I/O error, with the text to fail the connection with.
    pub async fn fill(&mut self, socket: &Socket, peer: &str) -> Result<(), String> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                let doubled = self.buf.len() * 2;
                self.buf.resize(doubled, 0);
            }
        }
        match socket.read_some(&mut self.buf[self.end..]).await {
            Ok(0) => Err(format!("connection closed by {peer}")),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// The bytes received and not yet consumed.
    pub fn unparsed(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes of [`unparsed`](Self::unparsed) as parsed.
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.end - self.start,
            "consumed more than was received"
        );
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }
}

/// Waits up to `limit` for the reader task's answer on `rx`. `Ok(None)` inside means the reader
/// went away without answering; a timeout is `Err` with the text to report.
pub async fn await_reply<T>(
    rx: LocalReceiver<Result<T, String>>,
    limit: Duration,
) -> Result<T, String> {
    let reply = glommio::timer::timeout(limit, async {
        Ok::<_, glommio::GlommioError<()>>(rx.recv().await)
    })
    .await;
    match reply {
        Ok(Some(result)) => result,
        Ok(None) => Err("connection closed".into()),
        Err(_) => Err(format!("no reply within {limit:?}")),
    }
}

/// Writes all of `bytes` within `limit`. A failed or stalled write leaves a torn request on the
/// stream, so it also shuts the socket down (the reader then fails every waiter).
pub async fn write_within(socket: &Socket, bytes: &[u8], limit: Duration) -> Result<(), String> {
    let written = glommio::timer::timeout(limit, async {
        Ok::<_, glommio::GlommioError<()>>(socket.write_all(bytes).await)
    })
    .await;
    let result = match written {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => format!("write: {e}"),
        Err(_) => format!("write stalled for {limit:?} (the peer is not reading)"),
    };
    socket.shutdown();
    Err(result)
}

/// A connected socket and the task reading it; dropping it shuts the socket down (the reader
/// sees the end of stream) and cancels the reader.
pub struct Wire {
    pub socket: Rc<Socket>,
    reader: Option<glommio::task::JoinHandle<()>>,
}

impl Wire {
    /// Connects to `addr` and starts `read(socket)` as the reader task.
    pub async fn connect<F, Fut>(addr: &str, timeout: Duration, read: F) -> Result<Wire, String>
    where
        F: FnOnce(Rc<Socket>) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let socket = Rc::new(
            Socket::connect(addr, timeout)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?,
        );
        let reader = glommio::spawn_local(read(socket.clone())).detach();
        Ok(Wire {
            socket,
            reader: Some(reader),
        })
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.socket.shutdown();
        if let Some(reader) = self.reader.take() {
            reader.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_compacts_and_grows() {
        let mut b = ReadBuffer::new(4);
        b.buf[..4].copy_from_slice(b"abcd");
        b.end = 4;
        b.consume(3);
        assert_eq!(b.unparsed(), b"d");
        b.consume(1);
        assert_eq!((b.start, b.end), (0, 0), "an empty buffer starts over");
        assert!(std::panic::catch_unwind(move || {
            let mut b = ReadBuffer::new(4);
            b.consume(1)
        })
        .is_err());
    }
}
