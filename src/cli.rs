//! The `shardmq` command line: `broker`, `admin …`, `bench …`.

use clap::{Parser, Subcommand};

use crate::admin::AdminArgs;
use crate::config::BrokerArgs;

#[derive(Parser, Debug)]
#[command(
    name = "shardmq",
    version,
    about = "A thread-per-core io_uring message broker in the family of Apache RocketMQ"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a broker (embedded name server; data under --data-dir).
    Broker(BrokerArgs),
    /// Run a RocketMQ name server alone, for brokers that register with it (`broker --namesrv`).
    Namesrv(crate::namesrv::standalone::NamesrvArgs),
    /// Administer topics and queues of a running broker.
    Admin(AdminArgs),
    /// Load generator: produce / consume against a running broker, HDR latency, JSON report.
    Bench(Box<shardmq_bench::BenchArgs>),
    /// Check the host for what a thread-per-core io_uring broker needs (`--apply` fixes sysctls).
    Tune(crate::tune::TuneArgs),
}
