//! Clients that try to make the broker hold memory or connections for nothing: frame headers
//! that announce large bodies and send none, and clients that pipeline pulls without reading
//! the replies. Each must cost the broker only what it actually received or queued, within the
//! shard's budgets, and everything must be released once the connection ends; a well-behaved
//! client is served throughout.

mod harness;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use harness::{create_topic, data_dir, run, Broker, RawConnection};
use shardmq::limits::REPLY_BYTES_QUEUED_PER_CONNECTION_MAX;
use shardmq_client::Client;
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::envelope;
use shardmq_protocol::frame::FRAME_HEADER_BYTES;
use shardmq_protocol::messages::{Pull, ShardStats};
use shardmq_protocol::{FrameHeader, FrameKind};

/// Bytes the stats request itself holds while it is answered.
const STATS_REQUEST_BYTES: u64 = 1024;

fn stats(addr: &str) -> ShardStats {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "stats").await.unwrap();
        client.shard_stats(0).await.unwrap()
    })
}

/// Polls the shard's stats until `done` holds, or fails after `within`.
fn wait_for_stats(addr: &str, within: Duration, done: impl Fn(&ShardStats) -> bool) -> ShardStats {
    let deadline = Instant::now() + within;
    loop {
        let now = stats(addr);
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "stats never settled: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn produce_and_read_back(addr: &str, topic: &'static str, payload: &'static [u8]) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "healthy").await.unwrap();
        let record = shardmq_protocol::batch::Record {
            payload: payload.to_vec(),
            ..Default::default()
        };
        let ack = client
            .produce_batch(topic, 0, &encode_batch(&[record]))
            .await
            .unwrap();
        let pulled = client
            .pull(topic, 0, ack.base_offset, 1, 1 << 20, 0)
            .await
            .unwrap();
        assert_eq!(pulled.to_owned_records().unwrap()[0].1.payload, payload);
    });
}

