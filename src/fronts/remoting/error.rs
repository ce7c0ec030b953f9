//! What a refused remoting request is answered with: a RocketMQ response code and a remark,
//! mapped from the core's errors in one place (`../shared/reference/rocketmq-protocol.md` §3.2).

use shardmq_protocol::remoting::codes::response as code;
use shardmq_protocol::remoting::ext::FieldError;
use shardmq_shards::StorageError;

use crate::core::topics::TopicError;
use crate::core::CoreError;

/// A response code with its remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i32,
    pub remark: String,
}

impl Refusal {
    pub fn new(code: i32, remark: impl std::fmt::Display) -> Refusal {
        Refusal {
            code,
            remark: remark.to_string(),
        }
    }

    pub fn system(remark: impl std::fmt::Display) -> Refusal {
        Refusal::new(code::SYSTEM_ERROR, remark)
    }
}

impl From<FieldError> for Refusal {
    fn from(e: FieldError) -> Self {
        Refusal::system(e)
    }
}

impl From<CoreError> for Refusal {
    fn from(e: CoreError) -> Self {
        if let CoreError::Storage(StorageError::Busy { .. }) = &e {
            // Java's remark for a send that waited out the page-cache-busy timeout; clients
            // from 5.3.0 retry SYSTEM_BUSY on another broker, older ones hand it to the app.
            return Refusal::new(
                code::SYSTEM_BUSY,
                format!("[PCBUSY_CLEAN_QUEUE]broker busy, start flow control for a while: {e}"),
            );
        }
        let code = match &e {
            CoreError::BadBatch(_) => code::MESSAGE_ILLEGAL,
            CoreError::TopicNotFound(_) | CoreError::Topic(TopicError::NotFound(_)) => {
                code::TOPIC_NOT_EXIST
            }
            CoreError::Topic(TopicError::Exists(_)) => code::TOPIC_EXIST_ALREADY,
            CoreError::NoPermission { .. } | CoreError::GroupNoPermission { .. } => {
                code::NO_PERMISSION
            }
            CoreError::Storage(StorageError::Closed(_) | StorageError::WritesRefused { .. })
            | CoreError::ShuttingDown
            | CoreError::ShardUnavailable(_) => code::SERVICE_NOT_AVAILABLE,
            CoreError::LimitReached(_) => code::SYSTEM_BUSY,
            CoreError::InvalidArgument(_)
            | CoreError::InvalidReceiptHandle(_)
            | CoreError::QueueNotFound { .. }
            | CoreError::Topic(_)
            | CoreError::Storage(_) => code::SYSTEM_ERROR,
        };
        Refusal::new(code, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_shard_answers_system_busy_and_a_refusing_one_service_not_available() {
        let busy = Refusal::from(CoreError::Storage(StorageError::Busy {
            shard_id: 1,
            waited_ms: 1000,
        }));
        assert_eq!(busy.code, code::SYSTEM_BUSY);
        assert!(
            busy.remark.starts_with("[PCBUSY_CLEAN_QUEUE]broker busy"),
            "{}",
            busy.remark
        );
        let refusing = Refusal::from(CoreError::Storage(StorageError::WritesRefused {
            shard_id: 1,
            reason: "disk full".into(),
        }));
        assert_eq!(refusing.code, code::SERVICE_NOT_AVAILABLE);
    }
}
