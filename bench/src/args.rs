//! Command-line arguments of `shardmq bench produce` / `shardmq bench consume`, as clap `Args`
//! (the binary flattens them into its own CLI), and [`BenchCommand`] to dispatch on. Checks that
//! need more than one argument live in `validate`, run before any executor starts.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use shardmq_protocol::batch::BATCH_HEADER_BYTES;
use shardmq_protocol::limits::{BATCH_BYTES_MAX, BATCH_RECORDS_MAX, PULL_WAIT_MS_MAX};
use shardmq_protocol::record::RECORD_OVERHEAD_BYTES;

use crate::error::BenchError;

/// `shardmq bench --broker HOST:PORT <produce|consume> …`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Broker address, HOST:PORT (the `native=` address of the broker's ready line).
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub broker: String,
    #[command(subcommand)]
    pub command: BenchCommand,
}

impl BenchArgs {
    /// Parses the arguments of `shardmq bench` (without the program name and `bench`), as the
    /// binary does: `["--broker", "h:1", "produce", "--topic", "t"]`.
    pub fn parse_command(args: &[&str]) -> Result<BenchCommand, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map(|c| c.bench.into_command())
    }

    /// The command with the broker address filled in.
    pub fn into_command(self) -> BenchCommand {
        let mut command = self.command;
        match &mut command {
            BenchCommand::Produce(args) => args.broker = self.broker,
            BenchCommand::Consume(args) => args.broker = self.broker,
            BenchCommand::EndToEnd(args) => args.produce.broker = self.broker,
            BenchCommand::Report(_) | BenchCommand::GrpcProduce(_) => {}
        }
        command
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Closed-loop producers: batches of --batch records of --size bytes, --in-flight at a time.
    Produce(ProduceArgs),
    /// Drains every queue of a topic from its start, checking every batch's CRCs.
    Consume(ConsumeArgs),
    /// Producers and consumers at once: publish latency and send-to-receipt latency per record.
    EndToEnd(EndToEndArgs),
    /// Render result JSON files into a markdown report with SVG charts (no broker involved).
    Report(crate::render::ReportArgs),
    /// RocketMQ 5.x SendMessage over gRPC against shardmq's gRPC port or a RocketMQ proxy.
    GrpcProduce(crate::grpc::GrpcProduceArgs),
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct EndToEndArgs {
    #[command(flatten)]
    pub produce: ProduceArgs,
    /// Long-poll wait of the consumers' pulls, in ms.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=i64::from(PULL_WAIT_MS_MAX)))]
    pub wait_ms: u32,
    /// Consumer executors; the queues of every topic are dealt round-robin over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub consumers: u32,
    /// CPU of the consumer executors (default: the first producer executor's CPU).
    #[arg(long)]
    pub consumer_cpu: Option<usize>,
    /// Consume through this consumer group: each of the --consumers executors is one member,
    /// consuming what the group assigns it and committing its progress in the group.
    #[arg(long)]
    pub group: Option<String>,
    /// With --group: every member gets every message (RocketMQ's broadcasting model).
    #[arg(long, requires = "group")]
    pub broadcasting: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// A subscription filter on the broker (shardmq and RocketMQ).
#[derive(Args, Debug, Clone, PartialEq, Default)]
pub struct FilterArgs {
    /// Receive only messages with these tags: `*` or `tagA || tagB`.
    #[arg(long, conflicts_with = "filter_sql")]
    pub filter_tags: Option<String>,
    /// Receive only messages this RocketMQ SQL92 expression selects (over properties and TAGS).
    #[arg(long)]
    pub filter_sql: Option<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> Option<crate::engine::BenchFilter> {
        use crate::engine::BenchFilter;
        match (&self.filter_tags, &self.filter_sql) {
            (Some(tags), _) => Some(BenchFilter::Tags(tags.clone())),
            (None, Some(sql)) => Some(BenchFilter::Sql(sql.clone())),
            (None, None) => None,
        }
    }
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct ProduceArgs {
    /// Broker native address, HOST:PORT.
    /// Set from `BenchArgs::broker`.
    #[arg(skip)]
    pub broker: String,
    /// Topic to produce to, or several separated by commas (producer p sends to the
    /// (p mod n)-th); on shardmq they must exist, peers create them.
    #[arg(long)]
    pub topic: String,
    /// Total messages across all producers (count mode; ignored with --duration-s).
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Duration mode: send for this many measured seconds (after the warm-up), then wait for
    /// the acks, instead of sending --messages.
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Run this many seconds before measuring: those requests are sent and counted as warm-up,
    /// but are in no latency or throughput figure.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_s: f64,
    /// Producer executors (threads); producer p runs on executor p % threads. Each executor
    /// keeps its own histograms, merged at the end.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// CPUs of the producer executors, comma-separated, cycled over --threads (default: all on
    /// --cpu).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Messages per batch (one produce request).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(BATCH_RECORDS_MAX)))]
    pub batch: u32,
    /// Producers, each with its own connections, spread over --threads executors.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub producers: u32,
    /// Queues each producer cycles over (producer p starts at queue p * this); default: all.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub queues_per_producer: Option<u32>,
    /// Batches each producer keeps awaiting acks (1 measures plain round trips).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub in_flight: u32,
    #[command(flatten)]
    pub run: RunArgs,
    /// Open loop: send at this many messages per second in all (split over the producers),
    /// each batch on a fixed schedule, latency measured from its intended send time. 0 = closed
    /// loop (as fast as acks return).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Print every request slower than this many µs (send, or intended send, to ack) to stderr,
    /// with its send time on CLOCK_MONOTONIC (the clock of `perf record -k CLOCK_MONOTONIC` and
    /// of kernel traces), so a tail can be lined up with what the machine did at that moment.
    #[arg(long)]
    pub log_slow_us: Option<u64>,
    #[command(flatten)]
    pub peers: PeerArgs,
    /// shardmq only, with --batch 1: publish message by message through the client's batching
    /// Producer with this linger (µs), which coalesces what the concurrent senders
    /// (--in-flight per producer) hand it; latency is per message, send to its offset.
    #[arg(long)]
    pub linger_us: Option<u64>,
    /// Tag the batches: `name[:weight],…`, each batch carrying one tag in these proportions
    /// (per queue, in a fixed cycle). shardmq and RocketMQ peers only.
    #[arg(long)]
    pub tags: Option<String>,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct ConsumeArgs {
    /// Broker native address, HOST:PORT.
    /// Set from `BenchArgs::broker`.
    #[arg(skip)]
    pub broker: String,
    /// Topic to drain; it must exist.
    #[arg(long)]
    pub topic: String,
    /// Messages expected in total across the topic's queues; fewer is an error.
    #[arg(long)]
    pub messages: u64,
    /// Byte bound of one pull reply.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_bytes: u32,
    /// Message bound of one pull reply.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_messages: u32,
    /// Long-poll wait of one pull.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=i64::from(PULL_WAIT_MS_MAX)))]
    pub wait_ms: u32,
    /// Give up after this long without a new message.
    #[arg(long, default_value_t = 5_000)]
    pub idle_timeout_ms: u64,
    #[command(flatten)]
    pub run: RunArgs,
    /// With --peer: the bench fills a fresh peer with --messages records first (untimed), then
    /// drains it (timed).
    #[command(flatten)]
    pub peers: PeerArgs,
    /// Peer runs: payload bytes of the records the fill writes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Peer runs: records per request of the fill.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=i64::from(BATCH_RECORDS_MAX)))]
    pub fill_batch: u32,
    /// Peer runs: tags of the records the fill writes, as `bench produce --tags`.
    #[arg(long)]
    pub fill_tags: Option<String>,
    /// Before the timed drain, write the page cache back and drop it (`sync`, then `3` into
    /// /proc/sys/vm/drop_caches; Linux, root), so a server that reads through the page cache
    /// (a peer filled just before) reads from the disk as one using O_DIRECT does.
    #[arg(long)]
    pub drop_caches: bool,
    /// Drain only what this filter selects (on shardmq, --messages counts the matching
    /// messages; on a peer, the bench knows how many of its fill match a tag filter).
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// What every kind of run shares: where the result goes, where the bench runs, how failures
/// end it.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// CPU to pin the bench executor to (default: the last CPU this process may use).
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Per-request timeout (pulls: added to their long-poll wait).
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Reach shardmq over TLS, trusting the certificates in this PEM file (the broker's own,
    /// or its CA); --broker is then the broker's --tls-listen address.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Stop the run after this many failed requests.
    #[arg(long, default_value_t = 100)]
    pub max_errors: u64,
    /// Microseconds the bench executor spins before parking its CPU (0 = park at once). Use it
    /// for round-trip latency runs, together with the broker's --spin-before-park-us.
    #[arg(long, default_value_t = 0)]
    pub spin_us: u64,
}

/// Running against a peer system instead of the shardmq broker at --broker.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct PeerArgs {
    /// Run against a peer this command starts and stops itself, on loopback with a fresh data
    /// directory, instead of the shardmq broker at --broker.
    #[arg(long, value_enum)]
    pub peer: Option<crate::peers::Peer>,
    /// The CPU to pin the peer's server to (as `--cpus` pins the broker's shards).
    #[arg(long)]
    pub peer_cpu: Option<usize>,
    /// Queues of the topic a peer run creates (RocketMQ queues, Redis streams, NATS subjects).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub peer_queues: u32,
    /// `--peer shardmq-remoting`: the running broker's RocketMQ name server, HOST:PORT
    /// (namesrv= on its ready line).
    #[arg(long)]
    pub peer_namesrv: Option<String>,
}

impl ProduceArgs {
    pub(crate) fn validate(&self) -> Result<(), BenchError> {
        let batch_bytes = (self.size + RECORD_OVERHEAD_BYTES) as u128 * u128::from(self.batch);
        if batch_bytes + BATCH_HEADER_BYTES as u128 > u128::from(BATCH_BYTES_MAX) {
            return Err(BenchError::InvalidArgs(format!(
                "--batch {} of --size {} does not fit one batch ({BATCH_BYTES_MAX} bytes)",
                self.batch, self.size
            )));
        }
        if self.messages == 0 {
            return Err(BenchError::InvalidArgs(
                "--messages must be at least 1".into(),
            ));
        }
        if self.run.timeout_ms == 0 {
            return Err(BenchError::InvalidArgs(
                "--timeout-ms must be at least 1".into(),
            ));
        }
        if self.linger_us.is_some() && (self.batch != 1 || self.peers.peer.is_some()) {
            return Err(BenchError::InvalidArgs(
                "--linger-us is client batching of single messages: it needs --batch 1 and no --peer"
                    .into(),
            ));
        }
        for (name, seconds) in [
            ("--warmup-s", Some(self.warmup_s)),
            ("--duration-s", self.duration_s),
        ] {
            if let Some(s) = seconds {
                if !(s >= 0.0 && s.is_finite() && s < 1e7) {
                    return Err(BenchError::InvalidArgs(format!(
                        "{name} {s} must be a number of seconds >= 0"
                    )));
                }
            }
        }
        if self.tags.is_some() && !peer_has_tags(self.peers.peer) {
            return Err(BenchError::InvalidArgs(
                "--tags needs a system with tags: shardmq or a RocketMQ peer".into(),
            ));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(BenchError::InvalidArgs(format!(
                "--rate {} must be a finite number >= 0",
                self.rate
            )));
        }
        Ok(())
    }
}

/// Whether messages of `peer` (`None`: shardmq) carry tags and are filtered by the system.
pub(crate) fn peer_has_tags(peer: Option<crate::peers::Peer>) -> bool {
    use crate::peers::Peer;
    matches!(
        peer,
        None | Some(Peer::RocketmqRust | Peer::RocketmqRustSync | Peer::ShardmqRemoting)
    )
}

impl EndToEndArgs {
    /// The end-to-end workload: the producers' plus the consumers, and their group.
    pub(crate) fn workload(&self) -> Result<crate::engine::Workload, BenchError> {
        let mut workload = self
            .produce
            .workload(Some((self.consumers, self.consumer_cpu)))?;
        let filter = self.filter.filter();
        if filter.is_some() && self.group.is_none() {
            return Err(BenchError::InvalidArgs(
                "--filter-tags / --filter-sql filter a subscription: they need --group".into(),
            ));
        }
        if let Some(name) = &self.group {
            if !peer_has_tags(self.produce.peers.peer) {
                return Err(BenchError::InvalidArgs(
                    "--group needs a system with consumer groups: shardmq or a RocketMQ peer"
                        .into(),
                ));
            }
            workload.group = Some(crate::engine::GroupRun {
                name: name.clone(),
                broadcasting: self.broadcasting,
                filter,
            });
        }
        Ok(workload)
    }
}

impl ProduceArgs {
    /// The workload these arguments describe; `end_to_end` is `Some((consumer executors, their
    /// CPU))` for end-to-end runs.
    pub(crate) fn workload(
        &self,
        end_to_end: Option<(u32, Option<usize>)>,
    ) -> Result<crate::engine::Workload, BenchError> {
        self.validate()?;
        let allowed = crate::runtime::allowed_cpus();
        let default_cpu = crate::runtime::choose_cpu(self.run.cpu, &allowed)?;
        let listed: Vec<usize> = self
            .cpus
            .iter()
            .map(|&c| crate::runtime::choose_cpu(Some(c), &allowed))
            .collect::<Result<_, _>>()?;
        let producer_cpus: Vec<usize> = (0..self.threads as usize)
            .map(|t| {
                if listed.is_empty() {
                    default_cpu
                } else {
                    listed[t % listed.len()]
                }
            })
            .collect();
        let consumer_cpus = match end_to_end {
            Some((count, wanted)) => {
                let cpu = crate::runtime::choose_cpu(wanted.or(Some(producer_cpus[0])), &allowed)?;
                vec![cpu; count as usize]
            }
            None => Vec::new(),
        };
        let topics: Vec<String> = self
            .topic
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if topics.is_empty() {
            return Err(BenchError::InvalidArgs("--topic names no topic".into()));
        }
        Ok(crate::engine::Workload {
            topics,
            messages: self.messages,
            duration: self.duration_s.map(std::time::Duration::from_secs_f64),
            warmup: std::time::Duration::from_secs_f64(self.warmup_s),
            size: self.size,
            batch: self.batch,
            producers: self.producers,
            queues_per_producer: self.queues_per_producer,
            in_flight: self.in_flight,
            rate: self.rate,
            log_slow: self.log_slow_us.map(std::time::Duration::from_micros),
            producer_cpus,
            consumer_cpus,
            spin_us: self.run.spin_us,
            max_errors: self.run.max_errors,
            drain_timeout: std::time::Duration::from_secs(5),
            tags: crate::engine::TagMix::parse(self.tags.as_deref().unwrap_or(""))?,
            group: None,
        })
    }
}

impl ConsumeArgs {
    pub(crate) fn validate(&self) -> Result<(), BenchError> {
        if self.run.timeout_ms == 0 {
            return Err(BenchError::InvalidArgs(
                "--timeout-ms must be at least 1".into(),
            ));
        }
        let tagged = self.fill_tags.is_some() || self.filter.filter().is_some();
        if tagged && !peer_has_tags(self.peers.peer) {
            return Err(BenchError::InvalidArgs(
                "--fill-tags / --filter-* need a system with tags: shardmq or a RocketMQ peer"
                    .into(),
            ));
        }
        if self.fill_tags.is_some() && self.peers.peer.is_none() {
            return Err(BenchError::InvalidArgs(
                "--fill-tags is for peer runs (fill shardmq with `bench produce --tags`)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses test arguments written as `<kind> --broker B …`: `--broker` is moved in front of the
    /// subcommand, where the real command line takes it.
    fn parse(args: &[&str]) -> Result<BenchCommand, clap::Error> {
        let mut rest: Vec<&str> = args.to_vec();
        let mut front = Vec::new();
        if let Some(at) = rest.iter().position(|a| *a == "--broker") {
            front.extend(rest.drain(at..(at + 2).min(rest.len())));
        }
        front.extend(rest);
        BenchArgs::parse_command(&front)
    }

    #[test]
    fn produce_defaults_and_overrides() {
        let BenchCommand::Produce(p) =
            parse(&["produce", "--broker", "127.0.0.1:9", "--topic", "t"]).unwrap()
        else {
            panic!("not produce");
        };
        assert_eq!(
            (p.messages, p.size, p.batch, p.producers, p.in_flight),
            (100_000, 1024, 1, 1, 1)
        );
        assert_eq!(
            (p.queues_per_producer, p.run.cpu, p.run.json.as_ref()),
            (None, None, None)
        );
        p.validate().unwrap();

        let BenchCommand::Produce(p) = parse(&[
            "produce",
            "--broker",
            "h:1",
            "--topic",
            "orders",
            "--messages",
            "5000",
            "--size",
            "100",
            "--batch",
            "50",
            "--producers",
            "4",
            "--queues-per-producer",
            "2",
            "--in-flight",
            "8",
            "--json",
            "out.json",
            "--cpu",
            "1",
        ])
        .unwrap() else {
            panic!("not produce");
        };
        assert_eq!(p.batch, 50);
        assert_eq!(p.producers, 4);
        assert_eq!(p.queues_per_producer, Some(2));
        assert_eq!(p.in_flight, 8);
        assert_eq!(p.run.json, Some(PathBuf::from("out.json")));
        assert_eq!(p.run.cpu, Some(1));
    }

    #[test]
    fn bad_produce_arguments_are_refused() {
        assert!(parse(&["produce"]).is_err(), "topic is required");
        assert!(parse(&["produce", "--broker", "h:1", "--topic", "t", "--batch", "0"]).is_err());
        assert!(parse(&[
            "produce",
            "--broker",
            "h:1",
            "--topic",
            "t",
            "--in-flight",
            "0"
        ])
        .is_err());
        let BenchCommand::Produce(p) = parse(&[
            "produce", "--broker", "h:1", "--topic", "t", "--size", "10000000", "--batch", "100",
        ])
        .unwrap() else {
            panic!("not produce");
        };
        assert!(matches!(p.validate(), Err(BenchError::InvalidArgs(_))));
    }

    #[test]
    fn consume_arguments() {
        let BenchCommand::Consume(c) = parse(&[
            "consume",
            "--broker",
            "h:1",
            "--topic",
            "t",
            "--messages",
            "10",
            "--batch-bytes",
            "65536",
        ])
        .unwrap() else {
            panic!("not consume");
        };
        assert_eq!((c.messages, c.batch_bytes, c.wait_ms), (10, 65536, 500));
        assert_eq!(c.idle_timeout_ms, 5_000);
        assert!(
            parse(&["consume", "--broker", "h:1", "--topic", "t"]).is_err(),
            "messages required"
        );
        assert!(parse(&[
            "consume",
            "--broker",
            "h:1",
            "--topic",
            "t",
            "--messages",
            "1",
            "--wait-ms",
            "60001"
        ])
        .is_err());
    }
}
