//! One remoting TCP connection with pipelined requests: writers serialize on a lock and send
//! whole frames; one reader task decodes responses and completes the waiting request with the
//! same `opaque`. Requests the server sends to us (flag without the response bit) are ignored:
//! the bench registers no consumer group, so it is never asked anything it must answer.
//!
//! Failure: a read error or undecodable frame closes the connection and fails every waiting
//! and later request with that error's text. Executor-local (`Rc`), `!Send`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalSender};
use shardmq_client::socket::Socket;

use super::command::{decode, encode_request, frame_length, Command};
use crate::peers::wire::{await_reply, write_within, Wire};

struct Shared {
    waiting: RefCell<HashMap<i32, LocalSender<Result<Command, String>>>>,
    closed: RefCell<Option<String>>,
}

pub struct RemotingConnection {
    wire: Wire,
    shared: Rc<Shared>,
    next_opaque: Cell<i32>,
    write_lock: glommio::sync::Semaphore,
    timeout: Duration,
}

impl RemotingConnection {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, String> {
        let shared = Rc::new(Shared {
            waiting: RefCell::new(HashMap::new()),
            closed: RefCell::new(None),
        });
        let reader_shared = shared.clone();
        let wire = Wire::connect(addr, timeout, |socket| read_loop(socket, reader_shared)).await?;
        Ok(RemotingConnection {
            wire,
            shared,
            next_opaque: Cell::new(1),
            write_lock: glommio::sync::Semaphore::new(1),
            timeout,
        })
    }

    /// Sends one request and waits for its response, at most the connection's timeout plus
    /// `extra` (a long poll's wait), or until the connection ends.
    pub async fn request(
        &self,
        code: i32,
        ext: &[(&str, String)],
        body: &[u8],
        extra: Duration,
    ) -> Result<Command, String> {
        if let Some(why) = self.shared.closed.borrow().clone() {
            return Err(why);
        }
        let opaque = self.next_opaque.get();
        self.next_opaque.set(opaque.wrapping_add(1).max(1));
        let (tx, rx) = local_channel::new_bounded(1);
        self.shared.waiting.borrow_mut().insert(opaque, tx);
        let frame = match encode_request(code, opaque, ext, body) {
            Ok(frame) => frame,
            Err(e) => {
                self.shared.waiting.borrow_mut().remove(&opaque);
                return Err(e);
            }
        };
        let written = async {
            let _turn = self
                .write_lock
                .acquire_permit(1)
                .await
                .map_err(|e| e.to_string())?;
            write_within(&self.wire.socket, &frame, self.timeout).await
        }
        .await;
        let reply = match written {
            Ok(()) => await_reply(rx, self.timeout + extra).await,
            Err(e) => Err(e),
        };
        if reply.is_err() {
            self.shared.waiting.borrow_mut().remove(&opaque);
        }
        reply
    }
}

async fn read_loop(socket: Rc<Socket>, shared: Rc<Shared>) {
    let why = loop {
        let mut prefix = [0u8; 4];
        if let Err(e) = socket.read_exact(&mut prefix).await {
            break format!("read: {e}");
        }
        let len = match frame_length(prefix) {
            Ok(len) => len,
            Err(e) => break e.to_string(),
        };
        let mut rest = vec![0u8; len];
        if let Err(e) = socket.read_exact(&mut rest).await {
            break format!("read: {e}");
        }
        let command = match decode(bytes::Bytes::from(rest)) {
            Ok(command) => command,
            Err(e) => break e.to_string(),
        };
        if !command.is_response() {
            continue;
        }
        let waiter = shared.waiting.borrow_mut().remove(&command.opaque);
        if let Some(tx) = waiter {
            let _ = tx.try_send(Ok(command));
        }
    };
    *shared.closed.borrow_mut() = Some(why.clone());
    for (_, tx) in shared.waiting.borrow_mut().drain() {
        let _ = tx.try_send(Err(why.clone()));
    }
}
