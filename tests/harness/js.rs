//! Real RocketMQ clients from npm (`tests/js/package.json`, locked by `package-lock.json`),
//! installed by the tests themselves into `target/js-clients` with `npm ci` the first time (or
//! when the lock file changed), under a file lock so parallel test binaries install once; and
//! `tests/js/driver.js` runs them. Needs `node` and `npm` (Node 18+) on PATH.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory whose `node_modules` holds the clients, installed if needed.
pub fn clients_dir() -> PathBuf {
    let dir = repo().join("target").join("js-clients");
    std::fs::create_dir_all(&dir).unwrap();
    let lock_file = std::fs::File::create(dir.join(".install.lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when the file is dropped.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock_file), libc::LOCK_EX) },
        0
    );
    let lock = std::fs::read(repo().join("tests/js/package-lock.json")).unwrap();
    let stamp = dir.join(".installed-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(&lock[..])
        || !dir.join("node_modules").exists()
    {
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(repo().join("tests/js").join(file), dir.join(file)).unwrap();
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .expect("npm is needed for the RocketMQ client tests (Node 18+)");
        assert!(
            out.status.success(),
            "npm ci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&stamp, &lock).unwrap();
    }
    drop(lock_file);
    dir
}

/// A `node driver.js …` command for `client` (`cpp`: rocketmq-nodejs, the official C++ client;
/// `ons`: ali-ons), with `home` as HOME (where the C++ client writes its logs).
pub fn driver(command: &str, client: &str, args: &serde_json::Value, home: &Path) -> Command {
    let dir = clients_dir();
    let mut c = Command::new("node");
    c.arg(repo().join("tests/js/driver.js"))
        .args([command, client, &args.to_string()])
        .env("NODE_PATH", dir.join("node_modules"))
        .env("HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs the driver to its end; its JSON answer, or a panic with its stderr.
pub fn run(command: &str, client: &str, args: serde_json::Value, home: &Path) -> serde_json::Value {
    let out = driver(command, client, &args, home).output().unwrap();
    parse(command, client, out, home)
}

/// Starts the driver without waiting (a consumer that runs beside others).
pub fn spawn(command: &str, client: &str, args: serde_json::Value, home: &Path) -> Child {
    driver(command, client, &args, home).spawn().unwrap()
}

/// The JSON answer of a finished driver.
pub fn finish(child: Child, command: &str, client: &str, home: &Path) -> serde_json::Value {
    parse(command, client, child.wait_with_output().unwrap(), home)
}

fn parse(command: &str, client: &str, out: Output, home: &Path) -> serde_json::Value {
    use std::os::unix::process::ExitStatusExt;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    // The C++ client's process cannot exit by itself (driver.js says why): its driver ends with
    // SIGKILL after a complete answer.
    let killed_after_answer = client == "cpp"
        && out.status.signal() == Some(libc::SIGKILL)
        && serde_json::from_str::<serde_json::Value>(line).is_ok();
    assert!(
        out.status.success() || killed_after_answer,
        "{client} {command} failed ({:?}): {}\n{}\n(C++ client logs under {})",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        stdout,
        home.join("logs").display()
    );
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{client} {command}: {e}: {stdout}"))
}
