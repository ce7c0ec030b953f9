//! Boot and shutdown of the broker process.
//!
//! Start order: raise rlimits → lock the data dir → settle its layout (the recorded shard count;
//! see `layout`) → load the topic registry → block SIGTERM and
//! SIGINT (every thread inherits the mask; one signal thread waits for them) → one pinned glommio
//! executor per shard, each recovering its store → shard 0 binds the listener once every shard
//! is ready → the main thread prints `shardmq ready native=HOST:PORT`.
//!
//! Shutdown (SIGTERM/SIGINT, or a shard that fails): a process-wide flag that every shard polls;
//! each shard then stops accepting, lets connections write their last replies (bounded by
//! `SHUTDOWN_DRAIN_TIMEOUT`), and closes its store (write, fdatasync, checkpoint). The process
//! exits 0 when every shard closed cleanly, in the reverse order of start.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use shardmq_shards::{ShardStore, StoreConfig};
use thiserror::Error;

use crate::config::{BrokerArgs, RemotingPlan};
use crate::core::group_configs::{GroupConfigError, GroupConfigs};
use crate::core::remote::{self, CoreMeshEnds};
use crate::core::topics::{TopicError, TopicRegistry};
use crate::core::{Core, CoreConfig};
use crate::fronts::native::router::{self, Handoff};
use crate::fronts::remoting::state::{Directory, RemotingShard, ShardBroker};
use crate::layout::{self, LayoutError};
use crate::limits::{
    HANDOFF_QUEUE_DEPTH, REQUEST_LATENCY, SHUTDOWN_DRAIN_TIMEOUT, SHUTDOWN_POLL_INTERVAL,
};
use crate::lock::{DataDirLock, LockError};
use crate::server::context::ShardContext;

#[derive(Debug, Error)]
pub enum BootError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Topics(#[from] TopicError),
    #[error(transparent)]
    GroupConfigs(#[from] GroupConfigError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("shard {shard_id}: cannot start its executor on CPU {cpu}: {message}")]
    Executor {
        shard_id: u32,
        cpu: usize,
        message: String,
    },
    #[error("shard {shard_id}: {message}")]
    Shard { shard_id: u32, message: String },
}

enum ShardReport {
    Ready {
        shard_id: u32,
        native: Option<std::net::SocketAddr>,
        /// This shard as a RocketMQ broker: its name and the address clients are told.
        remoting: Option<ShardBroker>,
        namesrv: Option<std::net::SocketAddr>,
    },
    Failed {
        shard_id: u32,
        message: String,
    },
}

struct ShardBoot {
    shard_id: u32,
    shard_count: u32,
    store: StoreConfig,
    listen: Option<String>,
    stall_timeout: Duration,
    topics: Arc<TopicRegistry>,
    group_configs: Arc<GroupConfigs>,
    core: CoreConfig,
    mesh: CoreMeshEnds,
    shutdown: Arc<AtomicBool>,
    reports: mpsc::Sender<ShardReport>,
    handoff_senders: Vec<Option<SharedSender<Handoff>>>,
    handoff_receiver: Option<SharedReceiver<Handoff>>,
    /// This shard's RocketMQ listeners, when remoting is on.
    remoting: Option<RemotingBoot>,
    /// Shard 0: the embedded name server's address.
    namesrv: Option<String>,
    directory: Arc<Directory>,
    /// Where the HTTP thread's questions arrive (`ops::query`).
    queries: flume::Receiver<crate::ops::query::ShardQuery>,
    /// Where the gRPC thread's calls arrive (`fronts::grpc::shard_calls`).
    grpc_calls: flume::Receiver<crate::fronts::grpc::shard_calls::ShardCall>,
    acl: Option<Arc<crate::acl::Acl>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// This shard's native TLS listener address, when `--tls-listen` is given.
    tls_listen: Option<String>,
    tls_addresses: Arc<std::sync::RwLock<Vec<String>>>,
}

/// What a shard needs to serve RocketMQ remoting.
#[derive(Clone)]
struct RemotingBoot {
    plan: RemotingPlan,
    advertise_host: Option<String>,
    broker_name: String,
}

fn raise_limit(resource: libc::__rlimit_resource_t) {
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(resource, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(resource, &limit);
        }
    }
}

