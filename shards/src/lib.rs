//! shardmq's per-core storage engine. Everything here runs inside one shard's glommio executor
//! and does no networking.
//!
//! Map:
//! - [`store`]: [`ShardStore`], the API the broker calls: open, offsets, long-poll waits,
//!   checkpoint, close; [`append`] (append, when to acknowledge) and [`read`] extend it.
//! - [`writer`]: the log writer task and the durability contract (appended ≥ written ≥ synced).
//! - [`pacing`]: appends admitted at the disk's rate past half the write-behind budget.
//! - [`log_repair`]: making the log writable again in place after the writer failed.
//! - [`faults`]: injected write, sync and repair errors, for storage tests.
//! - [`file_io`]: the store's one seam to the filesystem (O_DIRECT files, or a simulated disk).
//! - [`sim_disk`]: the seeded simulated disk storage tests crash, tear and fail at will.
//! - [`fuzzing`]: the recovery fuzz target's check (arbitrary bytes as a shard's files).
//! - [`durability`]: the three log positions as distinct types.
//! - [`segment`]: segment files and routing reads to them.
//! - [`segment_writer`]: one segment's O_DIRECT writes: buffers, write-behind, syncs that write
//!   only what was appended since the last one.
//! - [`index`]: per-queue index (RocketMQ's ConsumeQueue): O(1) seek by queue offset.
//! - [`index_format`]: the index file's header and 32-byte entries (position, tag code, time).
//! - [`hot_tail`]: recent batches in memory.
//! - [`prefetch`]: a catching-up consumer's next pull, read while this one is sent.
//! - [`search`]: offsets by store time; whether an offset is in memory.
//! - [`read_plan`]: which batches a pull returns, from the index, before reading them.
//! - [`checkpoint`]: the position recovery starts from.
//! - [`snapshot_file`]: small files replaced whole (checkpoint, consumer offsets).
//! - [`stats`]: the store's counters and histograms, for metrics.
//! - [`recovery`]: CRC scan, torn-tail cut, index rebuild.
//! - [`retention`]: deleting old segments by age, size and disk water marks.
//! - [`iopoll_probe`]: a guard against a glommio device-probe bug; run before opening files.
//! - [`consumer_offsets`]: each consumer group's progress on this shard's queues.
//! - [`visibility`]: what a reader may see of a queue (under `flush = sync`, only what is synced).
//! - [`config`], [`error`].

pub mod append;
pub mod checkpoint;
pub mod config;
pub mod consumer_offsets;
pub mod durability;
pub mod error;
pub mod faults;
pub mod file_io;
pub mod fuzzing;
pub mod hot_tail;
pub mod index;
pub mod index_format;
pub mod iopoll_probe;
pub mod log_repair;
pub mod pacing;
pub mod prefetch;
pub mod read;
pub mod read_plan;
pub mod recovery;
pub mod retention;
pub mod search;
pub mod segment;
pub mod segment_writer;
pub mod sim_disk;
pub mod snapshot_file;
pub mod stats;
pub mod store;
pub mod visibility;
pub mod writer;

pub use append::AppendOutcome;
pub use config::{FlushMode, StoreConfig};
pub use error::StorageError;
pub use read::{ReadOutcome, ReadRequest, StoredBatch};
pub use retention::{DiskMarks, RetentionConfig};
pub use store::ShardStore;

#[cfg(test)]
mod busy_tests;
#[cfg(test)]
mod full_disk_tests;
#[cfg(test)]
mod log_repair_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod sync_visibility_tests;
