//! Deterministic storage simulation (issue 11 item 2): the shard's log, indexes, checkpoint and
//! consumer offsets run on a seeded simulated disk (`shardmq_shards::sim_disk`) that loses or
//! tears what was never synced at each power failure, fails writes and syncs with EIO or
//! ENOSPC, and completes concurrent operations in a seeded order. Each seed runs a shard through
//! several lives (open and recover, check against the oracle, produce and checkpoint until the
//! power fails); after every crash the recovered store must match the oracle (`oracle`).
//!
//! `SHARDMQ_SIM_SEEDS=N` sets how many seeds run (default below), from `SHARDMQ_SIM_FIRST_SEED`
//! (default 0); `SHARDMQ_SIM_SEED=S` replays one seed exactly — the number a failure prints;
//! `SHARDMQ_SIM_TRACE=1` with it prints every disk operation (kind, inode, yields drawn), to
//! compare two runs op by op. A long run: `perf-reports/2026-12-03-storage-simulation/`.

mod oracle;
mod workload;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardmq_shards::sim_disk::{self, FaultRates, Mounted, SimCounts};

use oracle::Oracle;

const LIVES: u32 = 4;
const DEFAULT_SEEDS: u64 = 2000;
/// A life that takes this long has hung: the store never answered (a finding, not slowness).
const LIFE_DEADLINE: Duration = Duration::from_secs(60);

/// What a seed did: equal for two runs of one seed (replay is exact).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    counts: SimCounts,
    attempted: u64,
    acked: u64,
    refused: u64,
    recovered_records: u64,
}

fn faults_for(seed: u64) -> FaultRates {
    if seed.is_multiple_of(4) {
        FaultRates {
            write_per_mille: 15,
            sync_per_mille: 15,
        }
    } else {
        FaultRates::default()
    }
}

fn unique_root(seed: u64) -> PathBuf {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::SeqCst);
    PathBuf::from(format!("/shardmq-sim/{}/{seed}-{run}", std::process::id()))
}

/// Runs `f` on a fresh glommio executor (its own thread) and returns its output.
fn on_executor<T, F, Fut>(f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(f)
        .map_err(|e| format!("executor: {e}"))?
        .join()
        .map_err(|e| format!("executor: {e}"))
}

/// One life, bounded by [`LIFE_DEADLINE`].
async fn run_life(
    disk: Arc<Mounted>,
    dir: &std::path::Path,
    oracle: Oracle,
    faults: FaultRates,
    last: bool,
) -> Result<Oracle, String> {
    let oracle = Rc::new(RefCell::new(oracle));
    let life = workload::life(disk, dir, oracle.clone(), faults, last);
    let deadline = async {
        glommio::timer::sleep(LIFE_DEADLINE).await;
        Err(format!("a life hung for {LIFE_DEADLINE:?}"))
    };
    let outcome = futures_lite::future::or(life, deadline).await;
    let oracle = oracle.borrow().clone();
    outcome.map(|()| oracle)
}

/// One seed on its own executor.
fn simulate(seed: u64) -> Result<Summary, String> {
    on_executor(move || simulate_in(seed, |_| {}))?
}

