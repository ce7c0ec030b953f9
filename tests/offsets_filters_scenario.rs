//! Consumer offsets and broker-side filters against a real broker with two shards.
//!
//! Offsets: commits survive a clean restart and a `kill -9` (losing at most the last flush
//! interval), never move backward, resets by time land on the first message stored at or after
//! the time, first-start rules, lag in `describe`. Filters: tag and SQL92 subscriptions over a
//! matrix of property values (numbers, strings, missing, the string "null"); only matching
//! messages arrive; bad expressions are refused at join with their position.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{create_topic, data_dir, run, Broker};
use shardmq_client::{Client, ClientError, Filter, MemberConfig, PullConsumer, StartFromWhere};
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::messages::StartFrom;
use shardmq_protocol::{Property, Record};

/// Produces one batch per element of `records` to queue 0 of `topic`; returns each batch's
/// store time, read back from the broker.
fn produce(addr: &str, topic: &'static str, records: Vec<Record>) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "producer").await.unwrap();
        for record in records {
            client
                .produce_batch(topic, 0, &encode_batch(&[record]))
                .await
                .unwrap();
        }
    });
}

fn with(tags: &str, props: &[(&str, &str)], payload: &str) -> Record {
    Record {
        tags: tags.into(),
        properties: props
            .iter()
            .map(|(n, v)| Property {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        payload: payload.as_bytes().to_vec(),
        ..Record::default()
    }
}

#[test]
fn offsets_survive_restarts_and_kill_and_never_move_back() {
    let dir = data_dir();
    let flags = ["--shards", "2", "--offsets-flush-interval-ms", "100"];
    let broker = Broker::start(dir.path(), &flags);
    create_topic(&broker.addr, "t", 4);
    produce(
        &broker.addr,
        "t",
        (0..20).map(|i| with("", &[], &format!("m{i}"))).collect(),
    );
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "committer").await.unwrap();
        assert_eq!(client.query_offset("g", "t", 0, None).await.unwrap(), None);
        assert!(client.commit_offset("g", "t", 0, 7).await.unwrap());
        assert!(
            !client.commit_offset("g", "t", 0, 3).await.unwrap(),
            "never backward"
        );
        assert_eq!(
            client.query_offset("g", "t", 0, None).await.unwrap(),
            Some(7)
        );
        // A commit past the end is held to the end.
        client.commit_offset("g", "t", 0, 1000).await.unwrap();
        assert_eq!(
            client.query_offset("g", "t", 0, None).await.unwrap(),
            Some(20)
        );
        let first = StartFrom {
            kind: 0,
            timestamp_ms: 0,
        };
        assert_eq!(
            client
                .query_offset("new", "t", 0, Some(first))
                .await
                .unwrap(),
            Some(0)
        );
        // RocketMQ's CONSUME_FROM_LAST_OFFSET: 0 while the queue's start is still in memory.
        let last = StartFrom {
            kind: 1,
            timestamp_ms: 0,
        };
        assert_eq!(
            client
                .query_offset("new", "t", 0, Some(last))
                .await
                .unwrap(),
            Some(0)
        );
    });
    assert_eq!(broker.stop(), Some(0));

    let broker = Broker::start(dir.path(), &flags);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "after-restart").await.unwrap();
        assert_eq!(
            client.query_offset("g", "t", 0, None).await.unwrap(),
            Some(20)
        );
        client
            .reset_offsets("g", "t", shardmq_client::group_calls::ResetTo::Earliest)
            .await
            .unwrap();
        assert_eq!(
            client.query_offset("g", "t", 0, None).await.unwrap(),
            Some(0),
            "a reset moves back"
        );
        client.commit_offset("g", "t", 0, 11).await.unwrap();
    });
    // Let a flush pass (seen in the offsets file), then kill: the commit must survive.
    wait_until_offsets_file_holds(dir.path(), "g", 0, 11);
    broker.kill();
    let broker = Broker::start(dir.path(), &flags);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "after-kill").await.unwrap();
        assert_eq!(
            client.query_offset("g", "t", 0, None).await.unwrap(),
            Some(11)
        );
    });
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn a_reset_by_time_lands_on_the_first_message_stored_at_or_after_it() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "t", 1);
    let addr = broker.addr.clone();
    let (cut_ms, expected) = run(move || async move {
        let client = Client::connect(&addr, "timed").await.unwrap();
        let mut cut = (0, 0);
        for i in 0..10u64 {
            let batch = encode_batch(&[with("", &[], &format!("m{i}"))]);
            client.produce_batch("t", 0, &batch).await.unwrap();
            glommio::timer::sleep(Duration::from_millis(15)).await;
            if i == 5 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                cut = (now, 6);
            }
        }
        cut
    });
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "resetter").await.unwrap();
        assert_eq!(
            client.search_offset("t", 0, cut_ms).await.unwrap(),
            expected
        );
        let moved = client
            .reset_offsets(
                "g",
                "t",
                shardmq_client::group_calls::ResetTo::Timestamp(cut_ms),
            )
            .await
            .unwrap();
        assert_eq!(moved, vec![(0, expected)]);
        assert_eq!(
            client.query_offset("g", "t", 0, None).await.unwrap(),
            Some(expected)
        );
    });
    assert_eq!(broker.stop(), Some(0));
}

