//! Per-queue index, RocketMQ's ConsumeQueue: entry `n` says where the batch holding the queue's
//! record `n` starts in the shard log, so a consumer seeks by queue offset in O(1); it also holds
//! the record's tag code and store time (bytes: `index_format`).
//!
//! Offsets below [`QueueIndex::first`] are gone: retention deleted the segments their batches
//! were in (or recovery found the log starting past them). Their chunks leave memory, and the
//! file ranges of whole chunks below it are punched out (`release_chunks_below_first`); a lookup
//! below `first` is a caller's bug. `first` is not stored: recovery derives it from where the
//! log starts.
//!
//! The entry count is recovered from the last chunk in the file: its entries are the run of
//! filled slots that starts at its first filled slot (a queue whose start recovery moved
//! forward has empty slots before its first entry; slots after the run are stale, from a torn
//! chunk write).
//!
//! Memory: up to `resident_max` chunks stay in memory per queue. A chunk is evicted only once
//! persisted, and the tail chunk is never evicted; a lookup that misses loads the chunk back.
//!
//! The index is derived data: the log is the truth, and recovery rebuilds entries that lag it
//! and drops entries that point past it; a file in another format is rebuilt whole. Runs on its
//! shard's core only.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::file_io::{StoreFile, Writable};

use crate::error::{Result, StorageError};
use crate::index_format::{
    chunk_position, chunks_in, header_block, header_is_current, INDEX_HEADER_BYTES,
};
pub use crate::index_format::{
    IndexEntry, INDEX_CHUNK_BYTES, INDEX_CHUNK_ENTRIES, INDEX_ENTRY_BYTES,
};
use crate::visibility::UnsyncedBatches;

struct Chunk {
    bytes: Box<[u8]>,
    /// Entries of this chunk that are in the file.
    persisted: u64,
    /// Tick of the last lookup, for least-recently-used eviction.
    last_used: Cell<u64>,
}

impl Chunk {
    fn new(bytes: Box<[u8]>, persisted: u64) -> Chunk {
        Chunk {
            bytes,
            persisted,
            last_used: Cell::new(0),
        }
    }

    fn empty() -> Chunk {
        Chunk::new(vec![0u8; INDEX_CHUNK_BYTES].into_boxed_slice(), 0)
    }
}

/// The index entries of one stored batch: where it is, and per record its tag code.
pub struct BatchEntries<'a> {
    pub position: u64,
    pub batch_len: u32,
    /// One per record, in order.
    pub tag_codes: &'a [i64],
    pub store_ms: u64,
}

/// What a lookup found.
pub enum Lookup {
    Hit(IndexEntry),
    /// An empty slot: only below `first` or in a file recovery is still checking.
    Empty,
    /// The chunk is on disk only: load it with [`QueueIndex::load_chunk`] and retry.
    Evicted(u64),
}

/// A chunk write the store must perform, produced by [`QueueIndex::dirty_chunks`].
pub struct ChunkWrite {
    pub chunk_no: u64,
    pub entries: u64,
    pub bytes: Vec<u8>,
}

pub struct QueueIndex {
    path: PathBuf,
    file: Option<Rc<StoreFile>>,
    /// Read-only handle for loading evicted chunks, opened on first use.
    reader: Option<Rc<StoreFile>>,
    len: u64,
    /// The queue's lowest offset still stored (see the module doc).
    first: u64,
    /// Chunks below this one were released (punched out of the file).
    released_below: u64,
    chunks: BTreeMap<u64, Chunk>,
    resident_max: usize,
    tick: Cell<u64>,
    /// Chunks were written since the last fdatasync of the file.
    unsynced: bool,
    /// Serializes [`persist`] calls (background flush and checkpoint): two writes of one chunk
    /// completing out of order could leave the older copy in the file.
    persist_lock: Rc<glommio::sync::Semaphore>,
    /// The queue was deleted: [`persist`] writes nothing more (a checkpoint that took this
    /// index before the delete would otherwise recreate the file after its removal).
    deleted: bool,
    /// The queue's batches not yet known synced, kept by the store under `flush = sync` (what
    /// a reader may see: `visibility`).
    pub(crate) unsynced_batches: UnsyncedBatches,
}

