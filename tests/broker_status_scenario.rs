//! `admin broker status` and `admin cluster` against a running 2-shard broker: every shard
//! answers with its connections, log, disk and version, and is listed as the RocketMQ broker
//! it is advertised as; tables and `--json` both. (A shard refusing writes makes them exit 1:
//! see `disk_full_scenario`.)

mod harness;

use harness::{admin_json, create_topic, data_dir, shardmq, Broker};

#[test]
fn broker_status_and_cluster_show_every_shard() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    create_topic(&broker.addr, "s", 4);
    let status = admin_json(&broker.addr, &["broker", "status"]).unwrap();
    let shards = status["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{status}");
    for (k, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"], k);
        assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(s["refusingWrites"], false);
        let used = s["diskUsedPercent"].as_f64().unwrap();
        assert!(used > 0.0 && used < 100.0, "{s}");
        assert!(s["diskFreeBytes"].as_u64().unwrap() > 0);
        assert!(
            s["connections"].as_u64().unwrap() >= 1,
            "the asking connection"
        );
        for counter in [
            "logWrittenBytes",
            "logDeviceWriteBytes",
            "fsyncs",
            "syncedBatches",
        ] {
            assert!(s[counter].as_u64().is_some(), "{counter} in {s}");
        }
    }
    let cluster = admin_json(&broker.addr, &["cluster"]).unwrap();
    let brokers = cluster["brokers"].as_array().unwrap();
    assert_eq!(brokers[0]["brokerName"], "shardmq-00");
    assert_eq!(brokers[1]["brokerName"], "shardmq-01");
    assert_eq!(brokers[0]["addr"], broker.remoting.as_str());
    let table = shardmq(&["admin", "--broker", &broker.addr, "broker", "status"]);
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.starts_with("SHARD") && text.lines().count() == 3 && text.contains("TO DEVICE"),
        "{text}"
    );
    let unreachable = shardmq(&["admin", "--broker", "127.0.0.1:1", "broker", "status"]);
    assert_eq!(
        unreachable.status.code(),
        Some(3),
        "an unreachable broker exits 3"
    );
    assert_eq!(broker.stop(), Some(0));
}
