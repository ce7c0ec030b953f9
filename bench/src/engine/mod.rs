//! The workload engine: one produce / end-to-end workload, any system (a [`Driver`]), spread
//! over several pinned glommio executors whose measurements merge at the end.
//!
//! Shape of a run:
//! - `--threads` producer executors; producer `p` lives on executor `p % threads` and sends to
//!   topic `p % topics`. An end-to-end run adds `--consumers` executors; the queues of every
//!   topic are dealt round-robin over them, a [`Subscriber`] per queue. Each executor has a
//!   [`Driver`] per topic.
//! - Every executor opens its connections first, then waits at the start gate
//!   ([`live::Live::start_gate`]); all begin at one instant, `start`.
//! - The first `--warmup-s` seconds are run but not measured (see [`recorder`]).
//! - Count mode: `--messages` split over the producers. Duration mode (`--duration-s`): each
//!   producer sends until `start + warmup + duration`, then waits for its acks.
//! - Closed loop: `--in-flight` workers per producer, each send → ack → send. Open loop
//!   (`--rate`): each producer has a fixed schedule, a batch due at `t` goes out at `t` or when
//!   an in-flight slot frees, and is measured from `t` (no coordinated omission); how late it went
//!   out is the publish delay.
//! - End-to-end: each record's payload starts with the µs since `start` at which its batch was
//!   encoded, i.e. actually sent (as OMB's publish timestamp; in open loop the publish delay
//!   reports how late that was against the schedule); the consumer executor measures receipt
//!   minus that (one process, one monotonic clock). It stops once every producer finished and it received every acknowledged record,
//!   or after `drain_timeout` without a record.
//!
//! Failure: a request that fails is counted and its text kept; after `max_errors` on any
//! executor the whole run stops and returns [`BenchError::TooManyErrors`]. Nothing is dropped
//! silently: `sent`, `acked`, `received` and `errors` are all reported.

pub mod driver;
pub mod group;
pub mod live;
mod load;
mod receive;
pub mod recorder;

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use driver::{Driver, Position, Publisher, Subscriber};
pub use group::{BenchFilter, GroupRun, TagMix};
use live::{Live, Planned};
use recorder::ThreadResult;

use crate::error::BenchError;
use crate::runtime::run_pinned;

/// Everything a produce or end-to-end workload is, independent of the system.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The topics producers spread over (producer `p` sends to `topics[p % len]`).
    pub topics: Vec<String>,
    /// Count mode: total messages over all producers. Ignored in duration mode.
    pub messages: u64,
    /// Duration mode: measured seconds after the warm-up.
    pub duration: Option<Duration>,
    pub warmup: Duration,
    pub size: usize,
    pub batch: u32,
    pub producers: u32,
    pub queues_per_producer: Option<u32>,
    pub in_flight: u32,
    /// Open loop: messages per second over all producers; 0 = closed loop.
    pub rate: f64,
    /// Requests slower than this are printed with their send time (`recorder::SlowLog`).
    pub log_slow: Option<Duration>,
    /// The CPU of each producer executor (its length is the executor count).
    pub producer_cpus: Vec<usize>,
    /// End-to-end runs: the CPU of each consumer executor (empty: not an end-to-end run). The
    /// (topic, queue) pairs are dealt round-robin over them, one subscriber each.
    pub consumer_cpus: Vec<usize>,
    pub spin_us: u64,
    pub max_errors: u64,
    /// End-to-end: how long consumers wait for missing records after the producers finished.
    pub drain_timeout: Duration,
    /// The tags batches carry (empty: none).
    pub tags: TagMix,
    /// End-to-end: consume through this consumer group, one member per consumer executor.
    pub group: Option<GroupRun>,
}

impl Workload {
    pub fn end_to_end(&self) -> bool {
        !self.consumer_cpus.is_empty()
    }

    /// How many times the consumers should receive one acknowledged record tagged `tag`;
    /// `None` when the bench cannot tell (SQL92 filter).
    pub fn receipts_per_record(&self, tag: Option<&str>) -> Option<u64> {
        group::receipts_per_record(self.group.as_ref(), self.consumer_cpus.len() as u32, tag)
    }

    /// Whether the receipts to expect are known (the run ends when they all arrived).
    pub fn receipts_known(&self) -> bool {
        self.tags
            .variants()
            .into_iter()
            .all(|tag| self.receipts_per_record(tag).is_some())
    }

    fn planned(&self) -> Planned {
        match self.duration {
            Some(d) => Planned::Seconds((self.warmup + d).as_secs_f64()),
            None => Planned::Messages(self.messages),
        }
    }
}

