//! A full disk, end to end: a broker on a small tmpfs is filled under load by producers on
//! every queue until it refuses writes (natively "writes refused", over remoting
//! SERVICE_NOT_AVAILABLE), keeps serving reads, exits cleanly on SIGTERM, starts again on the
//! full disk serving every acknowledged message, and takes writes again by itself once space is
//! freed. Every acknowledged batch is read back exactly once, in order. Mounting needs root (CI
//! runs as root).

mod harness;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use harness::{batch_of, create_topic, run, Broker};
use shardmq_client::Client;
use shardmq_protocol::remoting::codes::response;
use shardmq_protocol::ErrorCode;

const QUEUES: u32 = 4;
const RECORDS: u64 = 8;

struct SmallFs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = harness::data_dir();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): this test needs root"
        );
        SmallFs { _dir: dir, path }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn payload(queue: u32, seq: u64) -> Vec<u8> {
    let mut bytes = format!("q{queue} s{seq} ").into_bytes();
    bytes.resize(900, (seq % 251) as u8);
    bytes
}

fn start(data: &Path) -> Broker {
    Broker::start(
        data,
        &[
            "--shards",
            "2",
            "--flush",
            "sync",
            "--retention",
            "off",
            // No water mark acts: only ENOSPC itself stops writes here.
            "--disk-warn-percent",
            "101",
            "--disk-force-clean-percent",
            "101",
            "--disk-refuse-percent",
            "101",
            "--retention-interval-ms",
            "200",
        ],
    )
}

/// Produces batches to every queue until each is refused; returns the acknowledged first seqs
/// per queue, continuing from `next`.
fn produce_until_refused(addr: &str, next: [u64; QUEUES as usize]) -> Vec<Vec<u64>> {
    produce_until_refused_or(addr, next, usize::MAX)
}

/// [`produce_until_refused`], each queue stopping after `limit` acknowledged batches too (so
/// one queue cannot take all the space that came back while another is refused for a moment).
fn produce_until_refused_or(
    addr: &str,
    next: [u64; QUEUES as usize],
    limit: usize,
) -> Vec<Vec<u64>> {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "producer").await.unwrap();
        let acked = Rc::new(RefCell::new(vec![Vec::new(); QUEUES as usize]));
        let mut tasks = Vec::new();
        for queue in 0..QUEUES {
            let (client, acked) = (client.clone(), acked.clone());
            let mut seq = next[queue as usize];
            tasks.push(glommio::spawn_local(async move {
                while acked.borrow()[queue as usize].len() < limit {
                    let batch = batch_of(seq..seq + RECORDS, |s| payload(queue, s));
                    match client.produce_batch("t", queue, &batch).await {
                        Ok(ack) => {
                            assert_eq!(ack.base_offset, seq);
                            acked.borrow_mut()[queue as usize].push(seq);
                            seq += RECORDS;
                        }
                        Err(err) => {
                            assert_eq!(err.code(), Some(ErrorCode::WritesRefused), "{err}");
                            assert!(err.to_string().contains("resume"), "{err}");
                            return;
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await;
        }
        let acked = acked.borrow().clone();
        acked
    })
}

/// Every record of every queue, checked whole and in order: `stored[queue] = record count`.
fn read_all(addr: &str) -> Vec<u64> {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "reader").await.unwrap();
        let mut counts = Vec::new();
        for queue in 0..QUEUES {
            let end = client.queue_offsets("t", queue).await.unwrap().max_offset;
            let mut next = 0u64;
            while next < end {
                let pulled = client
                    .pull("t", queue, next, 10_000, 4 << 20, 0)
                    .await
                    .unwrap();
                for record in pulled.records().unwrap() {
                    assert_eq!(record.offset, next);
                    assert_eq!(record.payload(), &payload(queue, next)[..]);
                    next += 1;
                }
            }
            counts.push(next);
        }
        counts
    })
}

