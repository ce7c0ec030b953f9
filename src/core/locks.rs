//! Queue locks for orderly consumption (RocketMQ's `RebalanceLockManager`): a member of a group
//! holds a queue's lock while it consumes the queue in order, so one member at a time does.
//!
//! A lock lives on the shard that owns its queue. Taking it succeeds when nobody holds it, the
//! holder's lock has expired, or the taker already holds it (which renews it); members renew
//! their locks well within the expiry (RocketMQ: every 20 s against 60 s), so a member that dies
//! loses its locks after the expiry and another member can take them. Releasing needs the
//! holder. Expired locks are swept by the core's housekeeping.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LockKey {
    group: Rc<str>,
    topic_id: u32,
    queue_id: u32,
}

struct Held {
    member: Rc<str>,
    expires: Instant,
}

pub struct QueueLocks {
    expiry: Duration,
    held: RefCell<HashMap<LockKey, Held>>,
}

impl QueueLocks {
    pub fn new(expiry: Duration) -> Self {
        QueueLocks {
            expiry,
            held: RefCell::new(HashMap::new()),
        }
    }

    /// Takes or renews the lock; true if `member` holds it now.
    pub fn lock(
        &self,
        group: &str,
        topic_id: u32,
        queue_id: u32,
        member: &str,
        now: Instant,
    ) -> bool {
        let key = LockKey {
            group: group.into(),
            topic_id,
            queue_id,
        };
        let mut held = self.held.borrow_mut();
        if let Some(current) = held.get(&key) {
            if current.member.as_ref() != member && current.expires > now {
                return false;
            }
        }
        held.insert(
            key,
            Held {
                member: member.into(),
                expires: now + self.expiry,
            },
        );
        true
    }

    /// Releases the lock if `member` holds it; true if it did.
    pub fn unlock(&self, group: &str, topic_id: u32, queue_id: u32, member: &str) -> bool {
        let key = LockKey {
            group: group.into(),
            topic_id,
            queue_id,
        };
        let mut held = self.held.borrow_mut();
        if held.get(&key).is_some_and(|h| h.member.as_ref() == member) {
            held.remove(&key);
            return true;
        }
        false
    }

    /// The member holding the lock, if it has not expired.
    pub fn holder(
        &self,
        group: &str,
        topic_id: u32,
        queue_id: u32,
        now: Instant,
    ) -> Option<String> {
        let key = LockKey {
            group: group.into(),
            topic_id,
            queue_id,
        };
        self.held
            .borrow()
            .get(&key)
            .filter(|h| h.expires > now)
            .map(|h| h.member.to_string())
    }

    pub fn expire(&self, now: Instant) {
        self.held.borrow_mut().retain(|_, h| h.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_until_expiry() {
        let locks = QueueLocks::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(locks.lock("g", 1, 0, "a", now));
        assert!(!locks.lock("g", 1, 0, "b", now), "held by a");
        assert!(
            locks.lock("g", 1, 0, "a", now + Duration::from_secs(30)),
            "a renews"
        );
        assert!(
            !locks.lock("g", 1, 0, "b", now + Duration::from_secs(80)),
            "renewed at 30 s"
        );
        assert!(
            locks.lock("g", 1, 0, "b", now + Duration::from_secs(91)),
            "a's lock expired"
        );
        assert!(!locks.unlock("g", 1, 0, "a"), "only the holder releases");
        assert!(
            locks.lock("g2", 1, 0, "a", now),
            "another group's lock is another lock"
        );
        assert!(locks.unlock("g", 1, 0, "b"));
        assert_eq!(locks.holder("g", 1, 0, now), None);
        locks.expire(now + Duration::from_secs(1000));
        assert_eq!(locks.holder("g2", 1, 0, now), None);
    }
}