/// A finished run: the merged measurements and the clock it was measured on.
#[derive(Debug)]
pub struct Measured {
    pub merged: ThreadResult,
    /// When the measured window began (start + warm-up).
    pub measure_from: Instant,
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    /// End-to-end (and tagged) runs: receipts the consumers should have seen for what was
    /// acknowledged; `None` when the bench cannot tell (a SQL92 filter).
    pub expected_receipts: Option<u64>,
}

impl Measured {
    /// From the end of warm-up to the last measured ack.
    pub fn elapsed(&self) -> Duration {
        self.merged.last_ack.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(self.measure_from)
        })
    }
}

/// Runs `workload` against the system `make_driver(topic)` reaches (called on every executor for
/// every topic), blocking the calling thread until every executor returned.
pub fn run<D, F>(workload: &Workload, make_driver: F) -> Result<Measured, BenchError>
where
    D: Driver,
    F: Fn(&str) -> D + Send + Sync + 'static,
{
    if workload.producer_cpus.is_empty() || workload.topics.is_empty() {
        return Err(BenchError::InvalidArgs(
            "a run needs at least one executor and one topic".into(),
        ));
    }
    let threads = workload.producer_cpus.len() as u32;
    let consumers = workload.consumer_cpus.len() as u32;
    let live = Arc::new(Live::new(threads, consumers));
    let make_driver = Arc::new(make_driver);
    let load_before = live::load_average();

    let mut handles = Vec::new();
    for (t, &cpu) in workload.producer_cpus.iter().enumerate() {
        let (w, make) = (workload.clone(), make_driver.clone());
        let name = format!("bench-produce-{t}");
        handles.push(spawn_executor(name, cpu, w.spin_us, &live, move |live| {
            let drivers = w.topics.iter().map(|topic| make(topic)).collect();
            load::producer_executor(drivers, w, t as u32, threads, live)
        }));
    }
    for (c, &cpu) in workload.consumer_cpus.iter().enumerate() {
        let (w, make) = (workload.clone(), make_driver.clone());
        let name = format!("bench-consume-{c}");
        handles.push(spawn_executor(name, cpu, w.spin_us, &live, move |live| {
            let drivers = w.topics.iter().map(|topic| make(topic)).collect();
            receive::consumer_executor(drivers, w, c as u32, consumers, live)
        }));
    }
    let progress = {
        let (live, planned) = (live.clone(), workload.planned());
        std::thread::spawn(move || live::progress_line(&live, planned))
    };

    let outcome = join_all(handles, &live);
    let _ = progress.join();
    let merged = outcome?;
    if merged.errors > 0 && merged.errors >= workload.max_errors {
        return Err(BenchError::TooManyErrors {
            count: merged.errors,
            last: merged.last_error.unwrap_or_default(),
        });
    }
    let start = live
        .started_at()
        .ok_or_else(|| BenchError::Executor("the run never started".into()))?;
    Ok(Measured {
        merged,
        measure_from: start + workload.warmup,
        load_before,
        load_after: live::load_average(),
        expected_receipts: workload
            .receipts_known()
            .then(|| live.expected_receipts.load(Ordering::SeqCst)),
    })
}

/// A drain: consumers read every queue of `topics` from its start until `expected` records
/// arrived, or none arrived for `idle_timeout`.
#[derive(Debug, Clone)]
pub struct Drain {
    pub topics: Vec<String>,
    pub expected: u64,
    pub consumer_cpus: Vec<usize>,
    pub spin_us: u64,
    pub max_errors: u64,
    pub idle_timeout: Duration,
}

