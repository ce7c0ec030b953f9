//! The native frame: `[payload_len: u32][kind: u16][flags: u16][correlation_id: u64][payload]`,
//! all little endian. The header is 16 bytes so the payload that follows a header read into its
//! own buffer starts 16-byte aligned, as rkyv archives require.
//!
//! A reply carries the request's correlation id and the request's kind with [`REPLY_BIT`] set,
//! or [`FrameKind::Error`]. The length bound is checked here, before anyone allocates.

use crate::error::ProtocolError;
use crate::limits::FRAME_PAYLOAD_BYTES_MAX;

pub const FRAME_HEADER_BYTES: usize = 16;

/// Set on the kind of every reply frame.
pub const REPLY_BIT: u16 = 0x8000;

/// The native protocol's version, carried in the upper byte of a Hello frame's flags: read from
/// the header, before the Hello's archive, whose layout may differ between versions. Bump it
/// whenever the layout of any native message changes; a broker refuses a Hello of another.
pub const PROTOCOL_VERSION: u8 = 1;

/// The flags of every Hello frame: [`PROTOCOL_VERSION`] in the upper byte.
pub const HELLO_FLAGS: u16 = (PROTOCOL_VERSION as u16) << 8;

/// The protocol version a Hello frame's flags carry (0: a client from before versions).
pub fn hello_version(flags: u16) -> u8 {
    (flags >> 8) as u8
}

/// Frame flag: the sender wants no reply (RocketMQ's oneway). The broker sends none, for
/// success or failure.
pub const FLAG_ONEWAY: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum FrameKind {
    /// First frame of a connection: names the client and, for shard-aware clients, the shard.
    Hello = 1,
    CreateTopic = 10,
    ListTopics = 11,
    UpdateTopic = 12,
    DeleteTopic = 13,
    TopicStatus = 14,
    Produce = 20,
    Pull = 21,
    QueueOffsets = 22,
    ShardMap = 30,
    /// What one shard holds right now: connections, buffered bytes (for operators and tests).
    ShardStats = 31,
    JoinGroup = 40,
    LeaveGroup = 41,
    GroupMembers = 42,
    CommitOffset = 43,
    QueryOffset = 44,
    SearchOffset = 45,
    ResetOffsets = 46,
    LockQueues = 47,
    ListGroups = 48,
    DescribeGroup = 49,
    DeleteGroup = 50,
    /// Broker → client, unasked: a group the connection's member is in changed.
    GroupChanged = 60,
    HelloReply = 1 | REPLY_BIT,
    CreateTopicReply = 10 | REPLY_BIT,
    ListTopicsReply = 11 | REPLY_BIT,
    UpdateTopicReply = 12 | REPLY_BIT,
    DeleteTopicReply = 13 | REPLY_BIT,
    TopicStatusReply = 14 | REPLY_BIT,
    ProduceReply = 20 | REPLY_BIT,
    PullReply = 21 | REPLY_BIT,
    QueueOffsetsReply = 22 | REPLY_BIT,
    ShardMapReply = 30 | REPLY_BIT,
    ShardStatsReply = 31 | REPLY_BIT,
    JoinGroupReply = 40 | REPLY_BIT,
    LeaveGroupReply = 41 | REPLY_BIT,
    GroupMembersReply = 42 | REPLY_BIT,
    CommitOffsetReply = 43 | REPLY_BIT,
    QueryOffsetReply = 44 | REPLY_BIT,
    SearchOffsetReply = 45 | REPLY_BIT,
    ResetOffsetsReply = 46 | REPLY_BIT,
    LockQueuesReply = 47 | REPLY_BIT,
    ListGroupsReply = 48 | REPLY_BIT,
    DescribeGroupReply = 49 | REPLY_BIT,
    DeleteGroupReply = 50 | REPLY_BIT,
    /// A reply that carries an [`crate::messages::ErrorReply`] instead of the expected type.
    Error = 0xFFFF,
}

