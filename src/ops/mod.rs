//! Operating the broker: what an operator reads off it.
//!
//! - [`metrics`]: what each shard counts about itself, collected per scrape and rendered as
//!   Prometheus text.
//! - [`dashboard_data`]: the groups and messages the dashboard shows, read on a shard.
//! - [`preflight`]: what the host must offer io_uring, checked before any executor starts.
//! - [`query`]: the questions the HTTP thread asks each shard, answered on that shard.
//! - [`http`]: the HTTP listener (`--http-listen`): `/metrics` and the dashboard's JSON, on a
//!   thread of its own, never on a shard's request path.

pub mod dashboard_data;
pub mod http;
pub mod metrics;
pub mod preflight;
pub mod query;
