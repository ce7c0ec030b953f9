//! Under `flush = sync` a reader sees a batch only once an fdatasync covers it (`visibility`):
//! no offset, read, time search or long poll shows what a crash could take back.

use std::time::Duration;

use crate::store_tests::{batch, open_sync, read_keys, request, run};

#[test]
fn an_appended_batch_is_invisible_until_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        let first = store.append(1, 0, batch(0, 0, 3)).await.unwrap();
        store.wait_synced(first.end).await.unwrap();
        // No await between the append and the checks: the writer cannot have synced it.
        let second = store.append(1, 0, batch(0, 1, 4)).await.unwrap();
        assert_eq!(second.base_offset, 3);
        assert_eq!(
            store.offsets(1, 0),
            (0, 3),
            "the unsynced batch is not counted"
        );
        let outcome = store.read(1, 0, request(3, 100, 1 << 20)).await.unwrap();
        assert!(
            outcome.batches.is_empty(),
            "nothing is read past the synced end"
        );
        assert_eq!(outcome.max_offset, 3);
        assert!(
            store.read(1, 0, request(4, 100, 1 << 20)).await.is_err(),
            "an offset inside the unsynced batch is past the end"
        );
        assert_eq!(store.offset_by_time(1, 0, u64::MAX).await.unwrap(), 3);
        assert_eq!(store.store_time_at(1, 0, 3).await.unwrap(), None);
        store.wait_synced(second.end).await.unwrap();
        assert_eq!(store.offsets(1, 0), (0, 7));
        assert_eq!(read_keys(&store, 0).await.len(), 7);
        store.close().await.unwrap();
    });
}

#[test]
fn a_long_poll_wakes_when_the_sync_makes_data_visible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let store = open_sync(&path).await;
        let producer = store.clone();
        // An append nobody waits on (a oneway produce) still gets synced, and wakes the poll.
        let task = glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            producer.append(1, 0, batch(0, 0, 1)).await.unwrap();
        });
        let woken = futures_lite::future::or(
            async {
                Some(
                    store
                        .wait_for_data(1, 0, 0, Duration::from_secs(3600))
                        .await,
                )
            },
            async {
                glommio::timer::sleep(Duration::from_secs(30)).await;
                None
            },
        )
        .await;
        assert_eq!(woken, Some(true), "the sync woke the poll, not its timeout");
        task.await;
        store.close().await.unwrap();
    });
}