async fn open_rw(path: &PathBuf) -> Result<StoreFile> {
    StoreFile::open_writable(path, Writable::READ_CREATE)
        .await
        .map_err(|e| StorageError::glommio(path, e))
}

impl QueueIndex {
    pub fn new(path: PathBuf, resident_max: usize) -> Self {
        assert!(
            resident_max >= 2,
            "an index keeps at least two chunks resident"
        );
        QueueIndex {
            path,
            file: None,
            reader: None,
            len: 0,
            first: 0,
            released_below: 0,
            chunks: BTreeMap::new(),
            resident_max,
            tick: Cell::new(0),
            unsynced: false,
            persist_lock: Rc::new(glommio::sync::Semaphore::new(1)),
            deleted: false,
            unsynced_batches: UnsyncedBatches::default(),
        }
    }

    /// Opens an index file and recovers its entry count from the last chunk. A file in another
    /// format (or without a header) is emptied, for recovery to rebuild from the log.
    pub async fn open(path: PathBuf, resident_max: usize) -> Result<Self> {
        let file = open_rw(&path).await?;
        let size = file
            .file_size()
            .await
            .map_err(|e| StorageError::glommio(&path, e))?;
        let mut index = QueueIndex::new(path, resident_max);
        let header_ok = size >= INDEX_HEADER_BYTES as u64
            && header_is_current(
                &file
                    .read_at(0, INDEX_HEADER_BYTES)
                    .await
                    .map_err(|e| StorageError::glommio(&index.path, e))?,
            );
        if !header_ok {
            if size > 0 {
                tracing::warn!(path = %index.path.display(), size, "index file is in another format; it is rebuilt from the log");
            }
            write_header(&file, &index.path).await?;
        }
        let chunk_count = if header_ok { chunks_in(size) } else { 0 };
        index.file = Some(Rc::new(file));
        if chunk_count > 0 {
            let last = chunk_count - 1;
            let mut bytes = index.read_chunk(last).await?;
            let filled = filled_run_end(&bytes);
            index.len = last * INDEX_CHUNK_ENTRIES + filled;
            // Slots after the run are stale (a torn chunk write): never trust or rewrite them.
            bytes[filled as usize * INDEX_ENTRY_BYTES..].fill(0);
            index.chunks.insert(last, Chunk::new(bytes, filled));
        }
        Ok(index)
    }

    async fn read_chunk(&self, chunk_no: u64) -> Result<Box<[u8]>> {
        let file = self.file.clone().ok_or_else(|| StorageError::Glommio {
            path: self.path.clone(),
            message: "index chunk evicted before its file was opened".into(),
        })?;
        Self::read_chunk_from(&file, &self.path, chunk_no).await
    }

    async fn read_chunk_from(file: &StoreFile, path: &PathBuf, chunk_no: u64) -> Result<Box<[u8]>> {
        let pos = chunk_position(chunk_no);
        let read = file
            .read_at(pos, INDEX_CHUNK_BYTES)
            .await
            .map_err(|e| StorageError::glommio(path, e))?;
        let mut bytes = vec![0u8; INDEX_CHUNK_BYTES].into_boxed_slice();
        bytes[..read.len()].copy_from_slice(&read);
        Ok(bytes)
    }

    /// Number of entries = the queue's next offset.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The queue's lowest offset still stored; `first == len` when nothing is.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Moves the queue's start forward to `to` (retention deleted what lies before it). Chunks
    /// wholly below it leave memory.
    pub fn advance_first(&mut self, to: u64) {
        assert!(
            to <= self.len,
            "index {}: start {to} past the end {}",
            self.path.display(),
            self.len
        );
        if to <= self.first {
            return;
        }
        self.first = to;
        let first_chunk = to / INDEX_CHUNK_ENTRIES;
        self.chunks.retain(|no, _| *no >= first_chunk);
    }

