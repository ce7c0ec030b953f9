//! Broker configuration: command-line flags (each with its unit and how to size it), validated
//! into the shard store configs at boot.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use shardmq_shards::{FlushMode, StoreConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushArg {
    /// Ack once the batch is in memory and readable; fdatasync every --flush-interval-ms.
    Async,
    /// Ack only once an fdatasync covers the batch (group commit).
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// A TOML file of these settings (keys are the flags without dashes, `_` for `-`); flags
    /// and SHARDMQ_<KEY> environment variables override it. See --print-config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print every setting as a commented TOML file with its default, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Native protocol listener, HOST:PORT (port 0 picks a free port; see the ready line).
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub listen: String,
    /// Data directory (logs, indexes, topic registry, lock).
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Number of shards (one pinned executor each). A data directory keeps the count it was
    /// created with (`<data-dir>/layout.json`); a different one is refused. Default: the
    /// recorded count, else one per CPU this process may run on. At least 1.
    #[arg(long, value_parser = parse_shard_count)]
    pub shards: Option<usize>,
    /// CPUs to pin shards to, by id, comma-separated (shard k gets the k-th); each must be in
    /// the process's CPU set (taskset / cpuset). Default: the CPU set in order, skipping its
    /// first CPU when there are more CPUs than shards.
    #[arg(long, value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// When a produce is acknowledged.
    #[arg(long, value_enum, default_value = "async")]
    pub flush: FlushArg,
    /// With --flush async: how often the log is fdatasync'ed, in ms.
    #[arg(long, default_value_t = 500)]
    pub flush_interval_ms: u64,
    /// Segment size (e.g. 1GiB, 64MiB). Larger segments mean fewer files; retention deletes
    /// whole segments.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub segment_size: u64,
    /// Per-shard memory for recent batches (e.g. 256MiB, or `auto`). Consumers within this
    /// distance of the head never read the disk. `auto`: 1/16 of the machine's memory split
    /// over the shards, between 64 MiB and 1 GiB: the same as the auto write-behind budget, so
    /// what a burst holds unwritten stays readable from memory once written (a drain right
    /// after a 2 GB fill 11-32% faster; the memory is faulted in once, as traffic first fills
    /// it: perf-reports/2026-12-04-hot-tail-auto).
    #[arg(long, default_value = "auto", value_parser = parse_size_or_auto)]
    pub hot_tail: SizeOrAuto,
    /// Per-shard write-behind budget (e.g. 512MiB, or `auto`): a produce is acknowledged from
    /// memory while at most this much is appended but not yet written, so bursts and the
    /// disk's pauses (an fdatasync) are absorbed; past it producers wait for the disk. Under
    /// `--flush async` it is also what a `kill -9` can lose. `auto`: 1/16 of the machine's
    /// memory split over the shards, at most 1 GiB and at least half the hot tail.
    #[arg(long, default_value = "auto", value_parser = parse_size_or_auto)]
    pub write_behind: SizeOrAuto,
    /// DMA write buffer of each shard's log writer (e.g. 1MiB); 4 are in flight at most.
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub write_buffer: u64,
    /// How often queue indexes are persisted and the recovery checkpoint advanced, in ms.
    #[arg(long, default_value_t = 2000)]
    pub checkpoint_interval_ms: u64,
    /// Sealed segments older than this are deleted (RocketMQ's fileReservedTime, 72 h), e.g.
    /// `72h`, `30m`, `7d`, or `off` to keep them until a size limit or the disk needs the room.
    #[arg(long, default_value = "72h", value_parser = parse_retention)]
    pub retention: OrOff<Duration>,
    /// Each shard's log is kept under this size (e.g. 100GiB) by deleting its oldest segments;
    /// `off`: no limit. Size it to the disk divided by the shard count, minus one segment per
    /// shard for the one being written and one reserved ahead.
    #[arg(long, default_value = "off", value_parser = parse_optional_bytes)]
    pub retention_bytes: OrOff<u64>,
    /// How often each shard checks what retention must delete and how full the disk is, in ms
    /// (RocketMQ: 10 s).
    #[arg(long, default_value_t = 10_000)]
    pub retention_interval_ms: u64,
    /// Disk use (percent of the data directory's filesystem) at which a warning is logged.
    #[arg(long, default_value_t = 75.0)]
    pub disk_warn_percent: f64,
    /// Disk use at which the oldest segments are deleted even before they expire (RocketMQ's
    /// diskSpaceCleanForciblyRatio, 85%).
    #[arg(long, default_value_t = 85.0)]
    pub disk_force_clean_percent: f64,
    /// Disk use at which shards refuse writes, natively with "writes refused" and over
    /// remoting with SERVICE_NOT_AVAILABLE, while reads go on (RocketMQ's
    /// diskSpaceWarningLevelRatio, 90%). 100: only a disk that is really full stops writes.
    #[arg(long, default_value_t = 90.0)]
    pub disk_refuse_percent: f64,
    /// A connection is closed when a frame's body has not fully arrived this long after its
    /// header, or a write of its replies has not completed for this long (a client that
    /// announces data and sends none, or does not read its replies, holds memory), in ms.
    #[arg(long, default_value_t = 30_000)]
    pub stall_timeout_ms: u64,
    /// A produce to a topic that does not exist creates it (RocketMQ's autoCreateTopicEnable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Queues of a topic created by --auto-create-topics.
    #[arg(long, default_value_t = 8)]
    pub default_topic_queues: u32,
    /// How long a queue lock for orderly consumption lasts unless its holder renews it, in ms
    /// (RocketMQ: 60 s; members renew every 20 s).
    #[arg(long, default_value_t = 60_000)]
    pub queue_lock_expiry_ms: u64,
    /// How often changed consumer offsets are written to disk, in ms: what a crash can lose.
    #[arg(long, default_value_t = 1000)]
    pub offsets_flush_interval_ms: u64,
    /// A produce that has waited this long, in ms, for the shard's disk to catch up is answered
    /// busy (native `Busy`, remoting SYSTEM_BUSY) and not stored (RocketMQ: 1 s). 0: at once.
    #[arg(long, default_value_t = 1000)]
    pub busy_after_ms: u64,
    /// Microseconds an idle shard spins before parking its core. Waking a parked vCPU costs
    /// ~50 µs here; spinning trades CPU for latency.
    #[arg(long, default_value_t = 0)]
    pub spin_before_park_us: u64,
    /// RocketMQ remoting listener of shard 0, HOST:PORT, or `off`. Shard k listens on
    /// PORT + 4k and, for clients older than 4.5.1, on its "VIP" port PORT + 4k - 2; each shard
    /// is a RocketMQ broker of its own in the routes. Port 0: every shard picks a free port
    /// (no VIP ports); the name server tells clients where they are.
    #[arg(long, default_value = "127.0.0.1:10911")]
    pub remoting_listen: String,
    /// A RocketMQ remoting or name-server connection that neither sends a request nor receives
    /// a reply for this long is closed, in ms (Java's serverChannelMaxIdleTimeSeconds, 120 s;
    /// clients heartbeat every 30 s and reconnect when they need to). Keep it above the longest
    /// long poll clients park (30 s for push consumers). 0: never.
    #[arg(long, default_value_t = 120_000)]
    pub remoting_idle_timeout_ms: u64,
    /// The embedded RocketMQ name server, HOST:PORT, or `off` [default: 127.0.0.1:9876, or off
    /// when --namesrv is given].
    #[arg(long)]
    pub namesrv_listen: Option<String>,
    /// External name servers to register with, `HOST:PORT;HOST:PORT` (Java's namesrvAddr):
    /// every shard is registered at start, every 30 s and on topic changes, and unregistered
    /// at shutdown; several brokers behind one name server form one cluster.
    #[arg(long)]
    pub namesrv: Option<String>,
    /// The address RocketMQ clients are told to reach the remoting listeners at (the host of
    /// --remoting-listen by default; needed when that is 0.0.0.0).
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// What to log: a level (error, warn, info, debug, trace) or directives per module
    /// (`info,shardmq::core=debug`). Also SHARDMQ_LOG, like every key. Default: info.
    #[arg(long)]
    pub log: Option<String>,
    /// Log lines as `text`, or as `json` objects one per line (for log collectors).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// How long a shutdown (SIGTERM, SIGINT) may take, in ms: past it the process exits with
    /// status 1 without a clean close (the next start recovers from the log). A second signal
    /// exits at once.
    #[arg(long, default_value_t = 30_000)]
    pub shutdown_timeout_ms: u64,
    /// HTTP listener for Prometheus metrics (`/metrics`) and the dashboard, HOST:PORT, or
    /// `off` (port 0 picks a free port; see `http=` on the ready line).
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub http_listen: String,
    /// RocketMQ 5.x gRPC listener (the proxy's port), HOST:PORT, or `off`: 5.x producers
    /// (rocketmq-clients) route, send and heartbeat here; the broker spreads their messages over
    /// each topic's queues. With --tls-cert it also accepts TLS. Port 0 picks a free port (see
    /// `grpc=` on the ready line).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub grpc_listen: String,
    /// RocketMQ broker name; shard k is the broker `<name>-<k>` (k zero-padded).
    #[arg(long, default_value = "shardmq")]
    pub broker_name: String,
    /// ACL file (RocketMQ's plain_acl.yml keys as TOML; see README "Access control"): with it
    /// every native connection, remoting request and HTTP page must be signed by an account and
    /// is held to its permissions. Without it everything is open.
    #[arg(long)]
    pub acl: Option<PathBuf>,
    /// TLS certificate chain (PEM) of every listener: with --tls-key, the remoting and HTTP
    /// ports also accept TLS (a connection that opens with a TLS handshake gets TLS), and
    /// --tls-listen opens the native protocol's TLS listeners.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Native protocol over TLS, HOST:PORT of shard 0; shard k listens on PORT + k (port 0:
    /// each picks a free port) and serves the TLS connections it accepts. Needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_listen: Option<String>,
    /// RocketMQ cluster name every shard's broker belongs to.
    #[arg(long, default_value = "DefaultCluster")]
    pub cluster_name: String,
}

