//! The recovery checkpoint: a log position `P` such that every batch that starts before `P` is
//! synced in the log *and* has its index entries persisted and synced, plus the entry count each
//! queue index had when it was persisted. Recovery verifies and re-indexes only from `P` on,
//! unless an index holds fewer entries than the checkpoint recorded (a lost or damaged index
//! file): then it re-indexes the whole log.
//!
//! File `<shard dir>/checkpoint`, a `snapshot_file` (magic "SMQC", version 1) whose body is
//! `[position: u64][queue count: u32]` then per queue `[topic_id: u32][queue_id: u32][len: u64]`.
//! A missing or invalid checkpoint means "scan the whole log", which is always correct, only
//! slower.

use std::path::Path;

use crate::error::Result;
use crate::snapshot_file::{self, SnapshotRead};

const MAGIC: u32 = u32::from_le_bytes(*b"SMQC");
const VERSION: u32 = 1;
const FILE: &str = "checkpoint";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub position: u64,
    /// `((topic_id, queue_id), index entries persisted)`.
    pub queues: Vec<((u32, u32), u64)>,
}

fn encode_body(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + checkpoint.queues.len() * 16);
    body.extend_from_slice(&checkpoint.position.to_le_bytes());
    body.extend_from_slice(&(checkpoint.queues.len() as u32).to_le_bytes());
    for ((topic, queue), len) in &checkpoint.queues {
        body.extend_from_slice(&topic.to_le_bytes());
        body.extend_from_slice(&queue.to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
    }
    body
}

pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    snapshot_file::encode(MAGIC, VERSION, &encode_body(checkpoint))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn decode_body(body: &[u8]) -> Option<Checkpoint> {
    let position = u64_at(body, 0)?;
    let count = u32_at(body, 8)? as usize;
    if body.len() != 12 + count.checked_mul(16)? {
        return None;
    }
    let queues = (0..count)
        .map(|i| {
            let at = 12 + i * 16;
            Some((
                (u32_at(body, at)?, u32_at(body, at + 4)?),
                u64_at(body, at + 8)?,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Checkpoint { position, queues })
}

pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
    decode_body(snapshot_file::decode(MAGIC, VERSION, bytes).ok()?)
}

pub async fn read(dir: &Path) -> Option<Checkpoint> {
    match snapshot_file::read(dir, FILE, MAGIC, VERSION).await {
        SnapshotRead::Missing => None,
        SnapshotRead::Valid(body) => {
            let checkpoint = decode_body(&body);
            if checkpoint.is_none() {
                tracing::warn!(dir = %dir.display(), "checkpoint body is invalid; recovery scans the whole log");
            }
            checkpoint
        }
        SnapshotRead::Invalid(why) => {
            tracing::warn!(dir = %dir.display(), %why, "checkpoint is invalid; recovery scans the whole log");
            None
        }
    }
}

pub async fn write(dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    snapshot_file::write(dir, FILE, MAGIC, VERSION, &encode_body(checkpoint)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let checkpoint = Checkpoint {
            position: 123_456,
            queues: vec![((1, 0), 10), ((1, 1), 20)],
        };
        let bytes = encode(&checkpoint);
        assert_eq!(decode(&bytes), Some(checkpoint.clone()));
        let mut padded = bytes.clone();
        padded.resize(4096, 0);
        assert_eq!(decode(&padded), Some(checkpoint));
        for at in 0..bytes.len() {
            let mut copy = bytes.clone();
            copy[at] ^= 1;
            assert_eq!(decode(&copy), None, "flip at {at}");
        }
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
    }
}