    /// Recovery found the log holding this queue's batches only from `offset` on, past the
    /// index's end: the entries between were in deleted segments (or lost with the index file).
    /// The queue continues at `offset`, which becomes its start.
    pub fn skip_to(&mut self, offset: u64) {
        assert!(offset > self.len, "skip_to must move past the end");
        let chunk_no = offset / INDEX_CHUNK_ENTRIES;
        self.chunks.retain(|no, _| *no >= chunk_no);
        if let Some(chunk) = self.chunks.get_mut(&chunk_no) {
            // Slots before the new start are gone; empty, they let `open` find the run again.
            let keep_from = (offset % INDEX_CHUNK_ENTRIES) as usize * INDEX_ENTRY_BYTES;
            chunk.bytes[..keep_from].fill(0);
            chunk.persisted = 0;
        }
        self.len = offset;
        self.first = offset;
    }

    /// The chunk range `[from, to)` that lies wholly below `first` and was not released yet,
    /// for the caller to punch out of the file; marks it released. The file's last chunk is
    /// never released: `open` counts entries from it.
    pub fn release_chunks_below_first(&mut self) -> Option<(u64, u64)> {
        let last_in_file = self.len.saturating_sub(1) / INDEX_CHUNK_ENTRIES;
        let to = (self.first / INDEX_CHUNK_ENTRIES).min(last_in_file);
        if to <= self.released_below {
            return None;
        }
        let from = std::mem::replace(&mut self.released_below, to);
        self.chunks.retain(|no, _| *no >= to);
        Some((from, to))
    }

    pub fn push(&mut self, entry: IndexEntry) {
        assert!(entry.batch_len > 0, "index entry for an empty batch");
        let chunk_no = self.len / INDEX_CHUNK_ENTRIES;
        let at = (self.len % INDEX_CHUNK_ENTRIES) as usize * INDEX_ENTRY_BYTES;
        let chunk = self.chunks.entry(chunk_no).or_insert_with(Chunk::empty);
        entry.encode(&mut chunk.bytes[at..at + INDEX_ENTRY_BYTES]);
        self.len += 1;
        if at == 0 {
            // Residency only grows when a chunk starts.
            self.evict();
        }
    }

    /// Pushes the entries of one batch, one per record: one chunk lookup per chunk the batch
    /// spans, not one per record. Same entries and eviction points as a [`push`] per record.
    ///
    /// [`push`]: QueueIndex::push
    pub fn push_batch(&mut self, batch: &BatchEntries<'_>) {
        assert!(batch.batch_len > 0, "index entry for an empty batch");
        let count = batch.tag_codes.len() as u32;
        let mut delta = 0u32;
        while delta < count {
            let chunk_no = self.len / INDEX_CHUNK_ENTRIES;
            let first = (self.len % INDEX_CHUNK_ENTRIES) as usize;
            let room = INDEX_CHUNK_ENTRIES as usize - first;
            let n = ((count - delta) as usize).min(room);
            let chunk = self.chunks.entry(chunk_no).or_insert_with(Chunk::empty);
            let slots =
                &mut chunk.bytes[first * INDEX_ENTRY_BYTES..(first + n) * INDEX_ENTRY_BYTES];
            let tags = &batch.tag_codes[delta as usize..delta as usize + n];
            for (i, (slot, tag_code)) in slots
                .chunks_exact_mut(INDEX_ENTRY_BYTES)
                .zip(tags)
                .enumerate()
            {
                let entry = IndexEntry {
                    position: batch.position,
                    batch_len: batch.batch_len,
                    delta: delta + i as u32,
                    tag_code: *tag_code,
                    store_ms: batch.store_ms,
                };
                entry.encode(slot);
            }
            self.len += n as u64;
            delta += n as u32;
            if first == 0 {
                // Residency only grows when a chunk starts.
                self.evict();
            }
        }
    }

