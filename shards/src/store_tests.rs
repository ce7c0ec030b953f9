//! Store tests on real files: roll, read-back from disk, reopen, torn tail, index rebuild.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use shardmq_protocol::batch::{encode_batch, split_batches, Record};
use shardmq_protocol::ValidatedBatch;

use crate::read::ReadRequest;

use crate::config::{FlushMode, StoreConfig};
use crate::store::ShardStore;

pub(crate) fn small_config(dir: &Path, flush: FlushMode) -> StoreConfig {
    let mut config = StoreConfig::new(0, dir.to_path_buf());
    config.segment_bytes = 64 * 1024;
    config.write_buffer_bytes = 4096;
    config.write_behind_buffers = 1;
    config.hot_tail_bytes = 32 * 1024;
    config.index_resident_chunks = 2;
    config.flush = flush;
    config.checkpoint_interval = Duration::from_secs(3600);
    // Appends wait for room rather than answer busy: a slow fdatasync on a loaded machine
    // must not fail a test about something else (`busy_tests` sets its own).
    config.busy_after = Duration::from_secs(3600);
    // Retention runs when a test calls it.
    config.retention.max_age = None;
    config.retention.interval = Duration::from_secs(3600);
    config
}

pub(crate) fn batch(queue: u32, seq: u32, records: u32) -> ValidatedBatch {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            born_timestamp_ms: 1,
            keys: vec![format!("{queue}-{seq}-{i}")],
            tags: if i.is_multiple_of(2) {
                "even".into()
            } else {
                String::new()
            },
            payload: vec![(seq % 251) as u8; 300 + (i as usize * 7) % 200],
            ..Record::default()
        })
        .collect();
    ValidatedBatch::new(BytesMut::from(&encode_batch(&records)[..])).unwrap()
}

pub(crate) fn request(offset: u64, max_messages: u32, max_bytes: u32) -> ReadRequest {
    ReadRequest {
        offset,
        max_messages,
        max_bytes,
        tag_codes: None,
    }
}

pub(crate) fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// Reads a whole queue, from its first stored offset, and returns the keys of its records in
/// offset order.
pub(crate) async fn read_keys(store: &ShardStore, queue: u32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut offset = store.offsets(1, queue).0;
    loop {
        let outcome = store
            .read(1, queue, request(offset, 1000, 64 * 1024))
            .await
            .unwrap();
        if outcome.batches.is_empty() {
            return keys;
        }
        for batch in &outcome.batches {
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(&batch.bytes);
            for view in split_batches(&aligned).unwrap() {
                let base = view.header.base_offset;
                for (delta, record) in view.records().unwrap().iter() {
                    if base + delta >= offset {
                        keys.push(record.keys[0].to_string());
                    }
                }
            }
        }
        offset = outcome.next_offset;
    }
}

/// Queue `queue` holds exactly the batches `0..batches` of 3 records, in order; on failure a
/// short message naming `context` and the first difference.
pub(crate) async fn assert_queue_holds(
    store: &ShardStore,
    queue: u32,
    batches: u32,
    context: &str,
) {
    let (got, want) = (
        read_keys(store, queue).await,
        expected_keys(queue, batches, 3),
    );
    let first_difference = got.iter().zip(&want).position(|(g, w)| g != w);
    assert!(
        got.len() == want.len() && first_difference.is_none(),
        "{context}: read {} records, want {}; first difference at {first_difference:?}, first read {:?}",
        got.len(),
        want.len(),
        got.first()
    );
}

pub(crate) fn expected_keys(queue: u32, batches: u32, records: u32) -> Vec<String> {
    (0..batches)
        .flat_map(|s| (0..records).map(move |i| format!("{queue}-{s}-{i}")))
        .collect()
}

pub(crate) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

/// The newest segment file that holds data.
fn last_data_segment(dir: &Path) -> PathBuf {
    segment_files(dir)
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap()
}

pub(crate) async fn open_sync(dir: &Path) -> ShardStore {
    ShardStore::open(small_config(dir, FlushMode::Sync), None)
        .await
        .unwrap()
}

/// Appends and waits until the batch may be acknowledged (and, under `flush = sync`, is
/// visible to reads), as a front end does before it answers a producer.
pub(crate) async fn append_acked(
    store: &ShardStore,
    queue: u32,
    batch: ValidatedBatch,
) -> crate::AppendOutcome {
    let outcome = store.append(1, queue, batch).await.unwrap();
    store.acknowledgeable(outcome.end).await.unwrap();
    outcome
}

