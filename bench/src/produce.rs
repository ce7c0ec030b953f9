//! The produce benchmark: `--producers` closed-loop producers, each with its own [`Client`]
//! (own connections), all on one pinned glommio executor.
//!
//! Each producer owns a share of `--messages`, cut into batches of `--batch` records of `--size`
//! payload bytes. The batch is encoded once up front (payload bytes random-ish, generated once)
//! and the same bytes are sent for every request; the broker stamps its own copy, so what is
//! measured is the broker and the wire, not the client's encoding. Batches go round-robin over
//! the producer's queues (`--queues-per-producer`, default all of the topic's), with
//! `--in-flight` requests outstanding per producer. Latency is recorded per batch, from just
//! before the request is written to the ack.
//!
//! Connections to every shard a producer needs are opened before the clock starts. The topic
//! must exist; its queue count comes from `list_topics`.
//!
//! Rate modes: closed loop (default) sends as fast as acks come back, to find the maximum. Open
//! loop (`--rate R` msg/s over all producers) gives each batch an intended send time on a fixed
//! schedule; a batch that cannot go out on time (broker stalled, `--in-flight` all taken) goes
//! out late, and its latency is measured from the *intended* time, so a stall shows as latency
//! rather than as samples never taken (no coordinated omission, as in wrk2 and OMB). How late
//! each batch went out is reported as the publish delay.
//!
//! While it runs, a progress line goes to stderr every second: acked so far, rate over the last
//! second, p99 so far.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shardmq_client::{Client, ClientConfig, ClientError};
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::Record;

use std::borrow::Cow;

use crate::args::{EndToEndArgs, ProduceArgs};
use crate::end_to_end::{stamp_payload, Receivers, STAMP_BYTES};
use crate::error::BenchError;
use crate::report::{new_histogram, record_latency, BenchKind, LatencySummary, RateSeries, Report};
use crate::runtime::{allowed_cpus, choose_cpu, run_pinned};

/// Runs the produce benchmark on a new executor, blocking the calling thread; prints the summary,
/// writes `--json` if given, and returns the report.
pub fn run_produce(args: &ProduceArgs) -> Result<Report, BenchError> {
    if let Some(peer) = args.peer {
        let report = match peer {
            crate::peers::Peer::Nats => crate::peers::nats::run_produce(args)?,
            redis => crate::peers::redis::run_produce(args, redis)?,
        };
        report.publish(args.json.as_deref())?;
        return Ok(report);
    }
    args.validate()?;
    let cpu = choose_cpu(args.cpu, &allowed_cpus())?;
    let owned = args.clone();
    let report = run_pinned("bench-produce", cpu, args.spin_us, move || {
        produce(owned, None)
    })??;
    report.publish(args.json.as_deref())?;
    Ok(report)
}

/// The end-to-end benchmark: the produce benchmark with every record stamped with its send time
/// and a consumer per queue measuring send-to-receipt latency (`end_to_end`).
pub fn run_end_to_end(args: &EndToEndArgs) -> Result<Report, BenchError> {
    args.produce.validate()?;
    if args.produce.size < STAMP_BYTES {
        return Err(BenchError::InvalidArgs(format!(
            "--size must be at least {STAMP_BYTES} for end-to-end stamps"
        )));
    }
    let cpu = choose_cpu(args.produce.cpu, &allowed_cpus())?;
    let (owned, wait_ms) = (args.produce.clone(), args.wait_ms);
    let report = run_pinned("bench-e2e", cpu, args.produce.spin_us, move || {
        produce(owned, Some(wait_ms))
    })??;
    report.publish(args.produce.json.as_deref())?;
    Ok(report)
}

/// `len` bytes that do not compress to nothing: splitmix64 output, from a fixed seed.
pub(crate) fn payload_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Producer `p`'s share of `total` messages among `producers` (the first ones take the rest).
pub(crate) fn share(total: u64, producers: u32, p: u32) -> u64 {
    let n = u64::from(producers);
    total / n + u64::from(u64::from(p) < total % n)
}

/// The queues producer `p` cycles over: `per` consecutive queues starting at `p * per`,
/// wrapping around the topic's `queues`.
pub(crate) fn queues_for(p: u32, per: u32, queues: u32) -> Vec<u32> {
    (0..per)
        .map(|j| ((u64::from(p) * u64::from(per) + u64::from(j)) % u64::from(queues)) as u32)
        .collect()
}

