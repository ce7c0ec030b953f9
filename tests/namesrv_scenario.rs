//! `shardmq namesrv` alone with two brokers registering with it (`broker --namesrv`): one
//! cluster, every shard of both a broker in the routes, a stock RocketMQ client (ali-ons)
//! spreading its sends over all of them; a broker that stops unregisters; the name server
//! answers brokers' registration edge cases (a body whose CRC does not match, a compressed one).

mod harness;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{create_topic, data_dir, js, run, Broker};
use serde_json::json;
use shardmq_bench::peers::remoting::connection::RemotingConnection;
use shardmq_protocol::remoting::codes::{request, response};

/// A running `shardmq namesrv` and its address.
struct NameServer {
    child: Child,
    addr: String,
}

impl NameServer {
    fn start() -> NameServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shardmq"))
            .args(["namesrv", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("shardmq ready namesrv=")
            .unwrap_or_else(|| panic!("ready line {line:?}"))
            .to_string();
        NameServer { child, addr }
    }

    fn stop(mut self) -> Option<i32> {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().ok()?.code()
    }
}

/// `broker name → read queues` of a topic's route at the name server (empty when none).
fn route(namesrv: &str, topic: &str) -> Vec<(String, u64)> {
    let (namesrv, topic) = (namesrv.to_string(), topic.to_string());
    run(move || async move {
        let conn = RemotingConnection::connect(&namesrv, Duration::from_secs(5))
            .await
            .unwrap();
        let reply = conn
            .request(
                request::GET_ROUTEINFO_BY_TOPIC,
                &[("topic", topic)],
                &[],
                Duration::ZERO,
            )
            .await
            .unwrap();
        if reply.code != response::SUCCESS {
            return Vec::new();
        }
        let route: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let mut queues: Vec<(String, u64)> = route["queueDatas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                (
                    q["brokerName"].as_str().unwrap().to_string(),
                    q["readQueueNums"].as_u64().unwrap(),
                )
            })
            .collect();
        queues.sort();
        queues
    })
}

fn wait_route(namesrv: &str, topic: &str, want: &[(&str, u64)]) {
    let want: Vec<(String, u64)> = want.iter().map(|(b, q)| (b.to_string(), *q)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = route(namesrv, topic);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "route of {topic}: {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn brokers_registered_with_one_name_server_form_a_cluster_clients_spread_over() {
    let namesrv = NameServer::start();
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let register = [
        "--namesrv",
        namesrv.addr.as_str(),
        "--namesrv-listen",
        "off",
    ];
    let a = Broker::start(
        dir_a.path(),
        &[&["--shards", "2", "--broker-name", "a"][..], &register].concat(),
    );
    let b = Broker::start(
        dir_b.path(),
        &[&["--shards", "1", "--broker-name", "b"][..], &register].concat(),
    );
    assert!(
        a.namesrv.is_empty(),
        "no embedded name server when registering with one"
    );
    create_topic(&a.addr, "cl", 4);
    create_topic(&b.addr, "cl", 2);
    wait_route(
        &namesrv.addr,
        "cl",
        &[("a-00", 2), ("a-01", 2), ("b-00", 2)],
    );
    assert!(
        route(&namesrv.addr, "TBW102").len() == 3,
        "auto-creation is on: every shard registers the template"
    );

    // A stock client sends through the name server alone: round robin over every queue of
    // every broker of the cluster.
    let home = tempfile::tempdir().unwrap();
    let sent = js::run(
        "produce",
        "ons",
        json!({"namesrv": namesrv.addr, "topic": "cl", "from": 0, "n": 12, "mode": "sync"}),
        home.path(),
    );
    let used: BTreeSet<String> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["broker"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        used,
        ["a-00", "a-01", "b-00"].map(String::from).into(),
        "{sent}"
    );

    // A topic deleted on a broker leaves the name server (the other broker's share comes back
    // with its next registration, which this topic change triggers at once).
    create_topic(&a.addr, "gone", 2);
    wait_route(&namesrv.addr, "gone", &[("a-00", 1), ("a-01", 1)]);
    harness::admin_json(&a.addr, &["topic", "delete", "--name", "gone"]).unwrap();
    wait_route(&namesrv.addr, "gone", &[]);

    // A broker that stops unregisters its shards at once.
    assert_eq!(b.stop(), Some(0));
    wait_route(&namesrv.addr, "cl", &[("a-00", 2), ("a-01", 2)]);
    assert_eq!(a.stop(), Some(0));
    wait_route(&namesrv.addr, "cl", &[]);
    assert_eq!(namesrv.stop(), Some(0));
}

#[test]
fn registrations_that_cannot_be_trusted_are_refused() {
    let namesrv = NameServer::start();
    let addr = namesrv.addr.clone();
    run(move || async move {
        let conn = RemotingConnection::connect(&addr, Duration::from_secs(5))
            .await
            .unwrap();
        let header = |extra: &[(&'static str, &str)]| {
            let mut h: Vec<(&'static str, String)> = [
                ("brokerName", "x"),
                ("brokerAddr", "127.0.0.1:1"),
                ("clusterName", "c"),
                ("haServerAddr", "127.0.0.1:2"),
                ("brokerId", "0"),
            ]
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect();
            h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            h
        };
        let body = br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"t":{"topicName":"t","readQueueNums":4,"writeQueueNums":4,"perm":6}}}}"#;
        let call = |h: Vec<(&'static str, String)>, body: &'static [u8]| {
            let conn = &conn;
            async move {
                conn.request(request::REGISTER_BROKER, &h, body, Duration::ZERO)
                    .await
                    .unwrap()
            }
        };
        let bad_crc = call(header(&[("bodyCrc32", "12345")]), body).await;
        assert_eq!(
            (bad_crc.code, bad_crc.remark.as_deref()),
            (1, Some("crc32 not match"))
        );
        let compressed = call(header(&[("compressed", "true")]), body).await;
        assert_eq!(compressed.code, response::SYSTEM_ERROR);
        assert!(compressed
            .remark
            .unwrap()
            .contains("compressedRegister=false"));
        let garbage = call(header(&[]), b"{nope").await;
        assert_eq!(garbage.code, response::SYSTEM_ERROR);
        let ok = call(header(&[]), body).await;
        assert_eq!(ok.code, response::SUCCESS);
        let unregister = conn
            .request(
                request::UNREGISTER_BROKER,
                &header(&[]),
                &[],
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!(unregister.code, response::SUCCESS);
    });
    assert!(route(&namesrv.addr, "t").is_empty(), "unregistered");
    assert_eq!(namesrv.stop(), Some(0));
}
