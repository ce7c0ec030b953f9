//! [`Report`]: the result of one bench run, its latency summary, and its two renderings: a
//! human-readable summary and JSON.
//!
//! Units: latencies are recorded in microseconds in an hdrhistogram (3 significant digits).
//! Throughput in MB/s uses MB = 10^6 bytes of message payload (keys, headers and framing are not
//! counted). JSON field names follow the OpenMessaging Benchmark where one fits: `publishRate`
//! (msg/s), `publishLatency{Avg,50pct,99pct,999pct,9999pct,Max}` for produce and
//! `consumeRate`, `pullLatency…` for consume. As in OMB those latency fields are in
//! milliseconds (floats, µs precision); the same values in integer microseconds are under
//! `latencyUs`. Plain data, `Send`.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::error::BenchError;

/// Latency histogram bounds: 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// Records a latency, clamped to the histogram's range.
pub fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(us.max(1));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchKind {
    Produce,
    Consume,
    EndToEnd,
}

impl BenchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BenchKind::Produce => "produce",
            BenchKind::Consume => "consume",
            BenchKind::EndToEnd => "end-to-end",
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    pub avg_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            avg_us: h.mean(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            p9999_us: h.value_at_quantile(0.9999),
            max_us: h.max(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The system measured: `shardmq`, or a peer's name (`peers`).
    pub system: &'static str,
    pub kind: BenchKind,
    pub topic: String,
    /// Messages acknowledged (produce) or received and verified (consume).
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// First send to last ack (produce); start to last message received (consume).
    pub elapsed: Duration,
    /// Failed requests.
    pub errors: u64,
    /// Requests answered busy and sent again (not errors).
    pub busy: u64,
    /// Payload bytes per message (consume: the average received).
    pub message_size: u64,
    /// Messages per request (consume: the average per non-empty pull).
    pub batch_size: u64,
    /// Producers (produce) or consumers, one per queue (consume).
    pub clients: u32,
    /// Requests each client keeps in flight.
    pub in_flight: u32,
    /// Per-request latency: send to ack (produce), pull round trip (consume). In open-loop
    /// produce (`--rate`) it is measured from the *intended* send time, so a stall shows as
    /// latency instead of as samples that were never taken (no coordinated omission).
    pub latency: LatencySummary,
    /// Open-loop produce only: how late each request went out against its schedule.
    pub publish_delay: Option<LatencySummary>,
    /// Open-loop produce only: the target rate in messages per second.
    pub target_rate: Option<f64>,
    /// End-to-end runs only: producer send to consumer receipt, per record.
    pub end_to_end: Option<LatencySummary>,
    /// Messages acknowledged (produce) or received (consume) in each second of the run.
    pub rate_series: Vec<u64>,
    /// p99 of `latency` in each second of the run, µs (0: no sample that second).
    pub p99_series: Vec<u64>,
    /// End-to-end runs: p99 of send-to-receipt latency in each second, µs.
    pub end_to_end_p99_series: Vec<u64>,
    /// Bench executors that produced (consume: that consumed); their histograms were merged.
    pub threads: u32,
    /// Messages sent, warm-up included (consume: equal to `messages`).
    pub sent: u64,
    /// Messages acknowledged during the warm-up (in no figure above).
    pub warmup_messages: u64,
    pub warmup: Duration,
    /// Duration mode: the planned measured seconds.
    pub planned_duration: Option<Duration>,
    /// Records the consumers received (end-to-end: warm-up included; consume: = `messages`).
    pub received: Option<u64>,
    /// shardmq client batching (`--linger-us`): messages were handed to the client's Producer
    /// one at a time, with this linger.
    pub client_linger_us: Option<u64>,
    /// shardmq's log counters over the run (native produce runs; `crate::log_io`).
    pub log_io: Option<crate::log_io::LogCounters>,
    /// `/proc/loadavg` (1, 5, 15 min) before the run started and after it ended.
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    /// How the consumers consumed: `group G (clustering|broadcasting)`, and the filter.
    pub consumption: Option<Consumption>,
    /// The tags the batches carried (`name:weight,…`).
    pub tags: Option<String>,
}

/// End-to-end through a consumer group, or a filtered drain.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumption {
    pub group: Option<String>,
    pub broadcasting: bool,
    /// `tags a || b` or `sql92 …`.
    pub filter: Option<String>,
    /// Receipts the consumers should have seen (`None`: the bench cannot tell, SQL92).
    pub expected_receipts: Option<u64>,
}

