//! [`PullResult`]: one pull reply, owning its 16-byte aligned payload, and the record views
//! read out of it.
//!
//! The data part holds whole stored batches back to back. [`PullResult::batches`] validates them
//! with `batch::split_batches` (header fields, header CRC, body CRC) and checks the reply's
//! invariants: as many batches as `batch_count` says, every batch stamped with the pulled queue,
//! batches contiguous in offset order. [`PullResult::records`] walks the records with their
//! queue offsets and skips those below the requested offset, since the first batch may begin
//! before it (batches are never split).
//!
//! Nothing here is trusted until a call that validates returns `Ok`; each such call validates
//! again (CRC32 over the data, cheap next to the network). Plain data, `!Sync`-free; the buffer
//! is touched only by the thread that holds the value.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use shardmq_protocol::batch::{self, ArchivedRecord, BatchView, Records};
use shardmq_protocol::messages::PullReply;
use shardmq_protocol::{envelope, Record};

use crate::error::{ClientError, Result};

/// The reply to one pull.
#[derive(Debug)]
pub struct PullResult {
    payload: AlignedVec<16>,
    data_start: usize,
    reply: PullReply,
    queue_id: u32,
    requested_offset: u64,
    /// Set once [`PullResult::batches`] has checked every CRC of this buffer, so later calls
    /// (a consumer validates, then its caller iterates records) parse without re-hashing.
    checked: std::cell::Cell<bool>,
    /// A filtered pull's batches skip what did not match: they only have to go up.
    gaps_allowed: bool,
}

impl PullResult {
    /// Wraps a `PullReply` payload; checks the envelope and decodes the metadata only.
    pub(crate) fn new(
        payload: AlignedVec<16>,
        queue_id: u32,
        requested_offset: u64,
    ) -> Result<Self> {
        let (meta, data) = envelope::split(&payload)?;
        let reply: PullReply = envelope::decode_meta(meta)?;
        let data_start = payload.len() - data.len();
        debug_assert_eq!(data_start % 16, 0, "envelope data is 16-aligned");
        if reply.next_offset < requested_offset && reply.batch_count > 0 {
            return Err(ClientError::UnexpectedReply(format!(
                "pull at {requested_offset} returned next_offset {}",
                reply.next_offset
            )));
        }
        Ok(PullResult {
            payload,
            data_start,
            reply,
            queue_id,
            requested_offset,
            checked: std::cell::Cell::new(false),
            gaps_allowed: false,
        })
    }

    /// Accepts batches that skip offsets (the reply to a filtered pull).
    pub(crate) fn allow_gaps(&mut self) {
        self.gaps_allowed = true;
    }

    /// The offset this pull asked for.
    pub fn requested_offset(&self) -> u64 {
        self.requested_offset
    }

    /// Where the next pull of this queue should start.
    pub fn next_offset(&self) -> u64 {
        self.reply.next_offset
    }

    /// The queue's end offset (one past its last record) when the broker replied.
    pub fn max_offset(&self) -> u64 {
        self.reply.max_offset
    }

    pub fn batch_count(&self) -> u32 {
        self.reply.batch_count
    }

    /// True when the reply carries no batch.
    pub fn is_empty(&self) -> bool {
        self.reply.batch_count == 0
    }

    /// The raw data part: stored batches back to back, 16-byte aligned in memory.
    pub fn data(&self) -> &[u8] {
        &self.payload[self.data_start..]
    }

