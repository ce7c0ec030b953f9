//! Recovery: brings a shard's files back to a consistent state before it serves anything.
//!
//! 1. List segments and index files; open the indexes.
//! 2. Read the checkpoint `P` (see `checkpoint`); without one, `P` is the log's start.
//! 3. Scan every batch from `P` to the end of the log, checking its header and body CRC. A batch
//!    that fails in the *last* segment is a torn tail: the segment is cut at the batch's start and
//!    everything after it is dropped (none of it was acknowledged under `flush = sync`, since an
//!    ack waits for the fdatasync that covers it). A failure in a sealed segment is corruption of
//!    synced data: recovery stops with an error naming the file and position rather than guess.
//! 4. Bring each queue index in line with the scanned log: append entries that lag it, replace
//!    entries that disagree, and drop entries that point past the log's end. If an index lags
//!    the checkpoint itself (its file lost entries), the scan restarts from the log's start.
//!
//! Runs once per shard, on that shard's core, before the writer task starts.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::file_io::{self, StoreFile, Writable};
use shardmq_protocol::batch::{peek_batch_len, validate_stored, BATCH_HEADER_BYTES};

use crate::checkpoint;
use crate::error::{Result, StorageError};
use crate::index::{
    release_below_first, truncate_with_file, BatchEntries, IndexEntry, Lookup, QueueIndex,
};
use crate::segment::{parse_segment_name, Segment, Segments};

/// `(topic_id, queue_id)`.
pub type QueueKey = (u32, u32);

const SCAN_READ_BYTES: usize = 4 << 20;

pub struct Recovered {
    pub segments: Segments,
    pub end: u64,
    pub indexes: BTreeMap<QueueKey, RefCell<QueueIndex>>,
    pub report: RecoveryReport,
}

#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub scanned_from: u64,
    pub batches_scanned: u64,
    pub entries_rebuilt: u64,
    /// `(segment, cut at file offset, bytes dropped)` when a torn tail was cut.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    pub index_entries_dropped: u64,
    /// Queues whose index ended before the first batch the log holds of them, so they were
    /// moved forward to it (their older batches were in deleted segments).
    pub queues_moved_forward: u64,
    /// Consumer offsets found past their queue's end and moved back to it (set by the store
    /// after recovery: records lost in a crash under `flush = async`).
    pub consumer_offsets_clamped: u64,
}

pub fn index_path(index_dir: &Path, key: QueueKey) -> PathBuf {
    index_dir.join(format!("{}-{}.idx", key.0, key.1))
}

pub(crate) fn parse_index_name(name: &str) -> Option<QueueKey> {
    let (t, q) = name.strip_suffix(".idx")?.split_once('-')?;
    Some((t.parse().ok()?, q.parse().ok()?))
}

struct Listing {
    segments: Vec<u64>,
    indexes: Vec<QueueKey>,
}

async fn list(log_dir: PathBuf, index_dir: PathBuf) -> Result<Listing> {
    glommio::executor()
        .spawn_blocking(move || -> Result<Listing> {
            file_io::create_dir_all(&log_dir).map_err(|e| StorageError::io(&log_dir, e))?;
            file_io::create_dir_all(&index_dir).map_err(|e| StorageError::io(&index_dir, e))?;
            let names = |dir: &Path| -> Result<Vec<String>> {
                let entries = file_io::list_dir(dir).map_err(|e| StorageError::io(dir, e))?;
                Ok(entries
                    .iter()
                    .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
                    .collect())
            };
            let mut segments: Vec<u64> = names(&log_dir)?
                .iter()
                .filter_map(|n| parse_segment_name(n))
                .collect();
            segments.sort_unstable();
            let indexes = names(&index_dir)?
                .iter()
                .filter_map(|n| parse_index_name(n))
                .collect();
            Ok(Listing { segments, indexes })
        })
        .await
}

