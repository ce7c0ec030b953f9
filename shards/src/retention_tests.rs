//! Retention on real files: segments deleted by size and age, queue starts moved past them,
//! reads below a start answered with the new start, and all of it surviving a reopen, a lost
//! index and a lost checkpoint.

use std::path::Path;
use std::time::Duration;

use crate::config::FlushMode;
use crate::error::StorageError;
use crate::store::ShardStore;
use crate::store_tests::{
    expected_keys, fill, open_sync, read_keys, request, run, segment_files, small_config,
};

async fn open_with(dir: &Path, max_bytes: Option<u64>, max_age: Option<Duration>) -> ShardStore {
    let mut config = small_config(dir, FlushMode::Sync);
    config.retention.max_bytes = max_bytes;
    config.retention.max_age = max_age;
    ShardStore::open(config, None).await.unwrap()
}

async fn retain(store: &ShardStore) -> usize {
    let mut deleted = 0;
    loop {
        match store.retention_pass().await.unwrap() {
            0 => return deleted,
            n => deleted += n,
        }
    }
}

/// The keys a queue still holds after retention moved its start to `first` (3 records a batch).
fn kept_keys(queue: u32, batches: u32, first: u64) -> Vec<String> {
    expected_keys(queue, batches, 3)
        .into_iter()
        .skip(first as usize)
        .collect()
}

#[test]
fn the_size_limit_deletes_the_oldest_segments_and_moves_queue_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_with(&path, Some(128 * 1024), None).await;
        fill(&store, 200).await;
        let before = segment_files(&path).len();
        let deleted = retain(&store).await;
        assert!(deleted >= 3, "deleted {deleted} of {before} segments");
        assert_eq!(segment_files(&path).len(), before - deleted);
        for queue in 0..2 {
            let (min, max) = store.offsets(1, queue);
            assert!(min > 0 && min < max, "queue {queue}: [{min}, {max})");
            assert_eq!(min % 3, 0, "a queue starts at a batch boundary");
            assert_eq!(read_keys(&store, queue).await, kept_keys(queue, 200, min));
            match store.read(1, queue, request(min - 1, 10, 1 << 20)).await {
                Err(StorageError::OffsetOutOfRange { min: m, .. }) => assert_eq!(m, min),
                other => panic!("a read below the start answered {other:?}"),
            }
            assert_eq!(
                store.offset_by_time(1, queue, 0).await.unwrap(),
                min,
                "a search by time starts at the queue's start"
            );
        }
        let starts = [store.offsets(1, 0), store.offsets(1, 1)];
        store.close().await.unwrap();

        let store = open_sync(&path).await;
        assert_eq!([store.offsets(1, 0), store.offsets(1, 1)], starts);
        let next =
            crate::store_tests::append_acked(&store, 0, crate::store_tests::batch(0, 200, 3)).await;
        assert_eq!(next.base_offset, starts[0].1);
        assert_eq!(read_keys(&store, 0).await, kept_keys(0, 201, starts[0].0));
        store.close().await.unwrap();
    });
}

#[test]
fn expired_segments_go_and_the_open_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_with(&path, None, Some(Duration::from_secs(3600))).await;
        fill(&store, 120).await;
        let segments = segment_files(&path).len();
        assert!(segments >= 3, "{segments} segments");
        assert_eq!(retain(&store).await, 0, "nothing is an hour old");
        store.close().await.unwrap();

        let store = open_with(&path, None, Some(Duration::ZERO)).await;
        retain(&store).await;
        assert_eq!(
            segment_files(&path).len(),
            1,
            "only the open segment is left"
        );
        for queue in 0..2 {
            let (min, max) = store.offsets(1, queue);
            assert!(min > 0 && min <= max);
            assert_eq!(read_keys(&store, queue).await, kept_keys(queue, 120, min));
        }
        store.close().await.unwrap();
    });
}