    /// The batches, validated (header CRC, body CRC, count, queue, contiguity).
    pub fn batches(&self) -> Result<Vec<BatchView<'_>>> {
        let views = if self.checked.get() {
            batch::split_batches_checked_before(self.data())?
        } else {
            batch::split_batches(self.data())?
        };
        if views.len() != self.reply.batch_count as usize {
            return Err(ClientError::UnexpectedReply(format!(
                "pull reply says {} batches, data holds {}",
                self.reply.batch_count,
                views.len()
            )));
        }
        let mut expected_base: Option<u64> = None;
        for view in &views {
            let h = &view.header;
            if h.queue_id != self.queue_id {
                return Err(ClientError::UnexpectedReply(format!(
                    "pull of queue {} returned a batch of queue {}",
                    self.queue_id, h.queue_id
                )));
            }
            if let Some(base) = expected_base {
                let in_order = if self.gaps_allowed {
                    h.base_offset >= base
                } else {
                    h.base_offset == base
                };
                if !in_order {
                    return Err(ClientError::UnexpectedReply(format!(
                        "batches out of order: expected offset {base}, got {}",
                        h.base_offset
                    )));
                }
            }
            expected_base = Some(h.end_offset());
        }
        self.checked.set(true);
        Ok(views)
    }

    /// The records at or after the requested offset, with their queue offsets, after validating
    /// every batch and every batch's archive.
    pub fn records(&self) -> Result<RecordIter<'_>> {
        let mut batches = Vec::with_capacity(self.reply.batch_count as usize);
        for view in self.batches()? {
            batches.push(BatchRecords {
                base_offset: view.header.base_offset,
                store_timestamp_ms: view.header.append_timestamp_ms,
                records: view.records()?,
            });
        }
        Ok(RecordIter {
            batches: batches.into_iter(),
            current: None,
            min_offset: self.requested_offset,
        })
    }

    /// How many records [`PullResult::records`] yields.
    pub fn record_count(&self) -> Result<usize> {
        Ok(self.records()?.len())
    }

    /// The records, deserialized into owned values (a copy; prefer [`PullResult::records`]).
    pub fn to_owned_records(&self) -> Result<Vec<(u64, Record)>> {
        self.records()?
            .map(|r| {
                rkyv::deserialize::<Record, rancor::Error>(r.record)
                    .map(|rec| (r.offset, rec))
                    .map_err(|e| {
                        ClientError::Protocol(shardmq_protocol::ProtocolError::BadArchive(
                            e.to_string(),
                        ))
                    })
            })
            .collect()
    }
}

/// One record of a pull reply, borrowed from its buffer.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    /// The record's queue offset.
    pub offset: u64,
    /// When the broker stored it (ms since the epoch).
    pub store_timestamp_ms: u64,
    pub record: &'a ArchivedRecord,
}

impl<'a> RecordRef<'a> {
    pub fn payload(&self) -> &'a [u8] {
        self.record.payload.as_slice()
    }

    /// The tag, or `""` for none.
    pub fn tags(&self) -> &'a str {
        self.record.tags.as_str()
    }

    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.record.keys.iter().map(|k| k.as_str())
    }

    /// The producer's unique id of the message (RocketMQ's `UNIQ_KEY`), or `""`.
    pub fn unique_id(&self) -> &'a str {
        self.record.unique_id.as_str()
    }

    pub fn born_timestamp_ms(&self) -> u64 {
        self.record.born_timestamp_ms.to_native()
    }

    pub fn reconsume_times(&self) -> u32 {
        self.record.reconsume_times.to_native()
    }

    /// The value of the first user property named `name`.
    pub fn property(&self, name: &str) -> Option<&'a str> {
        self.record.property(name)
    }
}

impl std::fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordRef")
            .field("offset", &self.offset)
            .field("born_timestamp_ms", &self.born_timestamp_ms())
            .field("tags", &self.tags())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

/// The records of one batch of a pull reply.
struct BatchRecords<'a> {
    base_offset: u64,
    store_timestamp_ms: u64,
    records: Records<'a>,
}

