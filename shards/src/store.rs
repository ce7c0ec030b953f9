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
use crate::durability::Appended;
use crate::error::{Result, StorageError};
use crate::hot_tail::HotTail;
use crate::index::{persist, QueueIndex};
use crate::prefetch::{Prefetcher, PulledBatches, PREFETCH_BYTES_MAX};
use crate::read_plan::{self, PlannedBatch, PullLimits};
use crate::recovery::{self, index_path, QueueKey, RecoveryReport};
use crate::segment::{Segment, Segments};
use crate::writer::{self, LogState, WriteCommand, WriterConfig};

/// Adjacent batches read from disk are merged into spans of at most this size (a batch larger
/// than it gets a span of its own); the spans of one pull are read concurrently.
const READ_SPAN_BYTES_MAX: u64 = 1 << 20;

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
    hot_tail: RefCell<HotTail>,
    prefetch: Prefetcher,
    queues: RefCell<HashMap<QueueKey, Rc<RefCell<QueueIndex>>>>,
    appended_event: Event,
    sync_requested_upto: Cell<u64>,
    closing: Cell<bool>,
    checkpoint_lock: Semaphore,
    /// Queues whose index is being flushed in the background (see `flush_index_if_needed`).
    index_flushes: RefCell<std::collections::HashSet<QueueKey>>,
    background: Option<TaskQueueHandle>,
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
                prefetch: Prefetcher::default(),
                config,
                log,
                segments: RefCell::new(segments),
                queues: RefCell::new(queues),
                appended_event: Event::new(),
                sync_requested_upto: Cell::new(end),
                closing: Cell::new(false),
                checkpoint_lock: Semaphore::new(1),
                index_flushes: RefCell::new(std::collections::HashSet::new()),
                background,
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
        let header =
            BatchHeader::parse(&batch).map_err(|e| StorageError::InvalidBatch(e.to_string()))?;
        assert_eq!(
            header.batch_len as usize,
            batch.len(),
            "batch length must match its header"
        );
        let inner = &self.inner;
        let len = batch.len() as u64;
        let position = inner.log.durability.appended().0;
        assert_eq!(position % 16, 0, "batches start 16-byte aligned in the log");
        // The last segment is the open one (one is pushed at open and at every roll).
        let segment_base = inner
            .segments
            .borrow()
            .last_base()
            .expect("the open segment is always listed");
        if position > segment_base && position - segment_base + len > inner.config.segment_bytes {
            inner
                .segments
                .borrow_mut()
                .push(Segment::new(&inner.config.dir.join("log"), position));
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
        self.flush_index_if_needed(key, &index);
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
        let key = ((topic_id, queue_id), offset, max_messages, max_bytes);
        let (planned, batches, from_disk) = match self.inner.prefetch.take(key) {
            Some(pull) => pull.await?,
            None => {
                self.read_planned(&index, offset, max_messages, max_bytes)
                    .await?
            }
        };
        for (batch, plan) in batches.iter().zip(&planned) {
            let header = BatchHeader::parse(batch)
                .unwrap_or_else(|e| panic!("stored batch at {} unreadable: {e}", plan.position));
            assert_eq!(
                header.base_offset, plan.base_offset,
                "index and batch disagree on the base offset"
            );
            assert_eq!(
                header.end_offset(),
                plan.end_offset,
                "index and batch disagree on the record count"
            );
            assert_eq!(
                (header.topic_id, header.queue_id),
                (topic_id, queue_id),
                "index points at another queue's batch"
            );
        }
        let next_offset = planned.last().map_or(offset, |p| p.end_offset);
        if from_disk && next_offset < index.borrow().len() && max_bytes <= PREFETCH_BYTES_MAX {
            let (store, index) = (self.clone(), index.clone());
            let next = glommio::spawn_local(async move {
                store
                    .read_planned(&index, next_offset, max_messages, max_bytes)
                    .await
            });
            self.inner.prefetch.insert(
                ((topic_id, queue_id), next_offset, max_messages, max_bytes),
                next,
            );
        }
        let max_offset = max_offset.max(index.borrow().len());
        Ok(ReadOutcome {
            batches,
            next_offset,
            max_offset,
        })
    }

    /// Plans a pull from the index and reads its batches.
    async fn read_planned(
        &self,
        index: &RefCell<QueueIndex>,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
    ) -> Result<PulledBatches> {
        let limits = PullLimits {
            max_offset: index.borrow().len(),
            max_messages,
            max_bytes,
        };
        let planned = read_plan::plan(index, offset, &limits).await?;
        let (batches, from_disk) = self.fetch(&planned).await?;
        Ok((planned, batches, from_disk))
    }

    /// The planned batches' bytes: from the hot tail where they still are, else from disk, with
    /// adjacent batches read as one span of at most `READ_SPAN_BYTES_MAX` and all spans read
    /// concurrently. Where each batch comes from is decided without awaiting in between, so the
    /// hot tail cannot drop one that was counted on.
    async fn fetch(&self, planned: &[PlannedBatch]) -> Result<(Vec<Bytes>, bool)> {
        enum Source {
            Memory(Bytes),
            /// Index of the span, and the batch's offset inside it.
            Disk(usize, usize),
        }
        let written = self.inner.log.durability.written().0;
        let mut sources = Vec::with_capacity(planned.len());
        let mut spans: Vec<(Rc<Segment>, u64, u64)> = Vec::new();
        for plan in planned {
            if let Some(batch) = self.inner.hot_tail.borrow().get(plan.position) {
                sources.push(Source::Memory(batch));
                continue;
            }
            let len = u64::from(plan.len);
            assert!(
                plan.position + len <= written,
                "batch at {} is neither in the hot tail nor written",
                plan.position
            );
            let (segment, segment_end) = self
                .inner
                .segments
                .borrow()
                .find(plan.position)
                .unwrap_or_else(|| panic!("no segment holds log position {}", plan.position));
            let extends_last = spans.last().is_some_and(|(s, start, span_len)| {
                s.base == segment.base
                    && start + span_len == plan.position
                    && span_len + len <= READ_SPAN_BYTES_MAX
            });
            if !extends_last {
                assert!(
                    segment_end.is_none_or(|end| plan.position + len <= end),
                    "a batch crosses a segment end"
                );
                spans.push((segment, plan.position, 0));
            }
            let span = spans.len() - 1;
            let (_, start, span_len) = &mut spans[span];
            sources.push(Source::Disk(span, (plan.position - *start) as usize));
            *span_len += len;
        }
        let reads: Vec<_> = spans
            .into_iter()
            .map(|(segment, start, len)| {
                glommio::spawn_local(async move { segment.read(start, len as usize).await })
            })
            .collect();
        let mut data: Vec<Option<Bytes>> = vec![None; reads.len()];
        let mut batches = Vec::with_capacity(planned.len());
        let mut reads = reads.into_iter().enumerate();
        for (source, plan) in sources.into_iter().zip(planned) {
            match source {
                Source::Memory(batch) => batches.push(batch),
                Source::Disk(span, from) => {
                    while data[span].is_none() {
                        let (i, read) = reads.next().expect("every span has a read");
                        data[i] = Some(read.await?);
                    }
                    let span_data = data[span].as_ref().expect("awaited above");
                    batches.push(span_data.slice(from..from + plan.len as usize));
                }
            }
        }
        Ok((batches, !data.is_empty()))
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
        // Lengths are taken before persisting: entries appended while the writes are in flight
        // are not claimed by this checkpoint.
        let lens: Vec<_> = queues
            .iter()
            .map(|(key, index)| (*key, index.borrow().len()))
            .collect();
        for (_, index) in &queues {
            persist(index).await?;
        }
        // Sync every index written since the last checkpoint, by this one or by a background
        // flush, so what the checkpoint claims is on stable storage.
        for (_, index) in &queues {
            let (file, path) = {
                let mut index = index.borrow_mut();
                match index.take_unsynced_file() {
                    Some(file) => (file, index.path().clone()),
                    None => continue,
                }
            };
            file.fdatasync()
                .await
                .map_err(|e| StorageError::glommio(path, e))?;
        }
        self.open_segment_readers().await;
        checkpoint::write(
            &self.inner.config.dir,
            &checkpoint::Checkpoint {
                position,
                queues: lens,
            },
        )
        .await
    }

    /// Opens the read handles of segments that hold written data, off the request path (see
    /// `Segment::ensure_reader`).
    async fn open_segment_readers(&self) {
        let written = self.inner.log.durability.written().0;
        let pending: Vec<_> = self
            .inner
            .segments
            .borrow()
            .iter()
            .filter(|s| s.base < written && !s.has_reader())
            .cloned()
            .collect();
        for segment in pending {
            if let Err(err) = segment.ensure_reader().await {
                tracing::warn!(shard = self.shard_id(), segment = %segment.path.display(), error = %err, "cannot open segment for reading");
            }
        }
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
        self.inner.prefetch.clear();
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
