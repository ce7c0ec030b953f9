//! The record batch: the unit a producer sends, the log stores and a consumer reads, byte for
//! byte. The broker validates it, stamps a few header fields in place, and never re-encodes it.
//!
//! ```text
//! offset size field                 written by
//!   0     4   magic "SMQB"          producer
//!   4     1   version (1)           producer
//!   5     1   flags (0)             producer
//!   6     2   reserved (0)          producer
//!   8     4   batch_len             producer   header + body + zero padding to 16
//!  12     4   body_len              producer   exact rkyv archive length
//!  16     4   body_crc              producer   CRC32 of body[..body_len]
//!  20     4   header_crc            broker     CRC32 of header bytes 0..20 and 24..64
//!  24     4   record_count          producer
//!  28     4   queue_id              broker
//!  32     4   topic_id              broker
//!  36     4   reserved (0)
//!  40     8   base_offset           broker     queue offset of the first record
//!  48     8   first_timestamp_ms    producer
//!  56     8   append_timestamp_ms   broker
//!  64     …   body: rkyv archive of Vec<Record>, then zero padding
//! ```
//!
//! Invariants: `batch_len % 16 == 0`; `batch_len == 64 + align16(body_len)`; padding is zero;
//! the body holds exactly `record_count > 0` records. The producer's `body_crc` is checked on
//! arrival, so a batch corrupted on the wire is refused; `header_crc` is computed after stamping,
//! so recovery and consumers detect a torn or corrupted header as well as a torn body.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::vec::ArchivedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::limits::{align_up, BATCH_BYTES_MAX, BATCH_RECORDS_MAX};

pub const BATCH_HEADER_BYTES: usize = 64;
pub const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"SMQB");
pub const BATCH_VERSION: u8 = 1;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Property {
    pub name: String,
    pub value: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub timestamp_ms: u64,
    pub key: Vec<u8>,
    pub properties: Vec<Property>,
    pub payload: Vec<u8>,
}

pub type ArchivedRecords = ArchivedVec<ArchivedRecord>;

/// Bytes an encoded record takes beyond its key, payload and property strings, at most: the
/// archived record and its vector headers, alignment, and per property its two string headers.
pub const RECORD_OVERHEAD_BYTES: usize = 64;
const PROPERTY_OVERHEAD_BYTES: usize = 16;

impl Record {
    /// A close upper estimate of the bytes this record adds to an encoded batch: what the
    /// producer, the batch builder and the encoder all size batches by.
    pub fn encoded_bytes_estimate(&self) -> usize {
        self.payload.len()
            + self.key.len()
            + self
                .properties
                .iter()
                .map(|p| p.name.len() + p.value.len() + PROPERTY_OVERHEAD_BYTES)
                .sum::<usize>()
            + RECORD_OVERHEAD_BYTES
    }
}

/// The decoded fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchHeader {
    pub batch_len: u32,
    pub body_len: u32,
    pub body_crc: u32,
    pub header_crc: u32,
    pub record_count: u32,
    pub queue_id: u32,
    pub topic_id: u32,
    pub base_offset: u64,
    pub first_timestamp_ms: u64,
    pub append_timestamp_ms: u64,
}

/// The fields the broker writes into an accepted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub topic_id: u32,
    pub queue_id: u32,
    pub base_offset: u64,
    pub append_timestamp_ms: u64,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn header_crc_of(header: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[0..20]);
    hasher.update(&header[24..BATCH_HEADER_BYTES]);
    hasher.finalize()
}

fn bad(field: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::BadBatchHeader {
        field,
        reason: reason.into(),
    }
}