pub async fn recover(shard_id: u32, dir: &Path, resident_chunks: usize) -> Result<Recovered> {
    let log_dir = dir.join("log");
    let index_dir = dir.join("index");
    let listing = list(log_dir.clone(), index_dir.clone()).await?;
    let mut indexes = BTreeMap::new();
    for key in listing.indexes {
        let index = QueueIndex::open(index_path(&index_dir, key), resident_chunks).await?;
        indexes.insert(key, RefCell::new(index));
    }
    let mut segments = Segments::default();
    for base in &listing.segments {
        segments.push(Segment::new(&log_dir, *base));
    }
    let mut report = RecoveryReport::default();
    let checkpoint = checkpoint::read(dir).await;
    let Some(first) = listing.segments.first().copied() else {
        let end = checkpoint.map_or(0, |c| c.position);
        drop_entries_past(&indexes, end, &mut report).await?;
        start_queues_at(&indexes, end).await?;
        return Ok(Recovered {
            segments,
            end,
            indexes,
            report,
        });
    };
    let start = match checkpoint {
        // Batches start 16-byte aligned: a checkpoint elsewhere was not written by the broker.
        Some(c) if c.position % 16 != 0 => {
            tracing::warn!(
                shard = shard_id,
                checkpoint = c.position,
                "the checkpoint is not at a batch boundary; scanning the whole log"
            );
            first
        }
        Some(c) if c.position >= first && indexes_cover(&indexes, &c) => c.position,
        Some(c) if c.position < first => {
            tracing::info!(shard = shard_id, checkpoint = c.position, log_start = first, "retention deleted segments after the last checkpoint; scanning from the log's start");
            first
        }
        Some(_) => {
            tracing::warn!(shard = shard_id, "an index holds fewer entries than the checkpoint recorded; re-indexing the whole log");
            first
        }
        None => first,
    };
    let mut scan = Scan {
        shard_id,
        indexes: &mut indexes,
        report: &mut report,
        index_dir: &index_dir,
        resident_chunks,
        log_start: first,
    };
    let end = match scan.run(&segments, start).await {
        Err(ScanError::IndexBehindCheckpoint) if start != first => {
            tracing::warn!(
                shard = shard_id,
                "an index lags the checkpoint; re-indexing the whole log"
            );
            for index in scan.indexes.values() {
                truncate_with_file(index, 0).await?;
            }
            scan.run(&segments, first)
                .await
                .map_err(ScanError::into_storage)?
        }
        Err(ScanError::CheckpointPastEnd) if start != first => {
            tracing::warn!(
                shard = shard_id,
                "the log ends before the checkpoint; scanning the whole log"
            );
            scan.run(&segments, first)
                .await
                .map_err(ScanError::into_storage)?
        }
        other => other.map_err(ScanError::into_storage)?,
    };
    drop_entries_past(&indexes, end, &mut report).await?;
    remove_empty_last_segment(&mut segments, end).await?;
    start_queues_at(&indexes, segments.first_base().unwrap_or(end)).await?;
    Ok(Recovered {
        segments,
        end,
        indexes,
        report,
    })
}

enum ScanError {
    Storage(StorageError),
    IndexBehindCheckpoint,
    /// The segment holding the checkpoint position is shorter than it: synced data was lost or
    /// cut outside the broker, so the checkpoint cannot be trusted.
    CheckpointPastEnd,
}

/// True when every index holds at least the entries the checkpoint says were persisted.
fn indexes_cover(
    indexes: &BTreeMap<QueueKey, RefCell<QueueIndex>>,
    checkpoint: &checkpoint::Checkpoint,
) -> bool {
    checkpoint
        .queues
        .iter()
        .all(|(key, len)| indexes.get(key).is_some_and(|i| i.borrow().len() >= *len))
}

impl ScanError {
    fn into_storage(self) -> StorageError {
        match self {
            ScanError::Storage(e) => e,
            ScanError::IndexBehindCheckpoint => {
                StorageError::Config("index lags the log start".into())
            }
            ScanError::CheckpointPastEnd => {
                StorageError::Config("log ends before its first segment".into())
            }
        }
    }
}

impl From<StorageError> for ScanError {
    fn from(e: StorageError) -> Self {
        ScanError::Storage(e)
    }
}

struct Scan<'a> {
    shard_id: u32,
    indexes: &'a mut BTreeMap<QueueKey, RefCell<QueueIndex>>,
    report: &'a mut RecoveryReport,
    index_dir: &'a Path,
    resident_chunks: usize,
    /// Where the log starts (its first segment's base).
    log_start: u64,
}

