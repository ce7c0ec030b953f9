//! The metrics endpoint end to end: a 2-shard broker is produced to natively and over
//! remoting, consumed from, committed to and sent a request it refuses; `/metrics` is then
//! parsed as Prometheus text, and its numbers must be the ones the test caused. Also what the
//! HTTP listener answers to bad requests.

mod harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::{batch_of, create_topic, run, Broker};
use shardmq_client::Client;
use shardmq_protocol::remoting::codes::response;

/// `(status, body)` of a raw HTTP exchange.
fn http(addr: &str, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

type Series = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the exposition strictly: every family announced by HELP and TYPE before its samples,
/// every sample `name{k="v",…} value`.
fn parse(text: &str) -> Series {
    let mut series = Series::new();
    let mut typed: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
                let labels = rest
                    .split("\",")
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (head.to_string(), BTreeMap::new()),
        };
        assert!(name.starts_with("shardmq_"), "{name}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.iter().any(|t| t == f))
            })
            .unwrap_or(&name);
        assert!(typed.iter().any(|t| t == family), "{name} before its TYPE");
        series.insert((name, labels), value);
    }
    series
}

/// The sum of a metric over the series whose labels include `with`.
fn sum(series: &Series, name: &str, with: &[(&str, &str)]) -> f64 {
    series
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_count_what_was_produced_consumed_committed_and_refused() {
    let dir = harness::data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2", "--flush", "sync"]);
    assert!(!broker.http.is_empty(), "http= on the ready line");
    create_topic(&broker.addr, "m", 4);
    let addr = broker.addr.clone();
    let (produced_bytes, refused) = run(move || async move {
        let client = Client::connect(&addr, "metrics").await.unwrap();
        let mut bytes = 0u64;
        for queue in 0..4 {
            for b in 0..10u64 {
                let batch = batch_of(b * 10..b * 10 + 10, |s| vec![s as u8; 100]);
                bytes += batch.len() as u64;
                client.produce_batch("m", queue, &batch).await.unwrap();
            }
        }
        let mut next = 0;
        while next < 100 {
            let pulled = client.pull("m", 0, next, 1000, 1 << 20, 0).await.unwrap();
            next = pulled.next_offset();
        }
        client.commit_offset("g", "m", 1, 30).await.unwrap();
        let refused = client
            .produce_batch("m", 99, &batch_of(0..1, |_| b"x".to_vec()))
            .await
            .is_err();
        (bytes, refused)
    });
    assert!(refused, "a produce to queue 99 of 4 is refused");
    let sent = harness::remoting::send_v2(&broker.remoting, "m", 0, b"over remoting");
    assert_eq!(sent.code, response::SUCCESS, "{:?}", sent.remark);

    let (status, text) = get(&broker.http, "/metrics");
    assert_eq!(status, 200);
    let s = parse(&text);
    let topic = [("topic", "m")];
    assert_eq!(sum(&s, "shardmq_produced_messages_total", &topic), 401.0);
    assert!(sum(&s, "shardmq_produced_bytes_total", &topic) >= produced_bytes as f64);
    assert_eq!(sum(&s, "shardmq_consumed_messages_total", &topic), 100.0);
    let produce = [("protocol", "native"), ("kind", "produce")];
    assert!(sum(&s, "shardmq_request_duration_seconds_count", &produce) >= 41.0);
    let inf = [("protocol", "native"), ("kind", "produce"), ("le", "+Inf")];
    assert_eq!(
        sum(&s, "shardmq_request_duration_seconds_bucket", &inf),
        sum(&s, "shardmq_request_duration_seconds_count", &produce),
        "+Inf holds every observation"
    );
    let send = [("protocol", "remoting"), ("kind", "SEND_MESSAGE_V2")];
    assert_eq!(
        sum(&s, "shardmq_request_duration_seconds_count", &send),
        1.0
    );
    let queue_missing = [("protocol", "native"), ("reason", "queue_not_found")];
    assert_eq!(
        sum(&s, "shardmq_rejected_requests_total", &queue_missing),
        1.0
    );
    // --flush sync: every batch was covered by an fdatasync before its ack.
    assert!(sum(&s, "shardmq_fsyncs_total", &[]) >= 1.0);
    assert!(sum(&s, "shardmq_fsync_batches_total", &[]) >= 41.0);
    assert!(sum(&s, "shardmq_fsync_bytes_total", &[]) >= produced_bytes as f64);
    assert!(sum(&s, "shardmq_fsync_duration_seconds_count", &[]) >= 1.0);
    let lag = [("group", "g"), ("topic", "m"), ("queue", "1")];
    assert_eq!(sum(&s, "shardmq_consumer_lag_messages", &lag), 70.0);
    assert_eq!(sum(&s, "shardmq_consumer_offset", &lag), 30.0);
    let q2 = [("topic", "m"), ("queue", "2")];
    assert_eq!(sum(&s, "shardmq_queue_max_offset", &q2), 100.0);
    let read = sum(&s, "shardmq_read_batches_total", &[]);
    assert!(read >= 10.0, "batches read: {read}");
    assert!(
        sum(
            &s,
            "shardmq_connections_accepted_total",
            &[("protocol", "native")]
        ) >= 1.0
    );
    assert!(
        sum(
            &s,
            "shardmq_connections_accepted_total",
            &[("protocol", "remoting")]
        ) >= 1.0
    );
    assert!(sum(&s, "shardmq_log_segments", &[]) >= 2.0);
    let used = sum(&s, "shardmq_disk_used_ratio", &[("shard", "0")]);
    assert!(used > 0.0 && used < 1.0, "disk used ratio {used}");
    assert_eq!(sum(&s, "shardmq_shards", &[("state", "answered")]), 2.0);

    // Bad requests get their status and a closed connection.
    assert_eq!(get(&broker.http, "/nowhere").0, 404);
    assert_eq!(http(&broker.http, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(http(&broker.http, b"\x16\x03\x01garbage\r\n\r\n").0, 400);
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    assert_eq!(http(&broker.http, huge.as_bytes()).0, 431);
    assert_eq!(get(&broker.http, "/healthz"), (200, "ok\n".into()));
    assert_eq!(broker.stop(), Some(0));
}