impl BatchHeader {
    /// Parses the fixed header and checks the fields that need no body: magic, version, flags,
    /// lengths and count. `bytes` must hold at least the 64-byte header.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(ProtocolError::Truncated {
                need: BATCH_HEADER_BYTES,
                have: bytes.len(),
            });
        }
        let magic = u32_at(bytes, 0);
        if magic != BATCH_MAGIC {
            return Err(ProtocolError::BadMagic {
                got: magic,
                expected: BATCH_MAGIC,
            });
        }
        if bytes[4] != BATCH_VERSION {
            return Err(ProtocolError::BadVersion(bytes[4]));
        }
        if bytes[5] != 0 || bytes[6] != 0 || bytes[7] != 0 || u32_at(bytes, 36) != 0 {
            return Err(bad("flags", "flags and reserved fields must be zero"));
        }
        let header = BatchHeader {
            batch_len: u32_at(bytes, 8),
            body_len: u32_at(bytes, 12),
            body_crc: u32_at(bytes, 16),
            header_crc: u32_at(bytes, 20),
            record_count: u32_at(bytes, 24),
            queue_id: u32_at(bytes, 28),
            topic_id: u32_at(bytes, 32),
            base_offset: u64_at(bytes, 40),
            first_timestamp_ms: u64_at(bytes, 48),
            append_timestamp_ms: u64_at(bytes, 56),
        };
        if header.batch_len > BATCH_BYTES_MAX {
            return Err(bad(
                "batch_len",
                format!("{} exceeds {BATCH_BYTES_MAX}", header.batch_len),
            ));
        }
        let expected_len = BATCH_HEADER_BYTES + align_up(header.body_len as usize);
        if header.batch_len as usize != expected_len {
            return Err(bad(
                "batch_len",
                format!(
                    "{} but body_len {} needs {expected_len}",
                    header.batch_len, header.body_len
                ),
            ));
        }
        if header.record_count == 0 || header.record_count > BATCH_RECORDS_MAX {
            return Err(bad(
                "record_count",
                format!("{} not in 1..={BATCH_RECORDS_MAX}", header.record_count),
            ));
        }
        Ok(header)
    }

    /// One past the queue offset of the batch's last record.
    pub fn end_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }
}

/// Reads the batch length from a header prefix without validating anything else; used to step
/// through a buffer of concatenated batches before each is validated.
pub fn peek_batch_len(bytes: &[u8]) -> Option<u32> {
    (bytes.len() >= 12).then(|| u32_at(bytes, 8))
}

/// Checks a batch as it arrives from a producer: header, exact length, zero padding, body CRC,
/// and an rkyv-validated archive of exactly `record_count` records. Nothing is trusted before
/// this returns `Ok`.
pub fn validate_incoming(batch: &[u8]) -> Result<BatchHeader, ProtocolError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() != header.batch_len as usize {
        return Err(bad(
            "batch_len",
            format!("{} but the frame carries {}", header.batch_len, batch.len()),
        ));
    }
    let body = check_body(batch, &header)?;
    let records = access_checked(body)?;
    if records.len() != header.record_count as usize {
        return Err(ProtocolError::RecordCountMismatch {
            count: records.len(),
            expected: header.record_count,
        });
    }
    Ok(header)
}

/// Checks a stored batch read back from the log or received by a consumer: header fields, header
/// CRC and body CRC. The archive itself is then trusted (the CRCs cover what the broker accepted
/// after full validation).
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, ProtocolError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() < header.batch_len as usize {
        return Err(ProtocolError::Truncated {
            need: header.batch_len as usize,
            have: batch.len(),
        });
    }
    let computed = header_crc_of(&batch[..BATCH_HEADER_BYTES]);
    if computed != header.header_crc {
        return Err(ProtocolError::HeaderCrcMismatch {
            stored: header.header_crc,
            computed,
        });
    }
    check_body(batch, &header)?;
    Ok(header)
}

/// Checks the zero padding after the body and the body CRC of a batch at least
/// `header.batch_len` long; returns the body.
fn check_body<'a>(batch: &'a [u8], header: &BatchHeader) -> Result<&'a [u8], ProtocolError> {
    let body_end = BATCH_HEADER_BYTES + header.body_len as usize;
    if batch[body_end..header.batch_len as usize]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(bad("padding", "padding after the body must be zero"));
    }
    let body = &batch[BATCH_HEADER_BYTES..body_end];
    let computed = crc32fast::hash(body);
    if computed != header.body_crc {
        return Err(ProtocolError::BodyCrcMismatch {
            stored: header.body_crc,
            computed,
        });
    }
    Ok(body)
}

/// Writes the broker's fields into an accepted batch and seals them with the header CRC.
pub fn stamp(batch: &mut [u8], stamp: Stamp) {
    assert!(
        batch.len() >= BATCH_HEADER_BYTES,
        "stamp on a buffer shorter than a header"
    );
    batch[28..32].copy_from_slice(&stamp.queue_id.to_le_bytes());
    batch[32..36].copy_from_slice(&stamp.topic_id.to_le_bytes());
    batch[40..48].copy_from_slice(&stamp.base_offset.to_le_bytes());
    batch[56..64].copy_from_slice(&stamp.append_timestamp_ms.to_le_bytes());
    let crc = header_crc_of(&batch[..BATCH_HEADER_BYTES]);
    batch[20..24].copy_from_slice(&crc.to_le_bytes());
}

