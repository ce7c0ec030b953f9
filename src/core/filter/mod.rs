//! Broker-side message filters, as RocketMQ subscriptions express them.
//!
//! - Tags: `*` (everything) or `tagA || tagB`. Each tag's [`tag_code`] is what the queue index
//!   holds per record, so the read path skips every entry whose code is not in the set without
//!   reading the log; the exact tag string is then checked on the records that remain (codes
//!   collide).
//! - SQL92 (`sql`): evaluated over a record's properties — its user properties, plus `TAGS`,
//!   `KEYS` (space-separated) and `UNIQ_KEY` as RocketMQ exposes them.
//!
//! A filter is parsed once per subscription (a bad one is refused when the member joins) and
//! cached per shard by its text, so a pull only looks it up.

pub mod fuzzing;
pub mod sql;

use std::collections::HashSet;
use std::rc::Rc;

use shardmq_protocol::batch::{encode_sparse_batch, ArchivedRecord, Record, Stamp};
use shardmq_protocol::record::tag_code;
use shardmq_protocol::BatchView;
use shardmq_shards::StoredBatch;

use super::error::{CoreError, CoreResult};
use super::groups::{FilterKind, FilterSpec};

/// A parsed filter.
#[derive(Debug, Clone)]
pub enum Filter {
    All,
    Tags {
        tags: Vec<String>,
        codes: Rc<HashSet<i64>>,
    },
    Sql(sql::Expr),
}

impl Filter {
    /// Parses a subscription's filter; a bad SQL expression is an error naming its position.
    pub fn parse(spec: &FilterSpec) -> CoreResult<Filter> {
        match spec.kind {
            FilterKind::Tag => Ok(Self::tags(&spec.expression)),
            FilterKind::Sql92 => sql::parse(&spec.expression)
                .map(Filter::Sql)
                .map_err(|e| CoreError::InvalidArgument(format!("SQL92 filter {e}"))),
        }
    }

    /// RocketMQ's tag subscription: `*` or empty for everything, else tags split on `||`.
    fn tags(expression: &str) -> Filter {
        let tags: Vec<String> = expression
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if tags.is_empty() || tags.iter().any(|t| t == "*") {
            return Filter::All;
        }
        let codes = Rc::new(tags.iter().map(|t| tag_code(t)).collect());
        Filter::Tags { tags, codes }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Filter::All)
    }

    /// The tag codes a record must have to possibly match (checked from the index alone), or
    /// `None` when any code may match.
    pub fn codes(&self) -> Option<Rc<HashSet<i64>>> {
        match self {
            Filter::Tags { codes, .. } => Some(codes.clone()),
            _ => None,
        }
    }

    /// Whether a record matches, exactly.
    pub fn matches(&self, record: &ArchivedRecord) -> bool {
        match self {
            Filter::All => true,
            Filter::Tags { tags, .. } => tags.iter().any(|t| t.as_str() == record.tags.as_str()),
            Filter::Sql(expr) => sql::eval_matches(expr, &RecordContext(record)),
        }
    }
}

/// What is left of `batches` for a filtered pull from `from`: a batch whose records all match
/// goes as it is stored; one with no match is dropped; one with some is re-encoded as a sparse
/// batch of just those records (with their offsets), so filtered-out messages never cross the
/// network.
pub fn apply(filter: &Filter, batches: Vec<StoredBatch>, from: u64) -> Vec<StoredBatch> {
    batches
        .into_iter()
        .filter_map(|batch| keep_matching(filter, batch, from))
        .collect()
}

fn keep_matching(filter: &Filter, batch: StoredBatch, from: u64) -> Option<StoredBatch> {
    let view = match BatchView::trusted(&batch.bytes) {
        Ok(view) => view,
        Err(err) => {
            tracing::error!(position = batch.position, error = %err, "a stored batch does not parse");
            return None;
        }
    };
    let header = view.header;
    let records = view.records_trusted();
    let candidates: Vec<u32> = match &batch.selected {
        Some(selected) => selected.clone(),
        None => (0..header.record_count).collect(),
    };
    let matched: Vec<u32> = candidates
        .into_iter()
        .filter(|d| header.base_offset + u64::from(*d) >= from)
        .filter(|d| {
            records
                .get(*d as usize)
                .is_some_and(|(_, r)| filter.matches(r))
        })
        .collect();
    if matched.is_empty() {
        return None;
    }
    if matched.len() == header.record_count as usize {
        return Some(StoredBatch {
            selected: None,
            ..batch
        });
    }
    let owned: Vec<Record> = matched
        .iter()
        .filter_map(|d| records.get(*d as usize))
        .filter_map(|(_, r)| rkyv::deserialize::<Record, rkyv::rancor::Error>(r).ok())
        .collect();
    if owned.len() != matched.len() {
        tracing::error!(
            position = batch.position,
            "stored records do not deserialize"
        );
        return None;
    }
    let stamp = Stamp {
        topic_id: header.topic_id,
        queue_id: header.queue_id,
        base_offset: header.base_offset,
        append_timestamp_ms: header.append_timestamp_ms,
    };
    let sparse = encode_sparse_batch(matched, owned, header.record_count, stamp);
    Some(StoredBatch {
        position: batch.position,
        bytes: bytes::Bytes::copy_from_slice(&sparse),
        selected: None,
    })
}

/// A record's properties as SQL92 sees them.
struct RecordContext<'a>(&'a ArchivedRecord);

impl sql::Context for RecordContext<'_> {
    fn property(&self, name: &str) -> Option<Rc<str>> {
        let record = self.0;
        match name {
            "TAGS" => (!record.tags.is_empty()).then(|| Rc::from(record.tags.as_str())),
            "KEYS" => (!record.keys.is_empty()).then(|| {
                let keys: Vec<&str> = record.keys.iter().map(|k| k.as_str()).collect();
                Rc::from(keys.join(" "))
            }),
            "UNIQ_KEY" => {
                (!record.unique_id.is_empty()).then(|| Rc::from(record.unique_id.as_str()))
            }
            _ => record.property(name).map(Rc::from),
        }
    }
}

/// Parsed filters of one shard, by their text: each subscription is parsed once.
#[derive(Default)]
pub struct FilterCache {
    filters: std::cell::RefCell<std::collections::HashMap<FilterSpec, Rc<Filter>>>,
}

/// Filters kept per shard; beyond it the cache starts over (subscriptions are few).
const FILTERS_CACHED_MAX: usize = 4096;

impl FilterCache {
    pub fn get(&self, spec: &FilterSpec) -> CoreResult<Rc<Filter>> {
        if let Some(filter) = self.filters.borrow().get(spec) {
            return Ok(filter.clone());
        }
        let filter = Rc::new(Filter::parse(spec)?);
        let mut filters = self.filters.borrow_mut();
        if filters.len() >= FILTERS_CACHED_MAX {
            filters.clear();
        }
        filters.insert(spec.clone(), filter.clone());
        Ok(filter)
    }
}
