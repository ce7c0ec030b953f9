//! The process's memory: how glibc's allocator is set, and the memory each shard claims and
//! touches when it starts.
//!
//! Why touch memory ahead: the first write to a page the process has never used costs a page
//! fault, and in a virtual machine whose host backs guest memory lazily (or takes back pages
//! the guest freed, as free page reporting does) that fault waits for the host: measured here
//! at ~2 ms, about once per MiB or two of new memory. A shard's hot tail grows to its budget in
//! the first minute of traffic, one fresh page after another, so every request that happened
//! to allocate one of those pages waited 2 ms: that was the single-message round trip's
//! p99.99 (`perf-reports/2026-12-03-round-trip-tail/`). Memory claimed and touched at start,
//! and kept (never trimmed back to the kernel), costs those faults once, before the shard
//! serves anything.
//!
//! Invariants and limits:
//! - Large buffers (frames, DMA read buffers of a few MiB) come from the heap, not fresh
//!   `mmap`s, below [`MMAP_THRESHOLD_BYTES`]; freed memory is kept for reuse up to the trim
//!   threshold (at least [`TRIM_THRESHOLD_MIN_BYTES`], and more than a shard's pre-touch, so
//!   what was touched is not handed back the moment it is freed).
//! - A shard touches its hot-tail budget, in chunks of [`PRETOUCH_CHUNK_BYTES`] (far below the
//!   mmap threshold, so they are heap memory the shard's arena keeps), and frees them at once:
//!   resident memory starts at what the hot tail would reach anyway, and nothing stays held.
//!   At most [`ARENA_HEAP_KEPT_BYTES`] is touched ([`pretouch_bytes`]): a shard thread's
//!   allocations come from a glibc arena of 64 MiB heaps, and a heap that becomes wholly free
//!   is unmapped at once, whatever the trim threshold, so only the first one stays. Measured
//!   with 2 shards: a 256 MiB hot tail left the same resident memory after start as a 64 MiB
//!   one (139 MB), and a 1 GiB one made the start take 2.6 s instead of 0.09 s for nothing.
//!   Nor more than a quarter of the machine's memory over the shards.
//! - Not glibc (another libc or allocator): nothing is set and nothing fails; pre-touching
//!   still runs and does no harm.

/// Allocations at least this large are fresh mappings; below it they come from the heap.
pub const MMAP_THRESHOLD_BYTES: usize = 64 << 20;

/// Free memory at the top of a heap is handed back to the kernel only past this much (or past
/// what a shard pre-touches, if that is more).
pub const TRIM_THRESHOLD_MIN_BYTES: usize = 256 << 20;

/// What a shard thread's glibc arena keeps of memory it freed: its first heap (`HEAP_MAX_SIZE`
/// on 64-bit); later heaps are unmapped as soon as they are wholly free.
pub const ARENA_HEAP_KEPT_BYTES: usize = 64 << 20;

/// The size of each allocation a shard touches at start.
pub const PRETOUCH_CHUNK_BYTES: usize = 1 << 20;

/// Sets glibc's thresholds for a process whose shards each pre-touch `pretouch_bytes`. The
/// bench sets them too: its clients build and receive batches of up to a few MiB per request.
pub fn keep_large_allocations_on_the_heap(pretouch_bytes: usize) {
    let trim = TRIM_THRESHOLD_MIN_BYTES.max(pretouch_bytes.saturating_mul(2));
    let trim = libc::c_int::try_from(trim).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only adjusts glibc's allocator thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
    }
}

/// What one of `shards` shards pre-touches: its hot tail, but no more than its arena keeps
/// ([`ARENA_HEAP_KEPT_BYTES`]) nor than a quarter of the machine's memory over the shards
/// (`memory_bytes`; 0 when unknown: that cap is not applied).
pub fn pretouch_bytes(hot_tail_bytes: usize, memory_bytes: u64, shards: u32) -> usize {
    let kept = hot_tail_bytes.min(ARENA_HEAP_KEPT_BYTES);
    if memory_bytes == 0 {
        return kept;
    }
    let share = memory_bytes / 4 / u64::from(shards.max(1));
    kept.min(usize::try_from(share).unwrap_or(usize::MAX))
}

