//! The log writer meets EIO (injected, see `faults`) on a write, on an fdatasync, at every point
//! of a run that rolls segments, and during its repair: the store refuses appends meanwhile,
//! keeps serving reads, repairs itself in place and takes appends again, and what it stored
//! reads back the same before and after a reopen.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::FlushMode;
use crate::error::StorageError;
use crate::faults::{Fault, FaultSite};
use crate::store::ShardStore;
use crate::store_tests::{batch, expected_keys, read_keys, run, small_config};

const RETRY_FOR: Duration = Duration::from_secs(60);

/// Appends batch `seq` of queue 0 (and waits for its sync under `flush = sync`), retrying while
/// the store refuses writes. Panics on any other error, or if writes never resume.
async fn append_until_accepted(store: &ShardStore, seq: u32) {
    let started = Instant::now();
    loop {
        match store.append(1, 0, batch(0, seq, 3)).await {
            Ok(outcome) => match store.acknowledgeable(outcome.end).await {
                Ok(()) => return,
                Err(err) => panic!("batch {seq} was appended, then: {err}"),
            },
            Err(StorageError::WritesRefused { .. }) if started.elapsed() < RETRY_FOR => {
                glommio::timer::sleep(Duration::from_millis(10)).await
            }
            Err(err) => panic!("batch {seq}: {err}"),
        }
    }
}

async fn assert_queue_holds(store: &ShardStore, batches: u32, context: &str) {
    crate::store_tests::assert_queue_holds(store, 0, batches, context).await;
}

/// EIO on every repair until the test clears it.
fn every_repair_fails() -> Fault {
    Fault {
        skip: 0,
        errno: libc::EIO,
        times: u32::MAX,
    }
}

/// Batches `0..acked` acknowledged; then the fault at `site`; batch `acked` is appended and its
/// acknowledgement fails; appends are refused while repairs fail; then the repair succeeds.
fn the_writer_fails_and_repairs_itself(site: FaultSite) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    run(move || async move {
        let store = ShardStore::open(small_config(&dir, FlushMode::Sync), None)
            .await
            .unwrap();
        let acked = 20;
        for seq in 0..acked {
            append_until_accepted(&store, seq).await;
        }
        store.inject_log_fault(site, Fault::eio_after(0));
        store.inject_log_fault(FaultSite::Repair, every_repair_fails());
        let outcome = store.append(1, 0, batch(0, acked, 3)).await.unwrap();
        let ack = store.acknowledgeable(outcome.end).await;
        assert!(
            matches!(ack, Err(StorageError::WriterFailed { .. })),
            "{ack:?}"
        );
        assert!(store.writer_failure().is_some());
        let refused = store.append(1, 0, batch(0, acked + 1, 3)).await;
        assert!(
            matches!(&refused, Err(StorageError::WritesRefused { reason, .. }) if reason.contains("repaired")),
            "{refused:?}"
        );
        // Reads go on; under `flush = sync` they see what is synced, so not the batch whose
        // ack failed (it becomes visible once the repair has rewritten and synced it).
        assert_queue_holds(&store, acked, "while failed").await;

        // A repair attempt fails too, and appends stay refused; then repairs may succeed.
        let started = Instant::now();
        while store.stats().writer_failures < 2 {
            assert!(started.elapsed() < RETRY_FOR, "no repair was attempted");
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(
            store.append(1, 0, batch(0, acked + 1, 3)).await,
            Err(StorageError::WritesRefused { .. })
        ));
        store.clear_log_fault(FaultSite::Repair);
        for seq in acked + 1..acked + 40 {
            append_until_accepted(&store, seq).await;
        }
        assert!(store.writer_failure().is_none());
        let stats = store.stats();
        assert!(stats.writer_failures >= 2, "the write and a repair failed");
        assert_eq!(stats.log_repairs, 1);
        assert!(!stats.refusing_writes);
        assert_queue_holds(&store, acked + 40, "after the repair").await;
        // Each failed repair took a spare; none of them may stay (a leaked spare holds a whole
        // segment's blocks until the next start).
        let spares = std::fs::read_dir(dir.join("log"))
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("next.spare")
            })
            .count();
        assert!(spares <= 1, "failed repairs left {spares} spares");
        store.close().await.unwrap();
        let store = ShardStore::open(small_config(&dir, FlushMode::Sync), None)
            .await
            .unwrap();
        assert_queue_holds(&store, acked + 40, "after a reopen").await;
        append_until_accepted(&store, acked + 40).await;
        store.close().await.unwrap();
    });
}

#[test]
fn eio_on_a_log_write_is_repaired_in_place() {
    the_writer_fails_and_repairs_itself(FaultSite::Write);
}