/// glommio registers `io_memory` per executor with io_uring, which counts against the memlock
/// limit (often 8 MiB). Split what the limit allows between the shards (glommio's default is
/// 10 MiB; above the limit it silently falls back to unregistered buffers).
fn io_memory_per_executor(shards: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a stack struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
    let available = if ok { limit.rlim_cur as usize } else { 8 << 20 };
    let share = available / (shards + 1);
    (share & !((1 << 20) - 1)).clamp(1 << 20, 10 << 20)
}

pub(crate) fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: building a signal set and masking it in the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for SIGTERM or SIGINT: the first starts a clean shutdown, bounded by `deadline` (past
/// it the process exits with status 1: recovery checks the log at the next start); a second
/// signal exits at once the same way.
pub(crate) fn spawn_signal_thread(
    set: libc::sigset_t,
    shutdown: Arc<AtomicBool>,
    deadline: Duration,
) {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut signal = 0;
            // SAFETY: sigwait on a set that every thread has blocked.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                continue;
            }
            if shutdown.swap(true, Ordering::SeqCst) {
                tracing::error!(signal, "a second signal: exiting now, without a clean close");
                std::process::exit(1);
            }
            tracing::info!(signal, deadline_ms = deadline.as_millis() as u64, "shutdown requested");
            let _ = std::thread::Builder::new()
                .name("shutdown-deadline".into())
                .spawn(move || {
                    std::thread::sleep(deadline);
                    tracing::error!(deadline_ms = deadline.as_millis() as u64, "shutdown did not finish in time: exiting without a clean close");
                    std::process::exit(1);
                });
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the signal thread; SIGTERM will not stop the broker cleanly"));
}

