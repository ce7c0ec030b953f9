//! Consumer offsets: how far each consumer group has consumed each queue this shard owns.
//!
//! Keys are `(group, topic_id, queue_id)`; a broadcasting member's own progress is stored under
//! the group name joined to its member id (`group@member`; group names cannot hold `@`). Values
//! are the next offset the group will consume.
//!
//! Invariants:
//! - a commit never moves an offset backward: a late commit from a member that has lost the
//!   queue in a rebalance cannot rewind the group; only an explicit [`ConsumerOffsets::reset`]
//!   (an operator's reset, to a time or an end) moves one back;
//! - the file `<shard dir>/offsets` is a `snapshot_file` replaced whole, written by the store's
//!   background task every flush interval when something changed and at close, so under
//!   `flush = async` a crash or `kill -9` loses at most the commits of the last interval, and
//!   never leaves a torn file;
//! - under `flush = sync` a commit is durable before it is answered: the caller awaits
//!   [`ConsumerOffsets::durable`], which returns once a write holding every change made before
//!   the call is synced (concurrent callers share one write: group commit). So an answered commit
//!   never moves backward across a crash. Changes are counted (`changes`), and the count a write
//!   captured before encoding is the one it makes durable (`persisted`).
//!
//! A file that fails its CRC is moved aside (`offsets.invalid`), said loudly in the log, and the
//! shard starts with no offsets: consumers fall back to their first-start policy. Runs on its
//! shard's core only.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::Result;
use crate::snapshot_file::{self, SnapshotRead};

const MAGIC: u32 = u32::from_le_bytes(*b"SMQO");
const VERSION: u32 = 1;
const FILE: &str = "offsets";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group: Rc<str>,
    pub topic_id: u32,
    pub queue_id: u32,
}

pub struct ConsumerOffsets {
    dir: PathBuf,
    offsets: RefCell<HashMap<OffsetKey, u64>>,
    /// Changes made since the store opened.
    changes: Cell<u64>,
    /// The `changes` count the file holds (as of the last completed write).
    persisted: Cell<u64>,
    /// Commits are answered only once durable (`flush = sync`).
    durable_commits: bool,
    /// One write at a time (the background flush and the close).
    writing: glommio::sync::Semaphore,
}

fn encode(offsets: &HashMap<OffsetKey, u64>) -> Vec<u8> {
    let mut entries: Vec<_> = offsets.iter().collect();
    entries.sort();
    let mut body = Vec::with_capacity(4 + entries.len() * 32);
    body.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (key, offset) in entries {
        body.extend_from_slice(&(key.group.len() as u16).to_le_bytes());
        body.extend_from_slice(key.group.as_bytes());
        body.extend_from_slice(&key.topic_id.to_le_bytes());
        body.extend_from_slice(&key.queue_id.to_le_bytes());
        body.extend_from_slice(&offset.to_le_bytes());
    }
    body
}

/// The offsets an offsets file's bytes hold, or `None` when they are not a whole valid file:
/// for readers outside the shard (tests, inspection), which must not hold its format.
pub fn decode_file(bytes: &[u8]) -> Option<HashMap<OffsetKey, u64>> {
    decode(snapshot_file::decode(MAGIC, VERSION, bytes).ok()?)
}

fn decode(body: &[u8]) -> Option<HashMap<OffsetKey, u64>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let bytes = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(bytes)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let mut offsets = HashMap::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        let group: Rc<str> = std::str::from_utf8(take(len)?).ok()?.into();
        let topic_id = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let queue_id = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let offset = u64::from_le_bytes(take(8)?.try_into().ok()?);
        offsets.insert(
            OffsetKey {
                group,
                topic_id,
                queue_id,
            },
            offset,
        );
    }
    (at == body.len()).then_some(offsets)
}