/// Where the embedded name server listens unless told otherwise (RocketMQ's port).
pub const DEFAULT_NAMESRV_LISTEN: &str = "127.0.0.1:9876";

/// Step between the remoting ports of consecutive shards: room for each one's VIP port
/// (port − 2) without touching another shard's ports.
pub const REMOTING_PORT_STRIDE: u16 = 4;

/// Where one shard's remoting listeners go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingPlan {
    pub main: std::net::SocketAddr,
    /// The VIP port for old clients (`main` − 2), when ports are fixed.
    pub vip: Option<std::net::SocketAddr>,
}

/// True when every address `listen` (HOST:PORT) resolves to is a loopback address; an address
/// that does not resolve counts as reachable from elsewhere.
pub fn is_loopback(listen: &str) -> bool {
    match std::net::ToSocketAddrs::to_socket_addrs(listen) {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// `off` (any case) turns a listener off.
fn listener_on(value: &str) -> Option<&str> {
    (!value.trim().eq_ignore_ascii_case("off")).then_some(value.trim())
}

/// `"64MiB"` as `(64, "MiB")`: the leading digits, and what follows them trimmed.
fn number_and_unit<'a>(text: &'a str, like: &str) -> Result<(u64, &'a str), String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value = digits
        .parse()
        .map_err(|_| format!("{text:?} is not {like}"))?;
    Ok((value, unit.trim()))
}

/// A per-shard memory budget (`--hot-tail`, `--write-behind`): a size, or `auto`, sized from
/// the machine's memory by that flag's own rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeOrAuto {
    Auto,
    Bytes(u64),
}

