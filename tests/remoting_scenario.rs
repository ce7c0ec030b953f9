//! The RocketMQ remoting front end and the embedded name server, driven by a raw remoting client
//! (requests as Java clients write them) against a broker with two shards: routes that list
//! each shard as a broker of its own, sends that native consumers read field for field, native
//! messages pulled as RocketMQ stored-message records, consumer offsets and group members shared
//! by both protocols, and unsupported codes.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{create_topic, data_dir, run, Broker};
use shardmq_bench::peers::remoting::connection::RemotingConnection;
use shardmq_client::Client;
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::remoting::codes::{request, response};
use shardmq_protocol::remoting::msg_id::parse_offset_msg_id;
use shardmq_protocol::remoting::properties;
use shardmq_protocol::remoting::stored::decode_all;
use shardmq_protocol::{Property, Record};

const WAIT: Duration = Duration::ZERO;

async fn connect(addr: &str) -> RemotingConnection {
    RemotingConnection::connect(addr, Duration::from_secs(5))
        .await
        .unwrap()
}

fn ext(pairs: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    pairs
        .iter()
        .map(|(k, v)| (&*Box::leak(k.to_string().into_boxed_str()), v.to_string()))
        .collect()
}

/// A PULL_MESSAGE header as a Java push consumer writes it (suspend, subscription `*`) for
/// `queue` of `topic` from offset 0, long-polling up to `suspend_ms` when nothing is there.
fn pull_header(
    group: &str,
    topic: &str,
    queue: u32,
    suspend_ms: &str,
) -> Vec<(&'static str, String)> {
    let queue = queue.to_string();
    ext(&[
        ("consumerGroup", group),
        ("topic", topic),
        ("queueId", &queue),
        ("queueOffset", "0"),
        ("maxMsgNums", "32"),
        ("sysFlag", "6"),
        ("commitOffset", "0"),
        ("suspendTimeoutMillis", suspend_ms),
        ("subscription", "*"),
        ("subVersion", "0"),
        ("expressionType", "TAG"),
    ])
}

/// `(broker name, address, queues)` of every broker in a topic's route.
async fn route(namesrv: &str, topic: &str) -> Result<Vec<(String, String, u64)>, i32> {
    let ns = connect(namesrv).await;
    let reply = ns
        .request(
            request::GET_ROUTEINFO_BY_TOPIC,
            &ext(&[("topic", topic)]),
            &[],
            WAIT,
        )
        .await
        .unwrap();
    if reply.code != response::SUCCESS {
        return Err(reply.code);
    }
    let route: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let addrs: BTreeMap<String, String> = route["brokerDatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["brokerName"].as_str().unwrap().to_string(),
                b["brokerAddrs"]["0"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Ok(route["queueDatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            let name = q["brokerName"].as_str().unwrap().to_string();
            let addr = addrs[&name].clone();
            (name, addr, q["readQueueNums"].as_u64().unwrap())
        })
        .collect())
}

#[test]
fn routes_list_every_shard_as_a_broker() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let namesrv = broker.namesrv.clone();
    create_topic(&broker.addr, "rt", 8);
    run(move || async move {
        assert_eq!(
            route(&namesrv, "missing").await,
            Err(response::TOPIC_NOT_EXIST)
        );
        let template = route(&namesrv, "TBW102").await.unwrap();
        assert_eq!(
            template.len(),
            2,
            "auto-creation is on: TBW102 on both shards"
        );
        let brokers = route(&namesrv, "rt").await.unwrap();
        let names: Vec<_> = brokers.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(names, ["shardmq-00", "shardmq-01"]);
        assert_ne!(brokers[0].1, brokers[1].1, "each shard has its own address");
        assert_eq!(brokers.iter().map(|b| b.2).sum::<u64>(), 8);
        let ns = connect(&namesrv).await;
        let cluster = ns
            .request(request::GET_BROKER_CLUSTER_INFO, &[], &[], WAIT)
            .await
            .unwrap();
        let cluster: serde_json::Value = serde_json::from_slice(&cluster.body).unwrap();
        assert_eq!(
            cluster["clusterAddrTable"]["DefaultCluster"],
            serde_json::json!(["shardmq-00", "shardmq-01"])
        );
        let unknown = ns.request(9999, &[], &[], WAIT).await.unwrap();
        assert_eq!(unknown.code, response::REQUEST_CODE_NOT_SUPPORTED);
    });
    assert_eq!(broker.stop(), Some(0));
}