/// Regression: a 16-byte header announcing a large payload made the broker allocate (and zero)
/// all of it at once; a few dozen idle connections pinned gigabytes, and under an address-space
/// limit the process aborted. Now memory follows the bytes received, and the watchdog closes
/// the connections once their bodies are overdue.
#[test]
fn announced_bodies_claim_no_memory_and_are_closed_when_overdue() {
    const CONNECTIONS: usize = 40;
    const ANNOUNCED: usize = 60 << 20;
    let dir = data_dir();
    // 40 x 60 MiB = 2.4 GB of promises against a 1 GiB address space (the idle broker maps
    // ~250 MB).
    let broker = Broker::try_start_with(
        dir.path(),
        &["--shards", "1", "--stall-timeout-ms", "1500"],
        |command| {
            // SAFETY: setrlimit in the child between fork and exec; no allocation, no locks.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 1 << 30,
                        rlim_max: 1 << 30,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    )
    .unwrap();
    create_topic(&broker.addr, "t", 1);
    let rss_before = broker.status_kib("VmRSS");
    let mut promises: Vec<RawConnection> = (0..CONNECTIONS)
        .map(|_| {
            let mut raw = RawConnection::connect(&broker.addr, None);
            let header = FrameHeader::new(FrameKind::Produce, 1, ANNOUNCED).unwrap();
            raw.stream.write_all(&header.encode()).unwrap();
            raw.stream.write_all(&[0u8; 100]).unwrap();
            raw
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let held = stats(&broker.addr);
    assert!(
        held.request_bytes_buffered <= (CONNECTIONS as u64) * (64 << 10) + STATS_REQUEST_BYTES,
        "announced but unsent bytes are buffered: {held:?}"
    );
    produce_and_read_back(&broker.addr, "t", b"served beside the promises");
    let rss_growth_kib = broker.status_kib("VmRSS").saturating_sub(rss_before);
    assert!(
        rss_growth_kib < 200 << 10,
        "RSS grew by {rss_growth_kib} KiB for {CONNECTIONS} empty promises"
    );
    // The watchdog closes every overdue connection: each reads end of stream.
    for raw in &mut promises {
        raw.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert!(
            raw.is_closed_by_broker(),
            "an overdue body kept its connection"
        );
    }
    let settled = wait_for_stats(&broker.addr, Duration::from_secs(10), |s| {
        s.connections == 1 && s.request_bytes_buffered <= STATS_REQUEST_BYTES
    });
    assert_eq!(settled.reply_bytes_queued, 0);
    assert!(
        broker.stderr().contains("did not arrive"),
        "the reason is logged"
    );
    assert_eq!(broker.stop(), Some(0));
}

/// A pull for `offset` of queue 0 of topic "big", up to 1 MiB.
fn pull_frame(offset: u64) -> Vec<u8> {
    envelope::encode(&Pull {
        topic: "big".into(),
        queue_id: 0,
        offset,
        max_messages: 1000,
        max_bytes: 1 << 20,
        wait_ms: 0,
        filter: None,
        commit: None,
    })
    .unwrap()
}

/// Fills topic "big" with 16 MB in batches of 64 KB.
fn fill_big(addr: &str) {
    fill_big_mb(addr, 16);
}

/// Fills topic "big" with `mb` MB in batches of 64 KB.
fn fill_big_mb(addr: &str, mb: u64) {
    let addr = addr.to_string();
    run(move || async move {
        let client = Client::connect(&addr, "filler").await.unwrap();
        for b in 0..16 * mb {
            let batch = harness::batch_of(b * 64..(b + 1) * 64, |i| vec![i as u8; 1000]);
            client.produce_batch("big", 0, &batch).await.unwrap();
        }
    });
}

/// Pipelines copies of one request without reading a byte of the replies, until the broker has
/// stopped reading for a second or closed the connection.
fn flood(addr: &str, kind: FrameKind, payload: &[u8]) -> RawConnection {
    let mut raw = RawConnection::connect(addr, None);
    raw.stream.set_nonblocking(true).unwrap();
    let header = FrameHeader::new(kind, 5, payload.len()).unwrap();
    let mut one = header.encode().to_vec();
    one.extend_from_slice(payload);
    let burst: Vec<u8> = one.repeat((256 << 10) / one.len() + 1);
    let (mut offset, mut stalls) = (0usize, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stalls < 50 && Instant::now() < deadline {
        // Keep frames whole across partial writes: continue from where the last write stopped.
        match raw.stream.write(&burst[offset..]) {
            Ok(n) => {
                offset = (offset + n) % one.len();
                stalls = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stalls += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            // The broker closed the connection (a stall timeout shorter than the flood).
            Err(_) => break,
        }
    }
    raw
}

/// Regression: a client that pipelines small requests without reading until the broker stops
/// reading it, and then closes, left its socket, tasks, queued replies and connection slot held
/// for good (the reader waited forever on the reply queue of a writer that had failed).
#[test]
fn a_client_that_floods_without_reading_and_leaves_is_freed() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    create_topic(&broker.addr, "t", 1);
    let idle_sockets = broker.open_sockets();
    let list = envelope::encode(&shardmq_protocol::messages::ListTopics {}).unwrap();
    let flooded = flood(&broker.addr, FrameKind::ListTopics, &list);
    produce_and_read_back(&broker.addr, "t", b"served beside the flood");
    drop(flooded);
    let settled = wait_for_stats(&broker.addr, Duration::from_secs(10), |s| {
        s.connections == 1 && s.reply_bytes_queued == 0
    });
    assert!(settled.request_bytes_buffered <= STATS_REQUEST_BYTES);
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.open_sockets() > idle_sockets && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        broker.open_sockets() <= idle_sockets,
        "the broker still holds {} sockets, {idle_sockets} before the flood",
        broker.open_sockets()
    );
    assert_eq!(broker.stop(), Some(0));
}

/// Regression: large pulls pinned memory after the client had gone (about 80 MB per
/// never-reading connection, kept after close). Now the queued bytes are bounded per connection
/// (and per shard), and released when the client goes.
#[test]
fn large_pulls_of_a_client_that_never_reads_are_bounded_and_released() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1"]);
    create_topic(&broker.addr, "big", 1);
    fill_big(&broker.addr);
    let flood = flood(&broker.addr, FrameKind::Pull, &pull_frame(0));
    let loaded = wait_for_stats(&broker.addr, Duration::from_secs(10), |s| {
        s.reply_bytes_queued > 8 << 20
    });
    assert!(
        loaded.reply_bytes_queued <= 2 * (16 << 20) + (1 << 20),
        "one connection queued more than its bound: {loaded:?}"
    );
    produce_and_read_back(&broker.addr, "big", b"still served");
    // Closing with unread data resets the connection.
    drop(flood);
    wait_for_stats(&broker.addr, Duration::from_secs(10), |s| {
        s.connections == 1
            && s.reply_bytes_queued == 0
            && s.request_bytes_buffered <= STATS_REQUEST_BYTES
    });
    assert_eq!(broker.stop(), Some(0));
}

/// A client that pipelines pulls and then never reads, but stays connected, is closed once its
/// replies have waited for the stall timeout; its budget comes back.
#[test]
fn a_client_that_stops_reading_is_closed_after_the_stall_timeout() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "1", "--stall-timeout-ms", "1000"]);
    create_topic(&broker.addr, "big", 1);
    fill_big(&broker.addr);
    let _flood = flood(&broker.addr, FrameKind::Pull, &pull_frame(0));
    let settled = wait_for_stats(&broker.addr, Duration::from_secs(15), |s| {
        s.connections == 1 && s.reply_bytes_queued == 0
    });
    assert!(settled.request_bytes_buffered <= STATS_REQUEST_BYTES);
    assert!(
        broker.stderr().contains("did not read its replies"),
        "the reason is logged"
    );
    assert_eq!(broker.stop(), Some(0));
}

