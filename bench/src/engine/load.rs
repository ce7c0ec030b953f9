//! The producer side of a run: one executor's producers, in closed or open loop.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::live::Live;
use super::recorder::{Recorder, ThreadResult};
use super::{count_error, producer_queues, publish_p99, Driver, Publisher, Workload};
use crate::end_to_end::stamp_payload;
use crate::error::BenchError;
use crate::produce::{payload_bytes, share};

/// One producer: its publisher, queues, and the batches it will send.
struct Producer<P: Publisher> {
    /// The producer's number in the run (0..producers).
    index: u32,
    publisher: P,
    queues: Vec<u32>,
    payload: Vec<u8>,
    /// The full batch, encoded once per tag variant (unless stamped).
    full: Vec<P::Batch>,
    /// The last, shorter batch of a count-mode share (per tag variant), and its record count.
    tail: Option<(Vec<P::Batch>, u32)>,
    /// Batches to send; `u64::MAX` in duration mode.
    batches: u64,
    next: Cell<u64>,
}

/// A batch to send: the one encoded up front, or one encoded now with a send-time stamp.
enum Outgoing<'a, B> {
    Shared(&'a B),
    Stamped(B),
}

impl<B> Outgoing<'_, B> {
    fn get(&self) -> &B {
        match self {
            Outgoing::Shared(b) => b,
            Outgoing::Stamped(b) => b,
        }
    }
}

/// What every producer of the executor shares.
struct Shared {
    w: Workload,
    live: Arc<Live>,
    recorder: Rc<Recorder>,
    start: Instant,
    /// Duration mode: no batch starts at or after this instant.
    send_until: Option<Instant>,
    stamped: bool,
    /// Per tag variant: receipts expected per acknowledged record (see `group`).
    receipts: Vec<u64>,
}

/// How long a producer waits before sending again a request answered busy (RocketMQ's 5.x
/// producer backs off too; a broker's busy answer already came after it waited for room).
pub const BUSY_RETRY_PAUSE: Duration = Duration::from_millis(10);

impl Shared {
    fn keep_sending(&self) -> bool {
        !self.live.stopped() && self.send_until.is_none_or(|end| Instant::now() < end)
    }
}

impl<P: Publisher> Producer<P> {
    /// Batch `index`: its bytes, record count, queue and tag variant.
    fn batch_at(&self, index: u64, shared: &Shared) -> (Outgoing<'_, P::Batch>, u32, u32, usize) {
        let queues = self.queues.len() as u64;
        let queue = self.queues[(index % queues) as usize];
        let variant = shared.w.tags.variant_for(index / queues);
        let (batch, count) = match &self.tail {
            Some((tail, count)) if index + 1 == self.batches => (&tail[variant], *count),
            _ => (&self.full[variant], shared.w.batch),
        };
        if shared.stamped {
            let mut payload = self.payload.clone();
            stamp_payload(&mut payload, shared.start);
            let tag = shared.w.tags.variants()[variant];
            return (
                Outgoing::Stamped(self.publisher.encode(count, &payload, tag)),
                count,
                queue,
                variant,
            );
        }
        (Outgoing::Shared(batch), count, queue, variant)
    }

    async fn send(&self, index: u64, from: Option<Instant>, shared: &Shared) {
        let (batch, count, queue, variant) = self.batch_at(index, shared);
        let sent = from.unwrap_or_else(Instant::now);
        shared.recorder.sent(u64::from(count));
        match self
            .publish_until_not_busy(queue, batch.get(), shared)
            .await
        {
            Ok(acked) => {
                shared.recorder.acked(sent, u64::from(acked));
                shared
                    .live
                    .acked
                    .fetch_add(u64::from(acked), Ordering::Relaxed);
                shared.live.expected_receipts.fetch_add(
                    u64::from(acked) * shared.receipts[variant],
                    Ordering::Relaxed,
                );
                if acked != count {
                    count_error(
                        &shared.recorder,
                        &shared.live,
                        shared.w.max_errors,
                        format!("queue {queue}: {acked} of {count} records acknowledged"),
                    );
                }
            }
            Err(e) => count_error(
                &shared.recorder,
                &shared.live,
                shared.w.max_errors,
                format_args!("queue {queue}: {e}"),
            ),
        }
    }

    /// Publishes `batch`, sending it again after [`BUSY_RETRY_PAUSE`] each time the system
    /// answers busy (counted, not an error) while the run goes on; the latency of the request
    /// then includes its retries.
    async fn publish_until_not_busy(
        &self,
        queue: u32,
        batch: &P::Batch,
        shared: &Shared,
    ) -> Result<u32, BenchError> {
        loop {
            match self.publisher.publish(queue, batch).await {
                Err(e) if e.is_busy() && shared.keep_sending() => {
                    shared.recorder.busy();
                    glommio::timer::sleep(BUSY_RETRY_PAUSE).await;
                }
                other => return other,
            }
        }
    }
}