/// Sends one message over remoting to local queue `queue` of the broker at `addr`.
async fn send(addr: &str, topic: &str, queue: u32, body: &[u8], props: &str) -> (String, u64) {
    let conn = connect(addr).await;
    let queue = queue.to_string();
    let header = ext(&[
        ("a", "pg"),
        ("b", topic),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", &queue),
        ("f", "0"),
        ("g", "1700000000000"),
        ("h", "5"),
        ("i", props),
        ("j", "0"),
        ("k", "false"),
    ]);
    let reply = conn
        .request(request::SEND_MESSAGE_V2, &header, body, WAIT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    assert_eq!(reply.ext["MSG_REGION"], "DefaultRegion");
    let offset = reply.ext_i64("queueOffset").unwrap() as u64;
    (reply.ext["msgId"].clone(), offset)
}

#[test]
fn a_remoting_send_is_read_natively_and_a_native_message_is_pulled_over_remoting() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let (namesrv, native) = (broker.namesrv.clone(), broker.addr.clone());
    create_topic(&broker.addr, "mix", 4);
    run(move || async move {
        let brokers = route(&namesrv, "mix").await.unwrap();
        let (_, addr, _) = brokers[1].clone();
        let mut props = String::new();
        properties::push(&mut props, "TAGS", "paid");
        properties::push(&mut props, "KEYS", "k1 k2");
        properties::push(&mut props, "UNIQ_KEY", "AC110001000078308DB174F2B4EF0000");
        properties::push(&mut props, "amount", "10");
        let (msg_id, offset) = send(&addr, "mix", 1, b"remoting body", &props).await;
        assert_eq!(offset, 0);
        let (host, _physical) = parse_offset_msg_id(&msg_id).unwrap();
        assert_eq!(
            host.to_string(),
            addr,
            "the id names the shard that stored it"
        );

        // Shard 1's local queue 1 is one of the topic's queues; a native consumer finds the
        // message there with every field.
        let client = Client::connect(&native, "native").await.unwrap();
        let mut found = None;
        for q in 0..4 {
            let pulled = client.pull("mix", q, 0, 10, 1 << 20, 0).await.unwrap();
            if let Some((_, r)) = pulled.to_owned_records().unwrap().into_iter().next() {
                found = Some(r);
            }
        }
        let record = found.expect("the remoting message is in one of the queues");
        assert_eq!(record.payload, b"remoting body");
        assert_eq!(record.tags, "paid");
        assert_eq!(record.keys, ["k1", "k2"]);
        assert_eq!(record.unique_id, "AC110001000078308DB174F2B4EF0000");
        assert_eq!(record.flag, 5);
        assert_eq!(record.born_timestamp_ms, 1_700_000_000_000);
        assert_eq!(
            record.properties,
            [Property {
                name: "amount".into(),
                value: "10".into()
            }]
        );

        // A native message, pulled over remoting from every shard's queues.
        let native_record = Record {
            tags: "t1".into(),
            keys: vec!["nk".into()],
            unique_id: "00FF".into(),
            properties: vec![Property {
                name: "p".into(),
                value: "v".into(),
            }],
            payload: b"native body".to_vec(),
            ..Record::default()
        };
        for q in 0..4 {
            client
                .produce_batch(
                    "mix",
                    q,
                    &encode_batch(std::slice::from_ref(&native_record)),
                )
                .await
                .unwrap();
        }
        let mut bodies = 0;
        for (_, addr, queues) in &brokers {
            let conn = connect(addr).await;
            for local in 0..*queues {
                let header = pull_header("cg", "mix", u32::try_from(local).unwrap(), "0");
                let local = local.to_string();
                let reply = conn
                    .request(request::PULL_MESSAGE, &header, &[], WAIT)
                    .await
                    .unwrap();
                assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
                for key in [
                    "nextBeginOffset",
                    "minOffset",
                    "maxOffset",
                    "suggestWhichBrokerId",
                ] {
                    assert!(reply.ext.contains_key(key), "{key} in every pull answer");
                }
                for m in decode_all(&reply.body).unwrap() {
                    assert_eq!(m.queue_id.to_string(), local, "the client's queue number");
                    assert_eq!(m.store_host.to_string(), *addr);
                    if m.body == b"native body" {
                        let props = properties::parse(&m.properties);
                        assert!(props.contains(&("TAGS".into(), "t1".into())), "{props:?}");
                        assert!(props.contains(&("KEYS".into(), "nk".into())));
                        assert!(props.contains(&("p".into(), "v".into())));
                        bodies += 1;
                    }
                }
            }
        }
        assert_eq!(bodies, 4, "every native message, once");
    });
    assert_eq!(broker.stop(), Some(0));
}

