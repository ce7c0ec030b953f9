//! The per-shard watchdog: closes connections that hold resources without making progress.
//!
//! Two stalls are watched, both bounded by the shard's stall timeout (`--stall-timeout-ms`),
//! and, for protocols that ask for it, idleness:
//! - a frame whose header has arrived but whose body has not, in full, within the timeout (a
//!   client that announces a large frame and sends nothing holds a read buffer and budget);
//! - a write to the socket that has not completed within the timeout (a client that does not
//!   read its replies holds queued replies, their budget, and its connection slot);
//! - no frame begun within the connection's idle timeout (RocketMQ's 120 s: a client that
//!   connects and sends nothing, or stops, is closed as the Java broker closes it).
//!
//! Cost on the request path: a connection stamps a `Cell` with the watchdog's coarse tick when a
//! body read or a socket write starts, and clears it when it ends; no timer per request. The
//! watchdog task wakes every `period` (a quarter of the timeout, 10 ms to 1 s), advances the tick
//! and closes every connection whose stamp is older than the timeout, so a stall is detected
//! between `timeout - period` and `timeout + period` after it began.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::closer::Closer;

pub struct Watchdog {
    shard_id: u32,
    /// Coarse clock: advanced once per period; 0 is never a stamp ("idle").
    tick: Rc<Cell<u64>>,
    period: Duration,
    stall_ticks: u64,
    stall: Duration,
    next_id: Cell<u64>,
    watched: RefCell<HashMap<u64, Rc<Progress>>>,
}

/// What one connection is waiting on, as ticks of its watchdog (0 = nothing).
pub struct Progress {
    tick: Rc<Cell<u64>>,
    body_since: Cell<u64>,
    write_since: Cell<u64>,
    /// Waiting for the next frame since this tick, and how many ticks it may wait (0: forever).
    idle_since: Cell<u64>,
    idle_ticks: Cell<u64>,
    idle_limit: Cell<Duration>,
    period: Duration,
    closer: Rc<Closer>,
    peer: String,
}

impl Progress {
    pub fn body_started(&self) {
        self.body_since.set(self.tick.get());
    }

    pub fn body_done(&self) {
        self.body_since.set(0);
    }

    pub fn write_started(&self) {
        self.write_since.set(self.tick.get());
    }

    /// A write of replies finished: the connection is in use, so its idle wait starts afresh.
    pub fn write_done(&self) {
        self.write_since.set(0);
        if self.idle_since.get() != 0 {
            self.idle_since.set(self.tick.get());
        }
    }

    /// The connection waits for its next frame, at most `limit`.
    pub fn idle_started(&self, limit: Duration) {
        if self.idle_limit.get() != limit {
            self.idle_limit.set(limit);
            // A zero limit watches nothing (0 ticks); any other waits at least one tick.
            let ticks = match limit.as_nanos() {
                0 => 0,
                nanos => nanos.div_ceil(self.period.as_nanos()).max(1),
            };
            self.idle_ticks
                .set(u64::try_from(ticks).unwrap_or(u64::MAX));
        }
        self.idle_since.set(self.tick.get());
    }

    /// The next frame has begun.
    pub fn idle_done(&self) {
        self.idle_since.set(0);
    }
}

/// A connection under watch; dropping it ends the watch.
pub struct Watched {
    pub progress: Rc<Progress>,
    id: u64,
    watchdog: Rc<Watchdog>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.watchdog.watched.borrow_mut().remove(&self.id);
    }
}

impl Watchdog {
    pub fn new(shard_id: u32, stall: Duration) -> Rc<Watchdog> {
        let stall = stall.max(Duration::from_millis(10));
        let period = (stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let stall_ticks = stall.as_nanos().div_ceil(period.as_nanos()).max(1) as u64;
        Rc::new(Watchdog {
            shard_id,
            tick: Rc::new(Cell::new(1)),
            period,
            stall_ticks,
            stall,
            next_id: Cell::new(0),
            watched: RefCell::new(HashMap::new()),
        })
    }

    /// Starts watching the connection from `peer` that `closer` ends.
    pub fn watch(self: &Rc<Self>, closer: Rc<Closer>, peer: &str) -> Watched {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let progress = Rc::new(Progress {
            tick: self.tick.clone(),
            body_since: Cell::new(0),
            write_since: Cell::new(0),
            idle_since: Cell::new(0),
            idle_ticks: Cell::new(0),
            idle_limit: Cell::new(Duration::ZERO),
            period: self.period,
            closer,
            peer: peer.to_string(),
        });
        self.watched.borrow_mut().insert(id, progress.clone());
        Watched {
            progress,
            id,
            watchdog: self.clone(),
        }
    }

    /// Runs until dropped (the shard owns the task).
    pub async fn run(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(self.period).await;
            self.sweep();
        }
    }