/// Runs the broker until SIGTERM/SIGINT. Returns once every shard has closed its store.
pub fn run_broker(args: BrokerArgs) -> Result<(), BootError> {
    // A shard pre-touches at most what its arena keeps (`memory::pretouch_bytes`).
    crate::memory::keep_large_allocations_on_the_heap(crate::memory::ARENA_HEAP_KEPT_BYTES);
    raise_limit(libc::RLIMIT_NOFILE);
    raise_limit(libc::RLIMIT_MEMLOCK);
    crate::ops::preflight::judge(&crate::ops::preflight::Facts::read())
        .map_err(BootError::Config)?;
    let lock = DataDirLock::acquire(&args.data_dir)?;
    let allowed = crate::config::allowed_cpus();
    let layout = layout::settle(
        &args.data_dir,
        args.shards.map(|n| n as u32),
        args.default_shard_count() as u32,
    )?;
    let shard_count = layout.shard_count as usize;
    let topics = Arc::new(TopicRegistry::load(&args.data_dir)?);
    let group_configs = Arc::new(GroupConfigs::load(&args.data_dir)?);
    let cpus = args
        .shard_cpus(shard_count, &allowed)
        .map_err(BootError::Config)?;
    args.external_namesrvs().map_err(BootError::Config)?;
    let acl = load_acl(&args)?;
    tracing::info!(
        per_shard_bytes = args.write_behind_bytes(shard_count as u32),
        "write-behind budget (--write-behind): produces are acknowledged from memory up to this much unwritten"
    );
    tracing::info!(
        per_shard_bytes = args.hot_tail_bytes(shard_count as u32),
        "hot tail (--hot-tail): the most recent batches each shard serves from memory"
    );
    let tls = load_tls(&args)?;
    let tls_addresses = Arc::new(std::sync::RwLock::new(vec![String::new(); shard_count]));
    for shard_id in 0..shard_count {
        args.store_config(shard_id as u32, shard_count as u32)
            .validate()
            .map_err(|e| BootError::Config(e.to_string()))?;
    }
    let signals = block_termination_signals();
    let shutdown = Arc::new(AtomicBool::new(false));
    spawn_signal_thread(
        signals,
        shutdown.clone(),
        Duration::from_millis(args.shutdown_timeout_ms.max(1)),
    );
    let (reports, ready) = mpsc::channel();
    let (mut senders, mut receivers): (Vec<_>, Vec<_>) = (0..shard_count)
        .map(|k| {
            if k == 0 {
                (None, None)
            } else {
                let (s, r) = shared_channel::new_bounded(HANDOFF_QUEUE_DEPTH);
                (Some(s), Some(r))
            }
        })
        .unzip();
    let remoting_plan = args
        .remoting_plan(shard_count as u32)
        .map_err(BootError::Config)?;
    let directory = Directory::new(
        &args.cluster_name,
        Duration::from_millis(args.remoting_idle_timeout_ms),
    );
    let http = args
        .http_listen()
        .map(crate::ops::http::bind)
        .transpose()
        .map_err(BootError::Config)?;
    let (query_senders, query_receivers): (Vec<_>, Vec<_>) = (0..shard_count)
        .map(|_| crate::ops::query::channel())
        .unzip();
    let mut query_receivers = query_receivers.into_iter();
    let grpc_listener = args
        .grpc_listen()
        .map(crate::fronts::grpc::bind)
        .transpose()
        .map_err(BootError::Config)?;
    let (grpc_senders, grpc_receivers): (Vec<_>, Vec<_>) = (0..shard_count)
        .map(|_| crate::fronts::grpc::shard_calls::channel())
        .unzip();
    let mut grpc_receivers = grpc_receivers.into_iter();
    let io_memory = io_memory_per_executor(shard_count);
    let mut handles = Vec::with_capacity(shard_count);
    let mut meshes = crate::mesh::build(shard_count as u32).into_iter();
    for (k, cpu) in cpus.iter().copied().enumerate() {
        let boot = ShardBoot {
            shard_id: k as u32,
            shard_count: shard_count as u32,
            store: args.store_config(k as u32, shard_count as u32),
            listen: (k == 0).then(|| args.listen.clone()),
            stall_timeout: Duration::from_millis(args.stall_timeout_ms),
            core: args.core_config(),
            mesh: meshes.next().expect("one mesh end per shard"),
            topics: topics.clone(),
            group_configs: group_configs.clone(),
            shutdown: shutdown.clone(),
            reports: reports.clone(),
            handoff_senders: if k == 0 {
                std::mem::take(&mut senders)
            } else {
                Vec::new()
            },
            handoff_receiver: receivers[k].take(),
            remoting: remoting_plan.as_ref().map(|plans| RemotingBoot {
                plan: plans[k].clone(),
                advertise_host: args.advertise_host.clone(),
                broker_name: args.broker_name.clone(),
            }),
            namesrv: (k == 0)
                .then(|| args.namesrv_listen().map(str::to_owned))
                .flatten(),
            directory: directory.clone(),
            queries: query_receivers.next().expect("one query channel per shard"),
            grpc_calls: grpc_receivers
                .next()
                .expect("one gRPC call channel per shard"),
            acl: acl.clone(),
            tls: tls.clone(),
            tls_listen: args.tls_listen_of(k as u32).map_err(BootError::Config)?,
            tls_addresses: tls_addresses.clone(),
        };
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{k}"))
            .io_memory(io_memory)
            .spin_before_park(Duration::from_micros(args.spin_before_park_us))
            .spawn(move || serve_shard(boot))
            .map_err(|e| BootError::Executor {
                shard_id: k as u32,
                cpu,
                message: e.to_string(),
            })?;
        handles.push(handle);
    }
    drop(reports);
    let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
    let grpc_addr = grpc_listener.as_ref().and_then(|l| l.local_addr().ok());
    let started = wait_until_ready(
        &ready,
        shard_count,
        &shutdown,
        &directory,
        Listeners {
            http: http_addr,
            grpc: grpc_addr,
        },
        &tls_addresses,
    );
    let grpc = match (started.is_ok(), grpc_listener) {
        (true, Some(listener)) => crate::fronts::grpc::start(crate::fronts::grpc::GrpcBoot {
            listener,
            shards: grpc_senders,
            topics: topics.clone(),
            acl: acl.clone(),
            tls: tls.clone(),
            broker_name: args.broker_name.clone(),
            advertise_host: args.advertise_host.clone(),
            shutdown: shutdown.clone(),
        })
        .map_err(|e| tracing::error!(error = %e, "cannot start the gRPC thread"))
        .ok(),
        _ => None,
    };
    // Started last, stopped first (it only reads the shards).
    let http = match (started.is_ok(), http) {
        (true, Some(listener)) => crate::ops::http::start(
            listener,
            query_senders,
            shutdown.clone(),
            acl.clone(),
            tls.clone(),
        )
        .map_err(|e| tracing::error!(error = %e, "cannot start the http thread"))
        .ok(),
        _ => None,
    };
    let registration = started
        .is_ok()
        .then(|| start_registration(&args, &directory, &topics, &shutdown))
        .flatten();
    let mut first_error = started.err();
    // Stopped in reverse start order: the HTTP and gRPC threads, the registration, then the
    // shards.
    if let Some(http) = http {
        let _ = http.join();
    }
    if let Some(grpc) = grpc {
        let _ = grpc.join();
    }
    if let Some(registration) = registration {
        // Ends after shutdown begins, once every shard is unregistered.
        let _ = registration.join();
    }
    for (k, handle) in handles.into_iter().enumerate().rev() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                first_error.get_or_insert(BootError::Shard {
                    shard_id: k as u32,
                    message,
                });
            }
            Err(e) => {
                first_error.get_or_insert(BootError::Shard {
                    shard_id: k as u32,
                    message: e.to_string(),
                });
            }
        }
    }
    drop(lock);
    match first_error {
        Some(err) => Err(err),
        None => {
            tracing::info!("broker stopped cleanly");
            Ok(())
        }
    }
}

