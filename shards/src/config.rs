//! Configuration of one shard's store, with the relations between sizes checked in one place.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::StorageError;
use crate::retention::RetentionConfig;

/// When a produce is acknowledged, and how the log reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Ack once appended (in memory, readable); fdatasync every `interval`.
    Async { interval: Duration },
    /// Ack once an fdatasync covers the batch; one fdatasync serves every batch waiting for it.
    Sync,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub shard_id: u32,
    /// The shard's own directory: `<data-dir>/shards/<shard_id>`.
    pub dir: PathBuf,
    /// A segment is rolled before a batch would take it past this size (a batch larger than a
    /// segment gets a segment of its own). Multiple of 4 KiB.
    pub segment_bytes: u64,
    pub flush: FlushMode,
    /// Memory for recent batches (see `hot_tail`).
    pub hot_tail_bytes: usize,
    /// The write-behind budget: appends wait while more than this many bytes are appended but
    /// not yet written (they are held in memory, in the hot tail beyond its size, until they
    /// are). Under `flush = async` it is also what a `kill -9` can lose. `None`: half the hot
    /// tail.
    pub write_behind_bytes: Option<u64>,
    /// DMA write buffer of the log writer, and how many may be in flight.
    pub write_buffer_bytes: usize,
    pub write_behind_buffers: usize,
    /// Index chunks (4096 entries, 64 KiB) kept in memory per queue.
    pub index_resident_chunks: usize,
    /// How often indexes are persisted and the recovery checkpoint advanced.
    pub checkpoint_interval: Duration,
    /// How often changed consumer offsets are written (what a crash can lose at most).
    pub offsets_flush_interval: Duration,
    /// An append that has waited this long for room (too much unwritten, or the next segment
    /// still being reserved) is refused with [`StorageError::Busy`]: the producer hears early
    /// that the shard is saturated (RocketMQ's SYSTEM_BUSY after its 1 s page-cache-busy
    /// timeout), well inside a client's send timeout, instead of timing out. Nothing of it is
    /// stored.
    pub busy_after: Duration,
    /// What is deleted when (see `retention`).
    pub retention: RetentionConfig,
}

impl StoreConfig {
    pub fn new(shard_id: u32, dir: PathBuf) -> Self {
        StoreConfig {
            shard_id,
            dir,
            segment_bytes: 1 << 30,
            flush: FlushMode::Async {
                interval: Duration::from_millis(500),
            },
            hot_tail_bytes: 64 << 20,
            write_behind_bytes: None,
            write_buffer_bytes: 1 << 20,
            write_behind_buffers: 4,
            index_resident_chunks: 16,
            checkpoint_interval: Duration::from_secs(2),
            offsets_flush_interval: Duration::from_secs(1),
            busy_after: Duration::from_secs(1),
            retention: RetentionConfig::default(),
        }
    }

    pub fn validate(&self) -> Result<(), StorageError> {
        let fail = |m: String| Err(StorageError::Config(m));
        if self.segment_bytes < 64 * 1024 || !self.segment_bytes.is_multiple_of(4096) {
            return fail(format!(
                "segment size {} must be a multiple of 4096 and at least 64 KiB",
                self.segment_bytes
            ));
        }
        if self.write_buffer_bytes < 4096 || !self.write_buffer_bytes.is_multiple_of(4096) {
            return fail(format!(
                "write buffer {} must be a multiple of 4096",
                self.write_buffer_bytes
            ));
        }
        let in_writer = self.write_buffer_bytes * (self.write_behind_buffers + 1);
        if self.hot_tail_bytes < 4 * in_writer {
            return fail(format!(
                "hot tail of {} bytes must be at least 4x what the writer holds ({in_writer} bytes)",
                self.hot_tail_bytes
            ));
        }
        if self.unwritten_bytes_max() < 2 * in_writer as u64 {
            return fail(format!(
                "write-behind budget of {} bytes must be at least 2x what the writer holds ({in_writer} bytes)",
                self.unwritten_bytes_max()
            ));
        }
        let marks = &self.retention.marks;
        let ordered = 0.0 <= marks.warn_percent
            && marks.warn_percent <= marks.force_clean_percent
            && marks.force_clean_percent <= marks.refuse_percent;
        if !ordered {
            return fail(format!(
                "disk marks must satisfy 0 <= warn {} <= force clean {} <= refuse {} (above 100: never)",
                marks.warn_percent, marks.force_clean_percent, marks.refuse_percent
            ));
        }
        if self.retention.segments_per_pass == 0 || self.retention.interval.is_zero() {
            return fail(
                "retention must run at an interval and delete at least one segment per pass".into(),
            );
        }
        if self.index_resident_chunks < 2 {
            return fail("index_resident_chunks must be at least 2".into());
        }
        Ok(())
    }

    /// Appends wait while more than this many bytes are appended but not yet written.
    pub fn unwritten_bytes_max(&self) -> u64 {
        self.write_behind_bytes
            .unwrap_or((self.hot_tail_bytes / 2) as u64)
    }
}