impl ConsumerOffsets {
    /// Loads `<dir>/offsets` (none yet is no offsets); with `durable_commits`, callers await
    /// [`ConsumerOffsets::durable`] before answering a change.
    pub async fn open(dir: &Path, durable_commits: bool) -> Result<ConsumerOffsets> {
        let offsets = match snapshot_file::read(dir, FILE, MAGIC, VERSION).await {
            SnapshotRead::Missing => HashMap::new(),
            SnapshotRead::Valid(body) => match decode(&body) {
                Some(offsets) => offsets,
                None => set_aside(dir, "its entries do not parse").await,
            },
            SnapshotRead::Invalid(why) => set_aside(dir, &why).await,
        };
        Ok(ConsumerOffsets {
            dir: dir.to_path_buf(),
            offsets: RefCell::new(offsets),
            changes: Cell::new(0),
            persisted: Cell::new(0),
            durable_commits,
            writing: glommio::sync::Semaphore::new(1),
        })
    }

    pub fn get(&self, key: &OffsetKey) -> Option<u64> {
        self.offsets.borrow().get(key).copied()
    }

    /// Records that the group consumed up to `offset`; an offset below the stored one is
    /// ignored (returns false).
    pub fn commit(&self, key: OffsetKey, offset: u64) -> bool {
        use std::collections::hash_map::Entry;
        let moved = match self.offsets.borrow_mut().entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(offset);
                true
            }
            Entry::Occupied(mut slot) if offset > *slot.get() => {
                slot.insert(offset);
                true
            }
            Entry::Occupied(_) => false,
        };
        if moved {
            self.changed();
        }
        moved
    }

    /// Sets an offset, backward too (an operator's reset).
    pub fn reset(&self, key: OffsetKey, offset: u64) {
        self.offsets.borrow_mut().insert(key, offset);
        self.changed();
    }

    /// Every stored offset that `keep` selects, in key order.
    pub fn entries(&self, keep: impl Fn(&OffsetKey) -> bool) -> Vec<(OffsetKey, u64)> {
        let mut entries: Vec<_> = self
            .offsets
            .borrow()
            .iter()
            .filter(|(key, _)| keep(key))
            .map(|(key, offset)| (key.clone(), *offset))
            .collect();
        entries.sort();
        entries
    }

    /// Forgets every offset `drop` selects (a deleted topic or group).
    pub fn remove(&self, drop: impl Fn(&OffsetKey) -> bool) {
        let mut offsets = self.offsets.borrow_mut();
        let before = offsets.len();
        offsets.retain(|key, _| !drop(key));
        if offsets.len() != before {
            self.changed();
        }
    }

    fn changed(&self) {
        self.changes.set(self.changes.get() + 1);
    }

    /// Lowers every offset past its queue's end (`end_of(topic_id, queue_id)`) to that end, and
    /// returns how many. Run at open: under `flush = async` a crash can lose acknowledged records
    /// that a commit written before it already passed; left alone, the group would skip the
    /// records produced at those offsets after the restart.
    pub fn clamp_to_ends(&self, end_of: impl Fn(u32, u32) -> u64) -> u64 {
        let mut clamped = 0;
        for (key, offset) in self.offsets.borrow_mut().iter_mut() {
            let end = end_of(key.topic_id, key.queue_id);
            if *offset > end {
                tracing::warn!(group = %key.group, topic_id = key.topic_id, queue_id = key.queue_id, committed = *offset, end, "consumer offset past the queue's end after recovery (records lost in a crash under flush=async); moved back to the end");
                *offset = end;
                clamped += 1;
            }
        }
        if clamped > 0 {
            self.changed();
        }
        clamped
    }

    /// Writes the file if anything changed since the last write.
    pub async fn persist(&self) -> Result<()> {
        let _one = self.writing.acquire_permit(1).await;
        let changes = self.changes.get();
        if self.persisted.get() >= changes {
            return Ok(());
        }
        let body = encode(&self.offsets.borrow());
        snapshot_file::write(&self.dir, FILE, MAGIC, VERSION, &body).await?;
        self.persisted.set(self.persisted.get().max(changes));
        Ok(())
    }

    /// Under `flush = sync`, resolves once every change made before the call is in the file
    /// (a failed write is the caller's error; the change stays in memory and the next write
    /// retries it). At once under `flush = async`.
    pub async fn durable(&self) -> Result<()> {
        if !self.durable_commits {
            return Ok(());
        }
        let wanted = self.changes.get();
        while self.persisted.get() < wanted {
            self.persist().await?;
        }
        Ok(())
    }
}

