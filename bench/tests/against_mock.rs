//! Runs `run_produce` and `run_consume` end to end against the client crate's in-memory mock
//! broker (shared by path, so there is one mock), which runs on its own glommio executor thread.

#[path = "../../client/tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use shardmq_bench::{run_consume, run_produce, BenchError, BenchKind, ConsumeArgs, ProduceArgs};
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

fn produce_args(broker: &str, topic: &str) -> ProduceArgs {
    ProduceArgs {
        broker: broker.into(),
        topic: topic.into(),
        messages: 1003,
        size: 100,
        batch: 10,
        producers: 2,
        queues_per_producer: None,
        in_flight: 3,
        duration_s: None,
        warmup_s: 0.0,
        threads: 2,
        cpus: Vec::new(),
        json: None,
        cpu: None,
        timeout_ms: 5_000,
        max_errors: 10,
        spin_us: 0,
        rate: 0.0,
        peer: None,
        peer_cpu: None,
        peer_queues: 8,
        linger_us: None,
    }
}

fn consume_args(broker: &str, topic: &str, messages: u64) -> ConsumeArgs {
    ConsumeArgs {
        broker: broker.into(),
        topic: topic.into(),
        messages,
        batch_bytes: 64 << 10,
        max_messages: 100,
        wait_ms: 100,
        idle_timeout_ms: 500,
        json: None,
        cpu: None,
        timeout_ms: 5_000,
        max_errors: 10,
        spin_us: 0,
        peer: None,
        peer_cpu: None,
        peer_queues: 8,
        size: 1024,
        fill_batch: 100,
    }
}

#[test]
fn produce_then_consume_everything() {
    let (addr, stop, thread) = start_mock(&[("bench", 4)]);
    let dir = std::env::temp_dir().join(format!("shardmq-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("produce.json");

    let report = run_produce(&ProduceArgs {
        json: Some(json.clone()),
        ..produce_args(&addr, "bench")
    })
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

    let report = run_consume(&consume_args(&addr, "bench", 1003)).unwrap();
    assert_eq!(report.kind, BenchKind::Consume);
    assert_eq!(report.messages, 1003);
    assert_eq!(report.bytes, 100_300);
    assert_eq!(report.message_size, 100);

    // Asking for more than there is ends, after the idle timeout, as Incomplete with a report.
    match run_consume(&consume_args(&addr, "bench", 2000)) {
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
    let err = run_produce(&produce_args(&addr, "nosuch")).unwrap_err();
    assert!(matches!(err, BenchError::TopicNotFound(_)), "{err}");
    assert!(err.to_string().contains("does not exist"));

    std::fs::remove_dir_all(&dir).unwrap();
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}