impl Scan<'_> {
    /// Scans from `start` to the end; returns the log end after any cut.
    async fn run(
        &mut self,
        segments: &Segments,
        start: u64,
    ) -> std::result::Result<u64, ScanError> {
        self.report.scanned_from = start;
        let list: Vec<_> = segments.iter().cloned().collect();
        let mut end = start;
        for (i, segment) in list.iter().enumerate() {
            let next_base = list.get(i + 1).map(|s| s.base);
            if next_base.is_some_and(|n| n <= start) {
                continue;
            }
            let file = StoreFile::open(&segment.path)
                .await
                .map_err(|e| StorageError::glommio(&segment.path, e))?;
            let size = file
                .file_size()
                .await
                .map_err(|e| StorageError::glommio(&segment.path, e))?;
            let from = start.saturating_sub(segment.base);
            if from > size {
                let _ = file.close().await;
                return Err(ScanError::CheckpointPastEnd);
            }
            let outcome = self.scan_segment(&file, segment, from, size).await;
            let _ = file.close().await;
            let valid_end = outcome?;
            end = segment.base + valid_end;
            match next_base {
                Some(next) if end != next => {
                    return Err(ScanError::Storage(StorageError::CorruptSealedSegment {
                        shard_id: self.shard_id,
                        segment: segment.path.clone(),
                        position: end,
                        reason: format!(
                            "valid data ends at {end} but the next segment starts at {next}"
                        ),
                    }));
                }
                Some(_) => {}
                None if valid_end < size => self.cut(segment, valid_end, size).await?,
                None => {}
            }
        }
        Ok(end)
    }

    /// Returns the file offset where valid batches end.
    async fn scan_segment(
        &mut self,
        file: &StoreFile,
        segment: &Segment,
        from: u64,
        size: u64,
    ) -> std::result::Result<u64, ScanError> {
        let mut at = from;
        while at < size {
            let want = (SCAN_READ_BYTES as u64).min(size - at) as usize;
            let window = file
                .read_at(at, want)
                .await
                .map_err(|e| StorageError::glommio(&segment.path, e))?;
            let mut consumed = 0usize;
            loop {
                let rest = &window[consumed..];
                if rest.len() < BATCH_HEADER_BYTES {
                    break;
                }
                let Some(len) = peek_batch_len(rest) else {
                    break;
                };
                // A torn tail may hold any length: never read more than a batch can be.
                if len < BATCH_HEADER_BYTES as u32
                    || len > shardmq_protocol::limits::BATCH_BYTES_MAX
                {
                    tracing::info!(shard = self.shard_id, segment = %segment.path.display(), offset = at + consumed as u64, len, "log ends at an impossible batch length");
                    return Ok(at + consumed as u64);
                }
                let len = len as usize;
                if len > rest.len() {
                    if consumed == 0 && (at + len as u64) <= size && len > window.len() {
                        // A batch larger than the scan window: read it whole.
                        let whole = file
                            .read_at(at, len)
                            .await
                            .map_err(|e| StorageError::glommio(&segment.path, e))?;
                        match self.check_stored(&whole, segment, at)? {
                            Some(header) => {
                                let tags = tag_codes_of(&whole, &header);
                                self.index_batch(segment.base + at, &header, &tags).await?;
                                consumed = len;
                            }
                            None => return Ok(at),
                        }
                    }
                    break;
                }
                let offset = at + consumed as u64;
                match self.check_stored(rest, segment, offset)? {
                    Some(header) => {
                        let tags = tag_codes_of(rest, &header);
                        self.index_batch(segment.base + offset, &header, &tags)
                            .await?;
                        consumed += header.batch_len as usize;
                    }
                    None => return Ok(offset),
                }
            }
            if consumed == 0 {
                return Ok(at); // a partial header or batch at the very end
            }
            at += consumed as u64;
        }
        Ok(at)
    }

    /// The header of the stored batch at the start of `bytes` (file offset `offset`), `None`
    /// where the valid log ends (a torn or garbage tail), or an error for a batch of a format
    /// this build does not read: recovery must not cut data it does not understand.
    fn check_stored(
        &self,
        bytes: &[u8],
        segment: &Segment,
        offset: u64,
    ) -> std::result::Result<Option<shardmq_protocol::BatchHeader>, ScanError> {
        match validate_stored(bytes) {
            Ok(header) if !header.is_sparse() => Ok(Some(header)),
            Err(shardmq_protocol::ProtocolError::BadVersion(version)) => {
                Err(ScanError::Storage(StorageError::UnsupportedFormat {
                    path: segment.path.clone(),
                    position: offset,
                    what: format!(
                        "a batch of format version {version} (this build reads version {})",
                        shardmq_protocol::batch::BATCH_VERSION
                    ),
                }))
            }
            Ok(_) => {
                tracing::info!(shard = self.shard_id, segment = %segment.path.display(), offset, "log ends at a sparse batch, which is never stored");
                Ok(None)
            }
            Err(reason) => {
                tracing::info!(shard = self.shard_id, segment = %segment.path.display(), offset, %reason, "log ends at an invalid batch");
                Ok(None)
            }
        }
    }

    async fn index_batch(
        &mut self,
        position: u64,
        header: &shardmq_protocol::BatchHeader,
        tag_codes: &[i64],
    ) -> std::result::Result<(), ScanError> {
        self.report.batches_scanned += 1;
        let key = (header.topic_id, header.queue_id);
        let (index_dir, resident_chunks) = (self.index_dir, self.resident_chunks);
        // A queue whose index file never got written gets an index built from the log.
        let index = self.indexes.entry(key).or_insert_with(|| {
            RefCell::new(QueueIndex::new(index_path(index_dir, key), resident_chunks))
        });
        let have = index.borrow().len();
        let base = header.base_offset;
        if have < base {
            if self.report.scanned_from != self.log_start {
                return Err(ScanError::IndexBehindCheckpoint);
            }
            // The log holds this queue only from `base` on: what came before was in deleted
            // segments (or the index file lost it with them).
            tracing::info!(
                shard = self.shard_id,
                topic_id = key.0,
                queue_id = key.1,
                index_had = have,
                starts_at = base,
                "the log holds the queue from a later offset; its index continues there"
            );
            index.borrow_mut().skip_to(base);
            self.report.queues_moved_forward += 1;
        } else if have > base {
            if indexed_whole(index, base, position, header).await? {
                return Ok(());
            }
            truncate_with_file(index, base).await?;
        }
        index.borrow_mut().push_batch(&BatchEntries {
            position,
            batch_len: header.batch_len,
            tag_codes,
            store_ms: header.append_timestamp_ms,
        });
        self.report.entries_rebuilt += u64::from(header.record_count);
        Ok(())
    }

    async fn cut(&mut self, segment: &Segment, valid_end: u64, size: u64) -> Result<()> {
        tracing::warn!(shard = self.shard_id, segment = %segment.path.display(), cut_at = valid_end, dropped = size - valid_end, "cutting torn log tail");
        let file = StoreFile::open_writable(&segment.path, Writable::EXISTING)
            .await
            .map_err(|e| StorageError::glommio(&segment.path, e))?;
        file.truncate(valid_end)
            .await
            .map_err(|e| StorageError::glommio(&segment.path, e))?;
        file.fdatasync()
            .await
            .map_err(|e| StorageError::glommio(&segment.path, e))?;
        let _ = file.close().await;
        self.report.torn_tail = Some((segment.path.clone(), valid_end, size - valid_end));
        Ok(())
    }
}