    /// Advances the clock one tick and closes every stalled connection.
    fn sweep(&self) {
        let now = self.tick.get() + 1;
        self.tick.set(now);
        let stalled = |since: u64| since != 0 && now - since >= self.stall_ticks;
        let idle = |p: &Progress| {
            let since = p.idle_since.get();
            since != 0 && p.idle_ticks.get() != 0 && now - since >= p.idle_ticks.get()
        };
        for progress in self.watched.borrow().values() {
            let reason = if stalled(progress.body_since.get()) {
                "a frame's body did not arrive"
            } else if stalled(progress.write_since.get()) {
                "the client did not read its replies"
            } else if idle(progress) {
                "no request"
            } else {
                continue;
            };
            if progress.closer.is_closed() {
                continue;
            }
            let limit = if reason == "no request" {
                format!(
                    "the idle timeout of {} ms",
                    progress.idle_limit.get().as_millis()
                )
            } else {
                format!("the stall timeout of {} ms", self.stall.as_millis())
            };
            let reason = format!("{reason} within {limit}");
            tracing::warn!(shard = self.shard_id, peer = %progress.peer, %reason, "closing connection");
            progress.closer.close(reason);
        }
    }

    pub fn watched(&self) -> usize {
        self.watched.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stamps_older_than_the_timeout_close() {
        let watchdog = Watchdog::new(0, Duration::from_millis(400));
        assert_eq!(watchdog.stall_ticks, 4);
        let (a, b) = (Rc::new(Closer::default()), Rc::new(Closer::default()));
        let watched_a = watchdog.watch(a.clone(), "a");
        let watched_b = watchdog.watch(b.clone(), "b");
        watched_a.progress.body_started();
        watched_b.progress.write_started();
        for _ in 0..3 {
            watchdog.sweep();
        }
        watched_b.progress.write_done();
        assert!(!a.is_closed() && !b.is_closed());
        watchdog.sweep();
        assert!(a.is_closed(), "the body stalled for the whole timeout");
        assert!(a.reason().unwrap().contains("body"));
        assert!(!b.is_closed(), "a write that finished is not a stall");
        drop(watched_a);
        assert_eq!(watchdog.watched(), 1);
        drop(watched_b);
    }

    #[test]
    fn a_connection_waiting_for_a_frame_past_its_idle_limit_closes() {
        // Stall 400 ms: a period of 100 ms; idle limit 250 ms: 3 ticks.
        let watchdog = Watchdog::new(0, Duration::from_millis(400));
        let (idle, busy) = (Rc::new(Closer::default()), Rc::new(Closer::default()));
        let watched_idle = watchdog.watch(idle.clone(), "idle");
        let watched_busy = watchdog.watch(busy.clone(), "busy");
        watched_idle
            .progress
            .idle_started(Duration::from_millis(250));
        watched_busy
            .progress
            .idle_started(Duration::from_millis(250));
        for _ in 0..2 {
            watchdog.sweep();
        }
        // A frame begins on one of them, and it waits for its next one afresh.
        watched_busy.progress.idle_done();
        watched_busy
            .progress
            .idle_started(Duration::from_millis(250));
        assert!(!idle.is_closed());
        watchdog.sweep();
        assert!(idle.is_closed());
        assert!(idle.reason().unwrap().contains("idle timeout of 250 ms"));
        assert!(!busy.is_closed());
        let never = Rc::new(Closer::default());
        let watched_never = watchdog.watch(never.clone(), "never");
        watched_never
            .progress
            .idle_started(Duration::from_millis(250));
        watched_never.progress.idle_started(Duration::ZERO);
        for _ in 0..10 {
            watchdog.sweep();
        }
        assert!(!never.is_closed(), "a zero idle limit never closes");
        drop((watched_idle, watched_busy, watched_never));
    }
}
