//! Counters and histograms a shard keeps about itself, for the metrics endpoint.
//!
//! Everything here is plain `Cell`s on the shard's own core: recording costs an add (and, for
//! a histogram, a search over a few bucket bounds), never an atomic or a lock. A scrape asks
//! each shard for a [`StoreStatsSnapshot`] (plain numbers, `Send`) over a channel, so the
//! request path never sees the scraper.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`); the last bucket, `+Inf`,
/// is implied.
pub const LATENCY_BUCKETS_SECONDS: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const BUCKET_NANOS: [u64; 19] = {
    let mut out = [0u64; 19];
    let mut i = 0;
    while i < 19 {
        out[i] = (LATENCY_BUCKETS_SECONDS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// A latency histogram over [`LATENCY_BUCKETS_SECONDS`].
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: [Cell<u64>; 20],
    sum_nanos: Cell<u64>,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS.partition_point(|bound| *bound < nanos);
        let cell = &self.counts[bucket];
        cell.set(cell.get() + 1);
        self.sum_nanos
            .set(self.sum_nanos.get().saturating_add(nanos));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.counts.iter().map(Cell::get).collect(),
            sum_seconds: self.sum_nanos.get() as f64 / 1e9,
        }
    }
}

/// A histogram's numbers at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket of [`LATENCY_BUCKETS_SECONDS`] and then `+Inf`; not cumulative.
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// What the store counts about its own work.
#[derive(Default)]
pub struct StoreStats {
    pub fsyncs: Cell<u64>,
    pub fsync_latency: Histogram,
    /// Log bytes and batches each fdatasync covered, summed.
    pub synced_bytes: Cell<u64>,
    pub synced_batches: Cell<u64>,
    /// Bytes handed to the DMA writer (the log as appended).
    pub written_bytes: Cell<u64>,
    /// Bytes the writer handed to the device: the log, plus the padding of each sync's last
    /// block and that block written again by the next write (see `segment_writer`).
    pub device_write_bytes: std::rc::Rc<Cell<u64>>,
    /// Batches a read served from the hot tail, and from disk.
    pub read_batches_memory: Cell<u64>,
    pub read_batches_disk: Cell<u64>,
    pub read_bytes_disk: Cell<u64>,
    pub segments_deleted: Cell<u64>,
    pub appends_refused: Cell<u64>,
    /// Appends refused as busy after waiting `busy_after` for room.
    pub appends_busy: Cell<u64>,
    /// How long appends that had to wait for room waited (too much unwritten, or the next
    /// segment not reserved yet), and how many of those waits began for the spare.
    pub room_wait: Histogram,
    pub room_waits_for_spare: Cell<u64>,
    /// Times the log writer failed (a write, fdatasync, roll or repair), and repairs that
    /// succeeded (see `log_repair`).
    pub writer_failures: Cell<u64>,
    pub log_repairs: Cell<u64>,
}

pub(crate) fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

/// The store's numbers at one moment: its counters and the state behind its gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStatsSnapshot {
    pub fsyncs: u64,
    pub fsync_latency: HistogramSnapshot,
    pub synced_bytes: u64,
    pub synced_batches: u64,
    pub written_bytes: u64,
    pub device_write_bytes: u64,
    pub read_batches_memory: u64,
    pub read_batches_disk: u64,
    pub read_bytes_disk: u64,
    pub segments_deleted: u64,
    pub appends_refused: u64,
    pub appends_busy: u64,
    pub room_wait: HistogramSnapshot,
    pub room_waits_for_spare: u64,
    pub writer_failures: u64,
    pub log_repairs: u64,
    pub segments: u64,
    /// From the log's first byte still stored to its last appended one.
    pub log_bytes: u64,
    pub hot_tail_bytes: u64,
    /// Percent of the data directory's filesystem in use, and its free bytes.
    pub disk_used_percent: Option<f64>,
    pub disk_free_bytes: Option<u64>,
    /// Appends are refused now (a water mark, no room for the next segment, or the log writer
    /// failed and is not repaired yet).
    pub refusing_writes: bool,
}

impl StoreStats {
    fn counters(&self) -> StoreStatsSnapshot {
        StoreStatsSnapshot {
            fsyncs: self.fsyncs.get(),
            fsync_latency: self.fsync_latency.snapshot(),
            synced_bytes: self.synced_bytes.get(),
            synced_batches: self.synced_batches.get(),
            written_bytes: self.written_bytes.get(),
            device_write_bytes: self.device_write_bytes.get(),
            read_batches_memory: self.read_batches_memory.get(),
            read_batches_disk: self.read_batches_disk.get(),
            read_bytes_disk: self.read_bytes_disk.get(),
            segments_deleted: self.segments_deleted.get(),
            appends_refused: self.appends_refused.get(),
            appends_busy: self.appends_busy.get(),
            room_wait: self.room_wait.snapshot(),
            room_waits_for_spare: self.room_waits_for_spare.get(),
            writer_failures: self.writer_failures.get(),
            log_repairs: self.log_repairs.get(),
            ..StoreStatsSnapshot::default()
        }
    }
}

impl crate::store::ShardStore {
    /// The store's counters and gauges now.
    pub fn stats(&self) -> StoreStatsSnapshot {
        let inner = &self.inner;
        let d = &inner.log.durability;
        let first = inner
            .segments
            .borrow()
            .first_base()
            .unwrap_or(d.appended().0);
        let disk = crate::retention::disk_usage(self.dir());
        let refusing = inner.disk_refusal.get().is_some()
            || inner.log.spare_refused()
            || inner.log.check_failed().is_err();
        StoreStatsSnapshot {
            segments: inner.segments.borrow().len() as u64,
            log_bytes: d.appended().0 - first,
            hot_tail_bytes: inner.hot_tail.borrow().bytes() as u64,
            disk_used_percent: disk.map(|d| d.used_percent),
            disk_free_bytes: disk.map(|d| d.free_bytes),
            refusing_writes: refusing,
            ..inner.log.stats.counters()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(11));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2, "5 µs and exactly 10 µs are <= 10 µs");
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[19], 1, "past the last bound: +Inf");
        assert_eq!(s.count(), 4);
        assert!((s.sum_seconds - 60.000_026).abs() < 1e-9);
    }
}