/// The tag code of each record of a stored batch that passed `validate_stored` (its CRCs show it
/// is the batch the broker validated in full before storing it).
fn tag_codes_of(bytes: &[u8], header: &shardmq_protocol::BatchHeader) -> Vec<i64> {
    let view = shardmq_protocol::BatchView::new(bytes)
        .unwrap_or_else(|e| panic!("a batch that just passed validation fails it: {e}"));
    let codes: Vec<i64> = view
        .records_trusted()
        .iter()
        .map(|(_, record)| record.tag_code())
        .collect();
    assert_eq!(
        codes.len(),
        header.record_count as usize,
        "stored record count"
    );
    codes
}

/// The entry at `offset`, loading its chunk from disk when it was evicted. An offset that
/// retention moved the queue's start past while the caller was planning (it checked the offset
/// before an await) is [`StorageError::PositionDeleted`]; an empty slot at or past the start is
/// a damaged index file (recovery trusts entries below the checkpoint; found by the recovery
/// fuzz target): [`StorageError::CorruptIndexEntry`], logged, for that read.
pub async fn entry_at(index: &RefCell<QueueIndex>, offset: u64) -> Result<IndexEntry> {
    match probe_at(index, offset).await? {
        Some(entry) => Ok(entry),
        None if offset < index.borrow().first() => Err(StorageError::PositionDeleted(offset)),
        None => {
            let index = index.borrow();
            let reason = format!(
                "index {} has an empty slot at offset {offset} in [{}, {})",
                index.path().display(),
                index.first(),
                index.len()
            );
            tracing::error!(%reason, "a queue index is damaged; this read fails");
            Err(StorageError::CorruptIndexEntry {
                position: 0,
                reason,
            })
        }
    }
}

