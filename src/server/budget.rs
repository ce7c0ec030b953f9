//! Byte budgets: how much memory requests being read and replies waiting to be written may hold,
//! per connection and per shard. A reader takes budget as bytes arrive and a writer gives it back
//! as bytes leave, so memory follows bytes actually received or queued, and a shard's total has
//! a bound of its own however many connections share it.
//!
//! A request for more than the whole budget is clamped to the whole budget: one maximal frame
//! always gets through, alone. Budgets are FIFO (glommio's semaphore): a large waiter is not
//! starved by small ones. Closing a budget fails every waiter and every later acquire, which is
//! how a closed connection releases a reader parked on its own reply budget.

use std::rc::Rc;

use glommio::sync::Semaphore;

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
        self.semaphore
            .acquire(units)
            .await
            .map_err(|_| BudgetClosed)?;
        Ok(Held::from_part(Part {
            semaphore: self.semaphore.clone(),
            units,
        }))
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

/// Units taken from one budget, given back when dropped.
struct Part {
    semaphore: Rc<Semaphore>,
    units: u64,
}

impl Drop for Part {
    fn drop(&mut self) {
        self.semaphore.signal(self.units);
    }
}

/// Budget taken, given back when dropped. Several acquisitions (a body that grows as it
/// arrives, a reply counted against its connection and its shard) merge into one `Held`; the
/// first two are kept inline, so the common cases allocate nothing. A reservation taken before
/// its bytes exist (a pull reply's largest size) is cut to what they turned out to be with
/// [`Held::shrink_each_to`].
#[derive(Default)]
pub struct Held {
    first: Option<Part>,
    second: Option<Part>,
    more: Vec<Part>,
}

impl Held {
    fn from_part(part: Part) -> Held {
        Held {
            first: Some(part),
            ..Held::default()
        }
    }

    pub fn merge(&mut self, mut other: Held) {
        for part in other.parts_taken() {
            if self.first.is_none() {
                self.first = Some(part);
            } else if self.second.is_none() {
                self.second = Some(part);
            } else {
                self.more.push(part);
            }
        }
    }

    fn parts_taken(&mut self) -> impl Iterator<Item = Part> {
        let more = std::mem::take(&mut self.more);
        self.first
            .take()
            .into_iter()
            .chain(self.second.take())
            .chain(more)
    }

    fn parts_mut(&mut self) -> impl Iterator<Item = &mut Part> {
        self.first
            .iter_mut()
            .chain(self.second.iter_mut())
            .chain(self.more.iter_mut())
    }

    /// Bytes held, summed over every budget they were taken from.
    pub fn bytes(&self) -> u64 {
        let inline = self.first.iter().chain(self.second.iter());
        inline.chain(self.more.iter()).map(|p| p.units).sum()
    }

    /// Gives back, from each budget this holds, whatever it holds there beyond `bytes` (at
    /// least 1 stays), waking whoever waits for it.
    pub fn shrink_each_to(&mut self, bytes: u64) {
        let keep = bytes.max(1);
        for part in self.parts_mut() {
            if part.units > keep {
                part.semaphore.signal(part.units - keep);
                part.units = keep;
            }
        }
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
    fn a_reservation_shrinks_to_what_it_covers_in_every_budget() {
        run(|| async {
            let (connection, shard) = (ByteBudget::new(100), ByteBudget::new(1000));
            let mut reserved = connection.acquire(80).await.unwrap();
            reserved.merge(shard.acquire(80).await.unwrap());
            assert_eq!((connection.in_use(), shard.in_use()), (80, 80));
            reserved.shrink_each_to(30);
            assert_eq!(
                (connection.in_use(), shard.in_use(), reserved.bytes()),
                (30, 30, 60)
            );
            reserved.shrink_each_to(50); // never grows
            assert_eq!(connection.in_use(), 30);
            drop(reserved);
            assert_eq!((connection.in_use(), shard.in_use()), (0, 0));
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
