//! Access control end to end (`broker --acl FILE`), on every front end of a real broker:
//! native connections (the client, the admin CLI), remoting requests (raw, signed as Java's
//! AclClientRPCHook signs them, and from stock RocketMQ clients from npm: the C++ client in
//! `rocketmq-nodejs` and `ali-ons`, unpatched), and the HTTP pages. Each refusal is checked to
//! have written nothing, and the start-up rules (a bad file refused, a warning for a
//! non-loopback listener without ACL) are checked too.

mod harness;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use harness::{batch_of, data_dir, js, run, Broker};
use serde_json::json;
use shardmq_bench::peers::remoting::connection::RemotingConnection;
use shardmq_client::{Client, ClientConfig, ClientError, Credentials};
use shardmq_protocol::auth::{remoting_signature, ACCESS_KEY, SIGNATURE};
use shardmq_protocol::remoting::codes::{request, response};
use shardmq_protocol::ErrorCode;

const ACL: &str = r#"
[[accounts]]
accessKey = "admin-key"
secretKey = "admin-secret"
admin = true

[[accounts]]
accessKey = "writer-key"
secretKey = "writer-secret"
topicPerms = ["orders=PUB"]

[[accounts]]
accessKey = "reader-key"
secretKey = "reader-secret"
topicPerms = ["orders=SUB"]
groupPerms = ["billing=SUB"]
"#;

const ADMIN: (&str, &str) = ("admin-key", "admin-secret");
const WRITER: (&str, &str) = ("writer-key", "writer-secret");
const READER: (&str, &str) = ("reader-key", "reader-secret");

/// A one-shard broker with the ACL above (one shard: raw remoting requests need no routing).
fn start(dir: &Path) -> Broker {
    let acl = dir.join("acl.toml");
    std::fs::write(&acl, ACL).unwrap();
    Broker::start(dir, &["--shards", "1", "--acl", acl.to_str().unwrap()])
}

async fn connect(broker: &str, who: Option<(&str, &str)>) -> Result<Client, ClientError> {
    let config = ClientConfig {
        credentials: who.map(|(ak, sk)| Credentials::new(ak, sk)),
        ..ClientConfig::default()
    };
    Client::connect_with(broker, "acl-test", config).await
}

fn code_of(err: &ClientError) -> Option<ErrorCode> {
    match err {
        ClientError::Broker { code, .. } => *code,
        _ => None,
    }
}

/// `shardmq admin` as `who` (credentials from the environment, as operators pass them).
fn admin(broker: &Broker, who: Option<(&str, &str)>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shardmq"));
    command
        .args(["admin", "--broker", &broker.addr, "--json"])
        .args(args);
    if let Some((ak, sk)) = who {
        command
            .env("SHARDMQ_ACCESS_KEY", ak)
            .env("SHARDMQ_SECRET_KEY", sk);
    }
    command.output().unwrap()
}

/// The max offset of `topic`'s queue 0, asked as the admin.
fn max_offset(broker: &Broker, topic: &str) -> u64 {
    let addr = broker.addr.clone();
    let topic = topic.to_string();
    run(move || async move {
        let client = connect(&addr, Some(ADMIN)).await.unwrap();
        client.queue_offsets(&topic, 0).await.unwrap().max_offset
    })
}