#[test]
fn a_lost_index_and_checkpoint_behind_the_log_start_continue_where_the_log_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_with(&path, Some(128 * 1024), None).await;
        fill(&store, 200).await;
        retain(&store).await;
        let starts = [store.offsets(1, 0), store.offsets(1, 1)];
        store.close().await.unwrap();
        std::fs::remove_dir_all(path.join("index")).unwrap();
        std::fs::remove_file(path.join("checkpoint")).unwrap();

        let store = open_sync(&path).await;
        assert_eq!([store.offsets(1, 0), store.offsets(1, 1)], starts);
        assert_eq!(store.recovery_report().queues_moved_forward, 2);
        assert_eq!(read_keys(&store, 1).await, kept_keys(1, 200, starts[1].0));
        store.close().await.unwrap();

        // The rebuilt index, with empty slots before its first entry, reopens as it was.
        let store = open_sync(&path).await;
        assert_eq!([store.offsets(1, 0), store.offsets(1, 1)], starts);
        assert_eq!(store.recovery_report().queues_moved_forward, 0);
        let next =
            crate::store_tests::append_acked(&store, 1, crate::store_tests::batch(1, 200, 3)).await;
        assert_eq!(next.base_offset, starts[1].1);
        assert_eq!(read_keys(&store, 1).await, kept_keys(1, 201, starts[1].0));
        store.close().await.unwrap();
    });
}

#[test]
fn a_gallop_finds_what_a_binary_search_finds() {
    use crate::index::{IndexEntry, QueueIndex};
    use crate::recovery::{first_offset_where, gallop_first_where};
    let index = std::cell::RefCell::new(QueueIndex::new("/nonexistent".into(), 64));
    // Batches of 1..=7 records at growing positions.
    let (mut position, mut n) = (0u64, 0u64);
    while n < 20_000 {
        let count = 1 + position % 7;
        for delta in 0..count {
            index.borrow_mut().push(IndexEntry {
                position,
                batch_len: 64,
                delta: delta as u32,
                tag_code: 0,
                store_ms: 0,
            });
        }
        n += count;
        position += 64;
    }
    futures_lite::future::block_on(async {
        for from in [0u64, 1, 13, 4095, 4096, 10_000] {
            for threshold in [0u64, 64, 640, 64 * 1000, 64 * 3000, position, position + 64] {
                let at = |e: &IndexEntry| e.position >= threshold;
                assert_eq!(
                    gallop_first_where(&index, from, at).await.unwrap(),
                    first_offset_where(&index, from, at).await.unwrap(),
                    "from {from} threshold {threshold}"
                );
            }
        }
    });
}

/// Regression: a read that checked its offset against the queue's start, then awaited (a chunk
/// load) while retention moved the start past it and released the chunk, panicked on the empty
/// slot ("empty slot at offset …") instead of answering that the offset is gone.
#[test]
fn a_lookup_below_a_start_that_moved_meanwhile_is_an_error_not_a_panic() {
    use crate::index::{IndexEntry, QueueIndex, INDEX_CHUNK_ENTRIES};
    use crate::recovery::entry_at;
    let index = std::cell::RefCell::new(QueueIndex::new("/nonexistent".into(), 64));
    for i in 0..INDEX_CHUNK_ENTRIES * 3 {
        index.borrow_mut().push(IndexEntry {
            position: i * 64,
            batch_len: 64,
            delta: 0,
            tag_code: 0,
            store_ms: 0,
        });
    }
    index.borrow_mut().advance_first(INDEX_CHUNK_ENTRIES * 2);
    assert!(index.borrow_mut().release_chunks_below_first().is_some());
    futures_lite::future::block_on(async {
        assert!(matches!(
            entry_at(&index, 5).await,
            Err(StorageError::PositionDeleted(5))
        ));
        assert_eq!(
            entry_at(&index, INDEX_CHUNK_ENTRIES * 2)
                .await
                .unwrap()
                .position,
            INDEX_CHUNK_ENTRIES * 2 * 64
        );
    });
}
