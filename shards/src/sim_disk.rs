//! A simulated disk for storage tests: files in memory, driven by a seed, that lose what was
//! never synced when "the power fails", tear writes, complete concurrent operations out of
//! order and fail writes and syncs with EIO or ENOSPC — deterministically, so a failing seed
//! replays exactly. The store reaches it through [`crate::file_io`] for paths under the root
//! it is [`mount`]ed at; nothing is mounted outside tests.
//!
//! The model (what a power loss may do on a real device with a volatile write cache):
//! - Each file has its *durable* bytes and the operations (writes, truncations, hole punches)
//!   made since its last successful `fdatasync`, which reads see at once. `fdatasync` makes
//!   durable those made before it began (not those completing while it runs).
//! - A crash ([`SimDisk::arm_crash`]: at the n-th operation from now) keeps each pending
//!   operation of each file independently: dropped, applied whole, or — a write — torn, a
//!   random subset of its 512-byte sectors applied. Kept operations apply in the order issued.
//!   Every operation from the crash on fails with EIO, as does any handle opened before it.
//! - Names (create, rename, remove) are durable when made: the store orders them after the
//!   fdatasync of the data they name and syncs the directory, which a journaling filesystem
//!   commits in order. Missing directory syncs are therefore not caught here.
//! - A failed write changes nothing; a failed `fdatasync` leaves what it covered pending (it may
//!   still be lost).
//! - Every operation first yields to the executor 0–2 times (seeded): operations in flight
//!   together complete in a seeded order.
//! - Writes must be 512-byte aligned in position and length (O_DIRECT), else EINVAL.
//!
//! Determinism holds as long as the store's timers never decide an order: simulations set the
//! store's intervals to hours and drive checkpoints and flushes themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use shardmq_protocol::mutate::SplitMix;

use crate::file_io::{IoResult, Writable};

const SECTOR: usize = 512;

/// The simulation's one seeded generator (the fuzz mutator's SplitMix64, with draws in the
/// shapes the simulation needs).
#[derive(Debug, Clone)]
pub struct SimRng(SplitMix);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(SplitMix(seed ^ 0x5DEE_CE66_D1CE_4E5B))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }
}

/// How often writes and syncs fail on their own (not by crashing), in 1/1000.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    pub write_per_mille: u32,
    pub sync_per_mille: u32,
}

/// What the simulation did, for a test to report (and to show a seed exercised something).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounts {
    pub ops: u64,
    pub crashes: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
    pub faults: u64,
}

enum Pending {
    Write { at: u64, bytes: Vec<u8> },
    Truncate(u64),
}

#[derive(Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// Operations made on this inode so far; `pending` holds the last `pending.len()` of them.
    made: u64,
}

struct DiskState {
    rng: SimRng,
    names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Operations left before the crash.
    crash_in: Option<u64>,
    /// Bumped by every crash: handles of an earlier epoch fail.
    epoch: u64,
    crashed: bool,
    faults: FaultRates,
    counts: SimCounts,
    trace: Option<Vec<(Op, u64, u64)>>,
    syncs_lie: bool,
}

pub struct SimDisk {
    root: PathBuf,
    state: Mutex<DiskState>,
}

/// The kind of an operation, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Sync,
    Name,
}

fn errno(code: i32) -> glommio::GlommioError<()> {
    glommio::GlommioError::IoError(std::io::Error::from_raw_os_error(code))
}

fn write_into(bytes: &mut Vec<u8>, at: u64, data: &[u8]) {
    let at = at as usize;
    if bytes.len() < at + data.len() {
        bytes.resize(at + data.len(), 0);
    }
    bytes[at..at + data.len()].copy_from_slice(data);
}

impl Inode {
    fn apply(&mut self, op: Pending) {
        match &op {
            Pending::Write { at, bytes } => write_into(&mut self.current, *at, bytes),
            Pending::Truncate(len) => self.current.resize(*len as usize, 0),
        }
        self.pending.push(op);
        self.made += 1;
    }

    /// The pending operations among the first `made_before` made on the inode (those made
    /// before the fdatasync began) become durable, applied in order; later ones stay pending.
    fn sync(&mut self, made_before: u64) {
        let first_pending = self.made - self.pending.len() as u64;
        let covered = made_before.saturating_sub(first_pending) as usize;
        let covered = covered.min(self.pending.len());
        for op in self.pending.drain(..covered) {
            match op {
                Pending::Write { at, bytes } => write_into(&mut self.durable, at, &bytes),
                Pending::Truncate(len) => self.durable.resize(len as usize, 0),
            }
        }
        if self.pending.is_empty() {
            debug_assert_eq!(
                self.durable.len(),
                self.current.len(),
                "a sync of everything makes the file durable"
            );
        }
    }

