//! One NATS connection: requests answered on this connection's own inbox (JetStream publish acks
//! and API calls), and push subscriptions (JetStream consumer deliveries).
//!
//! The inbox is `_INBOX.<random>.*` (sid 1); request `n` sends its messages with reply subject
//! `_INBOX.<random>.<n>` and completes when as many replies arrived as messages were sent. A
//! subscription (sid ≥ 2) queues payloads in a [`Mailbox`] its reader drains. The reader task
//! answers the server's `PING`s. Writers (and the reader's `PONG`) share one write lock, so
//! operations never interleave on the wire.
//!
//! Failure: a read error, `-ERR` or malformed operation closes the connection and fails every
//! waiting request. Executor-local (`Rc`), `!Send`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalSender};
use glommio::sync::Semaphore;
use shardmq_client::socket::Socket;

use super::proto::{parse, publish, Op};
use crate::peers::wire::{await_reply, write_within, ReadBuffer, Wire};

/// Initial read buffer size (grows when one operation does not fit).
const READ_BUFFER_BYTES: usize = 256 * 1024;
const INBOX_SID: u64 = 1;

/// Payloads delivered to one subscription, and the event that announces more.
#[derive(Default)]
pub struct Mailbox {
    pub queue: RefCell<VecDeque<Vec<u8>>>,
    pub arrived: event_listener::Event,
}

/// One reply of a request: its payload, or why it is not one (a status reply).
pub type ReplyPayload = Result<Vec<u8>, String>;

struct Request {
    remaining: usize,
    replies: Vec<ReplyPayload>,
    tx: LocalSender<Result<Vec<ReplyPayload>, String>>,
}

struct Shared {
    requests: RefCell<HashMap<u64, Request>>,
    mailboxes: RefCell<HashMap<u64, Rc<Mailbox>>>,
    closed: RefCell<Option<String>>,
    inbox_prefix: String,
}

pub struct NatsConnection {
    wire: Wire,
    shared: Rc<Shared>,
    write_lock: Rc<Semaphore>,
    next_request: Cell<u64>,
    next_sid: Cell<u64>,
    timeout: Duration,
}

/// A process-unique inbox token.
fn inbox_token() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("bench{}x{n}", std::process::id())
}

/// Writes `bytes` as one operation (writers take turns on `lock`) within `limit`.
async fn write(
    socket: &Socket,
    lock: &Semaphore,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), String> {
    let _turn = lock.acquire_permit(1).await.map_err(|e| e.to_string())?;
    write_within(socket, bytes, limit).await
}

