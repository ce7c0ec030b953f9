//! RocketMQ 5.x answers: every reply carries a `Status` whose `code` is set (a `Status` with
//! code 0 is an error to every client), and failures travel in it with gRPC status OK, as the
//! RocketMQ proxy answers (`docs/grpc-5x-client.md` §5). Core errors map here, in one place.

use shardmq_grpc_proto::v2::{Code, Status};
use shardmq_shards::StorageError;

use crate::acl::Denied;
use crate::core::CoreError;

/// A failed call: the RocketMQ code and a message for the client's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> Status {
        Status {
            code: self.code as i32,
            message: self.message.clone(),
        }
    }
}

pub fn ok() -> Status {
    Status {
        code: Code::Ok as i32,
        message: "OK".into(),
    }
}

/// The status of a call's outcome.
pub fn of<T>(result: &Result<T, Refusal>) -> Status {
    match result {
        Ok(_) => ok(),
        Err(refusal) => refusal.status(),
    }
}

impl From<CoreError> for Refusal {
    fn from(err: CoreError) -> Refusal {
        let code = match &err {
            CoreError::TopicNotFound(_) => Code::TopicNotFound,
            CoreError::QueueNotFound { .. } => Code::NotFound,
            CoreError::NoPermission { .. } | CoreError::GroupNoPermission { .. } => Code::Forbidden,
            CoreError::BadBatch(_) | CoreError::InvalidArgument(_) => Code::BadRequest,
            CoreError::InvalidReceiptHandle(_) => Code::InvalidReceiptHandle,
            CoreError::LimitReached(_) => Code::TooManyRequests,
            CoreError::Topic(_) => Code::IllegalTopic,
            // Nothing was stored; the client waits out its backoff and sends again.
            CoreError::Storage(StorageError::Busy { .. })
            | CoreError::Storage(StorageError::WritesRefused { .. }) => Code::TooManyRequests,
            CoreError::Storage(_) | CoreError::ShuttingDown | CoreError::ShardUnavailable(_) => {
                Code::InternalServerError
            }
        };
        Refusal::new(code, err.to_string())
    }
}

impl From<Denied> for Refusal {
    fn from(denied: Denied) -> Refusal {
        let code = match denied {
            Denied::NeedsAdmin { .. } | Denied::NoPermission { .. } => Code::Forbidden,
            _ => Code::Unauthorized,
        };
        Refusal::new(code, denied.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_full_shards_ask_for_a_retry_and_permissions_are_forbidden() {
        let busy = CoreError::Storage(StorageError::Busy {
            shard_id: 0,
            waited_ms: 1000,
        });
        assert_eq!(Refusal::from(busy).code, Code::TooManyRequests);
        let missing = Refusal::from(CoreError::TopicNotFound("t".into()));
        assert_eq!(missing.code, Code::TopicNotFound);
        assert!(missing.message.contains("does not exist"));
        let denied = Denied::NoPermission {
            access_key: "ak".into(),
            need: crate::acl::Need::Publish,
            resource: "topic t".into(),
        };
        assert_eq!(Refusal::from(denied).code, Code::Forbidden);
        assert_eq!(
            Refusal::from(Denied::NoCredentials).code,
            Code::Unauthorized
        );
        assert_ne!(ok().code, 0, "a status always sets its code");
    }
}
