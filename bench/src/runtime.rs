//! Where a bench runs: one glommio executor on its own thread, pinned to one CPU, started and
//! joined by the calling thread (which blocks). The executor's I/O memory is kept small so that
//! several executors (the bench's, or a broker's in the same process) start under an 8 MiB
//! `RLIMIT_MEMLOCK`.

use std::future::Future;

use glommio::{LocalExecutorBuilder, Placement};

use crate::error::BenchError;

/// I/O memory per bench executor. The bench does no file I/O; sockets do not use this pool.
pub const IO_MEMORY_BYTES: usize = 2 << 20;

/// The CPUs this process may run on, ascending.
pub fn allowed_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    cpus.sort_unstable();
    cpus
}

/// `wanted` if this process may run on it, else an error; by default the last allowed CPU.
pub fn choose_cpu(wanted: Option<usize>, allowed: &[usize]) -> Result<usize, BenchError> {
    match (wanted, allowed.last()) {
        (Some(cpu), _) if allowed.is_empty() || allowed.contains(&cpu) => Ok(cpu),
        (Some(cpu), _) => Err(BenchError::InvalidArgs(format!(
            "--cpu {cpu} is not one of the CPUs this process may use: {allowed:?}"
        ))),
        (None, Some(&last)) => Ok(last),
        (None, None) => Ok(0),
    }
}

/// Runs `make()`'s future on a new executor pinned to `cpu` and returns its output. The executor
/// spins `spin_us` before parking: waking a parked vCPU costs ~50 µs here, which a latency
/// benchmark would otherwise add to every round trip.
pub fn run_pinned<T, F, Fut>(name: &str, cpu: usize, spin_us: u64, make: F) -> Result<T, BenchError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(name)
        .io_memory(IO_MEMORY_BYTES)
        .spin_before_park(std::time::Duration::from_micros(spin_us))
        .spawn(make)
        .map_err(|e| BenchError::Executor(format!("starting {name} on CPU {cpu}: {e}")))?;
    handle.join().map_err(|e| match e {
        glommio::GlommioError::BuilderError(glommio::BuilderErrorKind::ThreadPanic(panic)) => {
            std::panic::resume_unwind(panic)
        }
        other => BenchError::Executor(format!("{name}: {other}")),
    })
}

/// Where the kernel is told to drop its caches.
pub const DROP_CACHES_PATH: &str = "/proc/sys/vm/drop_caches";

/// Writes every dirty page back (`sync`) and drops the page cache, dentries and inodes (`3` into
/// `path`, normally [`DROP_CACHES_PATH`]): what `--drop-caches` runs before a drain.
pub fn drop_page_cache(path: &std::path::Path) -> Result<(), BenchError> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write(path, b"3\n").map_err(|e| {
        BenchError::InvalidArgs(format!(
            "--drop-caches: cannot write {}: {e} (it needs Linux and root)",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_choice() {
        assert_eq!(choose_cpu(None, &[0, 1, 2]).unwrap(), 2);
        assert_eq!(choose_cpu(Some(1), &[0, 1, 2]).unwrap(), 1);
        assert!(choose_cpu(Some(7), &[0, 1]).is_err());
        assert_eq!(choose_cpu(None, &[]).unwrap(), 0);
    }

    #[test]
    fn two_pinned_executors_start_together() {
        let cpu = choose_cpu(None, &allowed_cpus()).unwrap();
        let other = std::thread::spawn(move || run_pinned("test-a", cpu, 0, || async { 1 }));
        let here = run_pinned("test-b", cpu, 0, || async { 2 }).unwrap();
        assert_eq!(other.join().unwrap().unwrap() + here, 3);
    }

    #[test]
    fn dropping_the_page_cache_writes_3_or_says_why_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let knob = dir.path().join("drop_caches");
        drop_page_cache(&knob).unwrap();
        assert_eq!(std::fs::read(&knob).unwrap(), b"3\n");
        let missing = dir.path().join("no-such-dir").join("drop_caches");
        let err = drop_page_cache(&missing).unwrap_err().to_string();
        assert!(
            err.contains("--drop-caches") && err.contains("root"),
            "{err}"
        );
    }
}