impl NatsConnection {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, String> {
        let inbox_prefix = format!("_INBOX.{}.", inbox_token());
        let shared = Rc::new(Shared {
            requests: RefCell::new(HashMap::new()),
            mailboxes: RefCell::new(HashMap::new()),
            closed: RefCell::new(None),
            inbox_prefix: inbox_prefix.clone(),
        });
        let write_lock = Rc::new(Semaphore::new(1));
        let (reader_shared, reader_lock) = (shared.clone(), write_lock.clone());
        let wire = Wire::connect(addr, timeout, |socket| {
            read_loop(socket, reader_shared, reader_lock, timeout)
        })
        .await?;
        let hello = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\"protocol\":1,\"name\":\"shardmq-bench\"}}\r\nSUB {inbox_prefix}* {INBOX_SID}\r\nPING\r\n"
        );
        write(&wire.socket, &write_lock, hello.as_bytes(), timeout).await?;
        Ok(NatsConnection {
            wire,
            shared,
            write_lock,
            next_request: Cell::new(1),
            next_sid: Cell::new(INBOX_SID + 1),
            timeout,
        })
    }

    /// Publishes `payloads.len()` messages to `subject` with one reply subject and waits for as
    /// many replies; each reply is its payload, or an error for a status reply (no responders).
    pub async fn request(
        &self,
        subject: &str,
        count: usize,
        payload: &[u8],
    ) -> Result<Vec<ReplyPayload>, String> {
        if let Some(why) = self.shared.closed.borrow().clone() {
            return Err(why);
        }
        let id = self.next_request.get();
        self.next_request.set(id + 1);
        let reply = format!("{}{id}", self.shared.inbox_prefix);
        let mut out = Vec::with_capacity((payload.len() + 64) * count);
        for _ in 0..count {
            publish(&mut out, subject, &reply, payload);
        }
        let (tx, rx) = local_channel::new_bounded(1);
        self.shared.requests.borrow_mut().insert(
            id,
            Request {
                remaining: count,
                replies: Vec::with_capacity(count),
                tx,
            },
        );
        let answer = match write(&self.wire.socket, &self.write_lock, &out, self.timeout).await {
            Ok(()) => await_reply(rx, self.timeout).await,
            Err(e) => Err(e),
        };
        if answer.is_err() {
            self.shared.requests.borrow_mut().remove(&id);
        }
        answer
    }

    /// Subscribes to `subject`; deliveries queue in the returned mailbox.
    pub async fn subscribe(&self, subject: &str) -> Result<Rc<Mailbox>, String> {
        let sid = self.next_sid.get();
        self.next_sid.set(sid + 1);
        let mailbox = Rc::new(Mailbox::default());
        self.shared
            .mailboxes
            .borrow_mut()
            .insert(sid, mailbox.clone());
        write(
            &self.wire.socket,
            &self.write_lock,
            format!("SUB {subject} {sid}\r\n").as_bytes(),
            self.timeout,
        )
        .await?;
        Ok(mailbox)
    }

    pub fn closed(&self) -> Option<String> {
        self.shared.closed.borrow().clone()
    }
}

fn deliver(shared: &Shared, subject: &str, sid: u64, payload: Vec<u8>, status: Option<u16>) {
    if sid != INBOX_SID {
        if let Some(mailbox) = shared.mailboxes.borrow().get(&sid) {
            mailbox.queue.borrow_mut().push_back(payload);
            mailbox.arrived.notify(usize::MAX);
        }
        return;
    }
    let Some(id) = subject
        .strip_prefix(&shared.inbox_prefix)
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return;
    };
    let mut requests = shared.requests.borrow_mut();
    let Some(request) = requests.get_mut(&id) else {
        return;
    };
    request.replies.push(match status {
        Some(code) if code >= 300 => Err(format!("status {code}")),
        _ => Ok(payload),
    });
    request.remaining -= 1;
    if request.remaining == 0 {
        let done = requests.remove(&id).expect("present");
        let _ = done.tx.try_send(Ok(done.replies));
    }
}

async fn read_loop(
    socket: Rc<Socket>,
    shared: Rc<Shared>,
    write_lock: Rc<Semaphore>,
    timeout: Duration,
) {
    let mut buf = ReadBuffer::new(READ_BUFFER_BYTES);
    let why = 'read: loop {
        if let Err(e) = buf.fill(&socket, "nats-server").await {
            break e;
        }
        loop {
            match parse(buf.unparsed()) {
                Ok(Some((op, used))) => {
                    buf.consume(used);
                    match op {
                        Op::Msg {
                            subject,
                            sid,
                            payload,
                            status,
                        } => deliver(&shared, &subject, sid, payload, status),
                        Op::Ping => {
                            if let Err(e) = write(&socket, &write_lock, b"PONG\r\n", timeout).await
                            {
                                break 'read e;
                            }
                        }
                        Op::Err(text) => break 'read format!("-ERR {text}"),
                        Op::Info | Op::Ok | Op::Pong => {}
                    }
                }
                Ok(None) => break,
                Err(e) => break 'read e.to_string(),
            }
        }
    };
    *shared.closed.borrow_mut() = Some(why.clone());
    for (_, request) in shared.requests.borrow_mut().drain() {
        let _ = request.tx.try_send(Err(why.clone()));
    }
    for mailbox in shared.mailboxes.borrow().values() {
        mailbox.arrived.notify(usize::MAX);
    }
}
