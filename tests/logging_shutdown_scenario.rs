//! Logs and shutdown: `--log-format json` writes one JSON object per line with the level and
//! the fields; `--log` takes tracing directives and refuses bad ones at start; SIGINT stops the
//! broker cleanly, as SIGTERM does.

mod harness;

use harness::{data_dir, Broker};

#[test]
fn json_logs_bad_filters_and_sigint() {
    let dir = data_dir();
    let broker = Broker::start(
        dir.path(),
        &["--log-format", "json", "--log", "warn,shardmq::boot=info"],
    );
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(broker.pid(), libc::SIGINT) };
    let log = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let log = broker.stderr();
            if log.contains("broker stopped cleanly") || std::time::Instant::now() > deadline {
                break log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["fields"].is_object()));
    let shutdown = lines
        .iter()
        .find(|l| l["fields"]["message"] == "shutdown requested")
        .expect("the boot logged the shutdown at info");
    assert_eq!(
        shutdown["fields"]["signal"],
        libc::SIGINT,
        "fields stay structured"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["fields"]["message"] == "shard recovered"),
        "the store's info lines are filtered out by warn"
    );
    assert_eq!(
        broker.stop(),
        Some(0),
        "SIGINT ended the broker with status 0"
    );

    let err = Broker::try_start(&dir.path().join("other"), &["--log", "shardmq=loud"])
        .err()
        .expect("a bad filter is refused");
    assert!(err.contains("--log") && err.contains("loud"), "{err}");
}
