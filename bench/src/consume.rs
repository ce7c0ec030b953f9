//! The consume benchmark: drains every queue of a topic from its first offset, one
//! [`Consumer`] per queue, all on one pinned glommio executor.
//!
//! Every pull reply is validated before it counts: header CRC and body CRC of every batch
//! (`BatchView` validation through `PullResult::records`), the rkyv archive of its records, and
//! the reply's own invariants. A corrupt batch ends the run with [`BenchError::Corrupt`]. The run
//! ends when `--messages` records have arrived, or fails with [`BenchError::Incomplete`] after
//! `--idle-timeout-ms` without a new record. Latency is recorded per pull that returned records
//! (empty long polls would only measure `--wait-ms`); a pull that parked until data arrived
//! includes that wait, so the numbers mean most when the topic was filled beforehand.
//!
//! With `--filter-tags` / `--filter-sql` the pulls carry the filter: the broker sends only what
//! matches, and `--messages` is the count of matching messages expected.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use shardmq_client::{Client, ClientConfig, ClientError, Consumer, Filter};

use crate::args::ConsumeArgs;
use crate::engine::live::load_average;
use crate::engine::recorder::Track;
use crate::error::BenchError;
use crate::report::{BenchKind, Consumption, LatencySummary, Report};
use crate::runtime::{allowed_cpus, choose_cpu, run_pinned};

/// How often the run checks for completion and idleness.
const CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// Pause after a failed pull before the next one.
const RETRY_DELAY: Duration = Duration::from_millis(50);

/// Runs the consume benchmark on a new executor, blocking the calling thread; prints the summary,
/// writes `--json` if given (also for an incomplete run), and returns the report.
pub fn run_consume(args: &ConsumeArgs) -> Result<Report, BenchError> {
    args.validate()?;
    let result = match args.peers.peer {
        Some(peer) => crate::peers::run_consume(peer, args),
        None => {
            if args.drop_caches {
                crate::runtime::drop_page_cache(crate::runtime::DROP_CACHES_PATH.as_ref())?;
            }
            let cpu = choose_cpu(args.run.cpu, &allowed_cpus())?;
            let owned = args.clone();
            run_pinned("bench-consume", cpu, args.run.spin_us, move || {
                consume(owned)
            })?
        }
    };
    match &result {
        Ok(report) => report.publish(args.run.json.as_deref())?,
        Err(BenchError::Incomplete { report, .. }) => report.publish(args.run.json.as_deref())?,
        Err(_) => {}
    }
    result
}

/// The report of a drain run by the engine (a peer's consume run): records received, pull
/// latency per non-empty poll, `Incomplete` when fewer than the `stored` records arrived.
pub(crate) fn drain_report(
    system: &'static str,
    args: &ConsumeArgs,
    stored: u64,
    m: &crate::engine::Measured,
) -> Result<Report, BenchError> {
    let r = &m.merged;
    let polls = r.publish.histogram.len();
    let report = Report {
        messages: r.acked,
        bytes: r.acked * args.size as u64,
        elapsed: m.elapsed(),
        errors: r.errors,
        busy: r.busy,
        message_size: args.size as u64,
        batch_size: r.acked.checked_div(polls).unwrap_or(0),
        clients: args.peers.peer_queues,
        in_flight: 1,
        latency: LatencySummary::from_histogram(&r.publish.histogram),
        rate_series: r.publish.rate_series(),
        p99_series: r.publish.p99_series(),
        sent: stored,
        received: Some(r.acked),
        load_before: m.load_before,
        load_after: m.load_after,
        consumption: filtered_drain(args, stored),
        tags: args.fill_tags.clone(),
        ..Report::empty(system, BenchKind::Consume, &args.topic)
    };
    if r.acked < stored {
        return Err(BenchError::Incomplete {
            expected: stored,
            received: r.acked,
            idle_ms: args.idle_timeout_ms,
            report: Box::new(report),
        });
    }
    Ok(report)
}

/// What a filtered drain reports about its filter.
fn filtered_drain(args: &ConsumeArgs, expected: u64) -> Option<Consumption> {
    args.filter.filter().map(|f| Consumption {
        group: None,
        broadcasting: false,
        filter: Some(f.describe()),
        expected_receipts: Some(expected),
    })
}

struct Totals {
    /// Pull latency, and messages and p99 per second.
    track: RefCell<Track>,
    messages: Cell<u64>,
    bytes: Cell<u64>,
    errors: Cell<u64>,
    last_progress: Cell<Instant>,
    /// A fatal error (corruption, too many errors) that ends the run.
    fatal: RefCell<Option<BenchError>>,
    max_errors: u64,
    start: Instant,
}

