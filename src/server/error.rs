//! What a request handler can fail with, and how each failure maps to a wire error code.

use shardmq_protocol::envelope;
use shardmq_protocol::messages::ErrorReply;
use shardmq_protocol::text::{bounded, Shown};
use shardmq_protocol::{ErrorCode, ProtocolError};
use shardmq_shards::StorageError;
use thiserror::Error;

use crate::topics::TopicError;

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("bad frame: {0}")]
    BadFrame(ProtocolError),
    #[error("bad batch: {0}")]
    BadBatch(ProtocolError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("topic {} does not exist", Shown(.0))]
    TopicNotFound(String),
    #[error("topic {} has {queues} queues; queue {queue_id} does not exist", Shown(.topic))]
    QueueNotFound {
        topic: String,
        queue_id: u32,
        queues: u32,
    },
    #[error("shard {this} does not own topic {} queue {queue_id}; shard {owner} does", Shown(.topic))]
    WrongShard {
        topic: String,
        queue_id: u32,
        this: u32,
        owner: u32,
    },
    #[error("{0}")]
    Topic(#[from] TopicError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("{0} is not a request this endpoint serves")]
    Unsupported(String),
    #[error("the reply cannot be encoded: {0}")]
    ReplyTooLarge(ProtocolError),
}

impl HandlerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            HandlerError::BadFrame(_) => ErrorCode::BadFrame,
            HandlerError::BadBatch(_) => ErrorCode::BadBatch,
            HandlerError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            HandlerError::TopicNotFound(_) => ErrorCode::TopicNotFound,
            HandlerError::QueueNotFound { .. } => ErrorCode::QueueNotFound,
            HandlerError::WrongShard { .. } => ErrorCode::WrongShard,
            HandlerError::Topic(TopicError::Exists(_)) => ErrorCode::TopicExists,
            HandlerError::Topic(TopicError::Invalid(_) | TopicError::TooMany(_)) => {
                ErrorCode::InvalidArgument
            }
            HandlerError::Topic(_) => ErrorCode::Storage,
            HandlerError::Storage(StorageError::OffsetOutOfRange { .. }) => {
                ErrorCode::OffsetOutOfRange
            }
            HandlerError::Storage(StorageError::Closed(_)) | HandlerError::ShuttingDown => {
                ErrorCode::ShuttingDown
            }
            HandlerError::Storage(_) => ErrorCode::Storage,
            HandlerError::Unsupported(_) => ErrorCode::Unsupported,
            HandlerError::ReplyTooLarge(_) => ErrorCode::InvalidArgument,
        }
    }

    pub fn to_reply(&self) -> ErrorReply {
        let owner_shard = match self {
            HandlerError::WrongShard { owner, .. } => Some(*owner),
            _ => None,
        };
        ErrorReply {
            code: self.code() as u16,
            message: bounded(self.to_string()),
            owner_shard,
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