impl FrameKind {
    /// The kind's name in snake case (`produce`, `join_group`); every reply kind is `reply`.
    /// For metrics labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Hello => "hello",
            FrameKind::CreateTopic => "create_topic",
            FrameKind::ListTopics => "list_topics",
            FrameKind::UpdateTopic => "update_topic",
            FrameKind::DeleteTopic => "delete_topic",
            FrameKind::TopicStatus => "topic_status",
            FrameKind::Produce => "produce",
            FrameKind::Pull => "pull",
            FrameKind::QueueOffsets => "queue_offsets",
            FrameKind::ShardMap => "shard_map",
            FrameKind::ShardStats => "shard_stats",
            FrameKind::JoinGroup => "join_group",
            FrameKind::LeaveGroup => "leave_group",
            FrameKind::GroupMembers => "group_members",
            FrameKind::CommitOffset => "commit_offset",
            FrameKind::QueryOffset => "query_offset",
            FrameKind::SearchOffset => "search_offset",
            FrameKind::ResetOffsets => "reset_offsets",
            FrameKind::LockQueues => "lock_queues",
            FrameKind::ListGroups => "list_groups",
            FrameKind::DescribeGroup => "describe_group",
            FrameKind::DeleteGroup => "delete_group",
            FrameKind::GroupChanged => "group_changed",
            FrameKind::Error => "error",
            _ => "reply",
        }
    }

    pub fn from_u16(value: u16) -> Result<Self, ProtocolError> {
        use FrameKind::*;
        const HELLO_REPLY: u16 = 1 | REPLY_BIT;
        const CREATE_TOPIC_REPLY: u16 = 10 | REPLY_BIT;
        const LIST_TOPICS_REPLY: u16 = 11 | REPLY_BIT;
        const UPDATE_TOPIC_REPLY: u16 = 12 | REPLY_BIT;
        const DELETE_TOPIC_REPLY: u16 = 13 | REPLY_BIT;
        const TOPIC_STATUS_REPLY: u16 = 14 | REPLY_BIT;
        const PRODUCE_REPLY: u16 = 20 | REPLY_BIT;
        const PULL_REPLY: u16 = 21 | REPLY_BIT;
        const QUEUE_OFFSETS_REPLY: u16 = 22 | REPLY_BIT;
        const SHARD_MAP_REPLY: u16 = 30 | REPLY_BIT;
        const SHARD_STATS_REPLY: u16 = 31 | REPLY_BIT;
        const JOIN_GROUP_REPLY: u16 = 40 | REPLY_BIT;
        const LEAVE_GROUP_REPLY: u16 = 41 | REPLY_BIT;
        const GROUP_MEMBERS_REPLY: u16 = 42 | REPLY_BIT;
        const COMMIT_OFFSET_REPLY: u16 = 43 | REPLY_BIT;
        const QUERY_OFFSET_REPLY: u16 = 44 | REPLY_BIT;
        const SEARCH_OFFSET_REPLY: u16 = 45 | REPLY_BIT;
        const RESET_OFFSETS_REPLY: u16 = 46 | REPLY_BIT;
        const LOCK_QUEUES_REPLY: u16 = 47 | REPLY_BIT;
        const LIST_GROUPS_REPLY: u16 = 48 | REPLY_BIT;
        const DESCRIBE_GROUP_REPLY: u16 = 49 | REPLY_BIT;
        const DELETE_GROUP_REPLY: u16 = 50 | REPLY_BIT;
        Ok(match value {
            1 => Hello,
            10 => CreateTopic,
            11 => ListTopics,
            12 => UpdateTopic,
            13 => DeleteTopic,
            14 => TopicStatus,
            20 => Produce,
            21 => Pull,
            22 => QueueOffsets,
            30 => ShardMap,
            31 => ShardStats,
            40 => JoinGroup,
            41 => LeaveGroup,
            42 => GroupMembers,
            43 => CommitOffset,
            44 => QueryOffset,
            45 => SearchOffset,
            46 => ResetOffsets,
            47 => LockQueues,
            48 => ListGroups,
            49 => DescribeGroup,
            50 => DeleteGroup,
            60 => GroupChanged,
            HELLO_REPLY => HelloReply,
            CREATE_TOPIC_REPLY => CreateTopicReply,
            LIST_TOPICS_REPLY => ListTopicsReply,
            UPDATE_TOPIC_REPLY => UpdateTopicReply,
            DELETE_TOPIC_REPLY => DeleteTopicReply,
            TOPIC_STATUS_REPLY => TopicStatusReply,
            PRODUCE_REPLY => ProduceReply,
            PULL_REPLY => PullReply,
            QUEUE_OFFSETS_REPLY => QueueOffsetsReply,
            SHARD_MAP_REPLY => ShardMapReply,
            SHARD_STATS_REPLY => ShardStatsReply,
            JOIN_GROUP_REPLY => JoinGroupReply,
            LEAVE_GROUP_REPLY => LeaveGroupReply,
            GROUP_MEMBERS_REPLY => GroupMembersReply,
            COMMIT_OFFSET_REPLY => CommitOffsetReply,
            QUERY_OFFSET_REPLY => QueryOffsetReply,
            SEARCH_OFFSET_REPLY => SearchOffsetReply,
            RESET_OFFSETS_REPLY => ResetOffsetsReply,
            LOCK_QUEUES_REPLY => LockQueuesReply,
            LIST_GROUPS_REPLY => ListGroupsReply,
            DESCRIBE_GROUP_REPLY => DescribeGroupReply,
            DELETE_GROUP_REPLY => DeleteGroupReply,
            0xFFFF => Error,
            other => return Err(ProtocolError::UnknownKind(other)),
        })
    }

    pub fn is_request(self) -> bool {
        (self as u16) & REPLY_BIT == 0
    }

    /// Frames the broker sends unasked (no request has their kind as its reply).
    pub fn is_push(self) -> bool {
        self == FrameKind::GroupChanged
    }

    /// The kind of the successful reply to this request kind.
    pub fn reply(self) -> FrameKind {
        debug_assert!(self.is_request());
        // Every request kind has a reply kind; from_u16 cannot fail for these.
        FrameKind::from_u16(self as u16 | REPLY_BIT).unwrap_or(FrameKind::Error)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub payload_len: u32,
    pub kind: FrameKind,
    pub flags: u16,
    pub correlation_id: u64,
}