pub(crate) async fn fill(store: &ShardStore, batches: u32) {
    for seq in 0..batches {
        for queue in 0..2 {
            let outcome = store.append(1, queue, batch(queue, seq, 3)).await.unwrap();
            assert_eq!(outcome.base_offset, u64::from(seq) * 3);
            store.wait_synced(outcome.end).await.unwrap();
        }
    }
}

#[test]
fn appends_roll_segments_and_read_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 60).await;
        // 120 batches of ~1.3 KB over 64 KiB segments: the log rolled, and the 32 KiB hot tail
        // no longer holds the start, so these reads come from disk.
        assert!(
            segment_files(&path).len() >= 2,
            "segments: {:?}",
            segment_files(&path)
        );
        assert_eq!(read_keys(&store, 0).await, expected_keys(0, 60, 3));
        assert_eq!(read_keys(&store, 1).await, expected_keys(1, 60, 3));
        // A read from the middle of a batch returns the whole batch and the right next offset.
        let mid = store.read(1, 0, request(4, 1, 1 << 20)).await.unwrap();
        assert_eq!(mid.batches.len(), 1);
        assert_eq!(mid.next_offset, 6);
        assert!(
            store.read(1, 0, request(181, 1, 1 << 20)).await.is_err(),
            "past the end is an error"
        );
        store.close().await.unwrap();
    });
}

#[test]
fn reopen_keeps_everything_and_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = ShardStore::open(
            small_config(
                &path,
                FlushMode::Async {
                    interval: Duration::from_millis(5),
                },
            ),
            None,
        )
        .await
        .unwrap();
        fill(&store, 30).await;
        store.close().await.unwrap();
        let store = open_sync(&path).await;
        assert_eq!(store.offsets(1, 0), (0, 90));
        assert_eq!(store.recovery_report().torn_tail, None);
        let next = append_acked(&store, 0, batch(0, 30, 3)).await;
        assert_eq!(next.base_offset, 90);
        assert_eq!(read_keys(&store, 0).await, expected_keys(0, 31, 3));
        store.close().await.unwrap();
    });
}

#[test]
fn torn_tail_is_cut_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 10).await;
        store.close().await.unwrap();
        // Cut the last segment in the middle of its last batch, as a crash mid-write would.
        let last = last_data_segment(&path);
        let len = std::fs::metadata(&last).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        file.set_len(len - 100).unwrap();
        drop(file);
        let store = open_sync(&path).await;
        assert!(store.recovery_report().torn_tail.is_some());
        // The last batch appended was queue 1's tenth: it is gone, queue 0 is whole.
        assert_eq!(store.offsets(1, 0), (0, 30));
        assert_eq!(store.offsets(1, 1), (0, 27));
        assert_eq!(read_keys(&store, 1).await, expected_keys(1, 9, 3));
        let again = append_acked(&store, 1, batch(1, 9, 3)).await;
        assert_eq!(again.base_offset, 27);
        assert_eq!(read_keys(&store, 1).await, expected_keys(1, 10, 3));
        store.close().await.unwrap();
    });
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 5).await;
        store.close().await.unwrap();
        let last = last_data_segment(&path);
        let mut bytes = std::fs::read(&last).unwrap();
        bytes.extend_from_slice(&[0xAB; 777]);
        std::fs::write(&last, &bytes).unwrap();
        let store = open_sync(&path).await;
        assert_eq!(
            store.recovery_report().torn_tail.as_ref().map(|t| t.2),
            Some(777)
        );
        assert_eq!(read_keys(&store, 0).await, expected_keys(0, 5, 3));
        store.close().await.unwrap();
    });
}

#[test]
fn lost_indexes_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 40).await;
        store.close().await.unwrap();
        // The checkpoint stays: it claims the indexes are complete, they are not.
        std::fs::remove_dir_all(path.join("index")).unwrap();
        let store = open_sync(&path).await;
        assert_eq!(
            store.recovery_report().scanned_from,
            0,
            "a lagging index forces a full scan"
        );
        assert_eq!(store.recovery_report().entries_rebuilt, 240);
        assert_eq!(read_keys(&store, 0).await, expected_keys(0, 40, 3));
        assert_eq!(read_keys(&store, 1).await, expected_keys(1, 40, 3));
        store.close().await.unwrap();
    });
}

