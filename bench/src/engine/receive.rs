//! The consumer side of an end-to-end run: one [`Subscriber`] per queue on one executor, each
//! positioned at its queue's end before the start gate, measuring every record from the stamp
//! its producer wrote (µs since the common start) to its receipt here.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::Position;
use super::live::Live;
use super::recorder::{Recorder, ThreadResult};
use super::{count_error, Driver, Subscriber, Workload};
use crate::end_to_end::STAMP_BYTES;
use crate::error::BenchError;

/// How often the consumer executor checks whether it is done.
const CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// Pause after a failed poll.
const RETRY_DELAY: Duration = Duration::from_millis(50);

/// Subscribes, from `from`, to this executor's share of the queues of every topic: pair `i` of
/// all (topic, queue) pairs belongs to executor `i % executors`. On failure the other executors
/// are told not to wait at the gate.
async fn subscribe_share<D: Driver>(
    drivers: &[D],
    index: u32,
    executors: u32,
    from: Position,
    live: &Live,
) -> Result<Vec<D::Subscriber>, BenchError> {
    let setup = async {
        let mut subscribers = Vec::new();
        let mut pair = 0u32;
        for driver in drivers {
            for queue in 0..driver.queues().await? {
                if pair % executors == index {
                    subscribers.push(driver.subscriber(queue, from).await?);
                }
                pair += 1;
            }
        }
        Ok(subscribers)
    }
    .await;
    if setup.is_err() {
        live.abort();
    }
    setup
}

/// Joins the run's consumer group as member `index` of `executors` and returns the consumers
/// of the queues it was assigned (one topic only: the group subscribes to it).
async fn join_group<D: Driver>(
    drivers: &[D],
    group: &super::GroupRun,
    index: u32,
    executors: u32,
    live: &Live,
) -> Result<Vec<D::Subscriber>, BenchError> {
    let joined = match drivers {
        [driver] => driver.group_subscribers(group, index, executors).await,
        _ => Err(BenchError::InvalidArgs(
            "--group consumes one topic; name one in --topic".into(),
        )),
    };
    if joined.is_err() {
        live.abort();
    }
    joined
}

/// Subscribes to this executor's share of the queues of every topic (`drivers`: one per topic;
/// pair `i` of all (topic, queue) pairs belongs to executor `i % executors`) — or, with a
/// group, to what the group assigned this member — waits at the gate, and receives until the
/// consumers together have every receipt expected (`Live::expected_receipts`; unknown under a
/// SQL92 filter) or the drain timeout passed without a record anywhere.
pub(super) async fn consumer_executor<D: Driver>(
    drivers: Vec<D>,
    w: Workload,
    index: u32,
    executors: u32,
    live: Arc<Live>,
) -> Result<ThreadResult, BenchError> {
    let subscribers = match &w.group {
        Some(group) => join_group(&drivers, group, index, executors, &live).await?,
        None => subscribe_share(&drivers, index, executors, Position::End, &live).await?,
    };
    let receipts_known = w.receipts_known();
    let start = live.start_gate().await?;
    let recorder = Rc::new(Recorder::new(start + w.warmup));
    let tasks: Vec<_> = subscribers
        .into_iter()
        .map(|s| {
            glommio::spawn_local(receive(
                s,
                recorder.clone(),
                live.clone(),
                start,
                w.max_errors,
            ))
            .detach()
        })
        .collect();
    // Idle means no record arrived at *any* consumer executor for the drain timeout.
    let (mut seen, mut last_change) = (0, Instant::now());
    loop {
        glommio::timer::sleep(CHECK_INTERVAL).await;
        if live.stopped() {
            break;
        }
        let received = live.received.load(Ordering::SeqCst);
        if received != seen {
            (seen, last_change) = (received, Instant::now());
        }
        if live.producers_running.load(Ordering::SeqCst) > 0 {
            continue;
        }
        let all_there = receipts_known && received >= live.expected_receipts.load(Ordering::SeqCst);
        if all_there || last_change.elapsed() >= w.drain_timeout {
            break;
        }
    }
    for task in tasks {
        task.cancel();
    }
    for driver in &drivers {
        driver.close().await;
    }
    Ok(recorder.finish())
}

async fn receive<S: Subscriber>(
    mut subscriber: S,
    recorder: Rc<Recorder>,
    live: Arc<Live>,
    start: Instant,
    max_errors: u64,
) {
    while !live.stopped() {
        let mut stamps = Vec::new();
        let polled = subscriber
            .poll(&mut |payload| {
                stamps.push(
                    payload
                        .get(..STAMP_BYTES)
                        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
                )
            })
            .await;
        match polled {
            Ok(_) => {
                let now = Instant::now();
                for stamp in &stamps {
                    match stamp {
                        Some(us) => recorder.received(start + Duration::from_micros(*us), now),
                        None => recorder.received_unstamped(1),
                    }
                }
                live.received
                    .fetch_add(stamps.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                count_error(&recorder, &live, max_errors, e);
                glommio::timer::sleep(RETRY_DELAY).await;
            }
        }
    }
}

/// Drains this executor's share of the queues of every topic from their start until the
/// consumers together received `drain.expected` records, or none arrived anywhere for the idle
/// timeout.
pub(super) async fn drain_executor<D: Driver>(
    drivers: Vec<D>,
    drain: super::Drain,
    index: u32,
    executors: u32,
    live: Arc<Live>,
) -> Result<ThreadResult, BenchError> {
    let subscribers = subscribe_share(&drivers, index, executors, Position::Start, &live).await?;
    let start = live.start_gate().await?;
    let recorder = Rc::new(Recorder::new(start));
    let tasks: Vec<_> = subscribers
        .into_iter()
        .map(|s| {
            glommio::spawn_local(drain_queue(
                s,
                recorder.clone(),
                live.clone(),
                drain.max_errors,
            ))
            .detach()
        })
        .collect();
    let (mut seen, mut last_change) = (0, Instant::now());
    loop {
        glommio::timer::sleep(CHECK_INTERVAL).await;
        let received = live.received.load(Ordering::SeqCst);
        if received != seen {
            (seen, last_change) = (received, Instant::now());
        }
        if live.stopped()
            || received >= drain.expected
            || last_change.elapsed() >= drain.idle_timeout
        {
            break;
        }
    }
    for task in tasks {
        task.cancel();
    }
    Ok(recorder.finish())
}

async fn drain_queue<S: Subscriber>(
    mut subscriber: S,
    recorder: Rc<Recorder>,
    live: Arc<Live>,
    max_errors: u64,
) {
    while !live.stopped() {
        let asked = Instant::now();
        match subscriber.poll(&mut |_| {}).await {
            Ok(0) => {}
            Ok(count) => {
                recorder.acked(asked, count);
                live.received.fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                count_error(&recorder, &live, max_errors, e);
                glommio::timer::sleep(RETRY_DELAY).await;
            }
        }
    }
}
