//! What a request handler can fail with, and how each failure maps to a wire error code.

use shardmq_protocol::messages::ErrorReply;
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
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    #[error("topic {topic:?} has {queues} queues; queue {queue_id} does not exist")]
    QueueNotFound {
        topic: String,
        queue_id: u32,
        queues: u32,
    },
    #[error("shard {this} does not own topic {topic:?} queue {queue_id}; shard {owner} does")]
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
        }
    }

    pub fn to_reply(&self) -> ErrorReply {
        let owner_shard = match self {
            HandlerError::WrongShard { owner, .. } => Some(*owner),
            _ => None,
        };
        ErrorReply {
            code: self.code() as u16,
            message: self.to_string(),
            owner_shard,
        }
    }
}
