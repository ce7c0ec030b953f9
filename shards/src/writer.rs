//! The log writer: one task per shard that owns the open segment's `DmaStreamWriter` and is the
//! only code that writes, syncs, rolls or closes log files.
//!
//! Durability contract (see `durability` for the three positions):
//! - `append` in the store makes a batch *appended*: it has a log position, is in the hot tail
//!   and the index, and is queued here. A crash loses it.
//! - After this task copied it into the DMA writer and the DMA write completed, it is *written*
//!   (`current_flushed_pos`): readable from the file by other handles.
//! - After an `fdatasync` that began after it was written, it is *synced*: it survives a crash.
//!   `flush = sync` acknowledges a produce only then; `flush = async` syncs every interval.
//!
//! Group commit: commands queue up while a write or sync is in flight; the task drains every
//! queued command before it syncs, so one `fdatasync` covers every batch that asked for one.
//!
//! Rolls: the old segment is closed (flushed, synced, truncated to its real length) before the
//! next file is created, so only the last segment can ever hold a torn tail.
//!
//! A write error is sticky: the store refuses further appends and every waiter is woken with
//! the failure; nothing after the failure point is acknowledged.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;
use event_listener::Event;
use futures_lite::AsyncWriteExt;
use glommio::io::{DmaFile, DmaStreamWriter, DmaStreamWriterBuilder};

use crate::durability::{Durability, Synced, Written};
use crate::error::{Result, StorageError};
use crate::segment::segment_path;

pub enum WriteCommand {
    /// Start a new segment whose first byte has log position `base`.
    Roll {
        base: u64,
    },
    Append(Bytes),
    /// Sync everything appended so far.
    Sync,
    /// Flush, sync and close the open segment, then stop.
    Close,
}

/// State shared between the store and its writer task (same core).
pub struct LogState {
    pub shard_id: u32,
    pub durability: Durability,
    commands: RefCell<VecDeque<WriteCommand>>,
    command_ready: Event,
    /// Notified whenever written or synced moves, and on failure and stop.
    pub progress: Event,
    failure: RefCell<Option<String>>,
    stopped: std::cell::Cell<bool>,
}

impl LogState {
    pub fn new(shard_id: u32, recovered_end: u64) -> Self {
        LogState {
            shard_id,
            durability: Durability::recovered(recovered_end),
            commands: RefCell::new(VecDeque::new()),
            command_ready: Event::new(),
            progress: Event::new(),
            failure: RefCell::new(None),
            stopped: std::cell::Cell::new(false),
        }
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

    fn fail(&self, err: &StorageError) {
        tracing::error!(shard = self.shard_id, error = %err, "log writer failed; the shard refuses writes");
        *self.failure.borrow_mut() = Some(err.to_string());
        self.progress.notify(usize::MAX);
    }
}

pub struct WriterConfig {
    pub log_dir: PathBuf,
    pub segment_bytes: u64,
    pub buffer_bytes: usize,
    pub write_behind: usize,
}

struct OpenSegment {
    base: u64,
    path: PathBuf,
    writer: DmaStreamWriter,
}

/// Runs until a `Close` command is processed or a write fails.
pub async fn run(state: Rc<LogState>, config: WriterConfig) {
    let mut open: Option<OpenSegment> = None;
    if let Err(err) = serve(&state, &config, &mut open).await {
        state.fail(&err);
    }
    state.stopped.set(true);
    state.progress.notify(usize::MAX);
}

async fn serve(
    state: &LogState,
    config: &WriterConfig,
    open: &mut Option<OpenSegment>,
) -> Result<()> {
    loop {
        let listener = state.command_ready.listen();
        let drained: Vec<WriteCommand> = state.commands.borrow_mut().drain(..).collect();
        if drained.is_empty() {
            listener.await;
            continue;
        }
        let mut sync_wanted = false;
        for command in drained {
            match command {
                WriteCommand::Append(bytes) => append(state, open, &bytes).await?,
                WriteCommand::Roll { base } => roll(state, config, open, base).await?,
                WriteCommand::Sync => sync_wanted = true,
                WriteCommand::Close => {
                    if let Some(segment) = open.take() {
                        close(state, segment).await?;
                    }
                    return Ok(());
                }
            }
        }
        if sync_wanted {
            sync(state, open).await?;
        }
    }
}

async fn append(state: &LogState, open: &mut Option<OpenSegment>, bytes: &[u8]) -> Result<()> {
    let segment = open
        .as_mut()
        .expect("append before the first roll: the store rolls at open");
    segment
        .writer
        .write_all(bytes)
        .await
        .map_err(|e| StorageError::io(&segment.path, e))?;
    state
        .durability
        .advance_written(Written(segment.base + segment.writer.current_flushed_pos()));
    state.progress.notify(usize::MAX);
    Ok(())
}

async fn sync(state: &LogState, open: &mut Option<OpenSegment>) -> Result<()> {
    let Some(segment) = open.as_mut() else {
        return Ok(());
    };
    let synced = segment
        .writer
        .sync()
        .await
        .map_err(|e| StorageError::glommio(&segment.path, e))?;
    let position = segment.base + synced;
    state.durability.advance_written(Written(position));
    state.durability.advance_synced(Synced(position));
    state.progress.notify(usize::MAX);
    Ok(())
}

async fn close(state: &LogState, mut segment: OpenSegment) -> Result<()> {
    let end = segment.base + segment.writer.current_pos();
    segment
        .writer
        .close()
        .await
        .map_err(|e| StorageError::io(&segment.path, e))?;
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
) -> Result<()> {
    if let Some(segment) = open.take() {
        assert_eq!(
            segment.base + segment.writer.current_pos(),
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
    let path = segment_path(&config.log_dir, base);
    let file = DmaFile::create(&path)
        .await
        .map_err(|e| StorageError::glommio(&path, e))?;
    // Allocating blocks up front keeps DMA writes from turning synchronous in the filesystem.
    if let Err(err) = file.pre_allocate(config.segment_bytes, true).await {
        tracing::warn!(path = %path.display(), error = %err, "could not preallocate segment");
    }
    let writer = DmaStreamWriterBuilder::new(file)
        .with_buffer_size(config.buffer_bytes)
        .with_write_behind(config.write_behind)
        .build();
    *open = Some(OpenSegment { base, path, writer });
    Ok(())
}
