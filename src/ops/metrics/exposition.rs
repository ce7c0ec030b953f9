//! Prometheus text exposition (format 0.0.4) of every shard's snapshot.
//!
//! Names follow Prometheus conventions under `shardmq_`: counters end in `_total`, durations
//! are `_seconds`, sizes `_bytes`, ratios `_ratio`; every series of a shard carries `shard`.
//! Each family's `# HELP` and `# TYPE` come once, before its series.

use std::fmt::Write;

use shardmq_shards::stats::{HistogramSnapshot, LATENCY_BUCKETS_SECONDS};

use super::snapshot::ShardSnapshot;

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0u64;
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BUCKETS_SECONDS
                .get(i)
                .map_or("+Inf".to_string(), |b| number(*b));
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A counter or gauge with one series per shard.
fn per_shard(
    out: &mut String,
    shards: &[ShardSnapshot],
    (name, kind, help): (&str, &str, &str),
    value: impl Fn(&ShardSnapshot) -> Option<f64>,
) {
    let mut f = family(out, name, kind, help);
    for s in shards {
        if let Some(v) = value(s) {
            f.sample(name, &[("shard", &s.shard_id.to_string())], v);
        }
    }
}

/// The whole exposition: every shard's snapshot, then process-wide series.
pub fn render(shards: &[ShardSnapshot], process: &ProcessStats) -> String {
    let mut out = String::new();
    topics(&mut out, shards);
    requests(&mut out, shards);
    storage(&mut out, shards);
    queues(&mut out, shards);
    let mut f = family(
        &mut out,
        "shardmq_process_disk_written_bytes_total",
        "counter",
        "Bytes this process caused to be written to storage devices (/proc/self/io write_bytes).",
    );
    if let Some(bytes) = process.disk_written_bytes {
        f.sample(
            "shardmq_process_disk_written_bytes_total",
            &[],
            bytes as f64,
        );
    }
    let mut f = family(
        &mut out,
        "shardmq_build_info",
        "gauge",
        "The running version (always 1).",
    );
    f.sample(
        "shardmq_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    let mut f = family(
        &mut out,
        "shardmq_shards",
        "gauge",
        "Shards running, and how many answered this scrape.",
    );
    f.sample(
        "shardmq_shards",
        &[("state", "running")],
        process.shards as f64,
    );
    f.sample(
        "shardmq_shards",
        &[("state", "answered")],
        shards.len() as f64,
    );
    out
}

/// Process-wide numbers read by the HTTP thread itself.
#[derive(Debug, Clone, Default)]
pub struct ProcessStats {
    pub shards: u32,
    pub disk_written_bytes: Option<u64>,
}

impl ProcessStats {
    pub fn read(shards: u32) -> ProcessStats {
        let disk_written_bytes = std::fs::read_to_string("/proc/self/io")
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("write_bytes:"))
                    .and_then(|v| v.trim().parse().ok())
            });
        ProcessStats {
            shards,
            disk_written_bytes,
        }
    }
}

fn topics(out: &mut String, shards: &[ShardSnapshot]) {
    type Pick = fn(&super::shard::TopicCounts) -> u64;
    let families: [(&str, &str, Pick); 4] = [
        (
            "shardmq_produced_messages_total",
            "Messages stored by produces, per shard and topic.",
            |t| t.produced_messages,
        ),
        (
            "shardmq_produced_bytes_total",
            "Bytes of stored batches, per shard and topic.",
            |t| t.produced_bytes,
        ),
        (
            "shardmq_consumed_messages_total",
            "Messages returned by pulls, per shard and topic.",
            |t| t.consumed_messages,
        ),
        (
            "shardmq_consumed_bytes_total",
            "Bytes of batches returned by pulls, per shard and topic.",
            |t| t.consumed_bytes,
        ),
    ];
    for (name, help, pick) in families {
        let mut f = family(out, name, "counter", help);
        for s in shards {
            let shard = s.shard_id.to_string();
            for (topic_id, counts) in &s.metrics.topics {
                let topic = s.topic_name(*topic_id);
                f.sample(
                    name,
                    &[("shard", &shard), ("topic", &topic)],
                    pick(counts) as f64,
                );
            }
        }
    }
}