/// Starts registering with `--namesrv`'s name servers, if any (`namesrv::register`).
fn start_registration(
    args: &BrokerArgs,
    directory: &Arc<Directory>,
    topics: &Arc<TopicRegistry>,
    shutdown: &Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let namesrvs = args.external_namesrvs().ok().filter(|n| !n.is_empty())?;
    if directory.brokers().is_empty() {
        tracing::warn!("--namesrv is set but remoting is off: nothing to register");
        return None;
    }
    let core = args.core_config();
    let registrar = crate::namesrv::register::Registrar {
        namesrvs,
        directory: directory.clone(),
        topics: topics.clone(),
        auto_create_queues: core.auto_create_topics.then_some(core.default_topic_queues),
        shutdown: shutdown.clone(),
    };
    std::thread::Builder::new()
        .name("namesrv-register".into())
        .spawn(move || crate::namesrv::register::run(registrar))
        .map_err(|e| tracing::error!(error = %e, "cannot start registering with the name servers"))
        .ok()
}

/// The next shard report. Polls instead of a plain `recv`: two shards reporting at the same
/// instant once left the main thread parked in `std::sync::mpsc::Receiver::recv` with both
/// reports in the channel (a lost wakeup; seen about once in a thousand starts by the crash
/// torture test, with every shard past its send), so a start hung forever. A timed wait looks
/// again on its own.
fn recv_report(ready: &mpsc::Receiver<ShardReport>) -> Result<ShardReport, mpsc::RecvError> {
    loop {
        match ready.recv_timeout(Duration::from_millis(50)) {
            Ok(report) => return Ok(report),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(mpsc::RecvError),
        }
    }
}

/// The listeners bound before the shards start, named on the ready line.
struct Listeners {
    http: Option<std::net::SocketAddr>,
    grpc: Option<std::net::SocketAddr>,
}