/// `auto`, or a size as [`parse_bytes`] reads it.
pub fn parse_size_or_auto(text: &str) -> Result<SizeOrAuto, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        Ok(SizeOrAuto::Auto)
    } else {
        parse_bytes(text).map(SizeOrAuto::Bytes)
    }
}

/// The `auto` hot tail of one of `shards` shards on a machine of `memory_bytes`: 1/16 of the
/// memory over the shards, between 64 MiB (the fixed default it replaces) and 1 GiB.
pub fn auto_hot_tail(memory_bytes: u64, shards: u64) -> u64 {
    (memory_bytes / 16 / shards.max(1)).clamp(64 << 20, 1 << 30)
}

/// `--shards`: a count of at least 1 (0 used to mean 1 without saying so).
pub fn parse_shard_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("a broker needs at least 1 shard".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?} is not a shard count: {e}")),
    }
}

/// The `auto` write-behind budget of one of `shards` shards on a machine of `memory_bytes`:
/// 1/16 of the memory over the shards, at most 1 GiB, at least half the hot tail (which wins
/// when a hot tail past 2 GiB puts it above the cap).
pub fn auto_write_behind(memory_bytes: u64, shards: u64, hot_tail: u64) -> u64 {
    (memory_bytes / 16 / shards.max(1))
        .min(1 << 30)
        .max(hot_tail / 2)
}

