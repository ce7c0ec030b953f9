//! The one signal that ends a connection. Whatever notices first — the writer failing to send,
//! the watchdog seeing a stalled frame or write, the reader reaching the end of the stream, the
//! connection's last reply written — closes it with a reason; every task of the connection races
//! its own waits against [`Closer::wait`], so each stops where it is and drops what it holds:
//! buffers, queued replies, byte budgets, the socket, the connection slot.

use std::cell::{Cell, RefCell};

use event_listener::Event;

#[derive(Default)]
pub struct Closer {
    closed: Cell<bool>,
    reason: RefCell<Option<String>>,
    event: Event,
}

impl Closer {
    /// Closes the connection; the first reason is kept. Idempotent.
    pub fn close(&self, reason: impl Into<String>) {
        if self.closed.replace(true) {
            return;
        }
        *self.reason.borrow_mut() = Some(reason.into());
        self.event.notify(usize::MAX);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.borrow().clone()
    }

    /// Resolves once the connection is closed (at once if it already is).
    pub async fn wait(&self) {
        loop {
            if self.closed.get() {
                return;
            }
            let listener = self.event.listen();
            if self.closed.get() {
                return;
            }
            listener.await;
        }
    }
}
