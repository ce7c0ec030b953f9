//! What the broker checks before it starts an executor: that this kernel and this process can
//! run glommio's io_uring at all, said in words instead of an obscure failure deep in an
//! executor.
//!
//! Checks, in order: the kernel version (glommio needs 5.8), `kernel.io_uring_disabled`
//! (1 limits io_uring to root and `kernel.io_uring_group`, 2 turns it off), an `io_uring_setup`
//! of a tiny ring (what a container's seccomp policy or a memlock limit refuses), and the
//! kernel's opcode probe against every opcode glommio submits. The facts are gathered by
//! [`Facts::read`] and judged by [`judge`], a pure function the tests drive with made-up facts.

use std::fmt::Write;

/// The io_uring opcodes glommio 0.9 submits (`sys/uring.rs`), by number and name.
pub const REQUIRED_OPCODES: [(u8, &str); 22] = [
    (0, "NOP"),
    (3, "FSYNC"),
    (4, "READ_FIXED"),
    (5, "WRITE_FIXED"),
    (6, "POLL_ADD"),
    (7, "POLL_REMOVE"),
    (9, "SENDMSG"),
    (10, "RECVMSG"),
    (11, "TIMEOUT"),
    (12, "TIMEOUT_REMOVE"),
    (13, "ACCEPT"),
    (14, "ASYNC_CANCEL"),
    (15, "LINK_TIMEOUT"),
    (16, "CONNECT"),
    (17, "FALLOCATE"),
    (18, "OPENAT"),
    (19, "CLOSE"),
    (21, "STATX"),
    (22, "READ"),
    (23, "WRITE"),
    (26, "SEND"),
    (27, "RECV"),
];

pub const KERNEL_MIN: (u32, u32) = (5, 8);

/// What the host says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub kernel: Option<(u32, u32)>,
    pub kernel_text: String,
    /// `/proc/sys/kernel/io_uring_disabled`, absent on kernels before 6.6.
    pub io_uring_disabled: Option<u32>,
    pub is_root: bool,
    /// `io_uring_setup`'s errno, or `None` when a ring could be made.
    pub setup_errno: Option<i32>,
    /// Opcodes the kernel's probe says it supports (`None` when there was no ring to probe).
    pub supported: Option<Vec<u8>>,
}

impl Facts {
    pub fn read() -> Facts {
        let kernel_text = kernel_release();
        let (setup_errno, supported) = match probe_ring() {
            Ok(ops) => (None, Some(ops)),
            Err(errno) => (Some(errno), None),
        };
        Facts {
            kernel: parse_kernel(&kernel_text),
            kernel_text,
            io_uring_disabled: std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            // SAFETY: geteuid has no preconditions.
            is_root: unsafe { libc::geteuid() } == 0,
            setup_errno,
            supported,
        }
    }
}

/// `Err` with every problem found, each with what to do about it.
pub fn judge(facts: &Facts) -> Result<(), String> {
    let mut problems = String::new();
    if let Some(kernel) = facts.kernel.filter(|k| *k < KERNEL_MIN) {
        let _ = writeln!(problems, "- kernel {}.{} ({}) is older than {}.{}, the oldest glommio's io_uring runs on: upgrade the kernel", kernel.0, kernel.1, facts.kernel_text, KERNEL_MIN.0, KERNEL_MIN.1);
    }
    match facts.io_uring_disabled {
        Some(2) => {
            let _ = writeln!(
                problems,
                "- io_uring is turned off (sysctl kernel.io_uring_disabled = 2): set it to 0"
            );
        }
        Some(1) if !facts.is_root && facts.setup_errno.is_some() => {
            let _ = writeln!(problems, "- io_uring is limited to root and kernel.io_uring_group (sysctl kernel.io_uring_disabled = 1): run as a member of that group, or set it to 0");
        }
        _ => {}
    }
    if let Some(errno) = facts.setup_errno {
        let why = match errno {
            libc::ENOSYS => "this kernel has no io_uring (built without CONFIG_IO_URING?)".to_string(),
            libc::EPERM | libc::EACCES => "the process may not use io_uring: a seccomp or container policy (Docker's default profile blocks io_uring; run with a profile that allows io_uring_setup, io_uring_enter and io_uring_register), or kernel.io_uring_disabled".to_string(),
            libc::ENOMEM => "not enough locked memory for a ring: raise the memlock limit (ulimit -l, LimitMEMLOCK= in systemd)".to_string(),
            other => format!("io_uring_setup failed: {}", std::io::Error::from_raw_os_error(other)),
        };
        let _ = writeln!(problems, "- {why}");
    }
    if let Some(supported) = &facts.supported {
        let missing: Vec<&str> = REQUIRED_OPCODES
            .iter()
            .filter(|(op, _)| !supported.contains(op))
            .map(|(_, name)| *name)
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(
                problems,
                "- this kernel's io_uring lacks opcodes glommio uses: {}: upgrade the kernel",
                missing.join(", ")
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "this host cannot run the broker's io_uring executors:\n{}",
            problems.trim_end()
        ))
    }
}

