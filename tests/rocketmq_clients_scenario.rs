//! Real RocketMQ clients, unpatched, from npm, against `shardmq broker` with two shards (so every
//! client follows routes to two brokers): `rocketmq-nodejs` (the official C++ client 3.0.0) and
//! `ali-ons` (pure JavaScript). Installed by the test itself (`harness::js`).
//!
//! With each client, as far as it goes: sync and async sends, then push consumption in a
//! clustering group (contents and counts), a tag subscription, two consumers splitting the
//! queues (each message once), a consumer restarted resuming from its committed offset, and
//! messages crossing between the client and shardmq's native Rust client both ways. With
//! ali-ons also broadcasting and an SQL92 subscription (the C++ binding exposes neither).
//! Neither client has orderly consumption; queue locks are covered by `remoting_scenario`.

mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::{admin_json, create_topic, data_dir, js, run, Broker};
use serde_json::{json, Value};
use shardmq_client::Client;
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::Record;

/// The bodies of a consumer's messages, with duplicates kept.
fn bodies(received: &Value) -> Vec<String> {
    received
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect()
}

fn expected(range: std::ops::Range<u32>) -> BTreeSet<String> {
    range.map(|i| format!("body-{i}")).collect()
}

/// Each body exactly once.
fn once(bodies: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = bodies.iter().cloned().collect();
    assert_eq!(set.len(), bodies.len(), "duplicates in {bodies:?}");
    set
}

fn produce(client: &str, broker: &Broker, home: &Path, topic: &str, from: u32, n: u32) {
    // Every other message is sent asynchronously (the C++ client's callback send; several
    // ali-ons sends in flight at once).
    let mode = "mixed";
    let sent = js::run(
        "produce",
        client,
        json!({"namesrv": broker.namesrv, "topic": topic, "from": from, "n": n, "mode": mode,
               "tags": ["even", "odd"]}),
        home,
    );
    let sent = sent.as_array().unwrap();
    assert_eq!(sent.len(), n as usize);
    let ok = if client == "cpp" {
        json!(0)
    } else {
        json!("SEND_OK")
    };
    assert!(sent.iter().all(|s| s["status"] == ok), "{sent:?}");
    assert_eq!(
        sent.iter().filter(|s| s["async"] == true).count(),
        n as usize / 2,
        "{sent:?}"
    );
}

fn consume(client: &str, broker: &Broker, home: &Path, args: Value) -> Value {
    let mut args = args;
    args["namesrv"] = json!(broker.namesrv);
    js::run("consume", client, args, home)
}

