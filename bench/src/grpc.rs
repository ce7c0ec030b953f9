//! `shardmq bench grpc-produce`: RocketMQ 5.x SendMessage over gRPC, as the official clients send
//! it (one message per request, the clients' headers and system properties), against any
//! `apache.rocketmq.v2.MessagingService`: shardmq's `--grpc-listen` or a RocketMQ proxy
//! (rocketmq-rust's `rocketmq-proxy-rust`), so the two are measured by the same load.
//!
//! Closed loop: `--in-flight` sends outstanding at once over `--connections` HTTP/2 connections
//! (the 5.x clients multiplex every call of a client over one), each waiting for its answer
//! before the next. Latency is send to answer; a send whose status is not OK is an error.
//! Runs on a tokio runtime of its own thread (tonic), not on the bench's glommio executors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use shardmq_grpc_proto::v2::messaging_service_client::MessagingServiceClient;
use shardmq_grpc_proto::v2::{self as pb};
use tonic::transport::Channel;

use crate::error::BenchError;
use crate::report::{BenchKind, LatencySummary, Report};

#[derive(Args, Debug, Clone, PartialEq)]
pub struct GrpcProduceArgs {
    /// The gRPC endpoint, HOST:PORT (shardmq's `grpc=` address, a proxy's 8081).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub endpoint: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Body bytes per message.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Sends outstanding at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub in_flight: u32,
    /// HTTP/2 connections the sends are spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub connections: u32,
    /// What the report calls the system measured.
    #[arg(long, value_enum, default_value = "shardmq")]
    pub system: GrpcSystem,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrpcSystem {
    Shardmq,
    RocketmqRustProxy,
}

impl GrpcSystem {
    fn name(self) -> &'static str {
        match self {
            GrpcSystem::Shardmq => "shardmq-grpc",
            GrpcSystem::RocketmqRustProxy => "rocketmq-rust-proxy",
        }
    }
}

/// Runs the benchmark; prints the summary and writes `--json`.
pub fn run_grpc_produce(args: &GrpcProduceArgs) -> Result<Report, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::InvalidArgs(format!("no tokio runtime: {e}")))?;
    let report = runtime.block_on(produce(args))?;
    println!("{}", report.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json().to_string())
            .map_err(|e| BenchError::InvalidArgs(format!("{}: {e}", path.display())))?;
    }
    Ok(report)
}

fn request<T>(message: T, client_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let headers = request.metadata_mut();
    let now = chrono_like_now();
    for (name, value) in [
        ("x-mq-protocol", "v2".to_string()),
        ("x-mq-client-id", client_id.to_string()),
        ("x-mq-language", "RUST".to_string()),
        ("x-mq-client-version", "shardmq-bench".to_string()),
        ("x-mq-date-time", now),
    ] {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    request.set_timeout(Duration::from_secs(10));
    request
}

/// `yyyyMMddTHHmmssZ` of now (the clients' `x-mq-date-time`).
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    date_time(secs)
}

fn date_time(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn message(topic: &str, body: &[u8], id: u64) -> pb::Message {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pb::Message {
        topic: Some(pb::Resource {
            name: topic.to_string(),
            ..pb::Resource::default()
        }),
        user_properties: Default::default(),
        system_properties: Some(pb::SystemProperties {
            message_id: format!("01{:016X}{:016X}", std::process::id(), id),
            born_timestamp: Some(prost_types::Timestamp {
                seconds: now.as_secs() as i64,
                nanos: now.subsec_nanos() as i32,
            }),
            born_host: "127.0.0.1".into(),
            body_encoding: pb::Encoding::Identity as i32,
            message_type: pb::MessageType::Normal as i32,
            ..pb::SystemProperties::default()
        }),
        body: body.to_vec(),
    }
}

/// One sender's results.
struct Sent {
    latency: Histogram<u64>,
    messages: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn sender(
    mut client: MessagingServiceClient<Channel>,
    args: Arc<GrpcProduceArgs>,
    next: Arc<AtomicU64>,
    client_id: String,
) -> Sent {
    let body = vec![b'x'; args.size];
    let mut sent = Sent {
        latency: Histogram::new(3).expect("3 significant figures"),
        messages: 0,
        errors: 0,
        first_error: None,
    };
    loop {
        let id = next.fetch_add(1, Ordering::Relaxed);
        if id >= args.messages {
            return sent;
        }
        let send = pb::SendMessageRequest {
            messages: vec![message(&args.topic, &body, id)],
        };
        let started = Instant::now();
        let answer = client.send_message(request(send, &client_id)).await;
        let code = answer
            .as_ref()
            .map(|a| a.get_ref().status.as_ref().map_or(0, |s| s.code));
        match code {
            Ok(c) if c == pb::Code::Ok as i32 => {
                let us = started.elapsed().as_micros() as u64;
                let _ = sent.latency.record(us.max(1));
                sent.messages += 1;
            }
            other => {
                sent.errors += 1;
                sent.first_error
                    .get_or_insert_with(|| format!("{other:?} {answer:?}"));
            }
        }
    }
}

async fn produce(args: &GrpcProduceArgs) -> Result<Report, BenchError> {
    let endpoint = format!("http://{}", args.endpoint);
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        let channel = Channel::from_shared(endpoint.clone())
            .map_err(|e| BenchError::InvalidArgs(format!("--endpoint: {e}")))?
            .connect()
            .await
            .map_err(|e| BenchError::InvalidArgs(format!("cannot reach {endpoint}: {e}")))?;
        clients.push(MessagingServiceClient::new(channel));
    }
    let client_id = format!("bench@{}@0", std::process::id());
    let args = Arc::new(args.clone());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.in_flight as usize)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            tokio::spawn(sender(
                client,
                args.clone(),
                next.clone(),
                client_id.clone(),
            ))
        })
        .collect();
    let mut latency = Histogram::<u64>::new(3).expect("3 significant figures");
    let (mut messages, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        let sent = task
            .await
            .map_err(|e| BenchError::InvalidArgs(format!("a sender failed: {e}")))?;
        let _ = latency.add(&sent.latency);
        messages += sent.messages;
        errors += sent.errors;
        first_error = first_error.or(sent.first_error);
    }
    let elapsed = started.elapsed();
    if let Some(error) = &first_error {
        eprintln!("{errors} sends failed; the first: {error}");
    }
    Ok(Report {
        messages,
        bytes: messages * args.size as u64,
        elapsed,
        errors,
        message_size: args.size as u64,
        batch_size: 1,
        clients: args.connections,
        in_flight: args.in_flight,
        latency: LatencySummary::from_histogram(&latency),
        sent: messages + errors,
        ..Report::empty(args.system.name(), BenchKind::Produce, &args.topic)
    })
}

#[cfg(test)]
mod tests {
    /// Vectors from Python's `datetime.fromtimestamp(s, timezone.utc)`.
    #[test]
    fn the_date_header_is_the_clients_utc_format() {
        assert_eq!(super::date_time(1_764_842_410), "20251204T100010Z");
        assert_eq!(super::date_time(951_782_400 + 86_399), "20000229T235959Z");
        assert_eq!(super::date_time(0), "19700101T000000Z");
    }
}
