//! The shardmq load generator, as a library behind `shardmq bench`.
//!
//! Map:
//! - [`args`]: clap `Args` for every kind, and [`BenchCommand`] to dispatch on.
//! - [`produce`]: [`run_produce`], closed- or open-loop (`--rate`) producers measuring
//!   per-batch send-to-ack latency (from the intended send time in open loop), and
//!   `run_end_to_end`, the same with stamped records and consumers.
//! - [`end_to_end`]: the consumers of an end-to-end run, send-to-receipt latency per record.
//! - [`consume`]: [`run_consume`], drains a topic's queues, checking every batch's CRCs.
//! - [`peers`]: drivers that start a peer system and run the same workload against it.
//! - [`render`]: `bench report`, result JSON files into markdown with SVG charts.
//! - [`report`]: [`Report`], latency percentiles from an hdrhistogram, summary and JSON.
//! - [`runtime`]: the pinned glommio executor each run starts (small I/O memory).
//! - [`error`]: [`BenchError`], why a run failed.
//!
//! Every run blocks the calling thread: they start their own glommio executor on another thread,
//! pinned with `Placement::Fixed` (default: the last CPU), join it, print the summary, write the
//! JSON file when asked, and return the report.

pub mod args;
pub mod consume;
pub mod end_to_end;
pub mod error;
pub mod peers;
pub mod produce;
pub mod render;
pub mod report;
pub mod runtime;

pub use args::{BenchArgs, BenchCommand, ConsumeArgs, EndToEndArgs, ProduceArgs};
pub use consume::run_consume;
pub use error::BenchError;
pub use produce::run_produce;
pub use report::{BenchKind, LatencySummary, Report};

/// Runs whichever benchmark `command` names.
pub fn run(command: &BenchCommand) -> Result<Option<Report>, BenchError> {
    match command {
        BenchCommand::Produce(args) => run_produce(args).map(Some),
        BenchCommand::Consume(args) => run_consume(args).map(Some),
        BenchCommand::EndToEnd(args) => produce::run_end_to_end(args).map(Some),
        BenchCommand::Report(args) => {
            let readme = render::render(args)?;
            println!("report written to {}", readme.display());
            Ok(None)
        }
    }
}