fn kernel_release() -> String {
    // SAFETY: uname fills a struct we own; release is NUL-terminated.
    unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) != 0 {
            return String::new();
        }
        std::ffi::CStr::from_ptr(name.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// `(major, minor)` of a release like `6.18.44-fc-v1045`.
pub fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

const IORING_REGISTER_PROBE: libc::c_uint = 8;
const IO_URING_OP_SUPPORTED: u16 = 1;
const PROBE_OPS: usize = 256;

/// Makes a 2-entry ring, asks the kernel which opcodes it supports, closes the ring.
fn probe_ring() -> Result<Vec<u8>, i32> {
    let mut params = [0u8; 120]; // struct io_uring_params, zeroed
                                 // SAFETY: io_uring_setup reads and writes a params struct of its size we own.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let fd = fd as libc::c_int;
    // struct io_uring_probe: 16 bytes of header, then 8 bytes per op.
    let mut probe = vec![0u8; 16 + PROBE_OPS * 8];
    // SAFETY: the probe buffer holds the header and PROBE_OPS ops, as we tell the kernel.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            fd,
            IORING_REGISTER_PROBE,
            probe.as_mut_ptr(),
            PROBE_OPS as libc::c_uint,
        )
    };
    let probed = std::io::Error::last_os_error();
    // SAFETY: closing the ring fd we opened.
    unsafe { libc::close(fd) };
    if rc < 0 {
        // Kernels before 5.6 cannot probe; their version check says what is wrong.
        return Err(probed.raw_os_error().unwrap_or(0));
    }
    let ops_len = usize::from(probe[1]).min(PROBE_OPS);
    Ok((0..ops_len)
        .filter_map(|i| {
            let op = &probe[16 + i * 8..16 + i * 8 + 8];
            let flags = u16::from_le_bytes([op[2], op[3]]);
            (flags & IO_URING_OP_SUPPORTED != 0).then_some(op[0])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Facts {
        Facts {
            kernel: Some((6, 1)),
            kernel_text: "6.1.0".into(),
            io_uring_disabled: Some(0),
            is_root: false,
            setup_errno: None,
            supported: Some((0..=60).collect()),
        }
    }

    #[test]
    fn this_host_passes() {
        assert_eq!(judge(&Facts::read()), Ok(()), "{:?}", Facts::read());
    }

    #[test]
    fn each_missing_piece_is_named_with_what_to_do() {
        assert_eq!(judge(&good()), Ok(()));
        let old = Facts {
            kernel: Some((5, 4)),
            ..good()
        };
        assert!(judge(&old).unwrap_err().contains("older than 5.8"));
        let off = Facts {
            io_uring_disabled: Some(2),
            setup_errno: Some(libc::EPERM),
            supported: None,
            ..good()
        };
        let err = judge(&off).unwrap_err();
        assert!(
            err.contains("kernel.io_uring_disabled = 2") && err.contains("seccomp"),
            "{err}"
        );
        let group = Facts {
            io_uring_disabled: Some(1),
            setup_errno: Some(libc::EPERM),
            supported: None,
            ..good()
        };
        assert!(judge(&group).unwrap_err().contains("io_uring_group"));
        let memlock = Facts {
            setup_errno: Some(libc::ENOMEM),
            supported: None,
            ..good()
        };
        assert!(judge(&memlock).unwrap_err().contains("memlock"));
        let ops = Facts {
            supported: Some(vec![0, 1, 2, 3]),
            ..good()
        };
        let err = judge(&ops).unwrap_err();
        assert!(err.contains("FALLOCATE") && err.contains("RECV"), "{err}");
        assert_eq!(parse_kernel("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(parse_kernel("5.8"), Some((5, 8)));
        assert_eq!(parse_kernel("weird"), None);
    }
}