fn wait_until_ready(
    ready: &mpsc::Receiver<ShardReport>,
    shards: usize,
    shutdown: &AtomicBool,
    directory: &Directory,
    listeners: Listeners,
    tls_addresses: &std::sync::RwLock<Vec<String>>,
) -> Result<(), BootError> {
    let (mut native, mut namesrv) = (None, None);
    let mut remoting = vec![None; shards];
    for _ in 0..shards {
        match recv_report(ready) {
            Ok(ShardReport::Ready {
                shard_id,
                native: n,
                remoting: r,
                namesrv: ns,
            }) => {
                native = native.or(n);
                namesrv = namesrv.or(ns);
                remoting[shard_id as usize] = r;
            }
            Ok(ShardReport::Failed { shard_id, message }) => {
                shutdown.store(true, Ordering::SeqCst);
                return Err(BootError::Shard { shard_id, message });
            }
            Err(_) => {
                shutdown.store(true, Ordering::SeqCst);
                return Err(BootError::Config(
                    "a shard stopped before it was ready".into(),
                ));
            }
        }
    }
    let Some(native) = native else {
        shutdown.store(true, Ordering::SeqCst);
        return Err(BootError::Config(
            "shard 0 did not report its listener".into(),
        ));
    };
    let brokers: Vec<ShardBroker> = remoting.into_iter().flatten().collect();
    let first_remoting = brokers.first().map(|b| b.addr);
    directory.publish(brokers);
    use std::io::Write;
    let mut line = format!("shardmq ready native={native}");
    if let Some(addr) = first_remoting {
        line.push_str(&format!(" remoting={addr}"));
    }
    if let Some(addr) = namesrv {
        line.push_str(&format!(" namesrv={addr}"));
    }
    if let Some(addr) = listeners.http {
        line.push_str(&format!(" http={addr}"));
    }
    if let Some(addr) = listeners.grpc {
        line.push_str(&format!(" grpc={addr}"));
    }
    let tls0 = tls_addresses.read().ok().and_then(|a| a.first().cloned());
    if let Some(addr) = tls0.filter(|a| !a.is_empty()) {
        line.push_str(&format!(" tls={addr}"));
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    Ok(())
}

/// Sets the process-wide shutdown flag if dropped during a panic.
struct StopAllOnPanic(Arc<AtomicBool>);

impl Drop for StopAllOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("a shard panicked; stopping the broker");
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs [`shard_main`] in a task queue with a latency requirement. glommio 0.9 notices wakes
/// from other threads (a `spawn_blocking` result, a socket handed over a shared channel) promptly
/// only for tasks in such a queue; in the default queue they wait for the executor's next timer,
/// which stalled requests for seconds. Every task spawned from there inherits the queue.
async fn serve_shard(boot: ShardBoot) -> Result<(), String> {
    // A panic on this shard must stop the whole broker (and so let a supervisor restart it),
    // not leave a process whose listener or queues are silently gone.
    let _stop_all_on_panic = StopAllOnPanic(boot.shutdown.clone());
    // From the first await on, this executor never sleeps longer than one tick. A wakeup from
    // another thread (a blocking-pool result, a shared channel's peer) was seen lost during
    // start-up: the crash torture test caught shards parked for 70 s or for good in their store
    // open or connects (about once in a thousand starts), with nothing else due to wake them.
    // The tick bounds such a stall to one period; once serving, the shutdown poll below ticks
    // at the same period anyway.
    let _tick = glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
        }
    });
    let requests = glommio::executor().create_task_queue(
        Shares::Static(1000),
        Latency::Matters(REQUEST_LATENCY),
        "requests",
    );
    match glommio::spawn_local_into(shard_main(boot), requests) {
        Ok(task) => task.await,
        Err(e) => Err(format!("cannot spawn into the request task queue: {e}")),
    }
}

