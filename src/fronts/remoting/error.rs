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
            // Java clients retry SYSTEM_BUSY (on another broker when they can).
            CoreError::Storage(StorageError::Busy { .. }) => code::SYSTEM_BUSY,
            CoreError::InvalidArgument(_)
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
        assert!(busy.remark.contains("busy"), "{}", busy.remark);
        let refusing = Refusal::from(CoreError::Storage(StorageError::WritesRefused {
            shard_id: 1,
            reason: "disk full".into(),
        }));
        assert_eq!(refusing.code, code::SERVICE_NOT_AVAILABLE);
    }
}
