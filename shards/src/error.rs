//! Errors of the storage layer, with the context needed to find the bytes in question.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("glommio I/O on {path}: {message}")]
    Glommio { path: PathBuf, message: String },
    #[error("shard {shard_id}: corrupt log in sealed segment {segment} at position {position}: {reason}")]
    CorruptSealedSegment {
        shard_id: u32,
        segment: PathBuf,
        position: u64,
        reason: String,
    },
    #[error(
        "offset {offset} is out of range [{min}, {max}) for topic {topic_id} queue {queue_id}"
    )]
    OffsetOutOfRange {
        topic_id: u32,
        queue_id: u32,
        offset: u64,
        min: u64,
        max: u64,
    },
    #[error("{path} at {position} holds {what}; start the version of shardmq that wrote it, or move the data directory aside")]
    UnsupportedFormat {
        path: PathBuf,
        position: u64,
        what: String,
    },
    /// Nothing of the append was stored; writes resume by themselves (space freed, the log
    /// repaired).
    #[error("shard {shard_id} refuses writes for now: {reason}; reads go on, and writes resume by themselves")]
    WritesRefused { shard_id: u32, reason: String },
    /// The append waited `busy_after` for room and was refused; nothing was stored. Retry.
    #[error("shard {shard_id} is busy: the append waited {waited_ms} ms for the disk to catch up and was not stored; retry")]
    Busy { shard_id: u32, waited_ms: u64 },
    /// A read planned before retention deleted what it needed: the segment at a log position,
    /// or the index entry of a queue offset (the caller answers with the queue's new start).
    #[error("position or offset {0} was deleted by retention while a read was planned")]
    PositionDeleted(u64),
    /// A queue's index entry points at a batch that is not the one it names (a damaged index
    /// file): the read fails; the rest of the store goes on.
    #[error("the index of topic {topic_id} queue {queue_id} is damaged at offset {offset} (log position {position}): {reason}")]
    CorruptIndex {
        topic_id: u32,
        queue_id: u32,
        offset: u64,
        position: u64,
        reason: String,
    },
    /// An index entry names a batch the log cannot hold there (past its end, across a segment
    /// end): a damaged index file; the read fails.
    #[error(
        "a queue index entry is damaged: it points at log position {position}, where {reason}"
    )]
    CorruptIndexEntry { position: u64, reason: String },
    #[error("the store of shard {0} is closed")]
    Closed(u32),
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The writer failed while this append waited for its sync: it was not acknowledged, and
    /// may still be stored once the log is repaired (see `log_repair`).
    #[error("the log writer of shard {shard_id} failed before this write was durable (it may yet be stored once the log is repaired): {message}")]
    WriterFailed { shard_id: u32, message: String },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn glommio(path: impl Into<PathBuf>, err: glommio::GlommioError<()>) -> Self {
        StorageError::Glommio {
            path: path.into(),
            message: err.to_string(),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