/// MemTotal of /proc/meminfo, in bytes (0 when unreadable).
pub fn machine_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Parses sizes like `4096`, `64KiB`, `1MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`, `GB` as
/// binary multiples).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text, "a size like 64MiB")?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A limit that may be `off` (a flag value; clap treats a bare `Option` field as "flag may be
/// absent" instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrOff<T>(pub Option<T>);

/// `off` or a size (see [`parse_bytes`]).
pub fn parse_optional_bytes(text: &str) -> Result<OrOff<u64>, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(OrOff(None));
    }
    parse_bytes(text).map(|b| OrOff(Some(b)))
}

/// `off` or a duration like `500ms`, `30s`, `10m`, `72h`, `7d`.
pub fn parse_retention(text: &str) -> Result<OrOff<Duration>, String> {
    parse_duration_or_off(text).map(OrOff)
}

fn parse_duration_or_off(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (value, unit) = number_and_unit(text, "a duration like 72h (or off)")?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m, h or d"
            ))
        }
    };
    value
        .checked_mul(ms_per_unit)
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| format!("{text:?} is too long"))
}

impl BrokerArgs {
    /// The remoting listeners of every shard, or `None` when remoting is off.
    pub fn remoting_plan(&self, shards: u32) -> Result<Option<Vec<RemotingPlan>>, String> {
        let Some(listen) = listener_on(&self.remoting_listen) else {
            return Ok(None);
        };
        let base: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(listen)
            .map_err(|e| format!("--remoting-listen {listen:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--remoting-listen {listen:?} names no address"))?;
        if base.port() == 0 {
            let plan = RemotingPlan {
                main: base,
                vip: None,
            };
            return Ok(Some(vec![plan; shards as usize]));
        }
        let last = u64::from(base.port()) + u64::from(REMOTING_PORT_STRIDE) * u64::from(shards - 1);
        if base.port() < 2 || last > u64::from(u16::MAX) {
            return Err(format!(
                "--remoting-listen {listen}: {shards} shards need ports {}..={last} and their VIP ports below them",
                base.port()
            ));
        }
        Ok(Some(
            (0..shards)
                .map(|k| {
                    let port = base.port() + REMOTING_PORT_STRIDE * k as u16;
                    let at = |p: u16| std::net::SocketAddr::new(base.ip(), p);
                    RemotingPlan {
                        main: at(port),
                        vip: Some(at(port - 2)),
                    }
                })
                .collect(),
        ))
    }

