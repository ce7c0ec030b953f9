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
//! - `append` returns only once the batch is appended; `read` sees it from then on under
//!   `flush = async`, and once synced under `flush = sync` (`visibility`); `wait_synced` returns
//!   only once an fdatasync covers it (see `writer` for the contract);
//! - a batch is served from the hot tail until it is written, from disk after.
//!
//! Limits: appends wait while more than `unwritten_bytes_max` bytes are not yet written; reads
//! return at most `max_messages` records and stop before `max_bytes` (the first batch is always
//! returned whole, so a consumer always progresses).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_listener::Event;
use glommio::sync::Semaphore;
use glommio::{Task, TaskQueueHandle};

use crate::checkpoint;
use crate::config::{FlushMode, StoreConfig};
use crate::consumer_offsets::ConsumerOffsets;
use crate::durability::Appended;
use crate::error::{Result, StorageError};
use crate::hot_tail::HotTail;
use crate::index::{persist, QueueIndex};
use crate::prefetch::Prefetcher;
use crate::recovery::{self, index_path, QueueKey, RecoveryReport};
use crate::segment::Segments;
use crate::writer::{self, LogState, SpareState, WriteCommand, WriterConfig};

#[derive(Clone)]
pub struct ShardStore {
    pub(crate) inner: Rc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: StoreConfig,
    pub(crate) log: Rc<LogState>,
    pub(crate) segments: RefCell<Segments>,
    pub(crate) hot_tail: RefCell<HotTail>,
    pub(crate) prefetch: Prefetcher,
    /// Admits appends at the disk's rate past half the write-behind budget (`pacing`).
    pub(crate) pacer: RefCell<crate::pacing::Pacer>,
    pub(crate) queues: RefCell<BTreeMap<QueueKey, Rc<RefCell<QueueIndex>>>>,
    pub(crate) appended_event: Event,
    sync_requested_upto: Cell<u64>,
    pub(crate) closing: Cell<bool>,
    /// Held by a checkpoint, and by retention while it unlinks a segment (see
    /// `retention::delete_oldest_segment`).
    pub(crate) checkpoint_lock: Semaphore,
    /// One retention pass at a time (the background task's and any caller's): a pass decides
    /// what to delete, then awaits, then deletes it.
    pub(crate) retention_lock: Semaphore,
    /// Queues whose index is being flushed in the background (see `flush_index_if_needed`).
    pub(crate) index_flushes: RefCell<std::collections::HashSet<QueueKey>>,
    pub(crate) background: Option<TaskQueueHandle>,
    tasks: RefCell<Vec<Task<()>>>,
    recovery: RecoveryReport,
    pub(crate) consumer_offsets: ConsumerOffsets,
    /// The disk use (percent) that made retention refuse appends, while it lasts.
    pub(crate) disk_refusal: Cell<Option<f64>>,
    /// Base of the segment appends go to; `None` until the first append after open rolls.
    pub(crate) open_segment: Cell<Option<u64>>,
}

