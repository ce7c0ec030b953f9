//! `shardmq tune`: checks the host against what a thread-per-core io_uring broker needs and says
//! what to change (`tuning/README.md` explains each item). `--apply` raises the sysctls it can
//! raise safely (it never lowers a value). Runs on the calling thread; reads `/proc` and `/sys`
//! with `std::fs`, since no executor is involved.
//!
//! Every finding is `(check, status, found, recommendation)`; `--json` prints them as a JSON
//! array so scripts (and the tests) can read them.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::config::BrokerArgs;

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Raise the network sysctls that are below the recommendation (needs root).
    #[arg(long)]
    pub apply: bool,
    /// Print the findings as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only inspect (the default; kept for `tune --check` as documented).
    #[arg(long)]
    pub check: bool,
    /// The broker configuration to check the host for (data dir, shards, CPUs).
    #[command(flatten)]
    pub broker: BrokerArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Info,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub found: String,
    pub recommendation: String,
}

fn finding(
    check: &'static str,
    status: Status,
    found: impl Into<String>,
    recommendation: impl Into<String>,
) -> Finding {
    Finding {
        check,
        status,
        found: found.into(),
        recommendation: recommendation.into(),
    }
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The numbers in a sysctl value (`tcp_rmem` has three).
fn numbers(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Runs the command: prints the findings (and applies sysctls with `--apply`).
pub fn run(args: TuneArgs) -> Result<String, String> {
    let mut findings = check_host(&args.broker)?;
    if args.apply {
        findings.extend(apply_sysctls());
    }
    if args.json {
        return serde_json::to_string_pretty(&findings).map_err(|e| e.to_string());
    }
    let mut out = format!(
        "{:<18} {:<6} {:<44} {}\n",
        "CHECK", "STATUS", "FOUND", "RECOMMENDATION"
    );
    for f in &findings {
        let status = format!("{:?}", f.status).to_lowercase();
        out.push_str(&format!(
            "{:<18} {:<6} {:<44} {}\n",
            f.check, status, f.found, f.recommendation
        ));
    }
    Ok(out.trim_end().to_string())
}

/// Every check, in the order of `tuning/README.md`.
pub fn check_host(broker: &BrokerArgs) -> Result<Vec<Finding>, String> {
    let allowed = crate::config::allowed_cpus();
    let cpus = broker.shard_cpus(broker.default_shard_count(), &allowed)?;
    Ok(vec![
        cpu_set(&allowed, &cpus),
        memlock(cpus.len()),
        open_files(),
        io_uring(),
        filesystem(&broker.data_dir),
        disk_scheduler(&broker.data_dir),
        cpu_governor(&cpus),
        transparent_hugepages(),
        isolated_cpus(&cpus),
        irq_affinity(&cpus),
        somaxconn(),
        socket_buffers(),
        busy_poll(),
    ])
}

/// The CPUs the process may run on (its affinity mask) and where shards would be pinned.
fn cpu_set(allowed: &[usize], cpus: &[usize]) -> Finding {
    use crate::config::show_cpus;
    let online = read_trimmed("/sys/devices/system/cpu/online").unwrap_or_default();
    finding(
        "cpu set",
        Status::Info,
        format!(
            "may run on {} (online {online}); shards on {}",
            show_cpus(allowed),
            show_cpus(cpus)
        ),
        "narrow with taskset or a cpuset; --cpus names CPUs by id",
    )
}

fn rlimit(resource: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a stack struct.
    unsafe { libc::getrlimit(resource, &mut limit) };
    (limit.rlim_cur, limit.rlim_max)
}

fn show_limit(value: u64) -> String {
    if value == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        value.to_string()
    }
}

fn memlock(shards: usize) -> Finding {
    let (soft, hard) = rlimit(libc::RLIMIT_MEMLOCK);
    let wanted = 10u64 * (1 << 20) * (shards as u64 + 1);
    let found = format!("soft {} B, hard {} B", show_limit(soft), show_limit(hard));
    if hard >= wanted {
        finding(
            "memlock",
            Status::Ok,
            found,
            "the broker raises its soft limit to the hard one at start",
        )
    } else {
        finding("memlock", Status::Warn, found, format!("raise the hard limit to >= {wanted} B (10 MiB of io_uring buffers per shard); below it glommio shares less registered memory"))
    }
}

fn open_files() -> Finding {
    let (soft, hard) = rlimit(libc::RLIMIT_NOFILE);
    let found = format!("soft {}, hard {}", show_limit(soft), show_limit(hard));
    if hard >= 65_536 {
        finding(
            "open-files",
            Status::Ok,
            found,
            "the broker raises its soft limit to the hard one",
        )
    } else {
        finding(
            "open-files",
            Status::Warn,
            found,
            "raise the hard limit to >= 65536: one descriptor per connection, segment and index",
        )
    }
}

fn io_uring() -> Finding {
    match read_trimmed("/proc/sys/kernel/io_uring_disabled").as_deref() {
        None | Some("0") => finding("io-uring", Status::Ok, "enabled", "-"),
        Some(v) => finding(
            "io-uring",
            Status::Error,
            format!("kernel.io_uring_disabled = {v}"),
            "set kernel.io_uring_disabled = 0: the broker needs io_uring",
        ),
    }
}

fn existing_ancestor(path: &Path) -> PathBuf {
    let mut at = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    while !at.exists() {
        if !at.pop() {
            return PathBuf::from("/");
        }
    }
    at
}

fn statfs_type(path: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs fills a zeroed struct for a NUL-terminated path.
    unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut buf) == 0).then_some(buf.f_type as i64)
    }
}

