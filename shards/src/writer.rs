//! The log writer: one task per shard that owns the open segment's `SegmentWriter` and is the
//! only code that writes, syncs, rolls or closes log files.
//!
//! Durability contract (see `durability` for the three positions):
//! - `append` in the store makes a batch *appended*: it has a log position, is in the hot tail
//!   and the index, and is queued here. A crash loses it.
//! - After this task copied it into the DMA writer and the DMA write completed, it is *written*
//!   (`SegmentWriter::written`, taken after each command and whenever a write completes while
//!   the writer is idle): readable from the file by other handles.
//! - After an `fdatasync` that began after it was written, it is *synced*: it survives a crash.
//!   `flush = sync` acknowledges a produce only then; `flush = async` syncs every interval.
//!
//! Group commit: commands queue up while a write or sync is in flight; the task drains every
//! queued command before it syncs, so one `fdatasync` covers every batch that asked for one.
//!
//! Rolls: the old segment is closed (flushed, synced, truncated to its real length) before the
//! next one is opened, so only the last segment can ever hold a torn tail.
//!
//! Space is reserved a segment ahead (RocketMQ's AllocateMappedFileService does the same): the
//! next segment is created and preallocated as `log/next.spare.<n>` before it is needed, and a
//! roll renames spare `n` into place. The store appends into a new segment only once its spare
//! is ready, so every acknowledged byte has its disk blocks before it is acknowledged and a full
//! disk refuses appends up front instead of failing a write of acknowledged data. A spare that
//! cannot be made (ENOSPC) is not a failure: it is retried (see `LogState::spare`).
//!
//! Spares are made by their own task ([`prepare_spares`]), not in the writer's command queue:
//! the store rolls as soon as its appends reach a segment's end, while the writer may be up to
//! the write-behind budget behind; a spare prepared behind those appends kept the store from
//! rolling again until the writer caught up (a stall of hundreds of ms per roll past the
//! budget). Spares are numbered so the next one can be made while the roll that takes the
//! previous one is still queued. Invariants: a spare number is handed out once (to a `Roll` or
//! a `Resume`); a spare a failed writer discards is removed; at start every leftover spare is
//! removed before the first is made.
//!
//! A write or sync error stops the writing, not the task: the store refuses appends, every
//! waiter is woken with the failure (nothing after the failure point is acknowledged), and the
//! writer discards what it is sent until a [`WriteCommand::Resume`] arrives, still preparing
//! spares and honouring `Close`. The store's repair task (`log_repair`) decides where the log
//! resumes and resends from memory what must be written again.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;
use event_listener::Event;

use crate::durability::{Durability, Synced, Written};
use crate::error::{Result, StorageError};
use crate::file_io::{self, StoreFile, Writable};
use crate::segment::segment_path;
use crate::segment_writer::SegmentWriter;

/// The next segments, created and preallocated ahead of the roll that renames one into place:
/// `next.spare.<n>`.
pub const SPARE_PREFIX: &str = "next.spare";

pub fn spare_path(log_dir: &std::path::Path, spare: u64) -> PathBuf {
    log_dir.join(format!("{SPARE_PREFIX}.{spare}"))
}

pub enum WriteCommand {
    /// Start a new segment whose first byte has log position `base`, from spare number `spare`
    /// (the store submits it only when [`SpareState::Ready`]).
    Roll {
        base: u64,
        spare: u64,
    },
    Append(Bytes),
    /// Sync everything appended so far.
    Sync,
    /// Flush, sync and close the open segment, then stop.
    Close,
    /// After a failure: make the log writable again at `repair.base` (see `log_repair`).
    Resume(crate::log_repair::Repair),
}

/// Whether the next segment's space is reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpareState {
    /// Asked for, not done yet.
    Preparing,
    Ready,
    /// The last attempt failed (the message says why); the store asks again later.
    Failed(String),
}