/// Runs `drain` against the system `make_driver(topic)` reaches, blocking the calling thread.
/// Per non-empty poll, the poll's round trip goes into the `publish` track (as pull latency) and
/// its records into the per-second counts; `merged.acked` is the records received.
pub fn drain<D, F>(drain: &Drain, make_driver: F) -> Result<Measured, BenchError>
where
    D: Driver,
    F: Fn(&str) -> D + Send + Sync + 'static,
{
    if drain.consumer_cpus.is_empty() || drain.topics.is_empty() {
        return Err(BenchError::InvalidArgs(
            "a drain needs at least one executor and one topic".into(),
        ));
    }
    let executors = drain.consumer_cpus.len() as u32;
    let live = Arc::new(Live::new(0, executors));
    let make_driver = Arc::new(make_driver);
    let load_before = live::load_average();
    let mut handles = Vec::new();
    for (c, &cpu) in drain.consumer_cpus.iter().enumerate() {
        let (d, make) = (drain.clone(), make_driver.clone());
        let name = format!("bench-drain-{c}");
        handles.push(spawn_executor(name, cpu, d.spin_us, &live, move |live| {
            let drivers = d.topics.iter().map(|topic| make(topic)).collect();
            receive::drain_executor(drivers, d, c as u32, executors, live)
        }));
    }
    let progress = {
        let (live, expected) = (live.clone(), drain.expected);
        std::thread::spawn(move || live::progress_line(&live, Planned::Drain(expected)))
    };
    let outcome = join_all(handles, &live);
    let _ = progress.join();
    let merged = outcome?;
    let start = live
        .started_at()
        .ok_or_else(|| BenchError::Executor("the drain never started".into()))?;
    Ok(Measured {
        merged,
        measure_from: start,
        load_before,
        load_after: live::load_average(),
        expected_receipts: None,
    })
}

type Handle = std::thread::JoinHandle<Result<Result<ThreadResult, BenchError>, BenchError>>;

/// Stops the run when an executor thread ends without a result (its executor did not start,
/// or it panicked): the others must not wait at the start gate for it forever.
struct AbortUnlessDone {
    live: Arc<Live>,
    done: bool,
}

