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
//! | any            |                  | `ErrorReply`       | –                  |

use rkyv::{Archive, Deserialize, Serialize};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub client_name: String,
    /// The shard this connection should be served by; `None` stays on the accepting shard.
    pub wanted_shard: Option<u32>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    pub shard_id: u32,
    pub shard_count: u32,
    pub broker_version: String,
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
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// An [`crate::ErrorCode`] as a number (unknown codes stay readable by old clients).
    pub code: u16,
    pub message: String,
    /// For `WrongShard`: the shard that owns the queue.
    pub owner_shard: Option<u32>,
}