fn requests(out: &mut String, shards: &[ShardSnapshot]) {
    let name = "shardmq_request_duration_seconds";
    let mut f = family(
        out,
        name,
        "histogram",
        "Time from a request read to its reply queued, by protocol and request kind (a long poll until it parks; a sync-flush produce until appended).",
    );
    for s in shards {
        let shard = s.shard_id.to_string();
        for ((protocol, kind), h) in &s.metrics.requests {
            f.histogram(
                name,
                &[("shard", &shard), ("protocol", protocol), ("kind", kind)],
                h,
            );
        }
    }
    let name = "shardmq_rejected_requests_total";
    let mut f = family(
        out,
        name,
        "counter",
        "Requests answered with an error, by protocol and reason.",
    );
    for s in shards {
        let shard = s.shard_id.to_string();
        for ((protocol, reason), n) in &s.metrics.rejected {
            let labels = [
                ("shard", shard.as_str()),
                ("protocol", protocol),
                ("reason", reason),
            ];
            f.sample(name, &labels, *n as f64);
        }
    }
    let name = "shardmq_connections_accepted_total";
    let mut f = family(out, name, "counter", "Connections accepted, by protocol.");
    for s in shards {
        let shard = s.shard_id.to_string();
        for (protocol, n) in &s.metrics.accepted {
            f.sample(
                name,
                &[("shard", &shard), ("protocol", protocol)],
                *n as f64,
            );
        }
    }
    per_shard(
        out,
        shards,
        (
            "shardmq_connections_open",
            "gauge",
            "Connections this shard serves now.",
        ),
        |s| Some(s.open_connections as f64),
    );
}

/// One histogram family with a series per shard.
fn per_shard_histogram(
    out: &mut String,
    shards: &[ShardSnapshot],
    name: &str,
    help: &str,
    pick: fn(&ShardSnapshot) -> &HistogramSnapshot,
) {
    let mut f = family(out, name, "histogram", help);
    for s in shards {
        f.histogram(name, &[("shard", &s.shard_id.to_string())], pick(s));
    }
}

