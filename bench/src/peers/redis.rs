//! The Redis Streams driver: starts `redis-server` on loopback (AOF on, `appendfsync everysec`
//! or `always`, a fresh directory), then produces `--messages` entries with `XADD` in pipelined
//! groups of `--batch`, one group in flight, measuring each group from its first byte written to
//! its last reply read — the same unit as a shardmq batch. Blocking I/O on one pinned thread
//! (`redis-benchmark`'s model); the server is stopped at the end, also on error.
//!
//! Wire: RESP. `XADD <topic> * f <payload>` per entry; a reply is a bulk string (the entry id)
//! or an error line.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::args::ProduceArgs;
use crate::error::BenchError;
use crate::produce::payload_bytes;
use crate::report::{new_histogram, record_latency, RateSeries, Report};

use super::{produce_report, Peer, PeerServer};

fn start_server(fsync: &str, cpu: Option<usize>) -> Result<PeerServer, BenchError> {
    PeerServer::start("redis-server", cpu, &[], |port, dir| {
        let mut args: Vec<OsString> = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
            "--save",
            "",
            "--dir",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.push(dir.as_os_str().to_owned());
        args
    })
}

/// Appends one RESP array command.
fn command(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply; `Err` carries an error reply's text.
fn read_reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<Result<(), String>> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    match line.as_bytes().first() {
        Some(b'$') => {
            let len: i64 = line[1..]
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other(format!("bad bulk length {line:?}")))?;
            if len >= 0 {
                let mut body = vec![0u8; len as usize + 2];
                reader.read_exact(&mut body)?;
            }
            Ok(Ok(()))
        }
        Some(b'+') | Some(b':') => Ok(Ok(())),
        Some(b'-') => Ok(Err(line.trim().to_string())),
        _ => Err(std::io::Error::other(format!("unexpected reply {line:?}"))),
    }
}

/// Runs the produce workload against a Redis it starts and stops itself.
pub fn run_produce(args: &ProduceArgs, peer: Peer) -> Result<Report, BenchError> {
    args.validate()?;
    let fsync = if peer == Peer::RedisAlways {
        "always"
    } else {
        "everysec"
    };
    let server = start_server(fsync, args.peer_cpu)?;
    if let Some(cpu) = args.cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let io = |e: std::io::Error| BenchError::InvalidArgs(format!("redis connection: {e}"));
    let stream = TcpStream::connect(("127.0.0.1", server.port)).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let mut writer = stream.try_clone().map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let payload = payload_bytes(args.size, 0x5eed);
    let mut histogram = new_histogram();
    let series = RateSeries::default();
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut group = Vec::new();
    let start = Instant::now();
    while sent < args.messages {
        let count = u64::from(args.batch).min(args.messages - sent);
        group.clear();
        for _ in 0..count {
            command(
                &mut group,
                &[b"XADD", args.topic.as_bytes(), b"*", b"f", &payload],
            );
        }
        let began = Instant::now();
        writer.write_all(&group).map_err(io)?;
        for _ in 0..count {
            if let Err(reason) = read_reply(&mut reader).map_err(io)? {
                errors += 1;
                if errors <= 5 {
                    tracing::warn!("redis XADD failed: {reason}");
                }
            }
        }
        let now = Instant::now();
        record_latency(&mut histogram, now - began);
        series.add(now - start, count);
        sent += count;
    }
    let elapsed = start.elapsed();
    drop(server);
    let system = if peer == Peer::RedisAlways {
        "redis-streams-always"
    } else {
        "redis-streams"
    };
    Ok(produce_report(
        system, args, sent, errors, elapsed, &histogram, &series,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_commands_are_framed() {
        let mut out = Vec::new();
        command(&mut out, &[b"XADD", b"t", b"*", b"f", b"xy"]);
        assert_eq!(
            out,
            b"*5\r\n$4\r\nXADD\r\n$1\r\nt\r\n$1\r\n*\r\n$1\r\nf\r\n$2\r\nxy\r\n"
        );
    }
}
