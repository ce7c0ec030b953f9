//! One pipelined RESP connection: Redis answers a connection's commands in order, so a request
//! is "write these N commands, then take the next N replies". Writers hold the write lock from
//! queueing their waiter until their bytes are written, so waiters are queued in wire order; one
//! reader task parses replies and hands each waiter its N.
//!
//! Failure: a read error or malformed reply closes the connection and fails every waiter.
//! Executor-local (`Rc`), `!Send`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalSender};
use shardmq_client::socket::Socket;

use super::resp::{parse, Value};

/// Read buffer growth step.
const READ_CHUNK: usize = 256 * 1024;

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
    socket: Rc<Socket>,
    shared: Rc<Shared>,
    write_lock: glommio::sync::Semaphore,
    timeout: Duration,
    reader: Option<glommio::task::JoinHandle<()>>,
}

impl Drop for RespConnection {
    fn drop(&mut self) {
        self.socket.shutdown();
        if let Some(reader) = self.reader.take() {
            reader.cancel();
        }
    }
}

impl RespConnection {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, String> {
        let socket = Rc::new(
            Socket::connect(addr, timeout)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?,
        );
        let shared = Rc::new(Shared {
            waiters: RefCell::new(VecDeque::new()),
            closed: RefCell::new(None),
        });
        let reader = glommio::spawn_local(read_loop(socket.clone(), shared.clone())).detach();
        Ok(RespConnection {
            socket,
            shared,
            write_lock: glommio::sync::Semaphore::new(1),
            timeout,
            reader: Some(reader),
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
            if let Err(e) = self.socket.write_all(commands).await {
                // The waiter stays queued: the stream is now out of step, so close it.
                self.socket.shutdown();
                return Err(format!("write: {e}"));
            }
        }
        let limit = self.timeout + extra;
        let reply = glommio::timer::timeout(limit, async {
            Ok::<_, glommio::GlommioError<()>>(rx.recv().await)
        })
        .await;
        match reply {
            Ok(Some(result)) => result,
            Ok(None) => Err("connection closed".into()),
            Err(_) => {
                // Replies to this request may still come; the stream can no longer be matched.
                self.socket.shutdown();
                Err(format!("no reply within {limit:?}"))
            }
        }
    }
}

async fn read_loop(socket: Rc<Socket>, shared: Rc<Shared>) {
    // Unparsed bytes are buf[start..end]; reads append at `end`, compacting or growing first
    // when the tail is full (never zero-filling per read).
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut start, mut end) = (0, 0);
    let why = 'read: loop {
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        match socket.read_some(&mut buf[end..]).await {
            Ok(0) => break "connection closed by redis".to_string(),
            Ok(n) => end += n,
            Err(e) => break format!("read: {e}"),
        }
        loop {
            match parse(&buf[start..end]) {
                Ok(Some((value, used))) => {
                    start += used;
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
        if start == end {
            (start, end) = (0, 0);
        }
    };
    *shared.closed.borrow_mut() = Some(why.clone());
    for waiter in shared.waiters.borrow_mut().drain(..) {
        let _ = waiter.tx.try_send(Err(why.clone()));
    }
}
