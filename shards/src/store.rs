//! `ShardStore`: one shard's storage, the only API the broker uses. Owns the log (through the
//! writer task), the hot tail, the queue indexes, the background sync and checkpoint tasks.
//!
//! Runs on its shard's core only (`Rc`, not `Send`). Every method that awaits holds no `RefCell`
//! borrow across the await.
//!
//! Invariants:
//! - the queue offsets of a queue are dense: a batch of `n` records appended at next offset `o`
//!   gets `o..o+n`, and the index holds one entry per record;
//! - log positions are dense and every batch starts at a multiple of 16;
//! - `append` returns only once the batch is visible to `read` (appended); `wait_synced` returns
//!   only once an fdatasync covers it (see `writer` for the contract);
//! - a batch is served from the hot tail until it is written, from disk after.
//!
//! Limits: appends wait while more than `unwritten_bytes_max` bytes are not yet written; reads
//! return at most `max_messages` records and stop before `max_bytes` (the first batch is always
//! returned whole, so a consumer always progresses).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use event_listener::Event;
use glommio::sync::Semaphore;
use glommio::{Task, TaskQueueHandle};
use shardmq_protocol::batch::{stamp, Stamp};
use shardmq_protocol::BatchHeader;

use crate::checkpoint;
use crate::config::{FlushMode, StoreConfig};
use crate::durability::{Appended, Synced, Written};
use crate::error::{Result, StorageError};
use crate::hot_tail::HotTail;
use crate::index::{persist, QueueIndex};
use crate::recovery::{self, entry_at, index_path, QueueKey, RecoveryReport};
use crate::segment::{Segment, Segments};
use crate::writer::{self, LogState, WriteCommand, WriterConfig};

/// Disk reads fetch up to this much beyond the batch asked for (bounded by what the pull may
/// still return), so a consumer catching up reads several batches in one I/O.
const READ_AHEAD_BYTES_MAX: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: u64,
    pub count: u32,
    /// The log position just past the batch: pass it to [`ShardStore::wait_synced`].
    pub end: Appended,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    /// Whole stored batches, in offset order. The first may start before the asked offset.
    pub batches: Vec<Bytes>,
    pub next_offset: u64,
    pub max_offset: u64,
}

#[derive(Clone)]
pub struct ShardStore {
    inner: Rc<Inner>,
}