/// Found by the storage simulation (seed 110): an index chunk write torn by a crash kept the
/// first entry of a batch and lost the rest; recovery saw that first entry match the log and
/// trusted the whole batch, leaving the queue short of the batch's other records (a read then
/// failed as "index damaged").
#[test]
fn a_batch_whose_index_entries_were_torn_is_reindexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 4).await;
        store.close().await.unwrap();
        // No checkpoint (recovery scans the whole log) and the index keeps only the first of
        // the last batch's three entries, as a torn chunk write leaves it.
        std::fs::remove_file(path.join("checkpoint")).unwrap();
        let index = path.join("index").join("1-0.idx");
        let mut bytes = std::fs::read(&index).unwrap();
        let entry = |offset: usize| 4096 + offset * 32;
        bytes[entry(10)..entry(12)].fill(0);
        std::fs::write(&index, &bytes).unwrap();
        let store = open_sync(&path).await;
        assert_eq!(store.offsets(1, 0), (0, 12));
        assert_eq!(read_keys(&store, 0).await, expected_keys(0, 4, 3));
        store.close().await.unwrap();
    });
}

/// Spares an earlier run left (numbered, or the unnumbered `next.spare` of older builds) hold a
/// whole segment's blocks each: they are removed at start, and only the new spare remains.
#[test]
fn spares_an_earlier_run_left_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 2).await;
        store.close().await.unwrap();
        for leftover in ["next.spare", "next.spare.7", "next.spare.0"] {
            std::fs::write(path.join("log").join(leftover), vec![1u8; 4096]).unwrap();
        }
        let store = open_sync(&path).await;
        let mut spares: Vec<String> = std::fs::read_dir(path.join("log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("next.spare"))
            .collect();
        spares.sort();
        assert_eq!(spares, ["next.spare.0"]);
        let spare = std::fs::metadata(path.join("log/next.spare.0")).unwrap();
        assert_eq!(
            spare.len(),
            0,
            "a fresh spare, not the leftover of that name"
        );
        assert_eq!(read_keys(&store, 0).await, expected_keys(0, 2, 3));
        store.close().await.unwrap();
    });
}

/// The files of `from` (recursively), put on the simulated disk under `to`.
fn copy_onto_sim_disk(disk: &crate::sim_disk::SimDisk, from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_onto_sim_disk(disk, &entry.path(), &target);
        } else {
            disk.put_file(&target, &std::fs::read(entry.path()).unwrap());
        }
    }
}

/// Found by the storage simulation (seed 71608 at 6dd79d4): recovery cut the index entries that
/// pointed past the log's end without syncing the cut; the log then wrote other batches at
/// those positions, a crash undid the cut, and the stale entries named bytes of other batches
/// (a read failed as "index damaged"). What recovery leaves in an index file must survive a
/// crash right after it.
#[test]
fn index_entries_dropped_by_recovery_stay_dropped_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 8).await;
        store.close().await.unwrap();
    });
    // The log loses all but its first batch (queue 0's): queue 1's index (persisted at close)
    // points only into what is gone, so recovery cuts it to nothing; no checkpoint.
    let segment = segment_files(dir.path())
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let keep = batch(0, 0, 3).len();
    let bytes = std::fs::read(&segment).unwrap();
    std::fs::write(&segment, &bytes[..keep]).unwrap();
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    for seed in 0..16 {
        let root = PathBuf::from(format!("/store-tests-sim/{}/{seed}", std::process::id()));
        let disk = crate::sim_disk::mount(&root, seed);
        copy_onto_sim_disk(&disk, dir.path(), &root);
        let opened = root.clone();
        run(move || async move {
            let store = open_sync(&opened).await;
            assert!(store.recovery_report().index_entries_dropped > 0);
            // Dropped without a close: what follows is a power failure.
        });
        let index = root.join("index").join("1-1.idx");
        let recovered = disk.file_bytes(&index);
        disk.crash_now();
        disk.restart();
        assert_eq!(
            disk.file_bytes(&index),
            recovered,
            "seed {seed}: the cut came undone"
        );
    }
}

