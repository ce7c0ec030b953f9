//! Metrics: what each shard counts ([`shard`]), one scrape's copy of it ([`snapshot`]) and the
//! Prometheus text it becomes ([`exposition`]).
//!
//! Recording happens on each shard, in its own `Cell`s; nothing is shared between cores and
//! nothing is atomic. A scrape is a message to every shard and a reply with plain numbers, so
//! the cost of metrics on the produce path is the adds themselves.

pub mod exposition;
pub mod shard;
pub mod snapshot;

pub use shard::ShardMetrics;