fn create_topics(broker: &Broker, names: &[&str]) {
    for name in names {
        let out = admin(
            broker,
            Some(ADMIN),
            &["topic", "create", "--name", name, "--queues", "1"],
        );
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn native_connections_need_an_account_and_are_held_to_it() {
    let dir = data_dir();
    let broker = start(dir.path());
    // The admin CLI without credentials, and with a wrong secret, is refused at the handshake.
    let out = admin(
        &broker,
        None,
        &["topic", "create", "--name", "orders", "--queues", "1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("none were sent"),
        "{out:?}"
    );
    let out = admin(&broker, Some(("admin-key", "guess")), &["topic", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("signature does not match"),
        "{out:?}"
    );
    // Half an account in the environment is bad usage (exit 2), not a refusal by the broker.
    let out = admin(&broker, Some(("admin-key", "")), &["topic", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr.contains("SHARDMQ_SECRET_KEY is not"), "{stderr}");
    create_topics(&broker, &["orders", "payroll"]);

    let addr = broker.addr.clone();
    run(move || async move {
        for who in [
            None,
            Some(("writer-key", "writer-secreT")),
            Some(("nobody", "x")),
        ] {
            let err = connect(&addr, who).await.map(|_| ()).unwrap_err();
            assert_eq!(
                code_of(&err),
                Some(ErrorCode::Unauthenticated),
                "{who:?}: {err}"
            );
        }
        let writer = connect(&addr, Some(WRITER)).await.unwrap();
        writer
            .produce_batch(
                "orders",
                0,
                &batch_of(0..3, |i| format!("o{i}").into_bytes()),
            )
            .await
            .unwrap();
        let refused = [
            writer
                .produce_batch("payroll", 0, &batch_of(0..1, |_| b"p".to_vec()))
                .await
                .map(|_| ()),
            writer
                .pull("orders", 0, 0, 10, 1 << 20, 0)
                .await
                .map(|_| ()),
            writer.create_topic("mine", 1).await.map(|_| ()),
            writer.delete_topic("orders").await.map(|_| ()),
        ];
        for result in refused {
            let err = result.unwrap_err();
            assert_eq!(code_of(&err), Some(ErrorCode::AccessDenied), "{err}");
        }
        // The connection goes on after a refusal.
        writer
            .produce_batch(
                "orders",
                0,
                &batch_of(3..4, |i| format!("o{i}").into_bytes()),
            )
            .await
            .unwrap();

        let reader = connect(&addr, Some(READER)).await.unwrap();
        let pulled = reader.pull("orders", 0, 0, 10, 1 << 20, 0).await.unwrap();
        assert_eq!(pulled.record_count().unwrap(), 4);
        let err = reader
            .produce_batch("orders", 0, &batch_of(0..1, |_| b"r".to_vec()))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no PUB permission on topic \"orders\""),
            "{err}"
        );
    });
    assert_eq!(max_offset(&broker, "orders"), 4);
    assert_eq!(
        max_offset(&broker, "payroll"),
        0,
        "a refused produce wrote nothing"
    );
    assert!(max_offset_of_missing_topic_is_an_error(&broker, "mine"));
    let log = broker.stderr();
    for secret in ["admin-secret", "writer-secret", "reader-secret"] {
        assert!(!log.contains(secret), "the log shows a secret");
    }
}

fn max_offset_of_missing_topic_is_an_error(broker: &Broker, topic: &str) -> bool {
    let out = admin(broker, Some(ADMIN), &["topic", "status", "--name", topic]);
    !out.status.success()
}

/// A SEND_MESSAGE_V2 of one message to `orders` queue 0, signed as `who` (or not at all).
fn send_v2(remoting: &str, who: Option<(&str, &str)>, tamper: bool) -> (i32, String) {
    let (remoting, who) = (
        remoting.to_string(),
        who.map(|(a, s)| (a.to_string(), s.to_string())),
    );
    run(move || async move {
        let conn = RemotingConnection::connect(&remoting, Duration::from_secs(5))
            .await
            .unwrap();
        let body = b"signed body".to_vec();
        let mut ext = harness::remoting::send_v2_header("orders", 0, "");
        if let Some((ak, sk)) = &who {
            ext.push((ACCESS_KEY, ak.clone()));
            let map = ext
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            // The version the bench's remoting driver sends (above 4.9.3).
            let signature = remoting_signature(sk, &map, 401, &body);
            ext.push((SIGNATURE, signature));
        }
        let sent = if tamper {
            b"signed bodY".to_vec()
        } else {
            body
        };
        let reply = conn
            .request(request::SEND_MESSAGE_V2, &ext, &sent, Duration::ZERO)
            .await
            .unwrap();
        (reply.code, reply.remark.unwrap_or_default())
    })
}

#[test]
fn remoting_requests_must_be_signed_by_an_account_that_may_send() {
    let dir = data_dir();
    let broker = start(dir.path());
    create_topics(&broker, &["orders"]);
    let refusals = [
        (None, false, "none were sent"),
        (
            Some(("writer-key", "guess-secret")),
            false,
            "signature does not match",
        ),
        (Some(WRITER), true, "signature does not match"),
        (Some(READER), false, "no PUB permission on topic \"orders\""),
    ];
    for (who, tamper, why) in refusals {
        let (code, remark) = send_v2(&broker.remoting, who, tamper);
        assert_eq!(code, response::NO_PERMISSION, "{who:?}: {remark}");
        assert!(remark.contains(why), "{who:?}: {remark}");
    }
    assert_eq!(
        max_offset(&broker, "orders"),
        0,
        "refused sends wrote nothing"
    );
    let (code, remark) = send_v2(&broker.remoting, Some(WRITER), false);
    assert_eq!(code, response::SUCCESS, "{remark}");
    assert_eq!(max_offset(&broker, "orders"), 1);
}

/// Runs a driver expected to fail; its stderr.
fn failing_driver(command: &str, client: &str, args: serde_json::Value, home: &Path) -> String {
    let out = js::driver(command, client, &args, home).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && serde_json::from_str::<serde_json::Value>(stdout.trim()).is_err(),
        "{client} {command} should have failed: {out:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stock_client_signs_its_requests(client: &str) {
    let dir = data_dir();
    let broker = start(dir.path());
    create_topics(&broker, &["orders"]);
    let home = tempfile::tempdir().unwrap();
    let produce = |who: (&str, &str), n: u32| {
        json!({"namesrv": broker.namesrv, "topic": "orders", "from": 0, "n": n, "mode": "sync",
               "accessKey": who.0, "secretKey": who.1})
    };
    // A reader may not send: the client reports the refusal and nothing is stored.
    failing_driver("produce", client, produce(READER, 1), home.path());
    let log = broker.stderr();
    assert!(
        log.contains("refused by the ACL")
            && log.contains(r#"access key "reader-key" has no PUB permission on topic "orders""#),
        "{log}"
    );
    assert_eq!(max_offset(&broker, "orders"), 0);

    let sent = js::run("produce", client, produce(WRITER, 10), home.path());
    assert_eq!(sent.as_array().unwrap().len(), 10, "{sent}");
    assert_eq!(max_offset(&broker, "orders"), 10);

    let consume = json!({"namesrv": broker.namesrv, "topic": "orders", "group": "billing",
                         "fromWhere": "CONSUME_FROM_FIRST_OFFSET", "expect": 10,
                         "timeoutMs": 60000, "settleMs": 500,
                         "accessKey": READER.0, "secretKey": READER.1});
    let got = js::run("consume", client, consume, home.path());
    let mut bodies: Vec<String> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 10, "{got}");
    let log = broker.stderr();
    assert!(!log.contains("reader-secret") && !log.contains("writer-secret"));
}

#[test]
fn the_official_cpp_client_signs_its_requests() {
    stock_client_signs_its_requests("cpp");
}

#[test]
fn ali_ons_signs_its_requests() {
    stock_client_signs_its_requests("ons");
}

fn http_get(addr: &str, path: &str, basic: Option<&str>) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = basic.map_or(String::new(), |pair| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        format!("Authorization: Basic {encoded}\r\n")
    });
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn http_pages_need_basic_authentication() {
    let dir = data_dir();
    let broker = start(dir.path());
    create_topics(&broker, &["orders"]);
    let anonymous = http_get(&broker.http, "/metrics", None);
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    assert!(anonymous.contains("WWW-Authenticate: Basic"), "{anonymous}");
    let wrong = http_get(&broker.http, "/metrics", Some("admin-key:nope"));
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    assert!(wrong.contains("the secret key does not match"), "{wrong}");
    let metrics = http_get(&broker.http, "/metrics", Some("admin-key:admin-secret"));
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("shardmq_"), "{metrics}");
    let path = "/api/messages?topic=orders&queue=0";
    let writer = http_get(&broker.http, path, Some("writer-key:writer-secret"));
    assert!(writer.starts_with("HTTP/1.1 403"), "{writer}");
    let reader = http_get(&broker.http, path, Some("reader-key:reader-secret"));
    assert!(reader.starts_with("HTTP/1.1 200"), "{reader}");
    let health = http_get(&broker.http, "/healthz", None);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[test]
fn start_up_refuses_a_bad_acl_file_and_warns_when_an_open_listener_has_none() {
    let dir = data_dir();
    let acl = dir.path().join("bad-acl.toml");
    std::fs::write(
        &acl,
        "[[accounts]]\naccessKey = \"admin-key\"\nsecretKey = \"topsecret\"\ntopicPerms = [\"orders=ALL\"]",
    )
    .unwrap();
    let err = Broker::try_start(&dir.path().join("a"), &["--acl", acl.to_str().unwrap()])
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.contains("\"ALL\" is not DENY, PUB, SUB or PUB|SUB"),
        "{err}"
    );
    assert!(!err.contains("topsecret"), "{err}");

    let open = Broker::start(&dir.path().join("b"), &["--listen", "0.0.0.0:0"]);
    let log = open.stderr();
    assert!(
        log.contains("ACL is off") && log.contains("--listen"),
        "{log}"
    );
    let local = Broker::start(&dir.path().join("c"), &[]);
    assert!(
        !local.stderr().contains("ACL is off"),
        "loopback listeners need no warning"
    );
}
