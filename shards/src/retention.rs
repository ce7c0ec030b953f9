//! Retention: whole sealed segments are deleted, oldest first, by age, by the shard's size
//! limit and by the disk's water marks; the queues' starts move past what was deleted.
//!
//! Rules (RocketMQ's `fileReservedTime`, `diskMaxUsedSpaceRatio`,
//! `diskSpaceCleanForciblyRatio`, `diskSpaceWarningLevelRatio`; see [`RetentionConfig`]):
//! - a sealed segment older than `max_age` (by its file's modification time: its last write)
//!   is deleted. RocketMQ deletes expired files only at `deleteWhen` (04:00) unless the disk is
//!   above 75%, because its deletions stall sends; here they run continuously, one segment at a
//!   time, on the shard's background task queue, so the 75% mark only warns;
//! - while the shard's log is larger than `max_bytes`, its oldest sealed segment is deleted;
//! - while the data directory's filesystem is at or above `force_clean_percent`, the oldest
//!   sealed segment is deleted even when it has not expired;
//! - at or above `refuse_percent`, the store refuses appends (reads go on) until usage falls
//!   below it again.
//!
//! Invariants:
//! - the open segment (the last listed) is never deleted, nor a sealed one before the writer
//!   synced its end: only whole, synced, sealed segments go;
//! - a queue's start moves before its segment leaves the list, so no new read is planned into
//!   it; a read planned before finishes from the file handle it holds (unlinked files stay
//!   readable) or answers "offset too small";
//! - deleting records a consumer group has not consumed is logged with the group and the range.
//! - one pass at a time (`retention_lock`): a pass decides what to delete, awaits (a stat, index
//!   lookups), then deletes, so a second pass interleaving would delete what the first checked;
//! - a segment is unlinked under the checkpoint lock, after its read handle is open (glommio
//!   0.9 panics when a path vanishes during an open);
//! - its blocks are then freed from the end a chunk at a time (one unlink of a 1 GiB file frees
//!   it in one filesystem transaction, which holds up the log's writes), so a read planned
//!   before the deletion may find its bytes gone: it answers "offset too small" like the rest.
//!
//! Limits: at most `segments_per_pass` segments per pass, so a shard that must free a lot
//! spreads the work over passes instead of holding its core.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Result, StorageError};
use crate::index::release_below_first;
use crate::recovery::{gallop_first_where, probe_at, QueueKey};
use crate::store::ShardStore;

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Sealed segments older than this are deleted (RocketMQ: 72 h). `None`: kept forever.
    pub max_age: Option<Duration>,
    /// The shard's log is kept under this many bytes. `None`: no limit.
    pub max_bytes: Option<u64>,
    /// How often a pass runs (RocketMQ's cleanResourceInterval: 10 s).
    pub interval: Duration,
    pub segments_per_pass: usize,
    pub marks: DiskMarks,
}

/// At most this much of a deleted segment's blocks is freed by one truncation (a sixteenth of
/// the segment when that is less, so small test segments take the same path), with a pause
/// between two.
const FREE_CHUNK_BYTES_MAX: u64 = 64 << 20;
const FREE_PAUSE: Duration = Duration::from_millis(2);

/// Frees an unlinked segment's blocks from its end, a chunk at a time, then closes it (which
/// frees the rest). One unlink of a whole 1 GiB segment frees it in one filesystem transaction,
/// which stalls the log's writes meanwhile; small truncations spread that out.
async fn free_gradually(file: crate::file_io::StoreFile, len: u64) {
    let chunk = (len / 16).clamp(4096, FREE_CHUNK_BYTES_MAX);
    let mut left = len;
    while left > chunk {
        left -= chunk;
        if let Err(err) = file.truncate(left).await {
            tracing::warn!(error = %err, "freeing a deleted segment gradually failed; closing it frees the rest");
            break;
        }
        glommio::timer::sleep(FREE_PAUSE).await;
    }
    let _ = file.close().await;
}

