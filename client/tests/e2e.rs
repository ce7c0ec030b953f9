//! End-to-end tests of the client against the in-memory mock broker in `support/`, over real
//! loopback sockets on a glommio executor: handshake and shard routing, admin calls, produce and
//! pull, long-poll pipelining, the producer's batching and ordering, timeouts, error mapping and
//! reconnection after the broker drops a connection.

mod support;

use std::time::{Duration, Instant};

use shardmq_client::{
    Client, ClientConfig, ClientError, Connection, Consumer, Producer, ProducerConfig,
};
use shardmq_protocol::batch::encode_batch;
use shardmq_protocol::messages::Produce;
use shardmq_protocol::routing::shard_for_queue;
use shardmq_protocol::{envelope, ErrorCode, FrameKind, Record};

fn record(i: u64) -> Record {
    Record {
        born_timestamp_ms: 1_700_000_000_000 + i,
        keys: vec![i.to_string()],
        payload: format!("message-{i}").into_bytes(),
        ..Record::default()
    }
}

#[test]
fn admin_produce_and_pull_across_shards() {
    support::run(|| async {
        let (addr, state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        assert_eq!(client.shard_count(), support::SHARDS);
        assert_eq!(client.broker_version(), "mock");

        let info = client.create_topic("orders", 4).await.unwrap();
        assert_eq!(info.queues, 4);
        let err = client.create_topic("orders", 4).await.unwrap_err();
        assert!(err.is_code(ErrorCode::TopicExists), "{err}");
        assert_eq!(client.list_topics().await.unwrap(), vec![info.clone()]);
        assert_eq!(client.topic("orders").await.unwrap(), Some(info));
        assert!(matches!(
            client.create_topic("bad name", 1).await,
            Err(ClientError::InvalidArgument(_))
        ));

        for q in 0..4u32 {
            let batch = encode_batch(&(0..5).map(record).collect::<Vec<_>>());
            let ack = client.produce_batch("orders", q, &batch).await.unwrap();
            assert_eq!((ack.base_offset, ack.count), (0, 5));
            let batch = encode_batch(&(5..8).map(record).collect::<Vec<_>>());
            let ack = client.produce_batch("orders", q, &batch).await.unwrap();
            assert_eq!((ack.base_offset, ack.count), (5, 3));
            let offsets = client.queue_offsets("orders", q).await.unwrap();
            assert_eq!((offsets.min_offset, offsets.max_offset), (0, 8));
        }
        // Both shards were needed: the bootstrap connection plus one more.
        assert_eq!(state.connections.get(), 2);
        for shard in 0..support::SHARDS {
            assert_eq!(client.connection(shard).await.unwrap().shard_id(), shard);
        }

        // A pull from the middle of the first batch returns it whole; records below are skipped.
        let pulled = client.pull("orders", 1, 3, 100, 1 << 20, 0).await.unwrap();
        assert_eq!(pulled.batch_count(), 2);
        assert_eq!((pulled.next_offset(), pulled.max_offset()), (8, 8));
        let got: Vec<(u64, Vec<u8>)> = pulled
            .records()
            .unwrap()
            .map(|r| (r.offset, r.payload().to_vec()))
            .collect();
        let want: Vec<(u64, Vec<u8>)> = (3..8).map(|i| (i, record(i).payload)).collect();
        assert_eq!(got, want);

        // Past the end is the broker's OffsetOutOfRange.
        let err = client
            .pull("orders", 1, 99, 10, 1 << 20, 0)
            .await
            .unwrap_err();
        assert!(err.is_code(ErrorCode::OffsetOutOfRange), "{err}");

        // A consumer walks the queue in pieces.
        let mut consumer = Consumer::new(&client, "orders", 2, 0);
        let first = consumer.poll(1, 0).await.unwrap();
        assert_eq!(first.record_count().unwrap(), 5);
        assert_eq!(consumer.offset(), 5);
        let second = consumer.poll(100, 0).await.unwrap();
        assert_eq!(second.to_owned_records().unwrap()[0], (5, record(5)));
        assert_eq!(consumer.offset(), 8);
        let empty = consumer.poll(100, 0).await.unwrap();
        assert!(empty.is_empty());
        assert_eq!(consumer.offset(), 8);
    });
}

#[test]
fn long_poll_does_not_block_other_requests_on_the_connection() {
    support::run(|| async {
        let (addr, _state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        client.create_topic("lp", 2).await.unwrap();
        let c2 = client.clone();
        let started = Instant::now();
        let waiter = glommio::spawn_local(async move {
            let pulled = c2.pull("lp", 0, 0, 100, 1 << 20, 5_000).await.unwrap();
            (pulled.record_count().unwrap(), started.elapsed())
        });
        // Same queue, so the same connection as the parked pull (polled: the waiter may still
        // be opening it).
        let conn = loop {
            glommio::timer::Timer::new(Duration::from_millis(10)).await;
            let conn = client.connection_for_queue("lp", 0).await.unwrap();
            if conn.in_flight() == 1 || started.elapsed() > Duration::from_secs(4) {
                break conn;
            }
        };
        assert_eq!(conn.in_flight(), 1);
        let batch = encode_batch(&[record(1), record(2)]);
        let ack = client.produce_batch("lp", 0, &batch).await.unwrap();
        assert_eq!(ack.base_offset, 0);
        let (count, waited) = waiter.await;
        assert_eq!(count, 2);
        assert!(
            waited < Duration::from_secs(4),
            "long poll was not woken: {waited:?}"
        );
    });
}

#[test]
fn producer_batches_in_order_and_reports_offsets() {
    support::run(|| async {
        let (addr, _state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        client.create_topic("p", 4).await.unwrap();
        let producer = Producer::new(
            &client,
            ProducerConfig {
                batch_max_records: 64,
                batch_max_bytes: 1 << 20,
                linger: Duration::from_millis(2),
                max_in_flight_batches: 2,
            },
        )
        .unwrap();
        let mut handles = Vec::new();
        for i in 0..1000u64 {
            let queue = (i % 4) as u32;
            handles.push((queue, producer.send("p", queue, record(i)).await.unwrap()));
        }
        producer.flush().await.unwrap();
        assert_eq!(producer.outstanding_batches(), 0);
        let mut next = [0u64; 4];
        for (queue, handle) in handles {
            assert!(handle.is_done());
            let offset = handle.await.unwrap();
            assert_eq!(offset, next[queue as usize], "queue {queue}");
            next[queue as usize] += 1;
        }
        assert_eq!(next, [250; 4]);

        // Lingering alone seals a small batch.
        let handle = producer.send("p", 0, record(5000)).await.unwrap();
        assert_eq!(handle.await.unwrap(), 250);

        // Everything reads back, in send order per queue.
        for queue in 0..4u32 {
            let mut consumer = Consumer::new(&client, "p", queue, 0);
            let mut seen = Vec::new();
            while consumer.offset() < 250 {
                let pulled = consumer.poll(100, 100).await.unwrap();
                for r in pulled.records().unwrap() {
                    seen.push(r.payload().to_vec());
                }
            }
            let want: Vec<Vec<u8>> = (0..1000u64)
                .filter(|i| i % 4 == u64::from(queue))
                .map(|i| record(i).payload)
                .collect();
            assert_eq!(seen[..250], want[..]);
        }

        let reply = producer
            .send_batch("p", 3, &[record(1), record(2), record(3)])
            .await
            .unwrap();
        assert_eq!((reply.base_offset, reply.count), (250, 3));

        // A failed batch fails every handle in it and flush reports it.
        let handle = producer.send("nosuch", 0, record(1)).await.unwrap();
        let err = producer.flush().await.unwrap_err();
        assert!(err.is_code(ErrorCode::TopicNotFound), "{err}");
        assert!(handle.await.unwrap_err().is_code(ErrorCode::TopicNotFound));
        producer.flush().await.unwrap();
    });
}

/// Regression: glommio runs a spawned task at once, so a zero linger sealed the batch from
/// inside `send` while it still held the open-batch map ("RefCell already borrowed").
#[test]
fn zero_linger_sends_each_record_at_once() {
    support::run(|| async {
        let (addr, _state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        client.create_topic("z", 2).await.unwrap();
        let producer = Producer::new(
            &client,
            ProducerConfig {
                linger: Duration::ZERO,
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        let mut handles = Vec::new();
        for i in 0..100u64 {
            handles.push(producer.send("z", (i % 2) as u32, record(i)).await.unwrap());
        }
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), i as u64 / 2);
        }
    });
}

#[test]
fn dropped_producer_still_sends_what_it_held() {
    support::run(|| async {
        let (addr, _state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        client.create_topic("d", 1).await.unwrap();
        let producer = Producer::new(
            &client,
            ProducerConfig {
                linger: Duration::from_secs(60),
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        let handle = producer.send("d", 0, record(7)).await.unwrap();
        drop(producer);
        assert_eq!(handle.await.unwrap(), 0);
    });
}

#[test]
fn timeout_then_connection_still_usable() {
    support::run(|| async {
        let (addr, _state) = support::start();
        let config = ClientConfig {
            // Long enough for the handshake and set-up on a loaded machine; short beside the
            // 5 s bound below.
            request_timeout: Duration::from_secs(1),
            ..ClientConfig::default()
        };
        let client = Client::connect_with(&addr, "t", config).await.unwrap();
        client.create_topic("blackhole", 1).await.unwrap();
        let batch = encode_batch(&[record(1)]);
        let started = Instant::now();
        let err = client
            .produce_batch("blackhole", 0, &batch)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let conn = client.connection_for_queue("blackhole", 0).await.unwrap();
        assert_eq!(
            conn.in_flight(),
            0,
            "timed-out request left in the pending table"
        );
        assert!(!conn.is_closed());
        assert_eq!(client.list_topics().await.unwrap().len(), 1);
    });
}

#[test]
fn wrong_shard_is_a_typed_error() {
    support::run(|| async {
        let (addr, _state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        client.create_topic("ws", 2).await.unwrap();
        let owner = shard_for_queue("ws", 0, support::SHARDS);
        let other = (owner + 1) % support::SHARDS;
        let conn = Connection::connect(&addr, "raw", Some(other), client.config())
            .await
            .unwrap();
        assert_eq!(conn.shard_id(), other);
        let batch = encode_batch(&[record(1)]);
        let meta = Produce {
            topic: "ws".into(),
            queue_id: 0,
        };
        let err = conn
            .request(FrameKind::Produce, &meta, &batch)
            .await
            .unwrap_err();
        match err {
            ClientError::Broker {
                code: Some(ErrorCode::WrongShard),
                owner_shard,
                ..
            } => assert_eq!(owner_shard, Some(owner)),
            other => panic!("{other:?}"),
        }
        // The raw reply API hands back the aligned payload of a success.
        let reply = conn
            .request(
                FrameKind::ListTopics,
                &shardmq_protocol::messages::ListTopics {},
                &[],
            )
            .await
            .unwrap();
        assert_eq!(reply.kind, FrameKind::ListTopicsReply);
        assert_eq!(reply.payload().as_ptr() as usize % 16, 0);
        let list: shardmq_protocol::messages::TopicList =
            envelope::decode(reply.payload()).unwrap();
        assert_eq!(list.topics.len(), 1);
    });
}

#[test]
fn dropped_connection_fails_pending_and_reconnects() {
    support::run(|| async {
        let (addr, state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        client.create_topic("crash", 1).await.unwrap();
        let batch = encode_batch(&[record(1)]);
        let err = client.produce_batch("crash", 0, &batch).await.unwrap_err();
        assert!(matches!(err, ClientError::Closed), "{err}");
        let before = state.connections.get();
        // The next request on that shard opens a new connection.
        let offsets = client.queue_offsets("crash", 0).await.unwrap();
        assert_eq!(offsets.max_offset, 0);
        assert_eq!(state.connections.get(), before + 1);
    });
}

#[test]
fn connect_to_nothing_fails_fast() {
    support::run(|| async {
        // Port 1 (tcpmux) is privileged and unused here: a freed ephemeral port could be taken by
        // a test running beside this one.
        let addr = "127.0.0.1:1".to_string();
        let err = Client::connect(&addr, "t").await.err().unwrap();
        assert!(matches!(err, ClientError::Io(_)), "{err}");
    });
}

#[test]
fn large_batches_and_many_concurrent_requests() {
    support::run(|| async {
        let (addr, _state) = support::start();
        let client = Client::connect(&addr, "t").await.unwrap();
        client.create_topic("big", 2).await.unwrap();
        // 4 records of 300 KiB: the data part goes out as its own write; the pull reply is far
        // larger than the receive buffer.
        let big: Vec<Record> = (0..4u64)
            .map(|i| Record {
                payload: vec![i as u8; 300 << 10],
                ..record(i)
            })
            .collect();
        let batch = encode_batch(&big);
        client.produce_batch("big", 1, &batch).await.unwrap();
        let pulled = client.pull("big", 1, 0, 100, 8 << 20, 0).await.unwrap();
        let got: Vec<Vec<u8>> = pulled
            .records()
            .unwrap()
            .map(|r| r.payload().to_vec())
            .collect();
        assert_eq!(
            got,
            big.iter().map(|r| r.payload.clone()).collect::<Vec<_>>()
        );

        // 200 requests in flight at once on the same connection.
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let client = client.clone();
                glommio::spawn_local(async move {
                    let batch = encode_batch(&[record(i)]);
                    client
                        .produce_batch("big", 0, &batch)
                        .await
                        .unwrap()
                        .base_offset
                })
            })
            .collect();
        let mut offsets = Vec::new();
        for t in tasks {
            offsets.push(t.await);
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..200).collect::<Vec<u64>>());
    });
}
