//! One consumer group's POP progress over one queue: what it was handed, until when, and where
//! it may resume after a restart. Pure state, no I/O (`super` reads the records).
//!
//! Invariants (asserted):
//! - `base ≤ every in-flight offset < next`; every offset in `[base, next)` that is not in
//!   flight is done (acknowledged, or skipped by the filter or by retention).
//! - `base` = the smallest in-flight offset, or `next` when none is in flight: the group's
//!   committed offset, all a restart keeps. What was in flight above it is delivered again
//!   after a restart (at least once, never lost).
//! - A receipt handle is valid while its epoch is the entry's current one and its deadline has
//!   not passed: an ack or a change of invisibility with an older handle (the message was
//!   handed out again since) or after the deadline is refused, and changes nothing.
//! - At most [`IN_FLIGHT_MAX`] messages in flight per group and queue; past it nothing new is
//!   handed out until some are acknowledged or expire.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Messages of one queue a group may hold invisible at once.
pub const IN_FLIGHT_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    deadline: Instant,
    /// Deliveries so far (1 on the first).
    attempt: u32,
    epoch: u64,
}

/// Why a receipt handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Acknowledged already, or never handed out (or handed out before a restart).
    NotInFlight,
    /// The message was handed out again since this handle was made.
    Superseded,
    /// Its invisibility ran out; the message is being (or will be) handed out again.
    Expired,
}

