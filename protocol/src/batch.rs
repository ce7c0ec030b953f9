//! The record batch: the unit a producer sends, the log stores and a consumer reads, byte for
//! byte. The broker validates it, stamps a few header fields in place, and never re-encodes it.
//!
//! ```text
//! offset size field                 written by
//!   0     4   magic "SMQB"          producer
//!   4     1   version (2)           producer
//!   5     1   flags                 producer 0; the broker's filtered batches: SPARSE
//!   6     2   reserved (0)          producer
//!   8     4   batch_len             producer   header + body + zero padding to 16
//!  12     4   body_len              producer   exact rkyv archive length
//!  16     4   body_crc              producer   CRC32 of body[..body_len]
//!  20     4   header_crc            broker     CRC32 of header bytes 0..20 and 24..64
//!  24     4   record_count          producer
//!  28     4   queue_id              broker
//!  32     4   topic_id              broker
//!  36     4   span                  0; SPARSE: the queue offsets the batch covers
//!  40     8   base_offset           broker     queue offset of the first record
//!  48     8   first_timestamp_ms    producer   born time of the first record
//!  56     8   append_timestamp_ms   broker     store time of every record
//!  64     …   body: rkyv archive, then zero padding
//! ```
//!
//! Bodies: a batch a producer makes (flags 0, "dense") holds `Vec<Record>`, record `i` at queue
//! offset `base_offset + i`. A batch the broker makes for a filtered pull (flag `SPARSE`) holds
//! [`SparseBody`]: only the records that matched, each with its offset's distance from
//! `base_offset`, strictly increasing and below `span`. Sparse batches are never stored.
//!
//! Invariants: `batch_len % 16 == 0`; `batch_len == 64 + align16(body_len)`; padding is zero;
//! the body holds exactly `record_count > 0` records. The producer's `body_crc` is checked on
//! arrival, so a batch corrupted on the wire is refused; `header_crc` is computed after stamping,
//! so recovery and consumers detect a torn or corrupted header as well as a torn body.
//!
//! Versions: the version byte names the record schema. Version 1 (records without tags, keys or
//! ids) is refused with its own error, never mistaken for a torn write.

use bytes::BytesMut;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::vec::ArchivedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::limits::{align_up, BATCH_BYTES_MAX, BATCH_RECORDS_MAX};
pub use crate::record::{ArchivedProperty, ArchivedRecord, Property, Record, RecordRef};

pub const BATCH_HEADER_BYTES: usize = 64;
pub const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"SMQB");
pub const BATCH_VERSION: u8 = 2;
/// Flag bit: the body is a [`SparseBody`] (a filtered pull's batch, made by the broker).
pub const FLAG_SPARSE: u8 = 1;

pub type ArchivedRecords = ArchivedVec<ArchivedRecord>;

/// The body of a sparse batch: the records that matched a filter, with their offsets.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct SparseBody {
    /// `deltas[i]` = queue offset of `records[i]` − `base_offset`.
    pub deltas: Vec<u32>,
    pub records: Vec<Record>,
}