    /// Where shard `k`'s native TLS listener goes (`--tls-listen` PORT + k, or port 0).
    pub fn tls_listen_of(&self, k: u32) -> Result<Option<String>, String> {
        let Some(listen) = &self.tls_listen else {
            return Ok(None);
        };
        let base: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(listen.as_str())
            .map_err(|e| format!("--tls-listen {listen:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--tls-listen {listen:?} names no address"))?;
        let port = match base.port() {
            0 => 0,
            p => p
                .checked_add(k as u16)
                .ok_or_else(|| format!("--tls-listen {listen}: no port for shard {k}"))?,
        };
        Ok(Some(std::net::SocketAddr::new(base.ip(), port).to_string()))
    }

    /// The listeners the ACL guards, by flag, leaving out those that are off.
    pub fn listeners(&self) -> Vec<(&'static str, &str)> {
        let mut all = vec![("--listen", self.listen.as_str())];
        all.extend(self.tls_listen.as_deref().map(|l| ("--tls-listen", l)));
        all.extend(listener_on(&self.remoting_listen).map(|l| ("--remoting-listen", l)));
        all.extend(self.http_listen().map(|l| ("--http-listen", l)));
        all.extend(self.grpc_listen().map(|l| ("--grpc-listen", l)));
        all
    }

    /// The gRPC listener's address, or `None` when it is off.
    pub fn grpc_listen(&self) -> Option<&str> {
        listener_on(&self.grpc_listen)
    }

    /// The HTTP listener's address, or `None` when it is off.
    pub fn http_listen(&self) -> Option<&str> {
        listener_on(&self.http_listen)
    }

    /// The embedded name server's address, or `None` when it is off.
    pub fn namesrv_listen(&self) -> Option<&str> {
        match &self.namesrv_listen {
            Some(listen) => listener_on(listen),
            None if self.namesrv.is_some() => None,
            None => Some(DEFAULT_NAMESRV_LISTEN),
        }
    }

    /// The external name servers of `--namesrv`, checked.
    pub fn external_namesrvs(&self) -> Result<Vec<String>, String> {
        match &self.namesrv {
            Some(list) => crate::namesrv::register::parse_namesrv_list(list),
            None => Ok(Vec::new()),
        }
    }

    pub fn flush_mode(&self) -> FlushMode {
        match self.flush {
            FlushArg::Async => FlushMode::Async {
                interval: Duration::from_millis(self.flush_interval_ms.max(1)),
            },
            FlushArg::Sync => FlushMode::Sync,
        }
    }

    /// The shard count a fresh data directory gets: `--shards`, or one per CPU this process may
    /// run on. A data directory that recorded its count keeps it (see `layout`).
    /// Each shard's hot tail (`--hot-tail`, `auto` sized from the memory).
    pub fn hot_tail_bytes(&self, shard_count: u32) -> u64 {
        match self.hot_tail {
            SizeOrAuto::Bytes(bytes) => bytes,
            SizeOrAuto::Auto => auto_hot_tail(machine_memory_bytes(), u64::from(shard_count)),
        }
    }

    /// Each shard's write-behind budget (`--write-behind`, `auto` sized from the memory).
    pub fn write_behind_bytes(&self, shard_count: u32) -> u64 {
        match self.write_behind {
            SizeOrAuto::Bytes(bytes) => bytes,
            SizeOrAuto::Auto => auto_write_behind(
                machine_memory_bytes(),
                u64::from(shard_count),
                self.hot_tail_bytes(shard_count),
            ),
        }
    }

    pub fn default_shard_count(&self) -> usize {
        self.shards.unwrap_or_else(|| allowed_cpus().len()).max(1)
    }

