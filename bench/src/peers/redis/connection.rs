//! One pipelined RESP connection: Redis answers a connection's commands in order, so a request
//! is "write these N commands, then take the next N replies". Writers hold the write lock from
//! queueing their waiter until their bytes are written, so waiters are queued in wire order; one
//! reader task parses replies and hands each waiter its N.
//!
//! Failure: a read error or malformed reply closes the connection and fails every waiter; a
//! write error or a timeout shuts the socket down too, since replies can no longer be matched.
//! Executor-local (`Rc`), `!Send`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalSender};
use shardmq_client::socket::Socket;

use super::resp::{parse, Value};
use crate::peers::wire::{await_reply, write_within, ReadBuffer, Wire};

/// Initial read buffer size (grows when one reply does not fit).
const READ_BUFFER_BYTES: usize = 256 * 1024;

struct Waiter {
    replies: usize,
    got: Vec<Value>,
    tx: LocalSender<Result<Vec<Value>, String>>,
}

struct Shared {
    waiters: RefCell<VecDeque<Waiter>>,
    closed: RefCell<Option<String>>,
}

pub struct RespConnection {
    wire: Wire,
    shared: Rc<Shared>,
    write_lock: glommio::sync::Semaphore,
    timeout: Duration,
}

impl RespConnection {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, String> {
        let shared = Rc::new(Shared {
            waiters: RefCell::new(VecDeque::new()),
            closed: RefCell::new(None),
        });
        let reader_shared = shared.clone();
        let wire = Wire::connect(addr, timeout, |socket| read_loop(socket, reader_shared)).await?;
        Ok(RespConnection {
            wire,
            shared,
            write_lock: glommio::sync::Semaphore::new(1),
            timeout,
        })
    }

    /// Writes `commands` (`replies` RESP commands, already encoded) and returns their replies,
    /// waiting at most the timeout plus `extra` (a blocking read's wait).
    pub async fn call(
        &self,
        commands: &[u8],
        replies: usize,
        extra: Duration,
    ) -> Result<Vec<Value>, String> {
        if let Some(why) = self.shared.closed.borrow().clone() {
            return Err(why);
        }
        let (tx, rx) = local_channel::new_bounded(1);
        {
            let _turn = self
                .write_lock
                .acquire_permit(1)
                .await
                .map_err(|e| e.to_string())?;
            self.shared.waiters.borrow_mut().push_back(Waiter {
                replies,
                got: Vec::with_capacity(replies),
                tx,
            });
            // On failure the waiter stays queued: the stream is out of step and shut down.
            write_within(&self.wire.socket, commands, self.timeout).await?;
        }
        let reply = await_reply(rx, self.timeout + extra).await;
        if reply.is_err() {
            // Replies to this request may still come; the stream can no longer be matched.
            self.wire.socket.shutdown();
        }
        reply
    }
}

async fn read_loop(socket: Rc<Socket>, shared: Rc<Shared>) {
    let mut buf = ReadBuffer::new(READ_BUFFER_BYTES);
    let why = 'read: loop {
        if let Err(e) = buf.fill(&socket, "redis").await {
            break e;
        }
        loop {
            match parse(buf.unparsed()) {
                Ok(Some((value, used))) => {
                    buf.consume(used);
                    let mut waiters = shared.waiters.borrow_mut();
                    let Some(front) = waiters.front_mut() else {
                        break 'read "a reply nobody asked for".to_string();
                    };
                    front.got.push(value);
                    if front.got.len() == front.replies {
                        let done = waiters.pop_front().expect("front exists");
                        let _ = done.tx.try_send(Ok(done.got));
                    }
                }
                Ok(None) => break,
                Err(e) => break 'read e.to_string(),
            }
        }
    };
    *shared.closed.borrow_mut() = Some(why.clone());
    for waiter in shared.waiters.borrow_mut().drain(..) {
        let _ = waiter.tx.try_send(Err(why.clone()));
    }
}