    pub fn get(&self, offset: u64) -> Lookup {
        assert!(offset < self.len, "index lookup past the end");
        if offset < self.first && offset / INDEX_CHUNK_ENTRIES < self.released_below {
            return Lookup::Empty;
        }
        let chunk_no = offset / INDEX_CHUNK_ENTRIES;
        let Some(chunk) = self.chunks.get(&chunk_no) else {
            return Lookup::Evicted(chunk_no);
        };
        self.tick.set(self.tick.get() + 1);
        chunk.last_used.set(self.tick.get());
        let at = (offset % INDEX_CHUNK_ENTRIES) as usize * INDEX_ENTRY_BYTES;
        match IndexEntry::decode(&chunk.bytes[at..at + INDEX_ENTRY_BYTES]) {
            Some(entry) => Lookup::Hit(entry),
            None => Lookup::Empty,
        }
    }

    /// Loads an evicted chunk; the caller then calls [`QueueIndex::insert_loaded`]. Split in two so
    /// no borrow of the index is held across the disk read.
    ///
    /// Reads go through a read-only handle opened once and kept (as segment readers are): DMA
    /// reads through the read-write handle the chunks are written with, and `spawn_blocking`
    /// reads, were both seen to complete only at the executor's next timer under glommio 0.9
    /// (stalls of up to the checkpoint interval).
    pub fn chunk_loader(
        &self,
        chunk_no: u64,
    ) -> impl std::future::Future<Output = Result<(Rc<StoreFile>, Box<[u8]>)>> {
        let reader = self.reader.clone();
        let path = self.path.clone();
        async move {
            let reader = match reader {
                Some(reader) => reader,
                None => Rc::new(
                    StoreFile::open(&path)
                        .await
                        .map_err(|e| StorageError::glommio(&path, e))?,
                ),
            };
            let bytes = Self::read_chunk_from(&reader, &path, chunk_no).await?;
            Ok((reader, bytes))
        }
    }

    pub fn insert_loaded(&mut self, chunk_no: u64, reader: Rc<StoreFile>, bytes: Box<[u8]>) {
        self.reader.get_or_insert(reader);
        if self.chunks.contains_key(&chunk_no) {
            return;
        }
        let persisted =
            INDEX_CHUNK_ENTRIES.min(self.len.saturating_sub(chunk_no * INDEX_CHUNK_ENTRIES));
        let chunk = Chunk::new(bytes, persisted);
        self.tick.set(self.tick.get() + 1);
        chunk.last_used.set(self.tick.get());
        self.chunks.insert(chunk_no, chunk);
        // Never evict the chunk just loaded: its caller is about to read it. (Evicting it made
        // the lookup loop reload it until a checkpoint persisted the other chunks: a 2 s stall.)
        self.evict_except(Some(chunk_no));
    }

    fn evict(&mut self) {
        self.evict_except(None);
    }

    fn evict_except(&mut self, keep: Option<u64>) {
        let tail = self.len / INDEX_CHUNK_ENTRIES;
        while self.chunks.len() > self.resident_max {
            let victim = self
                .chunks
                .iter()
                .filter(|(no, c)| {
                    **no < tail && c.persisted == INDEX_CHUNK_ENTRIES && Some(**no) != keep
                })
                .min_by_key(|(_, c)| c.last_used.get())
                .map(|(no, _)| *no);
            match victim {
                Some(no) => {
                    self.chunks.remove(&no);
                }
                None => break, // nothing persisted yet; the index flusher makes room
            }
        }
    }

    /// Copies of every chunk holding entries not yet in the file.
    pub fn dirty_chunks(&self) -> Vec<ChunkWrite> {
        self.chunks
            .iter()
            .filter_map(|(no, chunk)| {
                let entries =
                    INDEX_CHUNK_ENTRIES.min(self.len.saturating_sub(no * INDEX_CHUNK_ENTRIES));
                (entries > chunk.persisted).then(|| ChunkWrite {
                    chunk_no: *no,
                    entries,
                    bytes: chunk.bytes.to_vec(),
                })
            })
            .collect()
    }

    pub fn mark_persisted(&mut self, chunk_no: u64, entries: u64) {
        if let Some(chunk) = self.chunks.get_mut(&chunk_no) {
            chunk.persisted = chunk.persisted.max(entries);
        }
        self.evict();
    }