    /// The CPU each of `shards` shards is pinned to, by the CPUs' real ids. `allowed` is the
    /// process's affinity mask (`taskset`, a cpuset): `--cpus` must name CPUs in it, and the
    /// default placement uses only those, skipping the first when there are more CPUs than
    /// shards (CPU 0 usually takes the interrupts).
    pub fn shard_cpus(&self, shards: usize, allowed: &[usize]) -> Result<Vec<usize>, String> {
        if allowed.is_empty() {
            return Err("this process may run on no CPU (empty affinity mask)".into());
        }
        if let Some(cpus) = &self.cpus {
            if cpus.len() < shards {
                return Err(format!(
                    "--cpus lists {} CPUs for {shards} shards",
                    cpus.len()
                ));
            }
            if let Some(bad) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(format!(
                    "CPU {bad} is not in this process's CPU set {} (taskset / cpuset)",
                    show_cpus(allowed)
                ));
            }
            return Ok(cpus[..shards].to_vec());
        }
        let skip = usize::from(allowed.len() > shards);
        Ok((0..shards)
            .map(|k| allowed[(k + skip) % allowed.len()])
            .collect())
    }

    pub fn core_config(&self) -> crate::core::CoreConfig {
        crate::core::CoreConfig {
            auto_create_topics: self.auto_create_topics,
            default_topic_queues: self.default_topic_queues,
            queue_lock_expiry: Duration::from_millis(self.queue_lock_expiry_ms.max(1)),
        }
    }

    /// Shard `shard_id`'s store settings, on a broker of `shard_count` shards.
    pub fn store_config(&self, shard_id: u32, shard_count: u32) -> StoreConfig {
        let mut config = StoreConfig::new(
            shard_id,
            self.data_dir.join("shards").join(shard_id.to_string()),
        );
        config.segment_bytes = self.segment_size;
        config.flush = self.flush_mode();
        config.hot_tail_bytes = self.hot_tail_bytes(shard_count) as usize;
        config.write_behind_bytes = Some(self.write_behind_bytes(shard_count));
        config.write_buffer_bytes = self.write_buffer as usize;
        config.checkpoint_interval = Duration::from_millis(self.checkpoint_interval_ms.max(10));
        config.offsets_flush_interval =
            Duration::from_millis(self.offsets_flush_interval_ms.max(10));
        config.busy_after = Duration::from_millis(self.busy_after_ms);
        config.retention = shardmq_shards::RetentionConfig {
            max_age: self.retention.0,
            max_bytes: self.retention_bytes.0,
            interval: Duration::from_millis(self.retention_interval_ms.max(10)),
            marks: shardmq_shards::DiskMarks {
                warn_percent: self.disk_warn_percent,
                force_clean_percent: self.disk_force_clean_percent,
                refuse_percent: self.disk_refuse_percent,
            },
            ..config.retention
        };
        config
    }
}

/// The CPUs this process may run on, by id, ascending: its affinity mask (`sched_getaffinity`),
/// which `taskset` and cpusets narrow. Falls back to `0..available_parallelism` if the mask
/// cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a cpu_set_t we own; CPU_ISSET reads it.
    let from_mask = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
                .collect()
        } else {
            Vec::new()
        }
    };
    if from_mask.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    from_mask
}