/// The broker's `/metrics` text.
fn metrics_text(http: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// A saturated shard answers a produce that waited `--busy-after-ms` for room with `Busy`
/// (SYSTEM_BUSY over remoting), early rather than at the client's timeout, and stores nothing
/// of it; every acknowledged batch is stored exactly once; the metric counts the refusals.
#[test]
fn a_saturated_shard_answers_busy_and_stores_nothing_of_what_it_refused() {
    const TASKS: u32 = 16;
    const BATCHES: u32 = 8;
    const RECORDS: usize = 16;
    let dir = data_dir();
    let flags = [
        "--shards",
        "1",
        "--busy-after-ms",
        "0",
        "--hot-tail",
        "8MiB",
    ];
    let broker = Broker::start(dir.path(), &flags);
    create_topic(&broker.addr, "t", 1);
    let addr = broker.addr.clone();
    // 16 producers at once, 1 MiB batches: far more than the 4 MiB the shard lets be unwritten.
    let (acked, busy) = run(move || async move {
        let client = Client::connect(&addr, "flood").await.unwrap();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let client = client.clone();
                glommio::spawn_local(async move {
                    let (mut acked, mut busy) = (Vec::new(), 0u32);
                    for n in 0..BATCHES {
                        let id = task * BATCHES + n;
                        let record = shardmq_protocol::batch::Record {
                            payload: [&id.to_le_bytes()[..], &[7u8; 65_532]].concat(),
                            ..Default::default()
                        };
                        let batch = encode_batch(&vec![record; RECORDS]);
                        match client.produce_batch("t", 0, &batch).await {
                            Ok(_) => acked.push(id),
                            Err(e) if e.is_code(shardmq_protocol::ErrorCode::Busy) => busy += 1,
                            Err(e) => panic!("a produce failed other than busy: {e}"),
                        }
                    }
                    (acked, busy)
                })
            })
            .collect();
        let (mut acked, mut busy) = (Vec::new(), 0);
        for task in tasks {
            let (a, b) = task.await;
            acked.extend(a);
            busy += b;
        }
        (acked, busy)
    });
    assert!(busy > 0, "no produce was answered busy");
    assert!(!acked.is_empty(), "every produce was answered busy");
    let metrics = metrics_text(&broker.http);
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("shardmq_appends_busy_total"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(
        counted,
        f64::from(busy),
        "the metric counts each busy answer"
    );

    let addr = broker.addr.clone();
    let stored: Vec<u32> = run(move || async move {
        let client = Client::connect(&addr, "reader").await.unwrap();
        let mut ids = Vec::new();
        loop {
            let pulled = client
                .pull("t", 0, ids.len() as u64, 1000, 8 << 20, 0)
                .await
                .unwrap();
            if pulled.is_empty() {
                return ids;
            }
            for record in pulled.records().unwrap() {
                ids.push(u32::from_le_bytes(
                    record.payload()[..4].try_into().unwrap(),
                ));
            }
        }
    });
    let mut expected: Vec<u32> = acked.iter().flat_map(|&id| [id; RECORDS]).collect();
    let mut stored_sorted = stored.clone();
    expected.sort_unstable();
    stored_sorted.sort_unstable();
    assert_eq!(
        stored_sorted, expected,
        "exactly the acknowledged batches are stored"
    );
    produce_and_read_back(&broker.addr, "t", b"served after the flood");
    assert_eq!(broker.stop(), Some(0));
}

/// Pull replies of 16 MiB each (the largest a pull may ask for), for a slow reader.
fn large_pull_frame() -> Vec<u8> {
    envelope::encode(&Pull {
        topic: "big".into(),
        queue_id: 0,
        offset: 0,
        max_messages: 100_000,
        max_bytes: 16 << 20,
        wait_ms: 0,
        filter: None,
        commit: None,
    })
    .unwrap()
}

