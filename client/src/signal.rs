//! Single-threaded completion primitives shared by the connection and the producer.
//!
//! [`Slot`] is a write-once cell plus a wake-up: one side [`Slot::set`]s a value, any number of
//! waiters see it. The connection's pending-reply table holds one slot per request (the waiter
//! takes the value); a producer batch holds one slot shared by every record of the batch (each
//! waiter clones the result). [`with_timeout`] bounds any future by a glommio timer.
//!
//! Invariants: the first `set` wins and later ones are ignored, so a reply that races a
//! connection failure is delivered exactly once. Everything here is `!Send` in use (it lives in
//! `Rc`s on one glommio executor thread); the `Event` inside is thread-safe but never needs to be.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use event_listener::Event;

use crate::error::{ClientError, Result};

pub(crate) struct Slot<T> {
    value: RefCell<Option<T>>,
    set: std::cell::Cell<bool>,
    event: Event,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot {
            value: RefCell::new(None),
            set: std::cell::Cell::new(false),
            event: Event::new(),
        }
    }

    /// Stores `value` and wakes every waiter. Returns false (and drops `value`) if the slot was
    /// already set.
    pub(crate) fn set(&self, value: T) -> bool {
        if self.set.replace(true) {
            return false;
        }
        *self.value.borrow_mut() = Some(value);
        self.event.notify(usize::MAX);
        true
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Waits for the value and takes it; for slots with exactly one waiter.
    pub(crate) async fn take(&self) -> T {
        loop {
            if let Some(v) = self.value.borrow_mut().take() {
                return v;
            }
            let listener = self.event.listen();
            if let Some(v) = self.value.borrow_mut().take() {
                return v;
            }
            listener.await;
        }
    }

    /// The value if it is set, cloned.
    pub(crate) fn peek(&self) -> Option<T>
    where
        T: Clone,
    {
        self.value.borrow().clone()
    }

    /// Starts listening; pair with [`Slot::peek`] in a check-listen-check loop.
    pub(crate) fn listen(&self) -> event_listener::EventListener {
        self.event.listen()
    }
}

/// Runs `fut` and fails with [`ClientError::Timeout`] if it has not finished after `dur`.
/// Dropping `fut` on timeout is how a request is abandoned, so every future passed here must be
/// cancel-safe (the connection's request path is).
pub(crate) async fn with_timeout<T>(
    dur: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    futures_lite::future::or(fut, async move {
        glommio::timer::Timer::new(dur).await;
        Err(ClientError::Timeout(dur))
    })
    .await
}
