//! Retention on a running broker: with small segments and a size limit, old segments are
//! deleted while producers write; the queue's minimum offset moves; a pull below it, native or
//! RocketMQ, is answered with the new minimum (never an error a consumer would loop on); the
//! deletion of what a group had not consumed is logged with the group; and a restart keeps it.

mod harness;

use std::time::{Duration, Instant};

use harness::{batch_of, create_topic, run, Broker};
use shardmq_bench::peers::remoting::connection::RemotingConnection;
use shardmq_client::Client;
use shardmq_protocol::remoting::codes::{request, response};

const FLAGS: &[&str] = &[
    "--shards",
    "1",
    "--segment-size",
    "64KiB",
    "--hot-tail",
    "1MiB",
    "--write-buffer",
    "16KiB",
    "--retention-bytes",
    "256KiB",
    "--retention-interval-ms",
    "100",
];

fn produce(addr: &str, batches: u64) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "producer").await.unwrap();
        for b in 0..batches {
            let batch = batch_of(b * 10..b * 10 + 10, |seq| vec![(seq % 251) as u8; 200]);
            client.produce_batch("t", 0, &batch).await.unwrap();
        }
    })
}

fn offsets(addr: &str) -> (u64, u64) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "reader").await.unwrap();
        let o = client.queue_offsets("t", 0).await.unwrap();
        (o.min_offset, o.max_offset)
    })
}

/// A RocketMQ PULL_MESSAGE of queue 0 at `offset`: `(code, nextBeginOffset)`.
fn remoting_pull(remoting: &str, offset: u64) -> (i32, i64) {
    let addr = remoting.to_string();
    run(move || async move {
        let conn = RemotingConnection::connect(&addr, Duration::from_secs(5))
            .await
            .unwrap();
        let offset = offset.to_string();
        let header: Vec<(&'static str, String)> = [
            ("consumerGroup", "late"),
            ("topic", "t"),
            ("queueId", "0"),
            ("queueOffset", offset.as_str()),
            ("maxMsgNums", "32"),
            ("sysFlag", "4"),
            ("commitOffset", "0"),
            ("suspendTimeoutMillis", "0"),
            ("subscription", "*"),
            ("subVersion", "0"),
            ("expressionType", "TAG"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let reply = conn
            .request(request::PULL_MESSAGE, &header, &[], Duration::ZERO)
            .await
            .unwrap();
        let next = reply
            .ext_i64("nextBeginOffset")
            .unwrap_or_else(|| panic!("no nextBeginOffset: {} {:?}", reply.code, reply.remark));
        (reply.code, next)
    })
}

#[test]
fn old_segments_go_and_consumers_behind_them_move_to_the_new_minimum() {
    let dir = harness::data_dir();
    let broker = Broker::start(dir.path(), FLAGS);
    create_topic(&broker.addr, "t", 1);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "committer").await.unwrap();
        client.commit_offset("slow", "t", 0, 0).await.unwrap();
    });
    // ~2.4 MB of batches into 64 KiB segments kept under 256 KiB.
    produce(&broker.addr, 1000);
    // Settled: at most 6 segments left and the minimum unchanged over 5 polls (5 retention
    // intervals), so no pass is still deleting when the pulls below look at the minimum.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut last_min, mut stable) = (u64::MAX, 0);
    let (min, max) = loop {
        let (min, max) = offsets(&broker.addr);
        let segments = std::fs::read_dir(dir.path().join("shards/0/log"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count();
        stable = if min == last_min { stable + 1 } else { 0 };
        last_min = min;
        if (segments <= 6 && stable >= 5) || Instant::now() > deadline {
            assert!(
                segments <= 6,
                "{segments} segments of 64 KiB under a 256 KiB limit"
            );
            assert!(stable >= 5, "retention never settled: min offset {min}");
            break (min, max);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(max, 10_000);
    assert!(min > 5_000 && min % 10 == 0, "min offset {min}");

    // Native: a pull below the minimum answers nothing, with the minimum as the next offset.
    let addr = broker.addr.clone();
    let (next, first_read) = run(move || async move {
        let client = Client::connect(&addr, "late").await.unwrap();
        let below = client.pull("t", 0, 0, 100, 1 << 20, 0).await.unwrap();
        let at = client
            .pull("t", 0, below.next_offset(), 100, 1 << 20, 0)
            .await
            .unwrap();
        let first = at.records().unwrap().next().map(|r| r.offset);
        (below.next_offset(), first)
    });
    assert_eq!(next, min, "a native pull below the minimum is sent to it");
    assert_eq!(first_read, Some(min));
    // RocketMQ: PULL_OFFSET_MOVED with nextBeginOffset = the minimum, as Java's store answers
    // OFFSET_TOO_SMALL.
    let (code, next) = remoting_pull(&broker.remoting, 3);
    assert_eq!(
        (code, next),
        (response::PULL_OFFSET_MOVED, min as i64),
        "a remoting pull below the minimum"
    );

    let log = broker.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("had not consumed") && l.contains("slow")),
        "the unconsumed deletion names the group"
    );
    assert_eq!(broker.stop(), Some(0));
    let broker = Broker::start(dir.path(), FLAGS);
    let (again, max_again) = offsets(&broker.addr);
    assert!(
        again >= min,
        "the minimum went back from {min} to {again} at a restart"
    );
    assert_eq!(max_again, max);
    assert_eq!(broker.stop(), Some(0));
}