    /// The index file, opened (created, with its header) on first use.
    pub async fn file(path: PathBuf, current: Option<Rc<StoreFile>>) -> Result<Rc<StoreFile>> {
        if let Some(file) = current {
            return Ok(file);
        }
        let file = open_rw(&path).await?;
        let size = file
            .file_size()
            .await
            .map_err(|e| StorageError::glommio(&path, e))?;
        if size < INDEX_HEADER_BYTES as u64 {
            write_header(&file, &path).await?;
        }
        Ok(Rc::new(file))
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    pub fn current_file(&self) -> Option<Rc<StoreFile>> {
        self.file.clone()
    }

    /// The file to fdatasync if chunks were written since the last sync; clears the mark (a
    /// write that lands during that sync marks it again for the next checkpoint).
    pub fn take_unsynced_file(&mut self) -> Option<Rc<StoreFile>> {
        if !std::mem::take(&mut self.unsynced) {
            return None;
        }
        self.file.clone()
    }

    /// Marks the queue deleted, once no [`persist`] is in flight, and gives back its files to
    /// close: nothing writes the index file after this returns.
    pub async fn retire(index: &std::cell::RefCell<QueueIndex>) -> Vec<Rc<StoreFile>> {
        let lock = index.borrow().persist_lock.clone();
        // A closed lock has no persist in flight either.
        let _permit = lock.acquire_permit(1).await;
        let mut index = index.borrow_mut();
        index.deleted = true;
        index.take_files()
    }

    /// Every open handle (writer and reader), for closing at shutdown.
    pub fn take_files(&mut self) -> Vec<Rc<StoreFile>> {
        self.file
            .take()
            .into_iter()
            .chain(self.reader.take())
            .collect()
    }

    pub fn set_file(&mut self, file: Rc<StoreFile>) {
        self.file = Some(file);
    }

    /// Drops entries at and after `new_len` (recovery: entries that point past the log's end).
    /// The file is cut to whole chunks and the tail chunk is marked for rewriting.
    pub fn truncate(&mut self, new_len: u64) {
        assert!(new_len <= self.len, "index truncate past the end");
        if new_len == self.len {
            return;
        }
        let tail_chunk = new_len / INDEX_CHUNK_ENTRIES;
        self.chunks.retain(|no, _| *no <= tail_chunk);
        self.first = self.first.min(new_len);
        self.released_below = self.released_below.min(tail_chunk);
        let chunk = self.chunks.entry(tail_chunk).or_insert_with(Chunk::empty);
        let keep = (new_len % INDEX_CHUNK_ENTRIES) as usize * INDEX_ENTRY_BYTES;
        chunk.bytes[keep..].fill(0);
        chunk.persisted = 0;
        self.len = new_len;
    }

    /// Size the file must be cut to after [`QueueIndex::truncate`]: the header and the whole
    /// chunks before the tail.
    pub fn file_bytes_to_keep(&self) -> u64 {
        chunk_position(self.len / INDEX_CHUNK_ENTRIES)
    }

    pub fn resident_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// True when enough full chunks wait to be written that memory would grow past the resident
    /// bound: the store then persists this index in the background, without waiting for the
    /// next checkpoint.
    pub fn needs_flush(&self) -> bool {
        let tail = self.len / INDEX_CHUNK_ENTRIES;
        let unpersisted_full = self
            .chunks
            .iter()
            .filter(|(no, c)| **no < tail && c.persisted < INDEX_CHUNK_ENTRIES)
            .count();
        unpersisted_full * 2 >= self.resident_max
    }
}

/// One past the last slot of the run of filled slots that starts at the chunk's first filled
/// slot; 0 for a chunk with none.
fn filled_run_end(bytes: &[u8]) -> u64 {
    let filled = |i: &u64| {
        let at = *i as usize * INDEX_ENTRY_BYTES;
        IndexEntry::decode(&bytes[at..at + INDEX_ENTRY_BYTES]).is_some()
    };
    let Some(start) = (0..INDEX_CHUNK_ENTRIES).find(filled) else {
        return 0;
    };
    (start..INDEX_CHUNK_ENTRIES)
        .find(|i| !filled(i))
        .unwrap_or(INDEX_CHUNK_ENTRIES)
}

/// Punches the chunks below the queue's start out of its file (they stay readable as empty
/// slots, take no disk space, and keep later chunks where they are).
pub async fn release_below_first(index: &std::cell::RefCell<QueueIndex>) -> Result<()> {
    let Some((from, to)) = index.borrow_mut().release_chunks_below_first() else {
        return Ok(());
    };
    let (file, path) = {
        let index = index.borrow();
        (index.current_file(), index.path().clone())
    };
    let Some(file) = file else {
        return Ok(());
    };
    let bytes = (to - from) * INDEX_CHUNK_BYTES as u64;
    file.deallocate(chunk_position(from), bytes)
        .await
        .map_err(|e| StorageError::glommio(&path, e))
}

/// Writes every dirty chunk of `index` (borrowed only between awaits) and returns the file, so
/// the caller can sync it.
pub async fn persist(index: &std::cell::RefCell<QueueIndex>) -> Result<Option<Rc<StoreFile>>> {
    let lock = index.borrow().persist_lock.clone();
    let _permit = lock
        .acquire_permit(1)
        .await
        .map_err(|_| StorageError::Glommio {
            path: index.borrow().path().clone(),
            message: "index persist lock closed".into(),
        })?;
    if index.borrow().deleted {
        return Ok(None);
    }
    let (writes, path, current) = {
        let index = index.borrow();
        (
            index.dirty_chunks(),
            index.path().clone(),
            index.current_file(),
        )
    };
    if writes.is_empty() {
        return Ok(None);
    }
    let file = QueueIndex::file(path.clone(), current).await?;
    index.borrow_mut().set_file(file.clone());
    // Open the read handle here, in background work, rather than on the first chunk load of a
    // pull: a glommio open was seen to stall the request that made it for seconds.
    if index.borrow().reader.is_none() {
        let reader = Rc::new(
            StoreFile::open(&path)
                .await
                .map_err(|e| StorageError::glommio(&path, e))?,
        );
        index.borrow_mut().reader.get_or_insert(reader);
    }
    for write in writes {
        let mut buffer = file.alloc_dma_buffer(INDEX_CHUNK_BYTES);
        buffer.as_bytes_mut().copy_from_slice(&write.bytes);
        file.write_at(buffer, chunk_position(write.chunk_no))
            .await
            .map_err(|e| StorageError::glommio(&path, e))?;
        let mut index = index.borrow_mut();
        index.mark_persisted(write.chunk_no, write.entries);
        // The next checkpoint must fdatasync this file before it claims these entries.
        index.unsynced = true;
    }
    Ok(Some(file))
}

/// Writes the header block of a new (or emptied) index file, which is cut to it.
async fn write_header(file: &StoreFile, path: &PathBuf) -> Result<()> {
    file.truncate(0)
        .await
        .map_err(|e| StorageError::glommio(path, e))?;
    let mut block = file.alloc_dma_buffer(INDEX_HEADER_BYTES);
    block.as_bytes_mut().copy_from_slice(&header_block());
    file.write_at(block, 0)
        .await
        .map_err(|e| StorageError::glommio(path, e))?;
    Ok(())
}

/// [`QueueIndex::truncate`] plus the matching cut of the index file, synced, so a reopen sees
/// the same entry count — after a crash too. Recovery cuts entries that point past the log's
/// end; the log then writes new batches at those positions, and a cut lost in a crash would
/// bring back entries naming bytes that now belong to other batches (found by the storage
/// simulation, seed 71608 at 6dd79d4).
pub async fn truncate_with_file(
    index: &std::cell::RefCell<QueueIndex>,
    new_len: u64,
) -> Result<()> {
    index.borrow_mut().truncate(new_len);
    let (file, keep, path) = {
        let index = index.borrow();
        (
            index.current_file(),
            index.file_bytes_to_keep(),
            index.path().clone(),
        )
    };
    if let Some(file) = file {
        file.truncate(keep)
            .await
            .map_err(|e| StorageError::glommio(&path, e))?;
        file.fdatasync()
            .await
            .map_err(|e| StorageError::glommio(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> IndexEntry {
        IndexEntry {
            position: i * 100,
            batch_len: 100,
            delta: 0,
            tag_code: i as i64 - 7,
            store_ms: 1_700_000_000_000 + i,
        }
    }

    fn hit(index: &QueueIndex, offset: u64) -> IndexEntry {
        match index.get(offset) {
            Lookup::Hit(e) => e,
            Lookup::Evicted(no) => panic!("chunk {no} evicted"),
            Lookup::Empty => panic!("empty slot at {offset}"),
        }
    }

    #[test]
    fn entries_persist_evict_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.idx");
        glommio::LocalExecutorBuilder::default()
            .io_memory(2 << 20)
            .spawn(move || async move {
                crate::iopoll_probe::prime(path.parent().unwrap())
                    .await
                    .unwrap();
                let index = std::cell::RefCell::new(QueueIndex::new(path.clone(), 2));
                let total = INDEX_CHUNK_ENTRIES * 3 + 10;
                for i in 0..total {
                    index.borrow_mut().push(entry(i));
                }
                // Nothing persisted yet: all four chunks stay resident.
                assert_eq!(index.borrow().resident_chunks(), 4);
                let file = persist(&index).await.unwrap().unwrap();
                file.fdatasync().await.unwrap();
                index.borrow_mut().push(entry(total));
                assert_eq!(index.borrow().resident_chunks(), 2);
                let lookup = index.borrow().get(5);
                let loader = match lookup {
                    Lookup::Evicted(no) => index.borrow().chunk_loader(no),
                    Lookup::Hit(_) | Lookup::Empty => panic!("chunk 0 should have been evicted"),
                };
                let (reader, loaded) = loader.await.unwrap();
                index.borrow_mut().insert_loaded(0, reader, loaded);
                assert_eq!(hit(&index.borrow(), 5), entry(5));
                persist(&index).await.unwrap();

                let reopened = QueueIndex::open(path.clone(), 2).await.unwrap();
                assert_eq!(reopened.len(), total + 1);
                assert_eq!(hit(&reopened, total), entry(total));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn chunks_below_the_start_are_punched_out_and_a_moved_start_reopens() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.idx");
        glommio::LocalExecutorBuilder::default()
            .io_memory(2 << 20)
            .spawn(move || async move {
                crate::iopoll_probe::prime(path.parent().unwrap())
                    .await
                    .unwrap();
                let index = std::cell::RefCell::new(QueueIndex::new(path.clone(), 8));
                let total = INDEX_CHUNK_ENTRIES * 4 + 3;
                for i in 0..total {
                    index.borrow_mut().push(entry(i));
                }
                persist(&index)
                    .await
                    .unwrap()
                    .unwrap()
                    .fdatasync()
                    .await
                    .unwrap();
                let blocks = || std::fs::metadata(&path).unwrap().blocks();
                let full = blocks();
                index
                    .borrow_mut()
                    .advance_first(INDEX_CHUNK_ENTRIES * 3 + 1);
                release_below_first(&index).await.unwrap();
                assert!(
                    blocks() <= full - 3 * (INDEX_CHUNK_BYTES as u64 / 512),
                    "three chunks released: {} of {full} blocks left",
                    blocks()
                );
                assert!(matches!(index.borrow().get(5), Lookup::Empty));
                assert_eq!(hit(&index.borrow(), total - 1), entry(total - 1));
                let _ = index.borrow_mut().take_files();

                // A queue moved forward by recovery (entries before it gone) reopens with the
                // same length: its last chunk starts with empty slots.
                let moved_path = path.with_file_name("moved.idx");
                let moved = std::cell::RefCell::new(QueueIndex::new(moved_path.clone(), 8));
                for i in 0..10 {
                    moved.borrow_mut().push(entry(i));
                }
                let start = INDEX_CHUNK_ENTRIES * 2 + 100;
                moved.borrow_mut().skip_to(start);
                for i in start..start + 7 {
                    moved.borrow_mut().push(entry(i));
                }
                persist(&moved).await.unwrap();
                let _ = moved.borrow_mut().take_files();
                let reopened = QueueIndex::open(moved_path, 8).await.unwrap();
                assert_eq!(reopened.len(), start + 7);
                assert_eq!(hit(&reopened, start), entry(start));
                assert!(matches!(reopened.get(start - 1), Lookup::Empty));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_loaded_chunk_stays_resident_even_when_nothing_else_can_be_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(move || async move {
                let reader = Rc::new(StoreFile::open(&path).await.unwrap());
                let mut index = QueueIndex::new(PathBuf::from("/nonexistent"), 2);
                for i in 0..(INDEX_CHUNK_ENTRIES * 4) {
                    index.push(entry(i));
                }
                // Chunks 1..=3 are unwritten, so none of them may go; chunk 0 comes back from
                // disk and must stay for the lookup that loaded it.
                index.chunks.remove(&0);
                let mut bytes = vec![0u8; INDEX_CHUNK_BYTES].into_boxed_slice();
                entry(0).encode(&mut bytes[..INDEX_ENTRY_BYTES]);
                index.insert_loaded(0, reader.clone(), bytes);
                assert!(
                    matches!(index.get(0), Lookup::Hit(_)),
                    "the chunk just loaded was evicted at once"
                );
                let _ = index.take_files();
                Rc::try_unwrap(reader).ok().unwrap().close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_batch_push_writes_what_single_pushes_write_across_chunk_boundaries() {
        let mut batched = QueueIndex::new(PathBuf::from("/nonexistent"), 8);
        let mut single = QueueIndex::new(PathBuf::from("/nonexistent"), 8);
        // Batches of awkward sizes, the largest spanning a whole chunk and a half.
        let counts = [
            3u32,
            1,
            INDEX_CHUNK_ENTRIES as u32 + INDEX_CHUNK_ENTRIES as u32 / 2,
            7,
            1000,
        ];
        let mut position = 0u64;
        for (b, &count) in counts.iter().enumerate() {
            let batch_len = 64 + b as u32 * 16;
            let tag_codes: Vec<i64> = (0..count).map(|d| i64::from(d % 3) - 1).collect();
            batched.push_batch(&BatchEntries {
                position,
                batch_len,
                tag_codes: &tag_codes,
                store_ms: b as u64,
            });
            for delta in 0..count {
                single.push(IndexEntry {
                    position,
                    batch_len,
                    delta,
                    tag_code: tag_codes[delta as usize],
                    store_ms: b as u64,
                });
            }
            position += u64::from(batch_len);
        }
        assert_eq!(batched.len(), single.len());
        assert_eq!(batched.resident_chunks(), single.resident_chunks());
        for offset in 0..single.len() {
            assert_eq!(
                hit(&batched, offset),
                hit(&single, offset),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn unpersisted_full_chunks_ask_for_a_flush() {
        let mut index = QueueIndex::new(PathBuf::from("/nonexistent"), 4);
        for i in 0..INDEX_CHUNK_ENTRIES {
            index.push(entry(i));
        }
        assert!(!index.needs_flush());
        for i in 0..INDEX_CHUNK_ENTRIES {
            index.push(entry(i));
        }
        assert!(
            index.needs_flush(),
            "two full unwritten chunks reach half of a bound of four"
        );
    }

    #[test]
    fn truncate_drops_tail_entries() {
        let mut index = QueueIndex::new(PathBuf::from("/nonexistent"), 4);
        for i in 0..(INDEX_CHUNK_ENTRIES + 5) {
            index.push(entry(i));
        }
        index.truncate(INDEX_CHUNK_ENTRIES - 1);
        assert_eq!(index.len(), INDEX_CHUNK_ENTRIES - 1);
        assert_eq!(index.file_bytes_to_keep(), INDEX_HEADER_BYTES as u64);
        index.push(entry(77));
        assert_eq!(hit(&index, INDEX_CHUNK_ENTRIES - 1), entry(77));
    }
}