/// A push consumer keeps a long poll parked on every queue it holds, all over its one
/// connection to the broker (Java parks each for up to 15 s): a message sent to any of those
/// queues is answered at once, not once the polls parked on the other queues have expired.
#[test]
fn every_queue_long_polls_at_once_over_one_connection() {
    const QUEUES: u32 = 8;
    const SUSPEND_MS: &str = "30000";
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    let (remoting, native) = (broker.remoting.clone(), broker.addr.clone());
    create_topic(&broker.addr, "polled", QUEUES);
    run(move || async move {
        let conn = std::rc::Rc::new(connect(&remoting).await);
        // How many polls have been answered; the last queue's is the only one with data.
        let answered = std::rc::Rc::new(std::cell::Cell::new(0u32));
        let polls: Vec<_> = (0..QUEUES)
            .map(|q| {
                let (conn, answered) = (conn.clone(), answered.clone());
                glommio::spawn_local(async move {
                    let header = pull_header("lp", "polled", q, SUSPEND_MS);
                    let reply = conn
                        .request(request::PULL_MESSAGE, &header, &[], Duration::from_secs(60))
                        .await;
                    answered.set(answered.get() + 1);
                    reply
                })
            })
            .collect();
        // Every poll parked (nothing is stored yet), then one message to the last queue.
        glommio::timer::sleep(Duration::from_millis(500)).await;
        let client = Client::connect(&native, "sender").await.unwrap();
        let record = Record {
            payload: b"wake".to_vec(),
            ..Record::default()
        };
        client
            .produce_batch("polled", QUEUES - 1, &encode_batch(&[record]))
            .await
            .unwrap();
        let mut polls = polls.into_iter();
        let last = polls.next_back().unwrap();
        let reply = last.await.unwrap();
        assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
        let bodies: Vec<_> = decode_all(&reply.body)
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(bodies, [b"wake".to_vec()]);
        assert_eq!(
            answered.get(),
            1,
            "the last queue's poll was answered only after other polls ended (they wait {SUSPEND_MS} ms)"
        );
        // The other polls are still parked; closing the connection ends them.
        drop(polls);
    });
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn consumer_offsets_and_members_are_one_for_both_protocols() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let (namesrv, native) = (broker.namesrv.clone(), broker.addr.clone());
    create_topic(&broker.addr, "off", 4);
    run(move || async move {
        let brokers = route(&namesrv, "off").await.unwrap();
        let (_, addr, _) = brokers[0].clone();
        for _ in 0..3 {
            send(&addr, "off", 0, b"m", "").await;
        }
        let conn = connect(&addr).await;
        let heartbeat = br#"{"clientID":"10.0.0.5@1#1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"og","messageModel":"CLUSTERING","subscriptionDataSet":[{"expressionType":"TAG","subString":"*","subVersion":1,"topic":"off"}]}],"producerDataSet":[]}"#;
        let hb = conn
            .request(request::HEART_BEAT, &[], heartbeat, WAIT)
            .await
            .unwrap();
        assert_eq!(hb.code, response::SUCCESS);
        assert_eq!(hb.version, 479, "the broker's version");
        let list = conn
            .request(
                request::GET_CONSUMER_LIST_BY_GROUP,
                &ext(&[("consumerGroup", "og")]),
                &[],
                WAIT,
            )
            .await
            .unwrap();
        let ids: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
        assert_eq!(ids["consumerIdList"], serde_json::json!(["10.0.0.5@1#1"]));
        let query = ext(&[("consumerGroup", "og"), ("topic", "off"), ("queueId", "0")]);
        let fresh = conn
            .request(request::QUERY_CONSUMER_OFFSET, &query, &[], WAIT)
            .await
            .unwrap();
        assert_eq!(
            (fresh.code, fresh.ext_i64("offset")),
            (response::SUCCESS, Some(0)),
            "a new group on a queue still in memory starts at 0"
        );
        let update = ext(&[
            ("consumerGroup", "og"),
            ("topic", "off"),
            ("queueId", "0"),
            ("commitOffset", "2"),
        ]);
        let updated = conn
            .request(request::UPDATE_CONSUMER_OFFSET, &update, &[], WAIT)
            .await
            .unwrap();
        assert_eq!(updated.code, response::SUCCESS);
        let queried = conn
            .request(request::QUERY_CONSUMER_OFFSET, &query, &[], WAIT)
            .await
            .unwrap();
        assert_eq!(queried.ext_i64("offset"), Some(2));
        // The same group and offset, natively: the queue is the one the messages went to.
        let client = Client::connect(&native, "native").await.unwrap();
        let mut committed = Vec::new();
        for q in 0..4 {
            committed.push(client.query_offset("og", "off", q, None).await.unwrap());
        }
        assert_eq!(
            committed.iter().filter(|c| **c == Some(2)).count(),
            1,
            "{committed:?}"
        );
        let members = client.list_groups().await.unwrap();
        assert!(
            members
                .groups
                .iter()
                .any(|g| g.name == "og" && g.members == 1),
            "{members:?}"
        );
        assert!(
            client.topic("%RETRY%og").await.unwrap().is_some(),
            "the group's retry topic"
        );
    });
    assert_eq!(broker.stop(), Some(0));
}