/// Iterator over the records of a validated pull reply, from the requested offset on.
pub struct RecordIter<'a> {
    batches: std::vec::IntoIter<BatchRecords<'a>>,
    /// The batch being walked, and the index of its next record.
    current: Option<(BatchRecords<'a>, usize)>,
    min_offset: u64,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        loop {
            if let Some((batch, index)) = &mut self.current {
                if let Some((delta, record)) = batch.records.get(*index) {
                    *index += 1;
                    let offset = batch.base_offset + delta;
                    if offset >= self.min_offset {
                        return Some(RecordRef {
                            offset,
                            store_timestamp_ms: batch.store_timestamp_ms,
                            record,
                        });
                    }
                    continue;
                }
            }
            let batch = self.batches.next()?;
            // Skip whole records below the requested offset without visiting them.
            let skip = batch
                .records
                .first_at_or_after(self.min_offset.saturating_sub(batch.base_offset));
            self.current = Some((batch, skip));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for RecordIter<'_> {}

impl RecordIter<'_> {
    fn remaining_in(&self, batch: &BatchRecords<'_>, from: usize) -> usize {
        let skip = batch
            .records
            .first_at_or_after(self.min_offset.saturating_sub(batch.base_offset));
        batch.records.len().saturating_sub(skip.max(from))
    }

    fn remaining(&self) -> usize {
        let in_current = self
            .current
            .as_ref()
            .map(|(batch, index)| self.remaining_in(batch, *index))
            .unwrap_or(0);
        let rest: usize = self
            .batches
            .as_slice()
            .iter()
            .map(|batch| self.remaining_in(batch, 0))
            .sum();
        in_current + rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_protocol::batch::{encode_batch, stamp, Stamp};

    fn record(i: u64) -> Record {
        Record {
            born_timestamp_ms: 1000 + i,
            keys: vec![format!("k{i}")],
            payload: format!("payload-{i}").into_bytes(),
            ..Record::default()
        }
    }

    /// A pull reply payload holding batches of the given (base, count), stamped for `queue`.
    fn reply_payload(queue: u32, batches: &[(u64, u64)], next: u64, max: u64) -> AlignedVec<16> {
        let mut data = AlignedVec::<16>::new();
        for &(base, count) in batches {
            let records: Vec<Record> = (base..base + count).map(record).collect();
            let mut b = encode_batch(&records);
            stamp(
                &mut b,
                Stamp {
                    topic_id: 1,
                    queue_id: queue,
                    base_offset: base,
                    append_timestamp_ms: 5,
                },
            );
            data.extend_from_slice(&b);
        }
        let meta = PullReply {
            batch_count: batches.len() as u32,
            next_offset: next,
            min_offset: 0,
            max_offset: max,
        };
        let mut payload = AlignedVec::<16>::new();
        payload.extend_from_slice(&envelope::encode_prefix(&meta, data.len()).unwrap());
        payload.extend_from_slice(&data);
        payload
    }

    #[test]
    fn records_skip_below_requested_offset() {
        let payload = reply_payload(2, &[(10, 5), (15, 3)], 18, 18);
        let pull = PullResult::new(payload, 2, 12).unwrap();
        assert_eq!(pull.next_offset(), 18);
        assert_eq!(pull.max_offset(), 18);
        assert_eq!(pull.batches().unwrap().len(), 2);
        let iter = pull.records().unwrap();
        assert_eq!(iter.len(), 6);
        let got: Vec<(u64, Vec<u8>)> = iter.map(|r| (r.offset, r.payload().to_vec())).collect();
        let want: Vec<(u64, Vec<u8>)> = (12..18).map(|i| (i, record(i).payload)).collect();
        assert_eq!(got, want);
        let owned = pull.to_owned_records().unwrap();
        assert_eq!(owned[0], (12, record(12)));
        assert_eq!(pull.record_count().unwrap(), 6);
    }

    #[test]
    fn empty_reply() {
        let pull = PullResult::new(reply_payload(0, &[], 7, 7), 0, 7).unwrap();
        assert!(pull.is_empty());
        assert_eq!(pull.records().unwrap().count(), 0);
    }

    #[test]
    fn corrupted_batch_is_rejected() {
        let mut payload = reply_payload(0, &[(0, 3)], 3, 3);
        let last = payload.len() - 20;
        payload[last] ^= 0x55;
        let pull = PullResult::new(payload, 0, 0).unwrap();
        assert!(matches!(pull.batches(), Err(ClientError::Protocol(_))));
        assert!(pull.records().is_err());
    }

    #[test]
    fn reply_invariants_are_checked() {
        // Wrong queue.
        let pull = PullResult::new(reply_payload(1, &[(0, 2)], 2, 2), 0, 0).unwrap();
        assert!(matches!(
            pull.batches(),
            Err(ClientError::UnexpectedReply(_))
        ));
        // Gap between batches.
        let pull = PullResult::new(reply_payload(0, &[(0, 2), (5, 2)], 7, 7), 0, 0).unwrap();
        assert!(matches!(
            pull.batches(),
            Err(ClientError::UnexpectedReply(_))
        ));
        // Count in the metadata disagrees with the data.
        let mut payload = reply_payload(0, &[(0, 2)], 2, 2);
        let (meta, data) = envelope::split(&payload).unwrap();
        let (meta, data) = (meta.to_vec(), data.to_vec());
        let mut bad: PullReply = envelope::decode_meta(&meta).unwrap();
        bad.batch_count = 2;
        payload.clear();
        payload.extend_from_slice(&envelope::encode_prefix(&bad, data.len()).unwrap());
        payload.extend_from_slice(&data);
        let pull = PullResult::new(payload, 0, 0).unwrap();
        assert!(matches!(
            pull.batches(),
            Err(ClientError::UnexpectedReply(_))
        ));
    }
}