    /// What survives a power loss: the durable bytes plus a seeded choice of what was pending.
    fn crash(&mut self, rng: &mut SimRng, counts: &mut SimCounts) {
        let mut image = std::mem::take(&mut self.durable);
        for op in self.pending.drain(..) {
            match op {
                Pending::Truncate(len) => {
                    if rng.chance(500) {
                        image.resize(len as usize, 0);
                    }
                }
                Pending::Write { at, bytes } => match rng.below(4) {
                    0 => counts.writes_lost += 1,
                    1 => {
                        counts.writes_torn += 1;
                        for (i, sector) in bytes.chunks(SECTOR).enumerate() {
                            if rng.chance(500) {
                                write_into(&mut image, at + (i * SECTOR) as u64, sector);
                            }
                        }
                    }
                    _ => write_into(&mut image, at, &bytes),
                },
            }
        }
        self.current = image.clone();
        self.durable = image;
    }
}

impl DiskState {
    fn crash(&mut self) {
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|inode, _| live.contains(inode));
        for inode in self.inodes.values_mut() {
            inode.crash(&mut self.rng, &mut self.counts);
        }
        self.crashed = true;
        self.crash_in = None;
        self.epoch += 1;
        self.counts.crashes += 1;
    }

    fn inode(&mut self, id: u64) -> IoResult<&mut Inode> {
        self.inodes.get_mut(&id).ok_or_else(|| errno(libc::ESTALE))
    }
}

static MOUNTED: AtomicUsize = AtomicUsize::new(0);
static MOUNTS: Mutex<Vec<Weak<SimDisk>>> = Mutex::new(Vec::new());

/// Keeps a simulated disk mounted at its root; unmounts when dropped.
pub struct Mounted(Arc<SimDisk>);

impl std::ops::Deref for Mounted {
    type Target = SimDisk;
    fn deref(&self) -> &SimDisk {
        &self.0
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let mut mounts = MOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        mounts.retain(|m| m.upgrade().is_some_and(|d| !Arc::ptr_eq(&d, &self.0)));
        MOUNTED.store(mounts.len(), Ordering::SeqCst);
    }
}

/// Mounts an empty simulated disk at `root` (a path that need not exist; it must not overlap
/// another mount), driven by `seed`.
pub fn mount(root: &Path, seed: u64) -> Mounted {
    let disk = Arc::new(SimDisk {
        root: root.to_path_buf(),
        state: Mutex::new(DiskState {
            rng: SimRng::new(seed),
            names: BTreeMap::new(),
            dirs: BTreeSet::from([root.to_path_buf()]),
            inodes: BTreeMap::new(),
            next_inode: 1,
            crash_in: None,
            epoch: 0,
            crashed: false,
            faults: FaultRates::default(),
            counts: SimCounts::default(),
            trace: None,
            syncs_lie: false,
        }),
    });
    let mut mounts = MOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    mounts.retain(|m| m.strong_count() > 0);
    assert!(
        mounts
            .iter()
            .filter_map(Weak::upgrade)
            .all(|d| !d.root.starts_with(root) && !root.starts_with(&d.root)),
        "simulated disks must not overlap"
    );
    mounts.push(Arc::downgrade(&disk));
    MOUNTED.store(mounts.len(), Ordering::SeqCst);
    Mounted(disk)
}

/// The simulated disk `path` is on, if any.
pub fn disk_for(path: &Path) -> Option<Arc<SimDisk>> {
    if MOUNTED.load(Ordering::SeqCst) == 0 {
        return None;
    }
    let mounts = MOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    mounts
        .iter()
        .filter_map(Weak::upgrade)
        .find(|d| path.starts_with(&d.root))
}

