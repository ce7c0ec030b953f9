//! The simulation's independent record of what the store was asked and what it answered, and
//! the check of a recovered store against it.
//!
//! The rules (per queue; queue `q` has one producer, so its batches are appended in id order):
//! - every batch the store acknowledged is present after every later recovery, once, byte-exact;
//! - every batch present was appended (no garbage, no record of a batch missing or altered),
//!   and batches appear in the order they were appended, each once;
//! - offsets are contiguous from 0 (nothing was deleted: retention never runs here);
//! - what one recovery showed stays in every later one (recovery never shows what a second
//!   crash could take back);
//! - a consumer offset never moves backward: at least the last commit the store answered as
//!   durable, at least what the previous recovery showed, at most the highest commit made.

use std::collections::{BTreeMap, BTreeSet};

use shardmq_protocol::batch::split_batches;
use shardmq_shards::consumer_offsets::OffsetKey;
use shardmq_shards::{ReadRequest, ShardStore};

pub const TOPIC: u32 = 1;
pub const GROUP: &str = "sim-group";

/// One record: its key (`b<id>.<n>`) and payload.
pub type RecordSpec = (String, Vec<u8>);

#[derive(Debug, Default, Clone)]
struct OffsetFacts {
    answered_durable: u64,
    highest_committed: u64,
    last_recovered: Option<u64>,
}

#[derive(Debug, Default, Clone)]
pub struct Oracle {
    batches: BTreeMap<u64, (u32, Vec<RecordSpec>)>,
    must_stay: BTreeSet<u64>,
    offsets: BTreeMap<u32, OffsetFacts>,
    next_id: u64,
    pub acked: u64,
    pub attempted: u64,
    pub refused: u64,
    pub recovered_records: u64,
}

pub fn offset_key(queue: u32) -> OffsetKey {
    OffsetKey {
        group: GROUP.into(),
        topic_id: TOPIC,
        queue_id: queue,
    }
}

fn batch_id(key: &str) -> Option<u64> {
    key.strip_prefix('b')?.split_once('.')?.0.parse().ok()
}

impl Oracle {
    /// Records a batch about to be appended, its records made for its id; returns the id and
    /// the records.
    pub fn attempt(
        &mut self,
        queue: u32,
        make: impl FnOnce(u64) -> Vec<RecordSpec>,
    ) -> (u64, &[RecordSpec]) {
        let id = self.next_id;
        self.next_id += 1;
        self.attempted += 1;
        let (_, records) = self.batches.entry(id).or_insert((queue, make(id)));
        (id, records)
    }

    pub fn acknowledged(&mut self, id: u64) {
        self.acked += 1;
        self.must_stay.insert(id);
    }

    pub fn committing(&mut self, queue: u32, offset: u64) {
        let facts = self.offsets.entry(queue).or_default();
        facts.highest_committed = facts.highest_committed.max(offset);
    }

    pub fn commit_durable(&mut self, queue: u32, offset: u64) {
        let facts = self.offsets.entry(queue).or_default();
        facts.answered_durable = facts.answered_durable.max(offset);
    }

    /// Checks a freshly recovered store; on success, what it shows must stay from now on.
    pub async fn check_recovered(&mut self, store: &ShardStore, queues: u32) -> Result<(), String> {
        for queue in 0..queues {
            let records = read_queue(store, queue).await?;
            let present = self.check_queue(queue, &records)?;
            for id in &self.must_stay {
                let (q, _) = &self.batches[id];
                if *q == queue && !present.contains(id) {
                    return Err(format!("queue {queue}: acknowledged batch {id} is missing"));
                }
            }
            self.recovered_records += records.len() as u64;
            self.must_stay.extend(present);
            self.check_offset(store, queue)?;
        }
        Ok(())
    }

    /// The batches a queue's records spell, checked against what was appended.
    fn check_queue(&self, queue: u32, records: &[RecordSpec]) -> Result<BTreeSet<u64>, String> {
        let mut present = BTreeSet::new();
        let mut at = 0;
        while at < records.len() {
            let key = &records[at].0;
            let id = batch_id(key).ok_or_else(|| format!("queue {queue}: foreign key {key:?}"))?;
            let Some((q, want)) = self.batches.get(&id) else {
                return Err(format!("queue {queue}: batch {id} was never appended"));
            };
            if *q != queue {
                return Err(format!("queue {queue}: batch {id} belongs to queue {q}"));
            }
            if present.last().is_some_and(|last| *last >= id) {
                return Err(format!(
                    "queue {queue}: batch {id} out of order or repeated"
                ));
            }
            let got = records.get(at..at + want.len());
            if got != Some(&want[..]) {
                return Err(format!(
                    "queue {queue}: batch {id} differs from what was appended"
                ));
            }
            present.insert(id);
            at += want.len();
        }
        Ok(present)
    }

    fn check_offset(&mut self, store: &ShardStore, queue: u32) -> Result<(), String> {
        let facts = self.offsets.entry(queue).or_default();
        let got = store.consumer_offsets().get(&offset_key(queue));
        let floor = facts
            .answered_durable
            .max(facts.last_recovered.unwrap_or(0));
        let value = got.unwrap_or(0);
        if value < floor {
            return Err(format!(
                "queue {queue}: consumer offset {got:?} moved back below {floor} ({facts:?})"
            ));
        }
        if value > facts.highest_committed {
            return Err(format!(
                "queue {queue}: consumer offset {value} was never committed ({facts:?})"
            ));
        }
        facts.last_recovered = got;
        Ok(())
    }
}

/// Every record of a queue, in offset order, checking that offsets run from 0 without a gap.
async fn read_queue(store: &ShardStore, queue: u32) -> Result<Vec<RecordSpec>, String> {
    let (first, end) = store.offsets(TOPIC, queue);
    if first != 0 {
        return Err(format!("queue {queue} starts at {first}, not 0"));
    }
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < end {
        let request = ReadRequest {
            offset,
            max_messages: 1000,
            max_bytes: 256 * 1024,
            tag_codes: None,
        };
        let outcome = store
            .read(TOPIC, queue, request)
            .await
            .map_err(|e| format!("queue {queue}: read at {offset}: {e}"))?;
        if outcome.batches.is_empty() {
            return Err(format!(
                "queue {queue}: nothing at {offset} below end {end}"
            ));
        }
        for batch in &outcome.batches {
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(&batch.bytes);
            let views = split_batches(&aligned).map_err(|e| format!("queue {queue}: {e}"))?;
            for view in views {
                let base = view.header.base_offset;
                let decoded = view.records().map_err(|e| format!("queue {queue}: {e}"))?;
                for (delta, record) in decoded.iter() {
                    if base + delta < offset {
                        continue;
                    }
                    if base + delta != offset {
                        return Err(format!(
                            "queue {queue}: offset {} after {offset}",
                            base + delta
                        ));
                    }
                    let key = record
                        .keys
                        .first()
                        .map(|k| k.to_string())
                        .unwrap_or_default();
                    records.push((key, record.payload.as_slice().to_vec()));
                    offset += 1;
                }
            }
        }
    }
    Ok(records)
}