/// Every life of one seed, on the current executor (each life closes the store the crash left,
/// so nothing of it runs on), with the disk adjusted first.
async fn simulate_in(seed: u64, adjust: impl FnOnce(&Mounted)) -> Result<Summary, String> {
    let root = unique_root(seed);
    let dir = root.join("shards/0");
    let disk = Arc::new(sim_disk::mount(&root, seed));
    adjust(&disk);
    if std::env::var("SHARDMQ_SIM_TRACE").is_ok() {
        disk.record_trace();
    }
    let faults = faults_for(seed);
    let mut oracle = Oracle::default();
    for life in 0..LIVES {
        disk.restart();
        oracle = run_life(disk.clone(), &dir, oracle, faults, life + 1 == LIVES)
            .await
            .map_err(|e| format!("life {life}: {e}"))?;
    }
    if std::env::var("SHARDMQ_SIM_TRACE").is_ok() {
        for (i, t) in disk.trace().iter().enumerate() {
            eprintln!("T{seed} {i} {t:?}");
        }
    }
    Ok(Summary {
        counts: disk.counts(),
        attempted: oracle.attempted,
        acked: oracle.acked,
        refused: oracle.refused,
        recovered_records: oracle.recovered_records,
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("SHARDMQ_SIM_SEED") {
        // A replay shows the store's own log (RUST_LOG=debug for more).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        return vec![seed];
    }
    let first = env_u64("SHARDMQ_SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("SHARDMQ_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    (first..first + count).collect()
}

impl Summary {
    fn zero() -> Summary {
        Summary {
            counts: SimCounts::default(),
            attempted: 0,
            acked: 0,
            refused: 0,
            recovered_records: 0,
        }
    }

    fn add(&mut self, other: &Summary) {
        self.counts.ops += other.counts.ops;
        self.counts.crashes += other.counts.crashes;
        self.counts.writes_lost += other.counts.writes_lost;
        self.counts.writes_torn += other.counts.writes_torn;
        self.counts.faults += other.counts.faults;
        self.attempted += other.attempted;
        self.acked += other.acked;
        self.refused += other.refused;
        self.recovered_records += other.recovered_records;
    }
}

/// Runs the seeds on every core (each seed alone is sequential and deterministic); the first
/// failure, by seed, with the command that replays it.
fn run_seeds(seeds: &[u64]) -> Result<Summary, String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let outcomes: Vec<Result<Summary, (u64, String)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<u64> = seeds.iter().copied().skip(t).step_by(threads).collect();
                // One executor per worker for all its seeds: glommio 0.9 keeps one file
                // descriptor per executor it ever made, so one per life would run out of them.
                scope.spawn(move || {
                    on_executor(move || async move {
                        let mut total = Summary::zero();
                        for seed in mine {
                            total.add(&simulate_in(seed, |_| {}).await.map_err(|e| (seed, e))?);
                        }
                        Ok(total)
                    })
                    .map_err(|e| (u64::MAX, e))?
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker panicked"))
            .collect()
    });
    let mut total = Summary::zero();
    let mut failures: Vec<(u64, String)> = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(summary) => total.add(&summary),
            Err(failure) => failures.push(failure),
        }
    }
    match failures.into_iter().min_by_key(|(seed, _)| *seed) {
        None => Ok(total),
        Some((seed, e)) => Err(format!(
            "seed {seed} failed: {e}\nreplay: SHARDMQ_SIM_SEED={seed} cargo test -p shardmq-shards --test storage_simulation"
        )),
    }
}

#[test]
fn recovery_matches_what_was_acknowledged_for_every_seed() {
    let seeds = seeds();
    let total = run_seeds(&seeds).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{} seeds: {total:?}", seeds.len());
    // The simulation must have exercised what it claims to (a run that crashes nothing, loses
    // nothing or acknowledges nothing proves nothing).
    assert!(total.acked > 0 && total.counts.crashes > 0);
    if seeds.len() > 20 {
        assert!(total.counts.writes_lost > 0 && total.counts.writes_torn > 0);
        assert!(total.counts.faults > 0 && total.refused > 0);
    }
}

/// A seed run alone and the same seed run after another on one executor (as `run_seeds` does)
/// do exactly the same.
#[test]
fn a_seed_replays_exactly() {
    for seed in [1, 4, 7] {
        let alone = simulate(seed).unwrap();
        let after_another = on_executor(move || async move {
            simulate_in(seed + 1, |_| {}).await.unwrap();
            simulate_in(seed, |_| {}).await
        })
        .unwrap()
        .unwrap();
        assert_eq!(alone, after_another, "seed {seed} replayed differently");
    }
}

/// The checker has teeth: on a disk whose fdatasync makes nothing durable, acknowledged batches
/// vanish at crashes, and the oracle must say so.
#[test]
fn acknowledged_writes_lost_by_a_lying_disk_are_caught() {
    let failures: Vec<String> = (0..20)
        .filter_map(|seed| {
            on_executor(move || simulate_in(seed, |disk| disk.lie_about_syncs()))
                .unwrap()
                .err()
        })
        .collect();
    assert!(
        failures.iter().any(|e| e.contains("acknowledged batch")),
        "no seed of 20 caught a lost acknowledged batch: {failures:?}"
    );
}