impl Drop for AbortUnlessDone {
    fn drop(&mut self) {
        if !self.done {
            self.live.abort();
            self.live.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs `work(live)` on a new pinned executor on its own thread.
fn spawn_executor<F, Fut>(
    name: String,
    cpu: usize,
    spin_us: u64,
    live: &Arc<Live>,
    work: F,
) -> Handle
where
    F: FnOnce(Arc<Live>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<ThreadResult, BenchError>> + 'static,
{
    let live = live.clone();
    std::thread::spawn(move || {
        let mut guard = AbortUnlessDone {
            live: live.clone(),
            done: false,
        };
        let outcome = run_pinned(&name, cpu, spin_us, move || work(live));
        guard.done = matches!(outcome, Ok(Ok(_)));
        outcome
    })
}

/// Joins every executor thread and merges their results; the first failure aborts the others
/// and is returned. Ends the progress line.
fn join_all(handles: Vec<Handle>, live: &Live) -> Result<ThreadResult, BenchError> {
    let mut merged = ThreadResult::default();
    let mut failure = None;
    for handle in handles {
        let outcome = handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match outcome.and_then(|inner| inner) {
            Ok(result) => merged.merge(&result),
            Err(e) => {
                live.abort();
                live.stop.store(true, Ordering::SeqCst);
                // The cause, not an executor that stopped because of it.
                if matches!(failure, None | Some(BenchError::OtherExecutorFailed)) {
                    failure = Some(e);
                }
            }
        }
    }
    live.done.store(true, Ordering::SeqCst);
    match failure {
        Some(e) => Err(e),
        None => Ok(merged),
    }
}

/// Checks `--queues-per-producer` against the topic and returns the queues producer `p` uses.
fn producer_queues(w: &Workload, p: u32, queues: u32) -> Result<Vec<u32>, BenchError> {
    let per = w.queues_per_producer.unwrap_or(queues);
    if per > queues || queues == 0 {
        return Err(BenchError::InvalidArgs(format!(
            "--queues-per-producer {per} but the topic has {queues} queues"
        )));
    }
    Ok(crate::produce::queues_for(p, per, queues))
}

/// Records a failure on `recorder` and the shared counter; stops the run once `max_errors`
/// failed across all executors.
fn count_error(
    recorder: &recorder::Recorder,
    live: &Live,
    max_errors: u64,
    what: impl std::fmt::Display,
) {
    let here = recorder.error(what.to_string());
    let everywhere = live.errors.fetch_add(1, Ordering::SeqCst) + 1;
    if here <= 5 {
        tracing::warn!("request failed: {what}");
    }
    if everywhere >= max_errors {
        live.stop.store(true, Ordering::SeqCst);
    }
}

/// Keeps `live.p99_us[slot]` current for the progress line, 4 times a second, until dropped.
async fn publish_p99(recorder: Rc<recorder::Recorder>, live: Arc<Live>, slot: usize) {
    loop {
        glommio::timer::sleep(Duration::from_millis(250)).await;
        live.p99_us[slot].store(recorder.publish_p99(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A system that acknowledges everything at once and delivers nothing.
    struct Instant;
    struct Sink;

    impl Driver for Instant {
        type Publisher = Sink;
        type Subscriber = Sink;
        fn system(&self) -> &'static str {
            "instant"
        }
        async fn queues(&self) -> Result<u32, BenchError> {
            Ok(2)
        }
        async fn publisher(&self, _: u32, _: &[u32]) -> Result<Sink, BenchError> {
            Ok(Sink)
        }
        async fn subscriber(&self, _: u32, _: Position) -> Result<Sink, BenchError> {
            Ok(Sink)
        }
    }

    impl Publisher for Sink {
        type Batch = u32;
        fn encode(&self, count: u32, _: &[u8], _: Option<&str>) -> u32 {
            count
        }
        async fn publish(&self, _: u32, batch: &u32) -> Result<u32, BenchError> {
            Ok(*batch)
        }
    }

    impl Subscriber for Sink {
        async fn poll(&mut self, _: &mut dyn FnMut(&[u8])) -> Result<u64, BenchError> {
            glommio::timer::sleep(Duration::from_millis(5)).await;
            Ok(0)
        }
    }

    fn workload(threads: usize) -> Workload {
        let cpu = crate::runtime::choose_cpu(None, &crate::runtime::allowed_cpus()).unwrap();
        Workload {
            topics: vec!["t".into()],
            messages: 1003,
            duration: None,
            warmup: Duration::ZERO,
            size: 16,
            batch: 10,
            producers: 3,
            queues_per_producer: None,
            in_flight: 2,
            rate: 0.0,
            log_slow: None,
            producer_cpus: vec![cpu; threads],
            consumer_cpus: Vec::new(),
            spin_us: 0,
            max_errors: 10,
            drain_timeout: Duration::from_secs(1),
            tags: TagMix::default(),
            group: None,
        }
    }

    #[test]
    fn producers_over_executors_add_up() {
        let measured = run(&workload(2), |_| Instant).unwrap();
        let r = &measured.merged;
        assert_eq!((r.sent, r.acked, r.errors), (1003, 1003, 0));
        // 1003 over 3 producers (335, 334, 334) in batches of 10: 34 + 34 + 34 requests.
        assert_eq!(r.publish.histogram.len(), 102);
    }

    /// A system whose publishers answer their first two requests busy.
    struct Pushback;
    struct BusyAtFirst(std::cell::Cell<u32>);

    impl Driver for Pushback {
        type Publisher = BusyAtFirst;
        type Subscriber = Sink;
        fn system(&self) -> &'static str {
            "pushback"
        }
        async fn queues(&self) -> Result<u32, BenchError> {
            Ok(2)
        }
        async fn publisher(&self, _: u32, _: &[u32]) -> Result<BusyAtFirst, BenchError> {
            Ok(BusyAtFirst(std::cell::Cell::new(0)))
        }
        async fn subscriber(&self, _: u32, _: Position) -> Result<Sink, BenchError> {
            Ok(Sink)
        }
    }

    impl Publisher for BusyAtFirst {
        type Batch = u32;
        fn encode(&self, count: u32, _: &[u8], _: Option<&str>) -> u32 {
            count
        }
        async fn publish(&self, _: u32, batch: &u32) -> Result<u32, BenchError> {
            let answered = self.0.get();
            self.0.set(answered + 1);
            if answered < 2 {
                return Err(BenchError::Busy {
                    system: "pushback",
                    message: "no room".into(),
                });
            }
            Ok(*batch)
        }
    }

    #[test]
    fn busy_answers_are_counted_and_sent_again_not_errors() {
        let mut w = workload(1);
        w.max_errors = 1;
        let measured = run(&w, |_| Pushback).unwrap();
        let r = &measured.merged;
        assert_eq!((r.sent, r.acked, r.errors), (1003, 1003, 0));
        assert_eq!(r.busy, 6, "two busy answers for each of the 3 producers");
    }

    /// Regression: an executor that died before the start gate (here: the second one's driver
    /// panics, so the run joins the first, waiting one, first) left the others waiting at the
    /// gate forever.
    #[test]
    fn an_executor_dying_before_the_gate_ends_the_run() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                run(&workload(2), move |_| {
                    let name = std::thread::current().name().unwrap_or("").to_owned();
                    if name.starts_with("bench-produce-1") {
                        panic!("this executor cannot reach its system");
                    }
                    Instant
                })
            });
            let _ = tx.send(outcome.is_err() || outcome.is_ok_and(|r| r.is_err()));
        });
        let failed = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the run ended instead of waiting at the start gate");
        assert!(failed, "a run with a dead executor is not a success");
    }
}