/// Opens this executor's producers (`drivers`: one per topic), waits at the gate, runs them,
/// returns the measurements.
pub(super) async fn producer_executor<D: Driver>(
    drivers: Vec<D>,
    w: Workload,
    thread: u32,
    threads: u32,
    live: Arc<Live>,
) -> Result<ThreadResult, BenchError> {
    let setup = open_producers(&drivers, &w, thread, threads).await;
    let producers = match setup {
        Ok(ok) => ok,
        Err(e) => {
            live.abort();
            return Err(e);
        }
    };
    let start = live.start_gate().await?;
    let recorder = Rc::new(Recorder::new(start + w.warmup).with_slow_log(w.log_slow));
    let progress =
        glommio::spawn_local(publish_p99(recorder.clone(), live.clone(), thread as usize));
    let receipts = w
        .tags
        .variants()
        .into_iter()
        .map(|tag| w.receipts_per_record(tag).unwrap_or(0))
        .collect();
    let shared = Rc::new(Shared {
        send_until: w.duration.map(|d| start + w.warmup + d),
        stamped: w.end_to_end(),
        receipts,
        w,
        live: live.clone(),
        recorder: recorder.clone(),
        start,
    });
    let mut tasks = Vec::new();
    let producer_count = f64::from(shared.w.producers);
    for producer in producers {
        let producer = Rc::new(producer);
        if shared.w.rate > 0.0 {
            let interval =
                Duration::from_secs_f64(f64::from(shared.w.batch) * producer_count / shared.w.rate);
            let offset = interval.mul_f64(f64::from(producer.index) / producer_count);
            tasks.push(glommio::spawn_local(open_loop(
                producer,
                shared.clone(),
                interval,
                offset,
            )));
        } else {
            for _ in 0..shared.w.in_flight {
                tasks.push(glommio::spawn_local(closed_loop(
                    producer.clone(),
                    shared.clone(),
                )));
            }
        }
    }
    for task in tasks {
        task.await;
    }
    drop(progress);
    live.producers_running.fetch_sub(1, Ordering::SeqCst);
    Ok(recorder.finish())
}

async fn open_producers<D: Driver>(
    drivers: &[D],
    w: &Workload,
    thread: u32,
    threads: u32,
) -> Result<Vec<Producer<D::Publisher>>, BenchError> {
    let mut queue_counts = Vec::with_capacity(drivers.len());
    for driver in drivers {
        queue_counts.push(driver.queues().await?);
    }
    let payload = payload_bytes(w.size, 0x5eed);
    let mut producers = Vec::new();
    for p in (thread..w.producers).step_by(threads as usize) {
        let (messages, batches) = match w.duration {
            Some(_) => (u64::MAX, u64::MAX),
            None => {
                let m = share(w.messages, w.producers, p);
                (m, m.div_ceil(u64::from(w.batch)))
            }
        };
        if messages == 0 {
            continue;
        }
        let topic = p as usize % drivers.len();
        let mine = producer_queues(w, p, queue_counts[topic])?;
        let publisher = drivers[topic].publisher(p, &mine).await?;
        let rest = (messages % u64::from(w.batch)) as u32;
        let encode_all = |count: u32| -> Vec<_> {
            w.tags
                .variants()
                .into_iter()
                .map(|tag| publisher.encode(count, &payload, tag))
                .collect()
        };
        let tail = (w.duration.is_none() && rest > 0).then(|| (encode_all(rest), rest));
        producers.push(Producer {
            index: p,
            full: encode_all(w.batch),
            tail,
            publisher,
            queues: mine,
            payload: payload.clone(),
            batches,
            next: Cell::new(0),
        });
    }
    Ok(producers)
}

/// One closed loop: take the producer's next batch, send it, wait for the ack, repeat.
async fn closed_loop<P: Publisher>(producer: Rc<Producer<P>>, shared: Rc<Shared>) {
    while shared.keep_sending() {
        let index = producer.next.get();
        if index >= producer.batches {
            return;
        }
        producer.next.set(index + 1);
        producer.send(index, None, &shared).await;
    }
}

/// Open loop: batch `i` is due at `start + offset + i * interval`; it goes out then, or as soon
/// as an in-flight slot frees up, and is measured from when it was due. In duration mode the
/// last batch is the last one *due* before the end (a late one still goes out). `offset`
/// spreads the producers over one interval, so they do not all fire at the same instants.
async fn open_loop<P: Publisher + 'static>(
    producer: Rc<Producer<P>>,
    shared: Rc<Shared>,
    interval: Duration,
    offset: Duration,
) {
    let slots = Rc::new(glommio::sync::Semaphore::new(u64::from(shared.w.in_flight)));
    let mut index = 0;
    while index < producer.batches && !shared.live.stopped() {
        let intended = shared.start + offset + interval.mul_f64(index as f64);
        if shared.send_until.is_some_and(|end| intended >= end) {
            break;
        }
        let now = Instant::now();
        if intended > now {
            glommio::timer::sleep(intended - now).await;
        }
        let Ok(slot) = slots.acquire_static_permit(1).await else {
            break;
        };
        if shared.live.stopped() {
            break;
        }
        shared.recorder.delayed(intended);
        let (producer, shared) = (producer.clone(), shared.clone());
        glommio::spawn_local(async move {
            producer.send(index, Some(intended), &shared).await;
            drop(slot);
        })
        .detach();
        index += 1;
    }
    // Every send holds a slot until its ack: taking them all means they all returned.
    let _all = slots.acquire(u64::from(shared.w.in_flight)).await;
}
