//! What a broker-core call can fail with, independent of any wire protocol. Each front end maps
//! these to its own codes (native `ErrorCode`, RocketMQ response codes) in one place.
//!
//! Every text that repeats something a client sent shows it through `text::Shown`, so an error
//! never grows with a client's input.

use shardmq_protocol::text::Shown;
use shardmq_protocol::ProtocolError;
use shardmq_shards::StorageError;
use thiserror::Error;

use crate::core::topics::TopicError;

#[derive(Debug, Error)]
pub enum CoreError {
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
    #[error("topic {} is not {what}", Shown(.topic))]
    NoPermission { topic: String, what: &'static str },
    #[error("subscription group {} may not {what}", Shown(.group))]
    GroupNoPermission { group: String, what: &'static str },
    #[error("{0}")]
    Topic(#[from] TopicError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// A bound of the broker's own state was reached; retry later (nothing was done).
    #[error("{0}")]
    LimitReached(String),
    /// A POP acknowledgement or invisibility change whose receipt handle is not the current one.
    #[error("invalid receipt handle: {0}")]
    InvalidReceiptHandle(String),
    /// A cross-shard call could not be delivered or answered (the other shard is stopping).
    #[error("shard {0} is not taking calls")]
    ShardUnavailable(u32),
}

pub type CoreResult<T> = Result<T, CoreError>;
