//! The dashboard end to end in headless Chromium (Debian's `chromium`, which `.ci/test`
//! installs; `SHARDMQ_CHROMIUM` names another binary): a broker is produced to and a group
//! commits, the page is loaded with its script run for a few (virtual) seconds, and the DOM
//! must show the topic's queues, the group's lag, charts with points, and the messages read
//! from an offset. Also the JSON endpoints' shapes.

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::{create_topic, run, Broker};
use shardmq_client::Client;
use shardmq_protocol::batch::{encode_batch, Record};

fn chromium() -> String {
    std::env::var("SHARDMQ_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// The page's DOM after its script ran for `budget_ms` of virtual time.
fn dump_dom(url: &str, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--virtual-time-budget={budget_ms}"),
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install Debian's chromium (.ci/test does)",
                chromium()
            )
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn get_json(addr: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn order(i: u64) -> Record {
    Record {
        born_timestamp_ms: i,
        tags: "paid".into(),
        keys: vec![format!("o{i}")],
        payload: format!("order-{i}").into_bytes(),
        ..Default::default()
    }
}

#[test]
fn the_dashboard_shows_topics_lag_charts_and_messages_in_a_browser() {
    let dir = harness::data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "orders", 2);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "shop").await.unwrap();
        for i in 0..50 {
            let batch = encode_batch(&[order(i)]);
            client.produce_batch("orders", 0, &batch).await.unwrap();
        }
        client
            .commit_offset("billing", "orders", 0, 10)
            .await
            .unwrap();
    });
    // Load keeps coming while the page samples, so the throughput chart has something to say.
    let addr = broker.addr.clone();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let producer = std::thread::spawn(move || {
        run(move || async move {
            let client = Client::connect(&addr, "load").await.unwrap();
            let mut i = 1000;
            while stop_rx.try_recv().is_err() {
                let batch = encode_batch(&[order(i)]);
                client.produce_batch("orders", 1, &batch).await.unwrap();
                i += 1;
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
        })
    });

    let dom = dump_dom(
        &format!(
            "http://{}/?topic=orders&queue=0&offset=5&max=3",
            broker.http
        ),
        6000,
    );
    stop_tx.send(()).unwrap();
    producer.join().unwrap();

    assert!(
        dom.contains(r#"id="status" class="muted">live<"#),
        "the page reached the broker"
    );
    assert!(
        dom.contains("<td>orders</td>"),
        "the topic's queues are listed"
    );
    assert!(dom.contains("<td>billing</td>"), "the group is listed");
    assert!(
        dom.contains(r#"<td class="num bad">40</td>"#),
        "billing's lag on orders:0 is 40"
    );
    let points = |series: &str| -> usize {
        let at = dom
            .find(&format!(r#"class="series {series}""#))
            .unwrap_or_else(|| panic!("no {series} series"));
        let rest = &dom[at..];
        let n = rest.split("data-points=\"").nth(1).unwrap();
        n[..n.find('"').unwrap()].parse().unwrap()
    };
    assert!(points("produce") >= 2, "the throughput chart has points");
    assert!(points("p99") >= 1, "the latency chart has points");
    assert!(
        dom.contains("<td class=\"body\">order-5</td>"),
        "messages read from offset 5"
    );
    assert!(dom.contains("<td class=\"body\">order-7</td>"));
    assert!(!dom.contains("order-8<"), "at most max=3 messages");

    let overview = get_json(&broker.http, "/api/overview");
    assert_eq!(overview["shardCount"], 2);
    assert!(overview["producedMessages"].as_u64().unwrap() >= 50);
    assert_eq!(overview["shards"].as_array().unwrap().len(), 2);
    let topics = get_json(&broker.http, "/api/topics");
    assert_eq!(topics[0]["name"], "orders");
    assert_eq!(topics[0]["queues"][0]["max"], 50);
    let groups = get_json(&broker.http, "/api/groups");
    assert_eq!(groups[0]["name"], "billing");
    assert_eq!(groups[0]["lag"], 40);
    let messages = get_json(
        &broker.http,
        "/api/messages?topic=orders&queue=0&offset=49&max=5",
    );
    assert_eq!(messages["messages"].as_array().unwrap().len(), 1);
    assert_eq!(messages["messages"][0]["keys"][0], "o49");
    let bad = get_json(&broker.http, "/api/messages?topic=nope&queue=0");
    assert!(bad["error"].as_str().unwrap().contains("nope"), "{bad}");
    let bad = get_json(&broker.http, "/api/messages?topic=orders&queue=x");
    assert!(
        bad["error"].as_str().unwrap().contains("not a number"),
        "{bad}"
    );
    assert_eq!(broker.stop(), Some(0));
}
