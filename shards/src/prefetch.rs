//! Pulls read ahead: after a pull served from disk, the store plans and reads the queue's next
//! pull at once (from where this one ends, with the same limits), so the disk works while this
//! reply travels and the consumer processes it. Without it a consumer catching up alternates
//! between waiting for the disk and waiting for the network.
//!
//! One slot per queue, at most `SLOTS_MAX` per shard (oldest dropped first), each an in-flight
//! or finished pull of at most `PREFETCH_BYTES_MAX`, so the memory held is bounded by
//! `SLOTS_MAX * PREFETCH_BYTES_MAX`. A slot serves only a pull with the same offset and limits;
//! anything else drops it (dropping the task cancels its reads). Runs on its shard's core.

use std::cell::RefCell;
use std::collections::VecDeque;

use glommio::Task;

use crate::error::Result;
use crate::read_plan::PlannedBatch;
use crate::recovery::QueueKey;

const SLOTS_MAX: usize = 16;

/// Pulls larger than this are not read ahead.
pub const PREFETCH_BYTES_MAX: u32 = 4 << 20;

/// What a pull read: the planned batches, their bytes, and whether any came from disk.
pub type PulledBatches = (Vec<PlannedBatch>, Vec<crate::read::StoredBatch>, bool);

/// The pull a slot holds: `(queue, offset, max_messages, max_bytes)`.
pub type PullKey = (QueueKey, u64, u32, u32);

struct Slot {
    key: PullKey,
    pull: Task<Result<PulledBatches>>,
}

#[derive(Default)]
pub struct Prefetcher {
    slots: RefCell<VecDeque<Slot>>,
}

impl Prefetcher {
    /// Takes the pull read ahead for exactly this request, if any. The queue's slot is emptied
    /// either way.
    pub fn take(&self, key: PullKey) -> Option<Task<Result<PulledBatches>>> {
        let mut slots = self.slots.borrow_mut();
        let at = slots.iter().position(|s| s.key.0 == key.0)?;
        let slot = slots.remove(at)?;
        (slot.key == key).then_some(slot.pull)
    }

    pub fn insert(&self, key: PullKey, pull: Task<Result<PulledBatches>>) {
        let mut slots = self.slots.borrow_mut();
        slots.retain(|s| s.key.0 != key.0);
        if slots.len() >= SLOTS_MAX {
            slots.pop_front();
        }
        slots.push_back(Slot { key, pull });
    }

    pub fn clear(&self) {
        self.slots.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(tag: u64) -> Task<Result<PulledBatches>> {
        glommio::spawn_local(async move {
            let plan = PlannedBatch {
                base_offset: tag,
                end_offset: tag + 1,
                position: 0,
                len: 64,
                selected: None,
            };
            Ok((vec![plan], vec![], true))
        })
    }

    #[test]
    fn a_slot_serves_only_the_exact_pull_and_is_emptied_by_any_other() {
        glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(|| async {
                let prefetcher = Prefetcher::default();
                let queue = (1, 2);
                prefetcher.insert((queue, 10, 100, 1 << 20), pull(10));
                assert!(
                    prefetcher.take((queue, 10, 100, 4096)).is_none(),
                    "other limits miss"
                );
                assert!(
                    prefetcher.take((queue, 10, 100, 1 << 20)).is_none(),
                    "the miss emptied the slot"
                );
                prefetcher.insert((queue, 20, 100, 1 << 20), pull(20));
                let (planned, _, _) = prefetcher
                    .take((queue, 20, 100, 1 << 20))
                    .unwrap()
                    .await
                    .unwrap();
                assert_eq!(planned[0].base_offset, 20);
                for q in 0..(SLOTS_MAX as u32 + 1) {
                    prefetcher.insert(((0, q), 0, 1, 1), pull(0));
                }
                assert!(
                    prefetcher.take(((0, 0), 0, 1, 1)).is_none(),
                    "the oldest slot made room"
                );
                assert!(prefetcher.take(((0, 1), 0, 1, 1)).is_some());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