async fn shard_main(boot: ShardBoot) -> Result<(), String> {
    let shard_id = boot.shard_id;
    let fail = |message: String| {
        boot.shutdown.store(true, Ordering::SeqCst);
        let _ = boot.reports.send(ShardReport::Failed {
            shard_id,
            message: message.clone(),
        });
        Err(message)
    };
    let background = glommio::executor().create_task_queue(
        Shares::Static(100),
        Latency::NotImportant,
        "background",
    );
    // Before anything is served, the hot tail's memory is made resident (`memory`: a first
    // touch in the request path waited ~2 ms for the host).
    let started = std::time::Instant::now();
    let touched = crate::memory::pretouch_heap(crate::memory::pretouch_bytes(
        boot.store.hot_tail_bytes,
        crate::config::machine_memory_bytes(),
        boot.shard_count,
    ));
    tracing::debug!(
        shard = shard_id,
        touched,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "startup: hot-tail memory touched"
    );
    let store = match ShardStore::open(boot.store.clone(), Some(background)).await {
        Ok(store) => store,
        Err(err) => return fail(format!("cannot open its store: {err}")),
    };
    tracing::debug!(shard = shard_id, "startup: store open; connecting the mesh");
    let (mesh, calls) = boot.mesh.connect().await;
    tracing::debug!(shard = shard_id, "startup: mesh connected");
    let groups = crate::core::groups::persist::load(store.dir()).await;
    let core = Core::new(
        store.clone(),
        boot.shard_count,
        boot.topics.clone(),
        boot.group_configs.clone(),
        boot.core.clone(),
        mesh,
        groups,
    );
    core.drop_orphaned_queues().await;
    tracing::debug!(shard = shard_id, "startup: core ready; starting listeners");
    // Owned tasks: dropped (cancelled) when this function returns.
    let _mesh = glommio::spawn_local(remote::serve(core.clone(), calls));
    let _housekeeping = glommio::spawn_local_into(core.clone().housekeeping(), background)
        .map_err(|e| format!("cannot spawn the core's housekeeping: {e}"))?;
    let mut ctx = ShardContext::new(core.clone(), boot.stall_timeout, boot.acl.clone());
    ctx.tls = boot.tls.clone();
    ctx.tls_addresses = boot.tls_addresses.clone();
    let ctx = Rc::new(ctx);
    if let Some(listen) = &boot.tls_listen {
        if let Err(message) = start_native_tls(&ctx, listen) {
            return fail(message);
        }
    }
    let _watchdog = glommio::spawn_local_into(ctx.watchdog.clone().run(), background)
        .map_err(|e| format!("cannot spawn the watchdog: {e}"))?;
    let _queries =
        glommio::spawn_local(crate::ops::query::serve(ctx.clone(), boot.queries.clone()));
    let _grpc_calls = glommio::spawn_local(crate::fronts::grpc::shard_calls::serve(
        ctx.clone(),
        boot.grpc_calls.clone(),
    ));
    let remoting = match &boot.remoting {
        Some(plan) => {
            match start_remoting(&ctx, (shard_id, boot.shard_count), &boot.directory, plan) {
                Ok(broker) => Some(broker),
                Err(message) => return fail(message),
            }
        }
        None => None,
    };
    let namesrv = match &boot.namesrv {
        Some(listen) => match crate::server::listener::bind_exclusive(listen) {
            Ok(listener) => {
                let addr = listener.local_addr().ok();
                glommio::spawn_local(crate::namesrv::connection::accept_loop(
                    ctx.clone(),
                    boot.directory.clone(),
                    listener,
                ))
                .detach();
                addr
            }
            Err(err) => {
                return fail(format!(
                    "cannot listen on {listen} (--namesrv-listen): {err}"
                ))
            }
        },
        None => None,
    };
    let ready = |native| ShardReport::Ready {
        shard_id,
        native,
        remoting: remoting.clone(),
        namesrv,
    };
    if let Some(listen) = &boot.listen {
        let listener = match crate::server::listener::bind_exclusive(listen) {
            Ok(listener) => listener,
            Err(err) => return fail(format!("cannot listen on {listen}: {err}")),
        };
        let native = listener.local_addr().ok();
        let mut senders = Vec::new();
        tracing::debug!(shard = shard_id, "startup: connecting the handoff senders");
        for sender in boot.handoff_senders {
            senders.push(match sender {
                Some(s) => Some(s.connect().await),
                None => None,
            });
        }
        tracing::debug!(shard = shard_id, "startup: ready");
        let _ = boot.reports.send(ready(native));
        glommio::spawn_local(router::accept_loop(ctx.clone(), listener, Rc::new(senders))).detach();
    } else if let Some(receiver) = boot.handoff_receiver {
        tracing::debug!(shard = shard_id, "startup: connecting the handoff receiver");
        let receiver = receiver.connect().await;
        tracing::debug!(shard = shard_id, "startup: ready");
        let _ = boot.reports.send(ready(None));
        glommio::spawn_local(router::receive_loop(ctx.clone(), receiver)).detach();
    }
    while !boot.shutdown.load(Ordering::SeqCst) {
        glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
    }
    core.begin_shutdown();
    drain(&ctx).await;
    core.close().await;
    store
        .close()
        .await
        .map_err(|e| format!("closing its store failed: {e}"))?;
    tracing::info!(shard = shard_id, "shard stopped");
    Ok(())
}

/// Binds this shard's native TLS listener, publishes its address for `HelloReply`, accepts.
fn start_native_tls(ctx: &Rc<ShardContext>, listen: &str) -> Result<(), String> {
    let listener = crate::server::listener::bind_exclusive(listen)
        .map_err(|err| format!("cannot listen on {listen} (--tls-listen): {err}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let mut addresses = ctx
        .tls_addresses
        .write()
        .map_err(|_| "TLS addresses poisoned")?;
    addresses[ctx.core.shard_id as usize] = bound.to_string();
    drop(addresses);
    glommio::spawn_local(crate::fronts::native::tls_listener::accept_loop(
        ctx.clone(),
        listener,
    ))
    .detach();
    Ok(())
}

/// The TLS server side of `--tls-cert` / `--tls-key`, or `None`.
fn load_tls(args: &BrokerArgs) -> Result<Option<Arc<rustls::ServerConfig>>, BootError> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => crate::server::tls::server_config(cert, key)
            .map(Some)
            .map_err(BootError::Config),
        _ => Ok(None),
    }
}

