//! Long-polling consumers and the batching producer against a real broker.

mod harness;

use std::rc::Rc;
use std::time::Duration;

use harness::{data_dir, record, run, Broker};
use shardmq_client::{Client, Consumer, Filter, Producer, ProducerConfig};

#[test]
fn a_parked_pull_returns_the_record_that_arrives_while_it_waits() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Rc::new(Client::connect(&addr, "long-poll").await.unwrap());
        client.create_topic("lp", 2).await.unwrap();
        // Nothing there and a short wait: an empty reply, not an error.
        let empty = client.pull("lp", 1, 0, 10, 1 << 20, 100).await.unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.next_offset(), 0);
        // A producer on its own connection writes while the pull is parked (wait 20 s: if the
        // broker did not wake the pull, the reply would come back empty).
        let producer_client = Client::connect(&addr, "producer").await.unwrap();
        let writer = glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(200)).await;
            producer_client
                .produce_batch(
                    "lp",
                    1,
                    &shardmq_protocol::batch::encode_batch(&[record(7)]),
                )
                .await
                .unwrap();
        });
        let mut consumer = Consumer::new(&client, "lp", 1, 0);
        let pulled = consumer.poll(10, 20_000).await.unwrap();
        let records = pulled.to_owned_records().unwrap();
        assert_eq!(records.len(), 1, "the parked pull returned the record");
        assert_eq!(records[0].1.payload, b"record 7");
        assert_eq!(consumer.offset(), 1);
        writer.await;
    });
    assert_eq!(broker.stop(), Some(0));
}

/// A filtered long poll woken by a record its filter drops goes back to waiting: the reply is
/// the matching record that came later, not an early empty answer.
#[test]
fn a_filtered_parked_pull_waits_past_records_it_does_not_want() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "filtered-poll").await.unwrap();
        client.create_topic("flp", 2).await.unwrap();
        let tagged = |tag: &str, payload: &str| shardmq_protocol::Record {
            tags: tag.into(),
            payload: payload.as_bytes().to_vec(),
            ..shardmq_protocol::Record::default()
        };
        let producer_client = Client::connect(&addr, "producer").await.unwrap();
        let (other, wanted) = (tagged("b", "unwanted"), tagged("a", "wanted"));
        let writer = glommio::spawn_local(async move {
            for record in [other, wanted] {
                glommio::timer::sleep(Duration::from_millis(300)).await;
                producer_client
                    .produce_batch("flp", 0, &shardmq_protocol::batch::encode_batch(&[record]))
                    .await
                    .unwrap();
            }
        });
        let mut consumer =
            Consumer::new(&client, "flp", 0, 0).with_filter(Filter::Tags("a".into()));
        let pulled = consumer.poll(10, 20_000).await.unwrap();
        let records = pulled.to_owned_records().unwrap();
        assert_eq!(records.len(), 1, "the poll waited for the matching record");
        assert_eq!(
            records[0].0, 1,
            "the matching record is the second one stored"
        );
        assert_eq!(records[0].1.payload, b"wanted");
        assert_eq!(consumer.offset(), 2);
        writer.await;
    });
    assert_eq!(broker.stop(), Some(0));
}

#[test]
fn producer_batches_with_linger_and_consumers_read_everything_back() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "producer").await.unwrap();
        client.create_topic("p", 4).await.unwrap();
        let config = ProducerConfig {
            batch_max_records: 64,
            linger: Duration::from_millis(2),
            ..ProducerConfig::default()
        };
        let producer = Producer::new(&client, config).unwrap();
        let mut handles = Vec::new();
        for i in 0..2000u64 {
            handles.push(producer.send("p", (i % 4) as u32, record(i)).await.unwrap());
        }
        producer.flush().await.unwrap();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(
                handle.await.unwrap(),
                i as u64 / 4,
                "record {i} got its queue offset"
            );
        }
        for queue in 0..4u32 {
            let mut consumer = Consumer::new(&client, "p", queue, 0);
            let mut seen = Vec::new();
            while seen.len() < 500 {
                let pulled = consumer.poll(100, 1000).await.unwrap();
                assert!(
                    !pulled.is_empty(),
                    "queue {queue} stalled at {}",
                    seen.len()
                );
                for r in pulled.records().unwrap() {
                    let key = r.keys().next().unwrap();
                    seen.push(key.strip_prefix('k').unwrap().parse::<u64>().unwrap());
                }
            }
            let expected: Vec<u64> = (0..500).map(|k| k * 4 + u64::from(queue)).collect();
            assert_eq!(
                seen, expected,
                "queue {queue} holds its records in send order"
            );
        }
    });
    assert_eq!(broker.stop(), Some(0));
}