/// Percentages of the data directory's filesystem in use (`(total - free) / total`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskMarks {
    /// A warning in the log (RocketMQ starts deleting expired files early here).
    pub warn_percent: f64,
    /// The oldest sealed segments are deleted even when not expired.
    pub force_clean_percent: f64,
    /// Appends are refused.
    pub refuse_percent: f64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Some(Duration::from_secs(72 * 3600)),
            max_bytes: None,
            interval: Duration::from_secs(10),
            segments_per_pass: 8,
            marks: DiskMarks {
                warn_percent: 75.0,
                force_clean_percent: 85.0,
                refuse_percent: 90.0,
            },
        }
    }
}

/// Why a segment was deleted, for the log.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reason {
    Expired { age: Duration },
    OverSizeLimit { log_bytes: u64 },
    DiskAboveMark { used_percent: f64 },
}

/// The filesystem holding a directory, from one `statvfs` (a read of the kernel's counters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskUsage {
    /// `(total - free) / total`, in percent (RocketMQ's measure).
    pub used_percent: f64,
    /// What an unprivileged writer may still use.
    pub free_bytes: u64,
}

/// `None` if `statvfs` fails or reports an empty filesystem.
pub fn disk_usage(dir: &Path) -> Option<DiskUsage> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into a struct we own; the path is NUL-terminated.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(path.as_ptr(), &mut stat) == 0).then_some(stat)
    }?;
    let total = stat.f_blocks as f64;
    (total > 0.0).then(|| DiskUsage {
        used_percent: (total - stat.f_bfree as f64) * 100.0 / total,
        free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
    })
}