fn storage(out: &mut String, shards: &[ShardSnapshot]) {
    per_shard_histogram(
        out,
        shards,
        "shardmq_fsync_duration_seconds",
        "Time of each fdatasync of the log.",
        |s| &s.store.fsync_latency,
    );
    per_shard_histogram(
        out,
        shards,
        "shardmq_append_room_wait_seconds",
        "How long appends that waited for room waited: too much appended but not yet written (the write-behind budget), or the next segment not reserved yet.",
        |s| &s.store.room_wait,
    );
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ShardSnapshot) -> Option<f64>,
    );
    let rows: [Row; 18] = [
        ("shardmq_fsyncs_total", "counter", "fdatasyncs of the log.", |s| Some(s.store.fsyncs as f64)),
        ("shardmq_fsync_bytes_total", "counter", "Log bytes the fdatasyncs covered (divide by shardmq_fsyncs_total for bytes per fdatasync).", |s| Some(s.store.synced_bytes as f64)),
        ("shardmq_fsync_batches_total", "counter", "Batches the fdatasyncs covered (divide by shardmq_fsyncs_total for batches per fdatasync).", |s| Some(s.store.synced_batches as f64)),
        ("shardmq_log_written_bytes_total", "counter", "Log bytes handed to the DMA writer.", |s| Some(s.store.written_bytes as f64)),
        ("shardmq_log_device_write_bytes_total", "counter", "Bytes the log writer handed to the device: the log plus each fdatasync's padded last block (divide by shardmq_log_written_bytes_total for write amplification).", |s| Some(s.store.device_write_bytes as f64)),
        ("shardmq_disk_read_bytes_total", "counter", "Log bytes pulls read from disk.", |s| Some(s.store.read_bytes_disk as f64)),
        ("shardmq_segments_deleted_total", "counter", "Log segments deleted by retention.", |s| Some(s.store.segments_deleted as f64)),
        ("shardmq_appends_refused_total", "counter", "Appends refused because the disk is full or above its refuse mark, or the log is being repaired.", |s| Some(s.store.appends_refused as f64)),
        ("shardmq_append_room_waits_for_spare_total", "counter", "Appends that waited for the next segment to be reserved.", |s| Some(s.store.room_waits_for_spare as f64)),
        ("shardmq_appends_busy_total", "counter", "Appends refused as busy (SYSTEM_BUSY over remoting) after waiting --busy-after-ms for the disk to catch up.", |s| Some(s.store.appends_busy as f64)),
        ("shardmq_log_writer_failures_total", "counter", "Times the log writer failed (EIO, ENOSPC, ...); the shard refuses writes until the log is repaired.", |s| Some(s.store.writer_failures as f64)),
        ("shardmq_log_repairs_total", "counter", "Log repairs after a writer failure that succeeded (writes resumed in place).", |s| Some(s.store.log_repairs as f64)),
        ("shardmq_log_segments", "gauge", "Log segments on disk.", |s| Some(s.store.segments as f64)),
        ("shardmq_log_bytes", "gauge", "Log bytes from the oldest still stored to the newest.", |s| Some(s.store.log_bytes as f64)),
        ("shardmq_hot_tail_bytes", "gauge", "Recent batches held in memory.", |s| Some(s.store.hot_tail_bytes as f64)),
        ("shardmq_disk_used_ratio", "gauge", "Share of the data directory's filesystem in use (0 to 1).", |s| s.store.disk_used_percent.map(|p| p / 100.0)),
        ("shardmq_disk_free_bytes", "gauge", "Free bytes of the data directory's filesystem.", |s| s.store.disk_free_bytes.map(|b| b as f64)),
        ("shardmq_writes_refused", "gauge", "1 while the shard refuses writes (disk full or above its refuse mark, or its log writer failed and is being repaired).", |s| Some(f64::from(u8::from(s.store.refusing_writes)))),
    ];
    for (name, kind, help, value) in rows {
        per_shard(out, shards, (name, kind, help), value);
    }
    let name = "shardmq_read_batches_total";
    let mut f = family(
        out,
        name,
        "counter",
        "Batches pulls returned, by where they came from.",
    );
    for s in shards {
        let shard = s.shard_id.to_string();
        f.sample(
            name,
            &[("shard", &shard), ("source", "memory")],
            s.store.read_batches_memory as f64,
        );
        f.sample(
            name,
            &[("shard", &shard), ("source", "disk")],
            s.store.read_batches_disk as f64,
        );
    }
}

fn queues(out: &mut String, shards: &[ShardSnapshot]) {
    for (name, help, min) in [
        (
            "shardmq_queue_min_offset",
            "The queue's first offset still stored.",
            true,
        ),
        (
            "shardmq_queue_max_offset",
            "One past the queue's last offset.",
            false,
        ),
    ] {
        let mut f = family(out, name, "gauge", help);
        for s in shards {
            let shard = s.shard_id.to_string();
            for q in &s.queues {
                let queue = q.queue_id.to_string();
                let labels = [
                    ("shard", shard.as_str()),
                    ("topic", &q.topic),
                    ("queue", &queue),
                ];
                let v = if min { q.min_offset } else { q.max_offset };
                f.sample(name, &labels, v as f64);
            }
        }
    }
    for (name, help, lag) in [
        (
            "shardmq_consumer_offset",
            "A consumer group's committed offset of a queue.",
            false,
        ),
        (
            "shardmq_consumer_lag_messages",
            "Messages of a queue a consumer group has not committed yet.",
            true,
        ),
    ] {
        let mut f = family(out, name, "gauge", help);
        for s in shards {
            let shard = s.shard_id.to_string();
            for row in &s.lag {
                let queue = row.queue_id.to_string();
                let labels = [
                    ("shard", shard.as_str()),
                    ("group", &row.group),
                    ("topic", &row.topic),
                    ("queue", &queue),
                ];
                let v = if lag { row.lag() } else { row.committed };
                f.sample(name, &labels, v as f64);
            }
        }
    }
}