/// State shared between the store and its writer task (same core).
pub struct LogState {
    pub shard_id: u32,
    pub durability: Durability,
    commands: RefCell<VecDeque<WriteCommand>>,
    command_ready: Event,
    /// Notified whenever written or synced moves, and on failure and stop.
    pub progress: Event,
    /// Notified by the open segment's writes as they complete.
    write_completed: Rc<Event>,
    failure: RefCell<Option<String>>,
    stopped: std::cell::Cell<bool>,
    /// The state of spare number `spare_number`, the one the next roll (or repair) takes.
    spare: RefCell<SpareState>,
    spare_number: std::cell::Cell<u64>,
    /// Notified when a spare is wanted (the spare task waits on it).
    spare_wanted: Event,
    /// The spare task has returned (after the writer stopped): no file is being made.
    spares_done: std::cell::Cell<bool>,
    /// The last reason a spare could not be made, so a retry that fails alike is not logged.
    last_spare_failure: RefCell<Option<String>>,
    last_spare_request: std::cell::Cell<Option<std::time::Instant>>,
    /// The store's counters (the writer records fsyncs and writes).
    pub stats: crate::stats::StoreStats,
    /// Batches written since the last fdatasync.
    batches_since_sync: std::cell::Cell<u64>,
    /// Faults tests inject (see `faults`); never armed otherwise.
    pub faults: crate::faults::LogFaults,
    /// A `Resume` is queued or being applied.
    resume_pending: std::cell::Cell<bool>,
}

impl LogState {
    pub fn new(shard_id: u32, recovered_end: u64) -> Self {
        LogState {
            shard_id,
            durability: Durability::recovered(recovered_end),
            commands: RefCell::new(VecDeque::new()),
            command_ready: Event::new(),
            progress: Event::new(),
            write_completed: Rc::new(Event::new()),
            failure: RefCell::new(None),
            stopped: std::cell::Cell::new(false),
            spare: RefCell::new(SpareState::Failed("not prepared yet".into())),
            spare_number: std::cell::Cell::new(0),
            spare_wanted: Event::new(),
            spares_done: std::cell::Cell::new(false),
            last_spare_failure: RefCell::new(None),
            last_spare_request: std::cell::Cell::new(None),
            stats: crate::stats::StoreStats::default(),
            batches_since_sync: std::cell::Cell::new(0),
            faults: crate::faults::LogFaults::default(),
            resume_pending: std::cell::Cell::new(false),
        }
    }

    pub fn spare(&self) -> SpareState {
        self.spare.borrow().clone()
    }

    /// No room for the next segment: the last attempt failed (a retry may be under way; its
    /// appends wait for it and are refused if it fails too).
    pub fn spare_refused(&self) -> bool {
        match &*self.spare.borrow() {
            SpareState::Failed(_) => true,
            SpareState::Preparing => self.last_spare_failure.borrow().is_some(),
            SpareState::Ready => false,
        }
    }

    /// Asks the writer for a spare unless one is ready or being prepared.
    pub fn request_spare(&self) {
        if matches!(*self.spare.borrow(), SpareState::Failed(_)) {
            self.last_spare_request.set(Some(std::time::Instant::now()));
            *self.spare.borrow_mut() = SpareState::Preparing;
            self.spare_wanted.notify(usize::MAX);
        }
    }

    /// Hands out the ready spare's number and asks for the next spare.
    fn take_spare(&self) -> u64 {
        let spare = self.spare_number.get();
        self.spare_number.set(spare + 1);
        *self.spare.borrow_mut() = SpareState::Preparing;
        self.spare_wanted.notify(usize::MAX);
        spare
    }

    /// [`LogState::request_spare`] at most once a second: what a refused append calls, so a
    /// flood of them on a full disk does not become a flood of failing preallocations.
    pub fn request_spare_soon(&self) {
        let recent = self
            .last_spare_request
            .get()
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1));
        if !recent {
            self.request_spare();
        }
    }

    /// Rolls to a new segment at `base` with the ready spare, and asks for the next spare.
    pub fn roll_onto_spare(&self, base: u64) {
        assert_eq!(
            *self.spare.borrow(),
            SpareState::Ready,
            "a roll needs the spare ready"
        );
        let spare = self.take_spare();
        self.submit(WriteCommand::Roll { base, spare });
    }

    fn set_spare(&self, state: SpareState) {
        *self.spare.borrow_mut() = state;
        self.progress.notify(usize::MAX);
    }

    pub fn submit(&self, command: WriteCommand) {
        self.commands.borrow_mut().push_back(command);
        self.command_ready.notify(1);
    }

    pub fn check_failed(&self) -> Result<()> {
        match &*self.failure.borrow() {
            Some(message) => Err(StorageError::WriterFailed {
                shard_id: self.shard_id,
                message: message.clone(),
            }),
            None if self.stopped.get() => Err(StorageError::Closed(self.shard_id)),
            None => Ok(()),
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// The writer stopped and the spare task returned: nothing touches the log's files.
    pub fn is_quiet(&self) -> bool {
        self.stopped.get() && self.spares_done.get()
    }

    /// Why the writer stopped writing, while it has not resumed.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    fn fail(&self, err: &StorageError) {
        tracing::error!(shard = self.shard_id, error = %err, "log writer failed; the shard refuses writes until its log is repaired");
        *self.failure.borrow_mut() = Some(err.to_string());
        crate::stats::add(&self.stats.writer_failures, 1);
        self.progress.notify(usize::MAX);
    }

    /// Queues a repair, with the spare it consumes (which must be ready) and the next spare.
    pub fn resume_onto_spare(&self, mut repair: crate::log_repair::Repair) {
        assert_eq!(
            *self.spare.borrow(),
            SpareState::Ready,
            "a repair needs the spare ready"
        );
        repair.spare = self.take_spare();
        self.resume_pending.set(true);
        self.submit(WriteCommand::Resume(repair));
    }

    /// A `Resume` is queued or being applied.
    pub fn resume_pending(&self) -> bool {
        self.resume_pending.get()
    }
}