fn filesystem(data_dir: &Path) -> Finding {
    let at = existing_ancestor(data_dir);
    filesystem_finding(statfs_type(&at), &at)
}

/// The finding for a data directory at `at` on a filesystem of statfs type `fs_type`.
fn filesystem_finding(fs_type: Option<i64>, at: &Path) -> Finding {
    let name = match fs_type {
        Some(0xEF53) => "ext4",
        Some(0x5846_5342) => "xfs",
        Some(0x0102_1994) => "tmpfs",
        Some(0x9123_683E) => "btrfs",
        Some(_) => "other",
        None => "unknown",
    };
    let found = format!("{name} at {}", at.display());
    match name {
        "ext4" | "xfs" => finding("filesystem", Status::Ok, found, "-"),
        "tmpfs" => finding(
            "filesystem",
            Status::Error,
            found,
            "put --data-dir on a block filesystem: tmpfs has no O_DIRECT",
        ),
        _ => finding(
            "filesystem",
            Status::Warn,
            found,
            "ext4 or xfs are what the DMA log is tested on",
        ),
    }
}

/// The block device (`/sys/block/<name>`) holding `path`, from its device number.
fn block_device(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(existing_ancestor(path)).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let link = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let name = link.file_name()?.to_string_lossy().into_owned();
    // A partition's queue settings live on its parent disk.
    if Path::new(&format!("/sys/block/{name}")).exists() {
        return Some(name);
    }
    link.parent()?
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
}

fn disk_scheduler(data_dir: &Path) -> Finding {
    let Some(device) = block_device(data_dir) else {
        return finding("disk-scheduler", Status::Info, "device not found", "-");
    };
    let Some(line) = read_trimmed(format!("/sys/block/{device}/queue/scheduler")) else {
        return finding(
            "disk-scheduler",
            Status::Info,
            format!("{device}: not exposed"),
            "-",
        );
    };
    let active = line
        .split_whitespace()
        .find(|w| w.starts_with('['))
        .unwrap_or("?")
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let found = format!("{device}: {active}");
    if active == "none" {
        finding("disk-scheduler", Status::Ok, found, "-")
    } else {
        finding("disk-scheduler", Status::Warn, found, format!("echo none > /sys/block/{device}/queue/scheduler: the log writes large sequential DMA buffers; a scheduler only adds latency on NVMe / virtio"))
    }
}

fn cpu_governor(cpus: &[usize]) -> Finding {
    let governors: Vec<String> = cpus
        .iter()
        .filter_map(|c| {
            read_trimmed(format!(
                "/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
            ))
            .map(|g| format!("cpu{c}={g}"))
        })
        .collect();
    if governors.is_empty() {
        return finding(
            "cpu-governor",
            Status::Info,
            "not exposed (virtual machine?)",
            "-",
        );
    }
    let found = governors.join(" ");
    if governors.iter().all(|g| g.ends_with("=performance")) {
        finding("cpu-governor", Status::Ok, found, "-")
    } else {
        finding(
            "cpu-governor",
            Status::Warn,
            found,
            "set the shard CPUs to the performance governor: frequency ramps add tail latency",
        )
    }
}