/// The decoded fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchHeader {
    pub flags: u8,
    pub batch_len: u32,
    pub body_len: u32,
    pub body_crc: u32,
    pub header_crc: u32,
    pub record_count: u32,
    pub queue_id: u32,
    pub topic_id: u32,
    /// Queue offsets a sparse batch covers; 0 for a dense one.
    pub span: u32,
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
        let flags = bytes[5];
        if flags & !FLAG_SPARSE != 0 || bytes[6] != 0 || bytes[7] != 0 {
            return Err(bad(
                "flags",
                format!("unknown flags {flags:#x} or reserved bytes"),
            ));
        }
        let header = BatchHeader {
            flags,
            batch_len: u32_at(bytes, 8),
            body_len: u32_at(bytes, 12),
            body_crc: u32_at(bytes, 16),
            header_crc: u32_at(bytes, 20),
            record_count: u32_at(bytes, 24),
            queue_id: u32_at(bytes, 28),
            topic_id: u32_at(bytes, 32),
            span: u32_at(bytes, 36),
            base_offset: u64_at(bytes, 40),
            first_timestamp_ms: u64_at(bytes, 48),
            append_timestamp_ms: u64_at(bytes, 56),
        };
        header.check_lengths()?;
        Ok(header)
    }

    fn check_lengths(&self) -> Result<(), ProtocolError> {
        if self.batch_len > BATCH_BYTES_MAX {
            return Err(bad(
                "batch_len",
                format!("{} exceeds {BATCH_BYTES_MAX}", self.batch_len),
            ));
        }
        let expected_len = BATCH_HEADER_BYTES + align_up(self.body_len as usize);
        if self.batch_len as usize != expected_len {
            return Err(bad(
                "batch_len",
                format!(
                    "{} but body_len {} needs {expected_len}",
                    self.batch_len, self.body_len
                ),
            ));
        }
        if self.record_count == 0 || self.record_count > BATCH_RECORDS_MAX {
            return Err(bad(
                "record_count",
                format!("{} not in 1..={BATCH_RECORDS_MAX}", self.record_count),
            ));
        }
        match (self.is_sparse(), self.span) {
            (false, 0) => Ok(()),
            (false, span) => Err(bad("span", format!("{span} in a dense batch"))),
            (true, span) if span >= self.record_count => Ok(()),
            (true, span) => Err(bad(
                "span",
                format!("{span} is less than its {} records", self.record_count),
            )),
        }
    }

    pub fn is_sparse(&self) -> bool {
        self.flags & FLAG_SPARSE != 0
    }

    /// One past the queue offset of the batch's last record (of the offsets it covers, for a
    /// sparse batch).
    pub fn end_offset(&self) -> u64 {
        let covered = if self.is_sparse() {
            self.span
        } else {
            self.record_count
        };
        self.base_offset + u64::from(covered)
    }
}

/// Reads the batch length from a header prefix without validating anything else; used to step
/// through a buffer of concatenated batches before each is validated.
pub fn peek_batch_len(bytes: &[u8]) -> Option<u32> {
    (bytes.len() >= 12).then(|| u32_at(bytes, 8))
}

/// Checks a batch as it arrives from a producer: version, no flags, header lengths, exact
/// length, zero padding, body CRC, and an rkyv-validated archive of exactly `record_count`
/// records. Nothing is trusted before this returns `Ok`.
pub fn validate_incoming(batch: &[u8]) -> Result<BatchHeader, ProtocolError> {
    check_incoming(batch).map(|(header, _)| header)
}

/// [`validate_incoming`], also returning the validated records.
fn check_incoming(batch: &[u8]) -> Result<(BatchHeader, &ArchivedRecords), ProtocolError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_sparse() {
        return Err(bad("flags", "a producer's batch cannot be sparse"));
    }
    if batch.len() != header.batch_len as usize {
        return Err(bad(
            "batch_len",
            format!("{} but the frame carries {}", header.batch_len, batch.len()),
        ));
    }
    let body = check_body(batch, &header)?;
    let records = access_checked::<ArchivedRecords>(body)?;
    if records.len() != header.record_count as usize {
        return Err(ProtocolError::RecordCountMismatch {
            count: records.len(),
            expected: header.record_count,
        });
    }
    Ok((header, records))
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

/// Writes the broker's fields into a batch and seals them with the header CRC.
fn stamp_bytes(batch: &mut [u8], stamp: Stamp) {
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

/// Stamps a batch that is not (or no longer) a [`ValidatedBatch`]: tests and tools that build
/// stored batches by hand.
pub fn stamp(batch: &mut [u8], fields: Stamp) {
    stamp_bytes(batch, fields);
}

fn access_checked<T>(body: &[u8]) -> Result<&T, ProtocolError>
where
    T: rkyv::Portable
        + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    if !(body.as_ptr() as usize).is_multiple_of(16) {
        return Err(bad(
            "body",
            "batch body is not 16-byte aligned; copy it with to_aligned first",
        ));
    }
    rkyv::access::<T, rancor::Error>(body).map_err(|e| ProtocolError::BadArchive(e.to_string()))
}