/// The ACL table of `--acl`, or `None` (with a warning when a listener is reachable from other
/// hosts, since then anyone who can reach it may do anything).
fn load_acl(args: &BrokerArgs) -> Result<Option<Arc<crate::acl::Acl>>, BootError> {
    let Some(path) = &args.acl else {
        for (flag, listen) in args.listeners() {
            if !crate::config::is_loopback(listen) {
                tracing::warn!(
                    listener = flag,
                    address = listen,
                    "ACL is off and this listener is reachable from other hosts: anyone who \
                     can connect may publish, consume and administer (start with --acl FILE)"
                );
            }
        }
        return Ok(None);
    };
    let acl = crate::acl::load(path).map_err(|e| BootError::Config(e.to_string()))?;
    tracing::info!(accounts = acl.len(), file = %path.display(), "ACL on");
    if let Some(namesrv) = args
        .namesrv_listen()
        .filter(|l| !crate::config::is_loopback(l))
    {
        tracing::warn!(
            address = namesrv,
            "the embedded name server has no ACL (as RocketMQ 4.x's): anyone who can reach it \
             can read routes and register brokers; keep it on a trusted network"
        );
    }
    Ok(Some(Arc::new(acl)))
}

/// Binds this shard's remoting listeners (main and VIP) and starts accepting; returns the shard
/// as the RocketMQ broker clients will be told about.
fn start_remoting(
    ctx: &Rc<ShardContext>,
    (shard_id, shard_count): (u32, u32),
    directory: &Arc<Directory>,
    plan: &RemotingBoot,
) -> Result<ShardBroker, String> {
    let bind = |addr: std::net::SocketAddr| {
        crate::server::listener::bind_exclusive(&addr.to_string())
            .map_err(|err| format!("cannot listen on {addr} (remoting): {err}"))
    };
    let main = bind(plan.plan.main)?;
    let bound = main.local_addr().map_err(|e| e.to_string())?;
    let vip = plan.plan.vip.map(bind).transpose()?;
    let host = match (&plan.advertise_host, bound.ip()) {
        (Some(host), _) => host
            .parse()
            .map_err(|e| format!("--advertise-host {host:?}: {e}"))?,
        (None, ip) if ip.is_unspecified() => {
            tracing::warn!(
                "remoting listens on {bound}; telling clients 127.0.0.1 (set --advertise-host)"
            );
            std::net::IpAddr::from([127, 0, 0, 1])
        }
        (None, ip) => ip,
    };
    let advertised = std::net::SocketAddr::new(host, bound.port());
    let shard = Rc::new(RemotingShard::new(
        shard_id,
        shard_count,
        &plan.broker_name,
        advertised,
        directory.clone(),
    ));
    let broker = ShardBroker {
        shard_id,
        broker_name: shard.broker_name.clone(),
        addr: advertised,
    };
    *ctx.remoting_broker.borrow_mut() = Some((shard.broker_name.clone(), advertised.to_string()));
    for listener in std::iter::once(main).chain(vip) {
        glommio::spawn_local(crate::fronts::remoting::listener::accept_loop(
            ctx.clone(),
            shard.clone(),
            listener,
        ))
        .detach();
    }
    Ok(broker)
}

async fn drain(ctx: &ShardContext) {
    let deadline = Instant::now() + SHUTDOWN_DRAIN_TIMEOUT;
    while ctx.open_connections() > 0 {
        let now = Instant::now();
        if now >= deadline {
            tracing::warn!(
                shard = ctx.core.shard_id,
                open = ctx.open_connections(),
                "connections still open after the drain timeout"
            );
            return;
        }
        let closed = ctx.connection_closed.listen();
        if ctx.open_connections() == 0 {
            return;
        }
        futures_lite::future::or(closed, glommio::timer::sleep(deadline - now)).await;
    }
}