/// Moves an unreadable offsets file aside and says so; the shard starts without offsets.
async fn set_aside(dir: &Path, why: &str) -> HashMap<OffsetKey, u64> {
    let from = dir.join(FILE);
    let to = dir.join(format!("{FILE}.invalid"));
    tracing::error!(file = %from.display(), why, aside = %to.display(), "consumer offsets file is unreadable; consumers start from their first-start policy");
    if let Err(err) = crate::file_io::rename(&from, &to).await {
        tracing::error!(error = %err, "cannot move the unreadable offsets file aside");
    }
    HashMap::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, queue_id: u32) -> OffsetKey {
        OffsetKey {
            group: group.into(),
            topic_id: 1,
            queue_id,
        }
    }

    #[test]
    fn commits_only_move_forward_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let offsets = ConsumerOffsets::open(&path, false).await.unwrap();
                assert!(offsets.commit(key("g", 0), 10));
                assert!(!offsets.commit(key("g", 0), 7), "a commit never moves back");
                assert_eq!(offsets.get(&key("g", 0)), Some(10));
                offsets.reset(key("g", 0), 3);
                offsets.commit(key("g@m1", 1), 5);
                offsets.persist().await.unwrap();
                let reopened = ConsumerOffsets::open(&path, false).await.unwrap();
                assert_eq!(reopened.get(&key("g", 0)), Some(3));
                assert_eq!(reopened.get(&key("g@m1", 1)), Some(5));
                reopened.remove(|k| k.group.as_ref() == "g");
                assert_eq!(reopened.entries(|_| true).len(), 1);
                // Garbage in the file: moved aside, the shard starts empty.
                std::fs::write(path.join(FILE), b"garbage").unwrap();
                let empty = ConsumerOffsets::open(&path, false).await.unwrap();
                assert!(empty.entries(|_| true).is_empty());
                assert!(path.join("offsets.invalid").exists());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn durable_commits_are_in_the_file_when_answered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let lazy = ConsumerOffsets::open(&path, false).await.unwrap();
                lazy.commit(key("g", 0), 4);
                lazy.durable().await.unwrap();
                let reopened = ConsumerOffsets::open(&path, false).await.unwrap();
                assert_eq!(
                    reopened.get(&key("g", 0)),
                    None,
                    "async: written by the interval"
                );
                let offsets = ConsumerOffsets::open(&path, true).await.unwrap();
                offsets.commit(key("g", 0), 10);
                offsets.commit(key("g", 1), 20);
                offsets.durable().await.unwrap();
                let reopened = ConsumerOffsets::open(&path, true).await.unwrap();
                assert_eq!(reopened.get(&key("g", 0)), Some(10));
                assert_eq!(reopened.get(&key("g", 1)), Some(20));
                // Nothing changed: no write is needed, and none is attempted.
                std::fs::remove_file(path.join(FILE)).unwrap();
                offsets.durable().await.unwrap();
                assert!(!path.join(FILE).exists());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn offsets_past_a_queue_end_are_clamped_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let offsets = ConsumerOffsets::open(&path, false).await.unwrap();
                offsets.commit(key("g", 0), 10);
                offsets.commit(key("g", 1), 3);
                offsets.commit(key("g@m", 0), 12);
                let ends = |_topic, queue| if queue == 0 { 7 } else { 5 };
                assert_eq!(offsets.clamp_to_ends(ends), 2);
                assert_eq!(offsets.get(&key("g", 0)), Some(7));
                assert_eq!(offsets.get(&key("g@m", 0)), Some(7));
                assert_eq!(offsets.get(&key("g", 1)), Some(3));
                assert_eq!(offsets.clamp_to_ends(ends), 0);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn decode_refuses_truncation() {
        let mut offsets = HashMap::new();
        offsets.insert(key("group", 3), 42);
        let body = encode(&offsets);
        assert_eq!(decode(&body), Some(offsets));
        for cut in 0..body.len() {
            assert_eq!(decode(&body[..cut]), None, "cut at {cut}");
        }
    }
}
