//! Request and reply types of the native protocol, one per [`crate::FrameKind`]. They travel as
//! the rkyv metadata of an [`crate::envelope`]; produce and pull carry batches as the data part.
//!
//! | request        | data part        | reply              | data part          |
//! |----------------|------------------|--------------------|--------------------|
//! | `Hello`        | –                | `HelloReply`       | –                  |
//! | `CreateTopic`  | –                | `TopicInfo`        | –                  |
//! | `UpdateTopic`  | –                | `TopicInfo`        | –                  |
//! | `DeleteTopic`  | –                | `TopicInfo`        | –                  |
//! | `TopicStatusRequest` | –          | `TopicStatus`      | –                  |
//! | `ListTopics`   | –                | `TopicList`        | –                  |
//! | `Produce`      | one batch        | `ProduceReply`     | –                  |
//! | `Pull`         | –                | `PullReply`        | whole batches      |
//! | `QueueOffsets` | –                | `QueueOffsetsReply`| –                  |
//! | `ShardMapRequest` | –             | `ShardMap`         | –                  |
//! | `ShardStatsRequest` | –           | `ShardStats`       | –                  |
//! | `JoinGroup`, `GroupMembers` | –   | `GroupView`        | –                  |
//! | `LeaveGroup`   | –                | `Deleted`          | –                  |
//! | `CommitOffset` | –                | `CommitReply`      | –                  |
//! | `QueryOffset`, `SearchOffset` | – | `OffsetReply`      | –                  |
//! | `ResetOffsets` | –                | `ResetReply`       | –                  |
//! | `LockQueues`   | –                | `LockReply`        | –                  |
//! | `ListGroups`   | –                | `GroupList`        | –                  |
//! | `DescribeGroup`| –                | `GroupDescription` | –                  |
//! | `DeleteGroup`  | –                | `Deleted`          | –                  |
//! | (broker → client) `GroupChanged`, unasked | | |                        |
//! | any            |                  | `ErrorReply`       | –                  |

use rkyv::{Archive, Deserialize, Serialize};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub client_name: String,
    /// The shard this connection should be served by; `None` stays on the accepting shard.
    pub wanted_shard: Option<u32>,
    /// Who is connecting; required by a broker with ACL on (`crate::auth`).
    pub credentials: Option<HelloCredentials>,
}

/// An access key and the proof that the client holds its secret key:
/// `signature` = [`crate::auth::hello_signature`] over the Hello's client name and these fields.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HelloCredentials {
    pub access_key: String,
    /// The client's clock, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Chosen at random by the client for each Hello.
    pub nonce: u64,
    pub signature: Vec<u8>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    pub shard_id: u32,
    pub shard_count: u32,
    pub broker_version: String,
    /// Every shard's native TLS listener by shard id (empty when the broker has none): a TLS
    /// client opens its connection to shard k at `tls_addresses[k]`.
    pub tls_addresses: Vec<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    pub queues: u32,
    /// RocketMQ permission bits (read 4, write 2); `None` is read and write.
    pub perm: Option<u8>,
}

