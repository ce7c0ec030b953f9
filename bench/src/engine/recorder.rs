//! What one bench executor measures, and how the executors' measurements merge.
//!
//! Each executor thread owns one [`Recorder`] (`RefCell`s: one thread, no locks on the hot
//! path). When its work ends it becomes a [`ThreadResult`] (plain data, `Send`), and the thread
//! that started the run merges them: histograms add, per-second buckets add by index, counts
//! add, the last ack is the latest of all. Merging is exact for counts and for the full
//! histograms; the per-second p99 comes from coarser per-second histograms (2 significant
//! digits, so within 1 %).
//!
//! Warm-up: every sample whose request was *sent* (or due) before `measure_from` counts as
//! warm-up: it is acknowledged and counted in `warmup_messages`, but it is in no histogram and no
//! per-second bucket. Seconds are counted from `measure_from`.
//!
//! Slow requests (`--log-slow-us`): each measured acknowledgement slower than the threshold is
//! printed to stderr as `slow request: sent_monotonic_s=<s.µs> latency_us=<n>`, the send time
//! on CLOCK_MONOTONIC, so a tail can be matched against `perf` or kernel traces. That is how
//! the round-trip tail was taken apart (`perf-reports/2026-12-03-round-trip-tail/`).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::{new_histogram, record_latency};

/// Per-second histogram bounds: 1 µs to 60 s, 2 significant digits (~40 KB each).
fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("static histogram bounds are valid")
}

/// One second of a run: messages completed in it and the latency of those completions.
#[derive(Debug, Clone)]
pub struct SecondBucket {
    pub messages: u64,
    pub latency: Histogram<u64>,
}

impl SecondBucket {
    fn new() -> Self {
        SecondBucket {
            messages: 0,
            latency: second_histogram(),
        }
    }
}

/// Full histogram plus per-second buckets of one kind of latency.
#[derive(Debug, Clone)]
pub struct Track {
    pub histogram: Histogram<u64>,
    pub seconds: Vec<SecondBucket>,
}

impl Default for Track {
    fn default() -> Self {
        Track {
            histogram: new_histogram(),
            seconds: Vec::new(),
        }
    }
}

impl Track {
    /// Records `count` messages completing at `second` with `latency`.
    pub fn record(&mut self, second: usize, latency: Duration, count: u64) {
        record_latency(&mut self.histogram, latency);
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, SecondBucket::new);
        }
        let bucket = &mut self.seconds[second];
        bucket.messages += count;
        record_latency(&mut bucket.latency, latency);
    }

    pub fn merge(&mut self, other: &Track) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds add");
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize_with(other.seconds.len(), SecondBucket::new);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.messages += theirs.messages;
            mine.latency
                .add(&theirs.latency)
                .expect("histograms with the same bounds add");
        }
    }

    /// Messages per second of the run.
    pub fn rate_series(&self) -> Vec<u64> {
        self.seconds.iter().map(|s| s.messages).collect()
    }

    /// p99 in µs per second of the run (0 for a second without samples).
    pub fn p99_series(&self) -> Vec<u64> {
        self.seconds
            .iter()
            .map(|s| {
                if s.latency.is_empty() {
                    0
                } else {
                    s.latency.value_at_quantile(0.99)
                }
            })
            .collect()
    }
}

/// Everything one executor measured; `Send`, merged by [`ThreadResult::merge`].
#[derive(Debug, Clone, Default)]
pub struct ThreadResult {
    /// Publish latency: send (or intended send) to ack, per request.
    pub publish: Track,
    /// Open loop: actual send time minus intended send time, per request.
    pub delay: Track,
    /// End-to-end: send to receipt, per record.
    pub end_to_end: Track,
    /// Messages acknowledged in the measured window.
    pub acked: u64,
    /// Messages acknowledged during warm-up.
    pub warmup_acked: u64,
    /// Messages sent (acknowledged or not), warm-up included.
    pub sent: u64,
    /// Records received by consumers, warm-up included.
    pub received: u64,
    pub errors: u64,
    /// Requests answered busy (and sent again): not errors, but the system pushing back.
    pub busy: u64,
    /// The last measured acknowledgement.
    pub last_ack: Option<Instant>,
    /// The last record received.
    pub last_receipt: Option<Instant>,
    /// The first error's text, and the last one's.
    pub first_error: Option<String>,
    pub last_error: Option<String>,
}