struct Inner {
    config: StoreConfig,
    log: Rc<LogState>,
    segments: RefCell<Segments>,
    open_segment_base: Cell<u64>,
    hot_tail: RefCell<HotTail>,
    queues: RefCell<HashMap<QueueKey, Rc<RefCell<QueueIndex>>>>,
    appended_event: Event,
    sync_requested_upto: Cell<u64>,
    closing: Cell<bool>,
    checkpoint_lock: Semaphore,
    tasks: RefCell<Vec<Task<()>>>,
    recovery: RecoveryReport,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ShardStore {
    /// Recovers the shard's files and starts its writer and background tasks on the current
    /// executor. `background` is the task queue for sync and checkpoint work.
    pub async fn open(
        config: StoreConfig,
        background: Option<TaskQueueHandle>,
    ) -> Result<ShardStore> {
        config.validate()?;
        crate::iopoll_probe::prime(&config.dir).await?;
        let recovered =
            recovery::recover(config.shard_id, &config.dir, config.index_resident_chunks).await?;
        let end = recovered.end;
        tracing::info!(shard = config.shard_id, end, report = ?recovered.report, "shard recovered");
        let log = Rc::new(LogState::new(config.shard_id, end));
        let mut segments = recovered.segments;
        let log_dir = config.dir.join("log");
        segments.push(Segment::new(&log_dir, end));
        log.submit(WriteCommand::Roll { base: end });
        let writer_config = WriterConfig {
            log_dir,
            segment_bytes: config.segment_bytes,
            buffer_bytes: config.write_buffer_bytes,
            write_behind: config.write_behind_buffers,
        };
        glommio::spawn_local(writer::run(log.clone(), writer_config)).detach();
        let queues = recovered
            .indexes
            .into_iter()
            .map(|(k, v)| (k, Rc::new(v)))
            .collect();
        let store = ShardStore {
            inner: Rc::new(Inner {
                hot_tail: RefCell::new(HotTail::new(config.hot_tail_bytes)),
                config,
                log,
                segments: RefCell::new(segments),
                open_segment_base: Cell::new(end),
                queues: RefCell::new(queues),
                appended_event: Event::new(),
                sync_requested_upto: Cell::new(end),
                closing: Cell::new(false),
                checkpoint_lock: Semaphore::new(1),
                tasks: RefCell::new(Vec::new()),
                recovery: recovered.report,
            }),
        };
        store.checkpoint().await?;
        store.start_background(background);
        Ok(store)
    }

    fn start_background(&self, queue: Option<TaskQueueHandle>) {
        let spawn = |fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| match queue {
            Some(q) => glommio::spawn_local_into(fut, q).ok(),
            None => Some(glommio::spawn_local(fut)),
        };
        let mut tasks = self.inner.tasks.borrow_mut();
        if let FlushMode::Async { interval } = self.inner.config.flush {
            let store = self.clone();
            tasks.extend(spawn(Box::pin(async move {
                loop {
                    glommio::timer::sleep(interval).await;
                    store.request_sync();
                }
            })));
        }
        let store = self.clone();
        let interval = self.inner.config.checkpoint_interval;
        tasks.extend(spawn(Box::pin(async move {
            loop {
                glommio::timer::sleep(interval).await;
                if let Err(err) = store.checkpoint().await {
                    tracing::warn!(shard = store.shard_id(), error = %err, "checkpoint failed; will retry");
                }
            }
        })));
    }

    pub fn shard_id(&self) -> u32 {
        self.inner.config.shard_id
    }

    pub fn flush_mode(&self) -> FlushMode {
        self.inner.config.flush
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub fn positions(&self) -> (Appended, Written, Synced) {
        let d = &self.inner.log.durability;
        (d.appended(), d.written(), d.synced())
    }

    fn check_writable(&self) -> Result<()> {
        if self.inner.closing.get() {
            return Err(StorageError::Closed(self.shard_id()));
        }
        self.inner.log.check_failed()
    }

    /// Waits while too much is appended but unwritten (backpressure on producers).
    async fn wait_for_room(&self) -> Result<()> {
        let max = self.inner.config.unwritten_bytes_max();
        loop {
            self.check_writable()?;
            let d = &self.inner.log.durability;
            if d.appended().0 - d.written().0 <= max {
                return Ok(());
            }
            let listener = self.inner.log.progress.listen();
            if d.appended().0 - d.written().0 <= max || self.inner.log.check_failed().is_err() {
                continue;
            }
            listener.await;
        }
    }

    /// Appends one batch that the caller has already validated (`validate_incoming`). Stamps the
    /// broker fields in place; the same bytes then go to the hot tail, the writer and consumers.
    pub async fn append(
        &self,
        topic_id: u32,
        queue_id: u32,
        mut batch: BytesMut,
    ) -> Result<AppendOutcome> {
        self.wait_for_room().await?;
        let header = BatchHeader::parse(&batch)
            .map_err(|e| StorageError::Config(format!("append of an unvalidated batch: {e}")))?;
        assert_eq!(
            header.batch_len as usize,
            batch.len(),
            "batch length must match its header"
        );
        let inner = &self.inner;
        let len = batch.len() as u64;
        let position = inner.log.durability.appended().0;
        assert_eq!(position % 16, 0, "batches start 16-byte aligned in the log");
        let segment_base = inner.open_segment_base.get();
        if position > segment_base && position - segment_base + len > inner.config.segment_bytes {
            inner
                .segments
                .borrow_mut()
                .push(Segment::new(&inner.config.dir.join("log"), position));
            inner.open_segment_base.set(position);
            inner.log.submit(WriteCommand::Roll { base: position });
        }
        let key = (topic_id, queue_id);
        let index = self.queue_or_create(key);
        let base_offset = index.borrow().len();
        stamp(
            &mut batch,
            Stamp {
                topic_id,
                queue_id,
                base_offset,
                append_timestamp_ms: now_ms(),
            },
        );
        let bytes = batch.freeze();
        inner.hot_tail.borrow_mut().push(position, bytes.clone());
        index
            .borrow_mut()
            .push_batch(position, header.batch_len, header.record_count);
        let end = Appended(position + len);
        inner.log.durability.advance_appended(end);
        inner.log.submit(WriteCommand::Append(bytes));
        inner
            .hot_tail
            .borrow_mut()
            .evict(inner.log.durability.written().0);
        inner.appended_event.notify(usize::MAX);
        Ok(AppendOutcome {
            base_offset,
            count: header.record_count,
            end,
        })
    }

    fn queue_or_create(&self, key: QueueKey) -> Rc<RefCell<QueueIndex>> {
        let mut queues = self.inner.queues.borrow_mut();
        queues
            .entry(key)
            .or_insert_with(|| {
                let path = index_path(&self.inner.config.dir.join("index"), key);
                Rc::new(RefCell::new(QueueIndex::new(
                    path,
                    self.inner.config.index_resident_chunks,
                )))
            })
            .clone()
    }

    fn request_sync(&self) {
        let d = &self.inner.log.durability;
        let appended = d.appended().0;
        if appended > self.inner.sync_requested_upto.get()
            || (appended > d.synced().0 && self.inner.sync_requested_upto.get() <= d.synced().0)
        {
            self.inner.sync_requested_upto.set(appended);
            self.inner.log.submit(WriteCommand::Sync);
        }
    }

    /// Resolves once an fdatasync covers every byte before `end` (group commit: concurrent
    /// callers share one fdatasync).
    pub async fn wait_synced(&self, end: Appended) -> Result<()> {
        loop {
            if self.inner.log.durability.synced().0 >= end.0 {
                return Ok(());
            }
            self.inner.log.check_failed()?;
            if self.inner.sync_requested_upto.get() < end.0 {
                self.request_sync();
            }
            let listener = self.inner.log.progress.listen();
            if self.inner.log.durability.synced().0 >= end.0
                || self.inner.log.check_failed().is_err()
            {
                continue;
            }
            listener.await;
        }
    }

    /// `(min, max)` offsets of a queue; max is one past the last record. An unknown queue is
    /// empty: `(0, 0)`.
    pub fn offsets(&self, topic_id: u32, queue_id: u32) -> (u64, u64) {
        let len = self
            .inner
            .queues
            .borrow()
            .get(&(topic_id, queue_id))
            .map(|q| q.borrow().len());
        (0, len.unwrap_or(0))
    }

    /// Waits until the queue holds a record at `offset`, or `timeout` passes. True if data came.
    pub async fn wait_for_data(
        &self,
        topic_id: u32,
        queue_id: u32,
        offset: u64,
        timeout: Duration,
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.offsets(topic_id, queue_id).1 > offset {
                return true;
            }
            if self.inner.closing.get() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let listener = self.inner.appended_event.listen();
            if self.offsets(topic_id, queue_id).1 > offset {
                return true;
            }
            let woke = futures_lite::future::or(
                async {
                    listener.await;
                    true
                },
                async {
                    glommio::timer::sleep(deadline - now).await;
                    false
                },
            )
            .await;
            if !woke {
                return self.offsets(topic_id, queue_id).1 > offset;
            }
        }
    }

    /// Reads whole batches of a queue starting with the one that holds `offset`.
    pub async fn read(
        &self,
        topic_id: u32,
        queue_id: u32,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
    ) -> Result<ReadOutcome> {
        let index = self
            .inner
            .queues
            .borrow()
            .get(&(topic_id, queue_id))
            .cloned();
        let Some(index) = index else {
            if offset == 0 {
                return Ok(ReadOutcome::default());
            }
            return Err(StorageError::OffsetOutOfRange {
                topic_id,
                queue_id,
                offset,
                min: 0,
                max: 0,
            });
        };
        let max_offset = index.borrow().len();
        if offset > max_offset {
            return Err(StorageError::OffsetOutOfRange {
                topic_id,
                queue_id,
                offset,
                min: 0,
                max: max_offset,
            });
        }
        let mut outcome = ReadOutcome {
            batches: Vec::new(),
            next_offset: offset,
            max_offset,
        };
        let (mut messages, mut bytes) = (0u64, 0u64);
        let mut read_ahead: Option<(u64, Bytes)> = None;
        while outcome.next_offset < max_offset && messages < u64::from(max_messages) {
            let at = outcome.next_offset;
            let entry = entry_at(&index, at).await?;
            if bytes > 0 && bytes + u64::from(entry.batch_len) > u64::from(max_bytes) {
                break;
            }
            // Read ahead only as far as this pull may still return.
            let budget = u64::from(max_bytes)
                .saturating_sub(bytes)
                .min(READ_AHEAD_BYTES_MAX);
            let batch = self
                .fetch(entry.position, entry.batch_len, budget, &mut read_ahead)
                .await?;
            let header = BatchHeader::parse(&batch)
                .unwrap_or_else(|e| panic!("stored batch at {} unreadable: {e}", entry.position));
            assert_eq!(
                header.base_offset,
                at - u64::from(entry.delta),
                "index entry and batch disagree on the base offset"
            );
            assert_eq!(
                (header.topic_id, header.queue_id),
                (topic_id, queue_id),
                "index points at another queue's batch"
            );
            messages += header.end_offset() - at;
            bytes += u64::from(header.batch_len);
            outcome.next_offset = header.end_offset();
            outcome.batches.push(batch);
        }
        Ok(outcome)
    }

    /// The batch at `position`: from the hot tail, the current read-ahead, or disk.
    async fn fetch(
        &self,
        position: u64,
        len: u32,
        read_ahead_bytes: u64,
        read_ahead: &mut Option<(u64, Bytes)>,
    ) -> Result<Bytes> {
        if let Some(batch) = self.inner.hot_tail.borrow().get(position) {
            return Ok(batch);
        }
        let len = u64::from(len);
        if let Some((start, data)) = read_ahead {
            if position >= *start && position + len <= *start + data.len() as u64 {
                let from = (position - *start) as usize;
                return Ok(data.slice(from..from + len as usize));
            }
        }
        let written = self.inner.log.durability.written().0;
        assert!(
            position + len <= written,
            "batch at {position} is neither in the hot tail nor written"
        );
        let found = self.inner.segments.borrow().find(position);
        let (segment, segment_end) =
            found.unwrap_or_else(|| panic!("no segment holds log position {position}"));
        let limit = segment_end.unwrap_or(written).min(written);
        let span = len.max(read_ahead_bytes).min(limit - position);
        let data = segment.read(position, span as usize).await?;
        let batch = data.slice(0..len as usize);
        *read_ahead = Some((position, data));
        Ok(batch)
    }

    /// Persists the indexes and advances the recovery checkpoint to the synced position.
    pub async fn checkpoint(&self) -> Result<()> {
        let _permit = self
            .inner
            .checkpoint_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed(self.shard_id()))?;
        let position = self.inner.log.durability.synced().0;
        let queues: Vec<_> = self
            .inner
            .queues
            .borrow()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let mut files = Vec::new();
        let mut lens = Vec::with_capacity(queues.len());
        for (key, index) in queues {
            if let Some(file) = persist(&index).await? {
                files.push((file, index.borrow().path().clone()));
            }
            lens.push((key, index.borrow().len()));
        }
        for (file, path) in files {
            file.fdatasync()
                .await
                .map_err(|e| StorageError::glommio(path, e))?;
        }
        checkpoint::write(
            &self.inner.config.dir,
            &checkpoint::Checkpoint {
                position,
                queues: lens,
            },
        )
        .await
    }

    /// Stops taking writes, writes and syncs everything appended, checkpoints, closes files.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closing.replace(true) {
            return Ok(());
        }
        self.inner.appended_event.notify(usize::MAX);
        self.inner.log.submit(WriteCommand::Close);
        loop {
            let listener = self.inner.log.progress.listen();
            if self.inner.log.is_stopped() {
                break;
            }
            listener.await;
        }
        let tasks: Vec<_> = self.inner.tasks.borrow_mut().drain(..).collect();
        drop(tasks);
        self.inner.log.check_failed().or_else(|e| match e {
            StorageError::Closed(_) => Ok(()),
            other => Err(other),
        })?;
        self.checkpoint().await?;
        let segments: Vec<_> = self.inner.segments.borrow().iter().cloned().collect();
        for segment in segments {
            segment.close_reader().await;
        }
        let queues: Vec<_> = self.inner.queues.borrow().values().cloned().collect();
        for index in queues {
            let files = index.borrow_mut().take_files();
            for file in files {
                let _ = file.close_rc().await;
            }
        }
        Ok(())
    }
}
