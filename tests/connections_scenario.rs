//! Many connections at once: two thousand idle clients handed over to both shards do not stop
//! the broker from serving a working client, and SIGTERM still drains and exits cleanly.

mod harness;

use harness::{data_dir, run, Broker, RawConnection};
use shardmq_client::Client;
use shardmq_protocol::batch::{encode_batch, Record};

const CONNECTIONS: usize = 2000;

fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

#[test]
fn two_thousand_idle_connections_do_not_block_a_working_client() {
    let limit = raise_open_file_limit();
    assert!(
        limit as usize > CONNECTIONS + 200,
        "this test needs {} open files, the hard limit is {limit}",
        CONNECTIONS + 200
    );
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let idle: Vec<RawConnection> = (0..CONNECTIONS)
        .map(|i| RawConnection::connect(&broker.addr, Some((i % 2) as u32)))
        .collect();
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "busy").await.unwrap();
        client.create_topic("many", 2).await.unwrap();
        for queue in 0..2 {
            let record = Record {
                born_timestamp_ms: 1,
                payload: b"still served".to_vec(),
                ..Record::default()
            };
            let ack = client
                .produce_batch("many", queue, &encode_batch(&[record]))
                .await
                .unwrap();
            assert_eq!(ack.base_offset, 0);
            let pulled = client.pull("many", queue, 0, 10, 1 << 20, 0).await.unwrap();
            assert_eq!(
                pulled.to_owned_records().unwrap()[0].1.payload,
                b"still served"
            );
        }
    });
    assert_eq!(
        broker.stop(),
        Some(0),
        "shutdown drains with thousands of connections open"
    );
    drop(idle);
}

/// Regression: the listener set SO_REUSEPORT, so a second broker on the same address (another
/// data dir) started too and the kernel split clients between the two. It must be refused.
#[test]
fn a_second_broker_on_a_taken_address_is_refused_at_start() {
    let first_dir = data_dir();
    let first = Broker::start(first_dir.path(), &["--shards", "1"]);
    let second_dir = data_dir();
    let err = Broker::try_start(
        second_dir.path(),
        &["--shards", "1", "--listen", &first.addr],
    )
    .err()
    .expect("the second broker must not start");
    assert!(
        err.contains("cannot listen on") && err.contains(&first.addr),
        "{err}"
    );
    assert_eq!(first.stop(), Some(0), "the first broker is unaffected");
}
