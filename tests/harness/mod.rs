//! Test harness: a real `shardmq broker` process on 127.0.0.1:0 with its own data directory,
//! a glommio executor to run client code in, and a raw blocking socket for malformed input.
#![allow(dead_code)]

pub mod js;
pub mod remoting;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use shardmq_protocol::envelope;
use shardmq_protocol::frame::FRAME_HEADER_BYTES;
use shardmq_protocol::messages::{ErrorReply, Hello};
use shardmq_protocol::{FrameHeader, FrameKind};

pub struct Broker {
    child: Option<Child>,
    pub addr: String,
    /// Shard 0's RocketMQ remoting address and the embedded name server's (empty when off).
    pub remoting: String,
    pub namesrv: String,
    /// The HTTP listener's address (empty when off).
    pub http: String,
    /// Shard 0's native TLS listener (empty without `--tls-listen`).
    pub tls: String,
    /// The RocketMQ 5.x gRPC listener (empty when off).
    pub grpc: String,
    pub data_dir: PathBuf,
    stderr_log: PathBuf,
}

/// Every thread's backtrace of process `pid`, by gdb when the machine has it.
fn thread_stacks(pid: u32) -> String {
    let out = Command::new("timeout")
        .args([
            "60",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output();
    let mut text = match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(no backtraces: {e})"),
    };
    // Kernel side of every thread (io_uring workers have no user stack): what each waits in.
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for task in tasks.flatten() {
        let path = task.path();
        let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
        text.push_str(&format!(
            "\ntask {:?} {} wchan {}:\n{}",
            task.file_name(),
            read("comm").trim(),
            read("wchan"),
            read("stack")
        ));
    }
    text
}

/// Half of a size written like `16MiB` or `512KiB`, in bytes (`8388608`).
fn half_of_size(size: &str) -> String {
    let digits: String = size.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = match &size[digits.len()..] {
        "KiB" => 1u64 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => panic!("harness: unknown size unit in {size:?} ({other:?})"),
    };
    (digits.parse::<u64>().unwrap() * unit / 2).to_string()
}

/// The value of `name=` on the ready line.
fn ready_field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_default()
        .to_string()
}

/// Record `i` of a test: born at `i`, key "k{i}", payload "record {i}".
pub fn record(i: u64) -> shardmq_protocol::batch::Record {
    shardmq_protocol::batch::Record {
        born_timestamp_ms: i,
        keys: vec![format!("k{i}")],
        payload: format!("record {i}").into_bytes(),
        ..Default::default()
    }
}

/// An encoded batch of the records `seqs`, each stamped with its seq as timestamp and carrying
/// `payload(seq)`.
pub fn batch_of(seqs: std::ops::Range<u64>, payload: impl Fn(u64) -> Vec<u8>) -> Vec<u8> {
    let records: Vec<shardmq_protocol::batch::Record> = seqs
        .map(|seq| shardmq_protocol::batch::Record {
            born_timestamp_ms: seq,
            payload: payload(seq),
            ..Default::default()
        })
        .collect();
    shardmq_protocol::batch::encode_batch(&records).to_vec()
}

