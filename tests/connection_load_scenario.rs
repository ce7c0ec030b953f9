//! Connection load as clumsy and hostile clients make it: ten thousand idle connections,
//! connect/disconnect churn (with and without a handshake), and connections that never send
//! their Hello. The broker's memory stays within a stated bound per connection (peak measured
//! from `/proc/<pid>/status`), everything is released when connections end, and a well-behaved
//! client is served throughout.

mod harness;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::{data_dir, run, Broker, RawConnection};
use shardmq_client::Client;
use shardmq_protocol::batch::{encode_batch, Record};

const IDLE: usize = 10_000;
/// What one idle, handshaken connection may cost the broker in resident memory. Measured on
/// the debug build, 2026-12-02: 24 KiB (10,000 connections: RSS 26 MiB -> 257 MiB). Each
/// connection's 64 KiB read and write buffers are reserved at once but touched only as far as
/// bytes pass through them, so its address space is larger (~150 KiB).
const BYTES_PER_IDLE_CONNECTION_MAX: u64 = 32 << 10;

/// Raises this process's open-file limit to what the test needs (root may raise the hard
/// limit too); the limit now in force.
fn raise_open_file_limit(wanted: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        let raised = libc::rlimit {
            rlim_cur: wanted.max(limit.rlim_cur),
            rlim_max: wanted.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

fn served(addr: &str, topic: &'static str) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "well-behaved").await.unwrap();
        if client.topic(topic).await.unwrap().is_none() {
            client.create_topic(topic, 2).await.unwrap();
        }
        for queue in 0..2 {
            let record = Record {
                payload: b"still served".to_vec(),
                ..Record::default()
            };
            let ack = client
                .produce_batch(topic, queue, &encode_batch(&[record]))
                .await
                .unwrap();
            let pulled = client
                .pull(topic, queue, ack.base_offset, 1, 1 << 20, 0)
                .await
                .unwrap();
            assert_eq!(
                pulled.to_owned_records().unwrap()[0].1.payload,
                b"still served"
            );
        }
    });
}

/// Waits until the broker holds at most `max` sockets; the count it settled at.
fn sockets_settle(broker: &Broker, max: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = broker.open_sockets();
        if open <= max || Instant::now() > deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ten_thousand_idle_connections_cost_bounded_memory_and_are_released() {
    let limit = raise_open_file_limit(IDLE as u64 + 1000);
    assert!(
        limit as usize > IDLE + 200,
        "this test needs {} open files, the limit is {limit}",
        IDLE + 200
    );
    let dir = data_dir();
    // The broker inherits the raised limit (it also raises its own soft limit to the hard one).
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    served(&broker.addr, "warm");
    let sockets_before = broker.open_sockets();
    let rss_before = broker.status_kib("VmRSS");
    let idle: Vec<RawConnection> = (0..IDLE)
        .map(|i| RawConnection::connect(&broker.addr, Some((i % 2) as u32)))
        .collect();
    served(&broker.addr, "busy");
    let rss_with = broker.status_kib("VmRSS");
    let per_connection = (rss_with.saturating_sub(rss_before) << 10) / IDLE as u64;
    eprintln!(
        "{IDLE} idle connections: broker RSS {rss_before} KiB -> {rss_with} KiB, {per_connection} bytes each, peak {} KiB",
        broker.status_kib("VmHWM")
    );
    assert!(
        per_connection <= BYTES_PER_IDLE_CONNECTION_MAX,
        "{per_connection} bytes per idle connection"
    );
    // (Not `sockets_before + IDLE`: the baseline may still count the warm-up client's socket,
    // which the broker closes a moment after that client leaves.)
    let open = broker.open_sockets();
    assert!(open >= IDLE, "each connection is held open: {open} sockets");
    drop(idle);
    let settled = sockets_settle(&broker, sockets_before);
    assert!(
        settled <= sockets_before,
        "{settled} sockets after the clients left, {sockets_before} before"
    );
    served(&broker.addr, "after");
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn connect_disconnect_churn_leaks_nothing() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    served(&broker.addr, "warm");
    let sockets_before = broker.open_sockets();
    let rss_before = broker.status_kib("VmRSS");
    for round in 0..3_000u32 {
        if round % 3 == 0 {
            // Connect and leave before the Hello.
            drop(TcpStream::connect(&broker.addr).unwrap());
        } else {
            drop(RawConnection::connect(&broker.addr, Some(round % 2)));
        }
    }
    served(&broker.addr, "during");
    let settled = sockets_settle(&broker, sockets_before);
    assert!(
        settled <= sockets_before,
        "{settled} sockets after the churn, {sockets_before} before"
    );
    let rss_after = broker.status_kib("VmRSS");
    eprintln!("3000 connections churned: broker RSS {rss_before} KiB -> {rss_after} KiB");
    assert!(
        rss_after <= rss_before + (16 << 10),
        "resident memory grew from {rss_before} KiB to {rss_after} KiB over the churn"
    );
    assert_eq!(broker.stop(), Some(0));
}

/// A connection that never sends its Hello is closed after the handshake timeout (10 s),
/// while others are served.
#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_handshake_timeout() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&broker.addr).unwrap())
        .collect();
    served(&broker.addr, "meanwhile");
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut byte = [0u8; 1];
        // EOF (0) or a reset: closed by the broker, not by our read timeout.
        match stream.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent connection was not closed: {other:?}"),
        }
    }
    assert!(
        broker
            .stderr()
            .contains("no Hello within the handshake timeout"),
        "the broker says why it closed them"
    );
    assert_eq!(broker.stop(), Some(0));
}