/// The payloads a fresh group member with `filter` receives from topic "f".
fn filtered(addr: &str, group: &str, filter: Filter) -> Result<BTreeSet<String>, ClientError> {
    let (addr, group) = (addr.to_string(), group.to_string());
    run(move || async move {
        let client = Client::connect(&addr, "filter").await?;
        let mut member = MemberConfig::new(&group, "f");
        member.subscriptions = vec![("f".into(), filter)];
        let consumer = PullConsumer::start(&client, member, StartFromWhere::First).await?;
        let mut got = BTreeSet::new();
        for _ in 0..5 {
            for m in consumer.poll(100, Duration::from_millis(100)).await? {
                got.insert(String::from_utf8(m.record.payload).unwrap());
            }
        }
        consumer.close().await?;
        Ok(got)
    })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tag_and_sql92_filters_send_only_what_matches() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "f", 1);
    produce(
        &broker.addr,
        "f",
        vec![
            with("A", &[("n", "1"), ("s", "red")], "a1"),
            with("B", &[("n", "5"), ("s", "blue")], "b5"),
            with("A", &[("n", "10"), ("s", "redish")], "a10"),
            with("C", &[("s", "null")], "c-no-n"),
            with("", &[("n", "2.5")], "untagged-2.5"),
            with("B", &[("n", "abc")], "b-abc"),
        ],
    );
    let addr = broker.addr.as_str();
    let all = set(&["a1", "b5", "a10", "c-no-n", "untagged-2.5", "b-abc"]);
    for (group, filter, expected) in [
        ("g1", Filter::all(), all.clone()),
        ("g2", Filter::Tags("A".into()), set(&["a1", "a10"])),
        (
            "g3",
            Filter::Tags("A || C".into()),
            set(&["a1", "a10", "c-no-n"]),
        ),
        ("g4", Filter::Sql92("n > 3".into()), set(&["b5", "a10"])),
        (
            "g5",
            Filter::Sql92("n BETWEEN 1 AND 5".into()),
            set(&["a1", "b5"]),
        ),
        (
            "g6",
            Filter::Sql92("n > 2.0".into()),
            set(&["b5", "a10", "untagged-2.5"]),
        ),
        ("g7", Filter::Sql92("n IS NULL".into()), set(&["c-no-n"])),
        ("g8", Filter::Sql92("s = 'null'".into()), set(&["c-no-n"])),
        (
            "g9",
            Filter::Sql92("s STARTSWITH 'red'".into()),
            set(&["a1", "a10"]),
        ),
        (
            "g10",
            Filter::Sql92("s IN ('blue', 'red')".into()),
            set(&["a1", "b5"]),
        ),
        (
            "g11",
            Filter::Sql92("TAGS = 'B' AND n <> 5".into()),
            set(&[]),
        ),
        ("g12", Filter::Sql92("n <> 5".into()), set(&["a1", "a10"])),
        (
            "g13",
            Filter::Sql92("s NOT CONTAINS 'e'".into()),
            set(&["c-no-n"]),
        ),
    ] {
        assert_eq!(
            filtered(addr, group, filter.clone()).unwrap(),
            expected,
            "{filter:?}"
        );
    }
    for (expression, position) in [("n >", 3), ("n = 'x", 4), ("s > 'a'", 2)] {
        let err = filtered(addr, "bad", Filter::Sql92(expression.into())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("at position {position}")),
            "{expression}: {text}"
        );
    }
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn admin_lists_describes_resets_and_deletes_groups() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "t", 2);
    let addr = broker.addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, r) = (stop.clone(), ready.clone());
    // A member that consumed 3 of queue 0's 5 messages and committed them, then stays.
    let member = std::thread::spawn(move || {
        run(move || async move {
            let client = Client::connect(&addr, "admin-member").await.unwrap();
            for q in 0..2 {
                let records: Vec<_> = (0..5)
                    .map(|i| with("", &[], &format!("q{q}-{i}")))
                    .collect();
                client
                    .produce_batch("t", q, &encode_batch(&records))
                    .await
                    .unwrap();
            }
            let mut config = MemberConfig::new("adm", "t");
            config.member_id = "only".into();
            let consumer = PullConsumer::start(&client, config, StartFromWhere::First)
                .await
                .unwrap();
            consumer.commit("t", 0, 3).await.unwrap();
            r.store(true, std::sync::atomic::Ordering::SeqCst);
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            consumer.close().await.unwrap();
        })
    });
    while !ready.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = broker.addr.as_str();
    let list = harness::admin_json(addr, &["group", "list"]).unwrap();
    assert_eq!(list[0]["group"], "adm");
    assert_eq!(list[0]["members"], 1);
    let described = harness::admin_json(addr, &["group", "describe", "--group", "adm"]).unwrap();
    assert_eq!(described["members"][0]["member"], "only");
    assert_eq!(described["members"][0]["protocol"], "native");
    assert_eq!(
        described["members"][0]["assignment"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(described["queues"][0]["committed"], 3);
    assert_eq!(described["queues"][0]["lag"], 2);
    assert_eq!(described["lag"], 2 + 5, "queue 1 has nothing committed");
    harness::admin_json(
        addr,
        &[
            "offsets", "--topic", "t", "reset", "--group", "adm", "--to", "latest",
        ],
    )
    .unwrap();
    let described = harness::admin_json(addr, &["group", "describe", "--group", "adm"]).unwrap();
    assert_eq!(described["lag"], 0);
    harness::admin_json(
        addr,
        &[
            "offsets", "--topic", "t", "reset", "--group", "adm", "--to", "earliest",
        ],
    )
    .unwrap();
    let described = harness::admin_json(addr, &["group", "describe", "--group", "adm"]).unwrap();
    assert_eq!(described["lag"], 10);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    member.join().unwrap();
    let deleted = harness::admin_json(addr, &["group", "delete", "--group", "adm"]).unwrap();
    assert_eq!(deleted["existed"], true);
    assert!(harness::admin_json(addr, &["group", "list"])
        .unwrap()
        .as_array()
        .unwrap()
        .is_empty());
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "after-delete").await.unwrap();
        assert_eq!(
            client.query_offset("adm", "t", 0, None).await.unwrap(),
            None,
            "offsets deleted"
        );
    });
    assert_eq!(broker.stop(), Some(0));
}