impl ThreadResult {
    pub fn merge(&mut self, other: &ThreadResult) {
        self.publish.merge(&other.publish);
        self.delay.merge(&other.delay);
        self.end_to_end.merge(&other.end_to_end);
        self.acked += other.acked;
        self.warmup_acked += other.warmup_acked;
        self.sent += other.sent;
        self.received += other.received;
        self.errors += other.errors;
        self.busy += other.busy;
        self.last_ack = self.last_ack.max(other.last_ack);
        self.last_receipt = self.last_receipt.max(other.last_receipt);
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
        if other.last_error.is_some() {
            self.last_error = other.last_error.clone();
        }
    }
}

/// Prints requests slower than a threshold with their send time on CLOCK_MONOTONIC.
#[derive(Debug)]
pub struct SlowLog {
    threshold: Duration,
    /// One moment as an `Instant` and as CLOCK_MONOTONIC seconds, read back to back (std's
    /// `Instant` is CLOCK_MONOTONIC on Linux but does not expose its value).
    epoch: Instant,
    epoch_monotonic_s: f64,
}

impl SlowLog {
    pub fn new(threshold: Duration) -> Self {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let epoch = Instant::now();
        // SAFETY: clock_gettime writes one timespec through the pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        SlowLog {
            threshold,
            epoch,
            epoch_monotonic_s: now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9,
        }
    }

    /// The line for a request sent at `sent` that took `latency`, if it was slow.
    fn line(&self, sent: Instant, latency: Duration) -> Option<String> {
        if latency <= self.threshold {
            return None;
        }
        let offset_s = if sent >= self.epoch {
            sent.duration_since(self.epoch).as_secs_f64()
        } else {
            -self.epoch.duration_since(sent).as_secs_f64()
        };
        Some(format!(
            "slow request: sent_monotonic_s={:.6} latency_us={}",
            self.epoch_monotonic_s + offset_s,
            latency.as_micros()
        ))
    }
}

/// One executor's measurements while it runs.
#[derive(Debug)]
pub struct Recorder {
    measure_from: Instant,
    result: RefCell<ThreadResult>,
    slow_log: Option<SlowLog>,
}

impl Recorder {
    pub fn new(measure_from: Instant) -> Self {
        Recorder {
            measure_from,
            result: RefCell::new(ThreadResult::default()),
            slow_log: None,
        }
    }

    /// Prints each measured acknowledgement slower than `threshold` (see the module doc).
    pub fn with_slow_log(mut self, threshold: Option<Duration>) -> Self {
        self.slow_log = threshold.map(SlowLog::new);
        self
    }