/// Runs the `shardmq` binary with `args` and waits for it.
pub fn shardmq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `shardmq admin --broker ADDR --json ARGS`; the parsed output, or the exit code and
/// stderr when it failed.
pub fn admin_json(addr: &str, args: &[&str]) -> Result<serde_json::Value, (i32, String)> {
    let mut all = vec!["admin", "--broker", addr, "--json"];
    all.extend_from_slice(args);
    let out = shardmq(&all);
    if !out.status.success() {
        return Err((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("admin {args:?} printed no JSON ({e}): {out:?}")))
}

/// A data directory on the real disk (O_DIRECT needs a real filesystem), removed at drop.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shardmq-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

impl Broker {
    /// Starts a broker with `extra` flags (which may name its own `--listen`) and waits for its
    /// ready line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Broker {
        Self::try_start(data_dir, extra).unwrap_or_else(|e| panic!("broker did not start: {e}"))
    }

    pub fn try_start(data_dir: &Path, extra: &[&str]) -> Result<Broker, String> {
        Self::try_start_with(data_dir, extra, |_| {})
    }

    /// [`Broker::try_start`] with a hook that adjusts the command (environment, rlimits).
    pub fn try_start_with(
        data_dir: &Path,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Result<Broker, String> {
        let stderr_log = data_dir.with_extension(format!("stderr-{}.log", std::process::id()));
        let stderr = std::fs::File::create(&stderr_log).unwrap();
        let mut defaults: Vec<&str> = Vec::new();
        for (flag, default) in [
            ("--listen", "127.0.0.1:0"),
            ("--remoting-listen", "127.0.0.1:0"),
            ("--namesrv-listen", "127.0.0.1:0"),
            ("--http-listen", "127.0.0.1:0"),
            ("--grpc-listen", "127.0.0.1:0"),
            ("--segment-size", "1MiB"),
            ("--hot-tail", "16MiB"),
            ("--write-buffer", "256KiB"),
            ("--checkpoint-interval-ms", "200"),
        ] {
            if !extra.contains(&flag) {
                defaults.extend([flag, default]);
            }
        }
        // The write-behind budget is half the hot tail unless a test sets it, as before the
        // budget had a flag of its own: the tests that saturate a shard, count what a kill -9
        // loses or race retention against the writer are sized for it.
        let write_behind;
        if !extra.contains(&"--write-behind") {
            let hot_tail = extra
                .iter()
                .position(|a| *a == "--hot-tail")
                .and_then(|i| extra.get(i + 1))
                .map_or("16MiB", |v| v);
            write_behind = half_of_size(hot_tail);
            defaults.extend(["--write-behind", write_behind.as_str()]);
        }
        // SHARDMQ_TEST_BINARY runs the tests against another build (an older one, to see a
        // regression test fail there).
        let binary = std::env::var_os("SHARDMQ_TEST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_shardmq").into());
        let mut command = Command::new(binary);
        adjust(&mut command);
        let mut child = command
            .arg("broker")
            .args(&defaults)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env(
                "SHARDMQ_LOG",
                std::env::var("SHARDMQ_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                // A hang is a finding: say where every thread of the broker was.
                let stacks = thread_stacks(child.id());
                let _ = child.kill();
                let status = child.wait().ok();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                return Err(format!(
                    "no ready line (exit {status:?}); stderr:\n{log}\nthreads:\n{stacks}"
                ));
            }
        };
        if !line.starts_with("shardmq ready ") {
            return Err(format!("unexpected first line {line:?}"));
        }
        Ok(Broker {
            child: Some(child),
            addr: ready_field(&line, "native"),
            remoting: ready_field(&line, "remoting"),
            tls: ready_field(&line, "tls"),
            namesrv: ready_field(&line, "namesrv"),
            http: ready_field(&line, "http"),
            grpc: ready_field(&line, "grpc"),
            data_dir: data_dir.to_path_buf(),
            stderr_log,
        })
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().ok()?.code()
    }

    /// SIGTERM and wait; the exit code and the broker's stderr (to show why it was not 0).
    #[allow(dead_code)]
    pub fn stop_with_log(mut self) -> (Option<i32>, String) {
        let Some(mut child) = self.child.take() else {
            return (None, self.stderr());
        };
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let code = child.wait().ok().and_then(|s| s.code());
        (code, self.stderr())
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmSize`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Sockets the broker process has open.
    pub fn open_sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs client code on a glommio executor and returns its result.
pub fn run<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Creates a topic through the client, for tests whose subject is something else.
pub fn create_topic(addr: &str, name: &'static str, queues: u32) {
    let addr = addr.to_string();
    run(move || async move {
        let client = shardmq_client::Client::connect(&addr, "setup")
            .await
            .unwrap();
        client.create_topic(name, queues).await.unwrap();
    });
}

/// A blocking socket speaking raw frames, for feeding the broker bad input.
pub struct RawConnection {
    pub stream: TcpStream,
}

impl RawConnection {
    /// Connects and completes the Hello handshake (optionally asking for a shard).
    pub fn connect(addr: &str, wanted_shard: Option<u32>) -> RawConnection {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut raw = RawConnection { stream };
        let hello = envelope::encode(&Hello {
            client_name: "raw-test".into(),
            wanted_shard,
            credentials: None,
        })
        .unwrap();
        raw.send_frame(FrameKind::Hello, 1, &hello);
        let (header, _) = raw.read_frame().expect("HelloReply");
        assert_eq!(header.kind, FrameKind::HelloReply);
        raw
    }

    pub fn send_frame(&mut self, kind: FrameKind, correlation_id: u64, payload: &[u8]) {
        let header = FrameHeader::new(kind, correlation_id, payload.len())
            .unwrap()
            .encode();
        self.stream.write_all(&header).unwrap();
        self.stream.write_all(payload).unwrap();
    }

    /// Reads one frame; `None` if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        self.stream.read_exact(&mut header).ok()?;
        let header = FrameHeader::decode(&header).unwrap();
        let mut payload = vec![0u8; header.payload_len as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some((header, payload))
    }

    /// Reads one frame and decodes it as an error reply.
    pub fn read_error(&mut self) -> ErrorReply {
        let (header, payload) = self
            .read_frame()
            .expect("an error reply, not a closed connection");
        assert_eq!(header.kind, FrameKind::Error, "expected an error frame");
        envelope::decode::<ErrorReply>(&payload).unwrap()
    }

    /// True once the broker has closed the connection (reads EOF).
    pub fn is_closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }
}
