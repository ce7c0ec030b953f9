//! The shardmq load generator, as a library behind `shardmq bench`.
//!
//! Map:
//! - [`args`]: clap `Args` for `produce` and `consume`, and [`BenchCommand`] to dispatch on.
//! - [`produce`]: [`run_produce`], closed-loop producers measuring per-batch send-to-ack latency.
//! - [`consume`]: [`run_consume`], drains a topic's queues, checking every batch's CRCs.
//! - [`report`]: [`Report`], latency percentiles from an hdrhistogram, summary and JSON.
//! - [`runtime`]: the pinned glommio executor each run starts (small I/O memory).
//! - [`error`]: [`BenchError`], why a run failed.
//!
//! Both runs block the calling thread: they start their own glommio executor on another thread,
//! pinned with `Placement::Fixed` (default: the last CPU), join it, print the summary, write the
//! JSON file when asked, and return the report.

pub mod args;
pub mod consume;
pub mod end_to_end;
pub mod error;
pub mod produce;
pub mod report;
pub mod runtime;

pub use args::{BenchArgs, BenchCommand, ConsumeArgs, EndToEndArgs, ProduceArgs};
pub use consume::run_consume;
pub use error::BenchError;
pub use produce::run_produce;
pub use report::{BenchKind, LatencySummary, Report};

/// Runs whichever benchmark `command` names.
pub fn run(command: &BenchCommand) -> Result<Report, BenchError> {
    match command {
        BenchCommand::Produce(args) => run_produce(args),
        BenchCommand::Consume(args) => run_consume(args),
        BenchCommand::EndToEnd(args) => produce::run_end_to_end(args),
    }
}