/// `[0, 2-5]`-style rendering of a CPU list, for messages.
pub fn show_cpus(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BrokerArgs,
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("2m"), Ok(2 << 20));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("GiB").is_err());
    }

    #[test]
    fn retention_values_parse() {
        let hours = Duration::from_secs(72 * 3600);
        assert_eq!(parse_retention("72h"), Ok(OrOff(Some(hours))));
        assert_eq!(
            parse_retention("500ms"),
            Ok(OrOff(Some(Duration::from_millis(500))))
        );
        assert_eq!(parse_retention("OFF"), Ok(OrOff(None)));
        assert!(parse_retention("3 weeks").is_err());
        assert!(parse_retention("h").is_err());
        assert_eq!(parse_optional_bytes("off"), Ok(OrOff(None)));
        assert_eq!(parse_optional_bytes("1GiB"), Ok(OrOff(Some(1 << 30))));
        let args = Wrapper::parse_from(["x", "--retention", "2s", "--retention-bytes", "1MiB"]);
        let retention = args.args.store_config(0, 1).retention;
        assert_eq!(retention.max_age, Some(Duration::from_secs(2)));
        assert_eq!(retention.max_bytes, Some(1 << 20));
        let default = Wrapper::parse_from(["x"]).args.store_config(0, 1).retention;
        assert_eq!((default.max_age, default.max_bytes), (Some(hours), None));
    }

    #[test]
    fn remoting_ports_leave_room_for_vip_ports() {
        let args = Wrapper::parse_from(["x"]).args;
        let plan = args.remoting_plan(3).unwrap().unwrap();
        let ports: Vec<_> = plan
            .iter()
            .map(|p| (p.main.port(), p.vip.map(|v| v.port())))
            .collect();
        assert_eq!(
            ports,
            [
                (10911, Some(10909)),
                (10915, Some(10913)),
                (10919, Some(10917))
            ]
        );
        let any = Wrapper::parse_from(["x", "--remoting-listen", "127.0.0.1:0"]).args;
        assert!(any
            .remoting_plan(2)
            .unwrap()
            .unwrap()
            .iter()
            .all(|p| p.vip.is_none()));
        let off =
            Wrapper::parse_from(["x", "--remoting-listen", "off", "--namesrv-listen", "OFF"]).args;
        assert_eq!(off.remoting_plan(2), Ok(None));
        assert_eq!(off.namesrv_listen(), None);
        let default = Wrapper::parse_from(["x"]).args;
        assert_eq!(default.namesrv_listen(), Some(DEFAULT_NAMESRV_LISTEN));
        let external = Wrapper::parse_from(["x", "--namesrv", "127.0.0.1:9876"]).args;
        assert_eq!(
            external.namesrv_listen(),
            None,
            "registering instead of embedding"
        );
        assert_eq!(external.external_namesrvs().unwrap(), ["127.0.0.1:9876"]);
        let both = [
            "x",
            "--namesrv",
            "127.0.0.1:9876",
            "--namesrv-listen",
            "127.0.0.1:0",
        ];
        assert_eq!(
            Wrapper::parse_from(both).args.namesrv_listen(),
            Some("127.0.0.1:0")
        );
        let high = Wrapper::parse_from(["x", "--remoting-listen", "127.0.0.1:65534"]).args;
        assert!(high.remoting_plan(2).is_err());
        let bad = Wrapper::parse_from(["x", "--remoting-listen", "nowhere"]).args;
        assert!(bad.remoting_plan(1).is_err());
    }

    #[test]
    fn cpu_placement_skips_the_first_cpu_only_with_spare_cores() {
        let args = Wrapper::parse_from(["x"]).args;
        assert_eq!(args.shard_cpus(1, &[0, 1]), Ok(vec![1]));
        assert_eq!(args.shard_cpus(2, &[0, 1]), Ok(vec![0, 1]));
        let pinned = Wrapper::parse_from(["x", "--cpus", "1,0"]).args;
        assert_eq!(pinned.shard_cpus(2, &[0, 1]), Ok(vec![1, 0]));
        let bad = Wrapper::parse_from(["x", "--cpus", "5,6"]).args;
        assert!(bad.shard_cpus(2, &[0, 1]).is_err());
    }

    /// Regression: `taskset -c 1 shardmq broker --cpus 1` failed with "CPU 1 is not online (this
    /// host has 1)": CPUs were counted, not named by id.
    #[test]
    fn cpus_are_named_by_their_ids_in_the_affinity_mask() {
        let pinned = Wrapper::parse_from(["x", "--cpus", "1"]).args;
        assert_eq!(pinned.shard_cpus(1, &[1]), Ok(vec![1]));
        let outside = Wrapper::parse_from(["x", "--cpus", "0"]).args;
        let err = outside.shard_cpus(1, &[1]).unwrap_err();
        assert!(err.contains("[1]"), "{err}");
        let default = Wrapper::parse_from(["x"]).args;
        assert_eq!(default.shard_cpus(2, &[2, 3]), Ok(vec![2, 3]));
        assert_eq!(default.shard_cpus(2, &[2, 3, 7]), Ok(vec![3, 7]));
        assert_eq!(show_cpus(&[0, 2, 3, 4, 9]), "[0, 2-4, 9]");
    }

    #[test]
    fn a_shard_count_is_at_least_one() {
        assert_eq!(parse_shard_count("3"), Ok(3));
        assert!(parse_shard_count("0").unwrap_err().contains("at least 1"));
        assert!(parse_shard_count("-1").is_err());
    }

    #[test]
    fn the_write_behind_budget_is_a_size_or_sized_from_the_memory() {
        const GIB: u64 = 1 << 30;
        // 24 GiB over 2 shards: 768 MiB each; a small machine keeps half the hot tail; a large
        // one stops at 1 GiB.
        assert_eq!(auto_write_behind(24 * GIB, 2, 64 << 20), 768 << 20);
        assert_eq!(auto_write_behind(512 << 20, 4, 64 << 20), 32 << 20);
        assert_eq!(auto_write_behind(256 * GIB, 1, 64 << 20), GIB);
        assert_eq!(auto_write_behind(0, 0, 64 << 20), 32 << 20);
        // A hot tail past 2 GiB: half of it, above the cap (this panicked in clamp).
        assert_eq!(auto_write_behind(24 * GIB, 1, 3 * GIB), 3 * GIB / 2);
        let explicit = Wrapper::parse_from(["x", "--write-behind", "256MiB"]).args;
        assert_eq!(
            explicit.store_config(0, 2).write_behind_bytes,
            Some(256 << 20)
        );
        let auto = Wrapper::parse_from(["x"]).args;
        let budget = auto.store_config(0, 2).write_behind_bytes.unwrap();
        let memory = machine_memory_bytes();
        assert_eq!(
            budget,
            auto_write_behind(memory, 2, auto_hot_tail(memory, 2))
        );
        assert!(parse_size_or_auto("lots").is_err());
        assert_eq!(parse_size_or_auto(" AUTO "), Ok(SizeOrAuto::Auto));
        assert_eq!(parse_size_or_auto("2MiB"), Ok(SizeOrAuto::Bytes(2 << 20)));
    }

    #[test]
    fn the_hot_tail_is_a_size_or_sized_like_the_write_behind_budget() {
        const GIB: u64 = 1 << 30;
        assert_eq!(auto_hot_tail(24 * GIB, 2), 768 << 20);
        assert_eq!(auto_hot_tail(512 << 20, 4), 64 << 20, "never below 64 MiB");
        assert_eq!(auto_hot_tail(256 * GIB, 1), GIB);
        assert_eq!(auto_hot_tail(0, 0), 64 << 20);
        // With both auto, the write-behind budget never exceeds the hot tail (equal from 1 GiB
        // of memory per shard): what a burst holds unwritten stays readable from memory once
        // it is written.
        for (memory, shards) in [(24 * GIB, 2), (512 << 20, 4), (256 * GIB, 1), (2 * GIB, 3)] {
            let hot = auto_hot_tail(memory, shards);
            let budget = auto_write_behind(memory, shards, hot);
            assert!(budget <= hot, "{memory} {shards}: {budget} > {hot}");
            if memory / shards >= GIB {
                assert_eq!(budget, hot, "{memory} {shards}");
            }
        }
        let explicit = Wrapper::parse_from(["x", "--hot-tail", "16MiB"]).args;
        assert_eq!(explicit.store_config(0, 2).hot_tail_bytes, 16 << 20);
        let auto = Wrapper::parse_from(["x", "--hot-tail", "auto"]).args;
        assert_eq!(
            auto.store_config(0, 2).hot_tail_bytes as u64,
            auto_hot_tail(machine_memory_bytes(), 2)
        );
        let default = Wrapper::parse_from(["x"]).args;
        assert_eq!(default.hot_tail, SizeOrAuto::Auto);
    }
}