/// What one producer sends and what it has measured so far.
struct ProducerRun {
    client: Client,
    topic: String,
    queues: Vec<u32>,
    full: Rc<[u8]>,
    /// The last, shorter batch when the share is not a multiple of the batch size.
    tail: Option<Vec<u8>>,
    /// End-to-end runs: encode every batch at send time with stamped payloads instead of
    /// resending `full`: `(run start, payload, records per batch, records in the tail)`.
    stamped: Option<(Instant, Rc<[u8]>, u32, u32)>,
    batches: u64,
    next_batch: Cell<u64>,
}

/// Measurements shared by every producer of the run (one executor, so `Cell`s suffice).
struct Totals {
    histogram: RefCell<Histogram<u64>>,
    /// Open loop: actual send time minus intended send time, per batch.
    delay: RefCell<Histogram<u64>>,
    series: RateSeries,
    start: Instant,
    /// Open loop: batches sent and not yet acknowledged, and the event that wakes the waiter.
    outstanding: Cell<u64>,
    settled: event_listener::Event,
    acked: Cell<u64>,
    errors: Cell<u64>,
    last_ack: Cell<Option<Instant>>,
    stop: RefCell<Option<ClientError>>,
    max_errors: u64,
}

fn records(count: u32, payload: &[u8]) -> Vec<Record> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (0..count)
        .map(|_| Record {
            timestamp_ms: now_ms,
            key: Vec::new(),
            properties: Vec::new(),
            payload: payload.to_vec(),
        })
        .collect()
}

/// Runs producers (and, with `end_to_end = Some(wait_ms)`, a consumer per queue) until every
/// message is acknowledged (and received).
async fn produce(args: ProduceArgs, end_to_end: Option<u32>) -> Result<Report, BenchError> {
    let config = ClientConfig {
        request_timeout: Duration::from_millis(args.timeout_ms),
        ..ClientConfig::default()
    };
    let probe = Client::connect_with(&args.broker, "shardmq-bench", config.clone()).await?;
    let topic = probe
        .topic(&args.topic)
        .await?
        .ok_or_else(|| BenchError::TopicNotFound(args.topic.clone()))?;
    drop(probe);
    let per = args.queues_per_producer.unwrap_or(topic.queues);
    if per > topic.queues {
        return Err(BenchError::InvalidArgs(format!(
            "--queues-per-producer {per} but topic {} has {} queues",
            topic.name, topic.queues
        )));
    }
    let payload = payload_bytes(args.size, 0x5eed);
    let full: Rc<[u8]> = encode_batch(&records(args.batch, &payload))
        .as_slice()
        .into();

    let run_start = Instant::now();
    let receivers = match end_to_end {
        Some(wait_ms) => {
            let client =
                Client::connect_with(&args.broker, "shardmq-bench-e2e", config.clone()).await?;
            Some(Receivers::start(&client, &topic.name, topic.queues, run_start, wait_ms).await?)
        }
        None => None,
    };
    let mut runs = Vec::new();
    for p in 0..args.producers {
        let messages = share(args.messages, args.producers, p);
        if messages == 0 {
            continue;
        }
        let client =
            Client::connect_with(&args.broker, &format!("shardmq-bench-{p}"), config.clone())
                .await?;
        let queues = queues_for(p, per, topic.queues);
        for &q in &queues {
            client.connection_for_queue(&topic.name, q).await?;
        }
        let batch = u64::from(args.batch);
        let rest = (messages % batch) as u32;
        runs.push(Rc::new(ProducerRun {
            client,
            topic: topic.name.clone(),
            queues,
            full: full.clone(),
            tail: (rest > 0).then(|| encode_batch(&records(rest, &payload)).to_vec()),
            stamped: end_to_end
                .map(|_| (run_start, Rc::from(payload.as_slice()), args.batch, rest)),
            batches: messages.div_ceil(batch),
            next_batch: Cell::new(0),
        }));
    }

    let start = Instant::now();
    let totals = Rc::new(Totals {
        histogram: RefCell::new(new_histogram()),
        delay: RefCell::new(new_histogram()),
        series: RateSeries::default(),
        start,
        outstanding: Cell::new(0),
        settled: event_listener::Event::new(),
        acked: Cell::new(0),
        errors: Cell::new(0),
        last_ack: Cell::new(None),
        stop: RefCell::new(None),
        max_errors: args.max_errors,
    });
    let progress = glommio::spawn_local(progress_line(totals.clone(), args.messages));
    let mut tasks = Vec::new();
    let producers = runs.len() as f64;
    for run in &runs {
        if args.rate > 0.0 {
            // Each producer sends its batches at rate / producers messages per second.
            let interval = Duration::from_secs_f64(f64::from(args.batch) * producers / args.rate);
            let slots = Rc::new(glommio::sync::Semaphore::new(u64::from(args.in_flight)));
            tasks.push(glommio::spawn_local(open_loop(
                run.clone(),
                totals.clone(),
                interval,
                slots,
            )));
        } else {
            for _ in 0..args.in_flight {
                tasks.push(glommio::spawn_local(worker(run.clone(), totals.clone())));
            }
        }
    }
    for task in tasks {
        task.await;
    }
    drop(progress);
    if let Some(last) = totals.stop.borrow_mut().take() {
        return Err(BenchError::TooManyErrors {
            count: totals.errors.get(),
            last,
        });
    }
    let acked = totals.acked.get();
    let end_to_end = match &receivers {
        Some(receivers) => {
            let (received, errors, summary) = receivers.finish(acked, Duration::from_secs(5)).await;
            if received < acked {
                tracing::warn!(
                    received,
                    acked,
                    "consumers received fewer records than were acknowledged"
                );
            }
            totals.errors.set(totals.errors.get() + errors);
            Some(summary)
        }
        None => None,
    };
    let elapsed = totals
        .last_ack
        .get()
        .map_or_else(|| start.elapsed(), |t| t - start);
    let histogram = totals.histogram.borrow();
    Ok(Report {
        system: "shardmq",
        kind: if end_to_end.is_some() {
            BenchKind::EndToEnd
        } else {
            BenchKind::Produce
        },
        topic: topic.name,
        messages: acked,
        bytes: acked * args.size as u64,
        elapsed,
        errors: totals.errors.get(),
        message_size: args.size as u64,
        batch_size: u64::from(args.batch),
        clients: args.producers,
        in_flight: args.in_flight,
        latency: LatencySummary::from_histogram(&histogram),
        publish_delay: (args.rate > 0.0)
            .then(|| LatencySummary::from_histogram(&totals.delay.borrow())),
        target_rate: (args.rate > 0.0).then_some(args.rate),
        end_to_end,
        rate_series: totals.series.take(),
    })
}

