//! The environment's floor for a round trip: a bare glommio TCP ping-pong over loopback (server
//! pinned to CPU 1, client to CPU 0, TCP_NODELAY), no broker logic at all. The perf reports run
//! it beside the broker's round-trip benchmark, so the broker's own overhead is the difference.
//!
//! `cargo run --release --example glommio_pingpong -- [spin_us] [request_bytes] [round_trips]`

use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (spin, size, rounds) = (arg(1, 0), arg(2, 1100) as usize, arg(3, 50_000) as usize);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let _server = LocalExecutorBuilder::new(Placement::Fixed(1))
        .io_memory(1 << 20)
        .spin_before_park(Duration::from_micros(spin))
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let mut stream = listener.accept().await.expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            let mut request = vec![0u8; size];
            while stream.read_exact(&mut request).await.is_ok() {
                if stream.write_all(&request[..64.min(size)]).await.is_err() {
                    break;
                }
            }
        })
        .expect("server executor");
    let addr = addr_rx.recv().expect("server address");
    let samples = LocalExecutorBuilder::new(Placement::Fixed(0))
        .io_memory(1 << 20)
        .spin_before_park(Duration::from_micros(spin))
        .spawn(move || async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (request, mut reply) = (vec![0u8; size], vec![0u8; 64.min(size)]);
            let mut samples = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let start = Instant::now();
                stream.write_all(&request).await.expect("write");
                stream.read_exact(&mut reply).await.expect("read");
                samples.push(start.elapsed().as_micros() as u64);
            }
            samples
        })
        .expect("client executor")
        .join()
        .expect("client");
    let mut sorted = samples;
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    println!(
        "glommio ping-pong spin={spin}us request={size}B round trips={rounds}: p50 {} p99 {} p99.9 {} p99.99 {} max {} (µs)",
        at(0.5),
        at(0.99),
        at(0.999),
        at(0.9999),
        sorted[sorted.len() - 1]
    );
    // The server executor blocks in accept/read; leave without joining it.
    std::process::exit(0);
}
