//! The recovery checkpoint: a log position `P` such that every batch that starts before `P` is
//! synced in the log *and* has its index entries persisted and synced, plus the entry count each
//! queue index had when it was persisted. Recovery verifies and re-indexes only from `P` on,
//! unless an index holds fewer entries than the checkpoint recorded (a lost or damaged index
//! file): then it re-indexes the whole log.
//!
//! File `<shard dir>/checkpoint`, whole 4 KiB blocks:
//! `[magic "SMQC": u32][version 1: u32][body_len: u32][crc32 of body: u32][body][zeros]`, body =
//! `[position: u64][queue count: u32]` then per queue `[topic_id: u32][queue_id: u32][len: u64]`.
//! It is written to `checkpoint.tmp`, synced and renamed over the old one. A missing or invalid
//! checkpoint means "scan the whole log", which is always correct, only slower.

use std::path::Path;

use glommio::io::{DmaFile, OpenOptions};

use crate::error::{Result, StorageError};

const MAGIC: u32 = u32::from_le_bytes(*b"SMQC");
const BLOCK_BYTES: usize = 4096;
const PREFIX_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub position: u64,
    /// `((topic_id, queue_id), index entries persisted)`.
    pub queues: Vec<((u32, u32), u64)>,
}

pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + checkpoint.queues.len() * 16);
    body.extend_from_slice(&checkpoint.position.to_le_bytes());
    body.extend_from_slice(&(checkpoint.queues.len() as u32).to_le_bytes());
    for ((topic, queue), len) in &checkpoint.queues {
        body.extend_from_slice(&topic.to_le_bytes());
        body.extend_from_slice(&queue.to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
    }
    let mut out = Vec::with_capacity(PREFIX_BYTES + body.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
    if u32_at(bytes, 0)? != MAGIC || u32_at(bytes, 4)? != 1 {
        return None;
    }
    let body_len = u32_at(bytes, 8)? as usize;
    let body = bytes.get(PREFIX_BYTES..PREFIX_BYTES.checked_add(body_len)?)?;
    if crc32fast::hash(body) != u32_at(bytes, 12)? {
        return None;
    }
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

pub async fn read(dir: &Path) -> Option<Checkpoint> {
    let path = dir.join("checkpoint");
    let file = DmaFile::open(&path).await.ok()?;
    let size = file.file_size().await.ok()? as usize;
    let bytes = file.read_at(0, size).await.ok();
    let _ = file.close().await;
    let checkpoint = decode(&bytes?);
    if checkpoint.is_none() {
        tracing::warn!(path = %path.display(), "checkpoint is invalid; recovery scans the whole log");
    }
    checkpoint
}

pub async fn write(dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let tmp = dir.join("checkpoint.tmp");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&tmp)
        .await
        .map_err(|e| StorageError::glommio(&tmp, e))?;
    let encoded = encode(checkpoint);
    let mut block = file.alloc_dma_buffer(encoded.len().div_ceil(BLOCK_BYTES) * BLOCK_BYTES);
    block.as_bytes_mut().fill(0);
    block.as_bytes_mut()[..encoded.len()].copy_from_slice(&encoded);
    file.write_at(block, 0)
        .await
        .map_err(|e| StorageError::glommio(&tmp, e))?;
    file.fdatasync()
        .await
        .map_err(|e| StorageError::glommio(&tmp, e))?;
    file.close()
        .await
        .map_err(|e| StorageError::glommio(&tmp, e))?;
    let target = dir.join("checkpoint");
    glommio::io::rename(&tmp, &target)
        .await
        .map_err(|e| StorageError::glommio(&target, e))?;
    Ok(())
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
