//! 100,000 messages over 8 queues and 2 shards, produced and consumed back: byte-exact, in order
//! per queue, through the shard-aware client (each queue's traffic on its owning shard).

mod harness;

use harness::{batch_of, data_dir, run, Broker};
use shardmq_client::Client;
use shardmq_protocol::routing::shard_for_queue;

const QUEUES: u32 = 8;
const MESSAGES: u64 = 100_000;
const BATCH: u64 = 250;

/// The payload of message `seq` of queue `queue`: distinct, of varying length.
pub fn payload(queue: u32, seq: u64) -> Vec<u8> {
    let mut bytes = format!("q{queue}-m{seq}-").into_bytes();
    let len = 40 + (seq as usize * 7 + queue as usize * 13) % 300;
    bytes.extend((0..len).map(|i| (i as u64 + seq + u64::from(queue)) as u8));
    bytes
}

#[test]
fn hundred_thousand_messages_over_eight_queues_and_two_shards() {
    let dir = data_dir();
    let broker = Broker::start(dir.path(), &["--shards", "2"]);
    let addr = broker.addr.clone();
    run(move || async move {
        let client = Client::connect(&addr, "scenario").await.unwrap();
        assert_eq!(client.shard_count(), 2);
        client.create_topic("orders", QUEUES).await.unwrap();
        let owners: Vec<u32> = (0..QUEUES)
            .map(|q| shard_for_queue("orders", q, 2))
            .collect();
        assert!(
            owners.contains(&0) && owners.contains(&1),
            "both shards own queues: {owners:?}"
        );
        let per_queue = MESSAGES / u64::from(QUEUES);
        for start in (0..per_queue).step_by(BATCH as usize) {
            for queue in 0..QUEUES {
                let batch = batch_of(start..start + BATCH, |seq| payload(queue, seq));
                let ack = client.produce_batch("orders", queue, &batch).await.unwrap();
                assert_eq!((ack.base_offset, ack.count), (start, BATCH as u32));
            }
        }
        let mut total = 0u64;
        for queue in 0..QUEUES {
            let offsets = client.queue_offsets("orders", queue).await.unwrap();
            assert_eq!((offsets.min_offset, offsets.max_offset), (0, per_queue));
            let mut next = 0u64;
            while next < per_queue {
                let pulled = client
                    .pull("orders", queue, next, 10_000, 1 << 20, 0)
                    .await
                    .unwrap();
                assert!(!pulled.is_empty(), "queue {queue} stalled at {next}");
                for record in pulled.records().unwrap() {
                    assert_eq!(
                        record.offset, next,
                        "queue {queue}: records in order, no gaps"
                    );
                    assert_eq!(
                        record.payload(),
                        payload(queue, next).as_slice(),
                        "queue {queue} offset {next}"
                    );
                    next += 1;
                }
                assert_eq!(pulled.next_offset(), next);
            }
            total += next;
        }
        assert_eq!(total, MESSAGES);
    });
    assert_eq!(broker.stop(), Some(0), "SIGTERM exits 0");
}