#[derive(Clone)]
pub struct WriterConfig {
    pub log_dir: PathBuf,
    pub segment_bytes: u64,
    pub buffer_bytes: usize,
    pub write_behind: usize,
}

pub(crate) struct OpenSegment {
    base: u64,
    path: PathBuf,
    writer: SegmentWriter,
}

/// Runs until a `Close` command is processed. A failure stops the writing until a repair
/// resumes it (see the module doc).
pub async fn run(state: Rc<LogState>, config: WriterConfig) {
    let mut open: Option<OpenSegment> = None;
    loop {
        match serve(&state, &config, &mut open).await {
            Ok(()) => break,
            Err(err) => {
                state.fail(&err);
                // Its buffered bytes are lost with it; the repair rewrites them from memory.
                drop(open.take());
                if !wait_for_resume(&state, &config, &mut open).await {
                    break;
                }
            }
        }
    }
    state.stopped.set(true);
    state.progress.notify(usize::MAX);
}

/// How many commands are queued now: `serve` runs that many before it syncs (not those queued
/// meanwhile, so a steady stream of appends never puts a sync off). What a failure leaves
/// unprocessed stays queued for `wait_for_resume`.
fn queued_now(state: &LogState) -> usize {
    state.commands.borrow().len()
}

fn next_command(state: &LogState) -> Option<WriteCommand> {
    state.commands.borrow_mut().pop_front()
}

async fn serve(
    state: &LogState,
    config: &WriterConfig,
    open: &mut Option<OpenSegment>,
) -> Result<()> {
    loop {
        let commands = state.command_ready.listen();
        let completions = state.write_completed.listen();
        let queued = queued_now(state);
        if queued == 0 {
            futures_lite::future::or(commands, completions).await;
            note_written(state, open);
            continue;
        }
        let mut sync_wanted = false;
        for _ in 0..queued {
            let Some(command) = next_command(state) else {
                break;
            };
            match command {
                WriteCommand::Append(bytes) => append(state, open, &bytes).await?,
                WriteCommand::Roll { base, spare } => {
                    roll(state, config, open, base, spare).await?
                }
                WriteCommand::Sync => sync_wanted = true,
                WriteCommand::Close => {
                    // A close that fails (its final sync) still stops the writer: the failure
                    // is reported to the store's close, which must not wait for a second Close.
                    if let Some(segment) = open.take() {
                        if let Err(err) = close(state, segment).await {
                            state.fail(&err);
                        }
                    }
                    return Ok(());
                }
                WriteCommand::Resume(_) => {
                    unreachable!("the store queues a Resume only while the writer is failed")
                }
            }
        }
        if sync_wanted {
            sync(state, open).await?;
        }
    }
}

/// Moves `written` to what the open segment's completed writes reach.
fn note_written(state: &LogState, open: &mut Option<OpenSegment>) {
    if let Some(segment) = open.as_mut() {
        let written = Written(segment.base + segment.writer.written());
        if written > state.durability.written() {
            state.durability.advance_written(written);
            state.progress.notify(usize::MAX);
        }
    }
}