/// Slow readers of large pulls: each of `SLOW_READERS` connections pipelines `PULLS_ASKED` pulls
/// of 16 MiB from offset 0 of a 64 MB topic (so the replies come from disk, past the 16 MiB hot
/// tail, each into memory of its own) and reads them at ~13 MB/s (loopback does GB/s). The
/// broker's memory must stay within what its budgets allow (each connection's reply bound, not
/// the 128 MiB each asked for), every slow reader must get whole, well-formed replies, and a
/// well-behaved client must be served beside them. The peak resident memory (VmHWM) is measured
/// and printed.
#[test]
fn slow_readers_of_large_pulls_cost_only_their_reply_bounds() {
    const SLOW_READERS: usize = 6;
    const PULLS_ASKED: usize = 8;
    let dir = data_dir();
    let broker = Broker::start(
        dir.path(),
        &["--shards", "1", "--stall-timeout-ms", "30000"],
    );
    create_topic(&broker.addr, "big", 1);
    fill_big_mb(&broker.addr, 64);
    let peak_before_kib = broker.status_kib("VmHWM");
    let frame = large_pull_frame();
    let readers: Vec<_> = (0..SLOW_READERS)
        .map(|_| {
            let mut raw = RawConnection::connect(&broker.addr, None);
            for id in 0..PULLS_ASKED as u64 {
                raw.send_frame(FrameKind::Pull, 100 + id, &frame);
            }
            std::thread::spawn(move || slow_read(raw, PULLS_ASKED))
        })
        .collect();
    // Served beside them, several times while they read.
    for _ in 0..5 {
        produce_and_read_back(&broker.addr, "big", b"served beside slow readers");
        std::thread::sleep(Duration::from_millis(300));
    }
    let queued_peak = stats(&broker.addr).reply_bytes_queued;
    for reader in readers {
        let replies = reader.join().unwrap();
        assert!(replies >= 2, "a slow reader got only {replies} replies");
    }
    let growth_mib = broker.status_kib("VmHWM").saturating_sub(peak_before_kib) / 1024;
    // Each connection's replies, whether queued or being read, stay within its reply budget;
    // 64 MiB for the allocator and the reads' transient buffers. Before replies reserved their
    // budget ahead of the read, 6 readers grew the peak by 308 MiB (one unbudgeted 16 MiB read
    // in every reader's hands on top of its queue); with it, 123 MiB.
    let per_connection_mib = REPLY_BYTES_QUEUED_PER_CONNECTION_MAX >> 20;
    let bound_mib = SLOW_READERS as u64 * per_connection_mib + 64;
    println!(
        "slow readers: {SLOW_READERS} × {PULLS_ASKED} pulls of 16 MiB asked; peak RSS grew \
         {growth_mib} MiB (bound {bound_mib} MiB); reply bytes queued at one look {queued_peak}"
    );
    assert!(
        growth_mib <= bound_mib,
        "peak RSS grew {growth_mib} MiB, above {bound_mib} MiB"
    );
    wait_for_stats(&broker.addr, Duration::from_secs(10), |s| {
        s.connections == 1 && s.reply_bytes_queued == 0
    });
    assert_eq!(broker.stop(), Some(0));
}

/// Reads up to `asked` replies at ≤ ~13 MB/s (128 KiB every 10 ms) for 8 s, or until 2 whole
/// replies have come if that takes longer (up to 120 s: a loaded machine stretches the sleeps),
/// checking each frame header; the number of whole pull replies read.
fn slow_read(mut raw: RawConnection, asked: usize) -> usize {
    use std::io::Read;
    let start = Instant::now();
    let reading = |replies: usize| {
        let elapsed = start.elapsed();
        elapsed < Duration::from_secs(8) || (replies < 2 && elapsed < Duration::from_secs(120))
    };
    let (mut replies, mut pending) = (0usize, Vec::new());
    let mut chunk = vec![0u8; 128 << 10];
    while replies < asked && reading(replies) {
        let n = raw.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the broker closed a slow reader");
        pending.extend_from_slice(&chunk[..n]);
        while pending.len() >= FRAME_HEADER_BYTES {
            let head: [u8; FRAME_HEADER_BYTES] = pending[..FRAME_HEADER_BYTES].try_into().unwrap();
            let header = FrameHeader::decode(&head).unwrap();
            assert_eq!(header.kind, FrameKind::PullReply, "{header:?}");
            let whole = FRAME_HEADER_BYTES + header.payload_len as usize;
            if pending.len() < whole {
                break;
            }
            pending.drain(..whole);
            replies += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    replies
}
