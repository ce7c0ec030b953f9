//! `shardmq bench` consuming through consumer groups and filters, against a real broker: what
//! the report says was received is what the group model and the filter promise, the members
//! commit as they go and leave when the run ends, and a filtered drain reads only the matches.

mod harness;

use harness::{admin_json, data_dir, shardmq, Broker};

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `shardmq bench --broker addr end-to-end --topic t <args…> --json F`; the report.
fn end_to_end(addr: &str, dir: &std::path::Path, name: &str, args: &[&str]) -> serde_json::Value {
    let path = dir.join(format!("{name}.json"));
    let mut all = vec!["bench", "--broker", addr, "end-to-end", "--topic", "gbench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", path.to_str().unwrap()]);
    let out = shardmq(&all);
    assert!(out.status.success(), "{name}: {out:?}");
    json(&path)
}

/// One producer, 4000 messages in 400 batches over 8 queues, tags `a:1,b:3` per queue round:
/// rounds 0..50, tag `a` on rounds 0, 4, …, 48 — 13 rounds × 8 batches × 10 records.
const TAGGED_A: u64 = 1040;
const COMMON: &[&str] = &[
    "--messages",
    "4000",
    "--size",
    "64",
    "--batch",
    "10",
    "--rate",
    "2000",
    "--in-flight",
    "8",
    "--tags",
    "a:1,b:3",
];

#[test]
fn bench_consumes_through_groups_and_filters() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.as_str();
    admin_json(
        addr,
        &["topic", "create", "--name", "gbench", "--queues", "8"],
    )
    .unwrap();

    // Clustering over three members: every record once.
    let args = [COMMON, &["--group", "bg-c", "--consumers", "3"]].concat();
    let report = end_to_end(addr, dir.path(), "clustering", &args);
    assert_eq!(report["consumerGroup"], "bg-c");
    assert_eq!(report["messageModel"], "clustering");
    assert_eq!(report["tags"], "a:1,b:3");
    for count in ["acked", "received", "expectedReceipts", "endToEndSamples"] {
        assert_eq!(report[count], 4000, "{count} in {report}");
    }
    let described = admin_json(addr, &["group", "describe", "--group", "bg-c"]).unwrap();
    assert!(
        described["members"].as_array().unwrap().is_empty(),
        "the members left when the run ended: {described}"
    );
    let committed: u64 = described["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["committed"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        committed > 0 && committed <= 4000,
        "the members committed in their pulls: {described}"
    );

    // Broadcasting to two members: every record twice.
    let args = [
        COMMON,
        &["--group", "bg-b", "--broadcasting", "--consumers", "2"],
    ]
    .concat();
    let report = end_to_end(addr, dir.path(), "broadcasting", &args);
    assert_eq!(report["messageModel"], "broadcasting");
    for count in ["received", "expectedReceipts"] {
        assert_eq!(report[count], 8000, "{count} in {report}");
    }

    // A tag filter: only the a-tagged quarter arrives, and the bench knows how many that is.
    let args = [
        COMMON,
        &["--group", "bg-t", "--consumers", "2", "--filter-tags", "a"],
    ]
    .concat();
    let report = end_to_end(addr, dir.path(), "tags", &args);
    assert_eq!(report["filter"], "tags a");
    assert_eq!(report["acked"], 4000);
    for count in ["received", "expectedReceipts", "endToEndSamples"] {
        assert_eq!(report[count], TAGGED_A, "{count} in {report}");
    }

    // A SQL92 filter: the bench cannot count the selection; the run ends on the drain timeout
    // and reports what arrived, which is everything not tagged a.
    let args = [
        COMMON,
        &[
            "--group",
            "bg-s",
            "--consumers",
            "2",
            "--filter-sql",
            "TAGS = 'b'",
        ],
    ]
    .concat();
    let report = end_to_end(addr, dir.path(), "sql", &args);
    assert_eq!(report["filter"], "sql92 TAGS = 'b'");
    assert_eq!(report["expectedReceipts"], serde_json::Value::Null);
    assert_eq!(report["received"], 4000 - TAGGED_A, "{report}");

    let path = dir.path().join("drain.json");
    let expected = (4 * TAGGED_A).to_string();
    let drained = shardmq(&[
        "bench",
        "--broker",
        addr,
        "consume",
        "--topic",
        "gbench",
        "--messages",
        &expected,
        "--filter-tags",
        "a",
        "--idle-timeout-ms",
        "2000",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(drained.status.success(), "{drained:?}");
    let drained = json(&path);
    assert_eq!(drained["received"], 4 * TAGGED_A, "{drained}");
    assert_eq!(drained["filter"], "tags a");

    broker.stop();
}

#[test]
fn bench_refuses_group_arguments_that_cannot_work() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    let addr = broker.addr.as_str();
    for name in ["ga", "gb"] {
        admin_json(addr, &["topic", "create", "--name", name, "--queues", "2"]).unwrap();
    }
    let refused = |args: &[&str], says: &str| {
        let mut all = vec!["bench", "--broker", addr, "end-to-end", "--messages", "10"];
        all.extend_from_slice(args);
        let out = shardmq(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    refused(&["--topic", "ga", "--filter-tags", "a"], "need --group");
    refused(&["--topic", "ga,gb", "--group", "g"], "one topic");
    refused(&["--topic", "ga", "--tags", "a:0"], "must be 1..=1000000");
    refused(
        &["--topic", "ga", "--group", "g", "--filter-sql", "a >"],
        "position",
    );
    refused(
        &["--topic", "ga", "--tags", "a", "--peer", "redis"],
        "--tags needs a system with tags",
    );
    broker.stop();
}
