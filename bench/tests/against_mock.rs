//! Runs `run_produce` and `run_consume` end to end against the client crate's in-memory mock
//! broker (shared by path, so there is one mock), which runs on its own glommio executor thread.

#[path = "../../client/tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use shardmq_bench::{
    run_consume, run_produce, BenchArgs, BenchCommand, BenchError, BenchKind, ConsumeArgs,
    ProduceArgs,
};
use shardmq_client::Client;

/// Starts the mock with `topics` created, returns its address and a stop flag.
fn start_mock(
    topics: &'static [(&'static str, u32)],
) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        support::run(move || async move {
            let (addr, _state) = support::start();
            let client = Client::connect(&addr, "setup").await.unwrap();
            for (name, queues) in topics {
                client.create_topic(name, *queues).await.unwrap();
            }
            drop(client);
            tx.send(addr).unwrap();
            while !flag.load(Ordering::Relaxed) {
                glommio::timer::Timer::new(Duration::from_millis(10)).await;
            }
        })
    });
    (rx.recv().unwrap(), stop, thread)
}

/// `shardmq bench --broker <broker> <args…>`, parsed as the binary parses it.
fn command(broker: &str, args: &[&str]) -> BenchCommand {
    let full: Vec<&str> = ["--broker", broker].iter().chain(args).copied().collect();
    BenchArgs::parse_command(&full).unwrap()
}

/// 1003 records of 100 bytes in batches of 10, from 2 producers on 2 executors, 3 in flight.
fn produce_args(broker: &str, topic: &str, extra: &[&str]) -> ProduceArgs {
    let base = [
        "produce",
        "--topic",
        topic,
        "--messages",
        "1003",
        "--size",
        "100",
        "--batch",
        "10",
        "--producers",
        "2",
        "--threads",
        "2",
        "--in-flight",
        "3",
        "--timeout-ms",
        "5000",
        "--max-errors",
        "10",
    ];
    match command(broker, &[&base[..], extra].concat()) {
        BenchCommand::Produce(args) => args,
        other => panic!("{other:?}"),
    }
}

/// `idle_ms`: how long the consumer may see nothing before it reports the run incomplete.
fn consume_args(broker: &str, topic: &str, messages: u64, idle_ms: u64) -> ConsumeArgs {
    let messages = messages.to_string();
    let idle_ms = idle_ms.to_string();
    let args = [
        "consume",
        "--topic",
        topic,
        "--messages",
        &messages,
        "--batch-bytes",
        "65536",
        "--max-messages",
        "100",
        "--wait-ms",
        "100",
        "--idle-timeout-ms",
        &idle_ms,
        "--timeout-ms",
        "5000",
        "--max-errors",
        "10",
    ];
    match command(broker, &args) {
        BenchCommand::Consume(args) => args,
        other => panic!("{other:?}"),
    }
}

#[test]
fn produce_then_consume_everything() {
    let (addr, stop, thread) = start_mock(&[("bench", 4)]);
    let dir = std::env::temp_dir().join(format!("shardmq-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("produce.json");

    let report = run_produce(&produce_args(
        &addr,
        "bench",
        &["--json", json.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(report.kind, BenchKind::Produce);
    assert_eq!(report.messages, 1003);
    assert_eq!(report.bytes, 100_300);
    assert_eq!(report.errors, 0);
    // 1003 messages over 2 producers in batches of 10: 51 + 51 batches.
    assert_eq!(report.latency.count, 102);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(written["messages"], 1003);
    assert_eq!(written["producers"], 2);

    let report = run_consume(&consume_args(&addr, "bench", 1003, 10_000)).unwrap();
    assert_eq!(report.kind, BenchKind::Consume);
    assert_eq!(report.messages, 1003);
    assert_eq!(report.bytes, 100_300);
    assert_eq!(report.message_size, 100);

    // Asking for more than there is ends, after the idle timeout, as Incomplete with a report.
    match run_consume(&consume_args(&addr, "bench", 2000, 500)) {
        Err(BenchError::Incomplete {
            expected,
            received,
            report,
            ..
        }) => {
            assert_eq!((expected, received), (2000, 1003));
            assert_eq!(report.messages, 1003);
        }
        other => panic!("{other:?}"),
    }

    // A missing topic is a clear error, not a created topic.
    let err = run_produce(&produce_args(&addr, "nosuch", &[])).unwrap_err();
    assert!(matches!(err, BenchError::TopicNotFound(_)), "{err}");
    assert!(err.to_string().contains("does not exist"));

    std::fs::remove_dir_all(&dir).unwrap();
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}