fn transparent_hugepages() -> Finding {
    let Some(line) = read_trimmed("/sys/kernel/mm/transparent_hugepage/enabled") else {
        return finding("transparent-huge", Status::Info, "not exposed", "-");
    };
    let found = format!("enabled: {line}");
    if line.contains("[always]") {
        finding(
            "transparent-huge",
            Status::Warn,
            found,
            "use madvise: with always, compaction stalls land on the request path",
        )
    } else {
        finding("transparent-huge", Status::Ok, found, "-")
    }
}

fn isolated_cpus(cpus: &[usize]) -> Finding {
    let isolated = read_trimmed("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let found = format!(
        "isolated: {}; shards on {cpus:?}",
        if isolated.is_empty() {
            "none"
        } else {
            &isolated
        }
    );
    finding("isolated-cpus", Status::Info, found, "on dedicated hosts, isolcpus=/nohz_full= for the shard CPUs keeps other work and timer ticks off them")
}

/// `(irq, name, cpus that took its interrupts)` for device interrupts in /proc/interrupts.
fn device_irqs() -> Vec<(String, String, Vec<usize>)> {
    let Some(text) = read_trimmed("/proc/interrupts") else {
        return vec![];
    };
    let mut lines = text.lines();
    let cpu_count = lines.next().map_or(0, |h| h.split_whitespace().count());
    lines
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let irq = parts.next()?.trim_end_matches(':').to_string();
            irq.parse::<u32>().ok()?;
            let counts: Vec<u64> = parts
                .by_ref()
                .take(cpu_count)
                .filter_map(|c| c.parse().ok())
                .collect();
            let name = parts.last().unwrap_or("").to_string();
            let device = [
                "virtio", "nvme", "eth", "ens", "enp", "mlx", "ixgbe", "i40e", "ena",
            ]
            .iter()
            .any(|d| name.contains(d));
            let busy: Vec<usize> = counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 1000)
                .map(|(cpu, _)| cpu)
                .collect();
            (device && !busy.is_empty()).then_some((irq, name, busy))
        })
        .collect()
}

fn irq_affinity(cpus: &[usize]) -> Finding {
    let irqs = device_irqs();
    if irqs.is_empty() {
        return finding(
            "irq-affinity",
            Status::Info,
            "no busy device interrupts found",
            "-",
        );
    }
    let on_shards: Vec<String> = irqs
        .iter()
        .filter(|(_, _, busy)| busy.iter().any(|c| cpus.contains(c)))
        .map(|(irq, name, busy)| format!("{irq} {name} on cpu {busy:?}"))
        .collect();
    if on_shards.is_empty() {
        finding(
            "irq-affinity",
            Status::Ok,
            format!("{} busy device IRQs, none on shard CPUs", irqs.len()),
            "-",
        )
    } else {
        finding(
            "irq-affinity",
            Status::Warn,
            on_shards.join("; "),
            "move these to non-shard CPUs (echo CPU > /proc/irq/N/smp_affinity_list) or pin shards elsewhere with --cpus: every interrupt preempts a shard",
        )
    }
}

const SOMAXCONN_MIN: u64 = 4096;
const SOCKET_BUFFER_MAX_MIN: u64 = 16 << 20;

/// `/proc/sys/…` for a dotted sysctl name.
fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

fn sysctl(name: &str) -> Option<String> {
    read_trimmed(sysctl_path(name))
}

