//! Repairing the log in place after the writer failed (EIO, ENOSPC or anything else a write,
//! fdatasync or roll returned): the shard refuses appends while it lasts, keeps serving reads,
//! and writes again by itself once the repair succeeds — no restart.
//!
//! What a failure leaves: `synced <= written <= appended`, the failed segment writer's buffered
//! bytes lost, and the file's tail past `written` unknown. Every batch that ends past `written`
//! is still in the hot tail (it keeps what is not written), so the repair needs nothing from
//! the disk:
//!
//! 1. it waits (100 ms, doubling to 30 s while repairs keep failing), so writes the failed
//!    writer had in flight — cancelled when it was dropped — are over;
//! 2. the restart point `base` is the start of the first batch not wholly written (a batch
//!    boundary, `synced <= base <= written`: a sync always covers whole batches);
//! 3. in the store, at once (no await, so no append slips between): segments the failed run
//!    started past `base` leave the list, a fresh segment at `base` replaces or follows the one
//!    holding it, `written` moves back to `base`, and the writer is sent a
//!    [`crate::writer::WriteCommand::Resume`], then every batch from `base` on, then a sync;
//! 4. the writer removes those files, cuts the segment before `base` to end exactly at `base`
//!    and syncs it, syncs the directory, and opens the spare as the segment at `base`; then it
//!    writes the resent batches like any others.
//!
//! Invariants: positions and queue offsets never change (the indexes stay as they are);
//! nothing acknowledged lies past `base` (acks need `synced`, and `synced <= base`); after a
//! crash at any step only the last segment can end torn (later files go before the cut, the
//! cut is synced before the new segment gets bytes). The segment at `base` may outgrow the
//! configured size by what was unwritten (bounded by `unwritten_bytes_max`).
//!
//! Failure cases: a step that fails leaves the writer failed and the repair is retried; a
//! repair needs the spare, so on a full disk it waits for space like appends do. A produce
//! whose acknowledgement was pending when the writer failed was answered with the failure, yet
//! its batch is in the log once the repair succeeds: a client that retries it stores it twice
//! (at-least-once, as RocketMQ). A read racing the cut of bytes it planned from disk fails
//! once; the next one is served from memory.

use std::path::PathBuf;
use std::time::Duration;

use crate::durability::Written;
use crate::error::{Result, StorageError};
use crate::faults::FaultSite;
use crate::segment::Segment;
use crate::store::ShardStore;
use crate::writer::{self, LogState, OpenSegment, SpareState, WriteCommand, WriterConfig};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What the writer does to resume at `base` (computed by the store, applied by the writer).
#[derive(Debug)]
pub struct Repair {
    pub base: u64,
    /// The segment before `base`, cut to end exactly there: its path and new length.
    pub cut: Option<(PathBuf, u64)>,
    /// Segment files the failed run created at or past `base` (the new segment's path included
    /// when one is there: the spare replaces it).
    pub remove: Vec<PathBuf>,
    /// The spare the segment at `base` is made from (set when the repair is queued).
    pub spare: u64,
}