impl FrameHeader {
    /// A header for a payload of `payload_len` bytes; refused above `FRAME_PAYLOAD_BYTES_MAX`,
    /// which the peer would refuse too.
    pub fn new(
        kind: FrameKind,
        correlation_id: u64,
        payload_len: usize,
    ) -> Result<Self, ProtocolError> {
        match u32::try_from(payload_len) {
            Ok(len) if len <= FRAME_PAYLOAD_BYTES_MAX => Ok(FrameHeader {
                payload_len: len,
                kind,
                flags: if kind == FrameKind::Hello {
                    HELLO_FLAGS
                } else {
                    0
                },
                correlation_id,
            }),
            _ => Err(ProtocolError::FrameTooLarge {
                len: u32::try_from(payload_len).unwrap_or(u32::MAX),
                max: FRAME_PAYLOAD_BYTES_MAX,
            }),
        }
    }

    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut out = [0u8; FRAME_HEADER_BYTES];
        out[0..4].copy_from_slice(&self.payload_len.to_le_bytes());
        out[4..6].copy_from_slice(&(self.kind as u16).to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.correlation_id.to_le_bytes());
        out
    }

    /// Decodes and bounds-checks a header. The length is checked before the kind so an oversize
    /// prefix of garbage is reported as what it is.
    pub fn decode(bytes: &[u8; FRAME_HEADER_BYTES]) -> Result<Self, ProtocolError> {
        let [l0, l1, l2, l3, k0, k1, f0, f1, c0, c1, c2, c3, c4, c5, c6, c7] = *bytes;
        let payload_len = u32::from_le_bytes([l0, l1, l2, l3]);
        if payload_len > FRAME_PAYLOAD_BYTES_MAX {
            return Err(ProtocolError::FrameTooLarge {
                len: payload_len,
                max: FRAME_PAYLOAD_BYTES_MAX,
            });
        }
        let kind = FrameKind::from_u16(u16::from_le_bytes([k0, k1]))?;
        Ok(FrameHeader {
            payload_len,
            kind,
            flags: u16::from_le_bytes([f0, f1]),
            correlation_id: u64::from_le_bytes([c0, c1, c2, c3, c4, c5, c6, c7]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_golden_layout() {
        let header = FrameHeader::new(FrameKind::Produce, 0x0102_0304_0506_0708, 0x20).unwrap();
        let bytes = header.encode();
        assert_eq!(bytes, [0x20, 0, 0, 0, 20, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(FrameHeader::decode(&bytes), Ok(header));
    }

    #[test]
    fn oversize_length_is_rejected() {
        let mut bytes = FrameHeader::new(FrameKind::Pull, 1, 0).unwrap().encode();
        bytes[0..4].copy_from_slice(&(FRAME_PAYLOAD_BYTES_MAX + 1).to_le_bytes());
        assert!(matches!(
            FrameHeader::decode(&bytes),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn oversize_payloads_get_no_header() {
        let over = FRAME_PAYLOAD_BYTES_MAX as usize + 1;
        assert!(FrameHeader::new(FrameKind::PullReply, 1, over).is_err());
        assert!(FrameHeader::new(FrameKind::PullReply, 1, usize::MAX).is_err());
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let mut bytes = FrameHeader::new(FrameKind::Pull, 1, 0).unwrap().encode();
        bytes[4..6].copy_from_slice(&999u16.to_le_bytes());
        assert_eq!(
            FrameHeader::decode(&bytes),
            Err(ProtocolError::UnknownKind(999))
        );
    }

    #[test]
    fn every_kind_round_trips_and_requests_have_replies() {
        for value in 0..=u16::MAX {
            if let Ok(kind) = FrameKind::from_u16(value) {
                assert_eq!(kind as u16, value);
                if kind.is_request() && !kind.is_push() {
                    assert_ne!(kind.reply(), FrameKind::Error);
                    assert!(!kind.reply().is_request());
                }
            }
        }
    }
}
