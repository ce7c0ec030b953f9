//! What the native fuzz target (`fuzz/fuzz_targets/native_frame.rs`) checks, kept here so its
//! committed corpus also runs on stable (`tests/fuzz_corpus.rs`) and the seeded-garbage tests
//! (`garbage_tests`) share it: no input makes a decoder of the native protocol panic — frame
//! headers, envelopes, the metadata of every request and reply kind, producer and stored record
//! batches and their records.

use crate::batch::{split_batches, validate_incoming, validate_stored};
use crate::envelope;
use crate::frame::FRAME_HEADER_BYTES;
use crate::messages::*;
use crate::FrameHeader;

pub fn native(bytes: &[u8]) {
    if let Ok(header) =
        <&[u8; FRAME_HEADER_BYTES]>::try_from(bytes.get(..FRAME_HEADER_BYTES).unwrap_or(&[]))
    {
        let _ = FrameHeader::decode(header);
    }
    let _ = envelope::split(bytes);
    if let Ok((meta, _)) = envelope::split(bytes) {
        decode_every_kind(meta);
    }
    decode_every_kind(bytes);
    let _ = validate_incoming(bytes);
    let _ = validate_stored(bytes);
    if let Ok(views) = split_batches(bytes) {
        for view in views {
            if let Ok(records) = view.records() {
                for (_, record) in records.iter() {
                    let _ = record.tag_code();
                }
            }
        }
    }
    let _ = crate::batch::ValidatedBatch::new(bytes::BytesMut::from(bytes));
}

/// The metadata of every request and reply kind, decoded from the same bytes.
fn decode_every_kind(meta: &[u8]) {
    let _ = envelope::decode_meta::<Hello>(meta);
    let _ = envelope::decode_meta::<HelloReply>(meta);
    let _ = envelope::decode_meta::<CreateTopic>(meta);
    let _ = envelope::decode_meta::<TopicInfo>(meta);
    let _ = envelope::decode_meta::<ListTopics>(meta);
    let _ = envelope::decode_meta::<TopicList>(meta);
    let _ = envelope::decode_meta::<Produce>(meta);
    let _ = envelope::decode_meta::<ProduceReply>(meta);
    let _ = envelope::decode_meta::<Pull>(meta);
    let _ = envelope::decode_meta::<PullReply>(meta);
    let _ = envelope::decode_meta::<QueueOffsets>(meta);
    let _ = envelope::decode_meta::<QueueOffsetsReply>(meta);
    let _ = envelope::decode_meta::<ShardMapRequest>(meta);
    let _ = envelope::decode_meta::<ShardMap>(meta);
    let _ = envelope::decode_meta::<ShardStatsRequest>(meta);
    let _ = envelope::decode_meta::<ShardStats>(meta);
    let _ = envelope::decode_meta::<ErrorReply>(meta);
    let _ = envelope::decode_meta::<UpdateTopic>(meta);
    let _ = envelope::decode_meta::<DeleteTopic>(meta);
    let _ = envelope::decode_meta::<TopicStatusRequest>(meta);
    let _ = envelope::decode_meta::<TopicStatus>(meta);
    let _ = envelope::decode_meta::<JoinGroup>(meta);
    let _ = envelope::decode_meta::<GroupView>(meta);
    let _ = envelope::decode_meta::<LeaveGroup>(meta);
    let _ = envelope::decode_meta::<GroupMembers>(meta);
    let _ = envelope::decode_meta::<GroupChanged>(meta);
    let _ = envelope::decode_meta::<CommitOffset>(meta);
    let _ = envelope::decode_meta::<CommitReply>(meta);
    let _ = envelope::decode_meta::<QueryOffset>(meta);
    let _ = envelope::decode_meta::<SearchOffset>(meta);
    let _ = envelope::decode_meta::<OffsetReply>(meta);
    let _ = envelope::decode_meta::<ResetOffsets>(meta);
    let _ = envelope::decode_meta::<ResetReply>(meta);
    let _ = envelope::decode_meta::<LockQueues>(meta);
    let _ = envelope::decode_meta::<LockReply>(meta);
    let _ = envelope::decode_meta::<ListGroups>(meta);
    let _ = envelope::decode_meta::<GroupList>(meta);
    let _ = envelope::decode_meta::<DescribeGroup>(meta);
    let _ = envelope::decode_meta::<GroupDescription>(meta);
    let _ = envelope::decode_meta::<DeleteGroup>(meta);
    let _ = envelope::decode_meta::<Deleted>(meta);
}
