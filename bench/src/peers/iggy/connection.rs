//! One connection to an Iggy server, logged in: a request is written and its reply read under
//! one lock, so one request is in flight at a time (as Iggy's own SDK does: partition replies
//! carry nothing to match them by).
//!
//! Failure: an I/O error, a timeout or an eviction shuts the socket down and fails this and
//! every later call (the stream can no longer be trusted). Executor-local, `!Send`.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use shardmq_client::socket::Socket;

use super::proto::{self, ReplyHead, Route, HEADER_BYTES};

pub struct IggyConnection {
    socket: Socket,
    lock: glommio::sync::Semaphore,
    client: u128,
    session: Cell<u64>,
    /// Metadata requests need fresh, increasing numbers (a reused one gets the cached reply).
    next_request: Cell<u64>,
    closed: RefCell<Option<String>>,
    timeout: Duration,
}

/// A reply: its header status (0: ok) and body.
pub struct Reply {
    pub status: u32,
    pub body: Vec<u8>,
}

fn client_id() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos());
    (nanos ^ (u128::from(std::process::id()) << 64)) | 1
}

impl IggyConnection {
    /// Connects and logs in as `username`.
    pub async fn connect(
        addr: &str,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let socket = Socket::connect(addr, timeout)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let connection = IggyConnection {
            socket,
            lock: glommio::sync::Semaphore::new(1),
            client: client_id(),
            session: Cell::new(0),
            next_request: Cell::new(1),
            closed: RefCell::new(None),
            timeout,
        };
        let body = proto::register_body(username, password);
        let reply = connection.exchange(proto::OP_REGISTER, 0, 0, &body).await?;
        if reply.status != 0 {
            return Err(format!("login: status {}", reply.status));
        }
        connection
            .session
            .set(proto::session_of_register(&reply.body)?);
        Ok(connection)
    }

    /// Sends one request (`operation`, with `legacy_code` for a non-replicated one) and returns
    /// its reply.
    pub async fn call(
        &self,
        operation: u8,
        legacy_code: u32,
        body: &[u8],
    ) -> Result<Reply, String> {
        let request = self.next_request.get();
        self.next_request.set(request + 1);
        self.exchange(operation, legacy_code, request, body).await
    }

    async fn exchange(
        &self,
        operation: u8,
        legacy_code: u32,
        request: u64,
        body: &[u8],
    ) -> Result<Reply, String> {
        let _turn = self
            .lock
            .acquire_permit(1)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(why) = self.closed.borrow().clone() {
            return Err(why);
        }
        let route = Route {
            client: self.client,
            session: self.session.get(),
            request,
        };
        let frame = proto::request(route, operation, legacy_code, body);
        let outcome = glommio::timer::timeout(self.timeout, async {
            Ok::<_, glommio::GlommioError<()>>(self.write_and_read(&frame).await)
        })
        .await
        .unwrap_or_else(|_| Err(format!("no reply within {:?}", self.timeout)));
        if let Err(why) = &outcome {
            self.socket.shutdown();
            *self.closed.borrow_mut() = Some(why.clone());
        }
        outcome
    }

    async fn write_and_read(&self, frame: &[u8]) -> Result<Reply, String> {
        self.socket
            .write_all(frame)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut header = [0u8; HEADER_BYTES];
        self.socket
            .read_exact(&mut header)
            .await
            .map_err(|e| format!("read: {e}"))?;
        match proto::reply_head(&header)? {
            ReplyHead::Evicted { reason } => Err(format!(
                "the server ended the session (eviction reason {reason})"
            )),
            ReplyHead::Reply { size, status } => {
                let mut body = vec![0u8; size - HEADER_BYTES];
                self.socket
                    .read_exact(&mut body)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                Ok(Reply { status, body })
            }
        }
    }
}
