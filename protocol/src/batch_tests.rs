use super::*;

fn record(i: u8) -> Record {
    Record {
        born_timestamp_ms: 1_700_000_000_000 + u64::from(i),
        born_host: vec![127, 0, 0, 1, 0x1f, 0x90],
        tags: if i.is_multiple_of(2) {
            "TagA".into()
        } else {
            String::new()
        },
        keys: vec![format!("k{i}"), "shared".into()],
        unique_id: format!("{i:032X}"),
        properties: vec![Property {
            name: "color".into(),
            value: "red".into(),
        }],
        payload: vec![i; 100 + usize::from(i)],
        ..Record::default()
    }
}

fn batch_of(n: u8) -> AlignedVec<16> {
    let records: Vec<Record> = (0..n).map(record).collect();
    encode_batch(&records)
}

fn fields(base_offset: u64) -> Stamp {
    Stamp {
        topic_id: 1,
        queue_id: 0,
        base_offset,
        append_timestamp_ms: 1,
    }
}

/// A batch of `n` records stamped for topic 1, queue 0, from `base_offset`.
fn stamped_batch_of(n: u8, base_offset: u64) -> AlignedVec<16> {
    let mut batch = batch_of(n);
    stamp(&mut batch, fields(base_offset));
    batch
}

fn validated(batch: &[u8]) -> ValidatedBatch {
    ValidatedBatch::new(BytesMut::from(batch)).unwrap()
}

#[test]
fn the_size_estimate_bounds_the_encoded_batch() {
    for n in [1usize, 2, 7, 100] {
        for (keys, props, payload) in [(0, 0, 0), (1, 0, 5), (9, 1, 100), (3, 4, 1024), (0, 9, 1)] {
            let records: Vec<Record> = (0..n)
                .map(|i| Record {
                    born_timestamp_ms: i as u64,
                    keys: (0..keys).map(|k| "k".repeat(k + 1)).collect(),
                    tags: "t".repeat(keys),
                    unique_id: "u".repeat(props * 4),
                    properties: (0..props)
                        .map(|p| Property {
                            name: "n".repeat(p + 1),
                            value: "v".repeat(p * 3),
                        })
                        .collect(),
                    payload: vec![2; payload + i % 3],
                    ..Record::default()
                })
                .collect();
            let mut builder = BatchBuilder::new();
            for r in &records {
                builder.push(r.clone());
            }
            let estimate = builder.estimated_bytes();
            let encoded = encode_batch(&records).len();
            assert!(
                estimate >= encoded,
                "{n} records of {keys} keys, {props} properties, payload {payload}: estimate {estimate} < {encoded}"
            );
        }
    }
}

#[test]
fn encode_validate_stamp_read_round_trip() {
    let batch = batch_of(10);
    assert_eq!(batch.len() % 16, 0);
    let checked = validated(&batch);
    assert_eq!(checked.header().record_count, 10);
    let tags: Vec<i64> = (0..10u8)
        .map(|i| crate::record::tag_code(&record(i).tags))
        .collect();
    assert_eq!(checked.tag_codes(), &tags[..]);
    assert_eq!(checked.records()[3].keys[0].as_str(), "k3");
    let stored = checked.stamp(Stamp {
        topic_id: 7,
        queue_id: 3,
        base_offset: 1000,
        append_timestamp_ms: 5,
    });
    let view = BatchView::new(&stored).unwrap();
    assert_eq!(view.header.base_offset, 1000);
    assert_eq!(view.header.end_offset(), 1010);
    assert_eq!((view.header.topic_id, view.header.queue_id), (7, 3));
    let records = view.records().unwrap();
    assert_eq!(records.len(), 10);
    for (delta, r) in records.iter() {
        let expected = record(delta as u8);
        assert_eq!(r.payload.as_slice(), expected.payload.as_slice());
        assert_eq!(r.born_timestamp_ms.to_native(), expected.born_timestamp_ms);
        assert_eq!(r.tags.as_str(), expected.tags);
        assert_eq!(r.unique_id.as_str(), expected.unique_id);
        assert_eq!(r.property("color"), Some("red"));
    }
}

#[test]
fn a_sparse_batch_carries_only_its_records_and_their_offsets() {
    let records = vec![record(2), record(7)];
    let sparse = encode_sparse_batch(vec![2, 7], records, 9, fields(100));
    let view = BatchView::new(&sparse).unwrap();
    assert!(view.header.is_sparse());
    assert_eq!(
        (view.header.base_offset, view.header.end_offset()),
        (100, 109)
    );
    let records = view.records().unwrap();
    let got: Vec<(u64, usize)> = records.iter().map(|(d, r)| (d, r.payload.len())).collect();
    assert_eq!(got, vec![(2, 102), (7, 107)]);
    assert_eq!(records.first_at_or_after(3), 1);
    assert_eq!(records.first_at_or_after(8), 2);
    assert!(
        validate_incoming(&sparse).is_err(),
        "a producer may not send a sparse batch"
    );
}

