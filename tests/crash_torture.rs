//! Crash torture: producers and a consumer group run against a real broker that is `kill -9`ed
//! at seeded random moments and restarted on the same data, over and over. An independent
//! record of what the broker acknowledged is checked after every restart:
//!
//! - the broker always starts again;
//! - `--flush sync`: every acknowledged record is there exactly once, byte-exact, at the offset
//!   it was acknowledged at, in order per queue; nothing a consumer read is ever taken back
//!   (reads see only synced records); a group's acknowledged commit never moves backward and
//!   never points past the queue's end;
//! - `--flush async`: what survives is a prefix of what was acknowledged, byte-exact; what is
//!   lost is only what the documented window allows (batches not yet written when the process
//!   died: at most the write-behind budget per shard) and is counted, as are rolled-back commits;
//! - records once found after a restart are never lost by a later crash (they were written).
//!
//! How it checks "exactly once": record `seq` of queue `q` has a payload derived from `(q, seq)`
//! and is produced as offset `seq`; after a crash the producer resumes at the queue's new end,
//! so the stored queue must equal `payload(q, 0..end)` with `end` at least the acknowledged
//! count. A duplicate, gap, reorder or torn record breaks that equality.
//!
//! Knobs (environment): `SHARDMQ_TORTURE_KILLS` (rounds per mode; default 6),
//! `SHARDMQ_TORTURE_SEED` (default: from the clock, printed; a failure replays the same kill
//! delays and batch sizes from it, though not the same interleaving). A long run:
//! `SHARDMQ_TORTURE_KILLS=1000 cargo test --release --test crash_torture -- --nocapture`.

mod harness;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{batch_of, data_dir, run, Broker};
use shardmq_client::Client;
// The seeded choices of a run (kill delays, batch sizes).
use shardmq_protocol::mutate::SplitMix as Rng;

const QUEUES: u32 = 4;
const SHARDS: &str = "2";
const GROUP: &str = "torture";
const HOT_TAIL: &str = "16MiB";
/// `--write-behind`: what a kill -9 under async flush may lose per shard.
const WRITE_BEHIND: &str = "8MiB";
const WRITE_BEHIND_BYTES: u64 = 8 << 20;

