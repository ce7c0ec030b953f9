//! A full disk, for real: the store on a small tmpfs is filled until it refuses appends, keeps
//! serving reads, closes, reopens on the full disk, and takes appends again once space is freed,
//! without losing or duplicating an acknowledged batch. Mounting needs root (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::config::FlushMode;
use crate::error::StorageError;
use crate::store::ShardStore;
use crate::store_tests::{assert_queue_holds, batch, read_keys, run, small_config};

/// A tmpfs of `size` mounted on a fresh directory, unmounted at drop.
pub(crate) struct SmallFs {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl SmallFs {
    pub(crate) fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs on {} failed ({status}): this test needs root",
            path.display()
        );
        SmallFs { _dir: dir, path }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn config(dir: &Path) -> crate::config::StoreConfig {
    let mut config = small_config(dir, FlushMode::Sync);
    // No water mark acts (above 100: never), so nothing is deleted and only ENOSPC itself
    // stops writes: this test is about that.
    config.retention.marks.warn_percent = 101.0;
    config.retention.marks.force_clean_percent = 101.0;
    config.retention.marks.refuse_percent = 101.0;
    config
}

/// Appends batches of queue 0 from `seq` until the store refuses one; returns the next seq.
async fn fill_until_refused(store: &ShardStore, mut seq: u32) -> u32 {
    loop {
        match store.append(1, 0, batch(0, seq, 3)).await {
            Ok(outcome) => {
                store.wait_synced(outcome.end).await.unwrap();
                seq += 1;
            }
            Err(StorageError::WritesRefused { reason, .. }) => {
                assert!(reason.contains("next segment"), "{reason}");
                return seq;
            }
            Err(other) => panic!("append {seq} failed otherwise: {other}"),
        }
    }
}

/// Queue 0 holds exactly the batches `0..batches`, in order.
async fn assert_all(store: &ShardStore, batches: u32) {
    assert_queue_holds(store, 0, batches, "acknowledged").await;
}

#[test]
fn a_full_disk_refuses_appends_keeps_reads_and_resumes_once_space_is_freed() {
    let fs = SmallFs::mount("1536k");
    let dir = fs.path.join("shard");
    let ballast = fs.path.join("ballast");
    std::fs::write(&ballast, vec![7u8; 256 * 1024]).unwrap();
    run(move || async move {
        let store = ShardStore::open(config(&dir), None).await.unwrap();
        let acked = fill_until_refused(&store, 0).await;
        assert!(acked > 100, "only {acked} batches fit");
        assert_all(&store, acked).await;
        store.close().await.unwrap();

        // Reopened on the full disk: everything acknowledged is served, writes stay refused.
        let store = ShardStore::open(config(&dir), None).await.unwrap();
        assert_all(&store, acked).await;
        assert!(matches!(
            store.append(1, 0, batch(0, acked, 3)).await,
            Err(StorageError::WritesRefused { .. })
        ));

        // Space comes back: the next retention pass reserves the segment and appends resume.
        std::fs::remove_file(&ballast).unwrap();
        store.retention_pass().await.unwrap();
        let mut seq = acked;
        let mut resumed = false;
        for _ in 0..100 {
            match store.append(1, 0, batch(0, seq, 3)).await {
                Ok(outcome) => {
                    store.wait_synced(outcome.end).await.unwrap();
                    seq += 1;
                    resumed = true;
                    break;
                }
                Err(StorageError::WritesRefused { .. }) => {
                    glommio::timer::sleep(Duration::from_millis(20)).await
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(resumed, "appends did not resume after space was freed");
        let seq = fill_until_refused(&store, seq).await;
        assert!(
            seq > acked + 50,
            "the freed space took {} batches",
            seq - acked
        );
        assert_all(&store, seq).await;
        store.close().await.unwrap();
        let store = ShardStore::open(config(&dir), None).await.unwrap();
        assert_all(&store, seq).await;
        store.close().await.unwrap();
    });
}

/// Grows `ballast` until the filesystem holding it is at least `percent` full.
fn fill_to(ballast: &Path, percent: f64) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ballast)
        .unwrap();
    let used = || {
        crate::retention::disk_usage(ballast.parent().unwrap())
            .unwrap()
            .used_percent
    };
    while used() < percent {
        file.write_all(&[1u8; 16 * 1024]).unwrap();
        file.sync_all().unwrap();
    }
}

#[test]
fn water_marks_force_cleaning_then_refuse_writes_and_reads_go_on() {
    let fs = SmallFs::mount("8m");
    let dir = fs.path.join("shard");
    let ballast = fs.path.join("ballast");
    run(move || async move {
        let mut config = small_config(&dir, FlushMode::Sync);
        config.retention.marks = crate::retention::DiskMarks {
            warn_percent: 75.0,
            force_clean_percent: 85.0,
            refuse_percent: 90.0,
        };
        let store = ShardStore::open(config, None).await.unwrap();
        let mut seq = 0;
        while store.inner.segments.borrow().len() < 12 {
            let outcome = store.append(1, 0, batch(0, seq, 3)).await.unwrap();
            store.wait_synced(outcome.end).await.unwrap();
            seq += 1;
        }
        assert_eq!(
            store.retention_pass().await.unwrap(),
            0,
            "nothing to clean yet"
        );

        fill_to(&ballast, 86.0);
        assert!(
            store.retention_pass().await.unwrap() > 0,
            "above 85%: cleaned"
        );
        let (min, max) = store.offsets(1, 0);
        assert!(min > 0, "the oldest segments went");
        assert_eq!(read_keys(&store, 0).await.len() as u64, max - min);

        // Above 90% with nothing left to clean but the open segment: writes are refused.
        // (A deletion frees its space within the pass, which may bring usage back under the
        // marks: fill again until only the open segment is left.)
        while store.inner.segments.borrow().len() > 1 {
            fill_to(&ballast, 90.5);
            store.retention_pass().await.unwrap();
        }
        fill_to(&ballast, 90.5);
        assert_eq!(store.retention_pass().await.unwrap(), 0);
        let (min, max) = store.offsets(1, 0);
        match store.append(1, 0, batch(0, seq, 3)).await {
            Err(StorageError::WritesRefused { reason, .. }) => {
                assert!(reason.contains("writes stop at 90%"), "{reason}")
            }
            other => panic!("an append above 90% answered {other:?}"),
        }
        assert_eq!(
            read_keys(&store, 0).await.len() as u64,
            max - min,
            "reads go on"
        );

        std::fs::remove_file(&ballast).unwrap();
        store.retention_pass().await.unwrap();
        let outcome = store.append(1, 0, batch(0, seq, 3)).await.unwrap();
        store.wait_synced(outcome.end).await.unwrap();
        assert_eq!(outcome.base_offset, max);
        store.close().await.unwrap();
    });
}
