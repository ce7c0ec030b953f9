//! The command line a user types: `shardmq admin` and `shardmq bench` against a real broker.

mod harness;

use std::process::Output;

use harness::{create_topic, data_dir, shardmq, Broker};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Messages stored in every queue of `topic`, from `admin offsets` (its last column).
fn offsets_total(addr: &str, topic: &str) -> u64 {
    let offsets = shardmq(&["admin", "--broker", addr, "offsets", "--topic", topic]);
    stdout(&offsets)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// The sum of a per-second series of a result file.
fn series_sum(series: &serde_json::Value) -> u64 {
    series
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Under `--flush sync` a native produce run states the broker's log counters over the run:
/// every acknowledged byte written, and what reached the device at most 1.2x that (issue 10's
/// write-amplification target, seen from the bench; the per-sync bound is the segment writer's
/// unit test).
#[test]
fn a_produce_run_states_the_logs_bytes_to_the_device() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2", "--flush", "sync"]);
    let addr = broker.addr.as_str();
    create_topic(addr, "io", 4);
    let out_json = dir.path().join("io.json");
    let produced = shardmq(&[
        "bench",
        "--broker",
        addr,
        "produce",
        "--topic",
        "io",
        "--messages",
        "4000",
        "--size",
        "1024",
        "--batch",
        "100",
        "--json",
        out_json.to_str().unwrap(),
    ]);
    assert!(produced.status.success(), "{produced:?}");
    assert!(
        stdout(&produced).contains("log (the broker's counters over the run):"),
        "{}",
        stdout(&produced)
    );
    let report = json(&out_json);
    let written = report["logWrittenBytes"].as_u64().unwrap();
    let device = report["logDeviceWriteBytes"].as_u64().unwrap();
    let fsyncs = report["logFsyncs"].as_u64().unwrap();
    assert!(
        written >= 4000 * 1024,
        "every acknowledged payload byte written: {written}"
    );
    assert!(fsyncs >= 1 && report["logSyncedBatches"].as_u64().unwrap() >= 40);
    assert!(
        device >= written && device <= written + written / 5,
        "{device} bytes to the device for {written} written over {fsyncs} fdatasyncs"
    );
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn admin_and_bench_round_trip() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.as_str();

    let created = shardmq(&[
        "admin", "--broker", addr, "topic", "create", "--name", "bench", "--queues", "4",
    ]);
    assert!(created.status.success(), "{created:?}");
    assert!(stdout(&created).contains("created topic bench with 4 queues"));
    let again = shardmq(&[
        "admin", "--broker", addr, "topic", "create", "--name", "bench", "--queues", "4",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let listed = shardmq(&["admin", "--broker", addr, "topic", "list"]);
    assert!(
        stdout(&listed)
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["bench", "4", "1", "6"]),
        "{}",
        stdout(&listed)
    );

    let produce_json = dir.path().join("produce.json");
    let produced = shardmq(&[
        "bench",
        "--broker",
        addr,
        "produce",
        "--topic",
        "bench",
        "--messages",
        "20000",
        "--size",
        "1024",
        "--batch",
        "100",
        "--producers",
        "2",
        "--threads",
        "2",
        "--json",
        produce_json.to_str().unwrap(),
    ]);
    assert!(produced.status.success(), "{produced:?}");
    let report = json(&produce_json);
    assert_eq!(report["messages"], 20000);
    assert_eq!(report["threads"], 2, "two producer executors, merged");
    assert_eq!(
        (&report["sent"], &report["acked"]),
        (&20000.into(), &20000.into())
    );
    assert_eq!(report["warmupMessages"], 0);
    assert_eq!(
        report["publishLatency99pctSeries"]
            .as_array()
            .unwrap()
            .len(),
        report["publishRateSeries"].as_array().unwrap().len(),
        "a p99 for every second of the rate series"
    );
    assert_eq!(report["loadAverageBefore"].as_array().unwrap().len(), 3);
    assert_eq!(report["bytes"], 20000 * 1024);
    assert_eq!(report["errors"], 0);
    assert_eq!(
        report["latencyUs"]["samples"], 200,
        "one latency sample per batch"
    );
    for field in [
        "publishRate",
        "publishLatency50pct",
        "publishLatency99pct",
        "publishLatency999pct",
        "publishLatency9999pct",
        "publishLatencyMax",
        "mbPerSec",
    ] {
        assert!(
            report[field].as_f64().is_some(),
            "{field} missing in {report}"
        );
    }

    let series = series_sum(&report["publishRateSeries"]);
    assert_eq!(
        series, 20000,
        "the per-second series adds up to the messages acked"
    );
    assert_eq!(report["rateMode"], "closed-loop");

    // Open loop: a fixed schedule, latency from the intended send time, publish delay reported.
    let open_json = dir.path().join("open.json");
    let open = shardmq(&[
        "bench",
        "--broker",
        addr,
        "produce",
        "--topic",
        "bench",
        "--messages",
        "3000",
        "--size",
        "100",
        "--batch",
        "10",
        "--rate",
        "10000",
        "--in-flight",
        "8",
        "--json",
        open_json.to_str().unwrap(),
    ]);
    assert!(open.status.success(), "{open:?}");
    let open = json(&open_json);
    assert_eq!(open["rateMode"], "open-loop");
    assert_eq!(open["targetRate"], 10000.0);
    assert_eq!(open["messages"], 3000);
    for field in [
        "publishDelayLatency50pct",
        "publishDelayLatency90pct",
        "publishDelayLatency99pct",
        "publishDelayLatencyMax",
        "publishLatency90pct",
    ] {
        assert!(open[field].as_f64().is_some(), "{field} missing in {open}");
    }
    let open_series = series_sum(&open["publishRateSeries"]);
    assert_eq!(open_series, 3000);

    // End to end: producers and consumers at once, every record measured from send to receipt.
    let e2e_json = dir.path().join("e2e.json");
    let e2e = shardmq(&[
        "bench",
        "--broker",
        addr,
        "end-to-end",
        "--topic",
        "bench",
        "--messages",
        "2000",
        "--size",
        "64",
        "--batch",
        "10",
        "--rate",
        "5000",
        "--in-flight",
        "8",
        "--producers",
        "2",
        "--threads",
        "2",
        "--json",
        e2e_json.to_str().unwrap(),
    ]);
    assert!(e2e.status.success(), "{e2e:?}");
    let e2e = json(&e2e_json);
    assert_eq!(e2e["kind"], "end-to-end");
    assert_eq!(e2e["messages"], 2000);
    for count in ["sent", "acked", "received"] {
        assert_eq!(e2e[count], 2000, "{count} in {e2e}");
    }
    assert!(e2e["endToEndLatency99pctSeries"].as_array().is_some());
    assert_eq!(
        e2e["endToEndSamples"], 2000,
        "every acknowledged record was received and measured"
    );
    for field in [
        "endToEndLatency50pct",
        "endToEndLatency90pct",
        "endToEndLatency99pct",
        "endToEndLatency9999pct",
        "endToEndLatencyMax",
    ] {
        assert!(e2e[field].as_f64().is_some(), "{field} missing in {e2e}");
    }

    assert_eq!(offsets_total(addr, "bench"), 25000);

    let consume_json = dir.path().join("consume.json");
    let consumed = shardmq(&[
        "bench",
        "--broker",
        addr,
        "consume",
        "--topic",
        "bench",
        "--messages",
        "25000",
        "--json",
        consume_json.to_str().unwrap(),
    ]);
    assert!(consumed.status.success(), "{consumed:?}");
    let report = json(&consume_json);
    assert_eq!(report["messages"], 25000);
    assert_eq!(report["received"], 25000);
    assert_eq!(report["errors"], 0);

    // Asking for more than exists fails, non-zero, once the topic stays idle.
    let short = shardmq(&[
        "bench",
        "--broker",
        addr,
        "consume",
        "--topic",
        "bench",
        "--messages",
        "25001",
        "--idle-timeout-ms",
        "500",
    ]);
    assert!(
        !short.status.success(),
        "consume of more messages than exist must fail"
    );

    // Client batching: 2000 single messages through the client's Producer, each measured.
    let linger_json = dir.path().join("linger.json");
    let linger = shardmq(&[
        "bench",
        "--broker",
        addr,
        "produce",
        "--topic",
        "bench",
        "--messages",
        "2000",
        "--size",
        "100",
        "--batch",
        "1",
        "--in-flight",
        "32",
        "--linger-us",
        "200",
        "--json",
        linger_json.to_str().unwrap(),
    ]);
    assert!(linger.status.success(), "{linger:?}");
    let linger = json(&linger_json);
    assert_eq!(linger["clientLingerUs"], 200);
    assert_eq!(linger["messages"], 2000);
    assert_eq!(
        linger["latencyUs"]["samples"], 2000,
        "one sample per message"
    );

    // Duration mode with a warm-up: the schedule's first 0.5 s is sent and acknowledged but
    // measured nowhere; what follows for 1 s is the result.
    let timed_json = dir.path().join("timed.json");
    let timed = shardmq(&[
        "bench",
        "--broker",
        addr,
        "produce",
        "--topic",
        "bench",
        "--size",
        "100",
        "--batch",
        "10",
        "--rate",
        "2000",
        "--in-flight",
        "16",
        "--warmup-s",
        "0.5",
        "--duration-s",
        "1",
        "--json",
        timed_json.to_str().unwrap(),
    ]);
    assert!(timed.status.success(), "{timed:?}");
    let timed = json(&timed_json);
    assert_eq!(timed["durationSeconds"], 1.0);
    assert_eq!(timed["warmupSeconds"], 0.5);
    assert_eq!(
        timed["warmupMessages"], 1000,
        "the batches due in the first 0.5 s at 2000 msg/s"
    );
    let measured = timed["messages"].as_u64().unwrap();
    assert!(measured > 0, "{timed}");
    assert_eq!(timed["sent"].as_u64().unwrap(), measured + 1000);
    assert_eq!(timed["errors"], 0);

    // Several topics: producer p sends to topic p mod 2; consumers read every queue of both.
    for name in ["multi-a", "multi-b"] {
        let created = shardmq(&[
            "admin", "--broker", addr, "topic", "create", "--name", name, "--queues", "2",
        ]);
        assert!(created.status.success(), "{created:?}");
    }
    let multi_json = dir.path().join("multi.json");
    let multi = shardmq(&[
        "bench",
        "--broker",
        addr,
        "end-to-end",
        "--topic",
        "multi-a,multi-b",
        "--messages",
        "1000",
        "--size",
        "64",
        "--batch",
        "10",
        "--producers",
        "2",
        "--consumers",
        "3",
        "--json",
        multi_json.to_str().unwrap(),
    ]);
    assert!(multi.status.success(), "{multi:?}");
    let multi = json(&multi_json);
    for count in ["sent", "acked", "received"] {
        assert_eq!(multi[count], 1000, "{count} in {multi}");
    }
    for name in ["multi-a", "multi-b"] {
        assert_eq!(
            offsets_total(addr, name),
            500,
            "each topic got one producer's share"
        );
    }

    let missing = shardmq(&[
        "bench",
        "--broker",
        addr,
        "produce",
        "--topic",
        "nope",
        "--messages",
        "10",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn tune_check_reports_every_host_item_as_parseable_findings() {
    let dir = data_dir();
    let output = shardmq(&[
        "tune",
        "--check",
        "--json",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--shards",
        "1",
    ]);
    assert!(output.status.success(), "{output:?}");
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let checks: Vec<&str> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for wanted in [
        "memlock",
        "open-files",
        "io-uring",
        "filesystem",
        "disk-scheduler",
        "cpu-governor",
        "transparent-huge",
        "isolated-cpus",
        "irq-affinity",
        "somaxconn",
        "socket-buffers",
        "busy-poll",
    ] {
        assert!(checks.contains(&wanted), "{wanted} missing from {checks:?}");
    }
    for f in &findings {
        assert!(
            ["ok", "warn", "info", "error"].contains(&f["status"].as_str().unwrap()),
            "{f}"
        );
        assert!(!f["found"].as_str().unwrap().is_empty(), "{f}");
        assert!(!f["recommendation"].as_str().unwrap().is_empty(), "{f}");
    }
    // The test data directory is on the same disk as the build: a block filesystem.
    let fs = findings
        .iter()
        .find(|f| f["check"] == "filesystem")
        .unwrap();
    assert_ne!(fs["status"], "error", "{fs}");
    let table = shardmq(&["tune", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(table.status.success());
    assert!(stdout(&table).starts_with("CHECK"));
}

#[test]
fn the_same_workload_against_redis_renders_side_by_side_with_shardmq() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    let addr = broker.addr.as_str();
    assert!(shardmq(&[
        "admin", "--broker", addr, "topic", "create", "--name", "side", "--queues", "1"
    ])
    .status
    .success());
    let workload = [
        "--topic",
        "side",
        "--messages",
        "3000",
        "--size",
        "512",
        "--batch",
        "100",
    ];
    let ours = dir.path().join("shardmq.json");
    let run = shardmq(
        &[
            &["bench", "--broker", addr, "produce"][..],
            &workload[..],
            &["--json", ours.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(run.status.success(), "{run:?}");
    // The peer is started and stopped by the bench itself (needs redis-server; .ci/run installs it).
    let theirs = dir.path().join("redis.json");
    let run = shardmq(
        &[
            &["bench", "produce", "--peer", "redis"][..],
            &workload[..],
            &["--json", theirs.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(run.status.success(), "{run:?}");
    let redis = json(&theirs);
    assert_eq!(redis["system"], "redis-streams");
    assert_eq!(redis["messages"], 3000);
    assert_eq!(redis["errors"], 0);
    assert_eq!(
        redis["latencyUs"]["samples"], 30,
        "one sample per pipelined group of 100"
    );

    // End to end against Redis: XADD producers on two executors, XREAD BLOCK consumers.
    let e2e_path = dir.path().join("redis-e2e.json");
    let run = shardmq(&[
        "bench",
        "end-to-end",
        "--peer",
        "redis",
        "--peer-queues",
        "2",
        "--topic",
        "side",
        "--messages",
        "2000",
        "--size",
        "64",
        "--batch",
        "10",
        "--producers",
        "2",
        "--threads",
        "2",
        "--rate",
        "5000",
        "--in-flight",
        "4",
        "--json",
        e2e_path.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let e2e = json(&e2e_path);
    assert_eq!(e2e["system"], "redis-streams");
    assert_eq!(e2e["kind"], "end-to-end");
    for count in ["sent", "acked", "received", "endToEndSamples"] {
        assert_eq!(e2e[count], 2000, "{count} in {e2e}");
    }
    assert_eq!(e2e["errors"], 0);

    // Drain a backlog: the bench fills a fresh Redis, then reads every stream from its start.
    let drain_path = dir.path().join("redis-consume.json");
    let run = shardmq(&[
        "bench",
        "consume",
        "--peer",
        "redis",
        "--peer-queues",
        "3",
        "--topic",
        "backlog",
        "--messages",
        "3000",
        "--size",
        "256",
        "--fill-batch",
        "50",
        "--json",
        drain_path.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let drained = json(&drain_path);
    assert_eq!(drained["kind"], "consume");
    assert_eq!(drained["messages"], 3000, "{drained}");
    assert_eq!(
        (&drained["sent"], &drained["received"]),
        (&3000.into(), &3000.into()),
        "filled = drained"
    );
    assert_eq!(drained["bytes"], 3000 * 256);
    assert_eq!(drained["errors"], 0);

    let out = dir.path().join("report");
    let render = shardmq(&[
        "bench",
        "report",
        "--out",
        out.to_str().unwrap(),
        ours.to_str().unwrap(),
        theirs.to_str().unwrap(),
    ]);
    assert!(render.status.success(), "{render:?}");
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("| shardmq | produce | 3000 |")
            && readme.contains("| redis-streams | produce | 3000 |"),
        "{readme}"
    );
    assert!(readme.contains("## Ratios against `shardmq`"), "{readme}");
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn the_bench_drives_nats_jetstream_as_a_peer() {
    let dir = data_dir();
    let out = dir.path().join("nats.json");
    // Started and stopped by the bench itself (needs nats-server; .ci/run installs it).
    let run = shardmq(&[
        "bench",
        "produce",
        "--peer",
        "nats",
        "--topic",
        "n",
        "--messages",
        "500",
        "--size",
        "128",
        "--batch",
        "50",
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let nats = json(&out);
    assert_eq!(nats["system"], "nats-jetstream");
    assert_eq!(nats["messages"], 500);
    assert_eq!(nats["errors"], 0);
    assert_eq!(nats["latencyUs"]["samples"], 10);

    // End to end: JetStream acks for the producers, push consumers per queue subject.
    let e2e_path = dir.path().join("nats-e2e.json");
    let run = shardmq(&[
        "bench",
        "end-to-end",
        "--peer",
        "nats",
        "--peer-queues",
        "2",
        "--topic",
        "n",
        "--messages",
        "1000",
        "--size",
        "64",
        "--batch",
        "10",
        "--producers",
        "2",
        "--threads",
        "2",
        "--in-flight",
        "4",
        "--json",
        e2e_path.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let e2e = json(&e2e_path);
    assert_eq!(e2e["system"], "nats-jetstream");
    for count in ["sent", "acked", "received", "endToEndSamples"] {
        assert_eq!(e2e[count], 1000, "{count} in {e2e}");
    }
    assert_eq!(e2e["errors"], 0);

    let drain_path = dir.path().join("nats-consume.json");
    let run = shardmq(&[
        "bench",
        "consume",
        "--peer",
        "nats",
        "--peer-queues",
        "2",
        "--topic",
        "backlog",
        "--messages",
        "1500",
        "--size",
        "128",
        "--json",
        drain_path.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let drained = json(&drain_path);
    assert_eq!(drained["messages"], 1500, "{drained}");
    assert_eq!(drained["errors"], 0);
}

/// Against RocketMQ's Rust port over remoting. Not in `.ci/run`: installing the peer takes ~19
/// minutes on 2 cores. Run it with
/// `cargo install --locked rocketmq-namesrv rocketmq-broker --root R && PATH=R/bin:$PATH
/// cargo test --test cli_scenario rocketmq -- --ignored`.
#[test]
#[ignore = "needs rocketmq-namesrv-rust and rocketmq-broker-rust on PATH (see the doc comment)"]
fn the_bench_drives_rocketmq_rust_over_remoting() {
    let dir = data_dir();
    for (batch, peer) in [("1", "rocketmq-rust"), ("50", "rocketmq-rust-sync")] {
        let out = dir.path().join(format!("rocketmq-{batch}.json"));
        let run = shardmq(&[
            "bench",
            "produce",
            "--peer",
            peer,
            "--topic",
            "rq",
            "--messages",
            "500",
            "--size",
            "128",
            "--batch",
            batch,
            "--in-flight",
            "2",
            "--json",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{run:?}");
        let report = json(&out);
        assert_eq!(report["messages"], 500, "{report}");
        assert_eq!(report["errors"], 0);
    }
    let e2e_path = dir.path().join("rocketmq-e2e.json");
    let run = shardmq(&[
        "bench",
        "end-to-end",
        "--peer",
        "rocketmq-rust",
        "--peer-queues",
        "2",
        "--topic",
        "rq",
        "--messages",
        "1000",
        "--size",
        "64",
        "--batch",
        "10",
        "--producers",
        "2",
        "--threads",
        "2",
        "--json",
        e2e_path.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let e2e = json(&e2e_path);
    assert_eq!(e2e["system"], "rocketmq-rust");
    for count in ["sent", "acked", "received", "endToEndSamples"] {
        assert_eq!(e2e[count], 1000, "{count} in {e2e}");
    }

    let drain_path = dir.path().join("rocketmq-consume.json");
    let run = shardmq(&[
        "bench",
        "consume",
        "--peer",
        "rocketmq-rust",
        "--peer-queues",
        "2",
        "--topic",
        "backlog",
        "--messages",
        "1500",
        "--json",
        drain_path.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(json(&drain_path)["messages"], 1500);
}

/// The bench's RocketMQ driver against shardmq's own remoting port (2 shards), starting from
/// the name server as a stock client does: sends of one and of batches, end to end, a drain.
#[test]
fn the_bench_drives_shardmq_over_remoting_following_the_routes() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let out = dir.path().join("reports");
    std::fs::create_dir_all(&out).unwrap();
    let report = |name: &str| out.join(name).to_str().unwrap().to_string();
    let remoting = |args: &[&str], json_path: &str| {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        all.extend([
            "--peer",
            "shardmq-remoting",
            "--peer-namesrv",
            &broker.namesrv,
        ]);
        all.extend(["--json", json_path]);
        let run = shardmq(&all);
        assert!(run.status.success(), "{args:?}: {run:?}");
        json(std::path::Path::new(json_path))
    };
    for batch in ["1", "50"] {
        let path = report(&format!("produce-{batch}.json"));
        let produced = remoting(
            &[
                "produce",
                "--topic",
                "rr",
                "--messages",
                "500",
                "--size",
                "128",
                "--batch",
                batch,
            ],
            &path,
        );
        assert_eq!(produced["system"], "shardmq-remoting");
        assert_eq!(
            (produced["messages"].as_u64(), produced["errors"].as_u64()),
            (Some(500), Some(0))
        );
    }
    // The broker holds them, spread over both shards' queues.
    let status = harness::admin_json(&broker.addr, &["topic", "status", "--name", "rr"]).unwrap();
    let shards: std::collections::BTreeSet<u64> = status["queueStatus"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["max"].as_u64().unwrap_or(0) > 0)
        .map(|q| q["shard"].as_u64().unwrap())
        .collect();
    assert_eq!(shards.len(), 2, "{status}");
    let path = report("e2e.json");
    let e2e = remoting(
        &[
            "end-to-end",
            "--peer-queues",
            "4",
            "--topic",
            "re",
            "--messages",
            "1000",
            "--size",
            "64",
            "--batch",
            "10",
            "--producers",
            "2",
            "--threads",
            "2",
        ],
        &path,
    );
    for count in ["sent", "acked", "received", "endToEndSamples"] {
        assert_eq!(e2e[count], 1000, "{count} in {e2e}");
    }
    let path = report("drain.json");
    let drained = remoting(
        &[
            "consume",
            "--peer-queues",
            "4",
            "--topic",
            "rb",
            "--messages",
            "1500",
        ],
        &path,
    );
    assert_eq!(drained["messages"], 1500);
    assert_eq!(broker.stop(), Some(0));
}
