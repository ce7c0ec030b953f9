//! What a reader may see of a queue.
//!
//! Under `flush = async` a record is visible once appended (its acknowledgement was sent from
//! memory too, and a crash may take both back: the documented window). Under `flush = sync` a
//! record is visible only once an fdatasync covers its batch, the same moment its producer may
//! be acknowledged. Otherwise a consumer could read, and a group commit past, a record that a
//! `kill -9` takes back: after the restart its offset is given to the next batch, so the
//! consumer would have seen a message nobody acknowledged and would skip one that was.
//!
//! [`UnsyncedBatches`] holds, per queue, the batches appended but perhaps not yet synced, in log
//! order: `(first offset, end position)`. Invariants: both fields increase along the deque
//! (appends to one queue are in offset order and log order); entries whose end is at or below
//! the synced position are stale and are dropped on the next push. Size: at most the queue's
//! batches appended between two pushes after the last sync, i.e. one group commit's worth,
//! 16 bytes each. Empty, and never used, under `flush = async`.

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct UnsyncedBatches {
    pending: VecDeque<(u64, u64)>,
}

impl UnsyncedBatches {
    /// Records a batch that starts at queue offset `first_offset` and ends at log position
    /// `end_position`, dropping the batches `synced` already covers.
    pub fn push(&mut self, first_offset: u64, end_position: u64, synced: u64) {
        while self.pending.front().is_some_and(|&(_, end)| end <= synced) {
            self.pending.pop_front();
        }
        if let Some(&(last_offset, last_end)) = self.pending.back() {
            assert!(
                first_offset > last_offset && end_position > last_end,
                "a queue's batches are appended in offset and log order"
            );
        }
        self.pending.push_back((first_offset, end_position));
    }

    /// One past the last record a reader may see, for a queue of `len` records when the log
    /// is synced up to `synced`: the first offset of its first batch not wholly synced.
    pub fn visible_end(&self, len: u64, synced: u64) -> u64 {
        let covered = self.pending.partition_point(|&(_, end)| end <= synced);
        self.pending
            .get(covered)
            .map_or(len, |&(first_offset, _)| first_offset.min(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_visible_only_once_synced_and_stale_batches_leave() {
        let mut unsynced = UnsyncedBatches::default();
        assert_eq!(unsynced.visible_end(0, 0), 0);
        unsynced.push(0, 100, 0);
        unsynced.push(10, 200, 0);
        unsynced.push(20, 300, 0);
        assert_eq!(unsynced.visible_end(30, 0), 0);
        assert_eq!(unsynced.visible_end(30, 99), 0);
        assert_eq!(unsynced.visible_end(30, 100), 10);
        assert_eq!(unsynced.visible_end(30, 250), 20);
        assert_eq!(unsynced.visible_end(30, 300), 30);
        // A push after a sync drops what the sync covered.
        unsynced.push(30, 400, 200);
        assert_eq!(unsynced.pending.len(), 2);
        assert_eq!(unsynced.visible_end(40, 200), 20);
        assert_eq!(unsynced.visible_end(40, 400), 40);
    }
}
