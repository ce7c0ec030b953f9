//! State the bench executors share while a run is live: the start gate, the stop flags, and the
//! counters behind the progress line. Atomics only; the measurements themselves stay in each
//! executor's `Recorder` until the end.
//!
//! Start gate: every executor first opens its connections (and, for consumers, positions at the
//! queues' ends), then calls [`Live::start_gate`]. When the last one arrives the run's start
//! instant is fixed, a few ms ahead, and every executor begins at that same instant. An executor
//! that fails before the gate calls [`Live::abort`], so the others return instead of waiting.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// How far ahead of the last executor's arrival the run starts.
const START_LEAD: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub struct Live {
    participants: u32,
    ready: AtomicU32,
    aborted: AtomicBool,
    start: OnceLock<Instant>,
    /// Producer executors still sending.
    pub producers_running: AtomicU32,
    /// Set when the run must end early (too many errors somewhere).
    pub stop: AtomicBool,
    /// Set when every executor has returned (ends the progress line).
    pub done: AtomicBool,
    /// Messages acknowledged so far, warm-up included.
    pub acked: AtomicU64,
    pub received: AtomicU64,
    /// End-to-end: receipts the consumers should see for what was acknowledged so far (a
    /// record counts once per member that should get it, zero times when filtered out).
    pub expected_receipts: AtomicU64,
    pub errors: AtomicU64,
    /// Per producer executor: its publish p99 so far, µs.
    pub p99_us: Vec<AtomicU64>,
}

impl Live {
    pub fn new(producer_threads: u32, consumer_threads: u32) -> Self {
        Live {
            participants: producer_threads + consumer_threads,
            ready: AtomicU32::new(0),
            aborted: AtomicBool::new(false),
            start: OnceLock::new(),
            producers_running: AtomicU32::new(producer_threads),
            stop: AtomicBool::new(false),
            done: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            received: AtomicU64::new(0),
            expected_receipts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            p99_us: (0..producer_threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Tells the other executors this one failed before starting.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The run's start, once it is fixed.
    pub fn started_at(&self) -> Option<Instant> {
        self.start.get().copied()
    }

    /// Waits until every executor arrived, then until the common start instant.
    pub async fn start_gate(&self) -> Result<Instant, BenchError> {
        self.ready.fetch_add(1, Ordering::SeqCst);
        loop {
            if self.aborted.load(Ordering::SeqCst) {
                return Err(BenchError::OtherExecutorFailed);
            }
            if self.ready.load(Ordering::SeqCst) == self.participants {
                let start = *self.start.get_or_init(|| Instant::now() + START_LEAD);
                let now = Instant::now();
                if start > now {
                    glommio::timer::sleep(start - now).await;
                }
                return Ok(start);
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The worst publish p99 any producer executor reports so far.
    pub fn worst_p99_us(&self) -> u64 {
        self.p99_us
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// Prints a progress line to stderr every second until `live.done`: elapsed (of the planned
/// duration, or acked of the planned count), the rate over the last second, the worst p99 so far,
/// received and errors. Runs on a plain thread.
pub fn progress_line(live: &Live, planned: Planned) {
    let mut last = 0u64;
    let mut next = Instant::now() + Duration::from_secs(1);
    while !live.done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() < next {
            continue;
        }
        next += Duration::from_secs(1);
        let Some(start) = live.started_at() else {
            continue;
        };
        let acked = match planned {
            Planned::Drain(_) => live.received.load(Ordering::Relaxed),
            _ => live.acked.load(Ordering::Relaxed),
        };
        let elapsed = Instant::now()
            .saturating_duration_since(start)
            .as_secs_f64();
        let of = match planned {
            Planned::Seconds(total) => format!("[{elapsed:>4.0}s/{total:.0}s] acked {acked}"),
            Planned::Messages(total) => format!("[{elapsed:>4.0}s] acked {acked}/{total}"),
            Planned::Drain(total) => format!("[{elapsed:>4.0}s] drained {acked}/{total}"),
        };
        eprintln!(
            "{of}  {} msg/s  p99 so far {} µs  received {}  errors {}",
            acked - last,
            live.worst_p99_us(),
            live.received.load(Ordering::Relaxed),
            live.errors.load(Ordering::Relaxed),
        );
        last = acked;
    }
}

/// What the progress line counts towards.
#[derive(Debug, Clone, Copy)]
pub enum Planned {
    /// Warm-up plus duration, seconds.
    Seconds(f64),
    Messages(u64),
    /// Records to drain (consume runs).
    Drain(u64),
}

/// `/proc/loadavg`'s 1, 5 and 15 minute load averages, when readable.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_average_parses_here() {
        let load = load_average().expect("/proc/loadavg on Linux");
        assert!(load.iter().all(|l| *l >= 0.0));
    }

    #[test]
    fn gate_releases_all_at_one_instant_and_abort_releases_waiters() {
        let live = std::sync::Arc::new(Live::new(2, 0));
        let cpu = crate::runtime::choose_cpu(None, &crate::runtime::allowed_cpus()).unwrap();
        let other = {
            let live = live.clone();
            std::thread::spawn(move || {
                crate::runtime::run_pinned("gate-a", cpu, 0, move || async move {
                    live.start_gate().await.unwrap()
                })
            })
        };
        let here = {
            let live = live.clone();
            crate::runtime::run_pinned("gate-b", cpu, 0, move || async move {
                live.start_gate().await.unwrap()
            })
        };
        assert_eq!(other.join().unwrap().unwrap(), here.unwrap());

        let lonely = std::sync::Arc::new(Live::new(2, 0));
        lonely.abort();
        let waiter = lonely.clone();
        let result = crate::runtime::run_pinned("gate-c", cpu, 0, move || async move {
            waiter.start_gate().await
        })
        .unwrap();
        assert!(result.is_err(), "an aborted run does not wait forever");
    }
}