#[test]
fn index_entries_past_the_log_end_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        fill(&store, 8).await;
        store.close().await.unwrap();
        // Remove the newest segment entirely, as if its data never reached the disk, while the
        // index (persisted at close) still points into it.
        let segments: Vec<_> = segment_files(&path)
            .into_iter()
            .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
            .collect();
        assert!(
            segments.len() == 1,
            "this test expects one data segment: {segments:?}"
        );
        std::fs::remove_file(path.join("checkpoint")).unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segments[0])
            .unwrap();
        let keep = 2 * batch(0, 0, 3).len() as u64; // the first two batches: q0 seq0, q1 seq0
        file.set_len(keep).unwrap();
        drop(file);
        let store = open_sync(&path).await;
        assert_eq!(store.offsets(1, 0), (0, 3));
        assert_eq!(store.offsets(1, 1), (0, 3));
        assert!(store.recovery_report().index_entries_dropped > 0);
        assert_eq!(
            store
                .append(1, 0, batch(0, 1, 3))
                .await
                .unwrap()
                .base_offset,
            3
        );
        store.close().await.unwrap();
    });
}

#[test]
fn long_poll_wakes_on_append_and_times_out_without() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        assert!(
            !store
                .wait_for_data(1, 0, 0, Duration::from_millis(20))
                .await
        );
        let producer = store.clone();
        let task = glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            producer.append(1, 0, batch(0, 0, 1)).await.unwrap();
        });
        assert!(store.wait_for_data(1, 0, 0, Duration::from_secs(30)).await);
        task.await;
        store.close().await.unwrap();
    });
}

#[test]
fn offsets_are_found_by_store_time_and_by_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        let mut stamps = Vec::new();
        for seq in 0..6 {
            // Under `flush = sync` a batch is visible (and found by time) once synced: a
            // search right after `append` may stop short of it.
            let outcome = append_acked(&store, 0, batch(0, seq, 3)).await;
            stamps.push((outcome.store_ms, outcome.base_offset));
            glommio::timer::sleep(Duration::from_millis(3)).await;
        }
        for (i, (ms, base)) in stamps.iter().enumerate() {
            assert_eq!(
                store.offset_by_time(1, 0, *ms).await.unwrap(),
                *base,
                "batch {i}"
            );
            let later = stamps.get(i + 1).map_or(18, |(_, b)| *b);
            assert_eq!(store.offset_by_time(1, 0, ms + 1).await.unwrap(), later);
        }
        assert_eq!(store.offset_by_time(1, 0, 0).await.unwrap(), 0);
        assert_eq!(store.offset_by_time(1, 0, u64::MAX).await.unwrap(), 18);
        assert_eq!(
            store.offset_by_time(9, 9, 0).await.unwrap(),
            0,
            "an unknown queue"
        );
        assert_eq!(
            store.earliest_store_time(1, 0).await.unwrap(),
            Some(stamps[0].0)
        );
        assert!(store.offset_in_memory(1, 0, 17).await.unwrap());
        assert!(!store.offset_in_memory(1, 0, 18).await.unwrap());
        store.close().await.unwrap();
    });
}

/// A batch of one record tagged `tag`.
fn tagged(tag: &str, seq: u32) -> ValidatedBatch {
    let record = Record {
        tags: tag.into(),
        keys: vec![format!("{tag}-{seq}")],
        payload: vec![seq as u8; 100],
        ..Record::default()
    };
    ValidatedBatch::new(BytesMut::from(&encode_batch(&[record])[..])).unwrap()
}

#[test]
fn a_tag_filtered_read_skips_batches_from_the_index_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        for seq in 0..30 {
            let tag = if seq % 10 == 3 { "rare" } else { "common" };
            append_acked(&store, 0, tagged(tag, seq)).await;
        }
        let codes: std::collections::HashSet<i64> =
            [shardmq_protocol::record::tag_code("rare")].into();
        let filtered = ReadRequest {
            offset: 0,
            max_messages: 100,
            max_bytes: 1 << 20,
            tag_codes: Some(std::rc::Rc::new(codes)),
        };
        let read = store.read(1, 0, filtered.clone()).await.unwrap();
        let bases: Vec<u64> = read
            .batches
            .iter()
            .map(|b| {
                shardmq_protocol::BatchHeader::parse(&b.bytes)
                    .unwrap()
                    .base_offset
            })
            .collect();
        assert_eq!(bases, vec![3, 13, 23], "only the matching batches are read");
        assert!(read
            .batches
            .iter()
            .all(|b| b.selected.as_deref() == Some(&[0][..])));
        assert_eq!(read.next_offset, 30, "the scan went to the end");
        let one = store
            .read(
                1,
                0,
                ReadRequest {
                    max_messages: 1,
                    ..filtered
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (one.batches.len(), one.next_offset),
            (1, 4),
            "stops after the limit"
        );
        store.close().await.unwrap();
    });
}
