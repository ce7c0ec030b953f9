//! What shardmq's logs did during a run, from the shards' own counters (`ShardStats`, read
//! before and after the run and subtracted): bytes given to the log writers, bytes they handed
//! to the device (block padding and rewritten partial blocks included), fdatasyncs and the
//! batches those covered. A native produce run states them, so the write amplification of
//! `--flush sync` is in the bench's own output, not only in a script around it.
//!
//! Limits: the counters are the broker's, for every client of it: another producer running at
//! the same time is counted too. A shard restarted during the run resets its counters; the
//! difference is then not taken (`None`).

use shardmq_client::{Client, ClientConfig};

use crate::error::BenchError;

/// The shards' log counters at one moment, summed over the shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounters {
    pub written_bytes: u64,
    pub device_bytes: u64,
    pub fsyncs: u64,
    pub synced_batches: u64,
}

impl LogCounters {
    /// What happened between `before` and `self`; `None` if any counter went back.
    pub fn since(&self, before: &LogCounters) -> Option<LogCounters> {
        Some(LogCounters {
            written_bytes: self.written_bytes.checked_sub(before.written_bytes)?,
            device_bytes: self.device_bytes.checked_sub(before.device_bytes)?,
            fsyncs: self.fsyncs.checked_sub(before.fsyncs)?,
            synced_batches: self.synced_batches.checked_sub(before.synced_batches)?,
        })
    }

    /// Bytes to the device per byte written to the log.
    pub fn amplification(&self) -> Option<f64> {
        (self.written_bytes > 0).then(|| self.device_bytes as f64 / self.written_bytes as f64)
    }

    /// `log (the broker's counters over the run): 205.3 MB written, 221.0 MB to the device
    /// (1.08x), 2051 fdatasyncs (4.9 batches each)`.
    pub fn summary_line(&self) -> String {
        let per_sync = match self.fsyncs {
            0 => String::new(),
            n => format!(
                " ({:.1} batches each)",
                self.synced_batches as f64 / n as f64
            ),
        };
        format!(
            "log (the broker's counters over the run): {:.1} MB written, {:.1} MB to the device ({}), {} fdatasyncs{per_sync}",
            self.written_bytes as f64 / 1e6,
            self.device_bytes as f64 / 1e6,
            self.amplification()
                .map_or("-".to_string(), |a| format!("{a:.2}x")),
            self.fsyncs,
        )
    }
}

/// Reads every shard's counters through `client` and sums them.
pub async fn read(client: &Client) -> Result<LogCounters, BenchError> {
    let mut sum = LogCounters::default();
    for shard in 0..client.shard_count() {
        let stats = client.shard_stats(shard).await?;
        sum.written_bytes += stats.log_written_bytes;
        sum.device_bytes += stats.log_device_write_bytes;
        sum.fsyncs += stats.fsyncs;
        sum.synced_batches += stats.synced_batches;
    }
    Ok(sum)
}

/// [`read`] from a client of its own, on a pinned executor of its own (blocks the caller).
pub fn read_blocking(
    broker: &str,
    config: ClientConfig,
    cpu: usize,
) -> Result<LogCounters, BenchError> {
    let broker = broker.to_owned();
    crate::runtime::run_pinned("bench-log-io", cpu, 0, move || async move {
        let client = Client::connect_with(&broker, "shardmq-bench-log-io", config).await?;
        read(&client).await
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_difference_states_amplification_and_batches_per_sync() {
        let before = LogCounters {
            written_bytes: 1_000,
            device_bytes: 4_096,
            fsyncs: 1,
            synced_batches: 1,
        };
        let after = LogCounters {
            written_bytes: 101_000,
            device_bytes: 112_096,
            fsyncs: 11,
            synced_batches: 41,
        };
        let run = after.since(&before).unwrap();
        assert_eq!(run.amplification(), Some(1.08));
        let line = run.summary_line();
        assert!(line.contains("0.1 MB written"), "{line}");
        assert!(line.contains("(1.08x)"), "{line}");
        assert!(line.contains("10 fdatasyncs (4.0 batches each)"), "{line}");
        assert_eq!(
            before.since(&after),
            None,
            "a restarted shard's counters went back"
        );
        assert_eq!(LogCounters::default().amplification(), None);
    }
}