/// A numeric sysctl; 0 when unreadable.
fn sysctl_u64(name: &str) -> u64 {
    sysctl(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn somaxconn() -> Finding {
    let value = sysctl_u64("net.core.somaxconn");
    let found = format!("net.core.somaxconn = {value}");
    if value >= SOMAXCONN_MIN {
        finding("somaxconn", Status::Ok, found, "-")
    } else {
        finding("somaxconn", Status::Warn, found, format!("sysctl -w net.core.somaxconn={SOMAXCONN_MIN} (or tune --apply): bursts of connects overflow a short accept queue"))
    }
}

fn socket_buffers() -> Finding {
    let rmem = sysctl_u64("net.core.rmem_max");
    let wmem = sysctl_u64("net.core.wmem_max");
    let tcp_w = sysctl("net.ipv4.tcp_wmem")
        .map(|v| numbers(&v))
        .unwrap_or_default();
    let tcp_w_max = tcp_w.get(2).copied().unwrap_or(0);
    let found = format!("rmem_max {rmem}, wmem_max {wmem}, tcp_wmem max {tcp_w_max}");
    if rmem >= SOCKET_BUFFER_MAX_MIN
        && wmem >= SOCKET_BUFFER_MAX_MIN
        && tcp_w_max >= SOCKET_BUFFER_MAX_MIN
    {
        finding("socket-buffers", Status::Ok, found, "-")
    } else {
        finding("socket-buffers", Status::Warn, found, "raise net.core.rmem_max/wmem_max and the tcp_rmem/tcp_wmem maxima to 16 MiB (or tune --apply): 1 MB batches and multi-MB pull replies need more than one window")
    }
}

fn busy_poll() -> Finding {
    let poll = sysctl("net.core.busy_poll").unwrap_or_else(|| "?".into());
    let read = sysctl("net.core.busy_read").unwrap_or_else(|| "?".into());
    finding(
        "busy-poll",
        Status::Info,
        format!("busy_poll {poll}, busy_read {read}"),
        "on a NIC with busy-poll support, 50 (µs) trades CPU for receive latency; the broker's --spin-before-park-us does the same at the executor",
    )
}

/// Raises the sysctls below their recommendation; never lowers one.
fn apply_sysctls() -> Vec<Finding> {
    let mut applied = Vec::new();
    let mut raise = |name: &'static str, want: Vec<u64>| {
        let Some(current) = sysctl(name) else { return };
        let now = numbers(&current);
        let target: Vec<u64> = want
            .iter()
            .zip(now.iter().chain(std::iter::repeat(&0)))
            .map(|(w, n)| (*w).max(*n))
            .collect();
        if target == now {
            return;
        }
        let value = target
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let path = sysctl_path(name);
        let (status, found) = match std::fs::write(&path, &value) {
            Ok(()) => (Status::Ok, format!("{name}: {current} -> {value}")),
            Err(e) => (Status::Error, format!("{name}: cannot write {value}: {e}")),
        };
        applied.push(finding(
            "apply",
            status,
            found,
            "not persistent: add it to /etc/sysctl.d/ to keep it across reboots",
        ));
    };
    raise("net.core.somaxconn", vec![SOMAXCONN_MIN]);
    raise("net.core.rmem_max", vec![SOCKET_BUFFER_MAX_MIN]);
    raise("net.core.wmem_max", vec![SOCKET_BUFFER_MAX_MIN]);
    raise(
        "net.ipv4.tcp_rmem",
        vec![4096, 131_072, SOCKET_BUFFER_MAX_MIN],
    );
    raise(
        "net.ipv4.tcp_wmem",
        vec![4096, 65_536, SOCKET_BUFFER_MAX_MIN],
    );
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_numbers_parse() {
        assert_eq!(
            numbers("4096\t131072\t33554432"),
            vec![4096, 131_072, 33_554_432]
        );
        assert_eq!(numbers("128"), vec![128]);
        assert!(numbers("").is_empty());
    }

    #[test]
    fn filesystems_are_judged_by_their_statfs_type() {
        let at = Path::new("/data");
        assert_eq!(
            filesystem_finding(Some(0x0102_1994), at).status,
            Status::Error,
            "tmpfs has no O_DIRECT"
        );
        assert_eq!(filesystem_finding(Some(0xEF53), at).status, Status::Ok);
        assert_eq!(filesystem_finding(Some(0x5846_5342), at).status, Status::Ok);
        assert_eq!(
            filesystem_finding(Some(0x9123_683E), at).status,
            Status::Warn
        );
        assert_eq!(filesystem_finding(None, at).status, Status::Warn);
    }

    #[test]
    fn the_data_dir_filesystem_is_read_from_the_host() {
        // Under the build directory: the block filesystem the tests' brokers run on.
        let f = filesystem(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert_eq!(f.status, Status::Ok, "{f:?}");
    }
}
