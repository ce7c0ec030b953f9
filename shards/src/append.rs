//! Appending to a shard's log: [`ShardStore::append`] and what decides when its acknowledgement
//! may go out ([`ShardStore::acknowledgeable`]).
//!
//! An append takes a [`ValidatedBatch`] (the front end validated it once; nothing is parsed
//! again here), gives it the next log position and queue offsets, stamps the broker's header
//! fields in place and then hands the same bytes to the hot tail, the index and the writer.
//! Everything from the position to the writer submission happens without an await, so appends
//! of one shard are ordered exactly as they were called.
//!
//! Limits: an append waits while more than `unwritten_bytes_max` bytes are appended but not
//! written (backpressure on producers), and fails at once when the store is closing, or is
//! refusing writes (a full disk, or its writer failed and `log_repair` is at work).

use std::cell::RefCell;
use std::rc::Rc;

use shardmq_protocol::batch::Stamp;
use shardmq_protocol::ValidatedBatch;

use crate::config::FlushMode;
use crate::durability::Appended;
use crate::error::{Result, StorageError};
use crate::index::{persist, BatchEntries, QueueIndex};
use crate::recovery::QueueKey;
use crate::segment::Segment;
use crate::store::{now_ms, ShardStore};
use crate::writer::{SpareState, WriteCommand};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: u64,
    pub count: u32,
    /// The batch's log position (its first byte).
    pub position: u64,
    /// The store time stamped on every record of the batch.
    pub store_ms: u64,
    /// The log position just past the batch: pass it to [`ShardStore::acknowledgeable`].
    pub end: Appended,
}

/// When an append first had to wait for room, and whether for the spare.
#[derive(Default)]
struct RoomWait {
    /// Paced, or waiting for room: since when.
    since: Option<std::time::Instant>,
    /// Waited for room (past the pacing), and whether that began for the spare.
    for_room: bool,
    for_spare: bool,
}

impl ShardStore {
    fn check_writable(&self) -> Result<()> {
        if self.inner.closing.get() {
            return Err(StorageError::Closed(self.shard_id()));
        }
        if let Some(used) = self.inner.disk_refusal.get() {
            let marks = &self.inner.config.retention.marks;
            return Err(StorageError::WritesRefused {
                shard_id: self.shard_id(),
                reason: format!(
                    "the disk holding {} is {used:.1}% full (writes stop at {}%)",
                    self.dir().display(),
                    marks.refuse_percent
                ),
            });
        }
        match self.inner.log.check_failed() {
            Err(StorageError::WriterFailed { message, .. }) => Err(StorageError::WritesRefused {
                shard_id: self.shard_id(),
                reason: format!("the log writer failed ({message}) and the log is being repaired"),
            }),
            other => other,
        }
    }

    /// Waits while too much is appended but unwritten (backpressure on producers), and while
    /// the next segment a batch of `len` bytes needs is being reserved; refuses when it could not
    /// be (the disk is full), and as busy once it has waited `busy_after`.
    async fn wait_for_room(&self, len: u64) -> Result<()> {
        let mut waited = RoomWait::default();
        self.pace(len, &mut waited).await?;
        let outcome = self.wait_for_room_noting(len, &mut waited).await;
        if let Some(since) = waited.since {
            let stats = &self.inner.log.stats;
            stats.room_wait.observe(since.elapsed());
            if waited.for_spare {
                crate::stats::add(&stats.room_waits_for_spare, 1);
            }
        }
        outcome
    }

    /// Past half the write-behind budget, waits for this append's turn at the disk's rate
    /// (see `pacing`); an append the store would refuse is refused without waiting.
    async fn pace(&self, len: u64, waited: &mut RoomWait) -> Result<()> {
        let now = std::time::Instant::now();
        let d = &self.inner.log.durability;
        let (written, appended) = (d.written().0, d.appended().0);
        let budget = self.inner.config.unwritten_bytes_max();
        let unwritten = appended.saturating_sub(written);
        if unwritten + len > budget / 2 {
            // Past the soft mark (where pacing may delay): refused appends take no turn.
            self.check_writable()?;
        }
        let delay = self
            .inner
            .pacer
            .borrow_mut()
            .admit(now, len, written, unwritten, budget);
        if let Some(delay) = delay {
            waited.since = Some(now);
            glommio::timer::sleep(delay).await;
        }
        Ok(())
    }

    /// [`ShardStore::wait_for_room`], noting in `waited` when it first had to wait, and why.
    async fn wait_for_room_noting(&self, len: u64, waited: &mut RoomWait) -> Result<()> {
        let max = self.inner.config.unwritten_bytes_max();
        let mut deadline = None;
        loop {
            self.check_writable()?;
            let d = &self.inner.log.durability;
            let room = d.appended().0 - d.written().0 <= max;
            let spare = self
                .needs_roll(d.appended().0, len)
                .then(|| self.inner.log.spare());
            match spare {
                None | Some(SpareState::Ready) if room => return Ok(()),
                Some(SpareState::Failed(reason)) => {
                    self.inner.log.request_spare_soon();
                    return Err(StorageError::WritesRefused {
                        shard_id: self.shard_id(),
                        reason,
                    });
                }
                _ => {}
            }
            let listener = self.inner.log.progress.listen();
            let spare_settled = !self.needs_roll(d.appended().0, len)
                || self.inner.log.spare() != SpareState::Preparing;
            if (d.appended().0 - d.written().0 <= max && spare_settled)
                || self.inner.log.check_failed().is_err()
            {
                continue;
            }
            if !waited.for_room {
                waited.for_room = true;
                waited.since.get_or_insert_with(std::time::Instant::now);
                waited.for_spare = !spare_settled;
            }
            let busy_after = self.inner.config.busy_after;
            let deadline = *deadline.get_or_insert_with(|| std::time::Instant::now() + busy_after);
            let now = std::time::Instant::now();
            let progressed =
                now < deadline && crate::store::woken_before(listener, deadline - now).await;
            if !progressed {
                return Err(StorageError::Busy {
                    shard_id: self.shard_id(),
                    waited_ms: busy_after.as_millis() as u64,
                });
            }
        }
    }