impl Report {
    /// A report with nothing measured yet, for `Report { field: …, ..Report::empty(…) }`.
    pub fn empty(system: &'static str, kind: BenchKind, topic: &str) -> Report {
        Report {
            system,
            kind,
            topic: topic.to_owned(),
            messages: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            errors: 0,
            busy: 0,
            message_size: 0,
            batch_size: 0,
            clients: 0,
            in_flight: 0,
            latency: LatencySummary::default(),
            publish_delay: None,
            target_rate: None,
            end_to_end: None,
            rate_series: Vec::new(),
            p99_series: Vec::new(),
            end_to_end_p99_series: Vec::new(),
            threads: 1,
            sent: 0,
            warmup_messages: 0,
            warmup: Duration::ZERO,
            planned_duration: None,
            received: None,
            client_linger_us: None,
            log_io: None,
            load_before: None,
            load_after: None,
            consumption: None,
            tags: None,
        }
    }

    pub fn msg_per_sec(&self) -> f64 {
        per_sec(self.messages as f64, self.elapsed)
    }

    /// MB/s of payload, MB = 10^6 bytes.
    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / 1e6, self.elapsed)
    }

    pub fn to_json(&self) -> Value {
        let l = &self.latency;
        let (rate, prefix, clients) = match self.kind {
            BenchKind::Produce | BenchKind::EndToEnd => {
                ("publishRate", "publishLatency", "producers")
            }
            BenchKind::Consume => ("consumeRate", "pullLatency", "consumers"),
        };
        let mut map = Map::new();
        map.insert("system".into(), json!(self.system));
        map.insert(
            "command".into(),
            json!(std::env::args().collect::<Vec<_>>().join(" ")),
        );
        map.insert("kind".into(), json!(self.kind.as_str()));
        map.insert("topic".into(), json!(self.topic));
        map.insert("messages".into(), json!(self.messages));
        map.insert("bytes".into(), json!(self.bytes));
        map.insert("elapsedSeconds".into(), json!(self.elapsed.as_secs_f64()));
        map.insert("msgPerSec".into(), json!(self.msg_per_sec()));
        map.insert("mbPerSec".into(), json!(self.mb_per_sec()));
        map.insert("errors".into(), json!(self.errors));
        map.insert("busy".into(), json!(self.busy));
        map.insert("messageSize".into(), json!(self.message_size));
        map.insert("batchSize".into(), json!(self.batch_size));
        map.insert(clients.into(), json!(self.clients));
        map.insert("inFlight".into(), json!(self.in_flight));
        map.insert(rate.into(), json!(self.msg_per_sec()));
        insert_latency(&mut map, prefix, l);
        map.insert(
            "latencyUs".into(),
            json!({
                "samples": l.count,
                "avg": l.avg_us,
                "p50": l.p50_us,
                "p90": l.p90_us,
                "p99": l.p99_us,
                "p999": l.p999_us,
                "p9999": l.p9999_us,
                "max": l.max_us,
            }),
        );
        if let Some(d) = &self.publish_delay {
            insert_latency(&mut map, "publishDelayLatency", d);
        }
        if let Some(e) = &self.end_to_end {
            insert_latency(&mut map, "endToEndLatency", e);
            map.insert("endToEndSamples".into(), json!(e.count));
        }
        map.insert("targetRate".into(), json!(self.target_rate));
        map.insert(
            "rateMode".into(),
            json!(if self.target_rate.is_some() {
                "open-loop"
            } else {
                "closed-loop"
            }),
        );
        map.insert(format!("{}Series", rate), json!(self.rate_series));
        let mb_series: Vec<f64> = self
            .rate_series
            .iter()
            .map(|&n| n as f64 * self.message_size as f64 / 1e6)
            .collect();
        map.insert("mbPerSecSeries".into(), json!(mb_series));
        let ms_series =
            |series: &[u64]| -> Vec<f64> { series.iter().map(|&us| us as f64 / 1000.0).collect() };
        map.insert(
            format!("{prefix}99pctSeries"),
            json!(ms_series(&self.p99_series)),
        );
        if self.end_to_end.is_some() {
            map.insert(
                "endToEndLatency99pctSeries".into(),
                json!(ms_series(&self.end_to_end_p99_series)),
            );
        }
        map.insert("threads".into(), json!(self.threads));
        map.insert("sent".into(), json!(self.sent));
        map.insert("acked".into(), json!(self.messages + self.warmup_messages));
        map.insert("received".into(), json!(self.received));
        map.insert("warmupMessages".into(), json!(self.warmup_messages));
        map.insert("warmupSeconds".into(), json!(self.warmup.as_secs_f64()));
        map.insert(
            "durationSeconds".into(),
            json!(self.planned_duration.map(|d| d.as_secs_f64())),
        );
        map.insert("clientLingerUs".into(), json!(self.client_linger_us));
        if let Some(log) = &self.log_io {
            map.insert("logWrittenBytes".into(), json!(log.written_bytes));
            map.insert("logDeviceWriteBytes".into(), json!(log.device_bytes));
            map.insert("logWriteAmplification".into(), json!(log.amplification()));
            map.insert("logFsyncs".into(), json!(log.fsyncs));
            map.insert("logSyncedBatches".into(), json!(log.synced_batches));
        }
        map.insert("tags".into(), json!(self.tags));
        if let Some(c) = &self.consumption {
            map.insert("consumerGroup".into(), json!(c.group));
            map.insert(
                "messageModel".into(),
                json!(if c.broadcasting {
                    "broadcasting"
                } else {
                    "clustering"
                }),
            );
            map.insert("filter".into(), json!(c.filter));
            map.insert("expectedReceipts".into(), json!(c.expected_receipts));
        }
        map.insert("gitCommit".into(), json!(git_commit()));
        map.insert("loadAverageBefore".into(), json!(self.load_before));
        map.insert("loadAverageAfter".into(), json!(self.load_after));
        map.insert(
            "mbDefinition".into(),
            json!("10^6 bytes of message payload"),
        );
        Value::Object(map)
    }

    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let l = &self.latency;
        let (clients, what) = match self.kind {
            BenchKind::Produce | BenchKind::EndToEnd => ("producers", "per batch, send to ack"),
            BenchKind::Consume => ("consumers", "per pull, round trip"),
        };
        format!(
            "{kind} topic={topic} messages={messages} size={size} B batch={batch}{linger} {clients}={n} in-flight={inflight}\n\
             elapsed {elapsed:.3} s  {rate:.0} msg/s  {mb:.2} MB/s (MB = 10^6 payload bytes)  errors {errors}{busy}\n\
             latency µs ({what}, {samples} samples): avg {avg:.1}  p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  p99.99 {p9999}  max {max}{delay}{e2e}{log}",
            kind = self.kind.as_str(),
            topic = self.topic,
            messages = self.messages,
            size = self.message_size,
            batch = self.batch_size,
            n = self.clients,
            inflight = self.in_flight,
            linger = match self.client_linger_us {
                Some(us) => format!(" (one at a time through the client Producer, linger {us} µs)"),
                None => String::new(),
            },
            elapsed = self.elapsed.as_secs_f64(),
            rate = self.msg_per_sec(),
            mb = self.mb_per_sec(),
            errors = self.errors,
            busy = match self.busy {
                0 => String::new(),
                n => format!("  busy {n} (sent again)"),
            },
            samples = l.count,
            avg = l.avg_us,
            p50 = l.p50_us,
            p90 = l.p90_us,
            p99 = l.p99_us,
            p999 = l.p999_us,
            p9999 = l.p9999_us,
            max = l.max_us,
            e2e = match &self.end_to_end {
                Some(e) => format!(
                    "\nend to end µs (send to receipt, {} records): p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}{}",
                    e.count, e.p50_us, e.p90_us, e.p99_us, e.p999_us, e.p9999_us, e.max_us,
                    self.consumption_line()
                ),
                None => self.consumption_line(),
            },
            log = match &self.log_io {
                Some(log) => format!("\n{}", log.summary_line()),
                None => String::new(),
            },
            delay = match (&self.publish_delay, self.target_rate) {
                (Some(d), Some(rate)) => format!(
                    "\nopen loop at {rate:.0} msg/s, latency from the intended send time; publish delay µs: p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
                    d.p50_us, d.p90_us, d.p99_us, d.p999_us, d.p9999_us, d.max_us
                ),
                _ => String::new(),
            },
        )
    }

    /// `\nconsumed through group g (clustering), filter tags a: received 10 of 10 expected`.
    fn consumption_line(&self) -> String {
        let Some(c) = &self.consumption else {
            return String::new();
        };
        let mut line = String::from("\nconsumed");
        if let Some(group) = &c.group {
            let model = if c.broadcasting {
                "broadcasting"
            } else {
                "clustering"
            };
            line += &format!(" through group {group} ({model})");
        }
        if let Some(filter) = &c.filter {
            line += &format!(", filter {filter}");
        }
        let received = self.received.unwrap_or(0);
        match c.expected_receipts {
            Some(expected) => line += &format!(": received {received} of {expected} expected"),
            None => {
                line += &format!(": received {received} (the bench cannot count a SQL92 selection)")
            }
        }
        line
    }

    pub fn write_json(&self, path: &Path) -> Result<(), BenchError> {
        let text = serde_json::to_string_pretty(&self.to_json()).expect("a JSON value serializes");
        std::fs::write(path, text + "\n").map_err(|source| BenchError::WriteReport {
            path: path.to_owned(),
            source,
        })
    }

    /// Prints the summary and, when `json` is set, writes the JSON file.
    pub(crate) fn publish(&self, json: Option<&Path>) -> Result<(), BenchError> {
        println!("{}", self.summary());
        if let Some(path) = json {
            self.write_json(path)?;
        }
        Ok(())
    }
}