async fn consume(args: ConsumeArgs) -> Result<Report, BenchError> {
    let config = ClientConfig {
        request_timeout: Duration::from_millis(args.run.timeout_ms),
        credentials: crate::native::credentials()?,
        tls: crate::native::tls(&args.run)?,
        ..ClientConfig::default()
    };
    let client = Client::connect_with(&args.broker, "shardmq-bench-consume", config).await?;
    let topic = client
        .topic(&args.topic)
        .await?
        .ok_or_else(|| BenchError::TopicNotFound(args.topic.clone()))?;
    let filter = args
        .filter
        .filter()
        .map_or_else(Filter::all, |f| crate::native::client_filter(&f));
    let mut consumers = Vec::new();
    for q in 0..topic.queues {
        // Open each shard's connection and learn where each queue starts before the clock runs.
        let start = client.queue_offsets(&topic.name, q).await?.min_offset;
        consumers.push(
            Consumer::new(&client, &topic.name, q, start)
                .with_max_bytes(args.batch_bytes)
                .with_filter(filter.clone()),
        );
    }

    let load_before = load_average();
    let start = Instant::now();
    let totals = Rc::new(Totals {
        track: RefCell::new(Track::default()),
        messages: Cell::new(0),
        bytes: Cell::new(0),
        errors: Cell::new(0),
        last_progress: Cell::new(start),
        fatal: RefCell::new(None),
        max_errors: args.run.max_errors,
        start,
    });
    let tasks: Vec<_> = consumers
        .into_iter()
        .map(|c| glommio::spawn_local(drain(c, totals.clone(), args.max_messages, args.wait_ms)))
        .collect();
    let idle = Duration::from_millis(args.idle_timeout_ms);
    let complete = loop {
        if totals.fatal.borrow().is_some() {
            break false;
        }
        if totals.messages.get() >= args.messages {
            break true;
        }
        if totals.last_progress.get().elapsed() >= idle {
            break false;
        }
        glommio::timer::Timer::new(CHECK_INTERVAL).await;
    };
    // Dropping the tasks cancels the pulls still parked in long polls.
    drop(tasks);
    if let Some(fatal) = totals.fatal.borrow_mut().take() {
        return Err(fatal);
    }
    let messages = totals.messages.get();
    let bytes = totals.bytes.get();
    let track = totals.track.borrow();
    // One latency sample per non-empty pull.
    let pulls = track.histogram.len();
    let report = Report {
        messages,
        bytes,
        elapsed: totals.last_progress.get() - start,
        errors: totals.errors.get(),
        busy: 0,
        message_size: bytes.checked_div(messages).unwrap_or(0),
        batch_size: messages.checked_div(pulls).unwrap_or(0),
        clients: topic.queues,
        in_flight: 1,
        latency: LatencySummary::from_histogram(&track.histogram),
        rate_series: track.rate_series(),
        p99_series: track.p99_series(),
        sent: messages,
        received: Some(messages),
        load_before,
        load_after: load_average(),
        consumption: filtered_drain(&args, args.messages),
        ..Report::empty("shardmq", BenchKind::Consume, &topic.name)
    };
    if complete {
        Ok(report)
    } else {
        Err(BenchError::Incomplete {
            expected: args.messages,
            received: messages,
            idle_ms: args.idle_timeout_ms,
            report: Box::new(report),
        })
    }
}

/// Pulls one queue until cancelled or a fatal error.
async fn drain(mut consumer: Consumer, totals: Rc<Totals>, max_messages: u32, wait_ms: u32) {
    loop {
        let sent = Instant::now();
        let polled = consumer.poll(max_messages, wait_ms).await;
        let now = Instant::now();
        let counted = polled.and_then(|pulled| {
            let mut messages = 0u64;
            let mut bytes = 0u64;
            for record in pulled.records()? {
                messages += 1;
                bytes += record.payload().len() as u64;
            }
            Ok((messages, bytes))
        });
        match counted {
            Ok((messages, bytes)) => {
                if messages > 0 {
                    let second = (now - totals.start).as_secs() as usize;
                    totals
                        .track
                        .borrow_mut()
                        .record(second, now - sent, messages);
                    totals.messages.set(totals.messages.get() + messages);
                    totals.bytes.set(totals.bytes.get() + bytes);
                    totals.last_progress.set(now);
                }
            }
            Err(e @ ClientError::Protocol(_)) => {
                totals
                    .fatal
                    .borrow_mut()
                    .get_or_insert(BenchError::Corrupt(e));
                return;
            }
            Err(e) => {
                let errors = totals.errors.get() + 1;
                totals.errors.set(errors);
                if errors <= 5 {
                    tracing::warn!(queue = consumer.queue_id(), "pull failed: {e}");
                }
                if errors >= totals.max_errors {
                    totals
                        .fatal
                        .borrow_mut()
                        .get_or_insert(BenchError::TooManyErrors {
                            count: errors,
                            last: e.to_string(),
                        });
                    return;
                }
                glommio::timer::Timer::new(RETRY_DELAY).await;
            }
        }
    }
}
