//! Errors of the wire layer. [`ProtocolError`] is what decoding untrusted bytes can fail with;
//! [`ErrorCode`] is the stable number an error reply carries. Codes are never reused: a retired
//! code leaves a gap.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    FrameTooLarge { len: u32, max: u32 },
    #[error("unknown frame kind {0}")]
    UnknownKind(u16),
    #[error("frame payload truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("frame payload has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("metadata of {len} bytes exceeds the limit of {max}")]
    MetaTooLarge { len: u32, max: u32 },
    #[error("metadata is not a valid archive: {0}")]
    BadArchive(String),
    #[error("batch magic {got:#x} is not {expected:#x}")]
    BadMagic { got: u32, expected: u32 },
    #[error("batch version {0} is not supported")]
    BadVersion(u8),
    #[error("batch header field {field} is invalid: {reason}")]
    BadBatchHeader { field: &'static str, reason: String },
    #[error("batch body CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BodyCrcMismatch { stored: u32, computed: u32 },
    #[error("batch header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderCrcMismatch { stored: u32, computed: u32 },
    #[error("batch holds {count} records, header says {expected}")]
    RecordCountMismatch { count: usize, expected: u32 },
}

/// The code an [`crate::messages::ErrorReply`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame could not be decoded; the connection is closed after this reply.
    BadFrame = 1,
    /// The batch failed validation (CRC, header, archive); nothing was stored.
    BadBatch = 2,
    /// A request field is out of range (queue count, topic name, sizes).
    InvalidArgument = 3,
    TopicNotFound = 10,
    TopicExists = 11,
    QueueNotFound = 12,
    /// This shard does not own the queue; the reply names the shard that does.
    WrongShard = 13,
    /// A pull asked for an offset past the queue's end or before its start.
    OffsetOutOfRange = 14,
    /// The topic's permission does not allow this (not writable, not readable).
    NoPermission = 15,
    /// The storage layer failed (I/O error, disk full). Nothing was acknowledged.
    Storage = 20,
    /// The broker is shutting down and takes no new work.
    ShuttingDown = 21,
    /// The request kind is known but this endpoint does not serve it.
    Unsupported = 22,
    /// Another shard that had to serve part of the request is not taking calls (it is
    /// stopping); retry.
    Unavailable = 23,
    /// The shard refuses writes because its disk is (nearly) full; reads go on, and writes
    /// resume by themselves (once space is freed, or the log repaired after a write error). Nothing of the request was stored; retry later.
    WritesRefused = 24,
    /// The shard's disk is behind: the append waited the broker's `--busy-after-ms` for room
    /// and was not stored. Retry (after a pause, or on another queue).
    Busy = 25,
    /// The broker runs with ACL on and the Hello carried no credentials, an unknown access key,
    /// a wrong signature or a clock too far off; the connection is closed after this reply.
    Unauthenticated = 26,
    /// The connection's ACL account lacks the permission the request needs (publish or
    /// subscribe on a topic or group, or admin). Nothing of the request was done.
    AccessDenied = 27,
}

impl ErrorCode {
    /// The code's name in snake case, for metrics labels.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadFrame => "bad_frame",
            BadBatch => "bad_batch",
            InvalidArgument => "invalid_argument",
            TopicNotFound => "topic_not_found",
            TopicExists => "topic_exists",
            QueueNotFound => "queue_not_found",
            WrongShard => "wrong_shard",
            OffsetOutOfRange => "offset_out_of_range",
            NoPermission => "no_permission",
            Storage => "storage",
            ShuttingDown => "shutting_down",
            Unsupported => "unsupported",
            Unavailable => "unavailable",
            WritesRefused => "writes_refused",
            Busy => "busy",
            Unauthenticated => "unauthenticated",
            AccessDenied => "access_denied",
        }
    }

    pub fn from_u16(code: u16) -> Option<Self> {
        use ErrorCode::*;
        Some(match code {
            1 => BadFrame,
            2 => BadBatch,
            3 => InvalidArgument,
            10 => TopicNotFound,
            11 => TopicExists,
            12 => QueueNotFound,
            13 => WrongShard,
            14 => OffsetOutOfRange,
            15 => NoPermission,
            20 => Storage,
            21 => ShuttingDown,
            22 => Unsupported,
            23 => Unavailable,
            24 => WritesRefused,
            25 => Busy,
            26 => Unauthenticated,
            27 => AccessDenied,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=u16::MAX {
            if let Some(c) = ErrorCode::from_u16(code) {
                assert_eq!(c as u16, code);
            }
        }
        assert_eq!(ErrorCode::from_u16(13), Some(ErrorCode::WrongShard));
        assert_eq!(ErrorCode::from_u16(4), None);
    }
}