impl ShardStore {
    /// The store's repair task: repairs the log whenever the writer has failed, until the
    /// store closes.
    pub(crate) async fn repair_log_when_failed(&self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if !self.wait_for_writer_failure().await {
                return;
            }
            glommio::timer::sleep(backoff).await;
            if self.inner.closing.get() {
                return;
            }
            if self.try_repair().await {
                tracing::warn!(
                    shard = self.shard_id(),
                    "log repaired after the writer failed: appends resume"
                );
                backoff = BACKOFF_MIN;
            } else {
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// Waits until the writer has failed and no repair is under way (true), or the store
    /// closes (false).
    async fn wait_for_writer_failure(&self) -> bool {
        let log = &self.inner.log;
        loop {
            let listener = log.progress.listen();
            if self.inner.closing.get() || log.is_stopped() {
                return false;
            }
            if log.failure().is_some() && !log.resume_pending() {
                return true;
            }
            listener.await;
        }
    }

    /// One attempt: true once the writer resumed.
    async fn try_repair(&self) -> bool {
        let log = &self.inner.log;
        if !wait_for_spare(log).await || self.inner.closing.get() {
            return false;
        }
        self.queue_repair();
        loop {
            let listener = log.progress.listen();
            if !log.resume_pending() || log.is_stopped() {
                return log.failure().is_none() && !log.is_stopped();
            }
            listener.await;
        }
    }

    /// Steps 2 and 3 of the module doc, without an await.
    fn queue_repair(&self) {
        let inner = &self.inner;
        let durability = &inner.log.durability;
        let base = inner
            .hot_tail
            .borrow()
            .first_unwritten(durability.written().0);
        let log_dir = inner.config.dir.join("log");
        let repair = {
            let mut segments = inner.segments.borrow_mut();
            let mut remove: Vec<PathBuf> = segments
                .split_off_after(base)
                .iter()
                .map(|s| s.path.clone())
                .collect();
            let cut = segments
                .last_before(base)
                .map(|s| (s.path.clone(), base - s.base));
            let replaced = segments.last_base() == Some(base);
            segments.push(Segment::new(&log_dir, base));
            if replaced {
                remove.push(crate::segment::segment_path(&log_dir, base));
            }
            Repair {
                base,
                cut,
                remove,
                spare: 0,
            }
        };
        tracing::warn!(shard = self.shard_id(), base, unwritten = durability.appended().0 - base, repair = ?repair, "repairing the log: resuming at the first batch not wholly written");
        inner.open_segment.set(Some(base));
        durability.rewind_written(Written(base));
        let resend = inner.hot_tail.borrow().batches_from(base);
        inner.log.resume_onto_spare(repair);
        for (_, bytes) in resend {
            inner.log.submit(WriteCommand::Append(bytes));
        }
        self.resync_after_repair();
    }
}

/// Has the spare made (or learns it cannot be): true when it is ready.
async fn wait_for_spare(log: &LogState) -> bool {
    log.request_spare();
    loop {
        let listener = log.progress.listen();
        match log.spare() {
            SpareState::Ready => return true,
            SpareState::Failed(_) => return false,
            SpareState::Preparing if log.is_stopped() => return false,
            SpareState::Preparing => listener.await,
        }
    }
}

/// Step 4, in the writer task.
pub(crate) async fn apply(
    state: &LogState,
    config: &WriterConfig,
    open: &mut Option<OpenSegment>,
    repair: Repair,
) -> Result<()> {
    assert!(open.is_none(), "a repair starts without an open segment");
    assert_eq!(
        state.durability.written().0,
        repair.base,
        "the store rewound written to the repair's base"
    );
    state
        .faults
        .check(FaultSite::Repair)
        .map_err(|e| StorageError::io(&config.log_dir, e))?;
    for path in &repair.remove {
        match crate::file_io::remove(path).await {
            Err(e) if writer::os_error(&e) == Some(libc::ENOENT) => {}
            other => other.map_err(|e| StorageError::glommio(path, e))?,
        }
    }
    if let Some((path, len)) = &repair.cut {
        cut_segment(path, *len).await?;
    }
    crate::file_io::sync_dir(&config.log_dir)
        .await
        .map_err(|e| StorageError::glommio(&config.log_dir, e))?;
    *open = Some(writer::open_from_spare(state, config, repair.base, repair.spare).await?);
    Ok(())
}

/// Truncates a segment to `len` bytes and makes that durable.
async fn cut_segment(path: &std::path::Path, len: u64) -> Result<()> {
    let glommio_err = |e| StorageError::glommio(path, e);
    let file = crate::file_io::StoreFile::open_writable(path, crate::file_io::Writable::EXISTING)
        .await
        .map_err(glommio_err)?;
    let outcome = async {
        file.truncate(len).await?;
        file.fdatasync().await
    }
    .await;
    let _ = file.close().await;
    outcome.map_err(glommio_err)
}
