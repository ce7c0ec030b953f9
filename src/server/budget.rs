//! Byte budgets: how much memory requests being read and replies waiting to be written may hold,
//! per connection and per shard. A reader takes budget as bytes arrive and a writer gives it back
//! as bytes leave, so memory follows bytes actually received or queued, and a shard's total has
//! a bound of its own however many connections share it.
//!
//! A request for more than the whole budget is clamped to the whole budget: one maximal frame
//! always gets through, alone. Budgets are FIFO (glommio's semaphore): a large waiter is not
//! starved by small ones. Closing a budget fails every waiter and every later acquire, which is
//! how a closed connection releases a reader parked on its own reply budget.

use std::cell::Cell;
use std::rc::Rc;

use glommio::sync::{Semaphore, StaticPermit};

/// A budget of bytes on one shard (`Rc`, not `Send`).
pub struct ByteBudget {
    semaphore: Rc<Semaphore>,
    capacity: u64,
}

/// The budget was closed (its connection is being torn down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetClosed;

impl ByteBudget {
    pub fn new(capacity: u64) -> Self {
        assert!(capacity > 0, "a byte budget holds at least one byte");
        ByteBudget {
            semaphore: Rc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Waits until `bytes` (clamped to the capacity, at least 1) are free and takes them.
    pub async fn acquire(&self, bytes: u64) -> Result<Held, BudgetClosed> {
        let units = bytes.clamp(1, self.capacity);
        let permit = self
            .semaphore
            .acquire_static_permit(units)
            .await
            .map_err(|_| BudgetClosed)?;
        Ok(Held::from_permit(permit, units))
    }

    /// Bytes currently held.
    pub fn in_use(&self) -> u64 {
        self.capacity - self.semaphore.available().min(self.capacity)
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Fails every waiter and every later acquire; what is held stays held until dropped.
    pub fn close(&self) {
        self.semaphore.close();
    }
}

/// Budget taken, given back when dropped. Several acquisitions (a body that grows as it
/// arrives, a reply counted against its connection and its shard) merge into one `Held`; the
/// first two are kept inline, so the common cases allocate nothing.
#[derive(Default)]
pub struct Held {
    first: Option<StaticPermit>,
    second: Option<StaticPermit>,
    more: Vec<StaticPermit>,
    bytes: Cell<u64>,
}

impl Held {
    fn from_permit(permit: StaticPermit, bytes: u64) -> Held {
        Held {
            first: Some(permit),
            bytes: Cell::new(bytes),
            ..Held::default()
        }
    }

    pub fn merge(&mut self, other: Held) {
        self.bytes.set(self.bytes.get() + other.bytes.get());
        for permit in other.into_permits() {
            if self.first.is_none() {
                self.first = Some(permit);
            } else if self.second.is_none() {
                self.second = Some(permit);
            } else {
                self.more.push(permit);
            }
        }
    }

    fn into_permits(self) -> impl Iterator<Item = StaticPermit> {
        self.first.into_iter().chain(self.second).chain(self.more)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F, Fut>(f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        glommio::LocalExecutorBuilder::default()
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn held_bytes_come_back_when_dropped_and_oversize_asks_are_clamped() {
        run(|| async {
            let budget = ByteBudget::new(100);
            let mut held = budget.acquire(30).await.unwrap();
            held.merge(budget.acquire(20).await.unwrap());
            assert_eq!((held.bytes(), budget.in_use()), (50, 50));
            drop(held);
            assert_eq!(budget.in_use(), 0);
            let all = budget.acquire(1_000_000).await.unwrap();
            assert_eq!((all.bytes(), budget.in_use()), (100, 100));
        });
    }

    #[test]
    fn closing_fails_waiters_and_later_asks() {
        run(|| async {
            let budget = Rc::new(ByteBudget::new(10));
            let held = budget.acquire(10).await.unwrap();
            let waiter = {
                let budget = budget.clone();
                glommio::spawn_local(async move { budget.acquire(1).await.map(|_| ()) })
            };
            glommio::yield_if_needed().await;
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
            budget.close();
            assert_eq!(waiter.await, Err(BudgetClosed));
            assert!(budget.acquire(1).await.is_err());
            drop(held);
        });
    }
}
