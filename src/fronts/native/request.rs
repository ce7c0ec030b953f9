//! Native requests decoded once, into typed calls, at the connection boundary. Everything a
//! handler sees has passed here: the envelope lengths, the rkyv archive, and every field whose
//! size or shape comes from the client (topic and group names, long-poll waits). A handler never
//! sees a name that `validate_topic_name` or `validate_group_name` refused, so no error text can
//! grow with a client's input.

use bytes::BytesMut;
use rkyv::api::high::{HighDeserializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use shardmq_protocol::envelope::{self, decode};
use shardmq_protocol::limits::{validate_group_name, validate_topic_name, PULL_WAIT_MS_MAX};
use shardmq_protocol::messages::{
    CommitOffset, CreateTopic, DeleteGroup, DeleteTopic, DescribeGroup, GroupMembers, JoinGroup,
    LeaveGroup, LockQueues, Produce, Pull, QueryOffset, QueueOffsets, ResetOffsets, SearchOffset,
    TopicStatusRequest, UpdateTopic,
};
use shardmq_protocol::FrameKind;

use super::error::NativeError;
use crate::core::queue_ops::offset_owner_group;

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
    JoinGroup(JoinGroup),
    LeaveGroup(LeaveGroup),
    GroupMembers(GroupMembers),
    CommitOffset(CommitOffset),
    QueryOffset(QueryOffset),
    SearchOffset(SearchOffset),
    ResetOffsets(ResetOffsets),
    LockQueues(LockQueues),
    ListGroups,
    DescribeGroup(DescribeGroup),
    DeleteGroup(DeleteGroup),
}

fn meta<T>(payload: &[u8]) -> Result<T, NativeError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    decode(payload).map_err(NativeError::BadFrame)
}

impl Request {
    /// Decodes a request frame of `kind`. Reply kinds, pushes and a second Hello are refused.
    pub fn decode(kind: FrameKind, payload: BytesMut) -> Result<Request, NativeError> {
        use FrameKind as K;
        let p = &payload[..];
        let request = match kind {
            K::Produce => return decode_produce(payload),
            K::Pull => Request::Pull(meta(p)?),
            K::QueueOffsets => Request::QueueOffsets(meta(p)?),
            K::CreateTopic => Request::CreateTopic(meta(p)?),
            K::UpdateTopic => Request::UpdateTopic(meta(p)?),
            K::DeleteTopic => Request::DeleteTopic(meta(p)?),
            K::TopicStatus => Request::TopicStatus(meta(p)?),
            K::ListTopics => Request::ListTopics,
            K::ShardMap => Request::ShardMap,
            K::ShardStats => Request::ShardStats,
            K::JoinGroup => Request::JoinGroup(meta(p)?),
            K::LeaveGroup => Request::LeaveGroup(meta(p)?),
            K::GroupMembers => Request::GroupMembers(meta(p)?),
            K::CommitOffset => Request::CommitOffset(meta(p)?),
            K::QueryOffset => Request::QueryOffset(meta(p)?),
            K::SearchOffset => Request::SearchOffset(meta(p)?),
            K::ResetOffsets => Request::ResetOffsets(meta(p)?),
            K::LockQueues => Request::LockQueues(meta(p)?),
            K::ListGroups => Request::ListGroups,
            K::DescribeGroup => Request::DescribeGroup(meta(p)?),
            K::DeleteGroup => Request::DeleteGroup(meta(p)?),
            K::Hello => {
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

    /// The topic and group names a request carries.
    fn names(&self) -> (Vec<&str>, Vec<&str>) {
        match self {
            Request::CreateTopic(r) => (vec![&r.name], vec![]),
            Request::UpdateTopic(r) => (vec![&r.name], vec![]),
            Request::DeleteTopic(r) => (vec![&r.name], vec![]),
            Request::TopicStatus(r) => (vec![&r.name], vec![]),
            Request::Produce { request, .. } => (vec![&request.topic], vec![]),
            Request::Pull(r) => {
                let groups = r.commit.iter().map(|c| offset_owner_group(&c.group));
                (vec![&r.topic], groups.collect())
            }
            Request::QueueOffsets(r) => (vec![&r.topic], vec![]),
            Request::JoinGroup(r) => (
                r.subscriptions.iter().map(|s| s.topic.as_str()).collect(),
                vec![&r.group],
            ),
            Request::LeaveGroup(r) => (vec![], vec![&r.group]),
            Request::GroupMembers(r) => (vec![], vec![&r.group]),
            Request::CommitOffset(r) => (vec![&r.topic], vec![offset_owner_group(&r.group)]),
            Request::QueryOffset(r) => (vec![&r.topic], vec![offset_owner_group(&r.group)]),
            Request::SearchOffset(r) => (vec![&r.topic], vec![]),
            Request::ResetOffsets(r) => (vec![&r.topic], vec![&r.group]),
            Request::LockQueues(r) => (
                r.queues.iter().map(|q| q.topic.as_str()).collect(),
                vec![&r.group],
            ),
            Request::DescribeGroup(r) => (vec![], vec![&r.group]),
            Request::DeleteGroup(r) => (vec![], vec![&r.group]),
            Request::ListTopics | Request::ShardMap | Request::ShardStats | Request::ListGroups => {
                (vec![], vec![])
            }
        }
    }

    /// Field checks that need no broker state.
    fn validate(&self) -> Result<(), NativeError> {
        let invalid = |reason: &str| NativeError::InvalidArgument(reason.into());
        let (topics, groups) = self.names();
        for topic in topics {
            validate_topic_name(topic).map_err(invalid)?;
        }
        for group in groups {
            validate_group_name(group).map_err(invalid)?;
        }
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

    fn pull(topic: String, wait_ms: u32) -> Pull {
        Pull {
            topic,
            queue_id: 0,
            offset: 0,
            max_messages: 1,
            max_bytes: 1,
            wait_ms,
            filter: None,
            commit: None,
        }
    }

    #[test]
    fn oversize_and_control_character_names_are_refused_without_repeating_them() {
        for name in ["\u{1}".repeat(300_000), "x".repeat(300_000), String::new()] {
            let bytes = envelope::encode(&pull(name.clone(), 0)).unwrap();
            let err = Request::decode(FrameKind::Pull, payload(bytes))
                .err()
                .expect("refused");
            assert!(matches!(err, NativeError::InvalidArgument(_)), "{err}");
            assert!(err.to_string().len() < 100, "{err}");
            let leave = envelope::encode(&LeaveGroup {
                group: name,
                member_id: "m".into(),
            })
            .unwrap();
            assert!(Request::decode(FrameKind::LeaveGroup, payload(leave)).is_err());
        }
    }

    #[test]
    fn a_too_long_wait_is_refused() {
        let bytes = envelope::encode(&pull("t".into(), PULL_WAIT_MS_MAX + 1)).unwrap();
        assert!(Request::decode(FrameKind::Pull, payload(bytes)).is_err());
    }

    #[test]
    fn pushes_are_not_requests() {
        let bytes = envelope::encode(&shardmq_protocol::messages::GroupChanged {
            group: "g".into(),
            generation: 1,
        })
        .unwrap();
        assert!(matches!(
            Request::decode(FrameKind::GroupChanged, payload(bytes)),
            Err(NativeError::Unsupported(_))
        ));
    }
}