impl ShardStore {
    /// One retention pass: updates the disk refusal, then deletes what the rules say, up to
    /// `segments_per_pass` segments. Returns how many were deleted.
    pub async fn retention_pass(&self) -> Result<usize> {
        let _one_pass = self
            .inner
            .retention_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed(self.shard_id()))?;
        let config = self.inner.config.retention.clone();
        // A spare that could not be reserved is retried here (space may be back).
        self.inner.log.request_spare();
        let mut deleted = 0;
        while deleted < config.segments_per_pass {
            let used = disk_usage(self.dir()).map(|d| d.used_percent);
            self.update_disk_refusal(used, &config.marks);
            let Some(reason) = self.oldest_sealed_must_go(&config, used).await else {
                break;
            };
            self.delete_oldest_segment(reason).await?;
            deleted += 1;
            self.inner.log.request_spare();
            glommio::yield_if_needed().await;
        }
        Ok(deleted)
    }

    fn update_disk_refusal(&self, used: Option<f64>, marks: &DiskMarks) {
        let Some(used) = used else { return };
        let refusing = used >= marks.refuse_percent;
        let was = self.inner.disk_refusal.replace(refusing.then_some(used));
        match (was.is_some(), refusing) {
            (false, true) => {
                tracing::error!(shard = self.shard_id(), dir = %self.dir().display(), used_percent = used, limit = marks.refuse_percent, "disk nearly full: the shard refuses writes; reads go on")
            }
            (true, false) => {
                tracing::warn!(
                    shard = self.shard_id(),
                    used_percent = used,
                    "disk usage back under the limit: the shard takes writes again"
                )
            }
            _ if used >= marks.warn_percent && !refusing => {
                tracing::warn!(
                    shard = self.shard_id(),
                    used_percent = used,
                    warn = marks.warn_percent,
                    "disk filling up"
                )
            }
            _ => {}
        }
    }

    /// Why the oldest sealed segment must be deleted now, or `None` to keep it.
    async fn oldest_sealed_must_go(
        &self,
        config: &RetentionConfig,
        used: Option<f64>,
    ) -> Option<Reason> {
        let (path, next_base, first_base) = {
            let segments = self.inner.segments.borrow();
            let mut it = segments.iter();
            let oldest = it.next()?;
            let next = it.next()?;
            (oldest.path.clone(), next.base, oldest.base)
        };
        // The writer closes (and syncs) a segment before it starts the next.
        if self.inner.log.durability.synced().0 < next_base {
            return None;
        }
        if let Some(used) = used.filter(|u| *u >= config.marks.force_clean_percent) {
            return Some(Reason::DiskAboveMark { used_percent: used });
        }
        let log_bytes = self.inner.log.durability.appended().0 - first_base;
        if config.max_bytes.is_some_and(|max| log_bytes > max) {
            return Some(Reason::OverSizeLimit { log_bytes });
        }
        let max_age = config.max_age?;
        // A stat off the executor (its blocking pool): nothing blocks a shard's core.
        let modified = glommio::executor()
            .spawn_blocking(move || std::fs::metadata(path).and_then(|m| m.modified()))
            .await
            .ok()?;
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        (age > max_age).then_some(Reason::Expired { age })
    }

    /// Moves every queue's start past the oldest segment, then drops and deletes it.
    async fn delete_oldest_segment(&self, reason: Reason) -> Result<()> {
        let (base, new_start) = {
            let segments = self.inner.segments.borrow();
            let mut it = segments.iter();
            let base = it.next().expect("checked by the caller").base;
            (base, it.next().expect("checked by the caller").base)
        };
        let queues = self.queue_indexes();
        for (key, index) in &queues {
            let old_first = index.borrow().first();
            if old_first >= index.borrow().len()
                || probe_at(index, old_first)
                    .await?
                    .is_some_and(|e| e.position >= new_start)
            {
                continue;
            }
            // One segment's worth past the old start: a gallop stays in the chunks near it.
            let new_first =
                gallop_first_where(index, old_first, |e| e.position >= new_start).await?;
            index.borrow_mut().advance_first(new_first);
            self.log_unconsumed(*key, old_first, new_first);
        }
        // A segment's read handle is opened by path (by a checkpoint, or a read's first touch),
        // and glommio 0.9 panics when the path disappears during an open (it unwraps a statfs
        // of the path after opening). So: no checkpoint runs while the file goes, and the
        // handle is opened now, before the unlink — after any open already in flight, which
        // `ensure_reader` waits for — so no read opens it by path later.
        let no_checkpoint = self
            .inner
            .checkpoint_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed(self.shard_id()))?;
        let oldest = self.inner.segments.borrow().iter().next().cloned();
        if let Some(oldest) = oldest {
            oldest.ensure_reader().await?;
        }
        let segment = self
            .inner
            .segments
            .borrow_mut()
            .pop_first()
            .expect("the oldest segment is listed");
        assert_eq!(
            segment.base, base,
            "retention deletes the segment it checked"
        );
        tracing::info!(shard = self.shard_id(), segment = %segment.path.display(), bytes = new_start - base, reason = ?reason, "retention deleted a segment");
        let glommio_err = |e| StorageError::glommio(&segment.path, e);
        let handle = crate::file_io::StoreFile::open_writable(
            &segment.path,
            crate::file_io::Writable::EXISTING,
        )
        .await
        .map_err(glommio_err)?;
        crate::file_io::remove(&segment.path)
            .await
            .map_err(glommio_err)?;
        drop(no_checkpoint);
        segment.mark_deleted();
        crate::stats::add(&self.inner.log.stats.segments_deleted, 1);
        free_gradually(handle, new_start - base).await;
        drop(segment); // its read handle closes once no read holds it
        for (_, index) in &queues {
            if let Err(err) = release_below_first(index).await {
                tracing::warn!(shard = self.shard_id(), error = %err, "could not release deleted index chunks; the file keeps their space");
            }
        }
        Ok(())
    }

    /// Logs each consumer group that had not consumed `[old_first, new_first)` of the queue.
    fn log_unconsumed(&self, (topic_id, queue_id): QueueKey, old_first: u64, new_first: u64) {
        let behind = self
            .inner
            .consumer_offsets
            .entries(|k| k.topic_id == topic_id && k.queue_id == queue_id);
        for (key, committed) in behind.into_iter().filter(|(_, o)| *o < new_first) {
            tracing::warn!(
                shard = self.shard_id(),
                group = %key.group,
                topic_id,
                queue_id,
                from = committed.max(old_first),
                to = new_first,
                "retention deleted messages the consumer group had not consumed"
            );
        }
    }
}