#[test]
fn version_one_batches_are_refused_as_what_they_are() {
    let mut batch = batch_of(1);
    batch[4] = 1;
    assert_eq!(validate_incoming(&batch), Err(ProtocolError::BadVersion(1)));
}

#[test]
fn unstamped_batch_fails_stored_validation() {
    let batch = batch_of(2);
    assert!(matches!(
        validate_stored(&batch),
        Err(ProtocolError::HeaderCrcMismatch { .. })
    ));
}

#[test]
fn every_flipped_byte_is_caught() {
    let batch = stamped_batch_of(3, 0);
    for at in 0..batch.len() {
        let mut copy = batch.clone();
        copy[at] ^= 0x40;
        assert!(
            validate_stored(&copy).is_err(),
            "flip at {at} passed stored validation"
        );
    }
}

#[test]
fn incoming_corruption_is_rejected() {
    let batch = batch_of(3);
    for at in (0..20)
        .chain(24..28)
        .chain(36..40)
        .chain(BATCH_HEADER_BYTES..batch.len())
    {
        let mut copy = batch.clone();
        copy[at] ^= 0x01;
        assert!(
            validate_incoming(&copy).is_err(),
            "flip at {at} passed incoming validation"
        );
    }
}

#[test]
fn truncation_at_every_byte_fails() {
    let batch = stamped_batch_of(2, 0);
    for cut in 0..batch.len() {
        let mut short = AlignedVec::<16>::new();
        short.extend_from_slice(&batch[..cut]);
        assert!(
            validate_incoming(&short).is_err(),
            "cut {cut} passed incoming"
        );
        assert!(validate_stored(&short).is_err(), "cut {cut} passed stored");
    }
}

#[test]
fn garbage_and_lying_counts_are_rejected() {
    let garbage = vec![0xFFu8; 256];
    assert!(validate_incoming(&garbage).is_err());
    // A valid archive of 2 records with a header that claims 3.
    let mut batch = batch_of(2);
    batch[24..28].copy_from_slice(&3u32.to_le_bytes());
    assert!(matches!(
        validate_incoming(&batch),
        Err(ProtocolError::RecordCountMismatch { .. })
    ));
}

#[test]
fn the_unhashed_split_agrees_with_the_checked_one_and_still_bounds_lengths() {
    let mut data = AlignedVec::<16>::new();
    for base in [0u64, 3] {
        let b = stamped_batch_of(3, base);
        data.extend_from_slice(&b);
    }
    let checked: Vec<_> = split_batches(&data)
        .unwrap()
        .iter()
        .map(|v| (v.header, v.bytes().len()))
        .collect();
    let again: Vec<_> = split_batches_checked_before(&data)
        .unwrap()
        .iter()
        .map(|v| (v.header, v.bytes().len()))
        .collect();
    assert_eq!(checked, again);
    assert!(
        split_batches_checked_before(&data[..data.len() - 1]).is_err(),
        "a cut buffer is still refused"
    );
}

#[test]
fn split_concatenated_batches() {
    let mut data = AlignedVec::<16>::new();
    for base in [0u64, 2, 4] {
        let b = stamped_batch_of(2, base);
        data.extend_from_slice(&b);
    }
    let views = split_batches(&data).unwrap();
    assert_eq!(
        views
            .iter()
            .map(|v| v.header.base_offset)
            .collect::<Vec<_>>(),
        vec![0, 2, 4]
    );
}

#[test]
fn a_batch_encoded_for_the_store_is_what_validation_would_have_made() {
    // Distinct non-zero fixed fields and texts longer than rkyv's inline 8 bytes, so a field
    // out of place in `RecordRef`'s impls changes the bytes.
    let records: Vec<Record> = (0..5u8)
        .map(|i| Record {
            flag: 11 + i32::from(i),
            sys_flag: 22 + u32::from(i),
            reconsume_times: 33 + u32::from(i),
            tags: format!("a-long-tag-{i}"),
            keys: vec![format!("a-long-key-{i}"), format!("another-long-key-{i}")],
            properties: vec![Property {
                name: format!("a-long-name-{i}"),
                value: format!("a-long-value-{i}"),
            }],
            ..record(i)
        })
        .collect();
    let borrowed: Vec<RecordRef<'_>> = records.iter().map(Record::borrowed).collect();
    let encoded = ValidatedBatch::encode(&borrowed).unwrap();
    let checked = ValidatedBatch::new(BytesMut::from(&encode_batch(&records)[..])).unwrap();
    assert_eq!(encoded.header(), checked.header());
    assert_eq!(encoded.tag_codes(), checked.tag_codes());
    let stamp = Stamp {
        topic_id: 1,
        queue_id: 2,
        base_offset: 9,
        append_timestamp_ms: 1,
    };
    assert_eq!(
        encoded.stamp(stamp),
        checked.stamp(stamp),
        "byte for byte the batch encode_batch makes"
    );
    assert!(
        ValidatedBatch::encode(&[]).is_err(),
        "no records is not a batch"
    );
}
