//! The broker's config file end to end: `--print-config` starts a broker as is; a key in the
//! file takes effect, a `SHARDMQ_<KEY>` variable beats it and a flag beats both; a bad value or
//! an unknown key stops the start with the key, the value and why.

mod harness;

use harness::{admin_json, data_dir, run, shardmq, Broker};
use shardmq_client::Client;

/// The queue count a topic auto-created by a first produce gets from this broker.
fn auto_created_queues(broker: &Broker, topic: &'static str) -> u64 {
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "p").await.unwrap();
        let batch = harness::batch_of(0..1, |_| b"x".to_vec());
        client.produce_batch(topic, 0, &batch).await.unwrap();
    });
    let listed = admin_json(&broker.addr, &["topic", "list"]).unwrap();
    let topic = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .unwrap_or_else(|| panic!("{topic} not in {listed}"));
    topic["queues"].as_u64().unwrap()
}

#[test]
fn file_environment_and_flags_layer_and_bad_values_stop_the_start() {
    let dir = data_dir();
    let printed = shardmq(&["broker", "--print-config"]);
    assert!(printed.status.success());
    let mut file = String::from_utf8(printed.stdout).unwrap();
    assert!(
        file.contains("default_topic_queues = 8"),
        "the printed defaults"
    );
    file = file.replace("default_topic_queues = 8", "default_topic_queues = 3");
    let config = dir.path().join("shardmq.toml");
    std::fs::write(&config, &file).unwrap();
    let data = dir.path().join("data");
    let config_flag = ["--config", config.to_str().unwrap()];

    let broker = Broker::start(&data, &config_flag);
    assert_eq!(auto_created_queues(&broker, "from-file"), 3);
    assert_eq!(broker.stop(), Some(0));

    let broker = Broker::try_start_with(&data, &config_flag, |c| {
        c.env("SHARDMQ_DEFAULT_TOPIC_QUEUES", "5");
    })
    .unwrap();
    assert_eq!(auto_created_queues(&broker, "from-env"), 5);
    assert_eq!(broker.stop(), Some(0));

    let with_flag = [&config_flag[..], &["--default-topic-queues", "2"]].concat();
    let broker = Broker::try_start_with(&data, &with_flag, |c| {
        c.env("SHARDMQ_DEFAULT_TOPIC_QUEUES", "5");
    })
    .unwrap();
    assert_eq!(auto_created_queues(&broker, "from-flag"), 2);
    assert_eq!(broker.stop(), Some(0));

    for (line, key, value) in [
        (
            "segment_size = \"12 parsecs\"",
            "segment_size",
            "12 parsecs",
        ),
        ("flush = \"sometimes\"", "flush", "sometimes"),
        ("segmnet_size = \"1GiB\"", "segmnet_size", ""),
    ] {
        std::fs::write(&config, format!("{line}\n")).unwrap();
        let err = Broker::try_start(&data, &config_flag)
            .err()
            .unwrap_or_else(|| panic!("{line:?} was accepted"));
        assert!(
            err.contains(key) && err.contains(value) && err.contains("shardmq.toml"),
            "{line:?}: {err}"
        );
    }
}
