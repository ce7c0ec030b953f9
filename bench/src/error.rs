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
    /// The system answered busy (shardmq's native Busy, RocketMQ's SYSTEM_BUSY): the request
    /// stored nothing and may be sent again; the engine retries it (see `BenchError::is_busy`).
    #[error("{system}: busy: {message}")]
    Busy {
        system: &'static str,
        message: String,
    },
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

impl BenchError {
    /// A busy answer: nothing was stored, and sending the request again later is what a
    /// RocketMQ client does (5.3 on) and what the engine does.
    pub fn is_busy(&self) -> bool {
        match self {
            BenchError::Busy { .. } => true,
            BenchError::Client(e) => e.is_code(shardmq_protocol::ErrorCode::Busy),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_protocol::ErrorCode;

    fn broker_error(code: ErrorCode) -> BenchError {
        BenchError::Client(ClientError::Broker {
            code: Some(code),
            raw_code: code as u16,
            message: "m".into(),
            owner_shard: None,
        })
    }

    #[test]
    fn busy_is_the_native_busy_code_or_a_peer_busy_answer() {
        assert!(broker_error(ErrorCode::Busy).is_busy());
        assert!(BenchError::Busy {
            system: "rocketmq-rust",
            message: "SYSTEM_BUSY".into()
        }
        .is_busy());
        assert!(!broker_error(ErrorCode::TopicNotFound).is_busy());
        assert!(!BenchError::Peer {
            system: "nats",
            message: "x".into()
        }
        .is_busy());
    }
}
