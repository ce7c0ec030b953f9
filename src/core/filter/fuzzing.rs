//! What the filter fuzz target (`fuzz/fuzz_targets/filter_expression.rs`) checks, kept here so
//! its committed corpus also runs on stable (`tests/filter_fuzz_corpus.rs`): any text a client
//! subscribes with, as a tag expression or as SQL92, parses or is refused without a panic, and
//! what parses evaluates against records with every kind of property without one.

use shardmq_protocol::batch::{encode_batch, ValidatedBatch};
use shardmq_protocol::{Property, Record};

use super::Filter;
use crate::core::groups::{FilterKind, FilterSpec};

/// Records with tags, numbers, text, booleans-as-text and no properties at all.
fn sample_batch() -> ValidatedBatch {
    let property = |name: &str, value: &str| Property {
        name: name.into(),
        value: value.into(),
    };
    let records = [
        Record {
            tags: "TagA".into(),
            properties: vec![
                property("a", "1"),
                property("b", "-2.5"),
                property("s", "text"),
                property("t", "true"),
                property("big", "92233720368547758070"),
            ],
            ..Record::default()
        },
        Record::default(),
        Record {
            tags: "x".repeat(300),
            properties: vec![property("a", "NaN"), property("s", "")],
            ..Record::default()
        },
    ];
    let encoded = encode_batch(&records);
    ValidatedBatch::new(bytes::BytesMut::from(&encoded[..])).expect("a batch this crate encodes")
}

/// Parses `data` (as UTF-8, else lossily) both ways and evaluates what parses.
pub fn filter_expression(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let batch = sample_batch();
    for kind in [FilterKind::Tag, FilterKind::Sql92] {
        let spec = FilterSpec {
            kind,
            expression: text.clone(),
        };
        let Ok(filter) = Filter::parse(&spec) else {
            continue;
        };
        let _ = filter.codes();
        for record in batch.records().iter() {
            let _ = filter.matches(record);
        }
    }
}