/// The JSON value at the start of `text`, and the bytes it took.
fn next_value(text: &str) -> (serde_json::Value, usize) {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let value = values.next().unwrap().unwrap();
    (value, values.byte_offset())
}

/// The entries of a map Java writes with fastjson keyed by `MessageQueue` objects
/// (`{"offsetTable":{{…}:{…},…}}`), read the way a Java tool reads it.
fn fastjson_queue_map(body: &[u8], field: &str) -> Vec<(serde_json::Value, serde_json::Value)> {
    let text = std::str::from_utf8(body).unwrap();
    let start = text.find(&format!("\"{field}\":{{")).expect(field) + field.len() + 4;
    let mut rest = &text[start..];
    let mut entries = Vec::new();
    while !rest.starts_with('}') {
        let (key, used) = next_value(rest);
        rest = rest[used..]
            .strip_prefix(':')
            .expect("a colon after the key");
        let (value, used) = next_value(rest);
        rest = &rest[used..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
        entries.push((key, value));
    }
    entries
}

async fn admin_request(
    conn: &RemotingConnection,
    code: i32,
    fields: &[(&str, &str)],
    body: &[u8],
) -> (i32, serde_json::Value, Vec<u8>) {
    let reply = conn.request(code, &ext(fields), body, WAIT).await.unwrap();
    let json = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    (reply.code, json, reply.body.to_vec())
}

#[test]
fn subscription_groups_stats_and_connections_answer_as_admin_tools_expect() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let namesrv = broker.namesrv.clone();
    create_topic(&broker.addr, "adm", 4);
    run(move || async move {
        let brokers = route(&namesrv, "adm").await.unwrap();
        let (name, addr, _) = brokers[0].clone();
        for _ in 0..3 {
            send(&addr, "adm", 0, b"m", "").await;
        }
        let conn = connect(&addr).await;
        let other = connect(&brokers[1].1).await;
        let get = |group: &'static str| [("group", group)];
        let (code, _, _) = admin_request(
            &conn,
            request::GET_SUBSCRIPTIONGROUP_CONFIG,
            &get("g-adm"),
            &[],
        )
        .await;
        assert_eq!(code, response::SUBSCRIPTION_GROUP_NOT_EXIST);

        // mqadmin updateSubGroup: consumption disabled, 3 retries; other fields defaulted.
        let config = br#"{"groupName":"g-adm","consumeEnable":false,"retryMaxTimes":3}"#;
        let create = request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP;
        assert_eq!(
            admin_request(&conn, create, &[], config).await.0,
            response::SUCCESS
        );
        let bad = admin_request(&conn, create, &[], br#"{"consumeEnable":false}"#).await;
        assert_eq!(bad.0, response::INVALID_PARAMETER, "no group name");
        let padding = "x".repeat(70_000);
        let huge = format!(r#"{{"groupName":"g-huge","note":"{padding}"}}"#);
        let refused = admin_request(&conn, create, &[], huge.as_bytes()).await;
        assert_eq!(
            refused.0,
            response::INVALID_PARAMETER,
            "a config beyond 64 KiB"
        );
        let (code, got, _) = admin_request(
            &other,
            request::GET_SUBSCRIPTIONGROUP_CONFIG,
            &get("g-adm"),
            &[],
        )
        .await;
        assert_eq!(
            code,
            response::SUCCESS,
            "every shard answers for the broker"
        );
        assert_eq!(got["consumeEnable"], false);
        assert_eq!(got["retryMaxTimes"], 3);
        assert_eq!(got["consumeBroadcastEnable"], true);
        let pull = |queue_offset: &'static str| {
            [
                ("consumerGroup", "g-adm"),
                ("topic", "adm"),
                ("queueId", "0"),
                ("queueOffset", queue_offset),
                ("maxMsgNums", "32"),
                ("sysFlag", "4"),
                ("subscription", "*"),
                ("subVersion", "0"),
            ]
        };
        let refused = admin_request(&conn, request::PULL_MESSAGE, &pull("0"), &[]).await;
        assert_eq!(refused.0, response::NO_PERMISSION, "consumeEnable is false");
        let enabled = br#"{"groupName":"g-adm","consumeEnable":true,"retryMaxTimes":3}"#;
        assert_eq!(
            admin_request(&conn, create, &[], enabled).await.0,
            response::SUCCESS
        );
        let pulled = admin_request(&conn, request::PULL_MESSAGE, &pull("0"), &[]).await;
        assert_eq!(pulled.0, response::SUCCESS);

        // A member, then its connection as mqadmin consumerConnection shows it.
        let heartbeat = br#"{"clientID":"10.0.0.9@7","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g-adm","messageModel":"CLUSTERING","subscriptionDataSet":[{"expressionType":"TAG","subString":"a || b","subVersion":1,"topic":"adm"}]}],"producerDataSet":[]}"#;
        assert_eq!(
            admin_request(&conn, request::HEART_BEAT, &[], heartbeat)
                .await
                .0,
            0
        );
        let group = [("consumerGroup", "g-adm")];
        let (code, connections, _) =
            admin_request(&conn, request::GET_CONSUMER_CONNECTION_LIST, &group, &[]).await;
        assert_eq!(code, response::SUCCESS);
        assert_eq!(connections["connectionSet"][0]["clientId"], "10.0.0.9@7");
        assert!(connections["connectionSet"][0]["clientAddr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
        assert_eq!(connections["messageModel"], "CLUSTERING");
        assert_eq!(connections["consumeFromWhere"], "CONSUME_FROM_FIRST_OFFSET");
        assert_eq!(
            connections["subscriptionTable"]["adm"]["tagsSet"],
            serde_json::json!(["a", "b"])
        );
        let nobody = [("consumerGroup", "g-none")];
        let (code, _, _) =
            admin_request(&conn, request::GET_CONSUMER_CONNECTION_LIST, &nobody, &[]).await;
        assert_eq!(code, response::CONSUMER_NOT_ONLINE);
        let (code, all, _) =
            admin_request(&other, request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[], &[]).await;
        assert_eq!(code, response::SUCCESS);
        assert_eq!(all["subscriptionGroupTable"]["g-adm"]["retryMaxTimes"], 3);

        // Topic stats and consume stats: this shard's queues under its broker name.
        let commit = [
            ("consumerGroup", "g-adm"),
            ("topic", "adm"),
            ("queueId", "0"),
            ("commitOffset", "2"),
        ];
        assert_eq!(
            admin_request(&conn, request::UPDATE_CONSUMER_OFFSET, &commit, &[])
                .await
                .0,
            0
        );
        let (code, _, body) = admin_request(
            &conn,
            request::GET_TOPIC_STATS_INFO,
            &[("topic", "adm")],
            &[],
        )
        .await;
        assert_eq!(code, response::SUCCESS);
        let stats = fastjson_queue_map(&body, "offsetTable");
        assert_eq!(stats.len(), 2, "the shard's 2 of 4 queues");
        let q0 = stats.iter().find(|(k, _)| k["queueId"] == 0).unwrap();
        assert_eq!(q0.0["brokerName"], name.as_str());
        assert_eq!(
            (q0.1["minOffset"].as_i64(), q0.1["maxOffset"].as_i64()),
            (Some(0), Some(3))
        );
        assert!(q0.1["lastUpdateTimestamp"].as_i64().unwrap() > 1_600_000_000_000);
        let (code, _, body) = admin_request(&conn, request::GET_CONSUME_STATS, &group, &[]).await;
        assert_eq!(code, response::SUCCESS);
        let progress = fastjson_queue_map(&body, "offsetTable");
        let q0 = progress.iter().find(|(k, _)| k["queueId"] == 0).unwrap();
        assert_eq!(q0.1["brokerOffset"], 3);
        assert_eq!(q0.1["consumerOffset"], 2);
        let missing = admin_request(
            &conn,
            request::GET_TOPIC_STATS_INFO,
            &[("topic", "nope")],
            &[],
        );
        assert_eq!(missing.await.0, response::TOPIC_NOT_EXIST);

        // mqadmin deleteSubGroup with its offsets: the group is gone.
        let delete = [("groupName", "g-adm"), ("cleanOffset", "true")];
        assert_eq!(
            admin_request(&conn, request::DELETE_SUBSCRIPTIONGROUP, &delete, &[])
                .await
                .0,
            0
        );
        let (code, _, _) = admin_request(
            &other,
            request::GET_SUBSCRIPTIONGROUP_CONFIG,
            &get("g-adm"),
            &[],
        )
        .await;
        assert_eq!(code, response::SUBSCRIPTION_GROUP_NOT_EXIST);
        let query = [
            ("consumerGroup", "g-adm"),
            ("topic", "adm"),
            ("queueId", "0"),
            ("setZeroIfNotFound", "false"),
        ];
        let (code, _, _) = admin_request(&conn, request::QUERY_CONSUMER_OFFSET, &query, &[]).await;
        assert_eq!(code, response::QUERY_NOT_FOUND, "its offsets went with it");
    });
    assert_eq!(broker.stop(), Some(0));
}

/// Writes raw bytes to a fresh connection and reports whether the broker closed it within 10 s
/// (reading whatever it answered first).
fn closed_after(addr: &str, bytes: &[u8]) -> bool {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A frame: length prefix, header word (`kind` in the top byte), header, body.
fn raw_frame(kind: u8, header: &[u8], header_len: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = 4 + header.len() + body.len();
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&((u32::from(kind) << 24) | header_len).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

#[test]
fn bad_remoting_input_closes_its_connection_and_loses_nothing() {
    let dir = data_dir();
    let broker = Broker::start(
        dir.path(),
        &["--shards", "2", "--remoting-idle-timeout-ms", "1500"],
    );
    let (namesrv, native) = (broker.namesrv.clone(), broker.addr.clone());
    create_topic(&broker.addr, "bad", 2);
    let addr = run({
        let namesrv = namesrv.clone();
        move || async move {
            let brokers = route(&namesrv, "bad").await.unwrap();
            for i in 0..3 {
                send(&brokers[0].1, "bad", 0, format!("kept-{i}").as_bytes(), "").await;
            }
            brokers[0].1.clone()
        }
    });
    let json = |text: &str| raw_frame(0, text.as_bytes(), text.len() as u32, b"");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a length beyond 16 MiB",
            0xFFFF_FFFFu32.to_be_bytes().to_vec(),
        ),
        (
            "a length below the header word",
            2u32.to_be_bytes().to_vec(),
        ),
        (
            "a header length beyond the frame",
            raw_frame(0, b"{}", 4000, b""),
        ),
        ("malformed JSON", json(r#"{"code":10,"opaque":"#)),
        ("a JSON header that is not an object", json("[1,2,3]")),
        ("an unknown header encoding", raw_frame(7, b"{}", 2, b"")),
        (
            "a truncated binary header",
            raw_frame(1, &[0, 10, 0], 3, b""),
        ),
        ("a silent client (idle timeout)", Vec::new()),
    ];
    for (what, bytes) in &cases {
        assert!(
            closed_after(&addr, bytes),
            "{what}: the connection stays open"
        );
    }
    assert!(
        closed_after(&namesrv, b""),
        "a silent name-server client is closed too"
    );
    // A frame announced whole but cut short, then closed: nothing to answer, nothing breaks.
    {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.write_all(&1000u32.to_be_bytes()).unwrap();
        stream.write_all(&[0; 10]).unwrap();
    }
    let survivors = run(move || async move {
        // A body that disagrees with its header: a batch send whose body is not a batch is
        // refused, and the connection goes on serving.
        let conn = connect(&addr).await;
        let header = ext(&[
            ("a", "pg"),
            ("b", "bad"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "0"),
            ("f", "0"),
            ("g", "1700000000000"),
            ("h", "0"),
            ("i", ""),
            ("j", "0"),
            ("k", "false"),
            ("m", "true"),
        ]);
        let garbage = [0xFFu8; 64];
        let refused = conn
            .request(request::SEND_BATCH_MESSAGE, &header, &garbage, WAIT)
            .await
            .unwrap();
        assert_ne!(refused.code, response::SUCCESS);
        assert!(
            refused.remark.as_deref().is_some_and(|r| !r.is_empty()),
            "{refused:?}"
        );
        let max = conn
            .request(
                request::GET_MAX_OFFSET,
                &ext(&[("topic", "bad"), ("queueId", "0")]),
                &[],
                WAIT,
            )
            .await
            .unwrap();
        assert_eq!(
            max.ext_i64("offset"),
            Some(3),
            "the same connection still answers"
        );
        // Every acknowledged message is there.
        let client = Client::connect(&native, "check").await.unwrap();
        let mut bodies = Vec::new();
        for q in 0..2 {
            let pulled = client.pull("bad", q, 0, 100, 1 << 20, 0).await.unwrap();
            for (_, r) in pulled.to_owned_records().unwrap() {
                bodies.push(String::from_utf8(r.payload).unwrap());
            }
        }
        bodies
    });
    assert_eq!(survivors, ["kept-0", "kept-1", "kept-2"]);
    assert_eq!(broker.stop(), Some(0));
}