/// SIGTERM, and the exit code within 30 s.
fn terminate(broker: Broker) -> Option<i32> {
    let pid = broker.pid();
    let waiter = std::thread::spawn(move || broker.stop());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the broker did not exit within 30 s of SIGTERM on a full disk");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

fn assert_acked_stored(acked: &[Vec<u64>], stored: &[u64]) {
    for (queue, seqs) in acked.iter().enumerate() {
        let end = seqs.last().map_or(0, |s| s + RECORDS);
        assert_eq!(
            stored[queue], end,
            "queue {queue}: stored {} records, acknowledged up to {end}",
            stored[queue]
        );
    }
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_survives_restarts_and_resumes_when_space_is_freed() {
    let fs = SmallFs::mount("40m");
    let data = fs.path.join("data");
    let ballast = fs.path.join("ballast");
    std::fs::write(&ballast, vec![1u8; 6 << 20]).unwrap();
    let broker = start(&data);
    create_topic(&broker.addr, "t", QUEUES);

    let acked = produce_until_refused(&broker.addr, [0; QUEUES as usize]);
    assert!(
        acked.iter().all(|q| q.len() > 100),
        "batches acknowledged per queue: {:?}",
        acked.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_acked_stored(&acked, &read_all(&broker.addr));
    // Larger than any batch above, so it cannot fit what is left of a segment.
    let refused = harness::remoting::send_v2(&broker.remoting, "t", 0, &[7u8; 16 << 10]);
    assert_eq!(
        refused.code,
        response::SERVICE_NOT_AVAILABLE,
        "a remoting send on the full disk"
    );
    let status = harness::shardmq(&[
        "admin",
        "--broker",
        &broker.addr,
        "--json",
        "broker",
        "status",
    ]);
    assert_eq!(
        status.status.code(),
        Some(1),
        "broker status fails while writes are refused"
    );
    let shown: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        shown["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["refusingWrites"] == true),
        "{shown}"
    );
    assert_eq!(
        terminate(broker),
        Some(0),
        "SIGTERM on a full disk exits cleanly"
    );

    // Started again on the full disk: everything acknowledged is there, writes stay refused.
    let broker = start(&data);
    assert_acked_stored(&acked, &read_all(&broker.addr));
    let more = produce_until_refused(&broker.addr, [u64::MAX - RECORDS; QUEUES as usize]);
    assert!(
        more.iter().all(Vec::is_empty),
        "writes went through on the full disk"
    );

    // Space comes back: writes resume without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let next: Vec<u64> = acked
        .iter()
        .map(|q| q.last().map_or(0, |s| s + RECORDS))
        .collect();
    let mut next: [u64; QUEUES as usize] = next.try_into().unwrap();
    let mut resumed = vec![Vec::new(); QUEUES as usize];
    let deadline = Instant::now() + Duration::from_secs(20);
    // Each shard reserves its next segment at its next retention pass (or the next refused
    // append a second later): a queue may be refused for a moment after the space came back.
    while resumed.iter().any(|q| q.len() < 20) && Instant::now() < deadline {
        let round = produce_until_refused_or(&broker.addr, next, 20);
        for (queue, seqs) in round.into_iter().enumerate() {
            if let Some(last) = seqs.last() {
                next[queue] = last + RECORDS;
            }
            resumed[queue].extend(seqs);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        resumed.iter().all(|q| q.len() >= 20),
        "after freeing space: {:?}",
        resumed.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let all: Vec<Vec<u64>> = acked
        .iter()
        .zip(&resumed)
        .map(|(a, b)| a.iter().chain(b).copied().collect())
        .collect();
    assert_acked_stored(&all, &read_all(&broker.addr));
    assert_eq!(terminate(broker), Some(0));
    let broker = start(&data);
    assert_acked_stored(&all, &read_all(&broker.addr));
    assert_eq!(terminate(broker), Some(0));
}