/// Waits until `group` has `n` members on the broker.
fn wait_members(broker: &Broker, group: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let described = admin_json(&broker.addr, &["group", "describe", "--group", group]);
        if let Ok(d) = &described {
            if d["members"].as_array().map(Vec::len) == Some(n) {
                let protocols: Vec<&Value> = d["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| &m["protocol"])
                    .collect();
                assert!(protocols.iter().all(|p| *p == "remoting"), "{d}");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{group} never had {n} members: {described:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two consumers of one group started together split the queues: every message once.
fn two_consumers_split_the_queues(client: &str, broker: &Broker, home: &Path) {
    create_topic(&broker.addr, "split", 8);
    let stop = home.join("split.stop");
    let consumer = |name: &str| {
        let args = json!({"namesrv": broker.namesrv, "topic": "split", "group": "g-split",
                          "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "stopFile": stop,
                          "timeoutMs": 90000, "settleMs": 1500, "rebalanceMs": 1000});
        let home = home.join(name);
        std::fs::create_dir_all(&home).unwrap();
        (js::spawn("consume", client, args, &home), home)
    };
    let (a, home_a) = consumer("a");
    let (b, home_b) = consumer("b");
    wait_members(broker, "g-split", 2);
    // Both rebalanced onto their halves before anything is sent (NOTIFY_CONSUMER_IDS_CHANGED
    // reached the first one when the second joined).
    std::thread::sleep(Duration::from_secs(3));
    produce(client, broker, home, "split", 0, 40);
    let deadline = Instant::now() + Duration::from_secs(30);
    let committed_total = || -> u64 {
        admin_json(&broker.addr, &["group", "describe", "--group", "g-split"])
            .map(|d| {
                d["queues"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|q| q["max"].as_u64().unwrap_or(0) - q["lag"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    while committed_total() < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    std::fs::write(&stop, "stop").unwrap();
    let got_a = bodies(&js::finish(a, "consume", client, &home_a));
    let got_b = bodies(&js::finish(b, "consume", client, &home_b));
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both consumed: {got_a:?} {got_b:?}"
    );
    let all: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
    assert_eq!(once(&all), expected(0..40));
}

/// Messages cross between the JS client and the native Rust client.
fn native_interop(client: &str, broker: &Broker, home: &Path) {
    let addr = broker.addr.clone();
    let native_bodies = run(move || async move {
        let rust = Client::connect(&addr, "interop").await.unwrap();
        let mut seen = Vec::new();
        for q in 0..8 {
            let pulled = rust.pull("ct", q, 0, 1000, 1 << 20, 0).await.unwrap();
            for (_, r) in pulled.to_owned_records().unwrap() {
                let body = String::from_utf8(r.payload).unwrap();
                let i: u32 = body.trim_start_matches("body-").parse().unwrap();
                assert_eq!(r.keys, [format!("k{i}")], "keys of {body}");
                assert_eq!(r.tags, if i.is_multiple_of(2) { "even" } else { "odd" });
                seen.push(body);
            }
        }
        for i in 0..3u32 {
            let record = Record {
                tags: "rust".into(),
                keys: vec![format!("rk{i}")],
                payload: format!("rust-{i}").into_bytes(),
                ..Record::default()
            };
            rust.produce_batch("ct", i, &encode_batch(&[record]))
                .await
                .unwrap();
        }
        seen
    });
    assert_eq!(
        once(&native_bodies),
        expected(0..30),
        "the JS messages, natively"
    );
    let got = consume(
        client,
        broker,
        home,
        json!({"topic": "ct", "group": "g-rust", "expr": "rust", "expect": 3,
               "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "timeoutMs": 60000, "settleMs": 1000}),
    );
    let keys: BTreeSet<String> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["keys"]
                .as_str()
                .map_or_else(|| m["keys"].to_string(), str::to_string)
        })
        .collect();
    assert_eq!(
        once(&bodies(&got)),
        ["rust-0", "rust-1", "rust-2"].map(String::from).into()
    );
    assert!(keys.iter().all(|k| k.contains("rk")), "keys {keys:?}");
}

fn scenario(client: &str) {
    let dir = data_dir();
    let home = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "ct", 8);
    produce(client, &broker, home.path(), "ct", 0, 20);

    // Every message once, with its tag and key.
    let all = consume(
        client,
        &broker,
        home.path(),
        json!({"topic": "ct", "group": "g-all", "expect": 20, "settleMs": 1500,
               "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "timeoutMs": 60000}),
    );
    assert_eq!(once(&bodies(&all)), expected(0..20));
    for m in all.as_array().unwrap() {
        let i: u32 = m["body"].as_str().unwrap()[5..].parse().unwrap();
        assert_eq!(
            m["tags"],
            if i.is_multiple_of(2) { "even" } else { "odd" },
            "{m}"
        );
    }

    // A tag subscription: the broker sends only the odd ones.
    let odd = consume(
        client,
        &broker,
        home.path(),
        json!({"topic": "ct", "group": "g-odd", "expr": "odd", "expect": 10, "settleMs": 2000,
               "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "timeoutMs": 60000}),
    );
    let odd_expected: BTreeSet<String> = (0..20)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("body-{i}"))
        .collect();
    assert_eq!(once(&bodies(&odd)), odd_expected);

    // Restarted, the first group resumes after what it committed at shutdown.
    produce(client, &broker, home.path(), "ct", 20, 10);
    let resumed = consume(
        client,
        &broker,
        home.path(),
        json!({"topic": "ct", "group": "g-all", "expect": 10, "settleMs": 2000,
               "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "timeoutMs": 60000}),
    );
    assert_eq!(once(&bodies(&resumed)), expected(20..30));

    two_consumers_split_the_queues(client, &broker, home.path());
    native_interop(client, &broker, home.path());
    if client == "ons" {
        ons_only(&broker, home.path());
    }
    assert_eq!(broker.stop(), Some(0));
}

/// ali-ons' broadcasting and SQL92 subscriptions.
fn ons_only(broker: &Broker, home: &Path) {
    // Messages 0..30 carry `seq` = their number; the even ones the tag "even".
    let sql = consume(
        "ons",
        broker,
        home,
        json!({"topic": "ct", "group": "g-sql", "sql": true,
               "expr": "seq >= 25 AND TAGS = 'even'", "expect": 2, "settleMs": 2000,
               "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "timeoutMs": 60000}),
    );
    assert_eq!(
        once(&bodies(&sql)),
        ["body-26", "body-28"].map(String::from).into(),
        "{sql}"
    );
    create_topic(&broker.addr, "bc", 4);
    let stop = home.join("bc.stop");
    let member = |name: &str| {
        let home = home.join(name);
        std::fs::create_dir_all(&home).unwrap();
        let args = json!({"namesrv": broker.namesrv, "topic": "bc", "group": "g-bc",
                          "broadcast": true, "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "instance": name,
                          "expect": 12, "timeoutMs": 60000, "settleMs": 1500});
        (js::spawn("consume", "ons", args, &home), home)
    };
    let (a, home_a) = member("bc-a");
    let (b, home_b) = member("bc-b");
    wait_members(broker, "g-bc", 2);
    produce("ons", broker, home, "bc", 0, 12);
    for (child, h) in [(a, home_a), (b, home_b)] {
        assert_eq!(
            once(&bodies(&js::finish(child, "consume", "ons", &h))),
            expected(0..12)
        );
    }
    let _ = std::fs::write(stop, "");
}

#[test]
fn the_official_cpp_client_produces_and_consumes() {
    scenario("cpp");
}

#[test]
fn ali_ons_produces_and_consumes() {
    scenario("ons");
}
