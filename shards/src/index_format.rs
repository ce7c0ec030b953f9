//! The bytes of a queue index file: a header block naming the format, then chunks of entries.
//!
//! File: `[header: 4 KiB][chunk 0][chunk 1]…`, each chunk `INDEX_CHUNK_ENTRIES` entries of
//! `INDEX_ENTRY_BYTES`, written whole (a partial tail chunk padded with empty slots) so every
//! write is DMA-aligned.
//!
//! Header (little endian, zero padded to 4 KiB): `[magic "SMQI"][version: u32][entry bytes:
//! u32][chunk entries: u32][crc32 of the 16 bytes before it]`. A file whose header is missing or
//! names another version holds nothing this build can read: the store treats it as empty and
//! recovery rebuilds it from the log (the index is derived data).
//!
//! Entry (32 bytes): `[log position: u64][batch length: u32][delta: u32][tag code: i64]
//! [store time ms: u64]`. `delta` is the record's index inside its batch (the batch's base offset
//! is `n - delta`); the tag code is the record's `record::tag_code` (what a tag filter tests
//! without reading the log); the store time is the batch's, so a search by time is a binary
//! search over the index alone. A batch length of 0 marks an empty slot; a stored batch is
//! never empty.

pub const INDEX_FORMAT_VERSION: u32 = 2;
pub const INDEX_HEADER_BYTES: usize = 4096;
pub const INDEX_ENTRY_BYTES: usize = 32;
pub const INDEX_CHUNK_ENTRIES: u64 = 4096;
pub const INDEX_CHUNK_BYTES: usize = INDEX_CHUNK_ENTRIES as usize * INDEX_ENTRY_BYTES;

const MAGIC: u32 = u32::from_le_bytes(*b"SMQI");

const _: () = assert!(INDEX_CHUNK_BYTES.is_multiple_of(4096));
const _: () = assert!(INDEX_HEADER_BYTES.is_multiple_of(4096));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub position: u64,
    pub batch_len: u32,
    pub delta: u32,
    pub tag_code: i64,
    pub store_ms: u64,
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

impl IndexEntry {
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.position.to_le_bytes());
        out[8..12].copy_from_slice(&self.batch_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.delta.to_le_bytes());
        out[16..24].copy_from_slice(&self.tag_code.to_le_bytes());
        out[24..32].copy_from_slice(&self.store_ms.to_le_bytes());
    }

    /// The entry in a slot, or `None` for an empty slot.
    pub fn decode(bytes: &[u8]) -> Option<IndexEntry> {
        let entry = IndexEntry {
            position: u64::from_le_bytes(array(&bytes[0..8])),
            batch_len: u32::from_le_bytes(array(&bytes[8..12])),
            delta: u32::from_le_bytes(array(&bytes[12..16])),
            tag_code: i64::from_le_bytes(array(&bytes[16..24])),
            store_ms: u64::from_le_bytes(array(&bytes[24..32])),
        };
        (entry.batch_len != 0).then_some(entry)
    }
}

/// The header block of a new index file.
pub fn header_block() -> Vec<u8> {
    let mut block = vec![0u8; INDEX_HEADER_BYTES];
    block[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    block[4..8].copy_from_slice(&INDEX_FORMAT_VERSION.to_le_bytes());
    block[8..12].copy_from_slice(&(INDEX_ENTRY_BYTES as u32).to_le_bytes());
    block[12..16].copy_from_slice(&(INDEX_CHUNK_ENTRIES as u32).to_le_bytes());
    let crc = crc32fast::hash(&block[0..16]);
    block[16..20].copy_from_slice(&crc.to_le_bytes());
    block
}

/// True when `block` is the header of an index file this build reads.
pub fn header_is_current(block: &[u8]) -> bool {
    block.len() >= INDEX_HEADER_BYTES.min(20) && block.get(..20) == header_block().get(..20)
}

/// Byte offset of chunk `chunk_no` in the file.
pub fn chunk_position(chunk_no: u64) -> u64 {
    INDEX_HEADER_BYTES as u64 + chunk_no * INDEX_CHUNK_BYTES as u64
}

/// Chunks a file of `size` bytes holds (a torn last chunk counts).
pub fn chunks_in(size: u64) -> u64 {
    size.saturating_sub(INDEX_HEADER_BYTES as u64)
        .div_ceil(INDEX_CHUNK_BYTES as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_zero_is_empty() {
        let entry = IndexEntry {
            position: 1 << 40,
            batch_len: 4096,
            delta: 7,
            tag_code: -2_598_919,
            store_ms: 1_700_000_000_123,
        };
        let mut slot = [0u8; INDEX_ENTRY_BYTES];
        entry.encode(&mut slot);
        assert_eq!(IndexEntry::decode(&slot), Some(entry));
        assert_eq!(IndexEntry::decode(&[0u8; INDEX_ENTRY_BYTES]), None);
    }

    #[test]
    fn only_the_current_header_is_accepted() {
        let block = header_block();
        assert!(header_is_current(&block));
        let mut old = block.clone();
        old[4] = 1;
        assert!(!header_is_current(&old));
        assert!(!header_is_current(&[0u8; 16]));
        assert_eq!(chunks_in(0), 0);
        assert_eq!(chunks_in(INDEX_HEADER_BYTES as u64), 0);
        assert_eq!(chunks_in(INDEX_HEADER_BYTES as u64 + 1), 1);
        assert_eq!(
            chunk_position(1),
            (INDEX_HEADER_BYTES + INDEX_CHUNK_BYTES) as u64
        );
    }
}