#[test]
fn eio_on_an_fdatasync_is_repaired_in_place() {
    the_writer_fails_and_repairs_itself(FaultSite::Sync);
}

/// One run of `total` batches through 64 KiB segments (a roll every ~45 batches) with EIO on
/// the write or roll numbered `fail_at`: every batch is stored once, in order, before and after reopen.
fn one_fault_in_a_rolling_run(dir: &Path, flush: FlushMode, fail_at: u32, total: u32) {
    let dir = dir.to_path_buf();
    run(move || async move {
        let store = ShardStore::open(small_config(&dir, flush), None)
            .await
            .unwrap();
        store.inject_log_fault(FaultSite::Write, Fault::eio_after(fail_at));
        let mut seq = 0;
        while seq < total {
            match store.append(1, 0, batch(0, seq, 3)).await {
                // Under async flush the ack is immediate, so the repair must keep every batch;
                // under sync a failed ack's batch is still in the log: either way it counts.
                Ok(outcome) => {
                    let _ = store.acknowledgeable(outcome.end).await;
                    seq += 1;
                }
                Err(StorageError::WritesRefused { .. }) => {
                    glommio::timer::sleep(Duration::from_millis(10)).await
                }
                Err(err) => panic!("fail_at {fail_at}, batch {seq}: {err}"),
            }
        }
        let context = format!("{flush:?}, EIO at write {fail_at}");
        let stats = store.stats();
        assert_eq!(
            (stats.writer_failures, stats.log_repairs),
            (1, 1),
            "{context}"
        );
        assert!(stats.segments > 2, "{context}: the run rolls");
        assert_queue_holds(&store, total, &context).await;
        store.close().await.unwrap();
        let store = ShardStore::open(small_config(&dir, flush), None)
            .await
            .unwrap();
        assert_queue_holds(&store, total, &format!("{context}, reopened")).await;
        store.close().await.unwrap();
    });
}

#[test]
fn eio_at_any_write_of_a_rolling_run_loses_nothing() {
    let async_flush = FlushMode::Async {
        interval: Duration::from_millis(5),
    };
    for fail_at in 0..140 {
        let dir = tempfile::tempdir().unwrap();
        let flush = if fail_at % 2 == 0 {
            FlushMode::Sync
        } else {
            async_flush
        };
        one_fault_in_a_rolling_run(dir.path(), flush, fail_at, 150);
    }
}

/// Closed while failed (the repair cannot succeed): close reports the failure, and a reopen
/// serves every acknowledged batch from the torn segment.
#[test]
fn closing_a_failed_store_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    run(move || async move {
        let store = ShardStore::open(small_config(&dir, FlushMode::Sync), None)
            .await
            .unwrap();
        for seq in 0..30 {
            append_until_accepted(&store, seq).await;
        }
        store.inject_log_fault(FaultSite::Repair, every_repair_fails());
        store.inject_log_fault(FaultSite::Write, Fault::eio_after(0));
        let outcome = store.append(1, 0, batch(0, 30, 3)).await.unwrap();
        assert!(store.acknowledgeable(outcome.end).await.is_err());
        assert!(store.close().await.is_err(), "close hides the failure");
        let store = ShardStore::open(small_config(&dir, FlushMode::Sync), None)
            .await
            .unwrap();
        let keys = read_keys(&store, 0).await;
        assert_eq!(keys, expected_keys(0, 30, 3), "acknowledged batches lost");
        append_until_accepted(&store, 30).await;
        store.close().await.unwrap();
    });
}

/// Found by the storage simulation (seed 3): when the final sync of a close failed, the writer
/// took the failure like any other and waited for a repair or a second Close, and the store's
/// close waited for the writer forever. The close now ends with the failure.
#[test]
fn a_close_whose_final_sync_fails_returns_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    run(move || async move {
        let store = ShardStore::open(small_config(&dir, FlushMode::Sync), None)
            .await
            .unwrap();
        for seq in 0..5 {
            append_until_accepted(&store, seq).await;
        }
        store.inject_log_fault(FaultSite::Sync, Fault::eio_after(0));
        let closing = async { Some(store.close().await) };
        let hung = async {
            glommio::timer::sleep(Duration::from_secs(30)).await;
            None
        };
        let closed = futures_lite::future::or(closing, hung).await;
        let closed = closed.expect("close returned within 30 s");
        assert!(closed.is_err(), "close hides the failed sync");
        let store = ShardStore::open(small_config(&dir, FlushMode::Sync), None)
            .await
            .unwrap();
        assert_queue_holds(&store, 5, "after a failed close").await;
        store.close().await.unwrap();
    });
}