fn access_checked(body: &[u8]) -> Result<&ArchivedRecords, ProtocolError> {
    if !(body.as_ptr() as usize).is_multiple_of(16) {
        return Err(bad(
            "body",
            "batch body is not 16-byte aligned; copy it with to_aligned first",
        ));
    }
    rkyv::access::<ArchivedRecords, rancor::Error>(body)
        .map_err(|e| ProtocolError::BadArchive(e.to_string()))
}

/// A validated stored batch, for reading its records.
pub struct BatchView<'a> {
    pub header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Validates `bytes` (one stored batch, possibly followed by more) with [`validate_stored`].
    pub fn new(bytes: &'a [u8]) -> Result<Self, ProtocolError> {
        let header = validate_stored(bytes)?;
        Ok(BatchView {
            header,
            bytes: &bytes[..header.batch_len as usize],
        })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records, with the archive checked. A consumer that verified the CRCs could skip the
    /// check; we keep it, since its cost is small next to the network.
    pub fn records(&self) -> Result<&'a ArchivedRecords, ProtocolError> {
        access_checked(
            &self.bytes[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + self.header.body_len as usize],
        )
    }
}

/// Splits a buffer of concatenated stored batches (a pull reply's data) into validated views.
pub fn split_batches(data: &[u8]) -> Result<Vec<BatchView<'_>>, ProtocolError> {
    split_with(data, BatchView::new)
}

/// [`split_batches`] for bytes that already passed it: parses headers and lengths only, no CRC.
/// Use it only on the very buffer that was checked; anything else must go through
/// [`split_batches`].
pub fn split_batches_checked_before(data: &[u8]) -> Result<Vec<BatchView<'_>>, ProtocolError> {
    split_with(data, |bytes| {
        let header = BatchHeader::parse(bytes)?;
        let len = header.batch_len as usize;
        let bytes = bytes.get(..len).ok_or(ProtocolError::Truncated {
            need: len,
            have: bytes.len(),
        })?;
        Ok(BatchView { header, bytes })
    })
}

fn split_with<'a>(
    mut data: &'a [u8],
    view: impl Fn(&'a [u8]) -> Result<BatchView<'a>, ProtocolError>,
) -> Result<Vec<BatchView<'a>>, ProtocolError> {
    let mut views = Vec::new();
    while !data.is_empty() {
        let next = view(data)?;
        data = &data[next.header.batch_len as usize..];
        views.push(next);
    }
    Ok(views)
}

/// Collects records and encodes them as one batch.
#[derive(Default)]
pub struct BatchBuilder {
    records: Vec<Record>,
    /// Sum of the records' [`Record::encoded_bytes_estimate`].
    record_bytes: usize,
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, record: Record) {
        self.record_bytes += record.encoded_bytes_estimate();
        self.records.push(record);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// A close upper estimate of the encoded size, to decide when a batch is full.
    pub fn estimated_bytes(&self) -> usize {
        BATCH_HEADER_BYTES + self.record_bytes
    }

    /// Encodes the batch and leaves the builder empty. The result is 16-byte aligned.
    pub fn finish(&mut self) -> AlignedVec<16> {
        assert!(
            !self.records.is_empty(),
            "a batch holds at least one record"
        );
        let records = std::mem::take(&mut self.records);
        self.record_bytes = 0;
        encode_batch(&records)
    }
}

/// Archives a slice of records exactly as a `Vec<Record>` would be archived, without first
/// copying the records into a `Vec`.
struct RecordSlice<'a>(&'a [Record]);

impl Archive for RecordSlice<'_> {
    type Archived = ArchivedRecords;
    type Resolver = rkyv::vec::VecResolver;

    fn resolve(&self, resolver: Self::Resolver, out: rkyv::Place<Self::Archived>) {
        ArchivedVec::resolve_from_slice(self.0, resolver, out);
    }
}

