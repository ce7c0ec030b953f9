//! A saturated shard answers an append that waited `busy_after` for room with
//! `StorageError::Busy`, stores nothing of it, counts it, and takes appends again once the
//! writer has caught up; with a long `busy_after` the same load only waits (backpressure).

use std::time::Duration;

use crate::config::FlushMode;
use crate::error::StorageError;
use crate::store::ShardStore;
use crate::store_tests::{batch, read_keys, run, small_config};

async fn open(dir: &std::path::Path, busy_after: Duration) -> ShardStore {
    let mut config = small_config(
        dir,
        FlushMode::Async {
            interval: Duration::from_millis(5),
        },
    );
    config.busy_after = busy_after;
    ShardStore::open(config, None).await.unwrap()
}

#[test]
fn an_append_past_busy_after_is_refused_as_busy_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open(&path, Duration::ZERO).await;
        // Appends that find room do not yield, so the writer cannot catch up in this loop:
        // the unwritten bound (16 KiB here) is reached and the next append must wait.
        let mut accepted = 0u32;
        let busy = loop {
            match store.append(1, 0, batch(0, accepted, 3)).await {
                Ok(_) => accepted += 1,
                Err(err) => break err,
            }
            assert!(
                accepted < 1000,
                "the unwritten bound never made an append wait"
            );
        };
        assert!(
            matches!(busy, StorageError::Busy { shard_id: 0, .. }),
            "{busy:?}"
        );
        assert_eq!(store.stats().appends_busy, 1);
        assert_eq!(
            store.offsets(1, 0).1,
            u64::from(accepted) * 3,
            "nothing of it stored"
        );
        // Once the writer has caught up, appends are taken again, right after the last one
        // (polled: how long the writer takes depends on the machine).
        let mut tries = 0;
        let next = loop {
            glommio::timer::sleep(Duration::from_millis(20)).await;
            match store.append(1, 0, batch(0, accepted, 3)).await {
                Ok(next) => break next,
                Err(StorageError::Busy { .. }) if tries < 1500 => tries += 1,
                Err(err) => panic!("the writer never caught up: {err:?}"),
            }
        };
        assert_eq!(store.offsets(1, 0).1, u64::from(accepted + 1) * 3);
        assert_eq!(next.base_offset, u64::from(accepted) * 3);
        assert_eq!(read_keys(&store, 0).await.len() as u32, (accepted + 1) * 3);
        store.close().await.unwrap();

        // A generous `busy_after`: the same load waits for room instead.
        let store = open(&path, Duration::from_secs(3600)).await;
        let start = store.offsets(1, 0).1;
        for seq in 0..200 {
            store.append(1, 0, batch(0, seq, 3)).await.unwrap();
        }
        assert_eq!(store.stats().appends_busy, 0);
        assert_eq!(store.offsets(1, 0).1, start + 600);
        store.close().await.unwrap();
    });
}