impl SimDisk {
    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Yields a seeded number of times, then counts one operation: an error if the disk has
    /// crashed (or crashes now), or if a fault is drawn for it.
    async fn step(
        &self,
        op: Op,
        epoch: Option<u64>,
        inode: u64,
    ) -> IoResult<MutexGuard<'_, DiskState>> {
        let dead = |state: &DiskState| state.crashed || epoch.is_some_and(|e| e != state.epoch);
        // A dead disk draws nothing: what a store does after the crash (its timing is the
        // machine's, not the seed's) must not shift the seeded stream of the next life.
        let yields = {
            let mut state = self.lock();
            if dead(&state) {
                return Err(errno(libc::EIO));
            }
            state.rng.below(3)
        };
        for _ in 0..yields {
            futures_lite::future::yield_now().await;
        }
        let mut state = self.lock();
        if dead(&state) {
            return Err(errno(libc::EIO));
        }
        state.counts.ops += 1;
        if let Some(trace) = &mut state.trace {
            trace.push((op, inode, yields));
        }
        if let Some(left) = state.crash_in {
            if left == 0 {
                state.crash();
                return Err(errno(libc::EIO));
            }
            state.crash_in = Some(left - 1);
        }
        let rate = match op {
            Op::Write => state.faults.write_per_mille,
            Op::Sync => state.faults.sync_per_mille,
            Op::Read | Op::Name => 0,
        };
        if rate > 0 && state.rng.chance(rate) {
            state.counts.faults += 1;
            let code = if state.rng.chance(500) {
                libc::ENOSPC
            } else {
                libc::EIO
            };
            return Err(errno(code));
        }
        Ok(state)
    }

    /// The power fails at the `ops`-th operation from now (0: the next one).
    pub fn arm_crash(&self, ops: u64) {
        self.lock().crash_in = Some(ops);
    }

    /// The power fails now, if it has not already.
    pub fn crash_now(&self) {
        let mut state = self.lock();
        if !state.crashed {
            state.crash();
        }
    }

    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Power back on: the files are what the crash left; new handles work again.
    pub fn restart(&self) {
        self.lock().crashed = false;
    }

    /// From now on `fdatasync` reports success and makes nothing durable, like a device that
    /// ignores cache flushes: what proves a checker catches acknowledged writes lost.
    pub fn lie_about_syncs(&self) {
        self.lock().syncs_lie = true;
    }

    pub fn set_faults(&self, faults: FaultRates) {
        self.lock().faults = faults;
    }

    /// From now on, record every operation (kind, inode, yields drawn): two runs of one seed
    /// compared op by op show where a replay diverged.
    pub fn record_trace(&self) {
        self.lock().trace.get_or_insert_with(Vec::new);
    }

    pub fn trace(&self) -> Vec<(Op, u64, u64)> {
        self.lock().trace.clone().unwrap_or_default()
    }

    pub fn counts(&self) -> SimCounts {
        self.lock().counts
    }

    /// A seeded draw for the test driving the disk (one stream: the run stays replayable).
    pub fn draw(&self, n: u64) -> u64 {
        self.lock().rng.below(n)
    }

    /// Puts a file on the disk as if written and synced long ago (its directories too): for
    /// tests that start from files a real store made. Not an operation of the store's.
    pub fn put_file(&self, path: &Path, bytes: &[u8]) {
        if let Some(parent) = path.parent() {
            self.create_dir_all(parent);
        }
        let mut state = self.lock();
        let inode = state.next_inode;
        state.next_inode += 1;
        let file = Inode {
            current: bytes.to_vec(),
            durable: bytes.to_vec(),
            pending: Vec::new(),
            made: 0,
        };
        state.inodes.insert(inode, file);
        state.names.insert(path.to_path_buf(), inode);
    }

    /// A file's bytes as reads see them now (`None`: no such file). Not counted as an operation.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.names.get(path)?;
        state.inodes.get(inode).map(|i| i.current.clone())
    }

    pub(crate) async fn rename(&self, from: &Path, to: &Path) -> IoResult<()> {
        let mut state = self.step(Op::Name, None, 0).await?;
        let inode = state
            .names
            .remove(from)
            .ok_or_else(|| errno(libc::ENOENT))?;
        state.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    pub(crate) async fn remove(&self, path: &Path) -> IoResult<()> {
        let mut state = self.step(Op::Name, None, 0).await?;
        state
            .names
            .remove(path)
            .map(drop)
            .ok_or_else(|| errno(libc::ENOENT))
    }

    pub(crate) async fn sync_dir(&self, dir: &Path) -> IoResult<()> {
        let state = self.step(Op::Sync, None, 0).await?;
        if state.dirs.contains(dir) {
            Ok(())
        } else {
            Err(errno(libc::ENOENT))
        }
    }

    pub(crate) fn create_dir_all(&self, dir: &Path) {
        let mut state = self.lock();
        for ancestor in dir.ancestors() {
            if !ancestor.starts_with(&self.root) {
                break;
            }
            state.dirs.insert(ancestor.to_path_buf());
        }
    }

    pub(crate) fn list_dir(&self, dir: &Path) -> Vec<PathBuf> {
        let state = self.lock();
        let names = state.names.keys();
        let dirs = state.dirs.iter();
        names
            .chain(dirs)
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect()
    }
}

