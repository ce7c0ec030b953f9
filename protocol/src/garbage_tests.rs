//! Every decoder fed seeded random garbage and random corruptions of valid input: errors are
//! fine, panics are not. A stand-in for fuzzing that runs in `cargo test` on stable Rust.

use rkyv::util::AlignedVec;

use crate::batch::{encode_batch, stamp, validate_incoming, Record, Stamp};
use crate::envelope;
use crate::messages::{
    CreateTopic, ErrorReply, Hello, Produce, Pull, QueueOffsets, TopicInfo, TopicList,
};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> AlignedVec<16> {
        let mut out = AlignedVec::<16>::with_capacity(len);
        for _ in 0..len {
            out.push(self.next() as u8);
        }
        out
    }
}

use crate::fuzzing::native as decode_everything;

#[test]
fn random_bytes_never_panic_a_decoder() {
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..20_000 {
        let len = rng.below(512);
        decode_everything(&rng.bytes(len));
    }
}

/// Five small records with distinct keys and payloads.
fn five_records() -> Vec<Record> {
    (0..5u8)
        .map(|i| Record {
            born_timestamp_ms: 1,
            keys: vec![format!("key-{i}")],
            tags: "TagA".into(),
            unique_id: format!("{i:032}"),
            payload: vec![i; 50],
            ..Record::default()
        })
        .collect()
}

#[test]
fn corrupted_valid_input_never_panics_a_decoder() {
    let mut rng = Rng(0x5EED_0002);
    let records = five_records();
    let mut batch = encode_batch(&records);
    stamp(
        &mut batch,
        Stamp {
            topic_id: 1,
            queue_id: 2,
            base_offset: 3,
            append_timestamp_ms: 4,
        },
    );
    let mut produce = envelope::encode_prefix(
        &Produce {
            topic: "t".into(),
            queue_id: 0,
        },
        batch.len(),
    )
    .unwrap();
    produce.extend_from_slice(&batch);
    let sparse = crate::batch::encode_sparse_batch(
        vec![0, 3],
        records[..2].to_vec(),
        5,
        Stamp {
            topic_id: 1,
            queue_id: 2,
            base_offset: 3,
            append_timestamp_ms: 4,
        },
    );
    let inputs: Vec<Vec<u8>> = vec![
        batch.to_vec(),
        sparse.to_vec(),
        produce,
        envelope::encode(&Hello {
            client_name: "c".into(),
            wanted_shard: Some(1),
            credentials: None,
        })
        .unwrap(),
        envelope::encode(&Pull {
            topic: "orders".into(),
            queue_id: 3,
            offset: 7,
            max_messages: 10,
            max_bytes: 1 << 20,
            wait_ms: 5,
            filter: None,
            commit: None,
        })
        .unwrap(),
        envelope::encode(&CreateTopic {
            name: "orders".into(),
            queues: 8,
            perm: Some(6),
        })
        .unwrap(),
        envelope::encode(&QueueOffsets {
            topic: "orders".into(),
            queue_id: 1,
        })
        .unwrap(),
        envelope::encode(&TopicList {
            topics: vec![TopicInfo {
                name: "orders".into(),
                topic_id: 1,
                queues: 8,
                perm: 6,
            }],
        })
        .unwrap(),
        envelope::encode(&ErrorReply {
            code: 10,
            message: "no".into(),
            owner_shard: Some(1),
        })
        .unwrap(),
    ];
    for _ in 0..20_000 {
        let input = &inputs[rng.below(inputs.len())];
        let mut bytes = AlignedVec::<16>::new();
        bytes.extend_from_slice(input);
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        let cut = bytes.len() - rng.below(bytes.len() / 4 + 1);
        decode_everything(&bytes[..cut]);
    }
}

/// Corrupts the records of a batch and then fixes its body CRC, so the corruption reaches the
/// rkyv validation instead of stopping at the CRC check.
#[test]
fn corrupted_archives_with_matching_crc_are_rejected_without_panic() {
    let mut rng = Rng(0x5EED_0003);
    let records = five_records();
    let batch = encode_batch(&records);
    let body_len = u32::from_le_bytes([batch[12], batch[13], batch[14], batch[15]]) as usize;
    let body = 64..64 + body_len;
    let mut rejected = 0;
    for _ in 0..20_000 {
        let mut bytes = batch.clone();
        for _ in 0..1 + rng.below(3) {
            let at = body.start + rng.below(body_len);
            bytes[at] = rng.next() as u8;
        }
        let crc = crc32fast::hash(&bytes[body.clone()]);
        bytes[16..20].copy_from_slice(&crc.to_le_bytes());
        if validate_incoming(&bytes).is_err() {
            rejected += 1;
        }
    }
    // Payload bytes may change without breaking the archive; pointer and length bytes may not.
    assert!(
        rejected > 1000,
        "rkyv validation rejected only {rejected} of 20000 corrupted archives"
    );
}
