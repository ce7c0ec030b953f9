//! What a native request can fail with, and the one place those failures become wire error
//! codes: decoding failures of this protocol, and the core's errors.

use shardmq_protocol::envelope;
use shardmq_protocol::messages::ErrorReply;
use shardmq_protocol::text::bounded;
use shardmq_protocol::{ErrorCode, ProtocolError};
use shardmq_shards::StorageError;
use thiserror::Error;

use crate::acl::Denied;
use crate::core::topics::TopicError;
use crate::core::CoreError;

#[derive(Debug, Error)]
pub enum NativeError {
    #[error("bad frame: {0}")]
    BadFrame(ProtocolError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} is not a request this endpoint serves")]
    Unsupported(String),
    #[error("the reply cannot be encoded: {0}")]
    ReplyTooLarge(ProtocolError),
    #[error("offset {offset} is out of range [{min}, {max}]")]
    OffsetOutOfRange { offset: u64, min: u64, max: u64 },
    #[error("{0}")]
    Core(#[from] CoreError),
    /// The Hello did not prove an ACL account.
    #[error("{0}")]
    Unauthenticated(Denied),
    /// The connection's account may not do this.
    #[error("{0}")]
    AccessDenied(Denied),
}

impl From<StorageError> for NativeError {
    fn from(e: StorageError) -> Self {
        NativeError::Core(CoreError::Storage(e))
    }
}

fn core_code(err: &CoreError) -> ErrorCode {
    match err {
        CoreError::BadBatch(_) => ErrorCode::BadBatch,
        CoreError::InvalidArgument(_) | CoreError::InvalidReceiptHandle(_) => {
            ErrorCode::InvalidArgument
        }
        CoreError::TopicNotFound(_) | CoreError::Topic(TopicError::NotFound(_)) => {
            ErrorCode::TopicNotFound
        }
        CoreError::QueueNotFound { .. } => ErrorCode::QueueNotFound,
        CoreError::NoPermission { .. } | CoreError::GroupNoPermission { .. } => {
            ErrorCode::NoPermission
        }
        CoreError::Topic(TopicError::Exists(_)) => ErrorCode::TopicExists,
        CoreError::Topic(TopicError::Invalid(_) | TopicError::TooMany(_)) => {
            ErrorCode::InvalidArgument
        }
        CoreError::Topic(_) => ErrorCode::Storage,
        CoreError::Storage(StorageError::OffsetOutOfRange { .. }) => ErrorCode::OffsetOutOfRange,
        CoreError::Storage(StorageError::WritesRefused { .. }) => ErrorCode::WritesRefused,
        CoreError::Storage(StorageError::Busy { .. }) | CoreError::LimitReached(_) => {
            ErrorCode::Busy
        }
        CoreError::Storage(StorageError::Closed(_)) | CoreError::ShuttingDown => {
            ErrorCode::ShuttingDown
        }
        CoreError::Storage(_) => ErrorCode::Storage,
        CoreError::ShardUnavailable(_) => ErrorCode::Unavailable,
    }
}

impl NativeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            NativeError::BadFrame(_) => ErrorCode::BadFrame,
            NativeError::InvalidArgument(_) | NativeError::ReplyTooLarge(_) => {
                ErrorCode::InvalidArgument
            }
            NativeError::Unsupported(_) => ErrorCode::Unsupported,
            NativeError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            NativeError::Core(err) => core_code(err),
            NativeError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            NativeError::AccessDenied(_) => ErrorCode::AccessDenied,
        }
    }

    /// Rejections worth a warning (the client sent something wrong), rather than the ordinary
    /// failures a client handles (no such topic, shutting down).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            NativeError::BadFrame(_)
                | NativeError::InvalidArgument(_)
                | NativeError::Unauthenticated(_)
                | NativeError::AccessDenied(_)
                | NativeError::Core(CoreError::BadBatch(_) | CoreError::InvalidArgument(_))
        )
    }

    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply {
            code: self.code() as u16,
            message: bounded(self.to_string()),
            owner_shard: None,
        }
    }

    /// The error reply's payload. Never fails: the message is bounded, and should encoding fail
    /// anyway the reply goes without its message.
    pub fn encode_reply(&self) -> Vec<u8> {
        let mut reply = self.to_reply();
        envelope::encode(&reply).unwrap_or_else(|_| {
            reply.message.clear();
            envelope::encode(&reply).unwrap_or_default()
        })
    }
}