impl Stale {
    pub fn reason(self) -> &'static str {
        match self {
            Stale::NotInFlight => "the message is not in flight (acknowledged already, or handed out before a restart)",
            Stale::Superseded => "the message was received again since this receipt handle was issued",
            Stale::Expired => "the receipt handle expired: its invisible duration ran out",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PopQueue {
    base: u64,
    next: u64,
    in_flight: BTreeMap<u64, InFlight>,
}

impl PopQueue {
    /// A group starting (or resuming after a restart) at `offset`.
    pub fn starting_at(offset: u64) -> PopQueue {
        PopQueue {
            base: offset,
            next: offset,
            in_flight: BTreeMap::new(),
        }
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn next(&self) -> u64 {
        self.next
    }

    /// Nothing in flight: all it holds is its committed offset, so it may be dropped and
    /// made again from that offset.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    pub fn has_room(&self) -> bool {
        self.in_flight.len() < IN_FLIGHT_MAX
    }

    /// In-flight offsets whose invisibility ran out by `now`, oldest first, at most `max`.
    pub fn expired(&self, now: Instant, max: usize) -> Vec<u64> {
        self.in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(offset, _)| *offset)
            .take(max)
            .collect()
    }

    /// Hands `offset` out for the first time (the next not yet handed out, or past offsets the
    /// caller skipped: those are done). Returns false when a concurrent receive took it first.
    pub fn deliver_new(&mut self, offset: u64, deadline: Instant, epoch: u64) -> bool {
        if offset < self.next || !self.has_room() {
            return false;
        }
        self.in_flight.insert(
            offset,
            InFlight {
                deadline,
                attempt: 1,
                epoch,
            },
        );
        self.next = offset + 1;
        self.settle();
        true
    }

    /// Everything below `offset` not yet handed out is done (filtered out, or deleted).
    pub fn skip_to(&mut self, offset: u64) {
        if offset > self.next {
            self.next = offset;
            self.settle();
        }
    }

    /// Hands an expired message out again; its attempt, or `None` if it is no longer expired.
    pub fn redeliver(
        &mut self,
        offset: u64,
        now: Instant,
        deadline: Instant,
        epoch: u64,
    ) -> Option<u32> {
        let entry = self.in_flight.get_mut(&offset)?;
        if entry.deadline > now {
            return None;
        }
        entry.attempt += 1;
        entry.deadline = deadline;
        entry.epoch = epoch;
        Some(entry.attempt)
    }

    /// Drops an in-flight offset whose record is gone (retention deleted it).
    pub fn forget(&mut self, offset: u64) {
        self.in_flight.remove(&offset);
        self.settle();
    }

    /// Everything below `min` is gone from the queue: nothing there can be handed out.
    pub fn retained_from(&mut self, min: u64) {
        self.in_flight = self.in_flight.split_off(&min);
        self.skip_to(min);
        self.settle();
    }

    fn check(&self, offset: u64, epoch: u64, now: Instant) -> Result<(), Stale> {
        let entry = self.in_flight.get(&offset).ok_or(Stale::NotInFlight)?;
        if entry.epoch != epoch {
            return Err(Stale::Superseded);
        }
        if entry.deadline <= now {
            return Err(Stale::Expired);
        }
        Ok(())
    }

    /// Acknowledges the message `offset` handed out with `epoch`.
    pub fn ack(&mut self, offset: u64, epoch: u64, now: Instant) -> Result<(), Stale> {
        self.check(offset, epoch, now)?;
        self.in_flight.remove(&offset);
        self.settle();
        Ok(())
    }

    /// Moves a message's invisibility to `deadline` under a new epoch (the old handle stops
    /// working).
    pub fn change_deadline(
        &mut self,
        offset: u64,
        epoch: u64,
        now: Instant,
        deadline: Instant,
        new_epoch: u64,
    ) -> Result<u32, Stale> {
        self.check(offset, epoch, now)?;
        let entry = self.in_flight.get_mut(&offset).expect("checked in flight");
        entry.deadline = deadline;
        entry.epoch = new_epoch;
        Ok(entry.attempt)
    }

    fn settle(&mut self) {
        self.base = self.in_flight.keys().next().copied().unwrap_or(self.next);
        assert!(
            self.base <= self.next
                && self
                    .in_flight
                    .keys()
                    .next_back()
                    .is_none_or(|last| *last < self.next),
            "POP state: base {} ≤ in flight < next {}",
            self.base,
            self.next
        );
    }
}

/// A deadline `invisible` from `now`, saturating.
pub fn deadline(now: Instant, invisible: Duration) -> Instant {
    now.checked_add(invisible)
        .unwrap_or(now + Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn the_committed_offset_is_the_oldest_message_not_yet_acknowledged() {
        let now = Instant::now();
        let mut q = PopQueue::starting_at(10);
        for (offset, epoch) in [(10, 1), (11, 2), (12, 3)] {
            assert!(q.deliver_new(offset, now + SEC, epoch));
        }
        assert_eq!((q.base(), q.next()), (10, 13));
        assert_eq!(q.ack(11, 2, now), Ok(()));
        assert_eq!(q.base(), 10, "10 is still in flight");
        assert_eq!(q.ack(10, 1, now), Ok(()));
        assert_eq!(q.base(), 12);
        assert_eq!(q.ack(10, 1, now), Err(Stale::NotInFlight), "twice");
        q.skip_to(20);
        assert_eq!((q.base(), q.next()), (12, 20));
        assert_eq!(q.ack(12, 3, now), Ok(()));
        assert_eq!(q.base(), 20, "filtered-out records count as done");
    }

    #[test]
    fn an_expired_message_comes_back_and_its_old_handle_stops_working() {
        let now = Instant::now();
        let mut q = PopQueue::starting_at(0);
        q.deliver_new(0, now + SEC, 7);
        assert!(q.expired(now, 10).is_empty());
        let later = now + 2 * SEC;
        assert_eq!(q.expired(later, 10), [0]);
        assert_eq!(q.ack(0, 7, later), Err(Stale::Expired));
        assert_eq!(q.redeliver(0, later, later + SEC, 8), Some(2));
        assert_eq!(
            q.redeliver(0, later, later + SEC, 9),
            None,
            "not expired now"
        );
        assert_eq!(q.ack(0, 7, later), Err(Stale::Superseded));
        assert_eq!(q.ack(0, 8, later), Ok(()));
        assert_eq!(q.base(), 1);
    }

    #[test]
    fn changing_the_invisibility_issues_a_new_handle() {
        let now = Instant::now();
        let mut q = PopQueue::starting_at(0);
        q.deliver_new(0, now + SEC, 1);
        assert_eq!(q.change_deadline(0, 1, now, now + 60 * SEC, 2), Ok(1));
        assert!(q.expired(now + 2 * SEC, 10).is_empty(), "kept invisible");
        assert_eq!(q.ack(0, 1, now), Err(Stale::Superseded));
        assert_eq!(q.ack(0, 2, now + 2 * SEC), Ok(()));
    }

    #[test]
    fn a_concurrent_receive_never_hands_the_same_offset_out_twice() {
        let now = Instant::now();
        let mut q = PopQueue::starting_at(0);
        assert!(q.deliver_new(0, now + SEC, 1));
        assert!(!q.deliver_new(0, now + SEC, 2), "taken already");
        q.ack(0, 1, now).unwrap();
        assert!(!q.deliver_new(0, now + SEC, 3), "acknowledged already");
    }

    #[test]
    fn in_flight_messages_are_bounded_and_retention_moves_the_start() {
        let now = Instant::now();
        let mut q = PopQueue::starting_at(0);
        for offset in 0..IN_FLIGHT_MAX as u64 {
            assert!(q.deliver_new(offset, now + SEC, offset));
        }
        assert!(!q.has_room());
        assert!(!q.deliver_new(IN_FLIGHT_MAX as u64, now + SEC, 0));
        q.retained_from(100);
        assert_eq!(
            q.base(),
            100,
            "what retention deleted is no longer in flight"
        );
        assert!(q.has_room());
        q.forget(100);
        assert_eq!(q.base(), 101);
    }
}