/// An open file on a simulated disk.
pub struct SimFile {
    disk: Arc<SimDisk>,
    inode: u64,
    epoch: u64,
    writable: bool,
}

impl SimFile {
    pub(crate) async fn open(
        disk: Arc<SimDisk>,
        path: &Path,
        how: Option<Writable>,
    ) -> IoResult<SimFile> {
        let (inode, epoch) = {
            let mut state = disk.step(Op::Name, None, 0).await?;
            let parent_exists = path.parent().is_some_and(|p| state.dirs.contains(p));
            let inode = match (state.names.get(path).copied(), how) {
                (Some(inode), _) => inode,
                (None, Some(w)) if w.create && parent_exists => {
                    let inode = state.next_inode;
                    state.next_inode += 1;
                    state.inodes.insert(inode, Inode::default());
                    state.names.insert(path.to_path_buf(), inode);
                    inode
                }
                (None, _) => return Err(errno(libc::ENOENT)),
            };
            if how.is_some_and(|w| w.truncate) {
                state.inode(inode)?.apply(Pending::Truncate(0));
            }
            (inode, state.epoch)
        };
        Ok(SimFile {
            disk,
            inode,
            epoch,
            writable: how.is_some(),
        })
    }

    async fn step(&self, op: Op) -> IoResult<MutexGuard<'_, DiskState>> {
        if op == Op::Write && !self.writable {
            return Err(errno(libc::EBADF));
        }
        self.disk.step(op, Some(self.epoch), self.inode).await
    }

    pub(crate) async fn write_at(&self, bytes: &[u8], pos: u64) -> IoResult<usize> {
        if !pos.is_multiple_of(SECTOR as u64) || !bytes.len().is_multiple_of(SECTOR) {
            return Err(errno(libc::EINVAL));
        }
        let mut state = self.step(Op::Write).await?;
        let pending = Pending::Write {
            at: pos,
            bytes: bytes.to_vec(),
        };
        state.inode(self.inode)?.apply(pending);
        Ok(bytes.len())
    }

    pub(crate) async fn read_at(&self, pos: u64, len: usize) -> IoResult<Vec<u8>> {
        let mut state = self.step(Op::Read).await?;
        let current = &state.inode(self.inode)?.current;
        let start = (pos as usize).min(current.len());
        let end = (pos as usize).saturating_add(len).min(current.len());
        Ok(current[start..end].to_vec())
    }

    pub(crate) async fn file_size(&self) -> IoResult<u64> {
        let mut state = self.step(Op::Read).await?;
        Ok(state.inode(self.inode)?.current.len() as u64)
    }

    /// Makes durable what was made before it began: operations that complete while it waits
    /// its turn (other tasks' writes to the file) stay pending, as on a real device.
    pub(crate) async fn fdatasync(&self) -> IoResult<()> {
        let made_before = {
            let mut state = self.disk.lock();
            state.inode(self.inode).map_or(0, |inode| inode.made)
        };
        let mut state = self.step(Op::Sync).await?;
        if state.syncs_lie {
            return Ok(());
        }
        state.inode(self.inode)?.sync(made_before);
        Ok(())
    }

    pub(crate) async fn truncate(&self, len: u64) -> IoResult<()> {
        let mut state = self.step(Op::Write).await?;
        state.inode(self.inode)?.apply(Pending::Truncate(len));
        Ok(())
    }

    /// Reservations are not modelled (a fault drawn for it stands in for a full disk).
    pub(crate) async fn pre_allocate(&self, _len: u64, _keep_size: bool) -> IoResult<()> {
        self.step(Op::Write).await.map(drop)
    }

    pub(crate) async fn deallocate(&self, offset: u64, len: u64) -> IoResult<()> {
        let mut state = self.step(Op::Write).await?;
        let inode = state.inode(self.inode)?;
        let end = (offset + len).min(inode.current.len() as u64);
        if end > offset {
            let zeros = vec![0; (end - offset) as usize];
            inode.apply(Pending::Write {
                at: offset,
                bytes: zeros,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(fill: u8) -> Vec<u8> {
        vec![fill; SECTOR * 2]
    }

    fn run(f: impl std::future::Future<Output = ()>) {
        futures_lite::future::block_on(f);
    }

    #[test]
    fn synced_bytes_survive_a_crash_and_unsynced_ones_may_not() {
        run(async {
            let root = PathBuf::from("/sim-disk-unit/a");
            let disk = mount(&root, 7);
            disk.create_dir_all(&root);
            let path = root.join("f");
            let d = disk_for(&path).expect("mounted");
            let file = SimFile::open(d.clone(), &path, Some(Writable::CREATE))
                .await
                .unwrap();
            file.write_at(&block(1), 0).await.unwrap();
            file.fdatasync().await.unwrap();
            assert!(
                file.write_at(&block(1)[..100], 0).await.is_err(),
                "unaligned"
            );
            // Unsynced writes over many crashes: some kept, some lost, never a synced byte.
            let mut lost_or_torn = 0;
            for round in 0..40u8 {
                let file = SimFile::open(d.clone(), &path, Some(Writable::EXISTING))
                    .await
                    .unwrap();
                file.write_at(&block(round + 2), SECTOR as u64 * 2)
                    .await
                    .unwrap();
                disk.crash_now();
                assert!(file.read_at(0, 1).await.is_err(), "a dead handle fails");
                disk.restart();
                let reader = SimFile::open(d.clone(), &path, None).await.unwrap();
                let bytes = reader.read_at(0, SECTOR * 4).await.unwrap();
                assert_eq!(bytes[..SECTOR * 2], block(1)[..], "synced bytes stay");
                if bytes.len() < SECTOR * 4 || bytes[SECTOR * 2..] != block(round + 2)[..] {
                    lost_or_torn += 1;
                }
                let file = SimFile::open(d.clone(), &path, Some(Writable::EXISTING))
                    .await
                    .unwrap();
                file.truncate(SECTOR as u64 * 2).await.unwrap();
                file.fdatasync().await.unwrap();
            }
            assert!(lost_or_torn > 0, "some unsynced write was lost or torn");
            assert!(lost_or_torn < 40, "some unsynced write survived");
        });
    }

    #[test]
    fn an_fdatasync_covers_only_what_was_made_before_it_began() {
        let write = |fill: u8, at: usize| Pending::Write {
            at: at as u64,
            bytes: block(fill),
        };
        let mut inode = Inode::default();
        inode.apply(write(1, 0));
        let began = inode.made;
        // Completes while that fdatasync waits its turn: not covered by it.
        inode.apply(write(2, SECTOR * 2));
        inode.sync(began);
        assert_eq!(inode.durable, block(1));
        assert_eq!(inode.pending.len(), 1);
        // A later fdatasync covers it; an earlier one finishing last covers nothing more.
        let second = inode.made;
        inode.apply(write(3, SECTOR * 4));
        inode.sync(second);
        inode.sync(began);
        assert_eq!(inode.durable.len(), SECTOR * 4);
        assert_eq!(inode.pending.len(), 1, "the third write stays pending");
    }

    #[test]
    fn names_and_crash_points_are_deterministic() {
        let trace = |seed: u64| {
            let root = PathBuf::from(format!("/sim-disk-unit/b{seed}"));
            let disk = mount(&root, seed);
            disk.create_dir_all(&root);
            let d = disk_for(&root.join("x")).unwrap();
            disk.arm_crash(5);
            let mut outcomes = Vec::new();
            run(async {
                for i in 0..8u64 {
                    let path = root.join(format!("f{i}"));
                    let opened = SimFile::open(d.clone(), &path, Some(Writable::CREATE)).await;
                    outcomes.push(opened.is_ok());
                }
            });
            (outcomes, disk.list_dir(&root).len())
        };
        let (outcomes, files) = trace(3);
        assert_eq!(
            outcomes,
            [true, true, true, true, true, false, false, false]
        );
        assert_eq!(files, 5, "names made before the crash stay");
        assert_eq!(trace(3), trace(3));
        assert!(
            disk_for(Path::new("/sim-disk-unit/b3/f0")).is_none(),
            "unmounted"
        );
    }
}