fn payload(queue: u32, seq: u64) -> Vec<u8> {
    let mut bytes = format!("q{queue} s{seq} ").into_bytes();
    let len = 64 + (seq.wrapping_mul(2_654_435_761) % 900) as usize;
    bytes.resize(len, (seq % 251) as u8 ^ queue as u8);
    bytes
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flush {
    Sync,
    Async,
}

/// The independent record of what the broker acknowledged, per queue.
#[derive(Default, Clone, Debug)]
struct Ledger {
    /// Records acknowledged (offsets `0..acked`).
    acked: Vec<u64>,
    /// Records found stored after some restart: never lost again.
    verified: Vec<u64>,
    /// One past the highest offset the consumer read.
    consumed: Vec<u64>,
    /// The group's highest acknowledged commit.
    committed: Vec<u64>,
}

#[derive(Default, Debug)]
struct Totals {
    kills: u64,
    produced: u64,
    consumed: u64,
    commits: u64,
    lost_records: u64,
    lost_bytes_max: u64,
    commits_rolled_back: u64,
}

/// What one loaded round ended with, per queue.
struct RoundResult {
    acked: Vec<u64>,
    consumed: Vec<u64>,
    committed: Vec<u64>,
    commits: u64,
}

fn seed() -> u64 {
    std::env::var("SHARDMQ_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

fn kills() -> u64 {
    std::env::var("SHARDMQ_TORTURE_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

fn start(dir: &std::path::Path, flush: Flush) -> Broker {
    let flush = match flush {
        Flush::Sync => "sync",
        Flush::Async => "async",
    };
    let args = [
        "--shards",
        SHARDS,
        "--flush",
        flush,
        "--hot-tail",
        HOT_TAIL,
        "--write-behind",
        WRITE_BEHIND,
        "--offsets-flush-interval-ms",
        "100",
        "--segment-size",
        "1MiB",
    ];
    // The broker always starts again: a failure here is a finding, with its log.
    Broker::try_start(dir, &args).unwrap_or_else(|e| panic!("the broker did not restart: {e}"))
}

/// After a restart: each queue holds `payload(q, 0..end)` exactly; the ledger is checked
/// against it and moved to what the broker now holds.
fn check_after_restart(addr: &str, flush: Flush, ledger: &mut Ledger, totals: &mut Totals) {
    let addr = addr.to_string();
    let from = ledger.verified.clone();
    let (ends, commits) = run(move || async move {
        let client = Client::connect(&addr, "checker").await.unwrap();
        let mut ends = Vec::new();
        let mut commits = Vec::new();
        for queue in 0..QUEUES {
            ends.push(read_and_check(&client, queue, from[queue as usize]).await);
            let committed = client.query_offset(GROUP, "t", queue, None).await.unwrap();
            commits.push(committed.unwrap_or(0));
        }
        (ends, commits)
    });
    let mut lost_bytes = 0u64;
    for q in 0..QUEUES as usize {
        let (end, acked) = (ends[q], ledger.acked[q]);
        assert!(
            end >= ledger.verified[q],
            "queue {q}: {end} records after a restart, {} were found before",
            ledger.verified[q]
        );
        assert!(
            commits[q] <= end,
            "queue {q}: commit {} past the end {end}",
            commits[q]
        );
        match flush {
            Flush::Sync => {
                assert!(end >= acked, "queue {q}: {acked} acked, {end} stored");
                assert!(
                    end >= ledger.consumed[q],
                    "queue {q}: a consumer read up to {}, only {end} survived",
                    ledger.consumed[q]
                );
                assert!(
                    commits[q] >= ledger.committed[q],
                    "queue {q}: committed offset went back from {} to {}",
                    ledger.committed[q],
                    commits[q]
                );
            }
            Flush::Async => {
                let lost = acked.saturating_sub(end);
                totals.lost_records += lost;
                lost_bytes += (end..acked)
                    .map(|s| payload(q as u32, s).len() as u64)
                    .sum::<u64>();
                if commits[q] < ledger.committed[q] {
                    totals.commits_rolled_back += 1;
                }
            }
        }
        ledger.acked[q] = end;
        ledger.verified[q] = end;
        ledger.consumed[q] = ledger.consumed[q].min(end);
        ledger.committed[q] = commits[q];
    }
    totals.lost_bytes_max = totals.lost_bytes_max.max(lost_bytes);
    let window = WRITE_BEHIND_BYTES * SHARDS.parse::<u64>().unwrap();
    assert!(
        lost_bytes <= window,
        "{lost_bytes} payload bytes lost, more than the unwritten window of {window}"
    );
}

/// Reads queue `queue` from `from` to its end, checking every record; returns the end.
async fn read_and_check(client: &Client, queue: u32, from: u64) -> u64 {
    let mut at = from;
    loop {
        let pulled = client
            .pull("t", queue, at, 10_000, 4 << 20, 0)
            .await
            .unwrap();
        if pulled.is_empty() {
            return at;
        }
        for record in pulled.records().unwrap() {
            assert_eq!(record.offset, at, "queue {queue}: offsets are dense");
            assert!(
                record.payload() == payload(queue, at).as_slice(),
                "queue {queue}: record {at} is not the one produced there"
            );
            at += 1;
        }
    }
}

/// One producer per queue: batches of 1..=`max_batch` records from `next`, until the broker
/// goes away. Returns how many records of the queue are acknowledged.
async fn produce(
    client: Client,
    queue: u32,
    mut next: u64,
    max_batch: u64,
    killed: Arc<AtomicBool>,
) -> u64 {
    let mut rng = Rng(next ^ (u64::from(queue) << 40));
    loop {
        let count = 1 + rng.below(max_batch as usize) as u64;
        let batch = batch_of(next..next + count, |s| payload(queue, s));
        match client.produce_batch("t", queue, &batch).await {
            Ok(ack) => {
                assert_eq!(
                    ack.base_offset, next,
                    "queue {queue}: acked at its own offset"
                );
                next += count;
            }
            Err(e) => {
                assert!(
                    killed.load(Ordering::SeqCst),
                    "queue {queue}: produce failed before the kill: {e}"
                );
                return next;
            }
        }
    }
}

/// One consumer of the group per queue: pulls from `next`, checks each record, commits after
/// each pull. Returns (one past the last record read, highest acknowledged commit, commits).
async fn consume(
    client: Client,
    queue: u32,
    mut next: u64,
    killed: Arc<AtomicBool>,
) -> (u64, u64, u64) {
    let (mut committed, mut commits) = (next, 0u64);
    let failed = |e: shardmq_client::ClientError| {
        assert!(
            killed.load(Ordering::SeqCst),
            "queue {queue}: consumer failed before the kill: {e}"
        );
    };
    loop {
        let pulled = match client.pull("t", queue, next, 500, 1 << 20, 50).await {
            Ok(pulled) => pulled,
            Err(e) => {
                failed(e);
                return (next, committed, commits);
            }
        };
        for record in pulled.records().unwrap() {
            assert_eq!(
                record.offset, next,
                "queue {queue}: the consumer reads densely"
            );
            assert!(
                record.payload() == payload(queue, next).as_slice(),
                "queue {queue}: record {next} differs"
            );
            next += 1;
        }
        match client.commit_offset(GROUP, "t", queue, next).await {
            Ok(_) => {
                committed = next;
                commits += 1;
            }
            Err(e) => {
                failed(e);
                return (next, committed, commits);
            }
        }
    }
}

/// Loads the broker until it is killed `delay` after the clients connect.
fn loaded_round(broker: &Broker, ledger: &Ledger, delay: Duration, max_batch: u64) -> RoundResult {
    let killed = Arc::new(AtomicBool::new(false));
    let (pid, killer_flag) = (broker.pid(), killed.clone());
    let (addr, ledger) = (broker.addr.clone(), ledger.clone());
    let (result, killer) = run(move || async move {
        let client = Client::connect(&addr, "torture").await.unwrap();
        // The delay counts from here: a kill before the handshake ends tests nothing.
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            killer_flag.store(true, Ordering::SeqCst);
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        let out = Rc::new(RefCell::new(RoundResult {
            acked: ledger.acked.clone(),
            consumed: ledger.consumed.clone(),
            committed: ledger.committed.clone(),
            commits: 0,
        }));
        let mut tasks = Vec::new();
        for queue in 0..QUEUES {
            let q = queue as usize;
            let (c, k, o) = (client.clone(), killed.clone(), out.clone());
            let from = ledger.acked[q];
            tasks.push(glommio::spawn_local(async move {
                o.borrow_mut().acked[q] = produce(c, queue, from, max_batch, k).await;
            }));
            let (c, k, o) = (client.clone(), killed.clone(), out.clone());
            let from = ledger.committed[q];
            tasks.push(glommio::spawn_local(async move {
                let (read, committed, commits) = consume(c, queue, from, k).await;
                let mut o = o.borrow_mut();
                o.consumed[q] = o.consumed[q].max(read);
                o.committed[q] = committed;
                o.commits += commits;
            }));
        }
        for task in tasks {
            task.await;
        }
        (Rc::try_unwrap(out).ok().unwrap().into_inner(), killer)
    });
    killer.join().unwrap();
    result
}

fn torture(flush: Flush) {
    let seed = seed();
    let rounds = kills();
    eprintln!("crash torture {flush:?}: seed {seed}, {rounds} kills (SHARDMQ_TORTURE_SEED={seed} replays)");
    let mut rng = Rng(seed);
    let dir = data_dir();
    let mut ledger = Ledger {
        acked: vec![0; QUEUES as usize],
        verified: vec![0; QUEUES as usize],
        consumed: vec![0; QUEUES as usize],
        committed: vec![0; QUEUES as usize],
    };
    let mut totals = Totals::default();
    let broker = start(dir.path(), flush);
    harness::create_topic(&broker.addr, "t", QUEUES);
    let mut broker = Some(broker);
    let started = Instant::now();
    for round in 0..rounds {
        let live = broker.take().expect("a broker runs between rounds");
        let delay = Duration::from_millis(20 + rng.below(400) as u64);
        let max_batch = [1, 4, 32, 200][rng.below(4)];
        let result = loaded_round(&live, &ledger, delay, max_batch);
        live.kill();
        totals.kills += 1;
        for q in 0..QUEUES as usize {
            totals.produced += result.acked[q] - ledger.acked[q];
            totals.consumed += result.consumed[q].saturating_sub(ledger.consumed[q]);
        }
        totals.commits += result.commits;
        ledger.acked = result.acked;
        ledger.consumed = result.consumed;
        ledger.committed = result.committed;
        let restarted = start(dir.path(), flush);
        check_after_restart(&restarted.addr, flush, &mut ledger, &mut totals);
        broker = Some(restarted);
        if (round + 1) % 50 == 0 {
            eprintln!("  {} kills, {:?}: {totals:?}", round + 1, started.elapsed());
        }
    }
    // A last full read: everything ever found is still byte-exact from offset 0.
    let last = broker.take().unwrap();
    let mut full = Ledger {
        verified: vec![0; QUEUES as usize],
        ..ledger.clone()
    };
    check_after_restart(&last.addr, flush, &mut full, &mut totals);
    assert_eq!(
        full.verified, ledger.verified,
        "a full re-read finds every queue's end"
    );
    assert_eq!(last.stop(), Some(0));
    eprintln!(
        "crash torture {flush:?} done in {:?}, seed {seed}: {totals:?}",
        started.elapsed()
    );
    assert!(
        totals.produced > 0 && totals.consumed > 0 && totals.commits > 0,
        "{totals:?}"
    );
}

#[test]
fn kill_9_under_sync_flush_loses_no_acknowledged_record_or_commit() {
    torture(Flush::Sync);
}

#[test]
fn kill_9_under_async_flush_loses_only_the_unwritten_window() {
    torture(Flush::Async);
}
