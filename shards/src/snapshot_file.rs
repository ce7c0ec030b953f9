//! Small files replaced whole: the recovery checkpoint and the consumer offsets.
//!
//! Layout, in whole 4 KiB blocks: `[magic: u32][version: u32][body_len: u32][crc32 of body:
//! u32][body][zeros]`. A write goes to `<name>.tmp` (DMA, fdatasync), is renamed over `<name>`,
//! and the directory is synced, so after a crash the file is the old one or the new one, never
//! a mix, and a completed write survives power loss. A missing file reads as `None`; one whose
//! magic, version, length or CRC is wrong reads as [`SnapshotRead::Invalid`], for the caller to
//! decide (the checkpoint rescans the log; the offsets move the file aside and say so).

use std::path::Path;

use crate::file_io::{self, StoreFile, Writable};

use crate::error::{Result, StorageError};

const BLOCK_BYTES: usize = 4096;
const PREFIX_BYTES: usize = 16;

pub enum SnapshotRead {
    Missing,
    Invalid(String),
    Valid(Vec<u8>),
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The framed bytes of `body`.
pub fn encode(magic: u32, version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_BYTES + body.len());
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The body framed in `bytes`, if the frame is intact.
pub fn decode(magic: u32, version: u32, bytes: &[u8]) -> std::result::Result<&[u8], String> {
    if u32_at(bytes, 0) != Some(magic) {
        return Err("wrong magic".into());
    }
    match u32_at(bytes, 4) {
        Some(v) if v == version => {}
        other => return Err(format!("version {other:?}, expected {version}")),
    }
    let len = u32_at(bytes, 8).ok_or("truncated")? as usize;
    let body = bytes
        .get(PREFIX_BYTES..PREFIX_BYTES.saturating_add(len))
        .ok_or("truncated body")?;
    if u32_at(bytes, 12) != Some(crc32fast::hash(body)) {
        return Err("CRC mismatch".into());
    }
    Ok(body)
}

pub async fn read(dir: &Path, name: &str, magic: u32, version: u32) -> SnapshotRead {
    let path = dir.join(name);
    let Ok(file) = StoreFile::open(&path).await else {
        return SnapshotRead::Missing;
    };
    let bytes = match file.file_size().await {
        Ok(size) => file.read_at(0, size as usize).await.map(|b| b.to_vec()),
        Err(e) => Err(e),
    };
    let _ = file.close().await;
    match bytes {
        Err(e) => SnapshotRead::Invalid(format!("cannot read {}: {e}", path.display())),
        Ok(bytes) => match decode(magic, version, &bytes) {
            Ok(body) => SnapshotRead::Valid(body.to_vec()),
            Err(why) => SnapshotRead::Invalid(why),
        },
    }
}

pub async fn write(dir: &Path, name: &str, magic: u32, version: u32, body: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = StoreFile::open_writable(&tmp, Writable::REPLACE)
        .await
        .map_err(|e| StorageError::glommio(&tmp, e))?;
    let encoded = encode(magic, version, body);
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
    let target = dir.join(name);
    file_io::rename(&tmp, &target)
        .await
        .map_err(|e| StorageError::glommio(&target, e))?;
    sync_dir(dir).await
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> Result<()> {
    file_io::sync_dir(dir)
        .await
        .map_err(|e| StorageError::glommio(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_every_corruption_is_caught() {
        let bytes = encode(7, 1, b"hello body");
        assert_eq!(decode(7, 1, &bytes), Ok(&b"hello body"[..]));
        let mut padded = bytes.clone();
        padded.resize(4096, 0);
        assert_eq!(decode(7, 1, &padded), Ok(&b"hello body"[..]));
        assert!(decode(7, 2, &bytes).is_err());
        for at in 0..bytes.len() {
            let mut copy = bytes.clone();
            copy[at] ^= 1;
            assert!(decode(7, 1, &copy).is_err(), "flip at {at}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(7, 1, &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