/// Changes a topic; `None` fields stay as they are. Queues can only grow.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UpdateTopic {
    pub name: String,
    pub queues: Option<u32>,
    pub perm: Option<u8>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopic {
    pub name: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Broker-assigned, never reused; stamped into every stored batch of the topic.
    pub topic_id: u32,
    pub queues: u32,
    /// RocketMQ permission bits: read 4, write 2.
    pub perm: u8,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicStatusRequest {
    pub name: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    pub queue_id: u32,
    /// The shard that owns the queue.
    pub shard_id: u32,
    pub min_offset: u64,
    /// One past the last stored record.
    pub max_offset: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicStatus {
    pub topic: TopicInfo,
    pub queues: Vec<QueueStatus>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListTopics {}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicList {
    pub topics: Vec<TopicInfo>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Produce {
    pub topic: String,
    pub queue_id: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProduceReply {
    /// Queue offset of the batch's first record; the batch holds `base_offset..base_offset+count`.
    pub base_offset: u64,
    pub count: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub topic: String,
    pub queue_id: u32,
    pub offset: u64,
    pub max_messages: u32,
    pub max_bytes: u32,
    /// Long-poll: when nothing is at `offset`, wait up to this long for it to arrive.
    pub wait_ms: u32,
    /// Only records that match; non-matching ones never cross the network.
    pub filter: Option<FilterSpec>,
    /// Commit this offset for a group before reading (RocketMQ's commit in the pull).
    pub commit: Option<OffsetCommit>,
}

/// A subscription filter: kind 0 is tags (`*` or `a || b`), kind 1 is SQL92.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    pub kind: u8,
    pub expression: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The group; a broadcasting member commits as `group@member`.
    pub group: String,
    pub offset: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    pub filter: FilterSpec,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub topic: String,
    pub queue_id: u32,
}

/// Join a consumer group, or heartbeat in it (the same request).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JoinGroup {
    pub group: String,
    pub member_id: String,
    /// 0 clustering, 1 broadcasting.
    pub mode: u8,
    /// 0 average (RocketMQ's default), 1 by circle.
    pub strategy: u8,
    pub subscriptions: Vec<Subscription>,
    /// The member leaves when no heartbeat came for this long.
    pub session_timeout_ms: u32,
}

/// The reply to `JoinGroup` and `GroupMembers`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// Moves whenever the members or the assignment change.
    pub generation: u64,
    /// Every member id, sorted.
    pub members: Vec<String>,
    /// The queues the asking member consumes.
    pub assignment: Vec<QueueRef>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroup {
    pub group: String,
    pub member_id: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupMembers {
    pub group: String,
    pub member_id: String,
}

/// Sent by the broker, unasked (correlation id 0), when a group the connection's member
/// belongs to changed: fetch the new view with `JoinGroup` or `GroupMembers`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupChanged {
    pub group: String,
    pub generation: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub group: String,
    pub topic: String,
    pub queue_id: u32,
    pub offset: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitReply {
    /// False when the offset was below the committed one (commits never move back).
    pub moved: bool,
}

/// Where a consumer with no committed offset starts: kind 0 first, 1 last, 2 at a time.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StartFrom {
    pub kind: u8,
    pub timestamp_ms: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueryOffset {
    pub group: String,
    pub topic: String,
    pub queue_id: u32,
    /// Without it, a group with no committed offset gets `None`; with it, where it starts.
    pub start: Option<StartFrom>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SearchOffset {
    pub topic: String,
    pub queue_id: u32,
    /// The first offset stored at or after this time.
    pub timestamp_ms: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OffsetReply {
    pub offset: Option<u64>,
}

/// Moves a group's committed offsets of every queue of a topic: kind 0 earliest, 1 latest, 2
/// the first record stored at or after `timestamp_ms`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ResetOffsets {
    pub group: String,
    pub topic: String,
    pub to: u8,
    pub timestamp_ms: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueOffset {
    pub queue_id: u32,
    pub offset: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ResetReply {
    pub queues: Vec<QueueOffset>,
}

/// Takes (or renews) or releases a member's locks of queues for orderly consumption.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LockQueues {
    pub group: String,
    pub member_id: String,
    pub queues: Vec<QueueRef>,
    pub unlock: bool,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LockReply {
    /// The queues the member holds now.
    pub held: Vec<QueueRef>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListGroups {}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub mode: u8,
    pub members: u32,
    pub generation: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroup {
    pub group: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub mode: u8,
    pub subscriptions: Vec<Subscription>,
    pub assignment: Vec<QueueRef>,
    pub idle_ms: u64,
    /// The protocol the member speaks: `native` or `remoting` (RocketMQ clients).
    pub protocol: String,
}

/// One queue of a group: where it is consumed to and how far behind.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupQueue {
    pub topic: String,
    pub queue_id: u32,
    pub shard_id: u32,
    /// For a broadcasting member's own progress, the member; `None` for the group's.
    pub member_id: Option<String>,
    pub committed: Option<u64>,
    pub max_offset: u64,
    /// `max_offset` minus what is committed (all of it when nothing is).
    pub lag: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub name: String,
    pub mode: u8,
    pub strategy: u8,
    pub generation: u64,
    pub members: Vec<MemberDescription>,
    pub queues: Vec<GroupQueue>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroup {
    pub group: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub existed: bool,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PullReply {
    /// Number of whole batches in the data part. The first may start before the asked offset
    /// (batches are never split); the reader skips records below it.
    pub batch_count: u32,
    /// Where the next pull should start.
    pub next_offset: u64,
    /// The queue's first stored offset when the reply was made (a pull below it gets nothing
    /// and `next_offset` = this).
    pub min_offset: u64,
    /// The queue's end offset (one past the last stored record) when the reply was made.
    pub max_offset: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueOffsets {
    pub topic: String,
    pub queue_id: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct QueueOffsetsReply {
    pub min_offset: u64,
    /// One past the last stored record.
    pub max_offset: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShardMapRequest {}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    pub shard_count: u32,
    /// Name of the routing function, so a client refuses a broker it cannot route for.
    pub routing: String,
    /// The shard that served this request.
    pub serving_shard: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShardStatsRequest {}

/// What the serving shard holds at the moment of the request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShardStats {
    pub shard_id: u32,
    /// Client connections this shard serves (the asking one included).
    pub connections: u64,
    /// Bytes of request frames being read or handled, and the bound on them.
    pub request_bytes_buffered: u64,
    pub request_bytes_max: u64,
    /// Bytes of replies queued for connections' writers, and the bound on them.
    pub reply_bytes_queued: u64,
    pub reply_bytes_max: u64,
    /// The broker's version.
    pub broker_version: String,
    /// Log segments, and bytes from the oldest stored to the newest appended.
    pub segments: u64,
    pub log_bytes: u64,
    /// How full the data directory's filesystem is, in tenths of a percent (912 = 91.2%), and
    /// its free bytes (when known).
    pub disk_used_per_mille: Option<u32>,
    pub disk_free_bytes: Option<u64>,
    /// The shard refuses writes now (disk full or above its refuse mark).
    pub refusing_writes: bool,
    /// The RocketMQ broker this shard is advertised as, and its remoting address (empty when
    /// remoting is off).
    pub rocketmq_broker: String,
    pub remoting_addr: String,
    /// The log since the shard started: bytes its writer was given, bytes it handed to the
    /// device (padding and rewritten partial blocks included), fdatasyncs, and the batches
    /// those covered. A bench takes them before and after a run to state write amplification.
    pub log_written_bytes: u64,
    pub log_device_write_bytes: u64,
    pub fsyncs: u64,
    pub synced_batches: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// An [`crate::ErrorCode`] as a number (unknown codes stay readable by old clients).
    pub code: u16,
    pub message: String,
    /// For `WrongShard`: the shard that owns the queue.
    pub owner_shard: Option<u32>,
}
