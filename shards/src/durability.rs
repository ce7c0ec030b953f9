//! The three positions of a shard's log, as distinct types, and the one place that moves them.
//!
//! A log position is a byte position in the shard's log, counted from the first byte ever
//! written (segment files are named by the position of their first byte).
//!
//! - [`Appended`]: the batch is in the store's memory (hot tail + index), queued for the writer,
//!   and visible to pulls under `flush = async` (under `flush = sync` only once [`Synced`]:
//!   `visibility`). Lost on a crash.
//! - [`Written`]: the bytes are in the segment file (a DMA write completed), readable from disk;
//!   not yet durable (the device may hold them in a volatile cache).
//! - [`Synced`]: covered by a completed `fdatasync`; survives a crash or power loss.
//!
//! Invariant, asserted on every update: `appended >= written >= synced`, each monotonic, with
//! one exception: a log repair after a write failure moves `written` back to where it rewrites
//! from ([`Durability::rewind_written`]), never below `synced`.

use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Appended(pub u64);
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Written(pub u64);
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Synced(pub u64);

/// The positions of one log. Single-core: lives in one shard's executor.
#[derive(Debug, Default)]
pub struct Durability {
    appended: Cell<u64>,
    written: Cell<u64>,
    synced: Cell<u64>,
}

impl Durability {
    /// All three at `position`: what recovery knows after it verified the log up to there.
    pub fn recovered(position: u64) -> Self {
        Durability {
            appended: Cell::new(position),
            written: Cell::new(position),
            synced: Cell::new(position),
        }
    }

    pub fn appended(&self) -> Appended {
        Appended(self.appended.get())
    }

    pub fn written(&self) -> Written {
        Written(self.written.get())
    }

    pub fn synced(&self) -> Synced {
        Synced(self.synced.get())
    }

    pub fn advance_appended(&self, to: Appended) {
        assert!(to.0 >= self.appended.get(), "appended position moved back");
        self.appended.set(to.0);
    }

    pub fn advance_written(&self, to: Written) {
        assert!(
            to.0 <= self.appended.get(),
            "written position passed appended"
        );
        if to.0 > self.written.get() {
            self.written.set(to.0);
        }
    }

    /// The log repair's restart point: what lies past `to` is written again (the writer that
    /// wrote it failed, and the bytes it held are lost). Acknowledged data is never past it.
    pub fn rewind_written(&self, to: Written) {
        assert!(
            to.0 <= self.written.get() && to.0 >= self.synced.get(),
            "a log repair restarts between synced {} and written {}, not at {}",
            self.synced.get(),
            self.written.get(),
            to.0
        );
        self.written.set(to.0);
    }

    pub fn advance_synced(&self, to: Synced) {
        assert!(to.0 <= self.written.get(), "synced position passed written");
        if to.0 > self.synced.get() {
            self.synced.set(to.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept() {
        let d = Durability::recovered(10);
        d.advance_appended(Appended(20));
        d.advance_written(Written(15));
        d.advance_synced(Synced(12));
        d.advance_written(Written(14)); // stale reports are ignored, not moved back
        assert_eq!((d.appended().0, d.written().0, d.synced().0), (20, 15, 12));
    }

    #[test]
    fn a_repair_rewinds_written_but_not_below_synced() {
        let d = Durability::recovered(0);
        d.advance_appended(Appended(30));
        d.advance_written(Written(25));
        d.advance_synced(Synced(10));
        d.rewind_written(Written(16));
        assert_eq!((d.written().0, d.synced().0), (16, 10));
        let below_synced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            d.rewind_written(Written(9))
        }));
        assert!(below_synced.is_err());
    }

    #[test]
    #[should_panic(expected = "synced position passed written")]
    fn synced_cannot_pass_written() {
        let d = Durability::recovered(0);
        d.advance_appended(Appended(5));
        d.advance_synced(Synced(5));
    }
}
