//! The recovery fuzz target's check (`fuzz/fuzz_targets/recovery.rs`; its corpus also runs on
//! stable in `shards/tests/recovery_fuzz_corpus.rs`): arbitrary bytes as a shard's files, then
//! the store opened on them, every queue read from its start, a batch appended and the store
//! closed. Whatever the bytes, that must end in a typed error or a working store — never a panic,
//! a hang or a read that fails on what recovery accepted (except `CorruptIndex`: index entries
//! below the checkpoint are trusted, not checksummed, so a damaged one is caught at the read).
//!
//! Input: `[flags u8][segment length u32 LE][segment bytes][index bytes]`. Flags: bit 0 puts a
//! valid index header before the index bytes (so the entries are read, not refused at the
//! header); bit 1 writes a checkpoint claiming the whole segment and every index entry.

use std::path::Path;

use crate::config::{FlushMode, StoreConfig};
use crate::index_format::{header_block, INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES};
use crate::read::ReadRequest;
use crate::store::ShardStore;

/// The queue whose index file the input provides.
const QUEUE: (u32, u32) = (1, 0);

/// What the fuzz target calls per input. Panics only on a defect.
pub fn recovery(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (segment, index) = match rest.split_first_chunk::<4>() {
        Some((len, rest)) => rest.split_at((u32::from_le_bytes(*len) as usize).min(rest.len())),
        None => (rest, &[][..]),
    };
    let dir = tempfile_dir();
    write_files(&dir, flags, segment, index);
    let store_dir = dir.clone();
    glommio::LocalExecutorBuilder::default()
        .io_memory(2 << 20)
        .spawn(move || async move { open_read_append_close(&store_dir).await })
        .expect("an executor for the check")
        .join()
        .expect("the check does not panic");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("shardmq-fuzz-recovery-{}-{n}", std::process::id()))
}

fn write_files(dir: &Path, flags: u8, segment: &[u8], index: &[u8]) {
    let (log, indexes) = (dir.join("log"), dir.join("index"));
    std::fs::create_dir_all(&log).expect("temp dir");
    std::fs::create_dir_all(&indexes).expect("temp dir");
    std::fs::write(crate::segment::segment_path(&log, 0), segment).expect("segment");
    let mut index_file = Vec::new();
    if flags & 1 != 0 {
        index_file.extend_from_slice(&header_block());
    }
    index_file.extend_from_slice(index);
    std::fs::write(crate::recovery::index_path(&indexes, QUEUE), &index_file).expect("index");
    if flags & 2 != 0 {
        let entries = index_file.len().saturating_sub(INDEX_HEADER_BYTES) / INDEX_ENTRY_BYTES;
        let checkpoint = crate::checkpoint::Checkpoint {
            position: segment.len() as u64,
            queues: vec![(QUEUE, entries as u64)],
        };
        std::fs::write(
            dir.join("checkpoint"),
            crate::checkpoint::encode(&checkpoint),
        )
        .expect("checkpoint");
    }
}

async fn open_read_append_close(dir: &Path) {
    let mut config = StoreConfig::new(0, dir.to_path_buf());
    config.segment_bytes = 64 * 1024;
    config.write_buffer_bytes = 4096;
    config.write_behind_buffers = 1;
    config.hot_tail_bytes = 32 * 1024;
    config.flush = FlushMode::Sync;
    let Ok(store) = ShardStore::open(config, None).await else {
        return; // refused with a typed error: fine
    };
    for (topic, queue) in store.queue_keys() {
        let (mut offset, end) = store.offsets(topic, queue);
        while offset < end {
            let request = ReadRequest {
                offset,
                max_messages: 1000,
                max_bytes: 1 << 20,
                tag_codes: None,
            };
            let outcome = match store.read(topic, queue, request).await {
                Ok(outcome) => outcome,
                // Index entries are not checksummed: a damaged one is caught at the read.
                Err(
                    crate::StorageError::CorruptIndex { .. }
                    | crate::StorageError::CorruptIndexEntry { .. },
                ) => break,
                Err(e) => panic!("recovery accepted offset {offset} of {topic}/{queue} but reading it failed: {e}"),
            };
            assert!(
                outcome.next_offset > offset,
                "a read of {topic}/{queue} at {offset} made no progress"
            );
            offset = outcome.next_offset;
        }
    }
    let batch = shardmq_protocol::ValidatedBatch::new(bytes::BytesMut::from(
        &shardmq_protocol::batch::encode_batch(&[shardmq_protocol::batch::Record {
            payload: b"after recovery".to_vec(),
            ..Default::default()
        }])[..],
    ))
    .expect("a valid batch");
    if let Ok(outcome) = store.append(QUEUE.0, QUEUE.1, batch).await {
        store
            .wait_synced(outcome.end)
            .await
            .expect("an append after recovery syncs");
    }
    store.close().await.expect("the store closes");
}