/// The failed writer: discards writes until a `Resume` succeeds (true) or `Close` comes
/// (false). Spares are still prepared (by their own task), so a repair finds one; the spares of
/// discarded rolls are removed.
async fn wait_for_resume(
    state: &LogState,
    config: &WriterConfig,
    open: &mut Option<OpenSegment>,
) -> bool {
    loop {
        let listener = state.command_ready.listen();
        let Some(command) = next_command(state) else {
            listener.await;
            continue;
        };
        match command {
            WriteCommand::Append(_) | WriteCommand::Sync => {}
            WriteCommand::Roll { spare, .. } => remove_spare(config, spare).await,
            WriteCommand::Close => return false,
            WriteCommand::Resume(repair) => {
                let spare = repair.spare;
                let outcome = crate::log_repair::apply(state, config, open, repair).await;
                state.resume_pending.set(false);
                match outcome {
                    Ok(()) => {
                        *state.failure.borrow_mut() = None;
                        crate::stats::add(&state.stats.log_repairs, 1);
                        state.progress.notify(usize::MAX);
                        return true;
                    }
                    Err(err) => {
                        // Its spare was not opened as the new segment (or was renamed, and
                        // then ENOENT): the next attempt takes another, so this one goes.
                        remove_spare(config, spare).await;
                        state.fail(&err);
                    }
                }
            }
        }
    }
}

async fn append(state: &LogState, open: &mut Option<OpenSegment>, bytes: &[u8]) -> Result<()> {
    let segment = open
        .as_mut()
        .expect("append before the first roll: the store rolls at open");
    state
        .faults
        .check(crate::faults::FaultSite::Write)
        .map_err(|e| StorageError::io(&segment.path, e))?;
    segment.writer.write_all(bytes).await?;
    crate::stats::add(&state.stats.written_bytes, bytes.len() as u64);
    crate::stats::add(&state.batches_since_sync, 1);
    note_written(state, open);
    Ok(())
}

async fn sync(state: &LogState, open: &mut Option<OpenSegment>) -> Result<()> {
    let Some(segment) = open.as_mut() else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let before = state.durability.synced().0;
    let synced = segment.writer.sync().await?;
    state
        .faults
        .check(crate::faults::FaultSite::Sync)
        .map_err(|e| StorageError::io(&segment.path, e))?;
    let position = segment.base + synced;
    let stats = &state.stats;
    stats.fsync_latency.observe(started.elapsed());
    crate::stats::add(&stats.fsyncs, 1);
    crate::stats::add(&stats.synced_bytes, position.saturating_sub(before));
    crate::stats::add(&stats.synced_batches, state.batches_since_sync.replace(0));
    state.durability.advance_written(Written(position));
    state.durability.advance_synced(Synced(position));
    state.progress.notify(usize::MAX);
    Ok(())
}

async fn close(state: &LogState, segment: OpenSegment) -> Result<()> {
    let end = segment.base + segment.writer.pos();
    let path = segment.path.clone();
    segment.writer.close().await?;
    state
        .faults
        .check(crate::faults::FaultSite::Sync)
        .map_err(|e| StorageError::io(&path, e))?;
    state.durability.advance_written(Written(end));
    state.durability.advance_synced(Synced(end));
    state.progress.notify(usize::MAX);
    Ok(())
}

async fn roll(
    state: &LogState,
    config: &WriterConfig,
    open: &mut Option<OpenSegment>,
    base: u64,
    spare: u64,
) -> Result<()> {
    let rolled = roll_onto(state, config, open, base, spare).await;
    if rolled.is_err() {
        // Not renamed into place (or renamed, and then ENOENT): either way no one takes it.
        remove_spare(config, spare).await;
    }
    rolled
}

async fn roll_onto(
    state: &LogState,
    config: &WriterConfig,
    open: &mut Option<OpenSegment>,
    base: u64,
    spare: u64,
) -> Result<()> {
    state
        .faults
        .check(crate::faults::FaultSite::Write)
        .map_err(|e| StorageError::io(&config.log_dir, e))?;
    if let Some(segment) = open.take() {
        assert_eq!(
            segment.base + segment.writer.pos(),
            base,
            "roll must start where the log ends"
        );
        close(state, segment).await?;
    }
    assert_eq!(
        state.durability.written().0,
        base,
        "a new segment starts at the written end"
    );
    *open = Some(open_from_spare(state, config, base, spare).await?);
    Ok(())
}