/// Inserts OMB-style `{prefix}Avg`, `{prefix}50pct` … `{prefix}Max` fields, in milliseconds.
fn insert_latency(map: &mut Map<String, Value>, prefix: &str, l: &LatencySummary) {
    let ms = |us: u64| us as f64 / 1000.0;
    map.insert(format!("{prefix}Avg"), json!(l.avg_us / 1000.0));
    for (suffix, us) in [
        ("50pct", l.p50_us),
        ("90pct", l.p90_us),
        ("99pct", l.p99_us),
        ("999pct", l.p999_us),
        ("9999pct", l.p9999_us),
        ("Max", l.max_us),
    ] {
        map.insert(format!("{prefix}{suffix}"), json!(ms(us)));
    }
}

/// The short commit of the git checkout the bench runs in, if it runs in one.
pub(crate) fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        Report {
            messages: 1_000_000,
            bytes: 1_000_000 * 1024,
            elapsed: Duration::from_secs(4),
            errors: 2,
            busy: 0,
            message_size: 1024,
            batch_size: 10,
            clients: 3,
            in_flight: 4,
            latency: LatencySummary::from_histogram(&h),
            rate_series: vec![250_000; 4],
            p99_series: vec![9_900; 4],
            sent: 1_000_000,
            ..Report::empty("shardmq", BenchKind::Produce, "orders")
        }
    }

    #[test]
    fn percentiles_from_a_histogram() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 10_000);
        // 3 significant digits: values are exact to within 0.1 %.
        let close = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(close(s.p50_us, 5_000), "{}", s.p50_us);
        assert!(close(s.p99_us, 9_900), "{}", s.p99_us);
        assert!(close(s.p999_us, 9_990), "{}", s.p999_us);
        assert!(close(s.p9999_us, 9_999), "{}", s.p9999_us);
        assert!(close(s.max_us, 10_000), "{}", s.max_us);
        assert!((s.avg_us - 5_000.5).abs() < 5.0, "{}", s.avg_us);
        assert_eq!(
            LatencySummary::from_histogram(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn record_latency_clamps_to_one_microsecond() {
        let mut h = new_histogram();
        record_latency(&mut h, Duration::from_nanos(10));
        record_latency(&mut h, Duration::from_micros(1500));
        assert_eq!(h.min(), 1);
        assert!(h.max().abs_diff(1500) <= 2);
    }

    #[test]
    fn rates_use_decimal_megabytes() {
        let r = sample_report();
        assert_eq!(r.msg_per_sec(), 250_000.0);
        assert_eq!(r.mb_per_sec(), 1024.0 * 1e6 / 4.0 / 1e6);
        let zero = Report {
            elapsed: Duration::ZERO,
            ..r
        };
        assert_eq!(zero.msg_per_sec(), 0.0);
    }

    #[test]
    fn produce_json_uses_omb_names() {
        let r = sample_report();
        let v = r.to_json();
        for key in [
            "kind",
            "topic",
            "messages",
            "bytes",
            "elapsedSeconds",
            "msgPerSec",
            "mbPerSec",
            "errors",
            "messageSize",
            "batchSize",
            "producers",
            "inFlight",
            "publishRate",
            "publishLatencyAvg",
            "publishLatency50pct",
            "publishLatency99pct",
            "publishLatency999pct",
            "publishLatency9999pct",
            "publishLatencyMax",
            "latencyUs",
            "publishLatency99pctSeries",
            "mbPerSecSeries",
            "threads",
            "sent",
            "acked",
            "warmupMessages",
            "loadAverageBefore",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["kind"], "produce");
        assert_eq!(v["messages"], 1_000_000);
        assert_eq!(v["producers"], 3);
        assert_eq!(v["elapsedSeconds"], 4.0);
        assert_eq!(v["publishRate"], 250_000.0);
        assert_eq!(v["msgPerSec"], v["publishRate"]);
        // OMB latency fields are milliseconds; latencyUs has the same in microseconds.
        let p99_us = v["latencyUs"]["p99"].as_u64().unwrap();
        assert_eq!(
            v["publishLatency99pct"].as_f64().unwrap(),
            p99_us as f64 / 1000.0
        );
        assert_eq!(v["latencyUs"]["max"].as_u64().unwrap(), r.latency.max_us);
        assert!(v.get("consumeRate").is_none());
        assert_eq!(v["publishLatency99pctSeries"][0], 9.9);
    }

    #[test]
    fn consume_json_and_summary() {
        let r = Report {
            kind: BenchKind::Consume,
            ..sample_report()
        };
        let v = r.to_json();
        assert_eq!(v["kind"], "consume");
        assert!(v.get("consumeRate").is_some() && v.get("pullLatency99pct").is_some());
        assert_eq!(v["consumers"], 3);
        assert!(v.get("publishRate").is_none());
        let text = r.summary();
        assert!(
            text.contains("consume topic=orders messages=1000000"),
            "{text}"
        );
        assert!(text.contains("250000 msg/s"), "{text}");
        assert!(text.contains("MB = 10^6"), "{text}");
    }

    #[test]
    fn json_file_round_trips() {
        let r = sample_report();
        let dir = std::env::temp_dir().join(format!("shardmq-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.json");
        r.write_json(&path).unwrap();
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, r.to_json());
        std::fs::remove_dir_all(&dir).unwrap();
        let err = r.write_json(&dir.join("missing/dir/x.json")).unwrap_err();
        assert!(matches!(err, BenchError::WriteReport { .. }));
    }
}