    /// Appends one validated batch to queue `(topic_id, queue_id)`. Returns once the batch is
    /// appended (visible to reads under `flush = async`, once synced under `flush = sync`); when
    /// its acknowledgement may be sent is [`ShardStore::acknowledgeable`]'s answer.
    pub async fn append(
        &self,
        topic_id: u32,
        queue_id: u32,
        batch: ValidatedBatch,
    ) -> Result<AppendOutcome> {
        let header = *batch.header();
        let len = u64::from(header.batch_len);
        if let Err(err) = self.wait_for_room(len).await {
            match err {
                StorageError::WritesRefused { .. } => {
                    crate::stats::add(&self.inner.log.stats.appends_refused, 1)
                }
                StorageError::Busy { .. } => {
                    crate::stats::add(&self.inner.log.stats.appends_busy, 1)
                }
                _ => {}
            }
            return Err(err);
        }
        let inner = &self.inner;
        assert_eq!(
            len as usize,
            batch.len(),
            "a validated batch is as long as its header says"
        );
        let position = inner.log.durability.appended().0;
        assert_eq!(position % 16, 0, "batches start 16-byte aligned in the log");
        self.roll_if_full(position, len);
        let key = (topic_id, queue_id);
        let index = self.queue_or_create(key);
        let base_offset = index.borrow().len();
        let store_ms = now_ms();
        let entries = BatchEntries {
            position,
            batch_len: header.batch_len,
            tag_codes: batch.tag_codes(),
            store_ms,
        };
        index.borrow_mut().push_batch(&entries);
        if inner.config.flush == FlushMode::Sync {
            let synced = inner.log.durability.synced().0;
            index
                .borrow_mut()
                .unsynced_batches
                .push(base_offset, position + len, synced);
        }
        let bytes = batch.stamp(Stamp {
            topic_id,
            queue_id,
            base_offset,
            append_timestamp_ms: store_ms,
        });
        inner.hot_tail.borrow_mut().push(position, bytes.clone());
        self.flush_index_if_needed(key, &index);
        let end = Appended(position + len);
        inner.log.durability.advance_appended(end);
        inner.log.submit(WriteCommand::Append(bytes));
        if inner.config.flush == FlushMode::Sync {
            // Readers see the batch once synced (`visibility`), acknowledged or not (a oneway
            // produce): every append under `flush = sync` asks for the sync that covers it.
            self.request_sync();
        }
        inner
            .hot_tail
            .borrow_mut()
            .evict(inner.log.durability.written().0);
        inner.appended_event.notify(usize::MAX);
        Ok(AppendOutcome {
            base_offset,
            count: header.record_count,
            position,
            store_ms,
            end,
        })
    }

    /// True when a batch of `len` bytes at `position` needs a new segment: none is open since
    /// the store opened, or it would take the open one past the segment size (a batch larger
    /// than a segment gets one of its own).
    fn needs_roll(&self, position: u64, len: u64) -> bool {
        match self.inner.open_segment.get() {
            None => true,
            Some(base) => {
                position > base && position - base + len > self.inner.config.segment_bytes
            }
        }
    }

    /// Starts a new segment at `position` when the batch needs one. `wait_for_room` saw the
    /// spare ready, with no await since.
    fn roll_if_full(&self, position: u64, len: u64) {
        if !self.needs_roll(position, len) {
            return;
        }
        let inner = &self.inner;
        inner
            .segments
            .borrow_mut()
            .push(Segment::new(&inner.config.dir.join("log"), position));
        inner.log.roll_onto_spare(position);
        inner.open_segment.set(Some(position));
    }

    /// Resolves once the append that ended at `end` may be acknowledged: at once under
    /// `flush = async` (appended is enough), once an fdatasync covers it under `flush = sync`.
    pub async fn acknowledgeable(&self, end: Appended) -> Result<()> {
        match self.inner.config.flush {
            FlushMode::Async { .. } => Ok(()),
            FlushMode::Sync => self.wait_synced(end).await,
        }
    }

    /// True when acknowledgements wait for the disk (`flush = sync`): a front end then queues
    /// the reply gated on [`ShardStore::acknowledgeable`] instead of awaiting it in line, so the
    /// next batches share the fdatasync.
    pub fn acknowledgement_waits(&self) -> bool {
        self.inner.config.flush == FlushMode::Sync
    }

    /// Persists an index in the background once its unwritten full chunks reach half its
    /// resident bound, so index memory stays bounded between checkpoints. One flush per queue at
    /// a time.
    fn flush_index_if_needed(&self, key: QueueKey, index: &Rc<RefCell<QueueIndex>>) {
        if !index.borrow().needs_flush() || !self.inner.index_flushes.borrow_mut().insert(key) {
            return;
        }
        let (store, index) = (self.clone(), index.clone());
        let flush = async move {
            if let Err(err) = persist(&index).await {
                tracing::warn!(shard = store.shard_id(), error = %err, "index flush failed; the checkpoint retries");
            }
            store.inner.index_flushes.borrow_mut().remove(&key);
        };
        let spawned = match self.inner.background {
            Some(queue) => glommio::spawn_local_into(flush, queue),
            None => Ok(glommio::spawn_local(flush)),
        };
        match spawned {
            Ok(task) => {
                task.detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot spawn an index flush; the checkpoint persists it");
                self.inner.index_flushes.borrow_mut().remove(&key);
            }
        }
    }
}