/// Renames spare number `spare` into place as the segment at `base` and opens its writer.
pub(crate) async fn open_from_spare(
    state: &LogState,
    config: &WriterConfig,
    base: u64,
    spare: u64,
) -> Result<OpenSegment> {
    let path = segment_path(&config.log_dir, base);
    let spare = spare_path(&config.log_dir, spare);
    file_io::rename(&spare, &path)
        .await
        .map_err(|e| StorageError::glommio(&spare, e))?;
    let file = StoreFile::open_writable(&path, Writable::EXISTING)
        .await
        .map_err(|e| StorageError::glommio(&path, e))?;
    let writer = SegmentWriter::new(
        file,
        &path,
        config.buffer_bytes,
        config.write_behind,
        state.write_completed.clone(),
        state.stats.device_write_bytes.clone(),
    );
    Ok(OpenSegment { base, path, writer })
}

/// The spare task: makes spare number `spare_number` whenever one is wanted, until the writer
/// stops. Leftover spares of an earlier run go first (their numbers mean nothing now).
pub async fn prepare_spares(state: Rc<LogState>, config: WriterConfig) {
    remove_leftover_spares(&config).await;
    loop {
        let wanted = state.spare_wanted.listen();
        if state.is_stopped() {
            state.spares_done.set(true);
            state.progress.notify(usize::MAX);
            return;
        }
        if state.spare() == SpareState::Preparing {
            prepare_spare(&state, &config, state.spare_number.get()).await;
            continue;
        }
        futures_lite::future::or(wanted, state.progress.listen()).await;
    }
}

async fn remove_spare(config: &WriterConfig, spare: u64) {
    let path = spare_path(&config.log_dir, spare);
    if let Err(err) = file_io::remove(&path).await {
        if os_error(&err) != Some(libc::ENOENT) {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove an unused spare segment; its space stays taken until the next start");
        }
    }
}

async fn remove_leftover_spares(config: &WriterConfig) {
    let dir = config.log_dir.clone();
    let listed = glommio::executor()
        .spawn_blocking(move || file_io::list_dir(&dir))
        .await;
    let leftovers = listed.unwrap_or_default().into_iter().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(SPARE_PREFIX))
    });
    for path in leftovers {
        if let Err(err) = file_io::remove(&path).await {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove a spare segment an earlier run left");
        }
    }
}

/// Creates spare number `spare` and reserves a whole segment's blocks for it. Never fatal: a
/// failure leaves [`SpareState::Failed`] for the store to retry.
async fn prepare_spare(state: &LogState, config: &WriterConfig, spare: u64) {
    let path = spare_path(&config.log_dir, spare);
    let outcome = async {
        // Emptied if a file of that name is left (a removal at start that failed): a spare
        // holds nothing, the writer starts at its offset 0.
        let file = StoreFile::open_writable(&path, Writable::REPLACE).await?;
        // Blocks allocated up front also keep DMA writes from turning synchronous in the
        // filesystem. keep_size: the file stays empty, so the writer starts at its offset 0.
        let reserved = file.pre_allocate(config.segment_bytes, true).await;
        let _ = file.close().await;
        match reserved {
            Err(e) if os_error(&e) == Some(libc::EOPNOTSUPP) => {
                tracing::warn!(path = %path.display(), "this filesystem cannot preallocate: a full disk will fail writes of acknowledged data");
                Ok(())
            }
            other => other,
        }
    }
    .await;
    match outcome {
        Ok(()) => {
            if state.last_spare_failure.borrow_mut().take().is_some() {
                tracing::warn!(
                    shard = state.shard_id,
                    "the next segment is reserved again: appends resume"
                );
            }
            state.set_spare(SpareState::Ready)
        }
        Err(err) => {
            let message = format!(
                "no room to reserve the next segment ({} bytes) in {}: {err}",
                config.segment_bytes,
                config.log_dir.display()
            );
            let last = state.last_spare_failure.replace(Some(message.clone()));
            if last.as_ref() != Some(&message) {
                tracing::error!(shard = state.shard_id, reason = %message, "the shard cannot reserve its next segment: appends that need it are refused until space is freed; reads go on");
            }
            // Whatever was allocated is given back: a half-reserved spare helps no one.
            let _ = file_io::remove(&path).await;
            state.set_spare(SpareState::Failed(message));
        }
    }
}

/// The OS error number behind a glommio I/O error, if there is one.
pub fn os_error(err: &glommio::GlommioError<()>) -> Option<i32> {
    match err {
        glommio::GlommioError::IoError(e) => e.raw_os_error(),
        glommio::GlommioError::EnhancedIoError { source, .. } => source.raw_os_error(),
        _ => None,
    }
}