pub(crate) fn now_ms() -> u64 {
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
        let segments = recovered.segments;
        let log_dir = config.dir.join("log");
        let writer_config = WriterConfig {
            log_dir,
            segment_bytes: config.segment_bytes,
            buffer_bytes: config.write_buffer_bytes,
            write_behind: config.write_behind_buffers,
        };
        glommio::spawn_local(writer::prepare_spares(log.clone(), writer_config.clone())).detach();
        glommio::spawn_local(writer::run(log.clone(), writer_config)).detach();
        // The first append rolls onto the spare: have it (or know why not) before serving.
        log.request_spare();
        while log.spare() == SpareState::Preparing && log.check_failed().is_ok() {
            let listener = log.progress.listen();
            if log.spare() != SpareState::Preparing {
                break;
            }
            listener.await;
        }
        tracing::debug!(shard = config.shard_id, spare = ?log.spare(), "startup: writer running, spare settled");
        let consumer_offsets =
            ConsumerOffsets::open(&config.dir, config.flush == FlushMode::Sync).await?;
        let queues: BTreeMap<QueueKey, Rc<RefCell<QueueIndex>>> = recovered
            .indexes
            .into_iter()
            .map(|(k, v)| (k, Rc::new(v)))
            .collect();
        let mut report = recovered.report;
        // Everything recovered is synced, so an index's length is its queue's end.
        report.consumer_offsets_clamped = consumer_offsets.clamp_to_ends(|topic, queue| {
            queues.get(&(topic, queue)).map_or(0, |q| q.borrow().len())
        });
        let store = ShardStore {
            inner: Rc::new(Inner {
                hot_tail: RefCell::new(HotTail::new(config.hot_tail_bytes)),
                prefetch: Prefetcher::default(),
                pacer: RefCell::new(crate::pacing::Pacer::new(std::time::Instant::now())),
                config,
                log,
                segments: RefCell::new(segments),
                queues: RefCell::new(queues),
                appended_event: Event::new(),
                sync_requested_upto: Cell::new(end),
                closing: Cell::new(false),
                checkpoint_lock: Semaphore::new(1),
                retention_lock: Semaphore::new(1),
                index_flushes: RefCell::new(std::collections::HashSet::new()),
                background,
                tasks: RefCell::new(Vec::new()),
                recovery: report,
                consumer_offsets,
                disk_refusal: Cell::new(None),
                open_segment: Cell::new(None),
            }),
        };
        // On a full disk the checkpoint may not be writable; recovery does not need it.
        if let Err(err) = store.checkpoint().await {
            tracing::warn!(shard = store.shard_id(), error = %err, "checkpoint at open failed; will retry");
        }
        store.start_background(background);
        tracing::debug!(
            shard = store.shard_id(),
            "startup: store open, checkpoint written"
        );
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
        tasks.extend(spawn(Box::pin(async move {
            store.repair_log_when_failed().await
        })));
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
        let store = self.clone();
        let interval = self.inner.config.retention.interval;
        tasks.extend(spawn(Box::pin(async move {
            loop {
                if let Err(err) = store.retention_pass().await {
                    tracing::warn!(shard = store.shard_id(), error = %err, "retention pass failed; will retry");
                }
                glommio::timer::sleep(interval).await;
            }
        })));
        let store = self.clone();
        let interval = self.inner.config.offsets_flush_interval;
        tasks.extend(spawn(Box::pin(async move {
            loop {
                glommio::timer::sleep(interval).await;
                if let Err(err) = store.inner.consumer_offsets.persist().await {
                    tracing::warn!(shard = store.shard_id(), error = %err, "writing consumer offsets failed; will retry");
                }
            }
        })));
    }

    /// Makes the log writer fail at `site` (see `faults`): for tests of the storage layer.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject_log_fault(&self, site: crate::faults::FaultSite, fault: crate::faults::Fault) {
        self.inner.log.faults.arm(site, fault);
    }

    /// Stops failing at `site`.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn clear_log_fault(&self, site: crate::faults::FaultSite) {
        self.inner.log.faults.disarm(site);
    }

    /// Why the log writer is not writing, while it is failed and not yet repaired.
    pub fn writer_failure(&self) -> Option<String> {
        self.inner.log.failure()
    }

    /// The consumer offsets of the queues this shard owns.
    pub fn consumer_offsets(&self) -> &ConsumerOffsets {
        &self.inner.consumer_offsets
    }

    pub fn shard_id(&self) -> u32 {
        self.inner.config.shard_id
    }

    /// The shard's own directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.inner.config.dir
    }

    pub fn flush_mode(&self) -> FlushMode {
        self.inner.config.flush
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub(crate) fn queue_or_create(&self, key: QueueKey) -> Rc<RefCell<QueueIndex>> {
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

    pub(crate) fn request_sync(&self) {
        let d = &self.inner.log.durability;
        let appended = d.appended().0;
        if appended > self.inner.sync_requested_upto.get()
            || (appended > d.synced().0 && self.inner.sync_requested_upto.get() <= d.synced().0)
        {
            self.inner.sync_requested_upto.set(appended);
            self.inner.log.submit(WriteCommand::Sync);
        }
    }

    /// After a repair resent the unwritten batches: asks for their sync (the request made
    /// before the failure went with it).
    pub(crate) fn resync_after_repair(&self) {
        let synced = self.inner.log.durability.synced().0;
        self.inner.sync_requested_upto.set(synced);
        self.request_sync();
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

    /// `(min, max)` offsets of a queue: min is its first record still stored (retention moves
    /// it), max one past its last record a reader may see (under `flush = sync`, its last
    /// synced one: `visibility`). An unknown queue is empty: `(0, 0)`.
    pub fn offsets(&self, topic_id: u32, queue_id: u32) -> (u64, u64) {
        let queues = self.inner.queues.borrow();
        queues.get(&(topic_id, queue_id)).map_or((0, 0), |q| {
            let q = q.borrow();
            (q.first(), self.visible_end(&q))
        })
    }

    /// One past the last record of `index` a reader may see: every appended one under
    /// `flush = async`, the synced ones under `flush = sync` (see `visibility`).
    pub(crate) fn visible_end(&self, index: &QueueIndex) -> u64 {
        match self.inner.config.flush {
            FlushMode::Async { .. } => index.len(),
            FlushMode::Sync => index
                .unsynced_batches
                .visible_end(index.len(), self.inner.log.durability.synced().0),
        }
    }

    /// Every queue's index, copied out of the map so the caller may await between them.
    pub(crate) fn queue_indexes(&self) -> Vec<(QueueKey, Rc<RefCell<QueueIndex>>)> {
        let queues = self.inner.queues.borrow();
        queues.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Every queue this store holds an index for.
    pub fn queue_keys(&self) -> Vec<QueueKey> {
        self.inner.queues.borrow().keys().copied().collect()
    }

    /// Forgets a queue: its index leaves memory and its file is removed. The log bytes of its
    /// batches stay until retention deletes their segments; nothing can reach them, since the
    /// index was the only way in (and a topic id is never reused).
    pub async fn delete_queue(&self, topic_id: u32, queue_id: u32) -> Result<()> {
        let Some(index) = self.inner.queues.borrow_mut().remove(&(topic_id, queue_id)) else {
            return Ok(());
        };
        self.inner.appended_event.notify(usize::MAX);
        let path = index.borrow().path().clone();
        let files = QueueIndex::retire(&index).await;
        for file in files {
            let _ = file.close_rc().await;
        }
        let not_found = |e: &glommio::GlommioError<()>| match e {
            glommio::GlommioError::IoError(e) => e.kind() == std::io::ErrorKind::NotFound,
            glommio::GlommioError::EnhancedIoError { source, .. } => {
                source.kind() == std::io::ErrorKind::NotFound
            }
            _ => false,
        };
        match crate::file_io::remove(&path).await {
            // Never persisted: there was no file.
            Err(e) if not_found(&e) => Ok(()),
            other => other.map_err(|e| StorageError::glommio(&path, e)),
        }
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
            // Appends make records visible under `flush = async`, syncs under `flush = sync`.
            let appended = self.inner.appended_event.listen();
            let synced = self.inner.log.progress.listen();
            if self.offsets(topic_id, queue_id).1 > offset {
                return true;
            }
            let woke =
                woken_before(futures_lite::future::or(appended, synced), deadline - now).await;
            if !woke {
                return self.offsets(topic_id, queue_id).1 > offset;
            }
        }
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
        let queues = self.queue_indexes();
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
    /// Fails only when the log could not be synced; a checkpoint or offsets file that cannot
    /// be written (a full disk) is logged, and recovery copes without it.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closing.replace(true) {
            return Ok(());
        }
        self.inner.appended_event.notify(usize::MAX);
        self.inner.log.submit(WriteCommand::Close);
        loop {
            let listener = self.inner.log.progress.listen();
            if self.inner.log.is_quiet() {
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
        // The log is synced: what follows is derived data or best effort, and must not keep a
        // full disk from shutting down cleanly.
        if let Err(err) = self.checkpoint().await {
            tracing::warn!(shard = self.shard_id(), error = %err, "final checkpoint failed; the next start re-indexes from the last one");
        }
        if let Err(err) = self.inner.consumer_offsets.persist().await {
            tracing::error!(shard = self.shard_id(), error = %err, "could not write consumer offsets at close: commits since the last write are lost");
        }
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

/// True if `wake` resolves within `within`, false if the time ran out first.
pub(crate) async fn woken_before(
    wake: impl std::future::Future<Output = ()>,
    within: Duration,
) -> bool {
    futures_lite::future::or(
        async {
            wake.await;
            true
        },
        async {
            glommio::timer::sleep(within).await;
            false
        },
    )
    .await
}
