//! Topics end to end, through `shardmq admin --json` and the Rust client against a real broker
//! with two shards: create, status per queue, update (more queues, permissions), delete and
//! re-create (nothing old is served, before and after a restart), auto-creation on and off,
//! RocketMQ's name rules, and the admin tool's exit codes.

mod harness;

use harness::{admin_json, data_dir, record, run, Broker};
use shardmq_client::{Client, ClientError};
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::ErrorCode;

fn produce(addr: &str, topic: &'static str, queue: u32, n: u64) -> Result<u64, ClientError> {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "producer").await?;
        let records: Vec<_> = (0..n).map(record).collect();
        Ok(client
            .produce_batch(topic, queue, &encode_batch(&records))
            .await?
            .base_offset)
    })
}

/// The payloads of queue `queue` from offset 0.
fn pull_all(addr: &str, topic: &'static str, queue: u32) -> Result<Vec<Vec<u8>>, ClientError> {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "consumer").await?;
        let pulled = client.pull(topic, queue, 0, 1000, 1 << 20, 0).await?;
        Ok(pulled
            .to_owned_records()?
            .into_iter()
            .map(|(_, r)| r.payload)
            .collect())
    })
}

fn queue_maxima(status: &serde_json::Value) -> Vec<u64> {
    status["queueStatus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["max"].as_u64().unwrap())
        .collect()
}

#[test]
fn create_status_update_and_permissions() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.as_str();
    let created = admin_json(addr, &["topic", "create", "--name", "t", "--queues", "4"]).unwrap();
    assert_eq!(
        (created["queues"].as_u64(), created["perm"].as_u64()),
        (Some(4), Some(6))
    );
    for queue in 0..4 {
        produce(addr, "t", queue, u64::from(queue) + 1).unwrap();
    }
    let status = admin_json(addr, &["topic", "status", "--name", "t"]).unwrap();
    assert_eq!(queue_maxima(&status), vec![1, 2, 3, 4]);
    let shards: Vec<u64> = status["queueStatus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["shard"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..4)
        .map(|q| u64::from(shardmq_protocol::routing::shard_for_queue("t", q, 2)))
        .collect();
    assert_eq!(
        shards, expected,
        "each queue is reported by the shard that owns it"
    );

    // More queues: the new ones work; fewer is refused with the reason.
    admin_json(addr, &["topic", "update", "--name", "t", "--queues", "6"]).unwrap();
    assert_eq!(produce(addr, "t", 5, 2).unwrap(), 0);
    let (code, err) =
        admin_json(addr, &["topic", "update", "--name", "t", "--queues", "3"]).unwrap_err();
    assert_eq!(code, 1);
    assert!(err.contains("never loses queues"), "{err}");

    // Read only: produce refused, pull served. Write only: the reverse.
    admin_json(addr, &["topic", "update", "--name", "t", "--perm", "4"]).unwrap();
    let refused = produce(addr, "t", 0, 1).unwrap_err();
    assert!(refused.is_code(ErrorCode::NoPermission), "{refused}");
    assert_eq!(pull_all(addr, "t", 0).unwrap().len(), 1);
    admin_json(addr, &["topic", "update", "--name", "t", "--perm", "2"]).unwrap();
    let refused = pull_all(addr, "t", 0).unwrap_err();
    assert!(refused.is_code(ErrorCode::NoPermission), "{refused}");
    produce(addr, "t", 0, 1).unwrap();
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn a_deleted_topic_created_again_serves_nothing_old_even_after_a_restart() {
    let dir = data_dir();
    let flags = ["--shards", "2", "--auto-create-topics", "false"];
    let broker = Broker::start(dir.path(), &flags);
    let addr = broker.addr.clone();
    let old = admin_json(
        &addr,
        &["topic", "create", "--name", "gone", "--queues", "2"],
    )
    .unwrap();
    for queue in 0..2 {
        produce(&addr, "gone", queue, 5).unwrap();
    }
    admin_json(&addr, &["topic", "delete", "--name", "gone"]).unwrap();
    let listed = admin_json(&addr, &["topic", "list"]).unwrap();
    assert!(listed.as_array().unwrap().is_empty(), "{listed}");
    let missing = produce(&addr, "gone", 0, 1).unwrap_err();
    assert!(missing.is_code(ErrorCode::TopicNotFound), "{missing}");
    let old_id = old["id"].as_u64().unwrap();
    let index_files = |id: u64| -> usize {
        (0..2)
            .flat_map(|k| {
                std::fs::read_dir(dir.path().join(format!("shards/{k}/index")))
                    .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{id}-"))
            })
            .count()
    };
    assert_eq!(
        index_files(old_id),
        0,
        "the deleted topic's indexes are freed"
    );

    let again = admin_json(
        &addr,
        &["topic", "create", "--name", "gone", "--queues", "2"],
    )
    .unwrap();
    assert!(again["id"].as_u64().unwrap() > old_id, "a new id");
    for queue in 0..2 {
        assert!(pull_all(&addr, "gone", queue).unwrap().is_empty());
    }
    assert_eq!(
        produce(&addr, "gone", 1, 1).unwrap(),
        0,
        "offsets start over"
    );
    assert_eq!(broker.stop(), Some(0));

    // A restart that rescans the whole log (no checkpoints) brings nothing back to life.
    for k in 0..2 {
        std::fs::remove_file(dir.path().join(format!("shards/{k}/checkpoint"))).unwrap();
    }
    let broker = Broker::start(dir.path(), &flags);
    let addr = broker.addr.clone();
    assert!(pull_all(&addr, "gone", 0).unwrap().is_empty());
    assert_eq!(pull_all(&addr, "gone", 1).unwrap().len(), 1);
    assert_eq!(
        index_files(old_id),
        0,
        "a rescan does not resurrect the old indexes"
    );
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn auto_creation_names_and_exit_codes() {
    let dir = data_dir();
    let broker = Broker::start(
        dir.path(),
        &["--shards", "2", "--default-topic-queues", "3"],
    );
    let addr = broker.addr.as_str();
    produce(addr, "fresh", 2, 1).unwrap();
    let status = admin_json(addr, &["topic", "status", "--name", "fresh"]).unwrap();
    assert_eq!(
        queue_maxima(&status),
        vec![0, 0, 1],
        "auto-created with 3 queues"
    );
    let beyond = produce(addr, "other", 3, 1).unwrap_err();
    assert!(beyond.is_code(ErrorCode::QueueNotFound), "{beyond}");
    for name in ["TBW102", "%RETRY%cg", "with.dot"] {
        let (code, err) = admin_json(addr, &["topic", "create", "--name", name]).unwrap_err();
        assert_eq!(code, 1, "{name}: {err}");
    }
    assert_eq!(broker.stop(), Some(0));
    let (code, err) = admin_json("127.0.0.1:1", &["topic", "list"]).unwrap_err();
    assert_eq!(code, 3, "unreachable: {err}");
}