/// A producer's batch that passed [`validate_incoming`], with what the store needs from its
/// records worked out once: the tag code of each record (for the queue index). Owns the bytes,
/// so nothing can change them between validation and the append; the store stamps them in
/// place and keeps them.
pub struct ValidatedBatch {
    bytes: BytesMut,
    header: BatchHeader,
    tag_codes: Vec<i64>,
}

impl ValidatedBatch {
    /// Encodes `records` as a producer's batch, valid by construction: what a front end that
    /// translates another protocol's messages appends, without the second CRC pass and archive
    /// check that bytes from a client need. The bytes are 16-byte aligned, as the archive wants.
    /// Refused like a client's batch when the records exceed a batch's limits (count, bytes).
    pub fn encode(records: &[RecordRef<'_>]) -> Result<Self, ProtocolError> {
        if records.is_empty() || records.len() > BATCH_RECORDS_MAX as usize {
            return Err(bad(
                "record_count",
                format!("{} records, not 1..={BATCH_RECORDS_MAX}", records.len()),
            ));
        }
        let bytes = encode_batch_bytes(records);
        let header = BatchHeader::parse(&bytes)?;
        assert!(
            (bytes.as_ptr() as usize).is_multiple_of(16),
            "an encoded batch is 16-byte aligned"
        );
        Ok(ValidatedBatch {
            bytes,
            header,
            tag_codes: records
                .iter()
                .map(|r| crate::record::tag_code(r.tags))
                .collect(),
        })
    }

    /// Validates `bytes` as a producer's batch.
    pub fn new(bytes: BytesMut) -> Result<Self, ProtocolError> {
        let (header, records) = check_incoming(&bytes)?;
        let tag_codes = records.iter().map(ArchivedRecord::tag_code).collect();
        Ok(ValidatedBatch {
            header,
            tag_codes,
            bytes,
        })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The tag code of each record, in order.
    pub fn tag_codes(&self) -> &[i64] {
        &self.tag_codes
    }

    /// The records (validated in [`ValidatedBatch::new`]).
    pub fn records(&self) -> &ArchivedRecords {
        let body =
            &self.bytes[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + self.header.body_len as usize];
        // SAFETY: `body` is exactly the archive `check_incoming` validated with `rkyv::access`,
        // and `self.bytes` has not been changed since (only the header is ever stamped).
        unsafe { rkyv::access_unchecked::<ArchivedRecords>(body) }
    }

    /// Stamps the broker's fields and hands the bytes over, sealed by the header CRC.
    pub fn stamp(mut self, fields: Stamp) -> bytes::Bytes {
        stamp_bytes(&mut self.bytes, fields);
        self.bytes.freeze()
    }
}

/// The records of a stored batch, dense or sparse.
#[derive(Clone, Copy)]
pub enum Records<'a> {
    Dense(&'a ArchivedRecords),
    Sparse(&'a ArchivedSparseBody),
}

impl<'a> Records<'a> {
    pub fn len(&self) -> usize {
        match self {
            Records::Dense(r) => r.len(),
            Records::Sparse(s) => s.records.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `i` and its offset's distance from the batch's base offset.
    pub fn get(&self, i: usize) -> Option<(u64, &'a ArchivedRecord)> {
        match self {
            Records::Dense(r) => r.get(i).map(|rec| (i as u64, rec)),
            Records::Sparse(s) => {
                let delta = s.deltas.get(i)?.to_native();
                s.records.get(i).map(|rec| (u64::from(delta), rec))
            }
        }
    }

    /// `(delta, record)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &'a ArchivedRecord)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The index of the first record whose delta is at least `delta`.
    pub fn first_at_or_after(&self, delta: u64) -> usize {
        match self {
            Records::Dense(r) => delta.min(r.len() as u64) as usize,
            Records::Sparse(s) => s
                .deltas
                .iter()
                .position(|d| u64::from(d.to_native()) >= delta)
                .unwrap_or(s.records.len()),
        }
    }
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

    /// A view of a batch this process stored or validated itself (the broker reading its own
    /// hot tail or log): the header is parsed, nothing is hashed.
    pub fn trusted(bytes: &'a [u8]) -> Result<Self, ProtocolError> {
        let header = BatchHeader::parse(bytes)?;
        let bytes = bytes
            .get(..header.batch_len as usize)
            .ok_or(ProtocolError::Truncated {
                need: header.batch_len as usize,
                have: bytes.len(),
            })?;
        Ok(BatchView { header, bytes })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records, with the archive checked (and, for a sparse batch, its offsets: as many as
    /// records, strictly increasing, within the span). A consumer that verified the CRCs could
    /// skip the check; we keep it, since its cost is small next to the network.
    pub fn records(&self) -> Result<Records<'a>, ProtocolError> {
        let body =
            &self.bytes[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + self.header.body_len as usize];
        let records = if self.header.is_sparse() {
            let sparse = access_checked::<ArchivedSparseBody>(body)?;
            check_sparse(sparse, &self.header)?;
            Records::Sparse(sparse)
        } else {
            Records::Dense(access_checked::<ArchivedRecords>(body)?)
        };
        if records.len() != self.header.record_count as usize {
            return Err(ProtocolError::RecordCountMismatch {
                count: records.len(),
                expected: self.header.record_count,
            });
        }
        Ok(records)
    }

    /// The records of a batch this process stored or validated itself (the broker reading its
    /// own log): no archive check.
    pub fn records_trusted(&self) -> Records<'a> {
        let body =
            &self.bytes[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + self.header.body_len as usize];
        // SAFETY: only called on batches the broker validated in full before storing them; the
        // CRCs checked by `BatchView::new` show the bytes are the ones validated.
        unsafe {
            if self.header.is_sparse() {
                Records::Sparse(rkyv::access_unchecked::<ArchivedSparseBody>(body))
            } else {
                Records::Dense(rkyv::access_unchecked::<ArchivedRecords>(body))
            }
        }
    }
}

fn check_sparse(sparse: &ArchivedSparseBody, header: &BatchHeader) -> Result<(), ProtocolError> {
    if sparse.deltas.len() != sparse.records.len() {
        return Err(bad(
            "body",
            format!(
                "{} offsets for {} records",
                sparse.deltas.len(),
                sparse.records.len()
            ),
        ));
    }
    let mut previous: Option<u32> = None;
    for delta in sparse.deltas.iter().map(|d| d.to_native()) {
        if delta >= header.span || previous.is_some_and(|p| delta <= p) {
            return Err(bad("body", "sparse offsets must increase within the span"));
        }
        previous = Some(delta);
    }
    Ok(())
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
struct RecordSlice<'a, R = Record>(&'a [R]);

impl<R: Archive<Archived = ArchivedRecord>> Archive for RecordSlice<'_, R> {
    type Archived = ArchivedRecords;
    type Resolver = rkyv::vec::VecResolver;

    fn resolve(&self, resolver: Self::Resolver, out: rkyv::Place<Self::Archived>) {
        ArchivedVec::resolve_from_slice(self.0, resolver, out);
    }
}

impl<S, R> Serialize<S> for RecordSlice<'_, R>
where
    S: rancor::Fallible + rkyv::ser::Allocator + rkyv::ser::Writer + ?Sized,
    R: Archive<Archived = ArchivedRecord> + Serialize<S>,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        ArchivedVec::<ArchivedRecord>::serialize_from_slice(self.0, serializer)
    }
}

/// Fills in the producer's header fields of a serialized body that follows a reserved header.
fn seal(mut out: AlignedVec<16>, flags: u8, record_count: usize, first_ms: u64) -> AlignedVec<16> {
    let body_len = out.len() - BATCH_HEADER_BYTES;
    out.resize(BATCH_HEADER_BYTES + align_up(body_len), 0);
    seal_in_place(&mut out, body_len, flags, record_count, first_ms);
    out
}

/// Writes the header of a batch whose body (`body_len` bytes) and padding follow it in `out`.
fn seal_in_place(out: &mut [u8], body_len: usize, flags: u8, record_count: usize, first_ms: u64) {
    let batch_len = out.len();
    let body_crc = crc32fast::hash(&out[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + body_len]);
    out[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    out[4] = BATCH_VERSION;
    out[5] = flags;
    out[8..12].copy_from_slice(&(batch_len as u32).to_le_bytes());
    out[12..16].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[16..20].copy_from_slice(&body_crc.to_le_bytes());
    out[24..28].copy_from_slice(&(record_count as u32).to_le_bytes());
    out[48..56].copy_from_slice(&first_ms.to_le_bytes());
}

/// A `BytesMut` as the writer rkyv serializes into (positions from its start).
struct BytesWriter(BytesMut);

impl rkyv::ser::Positional for BytesWriter {
    fn pos(&self) -> usize {
        self.0.len()
    }
}

impl<E> rkyv::ser::Writer<E> for BytesWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// An empty `BytesMut` of at least `capacity` whose start is 16-byte aligned.
fn aligned_bytes(capacity: usize) -> BytesMut {
    let mut bytes = BytesMut::with_capacity(capacity + 16);
    let misalignment = bytes.as_ptr() as usize % 16;
    if misalignment != 0 {
        bytes.resize(16 - misalignment, 0);
        bytes::Buf::advance(&mut bytes, 16 - misalignment);
    }
    bytes
}

/// The batch [`encode_batch`] makes of the same records, from borrowed ones, straight into a
/// 16-byte aligned `BytesMut` (what the store keeps). The archive's layout follows positions,
/// not addresses, so if growing the buffer lost the alignment a copy into an aligned one is
/// still the same valid archive.
fn encode_batch_bytes(records: &[RecordRef<'_>]) -> BytesMut {
    let estimate: usize = records.iter().map(RecordRef::encoded_bytes_estimate).sum();
    // Room for the padding too; never more up front than a batch may hold.
    let capacity = (BATCH_HEADER_BYTES + estimate + 16).min(BATCH_BYTES_MAX as usize);
    let mut bytes = aligned_bytes(capacity);
    bytes.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);
    let writer =
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(&RecordSlice(records), BytesWriter(bytes))
            .unwrap_or_else(|e| panic!("serializing records into memory failed: {e}"));
    let mut bytes = writer.0;
    let body_len = bytes.len() - BATCH_HEADER_BYTES;
    bytes.resize(BATCH_HEADER_BYTES + align_up(body_len), 0);
    if !(bytes.as_ptr() as usize).is_multiple_of(16) {
        let mut aligned = aligned_bytes(bytes.len());
        aligned.extend_from_slice(&bytes);
        bytes = aligned;
    }
    let first_ms = records[0].born_timestamp_ms;
    seal_in_place(&mut bytes, body_len, 0, records.len(), first_ms);
    bytes
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
    let out = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&RecordSlice(records), out)
        .unwrap_or_else(|e| panic!("serializing records into memory failed: {e}"));
    seal(out, 0, records.len(), records[0].born_timestamp_ms)
}

/// Encodes the broker's batch for a filtered pull: `records[i]` at queue offset
/// `fields.base_offset + deltas[i]`, covering `span` offsets, stamped and sealed. `deltas` must
/// increase strictly and stay below `span`; there is at least one record.
pub fn encode_sparse_batch(
    deltas: Vec<u32>,
    records: Vec<Record>,
    span: u32,
    fields: Stamp,
) -> AlignedVec<16> {
    assert!(
        !records.is_empty(),
        "a sparse batch holds at least one record"
    );
    assert_eq!(deltas.len(), records.len(), "one offset per record");
    assert!(
        deltas.windows(2).all(|w| w[0] < w[1]) && deltas.last().is_some_and(|d| *d < span),
        "sparse offsets increase within the span"
    );
    let first_ms = records[0].born_timestamp_ms;
    let count = records.len();
    let body = SparseBody { deltas, records };
    let mut out = AlignedVec::<16>::new();
    out.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);
    let out = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&body, out)
        .unwrap_or_else(|e| panic!("serializing records into memory failed: {e}"));
    let mut out = seal(out, FLAG_SPARSE, count, first_ms);
    out[36..40].copy_from_slice(&span.to_le_bytes());
    stamp_bytes(&mut out, fields);
    out
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