impl<S> Serialize<S> for RecordSlice<'_>
where
    S: rancor::Fallible + rkyv::ser::Allocator + rkyv::ser::Writer + ?Sized,
    Record: Serialize<S>,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        ArchivedVec::<ArchivedRecord>::serialize_from_slice(self.0, serializer)
    }
}

/// Encodes records as one batch, serializing the archive straight after a reserved header.
pub fn encode_batch(records: &[Record]) -> AlignedVec<16> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    assert!(
        records.len() <= BATCH_RECORDS_MAX as usize,
        "too many records for one batch"
    );
    let mut out = AlignedVec::<16>::with_capacity(
        BATCH_HEADER_BYTES
            + records
                .iter()
                .map(Record::encoded_bytes_estimate)
                .sum::<usize>(),
    );
    out.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);
    // Relative pointers make the archive position-independent, so it may follow the header.
    let mut out = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&RecordSlice(records), out)
        .unwrap_or_else(|e| panic!("serializing records into memory failed: {e}"));
    let body_len = out.len() - BATCH_HEADER_BYTES;
    let batch_len = BATCH_HEADER_BYTES + align_up(body_len);
    out.resize(batch_len, 0);
    let body_crc = crc32fast::hash(&out[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + body_len]);
    out[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    out[4] = BATCH_VERSION;
    out[8..12].copy_from_slice(&(batch_len as u32).to_le_bytes());
    out[12..16].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[16..20].copy_from_slice(&body_crc.to_le_bytes());
    out[24..28].copy_from_slice(&(records.len() as u32).to_le_bytes());
    out[48..56].copy_from_slice(&records[0].timestamp_ms.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u8) -> Record {
        Record {
            timestamp_ms: 1_700_000_000_000 + u64::from(i),
            key: vec![i],
            properties: vec![Property {
                name: "TAGS".into(),
                value: "a".into(),
            }],
            payload: vec![i; 100 + usize::from(i)],
        }
    }

    fn batch_of(n: u8) -> AlignedVec<16> {
        let records: Vec<Record> = (0..n).map(record).collect();
        encode_batch(&records)
    }

    /// A batch of `n` records stamped for topic 1, queue 0, from `base_offset`.
    fn stamped_batch_of(n: u8, base_offset: u64) -> AlignedVec<16> {
        let mut batch = batch_of(n);
        stamp(
            &mut batch,
            Stamp {
                topic_id: 1,
                queue_id: 0,
                base_offset,
                append_timestamp_ms: 1,
            },
        );
        batch
    }

    #[test]
    fn the_size_estimate_bounds_the_encoded_batch() {
        for n in [1usize, 2, 7, 100] {
            for (key, props, payload) in
                [(0, 0, 0), (1, 0, 5), (9, 1, 100), (3, 4, 1024), (0, 9, 1)]
            {
                let records: Vec<Record> = (0..n)
                    .map(|i| Record {
                        timestamp_ms: i as u64,
                        key: vec![1; key],
                        properties: (0..props)
                            .map(|p| Property {
                                name: "n".repeat(p + 1),
                                value: "v".repeat(p * 3),
                            })
                            .collect(),
                        payload: vec![2; payload + i % 3],
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
                    "{n} records of key {key}, {props} properties, payload {payload}: estimate {estimate} < {encoded}"
                );
            }
        }
    }

    #[test]
    fn encode_validate_stamp_read_round_trip() {
        let mut batch = batch_of(10);
        assert_eq!(batch.len() % 16, 0);
        let header = validate_incoming(&batch).unwrap();
        assert_eq!(header.record_count, 10);
        stamp(
            &mut batch,
            Stamp {
                topic_id: 7,
                queue_id: 3,
                base_offset: 1000,
                append_timestamp_ms: 5,
            },
        );
        let view = BatchView::new(&batch).unwrap();
        assert_eq!(view.header.base_offset, 1000);
        assert_eq!(view.header.end_offset(), 1010);
        assert_eq!((view.header.topic_id, view.header.queue_id), (7, 3));
        let records = view.records().unwrap();
        assert_eq!(records.len(), 10);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.payload.as_slice(), record(i as u8).payload.as_slice());
            assert_eq!(r.timestamp_ms.to_native(), record(i as u8).timestamp_ms);
        }
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
        for at in (0..20).chain(24..28).chain(BATCH_HEADER_BYTES..batch.len()) {
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
        // A valid archive of 2 records with a header that claims 3: CRC is recomputed to match.
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
}