/// Whether the index holds every entry of the batch at `position` (offsets `base..`), each
/// naming it. Not only the first: a torn chunk write can keep some of a batch's entries and
/// lose (or leave stale) the others.
async fn indexed_whole(
    index: &RefCell<QueueIndex>,
    base: u64,
    position: u64,
    header: &shardmq_protocol::BatchHeader,
) -> Result<bool> {
    let end = base + u64::from(header.record_count);
    if index.borrow().len() < end {
        return Ok(false);
    }
    for offset in base..end {
        let entry = probe_at(index, offset).await?;
        if !entry.is_some_and(|e| e.position == position && e.batch_len == header.batch_len) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The entry at `offset`, or `None` for an empty slot (below the queue's start, or an index
/// recovery is still checking).
pub async fn probe_at(index: &RefCell<QueueIndex>, offset: u64) -> Result<Option<IndexEntry>> {
    loop {
        let loader = match index.borrow().get(offset) {
            Lookup::Hit(entry) => return Ok(Some(entry)),
            Lookup::Empty => return Ok(None),
            Lookup::Evicted(chunk_no) => (chunk_no, index.borrow().chunk_loader(chunk_no)),
        };
        let (reader, bytes) = loader.1.await?;
        index.borrow_mut().insert_loaded(loader.0, reader, bytes);
    }
}

/// The first offset in `[from, len)` whose entry is filled and satisfies `at_or_after` (which
/// must be monotone over filled entries; empty slots only precede them), or `len`.
pub async fn first_offset_where(
    index: &RefCell<QueueIndex>,
    from: u64,
    at_or_after: impl Fn(&IndexEntry) -> bool,
) -> Result<u64> {
    let len = index.borrow().len();
    search_between(index, from, len, &at_or_after).await
}

/// The binary search of [`first_offset_where`] within `[lo, hi)`.
async fn search_between(
    index: &RefCell<QueueIndex>,
    mut lo: u64,
    mut hi: u64,
    at_or_after: &impl Fn(&IndexEntry) -> bool,
) -> Result<u64> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match probe_at(index, mid).await? {
            Some(entry) if at_or_after(&entry) => hi = mid,
            _ => lo = mid + 1,
        }
    }
    Ok(lo)
}

/// Drops index entries that point at or past the log's end (written after the log was torn).
async fn drop_entries_past(
    indexes: &BTreeMap<QueueKey, RefCell<QueueIndex>>,
    end: u64,
    report: &mut RecoveryReport,
) -> Result<()> {
    for index in indexes.values() {
        let len = index.borrow().len();
        if len == 0
            || probe_at(index, len - 1)
                .await?
                .is_none_or(|e| e.position < end)
        {
            continue;
        }
        // Entries are in position order: find the first one at or past `end`.
        let cut = first_offset_where(index, 0, |e| e.position >= end).await?;
        report.index_entries_dropped += len - cut;
        truncate_with_file(index, cut).await?;
    }
    Ok(())
}

/// [`first_offset_where`] for an answer expected near `from`: steps of 1, 2, 4, … from it, then
/// a binary search in the last step. O(log(answer − from)) lookups that stay in the chunks
/// near `from`, where a plain binary search over the queue would load chunks all over it.
pub async fn gallop_first_where(
    index: &RefCell<QueueIndex>,
    from: u64,
    at_or_after: impl Fn(&IndexEntry) -> bool,
) -> Result<u64> {
    let len = index.borrow().len();
    let (mut lo, mut step) = (from, 1u64);
    loop {
        let probe = lo.saturating_add(step);
        if probe >= len {
            break;
        }
        match probe_at(index, probe).await? {
            Some(entry) if at_or_after(&entry) => break,
            _ => {
                lo = probe;
                step = step.saturating_mul(2);
            }
        }
    }
    search_between(index, lo, lo.saturating_add(step).min(len), &at_or_after).await
}

/// Sets each queue's start to its first entry at or past the log's start `log_start` (what lies
/// before was deleted by retention) and releases the index chunks below it.
async fn start_queues_at(
    indexes: &BTreeMap<QueueKey, RefCell<QueueIndex>>,
    log_start: u64,
) -> Result<()> {
    for index in indexes.values() {
        let first = first_offset_where(index, 0, |e| e.position >= log_start).await?;
        index.borrow_mut().advance_first(first);
        release_below_first(index).await?;
    }
    Ok(())
}

async fn remove_empty_last_segment(segments: &mut Segments, end: u64) -> Result<()> {
    if segments.last_base() == Some(end) {
        let path = segments.iter().last().map(|s| s.path.clone());
        if let Some(path) = path {
            file_io::remove(&path)
                .await
                .map_err(|e| StorageError::glommio(&path, e))?;
        }
        let kept: Vec<_> = segments
            .iter()
            .filter(|s| s.base != end)
            .map(|s| s.base)
            .collect();
        let log_dir = segments
            .iter()
            .next()
            .and_then(|s| s.path.parent().map(Path::to_path_buf));
        *segments = Segments::default();
        if let Some(log_dir) = log_dir {
            for base in kept {
                segments.push(Segment::new(&log_dir, base));
            }
        }
    }
    Ok(())
}
