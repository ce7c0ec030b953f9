//! Injected log faults: the seam storage tests use to make the writer meet EIO (or any errno)
//! at a chosen write, fdatasync or repair, deterministically, without a faulty device.
//!
//! Unarmed (always, outside tests) each check is one `Cell` read. Arming is
//! [`crate::ShardStore::inject_log_faults`], compiled only for tests and the `fault-injection`
//! feature; nothing a client sends can reach it.
//!
//! A write fault (a log write, or a roll to the next segment) fails before any of its bytes
//! reach the file (the DMA writer's
//! buffered bytes are lost with it, as on a device error). A sync fault runs the real fdatasync
//! and then reports failure: the data may or may not be durable, the case a real EIO from
//! fdatasync leaves a caller in.

use std::cell::Cell;

/// Fail the operation after `skip` more successful ones, with `errno`, `times` times in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub skip: u32,
    pub errno: i32,
    pub times: u32,
}

impl Fault {
    pub fn eio_after(skip: u32) -> Fault {
        Fault {
            skip,
            errno: libc::EIO,
            times: 1,
        }
    }
}

/// What the log writer should fail next. Single-core, like the writer.
#[derive(Debug, Default)]
pub struct LogFaults {
    writes: Cell<Option<Fault>>,
    syncs: Cell<Option<Fault>>,
    repairs: Cell<Option<Fault>>,
}

/// Which operation a fault is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSite {
    Write,
    Sync,
    Repair,
}

impl LogFaults {
    pub fn arm(&self, site: FaultSite, fault: Fault) {
        self.slot(site).set(Some(fault));
    }

    pub fn disarm(&self, site: FaultSite) {
        self.slot(site).set(None);
    }

    fn slot(&self, site: FaultSite) -> &Cell<Option<Fault>> {
        match site {
            FaultSite::Write => &self.writes,
            FaultSite::Sync => &self.syncs,
            FaultSite::Repair => &self.repairs,
        }
    }

    /// Counts one operation at `site`: the injected error if this one must fail.
    pub fn check(&self, site: FaultSite) -> std::io::Result<()> {
        let slot = self.slot(site);
        let Some(mut fault) = slot.get() else {
            return Ok(());
        };
        if fault.skip > 0 {
            fault.skip -= 1;
            slot.set(Some(fault));
            return Ok(());
        }
        fault.times = fault.times.saturating_sub(1);
        slot.set((fault.times > 0).then_some(fault));
        Err(std::io::Error::from_raw_os_error(fault.errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_after_the_skipped_ones_then_disarms() {
        let faults = LogFaults::default();
        faults.arm(
            FaultSite::Sync,
            Fault {
                skip: 2,
                errno: libc::EIO,
                times: 2,
            },
        );
        let outcomes: Vec<bool> = (0..6)
            .map(|_| faults.check(FaultSite::Sync).is_ok())
            .collect();
        assert_eq!(outcomes, [true, true, false, false, true, true]);
        assert!(faults.check(FaultSite::Write).is_ok());
    }
}
