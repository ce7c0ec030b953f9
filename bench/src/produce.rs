//! The produce and end-to-end benchmarks against shardmq: arguments into an
//! [`engine::Workload`](crate::engine::Workload), the [`Native`](crate::native::Native) driver,
//! and the merged measurements into a [`Report`]. The engine (`crate::engine`) does the work:
//! producers over `--threads` executors, closed or open loop, warm-up, duration, consumers.
//!
//! What is measured: per batch, from just before the request is written (open loop: from its
//! intended send time) to the ack; the batch is encoded once up front and resent (the broker
//! stamps its own copy), so the broker and the wire are measured, not the client's encoding.
//! End-to-end runs encode every batch at send time with stamped payloads instead.

use std::time::Duration;

use crate::args::{EndToEndArgs, ProduceArgs};
use crate::end_to_end::STAMP_BYTES;
use crate::engine::{self, Measured, Workload};
use crate::error::BenchError;
use crate::native::Native;
use crate::report::{BenchKind, Consumption, LatencySummary, Report};

/// Runs the produce benchmark, blocking the calling thread; prints the summary, writes `--json`
/// if given, and returns the report.
pub fn run_produce(args: &ProduceArgs) -> Result<Report, BenchError> {
    let workload = args.workload(None)?;
    if let Some(peer) = args.peers.peer {
        let report = crate::peers::run_workload(peer, args, &workload, 0)?;
        report.publish(args.run.json.as_deref())?;
        return Ok(report);
    }
    let (broker, timeout) = native_target(args);
    let linger = args.linger_us.map(Duration::from_micros);
    let credentials = crate::native::credentials()?;
    let tls = crate::native::tls(&args.run)?;
    let config = shardmq_client::ClientConfig {
        credentials: credentials.clone(),
        tls: tls.clone(),
        ..Default::default()
    };
    let counters = || log_counters(&broker, &config, args);
    let before = counters();
    let target = broker.clone();
    let measured = engine::run(&workload, move |topic| {
        Native::new(&target, topic, timeout, 0)
            .with_linger(linger)
            .with_credentials(credentials.clone())
            .with_tls(tls.clone())
    })?;
    let log_io = before.zip(counters()).and_then(|(b, a)| a.since(&b));
    let report = Report {
        client_linger_us: args.linger_us,
        log_io,
        ..workload_report("shardmq", &args.topic, &workload, &measured)
    };
    report.publish(args.run.json.as_deref())?;
    Ok(report)
}

/// The end-to-end benchmark: the produce workload with every record stamped with its send time
/// and a consumer executor measuring send-to-receipt latency per record.
pub fn run_end_to_end(args: &EndToEndArgs) -> Result<Report, BenchError> {
    if args.produce.size < STAMP_BYTES {
        return Err(BenchError::InvalidArgs(format!(
            "--size must be at least {STAMP_BYTES} for end-to-end stamps"
        )));
    }
    let workload = args.workload()?;
    if let Some(peer) = args.produce.peers.peer {
        let report = crate::peers::run_workload(peer, &args.produce, &workload, args.wait_ms)?;
        report.publish(args.produce.run.json.as_deref())?;
        return Ok(report);
    }
    let (broker, timeout) = native_target(&args.produce);
    let (wait_ms, linger) = (
        args.wait_ms,
        args.produce.linger_us.map(Duration::from_micros),
    );
    let credentials = crate::native::credentials()?;
    let tls = crate::native::tls(&args.produce.run)?;
    let measured = engine::run(&workload, move |topic| {
        Native::new(&broker, topic, timeout, wait_ms)
            .with_linger(linger)
            .with_credentials(credentials.clone())
            .with_tls(tls.clone())
    })?;
    let report = Report {
        client_linger_us: args.produce.linger_us,
        ..workload_report("shardmq", &args.produce.topic, &workload, &measured)
    };
    if let Some(expected) = measured.expected_receipts {
        if report.received < Some(expected) {
            tracing::warn!(
                received = report.received,
                expected,
                "consumers received fewer records than were acknowledged for them"
            );
        }
    }
    report.publish(args.produce.run.json.as_deref())?;
    Ok(report)
}

/// The broker's log counters now (`crate::log_io`); a broker that cannot tell (an older one,
/// an account without the right) costs the report that line, not the run.
fn log_counters(
    broker: &str,
    config: &shardmq_client::ClientConfig,
    args: &ProduceArgs,
) -> Option<crate::log_io::LogCounters> {
    let cpu = crate::runtime::choose_cpu(args.run.cpu, &crate::runtime::allowed_cpus()).ok()?;
    match crate::log_io::read_blocking(broker, config.clone(), cpu) {
        Ok(counters) => Some(counters),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the broker's log counters; the report goes without them");
            None
        }
    }
}

fn native_target(args: &ProduceArgs) -> (String, Duration) {
    (
        args.broker.clone(),
        Duration::from_millis(args.run.timeout_ms),
    )
}

/// The report of a produce or end-to-end workload run by the engine against `system`.
pub(crate) fn workload_report(
    system: &'static str,
    topic: &str,
    w: &Workload,
    m: &Measured,
) -> Report {
    let r = &m.merged;
    let open_loop = w.rate > 0.0;
    let end_to_end = w.end_to_end();
    Report {
        messages: r.acked,
        bytes: r.acked * w.size as u64,
        elapsed: m.elapsed(),
        errors: r.errors,
        busy: r.busy,
        message_size: w.size as u64,
        batch_size: u64::from(w.batch),
        clients: w.producers,
        in_flight: w.in_flight,
        latency: LatencySummary::from_histogram(&r.publish.histogram),
        publish_delay: open_loop.then(|| LatencySummary::from_histogram(&r.delay.histogram)),
        target_rate: open_loop.then_some(w.rate),
        end_to_end: end_to_end.then(|| LatencySummary::from_histogram(&r.end_to_end.histogram)),
        rate_series: r.publish.rate_series(),
        p99_series: r.publish.p99_series(),
        end_to_end_p99_series: r.end_to_end.p99_series(),
        threads: w.producer_cpus.len() as u32,
        sent: r.sent,
        warmup_messages: r.warmup_acked,
        warmup: w.warmup,
        planned_duration: w.duration,
        received: end_to_end.then_some(r.received),
        load_before: m.load_before,
        load_after: m.load_after,
        tags: (!w.tags.is_empty()).then(|| w.tags.describe()),
        consumption: w.group.as_ref().map(|g| Consumption {
            group: Some(g.name.clone()),
            broadcasting: g.broadcasting,
            filter: g.filter.as_ref().map(|f| f.describe()),
            expected_receipts: m.expected_receipts,
        }),
        ..Report::empty(
            system,
            if end_to_end {
                BenchKind::EndToEnd
            } else {
                BenchKind::Produce
            },
            topic,
        )
    }
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
        // Port 1 (tcpmux) is privileged and unused here: a freed ephemeral port could be taken by
        // a test running beside this one.
        let addr = "127.0.0.1:1".to_string();
        let command = crate::BenchArgs::parse_command(&[
            "--broker",
            &addr,
            "produce",
            "--topic",
            "t",
            "--messages",
            "10",
            "--timeout-ms",
            "1000",
        ])
        .unwrap();
        let crate::BenchCommand::Produce(args) = command else {
            panic!("not produce");
        };
        assert!(matches!(run_produce(&args), Err(BenchError::Client(_))));
    }
}
