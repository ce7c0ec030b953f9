//! [`ClientError`]: every way a client call can fail, as one typed enum.
//!
//! Owns the mapping from wire-level failures to client errors: an `ErrorReply` frame becomes
//! [`ClientError::Broker`] (the numeric code is kept even when this client does not know it),
//! undecodable bytes become [`ClientError::Protocol`], socket failures [`ClientError::Io`].
//!
//! `ClientError` is `Clone` (by hand, since `std::io::Error` and `ProtocolError` are not) because
//! one failed batch or one broken connection must be reported to every record or request that
//! was waiting on it. Cloning an `Io` error keeps its kind and message, not its source chain.
//! Plain data; usable on any thread.

use std::fmt;
use std::time::Duration;

use shardmq_protocol::messages::ErrorReply;
use shardmq_protocol::{ErrorCode, ProtocolError};
use thiserror::Error;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum ClientError {
    /// The socket failed (connect, read or write).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The broker sent bytes this client cannot decode (bad frame, envelope, archive or batch).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The broker answered with an `ErrorReply`.
    #[error("{}", BrokerDisplay { code: *code, raw_code: *raw_code, message, owner_shard: *owner_shard })]
    Broker {
        /// The code, when this client knows it.
        code: Option<ErrorCode>,
        /// The code as it was on the wire.
        raw_code: u16,
        message: String,
        /// For `WrongShard`: the shard that owns the queue.
        owner_shard: Option<u32>,
    },
    /// No reply within the request timeout (or the connect timeout).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection (or the producer) was closed before the reply arrived.
    #[error("connection closed")]
    Closed,
    /// The broker answered with a reply of the wrong kind, or one that breaks an invariant
    /// (wrong shard in a handshake, batches out of order in a pull reply).
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// The caller passed something the broker would refuse (checked before sending).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The broker speaks a routing or protocol version this client cannot serve.
    #[error("incompatible broker: {0}")]
    Incompatible(String),
}

struct BrokerDisplay<'a> {
    code: Option<ErrorCode>,
    raw_code: u16,
    message: &'a str,
    owner_shard: Option<u32>,
}

impl fmt::Display for BrokerDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "broker error {code:?} ({})", self.raw_code)?,
            None => write!(f, "broker error {}", self.raw_code)?,
        }
        write!(f, ": {}", self.message)?;
        if let Some(shard) = self.owner_shard {
            write!(f, " (owner shard {shard})")?;
        }
        Ok(())
    }
}

impl ClientError {
    /// The broker's error code, if this is a broker error with a known code.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => *code,
            _ => None,
        }
    }

    /// True for a broker error with this code.
    pub fn is_code(&self, wanted: ErrorCode) -> bool {
        self.code() == Some(wanted)
    }

    /// True when the connection this error came from cannot be used again (the client opens a
    /// new one on the next request for that shard).
    pub fn is_connection_fatal(&self) -> bool {
        matches!(self, ClientError::Io(_) | ClientError::Closed)
            || self.is_code(ErrorCode::BadFrame)
    }
}

impl From<ErrorReply> for ClientError {
    fn from(reply: ErrorReply) -> Self {
        ClientError::Broker {
            code: ErrorCode::from_u16(reply.code),
            raw_code: reply.code,
            message: reply.message,
            owner_shard: reply.owner_shard,
        }
    }
}

impl Clone for ClientError {
    fn clone(&self) -> Self {
        match self {
            ClientError::Io(e) => ClientError::Io(std::io::Error::new(e.kind(), e.to_string())),
            ClientError::Protocol(e) => ClientError::Protocol(clone_protocol_error(e)),
            ClientError::Broker {
                code,
                raw_code,
                message,
                owner_shard,
            } => ClientError::Broker {
                code: *code,
                raw_code: *raw_code,
                message: message.clone(),
                owner_shard: *owner_shard,
            },
            ClientError::Timeout(d) => ClientError::Timeout(*d),
            ClientError::Closed => ClientError::Closed,
            ClientError::UnexpectedReply(s) => ClientError::UnexpectedReply(s.clone()),
            ClientError::InvalidArgument(s) => ClientError::InvalidArgument(s.clone()),
            ClientError::Incompatible(s) => ClientError::Incompatible(s.clone()),
        }
    }
}

/// `ProtocolError` does not derive `Clone`; every field it holds does.
fn clone_protocol_error(e: &ProtocolError) -> ProtocolError {
    use ProtocolError::*;
    match e {
        FrameTooLarge { len, max } => FrameTooLarge {
            len: *len,
            max: *max,
        },
        UnknownKind(k) => UnknownKind(*k),
        Truncated { need, have } => Truncated {
            need: *need,
            have: *have,
        },
        TrailingBytes(n) => TrailingBytes(*n),
        MetaTooLarge { len, max } => MetaTooLarge {
            len: *len,
            max: *max,
        },
        BadArchive(s) => BadArchive(s.clone()),
        BadMagic { got, expected } => BadMagic {
            got: *got,
            expected: *expected,
        },
        BadVersion(v) => BadVersion(*v),
        BadBatchHeader { field, reason } => BadBatchHeader {
            field,
            reason: reason.clone(),
        },
        BodyCrcMismatch { stored, computed } => BodyCrcMismatch {
            stored: *stored,
            computed: *computed,
        },
        HeaderCrcMismatch { stored, computed } => HeaderCrcMismatch {
            stored: *stored,
            computed: *computed,
        },
        RecordCountMismatch { count, expected } => RecordCountMismatch {
            count: *count,
            expected: *expected,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_maps_known_and_unknown_codes() {
        let known = ClientError::from(ErrorReply {
            code: ErrorCode::WrongShard as u16,
            message: "not mine".into(),
            owner_shard: Some(3),
        });
        assert!(known.is_code(ErrorCode::WrongShard));
        let text = known.to_string();
        assert!(
            text.contains("WrongShard") && text.contains("owner shard 3"),
            "{text}"
        );

        let unknown = ClientError::from(ErrorReply {
            code: 999,
            message: "future".into(),
            owner_shard: None,
        });
        assert!(matches!(
            unknown,
            ClientError::Broker {
                code: None,
                raw_code: 999,
                ..
            }
        ));
        assert_eq!(unknown.code(), None);
    }

    #[test]
    fn clone_keeps_kind_and_message() {
        let io = ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        match io.clone() {
            ClientError::Io(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
                assert_eq!(e.to_string(), "reset");
            }
            other => panic!("{other:?}"),
        }
        let p = ClientError::Protocol(ProtocolError::BodyCrcMismatch {
            stored: 1,
            computed: 2,
        });
        assert_eq!(p.clone().to_string(), p.to_string());
        assert!(ClientError::Closed.is_connection_fatal());
        assert!(!ClientError::Timeout(Duration::from_secs(1)).is_connection_fatal());
    }
}