/// Claims `bytes` of heap on the calling thread, writes every page of it, and frees it, so the
/// allocator hands out memory that is already resident. Returns the bytes touched.
pub fn pretouch_heap(bytes: usize) -> usize {
    let chunks = bytes.div_ceil(PRETOUCH_CHUNK_BYTES);
    let held: Vec<Vec<u8>> = (0..chunks)
        .map(|_| {
            // Written, not calloc'ed: calloc on fresh memory skips the write and so the fault.
            let chunk = vec![0xA5u8; PRETOUCH_CHUNK_BYTES];
            std::hint::black_box(chunk)
        })
        .collect();
    let touched = held.iter().map(Vec::len).sum();
    drop(std::hint::black_box(held));
    touched
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether every page wholly inside `len` bytes at `at` is resident (`mincore`).
    fn resident(at: *const u8, len: usize) -> bool {
        let page = 4096usize;
        let start = (at as usize).div_ceil(page) * page;
        let end = (at as usize + len) / page * page;
        let mut pages = vec![0u8; (end - start) / page];
        // SAFETY: mincore reads the page table for a mapped range and writes one byte per page
        // into `pages`, which has room for exactly that many.
        let rc =
            unsafe { libc::mincore(start as *mut libc::c_void, end - start, pages.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        pages.iter().all(|p| p & 1 == 1)
    }

    #[test]
    fn a_shard_touches_its_hot_tail_up_to_what_its_arena_keeps_and_its_share_of_memory() {
        const GIB: u64 = 1 << 30;
        assert_eq!(pretouch_bytes(16 << 20, 24 * GIB, 2), 16 << 20);
        assert_eq!(pretouch_bytes(64 << 20, 24 * GIB, 2), 64 << 20);
        assert_eq!(pretouch_bytes(3 << 30, 24 * GIB, 2), ARENA_HEAP_KEPT_BYTES);
        assert_eq!(pretouch_bytes(3 << 30, 0, 2), ARENA_HEAP_KEPT_BYTES);
        assert_eq!(
            pretouch_bytes(64 << 20, 128 << 20, 1),
            32 << 20,
            "a quarter of memory"
        );
        assert_eq!(pretouch_bytes(64 << 20, 128 << 20, 0), 32 << 20);
    }

    #[test]
    fn the_residency_check_sees_memory_never_touched() {
        let len = 4 << 20;
        // SAFETY: a fresh private anonymous mapping, unmapped below; nothing else refers to it.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(at, libc::MAP_FAILED);
        assert!(!resident(at as *const u8, len));
        // SAFETY: `at` is the mapping made above, `len` long.
        unsafe { libc::munmap(at, len) };
    }

    #[test]
    fn memory_allocated_after_a_pretouch_is_already_resident() {
        keep_large_allocations_on_the_heap(64 << 20);
        // On a thread of its own, as a shard: the memory it touched and freed stays in its
        // arena, so what it allocates next (not written yet) is resident already.
        let pretouched = std::thread::spawn(|| {
            assert_eq!(pretouch_heap(32 << 20), 32 << 20);
            let next: Vec<u8> = Vec::with_capacity(4 << 20);
            resident(next.as_ptr(), next.capacity())
        })
        .join()
        .unwrap();
        assert!(
            pretouched,
            "memory touched and freed at start was handed back to the kernel"
        );
    }

    #[test]
    fn a_partial_chunk_is_rounded_up_and_nothing_is_touched_for_zero() {
        assert_eq!(pretouch_heap(0), 0);
        assert_eq!(pretouch_heap(1), PRETOUCH_CHUNK_BYTES);
    }
}
