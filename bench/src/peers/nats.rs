//! The NATS JetStream driver: starts `nats-server -js` on loopback with file storage in a fresh
//! directory, creates a stream for the topic, then publishes `--messages` messages in groups of
//! `--batch`: a group's publishes go out back to back and the group is timed from the first
//! publish to the last JetStream ack, one group in flight — the same unit as a shardmq batch.
//! Runs a current-thread tokio runtime on the calling (pinned) thread, since the client is
//! tokio's; the server is stopped at the end, also on error.

use std::ffi::OsString;
use std::time::Instant;

use async_nats::jetstream;

use crate::args::ProduceArgs;
use crate::error::BenchError;
use crate::produce::payload_bytes;
use crate::report::{new_histogram, record_latency, RateSeries, Report};

use super::{produce_report, PeerServer};

fn start_server(cpu: Option<usize>) -> Result<PeerServer, BenchError> {
    PeerServer::start("nats-server", cpu, &[], |port, dir| {
        let mut args: Vec<OsString> = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]
            .iter()
            .map(OsString::from)
            .collect();
        args.push(dir.as_os_str().to_owned());
        args
    })
}

fn nats_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::InvalidArgs(format!("nats: {e}"))
}

/// Runs the produce workload against a NATS JetStream it starts and stops itself.
pub fn run_produce(args: &ProduceArgs) -> Result<Report, BenchError> {
    args.validate()?;
    let server = start_server(args.peer_cpu)?;
    if let Some(cpu) = args.cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(nats_error)?;
    let report = runtime.block_on(produce(args, server.port));
    drop(server);
    report
}

async fn produce(args: &ProduceArgs, port: u16) -> Result<Report, BenchError> {
    let client = async_nats::connect(format!("127.0.0.1:{port}"))
        .await
        .map_err(nats_error)?;
    let js = jetstream::new(client);
    let subject = args.topic.clone();
    js.create_stream(jetstream::stream::Config {
        name: format!(
            "bench_{}",
            args.topic
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ),
        subjects: vec![subject.clone()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(nats_error)?;
    let payload = bytes::Bytes::from(payload_bytes(args.size, 0x5eed));
    let mut histogram = new_histogram();
    let series = RateSeries::default();
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    while sent < args.messages {
        let count = u64::from(args.batch).min(args.messages - sent);
        let began = Instant::now();
        let mut acks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            acks.push(
                js.publish(subject.clone(), payload.clone())
                    .await
                    .map_err(nats_error)?,
            );
        }
        for ack in acks {
            if let Err(e) = ack.await {
                errors += 1;
                if errors <= 5 {
                    tracing::warn!("nats publish failed: {e}");
                }
            }
        }
        let now = Instant::now();
        record_latency(&mut histogram, now - began);
        series.add(now - start, count);
        sent += count;
    }
    Ok(produce_report(
        "nats-jetstream",
        args,
        sent,
        errors,
        start.elapsed(),
        &histogram,
        &series,
    ))
}
