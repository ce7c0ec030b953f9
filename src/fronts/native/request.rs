//! Native requests decoded once, into typed calls, at the connection boundary. Everything a
//! handler sees has passed here: the envelope lengths, the rkyv archive, and every field whose
//! size or shape comes from the client (topic names, long-poll waits). A handler never sees a
//! name that `validate_topic_name` refused, so no error text can grow with a client's input.

use bytes::BytesMut;
use shardmq_protocol::envelope::{self, decode};
use shardmq_protocol::limits::{validate_topic_name, PULL_WAIT_MS_MAX};
use shardmq_protocol::messages::{
    CreateTopic, DeleteTopic, Produce, Pull, QueueOffsets, TopicStatusRequest, UpdateTopic,
};
use shardmq_protocol::FrameKind;

use super::error::NativeError;

/// One decoded request of the native protocol.
pub enum Request {
    CreateTopic(CreateTopic),
    UpdateTopic(UpdateTopic),
    DeleteTopic(DeleteTopic),
    TopicStatus(TopicStatusRequest),
    ListTopics,
    /// `batch` is the data part of the frame, not yet validated as a batch (the produce handler
    /// does that, so a bad batch gets `BadBatch`, not `BadFrame`).
    Produce {
        request: Produce,
        batch: BytesMut,
    },
    Pull(Pull),
    QueueOffsets(QueueOffsets),
    ShardMap,
    ShardStats,
}

impl Request {
    /// Decodes a request frame of `kind`. Reply kinds and a second Hello are refused here.
    pub fn decode(kind: FrameKind, payload: BytesMut) -> Result<Request, NativeError> {
        let request = match kind {
            FrameKind::Produce => return decode_produce(payload),
            FrameKind::Pull => Request::Pull(decode(&payload).map_err(NativeError::BadFrame)?),
            FrameKind::QueueOffsets => {
                Request::QueueOffsets(decode(&payload).map_err(NativeError::BadFrame)?)
            }
            FrameKind::CreateTopic => {
                Request::CreateTopic(decode(&payload).map_err(NativeError::BadFrame)?)
            }
            FrameKind::UpdateTopic => {
                Request::UpdateTopic(decode(&payload).map_err(NativeError::BadFrame)?)
            }
            FrameKind::DeleteTopic => {
                Request::DeleteTopic(decode(&payload).map_err(NativeError::BadFrame)?)
            }
            FrameKind::TopicStatus => {
                Request::TopicStatus(decode(&payload).map_err(NativeError::BadFrame)?)
            }
            FrameKind::ListTopics => Request::ListTopics,
            FrameKind::ShardMap => Request::ShardMap,
            FrameKind::ShardStats => Request::ShardStats,
            FrameKind::Hello => {
                return Err(NativeError::Unsupported(
                    "a second Hello on a connection".into(),
                ))
            }
            other => {
                return Err(NativeError::Unsupported(format!(
                    "frame kind {other:?} from a client"
                )))
            }
        };
        request.validate()?;
        Ok(request)
    }

    /// Field checks that need no broker state.
    fn validate(&self) -> Result<(), NativeError> {
        let topic = match self {
            Request::CreateTopic(r) => &r.name,
            Request::UpdateTopic(r) => &r.name,
            Request::DeleteTopic(r) => &r.name,
            Request::TopicStatus(r) => &r.name,
            Request::Produce { request, .. } => &request.topic,
            Request::Pull(r) => &r.topic,
            Request::QueueOffsets(r) => &r.topic,
            Request::ListTopics | Request::ShardMap | Request::ShardStats => return Ok(()),
        };
        validate_topic_name(topic).map_err(|reason| NativeError::InvalidArgument(reason.into()))?;
        if let Request::Pull(pull) = self {
            if pull.wait_ms > PULL_WAIT_MS_MAX {
                return Err(NativeError::InvalidArgument(format!(
                    "wait_ms {} exceeds {PULL_WAIT_MS_MAX}",
                    pull.wait_ms
                )));
            }
        }
        Ok(())
    }
}

fn decode_produce(mut payload: BytesMut) -> Result<Request, NativeError> {
    let (request, data_len) = {
        let (meta, data) = envelope::split(&payload).map_err(NativeError::BadFrame)?;
        (
            envelope::decode_meta::<Produce>(meta).map_err(NativeError::BadFrame)?,
            data.len(),
        )
    };
    let batch = payload.split_off(payload.len() - data_len);
    let request = Request::Produce { request, batch };
    request.validate()?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_protocol::messages::Pull;

    fn payload(bytes: Vec<u8>) -> BytesMut {
        BytesMut::from(&bytes[..])
    }

    #[test]
    fn oversize_and_control_character_names_are_refused_without_repeating_them() {
        for name in ["\u{1}".repeat(300_000), "x".repeat(300_000), String::new()] {
            let pull = Pull {
                topic: name.clone(),
                queue_id: 0,
                offset: 0,
                max_messages: 1,
                max_bytes: 1,
                wait_ms: 0,
            };
            let bytes = envelope::encode(&pull).unwrap();
            let err = Request::decode(FrameKind::Pull, payload(bytes))
                .err()
                .expect("refused");
            assert!(matches!(err, NativeError::InvalidArgument(_)), "{err}");
            assert!(err.to_string().len() < 100, "{err}");
        }
    }

    #[test]
    fn a_too_long_wait_is_refused() {
        let pull = Pull {
            topic: "t".into(),
            queue_id: 0,
            offset: 0,
            max_messages: 1,
            max_bytes: 1,
            wait_ms: PULL_WAIT_MS_MAX + 1,
        };
        let bytes = envelope::encode(&pull).unwrap();
        assert!(Request::decode(FrameKind::Pull, payload(bytes)).is_err());
    }
}
