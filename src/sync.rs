//! Locking shared by the process-wide registries (topics, subscription groups, the name
//! server's brokers).

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not. For state whose every change is made on a copy and swapped in
/// whole (or is a single map operation), so a panic elsewhere never leaves it half-updated.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