    fn second(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.measure_from).as_secs() as usize
    }

    pub fn is_warmup(&self, from: Instant) -> bool {
        from < self.measure_from
    }

    pub fn sent(&self, count: u64) {
        self.result.borrow_mut().sent += count;
    }

    /// A request of `count` messages sent (or due) at `from` was acknowledged now.
    pub fn acked(&self, from: Instant, count: u64) {
        let now = Instant::now();
        let mut r = self.result.borrow_mut();
        if self.is_warmup(from) {
            r.warmup_acked += count;
            return;
        }
        let second = self.second(now);
        if let Some(line) = self
            .slow_log
            .as_ref()
            .and_then(|s| s.line(from, now - from))
        {
            eprintln!("{line}");
        }
        r.publish.record(second, now - from, count);
        r.acked += count;
        r.last_ack = Some(now);
    }

    /// Open loop: a request due at `intended` went out now.
    pub fn delayed(&self, intended: Instant) {
        if self.is_warmup(intended) {
            return;
        }
        let now = Instant::now();
        let second = self.second(now);
        self.result
            .borrow_mut()
            .delay
            .record(second, now.saturating_duration_since(intended), 1);
    }

    /// A consumer received a record stamped as sent at `sent`.
    pub fn received(&self, sent: Instant, now: Instant) {
        let mut r = self.result.borrow_mut();
        r.received += 1;
        r.last_receipt = Some(now);
        if !self.is_warmup(sent) {
            let second = self.second(now);
            r.end_to_end
                .record(second, now.saturating_duration_since(sent), 1);
        }
    }

    /// A consumer received records that carry no stamp.
    pub fn received_unstamped(&self, count: u64) {
        let mut r = self.result.borrow_mut();
        r.received += count;
        r.last_receipt = Some(Instant::now());
    }

    /// Counts a failed request; returns the error count so far on this executor.
    pub fn error(&self, what: String) -> u64 {
        let mut r = self.result.borrow_mut();
        r.errors += 1;
        if r.first_error.is_none() {
            r.first_error = Some(what.clone());
        }
        r.last_error = Some(what);
        r.errors
    }

    /// Counts a request answered busy (it is sent again).
    pub fn busy(&self) {
        self.result.borrow_mut().busy += 1;
    }

    pub fn errors(&self) -> u64 {
        self.result.borrow().errors
    }

    /// p99 of publish latency so far, µs (for the progress line).
    pub fn publish_p99(&self) -> u64 {
        let r = self.result.borrow();
        if r.publish.histogram.is_empty() {
            0
        } else {
            r.publish.histogram.value_at_quantile(0.99)
        }
    }

    /// Takes the measurements out (the recorder is empty afterwards).
    pub fn finish(&self) -> ThreadResult {
        self.result.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_histograms_and_seconds() {
        let start = Instant::now();
        let a = Recorder::new(start);
        let b = Recorder::new(start);
        a.sent(10);
        a.acked(start, 10);
        b.sent(5);
        b.acked(start, 5);
        b.error("boom".into());
        let mut merged = a.finish();
        merged.merge(&b.finish());
        assert_eq!((merged.sent, merged.acked, merged.errors), (15, 15, 1));
        assert_eq!(merged.publish.histogram.len(), 2, "one sample per request");
        assert_eq!(merged.publish.rate_series().iter().sum::<u64>(), 15);
        assert_eq!(merged.first_error.as_deref(), Some("boom"));
    }

    #[test]
    fn warmup_samples_are_counted_but_not_measured() {
        let start = Instant::now();
        let recorder = Recorder::new(start + Duration::from_secs(3600));
        recorder.acked(start, 7);
        recorder.received(start, Instant::now());
        recorder.delayed(start);
        let r = recorder.finish();
        assert_eq!((r.acked, r.warmup_acked, r.received), (0, 7, 1));
        assert!(r.publish.histogram.is_empty() && r.end_to_end.histogram.is_empty());
        assert!(r.delay.histogram.is_empty() && r.last_ack.is_none());
    }

    #[test]
    fn per_second_p99() {
        let mut track = Track::default();
        for _ in 0..99 {
            track.record(0, Duration::from_micros(100), 1);
        }
        track.record(0, Duration::from_millis(50), 1);
        track.record(2, Duration::from_micros(10), 1);
        let p99 = track.p99_series();
        assert_eq!(p99.len(), 3);
        assert!((99..=101).contains(&p99[0]), "{p99:?}");
        assert_eq!(p99[1], 0, "a second without samples");
        assert_eq!(p99[2], 10);
        assert_eq!(track.rate_series(), vec![100, 0, 1]);
    }

    #[test]
    fn slow_requests_are_printed_with_their_send_time_on_the_monotonic_clock() {
        let log = SlowLog::new(Duration::from_millis(1));
        let sent = Instant::now();
        assert_eq!(log.line(sent, Duration::from_micros(999)), None);
        assert_eq!(
            log.line(sent, Duration::from_millis(1)),
            None,
            "the threshold itself"
        );
        let line = log.line(sent, Duration::from_micros(2500)).unwrap();
        let (time, latency) = line
            .strip_prefix("slow request: sent_monotonic_s=")
            .and_then(|rest| rest.split_once(" latency_us="))
            .unwrap();
        assert_eq!(latency, "2500");
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through the pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let now_s = now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9;
        let sent_s: f64 = time.parse().unwrap();
        assert!(
            sent_s <= now_s && now_s - sent_s < 1.0,
            "sent at {sent_s} s, read back at {now_s} s"
        );
    }
}
