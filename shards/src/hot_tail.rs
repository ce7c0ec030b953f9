//! The hot tail: the shard's most recent batches kept in memory, so consumers that keep up are
//! served without touching the disk, and so that bytes not yet written to the segment file are
//! still readable.
//!
//! Invariants:
//! - batches are contiguous in log position: each pushed batch starts where the last one ended;
//! - a batch leaves only once its bytes are written to the file (`end <= written`), so every
//!   position below `appended` is readable either here or from disk;
//! - `bytes` stays near `capacity_bytes`; it may exceed it only by unwritten data, which the
//!   store bounds with backpressure.

use std::collections::VecDeque;

use bytes::Bytes;

pub struct HotTail {
    batches: VecDeque<(u64, Bytes)>,
    bytes: usize,
    capacity_bytes: usize,
}

impl HotTail {
    pub fn new(capacity_bytes: usize) -> Self {
        HotTail {
            batches: VecDeque::new(),
            bytes: 0,
            capacity_bytes,
        }
    }

    pub fn push(&mut self, position: u64, batch: Bytes) {
        if let Some((last_pos, last)) = self.batches.back() {
            assert_eq!(
                last_pos + last.len() as u64,
                position,
                "hot tail must stay contiguous"
            );
        }
        assert!(!batch.is_empty(), "an empty batch in the hot tail");
        self.bytes += batch.len();
        self.batches.push_back((position, batch));
    }

    /// The batch that starts exactly at `position`, if it is still here.
    pub fn get(&self, position: u64) -> Option<Bytes> {
        let (front, _) = self.batches.front()?;
        if position < *front {
            return None;
        }
        let at = self
            .batches
            .binary_search_by_key(&position, |(p, _)| *p)
            .ok()?;
        self.batches.get(at).map(|(_, b)| b.clone())
    }

    /// Drops the oldest batches while over capacity, never one that is not yet written.
    pub fn evict(&mut self, written: u64) {
        while self.bytes > self.capacity_bytes {
            let Some((pos, batch)) = self.batches.front() else {
                break;
            };
            if pos + batch.len() as u64 > written {
                break;
            }
            self.bytes -= batch.len();
            self.batches.pop_front();
        }
    }

    /// Where the first batch not wholly written starts (`written` itself when every batch is):
    /// where a log repair rewrites from.
    pub fn first_unwritten(&self, written: u64) -> u64 {
        self.batches
            .iter()
            .find(|(pos, batch)| pos + batch.len() as u64 > written)
            .map_or(written, |(pos, _)| *pos)
    }

    /// Every batch from `position` on, which must start a batch here (or be the end).
    pub fn batches_from(&self, position: u64) -> Vec<(u64, Bytes)> {
        let at = self.batches.partition_point(|(p, _)| *p < position);
        let tail: Vec<_> = self.batches.range(at..).cloned().collect();
        assert!(
            tail.first().is_none_or(|(p, _)| *p == position),
            "{position} does not start a batch in the hot tail"
        );
        tail
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unwritten_and_evicts_written() {
        let mut tail = HotTail::new(100);
        tail.push(0, Bytes::from(vec![1u8; 60]));
        tail.push(60, Bytes::from(vec![2u8; 60]));
        tail.evict(0);
        assert!(tail.get(0).is_some(), "unwritten batch must stay");
        tail.evict(60);
        assert!(tail.get(0).is_none());
        assert_eq!(tail.get(60).map(|b| b[0]), Some(2));
        assert!(tail.get(61).is_none());
        assert_eq!(tail.bytes(), 60);
    }

    #[test]
    fn a_repair_restarts_at_the_batch_holding_the_written_end() {
        let mut tail = HotTail::new(1000);
        tail.push(0, Bytes::from(vec![1u8; 60]));
        tail.push(60, Bytes::from(vec![2u8; 60]));
        assert_eq!(tail.first_unwritten(70), 60);
        assert_eq!(tail.first_unwritten(60), 60);
        assert_eq!(tail.first_unwritten(120), 120);
        let from: Vec<u64> = tail.batches_from(60).iter().map(|(p, _)| *p).collect();
        assert_eq!(from, [60]);
        assert!(tail.batches_from(120).is_empty());
    }

    #[test]
    #[should_panic(expected = "contiguous")]
    fn gaps_are_refused() {
        let mut tail = HotTail::new(100);
        tail.push(0, Bytes::from(vec![1u8; 10]));
        tail.push(11, Bytes::from(vec![1u8; 10]));
    }
}
