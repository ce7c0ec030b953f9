//! [`BenchError`]: why a benchmark run failed. Plain data, `Send`, returned from the thread that
//! called `run_produce` / `run_consume`.

use std::path::PathBuf;

use shardmq_client::ClientError;
use thiserror::Error;

use crate::report::Report;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    #[error("topic {0:?} does not exist on the broker; create it first (the bench does not)")]
    TopicNotFound(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("glommio executor: {0}")]
    Executor(String),
    /// This executor gave up because another one failed before the start (whose error is the
    /// one to report).
    #[error("another bench executor failed to start")]
    OtherExecutorFailed,
    /// The consume run stopped before receiving the expected number of messages; the partial
    /// report is attached.
    #[error("received {received} of {expected} messages: no progress for {idle_ms} ms")]
    Incomplete {
        expected: u64,
        received: u64,
        idle_ms: u64,
        report: Box<Report>,
    },
    #[error("stopped after {count} errors; last: {last}")]
    TooManyErrors { count: u64, last: String },
    /// A peer system failed (or answered what its protocol does not allow).
    #[error("{system}: {message}")]
    Peer {
        system: &'static str,
        message: String,
    },
    /// A pulled batch failed validation (CRC, header, archive): data is corrupt.
    #[error("corrupt data from the broker: {0}")]
    Corrupt(ClientError),
    #[error("writing {}: {source}", path.display())]
    WriteReport {
        path: PathBuf,
        source: std::io::Error,
    },
}