/// A group's record (its mode and what it subscribed to) outlives its members and the broker:
/// after a clean restart and after a `kill -9` the groups are still listed with their modes, and
/// `describe` of the clustering one still covers the queues of its subscription, with the
/// committed offsets (a broadcasting group's progress is its members', so it shows none).
#[test]
fn group_records_survive_restarts() {
    let dir = data_dir();
    let flags = ["--shards", "2", "--offsets-flush-interval-ms", "100"];
    let broker = Broker::start(dir.path(), &flags);
    create_topic(&broker.addr, "kept", 3);
    produce(
        &broker.addr,
        "kept",
        vec![with("a", &[], "m0"), with("c", &[], "m1")],
    );
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "keeper").await.unwrap();
        for (group, mode) in [
            ("keep", shardmq_client::Mode::Clustering),
            ("keepb", shardmq_client::Mode::Broadcasting),
        ] {
            let mut member = MemberConfig::new(group, "kept");
            member.mode = mode;
            member.subscriptions = vec![("kept".into(), Filter::Tags("a || b".into()))];
            let consumer = PullConsumer::start(&client, member, StartFromWhere::First)
                .await
                .unwrap();
            consumer.poll(10, Duration::ZERO).await.unwrap();
            consumer.commit("kept", 0, 1).await.unwrap();
            consumer.close().await.unwrap();
        }
    });
    let describe = |addr: &str| {
        let mut list = harness::admin_json(addr, &["group", "list"]).unwrap();
        list.as_array_mut()
            .unwrap()
            .sort_by_key(|g| g["group"].as_str().unwrap().to_owned());
        let described = harness::admin_json(addr, &["group", "describe", "--group", "keep"]);
        (list, described.unwrap())
    };
    // Generations count membership changes of this broker run; they start again after one.
    let modes = |list: &serde_json::Value| -> Vec<_> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|g| (g["group"].clone(), g["mode"].clone(), g["members"].clone()))
            .collect()
    };
    let (before_list, before) = describe(&broker.addr);
    assert_eq!(
        modes(&before_list),
        [
            ("keep".into(), "clustering".into(), 0.into()),
            ("keepb".into(), "broadcasting".into(), 0.into())
        ]
    );
    assert_eq!(before["queues"].as_array().unwrap().len(), 3, "{before}");
    assert_eq!(before["queues"][0]["committed"], 1, "{before}");
    assert_eq!(broker.stop(), Some(0));

    let broker = Broker::start(dir.path(), &flags);
    let (after_list, after) = describe(&broker.addr);
    assert_eq!(modes(&after_list), modes(&before_list), "listed as before");
    assert_eq!(after["queues"], before["queues"], "{after}");
    // Let the housekeeping and the offsets flush run, then kill: the records are still there.
    std::thread::sleep(Duration::from_millis(600));
    broker.kill();
    let broker = Broker::start(dir.path(), &flags);
    let (killed_list, killed) = describe(&broker.addr);
    assert_eq!(modes(&killed_list), modes(&before_list));
    assert_eq!(killed["queues"], before["queues"]);
    assert_eq!(broker.stop(), Some(0));
}

/// Polls (30 s) until a shard's offsets file holds `group`'s `offset` for queue `queue_id` of
/// some topic: under `flush = async` commits reach the file once per flush interval, and how
/// long that write takes depends on the machine.
fn wait_until_offsets_file_holds(data: &std::path::Path, group: &str, queue_id: u32, offset: u64) {
    use shardmq_shards::consumer_offsets::decode_file;
    let holds = |bytes: Vec<u8>| {
        decode_file(&bytes).is_some_and(|offsets| {
            offsets
                .iter()
                .any(|(k, v)| &*k.group == group && k.queue_id == queue_id && *v == offset)
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(data.join("shards"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|shard| std::fs::read(shard.path().join("offsets")).is_ok_and(holds));
        if found {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the commit of {group} at {offset} never reached an offsets file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