/// Prints acked / rate / p99 so far to stderr once a second until dropped.
async fn progress_line(totals: Rc<Totals>, total: u64) {
    let mut last = 0u64;
    loop {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        let acked = totals.acked.get();
        let p99 = totals.histogram.borrow().value_at_quantile(0.99);
        eprintln!(
            "[{:>4.0}s] acked {acked}/{total}  {} msg/s  p99 so far {p99} µs  errors {}",
            totals.start.elapsed().as_secs_f64(),
            acked - last,
            totals.errors.get()
        );
        last = acked;
    }
}

/// Records one acknowledged batch: latency from `from` (the send, or the intended send in open
/// loop), the count, the per-second series.
fn record_ack(totals: &Totals, from: Instant, count: u32) {
    let now = Instant::now();
    record_latency(&mut totals.histogram.borrow_mut(), now - from);
    totals.acked.set(totals.acked.get() + u64::from(count));
    totals.series.add(now - totals.start, u64::from(count));
    totals.last_ack.set(Some(now));
}

fn record_error(totals: &Totals, queue: u32, e: ClientError) {
    let errors = totals.errors.get() + 1;
    totals.errors.set(errors);
    if errors <= 5 {
        tracing::warn!(queue, "produce failed: {e}");
    }
    if errors >= totals.max_errors {
        totals.stop.borrow_mut().get_or_insert(e);
    }
}

