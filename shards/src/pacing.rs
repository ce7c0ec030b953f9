//! Pacing appends to the disk's rate once the write-behind budget is half used, so that the
//! other half absorbs the device's pauses instead of the producers.
//!
//! Without it, producers run at memory speed until the budget is full, then wait for every
//! byte the writer frees: a device pause (on ext4 each periodic fdatasync holds the queue's
//! writes for 200–400 ms on the VM measured in `perf-reports/2026-12-03-spares`) then stops
//! every producer for all of it. With it, past the *soft mark* (half the budget) each append is
//! admitted at the rate the writer has been writing at (a virtual-time queue: an append of `n`
//! bytes takes `n / rate` of it), so the backlog stays near the mark while the disk keeps up,
//! and grows into the other half while it pauses.
//!
//! The rate is measured from the writer's own progress (`written`) over windows of
//! [`WINDOW`], and only while the backlog is above a quarter of the budget (the writer busy
//! the whole window: below that it writes what it is given, which says nothing of the
//! disk); it is smoothed (new = 0.7 old + 0.3 window) and never below [`RATE_FLOOR`], so a long
//! pause cannot slow producers to nothing. Before the first measurement nothing is paced.
//!
//! Invariants: pacing only delays, never refuses (the hard budget and `busy_after` still
//! apply after it); below the soft mark nothing is delayed and the queue is reset; one delay is
//! at most [`DELAY_MAX`] (a queue that long means the rate estimate is stale: the hard budget
//! takes over).

use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_millis(250);
pub const RATE_FLOOR: f64 = 16.0 * 1024.0 * 1024.0;
pub const DELAY_MAX: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct Pacer {
    rate: Option<f64>,
    window: Option<(Instant, u64)>,
    next_free: Instant,
}

impl Pacer {
    pub fn new(now: Instant) -> Self {
        Pacer {
            rate: None,
            window: None,
            next_free: now,
        }
    }

    /// The disk's write rate as measured so far (bytes per second).
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    fn observe(&mut self, now: Instant, written: u64, unwritten: u64, budget: u64) {
        if unwritten < budget / 4 {
            self.window = None;
            return;
        }
        let Some((since, from)) = self.window else {
            self.window = Some((now, written));
            return;
        };
        let elapsed = now.saturating_duration_since(since);
        if elapsed < WINDOW {
            return;
        }
        let sample = written.saturating_sub(from) as f64 / elapsed.as_secs_f64();
        let smoothed = match self.rate {
            Some(rate) => 0.7 * rate + 0.3 * sample,
            None => sample,
        };
        self.rate = Some(smoothed.max(RATE_FLOOR));
        self.window = Some((now, written));
    }

    /// How long an append of `len` bytes must wait before it is admitted, given the log's
    /// `written` position, the bytes appended but not written, and the budget.
    pub fn admit(
        &mut self,
        now: Instant,
        len: u64,
        written: u64,
        unwritten: u64,
        budget: u64,
    ) -> Option<Duration> {
        self.observe(now, written, unwritten, budget);
        if unwritten + len <= budget / 2 {
            self.next_free = now;
            return None;
        }
        let rate = self.rate?;
        // A queue longer than the longest delay is stale (the estimate lagged): cut it there.
        let start = self.next_free.clamp(now, now + DELAY_MAX);
        self.next_free = start + Duration::from_secs_f64(len as f64 / rate);
        let delay = start.saturating_duration_since(now);
        (!delay.is_zero()).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const BUDGET: u64 = 1024 * MIB;

    /// A pacer that has measured 400 MiB/s (the backlog above a quarter of the budget).
    fn measured(now: Instant) -> Pacer {
        let mut pacer = Pacer::new(now);
        assert_eq!(
            pacer.admit(now, MIB, 0, 600 * MIB, BUDGET),
            None,
            "no rate yet"
        );
        let later = now + Duration::from_millis(500);
        pacer.admit(later, MIB, 200 * MIB, 600 * MIB, BUDGET);
        let rate = pacer.rate().expect("measured");
        assert!((rate - 400.0 * MIB as f64).abs() < MIB as f64, "{rate}");
        // Under the mark again: nothing queued from here.
        assert_eq!(pacer.admit(later, MIB, 200 * MIB, 0, BUDGET), None);
        pacer
    }

    #[test]
    fn below_the_soft_mark_nothing_waits() {
        let now = Instant::now();
        let mut pacer = measured(now);
        for i in 0..100 {
            assert_eq!(pacer.admit(now, MIB, 0, i * MIB, BUDGET), None);
        }
    }

    #[test]
    fn past_the_soft_mark_appends_are_spaced_at_the_measured_rate() {
        let now = Instant::now();
        let mut pacer = measured(now);
        let at = now + Duration::from_millis(500);
        let delays: Vec<Duration> = (0..4)
            .map(|_| {
                pacer
                    .admit(at, 4 * MIB, 200 * MIB, 600 * MIB, BUDGET)
                    .unwrap_or_default()
            })
            .collect();
        // 4 MiB at 400 MiB/s is 10 ms: the first goes at once, each next 10 ms after.
        for (i, delay) in delays.iter().enumerate() {
            let want = Duration::from_millis(10 * i as u64);
            assert!(
                delay.abs_diff(want) < Duration::from_micros(100),
                "{i}: {delay:?}"
            );
        }
        // Back under the mark: the queue is forgotten.
        assert_eq!(pacer.admit(at, MIB, 200 * MIB, 10 * MIB, BUDGET), None);
        assert_eq!(pacer.admit(at, MIB, 200 * MIB, 600 * MIB, BUDGET), None);
    }

    #[test]
    fn a_pause_never_slows_producers_below_the_floor_nor_delays_one_past_the_cap() {
        let now = Instant::now();
        let mut pacer = measured(now);
        // The disk writes nothing for seconds: the rate decays to the floor, not to zero.
        for s in 1..40 {
            pacer.admit(
                now + Duration::from_millis(500 + 250 * s),
                MIB,
                200 * MIB,
                900 * MIB,
                BUDGET,
            );
        }
        assert_eq!(pacer.rate(), Some(RATE_FLOOR));
        let at = now + Duration::from_secs(20);
        let longest = (0..100)
            .filter_map(|_| pacer.admit(at, 8 * MIB, 200 * MIB, 900 * MIB, BUDGET))
            .max()
            .unwrap();
        assert_eq!(longest, DELAY_MAX);
    }
}
