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
use shardmq_protocol::batch::{self, ArchivedRecord, ArchivedRecords, BatchView};
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
        })
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
                if h.base_offset != base {
                    return Err(ClientError::UnexpectedReply(format!(
                        "batches not contiguous: expected offset {base}, got {}",
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
            let records = view.records()?;
            if records.len() != view.header.record_count as usize {
                return Err(ClientError::Protocol(
                    shardmq_protocol::ProtocolError::RecordCountMismatch {
                        count: records.len(),
                        expected: view.header.record_count,
                    },
                ));
            }
            batches.push((view.header.base_offset, records));
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
    pub record: &'a ArchivedRecord,
}

impl<'a> RecordRef<'a> {
    pub fn payload(&self) -> &'a [u8] {
        self.record.payload.as_slice()
    }

    pub fn key(&self) -> &'a [u8] {
        self.record.key.as_slice()
    }

    pub fn timestamp_ms(&self) -> u64 {
        self.record.timestamp_ms.to_native()
    }

    /// The value of the first property named `name`.
    pub fn property(&self, name: &str) -> Option<&'a str> {
        self.record
            .properties
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.value.as_str())
    }
}

impl std::fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordRef")
            .field("offset", &self.offset)
            .field("timestamp_ms", &self.timestamp_ms())
            .field("key_len", &self.key().len())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

/// Iterator over the records of a validated pull reply, from the requested offset on.
pub struct RecordIter<'a> {
    batches: std::vec::IntoIter<(u64, &'a ArchivedRecords)>,
    /// (base offset, records, index of the next record)
    current: Option<(u64, &'a ArchivedRecords, usize)>,
    min_offset: u64,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        loop {
            if let Some((base, records, index)) = &mut self.current {
                if let Some(record) = records.get(*index) {
                    let offset = *base + *index as u64;
                    *index += 1;
                    if offset >= self.min_offset {
                        return Some(RecordRef { offset, record });
                    }
                    continue;
                }
            }
            let (base, records) = self.batches.next()?;
            // Skip whole records below the requested offset without visiting them.
            let skip = self
                .min_offset
                .saturating_sub(base)
                .min(records.len() as u64) as usize;
            self.current = Some((base, records, skip));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for RecordIter<'_> {}

impl RecordIter<'_> {
    fn remaining(&self) -> usize {
        let in_current = self
            .current
            .as_ref()
            .map(|(base, records, index)| {
                let start = (*index as u64).max(self.min_offset.saturating_sub(*base));
                (records.len() as u64).saturating_sub(start) as usize
            })
            .unwrap_or(0);
        let rest: usize = self
            .batches
            .as_slice()
            .iter()
            .map(|(base, records)| {
                let skip = self.min_offset.saturating_sub(*base);
                (records.len() as u64).saturating_sub(skip) as usize
            })
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
            timestamp_ms: 1000 + i,
            key: vec![i as u8],
            properties: vec![],
            payload: format!("payload-{i}").into_bytes(),
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