/// The batch bytes and queue of batch `index` of a producer: the batch encoded once, or, in
/// end-to-end runs, one encoded now with send-time stamps.
fn batch_at(run: &ProducerRun, index: u64) -> (Cow<'_, [u8]>, u32) {
    let last = index + 1 == run.batches;
    let queue = run.queues[(index % run.queues.len() as u64) as usize];
    if let Some((start, payload, per_batch, tail)) = &run.stamped {
        let count = if last && *tail > 0 { *tail } else { *per_batch };
        let mut stamped = payload.to_vec();
        stamp_payload(&mut stamped, *start);
        return (
            Cow::Owned(encode_batch(&records(count, &stamped)).to_vec()),
            queue,
        );
    }
    let batch: &[u8] = match (&run.tail, last) {
        (Some(tail), true) => tail,
        _ => &run.full,
    };
    (Cow::Borrowed(batch), queue)
}

/// Open loop: batch `i` is due at `start + i * interval`; it is sent then (or as soon as an
/// in-flight slot frees up) and measured from when it was due.
async fn open_loop(
    run: Rc<ProducerRun>,
    totals: Rc<Totals>,
    interval: Duration,
    slots: Rc<glommio::sync::Semaphore>,
) {
    for index in 0..run.batches {
        if totals.stop.borrow().is_some() {
            break;
        }
        let intended = totals.start + interval.mul_f64(index as f64);
        let now = Instant::now();
        if intended > now {
            glommio::timer::sleep(intended - now).await;
        }
        let Ok(slot) = slots.acquire_static_permit(1).await else {
            break;
        };
        record_latency(
            &mut totals.delay.borrow_mut(),
            Instant::now().saturating_duration_since(intended),
        );
        totals.outstanding.set(totals.outstanding.get() + 1);
        let (run, totals) = (run.clone(), totals.clone());
        glommio::spawn_local(async move {
            let (batch, queue) = batch_at(&run, index);
            match run.client.produce_batch(&run.topic, queue, &batch).await {
                Ok(reply) => record_ack(&totals, intended, reply.count),
                Err(e) => record_error(&totals, queue, e),
            }
            drop(slot);
            totals.outstanding.set(totals.outstanding.get() - 1);
            totals.settled.notify(usize::MAX);
        })
        .detach();
    }
    while totals.outstanding.get() > 0 {
        let settled = totals.settled.listen();
        if totals.outstanding.get() == 0 {
            break;
        }
        settled.await;
    }
}

/// One closed loop: take the producer's next batch, send it, wait for the ack, repeat.
async fn worker(run: Rc<ProducerRun>, totals: Rc<Totals>) {
    loop {
        if totals.stop.borrow().is_some() {
            return;
        }
        let index = run.next_batch.get();
        if index >= run.batches {
            return;
        }
        run.next_batch.set(index + 1);
        let (batch, queue) = batch_at(&run, index);
        let sent = Instant::now();
        match run.client.produce_batch(&run.topic, queue, &batch).await {
            Ok(reply) => record_ack(&totals, sent, reply.count),
            Err(e) => record_error(&totals, queue, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, producers) in [(10u64, 3u32), (2, 5), (100, 1), (7, 7)] {
            let shares: Vec<u64> = (0..producers).map(|p| share(total, producers, p)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{total}/{producers}");
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(max - min <= 1);
        }
    }

    #[test]
    fn queue_assignment() {
        assert_eq!(queues_for(0, 8, 8), (0..8).collect::<Vec<_>>());
        assert_eq!(queues_for(1, 2, 8), vec![2, 3]);
        assert_eq!(queues_for(3, 3, 8), vec![1, 2, 3]);
        assert_eq!(queues_for(5, 1, 4), vec![1]);
    }

    #[test]
    fn payload_is_deterministic_and_varied() {
        let a = payload_bytes(1000, 1);
        assert_eq!(a.len(), 1000);
        assert_eq!(a, payload_bytes(1000, 1));
        assert_ne!(a, payload_bytes(1000, 2));
        let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
        assert!(distinct.len() > 200);
        assert!(payload_bytes(0, 1).is_empty());
        assert_eq!(payload_bytes(3, 1).len(), 3);
    }

    #[test]
    fn missing_broker_is_a_client_error() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let args = ProduceArgs {
            broker: addr,
            topic: "t".into(),
            messages: 10,
            size: 10,
            batch: 1,
            producers: 1,
            queues_per_producer: None,
            in_flight: 1,
            json: None,
            cpu: None,
            timeout_ms: 1000,
            max_errors: 10,
            spin_us: 0,
            rate: 0.0,
            peer: None,
            peer_cpu: None,
        };
        assert!(matches!(run_produce(&args), Err(BenchError::Client(_))));
    }
}
