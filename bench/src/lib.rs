//! The shardmq load generator, as a library behind `shardmq bench`.
//!
//! Map:
//! - [`args`]: clap `Args` for every kind, and [`BenchCommand`] to dispatch on.
//! - [`engine`]: the workload engine: producers over several pinned executors, closed or open
//!   loop, warm-up, duration, end-to-end consumers, per-executor histograms merged; generic over
//!   a [`engine::Driver`] (the system under test).
//! - [`native`]: the shardmq native-protocol driver.
//! - [`produce`]: [`run_produce`] and `run_end_to_end`: arguments → workload → report.
//! - [`end_to_end`]: the send-time stamp in end-to-end payloads.
//! - [`consume`]: [`run_consume`], drains a topic's queues, checking every batch's CRCs.
//! - [`peers`]: drivers that start a peer system and run the same workload against it.
//! - [`render`]: `bench report`, result JSON files into markdown with SVG charts.
//! - [`report`]: [`Report`], latency percentiles from an hdrhistogram, summary and JSON.
//! - [`runtime`]: the pinned glommio executor each run starts (small I/O memory).
//! - [`error`]: [`BenchError`], why a run failed.
//!
//! Every run blocks the calling thread: it starts its own glommio executors on other threads,
//! pinned with `Placement::Fixed` (default: the last CPU), joins them, prints the summary, writes
//! the JSON file when asked, and returns the report.

pub mod args;
pub mod consume;
pub mod end_to_end;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod log_io;
pub mod native;
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
        BenchCommand::GrpcProduce(args) => grpc::run_grpc_produce(args).map(Some),
        BenchCommand::Report(args) => {
            let readme = render::render(args)?;
            println!("report written to {}", readme.display());
            Ok(None)
        }
    }
}
