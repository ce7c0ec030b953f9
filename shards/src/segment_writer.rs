//! Writing one segment file with O_DIRECT: what the log writer uses in place of glommio's
//! `DmaStreamWriter`, whose `sync` writes its whole buffer (1 MiB) for every fdatasync however
//! little was appended — ten times the bytes acknowledged at batches of 100 under `--flush sync`.
//!
//! Model: `buffer` holds the file's bytes `[aligned, aligned + filled)`, `aligned` a multiple
//! of the 4 KiB block. A full buffer is written as it is and a fresh one started; up to
//! `write_behind` writes are in flight. A sync writes the partial buffer rounded up to the block
//! (the padding zeroed), then starts the next buffer with the last, partial block carried over:
//! each byte reaches the device once, except that partial block, written again by the next
//! write. So the device sees, per sync, what was appended since the last one, rounded up to the
//! block, plus at most one block.
//!
//! Invariants:
//! - writes never overlap while in flight: the carried block's next write is submitted only
//!   once every earlier write completed (a sync leaves none in flight anyway), so the device
//!   never ends with an older copy of a block;
//! - `written` is the end of the longest prefix of completed writes, never past the bytes
//!   given (`pos`): every byte below it is in the file;
//! - the first error is kept: every later call fails with it (the log writer then fails and
//!   `log_repair` takes over); the file may then hold anything past `written`.
//!
//! `close` syncs and cuts the file to `pos` (the padding goes). Dropping the writer cancels its
//! writes in flight.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::file_io::{IoBuffer, StoreFile};
use event_listener::Event;
use glommio::Task;

use crate::error::{Result, StorageError};

const BLOCK: usize = 4096;

/// One write in flight: where the data it carries ends, and its outcome once done.
struct Flight {
    end: u64,
    done: Rc<Cell<bool>>,
    _task: Task<()>,
}

pub struct SegmentWriter {
    file: Rc<StoreFile>,
    path: PathBuf,
    buffer_bytes: usize,
    write_behind: usize,
    buffer: IoBuffer,
    aligned: u64,
    filled: usize,
    /// The buffer starts with a block a write still in flight may hold an older copy of.
    carried: bool,
    flights: VecDeque<Flight>,
    written: u64,
    /// The first write error (shared with the write tasks).
    error: Rc<RefCell<Option<String>>>,
    /// Notified by every write that completes.
    completed: Rc<Event>,
    /// Bytes handed to the device, padding and rewritten blocks included (the store's
    /// counter, shared by every segment's writer).
    device_bytes: Rc<Cell<u64>>,
}

impl SegmentWriter {
    /// A writer of `file` from offset 0. `completed` is notified whenever a write completes
    /// (the log writer listens, to move `written` on while idle).
    pub fn new(
        file: StoreFile,
        path: &Path,
        buffer_bytes: usize,
        write_behind: usize,
        completed: Rc<Event>,
        device_bytes: Rc<Cell<u64>>,
    ) -> Self {
        assert!(
            buffer_bytes >= BLOCK && buffer_bytes.is_multiple_of(BLOCK),
            "the write buffer is whole blocks"
        );
        let buffer = file.alloc_dma_buffer(buffer_bytes);
        SegmentWriter {
            file: Rc::new(file),
            path: path.to_path_buf(),
            buffer_bytes,
            write_behind: write_behind.max(1),
            buffer,
            aligned: 0,
            filled: 0,
            carried: false,
            flights: VecDeque::new(),
            written: 0,
            error: Rc::new(RefCell::new(None)),
            completed,
            device_bytes,
        }
    }

    /// Bytes given so far (the file's logical length).
    pub fn pos(&self) -> u64 {
        self.aligned + self.filled as u64
    }

    /// Every byte below this is in the file. Collects the writes completed since last asked.
    pub fn written(&mut self) -> u64 {
        while self.flights.front().is_some_and(|f| f.done.get()) {
            let flight = self.flights.pop_front().expect("checked");
            if self.error.borrow().is_none() {
                self.written = self.written.max(flight.end);
            }
        }
        self.written
    }

    fn check(&self) -> Result<()> {
        match &*self.error.borrow() {
            Some(message) => Err(StorageError::Glommio {
                path: self.path.clone(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Copies `bytes` in, writing every buffer that fills (waiting while `write_behind` writes
    /// are in flight).
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.check()?;
        while !bytes.is_empty() {
            let n = bytes.len().min(self.buffer_bytes - self.filled);
            self.buffer.as_bytes_mut()[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == self.buffer_bytes {
                self.submit_buffer().await?;
            }
        }
        Ok(())
    }

    /// Writes the full buffer and starts an empty one.
    async fn submit_buffer(&mut self) -> Result<()> {
        self.make_room().await?;
        let fresh = self.file.alloc_dma_buffer(self.buffer_bytes);
        let full = std::mem::replace(&mut self.buffer, fresh);
        let (at, end) = (self.aligned, self.pos());
        self.spawn_write(full, at, end);
        self.aligned = end;
        self.filled = 0;
        Ok(())
    }

    /// Waits until another write may be submitted: below `write_behind` in flight, and none
    /// at all when the buffer begins with a block an earlier write holds.
    async fn make_room(&mut self) -> Result<()> {
        let limit = if self.carried { 1 } else { self.write_behind };
        while self.flights.len() >= limit {
            self.wait_for_front().await;
            self.written();
            self.check()?;
        }
        self.carried = false;
        Ok(())
    }

    async fn wait_for_front(&self) {
        loop {
            let listener = self.completed.listen();
            if self.flights.front().is_none_or(|f| f.done.get()) {
                return;
            }
            listener.await;
        }
    }

    fn spawn_write(&mut self, buffer: IoBuffer, at: u64, end: u64) {
        crate::stats::add(&self.device_bytes, buffer.len() as u64);
        let done = Rc::new(Cell::new(false));
        let (file, error, completed) = (
            self.file.clone(),
            self.error.clone(),
            self.completed.clone(),
        );
        let flag = done.clone();
        let len = buffer.len();
        let task = glommio::spawn_local(async move {
            let outcome = match file.write_at(buffer, at).await {
                Ok(n) if n == len => None,
                Ok(n) => Some(format!("short write at {at}: {n} of {len} bytes")),
                Err(e) => Some(e.to_string()),
            };
            if let Some(message) = outcome {
                error.borrow_mut().get_or_insert(message);
            }
            flag.set(true);
            completed.notify(usize::MAX);
        });
        self.flights.push_back(Flight {
            end,
            done,
            _task: task,
        });
    }

    /// Writes the partial buffer (rounded up to the block, zero padded) and carries its last,
    /// partial block into the next buffer.
    async fn flush_partial(&mut self) -> Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        self.make_room().await?;
        let whole = self.filled - self.filled % BLOCK;
        let carry = self.filled - whole;
        let mut next = self.file.alloc_dma_buffer(self.buffer_bytes);
        next.as_bytes_mut()[..carry].copy_from_slice(&self.buffer.as_bytes()[whole..self.filled]);
        let mut partial = std::mem::replace(&mut self.buffer, next);
        let padded = self.filled.next_multiple_of(BLOCK);
        partial.as_bytes_mut()[self.filled..padded].fill(0);
        partial.trim_to_size(padded);
        let (at, end) = (self.aligned, self.pos());
        self.spawn_write(partial, at, end);
        self.aligned += whole as u64;
        self.filled = carry;
        self.carried = carry > 0;
        Ok(())
    }

    /// Writes everything given so far and fdatasyncs: returns the synced length.
    pub async fn sync(&mut self) -> Result<u64> {
        self.flush_partial().await?;
        while !self.flights.is_empty() {
            self.wait_for_front().await;
            self.written();
        }
        self.check()?;
        let end = self.pos();
        assert_eq!(self.written, end, "every write completed");
        self.file
            .fdatasync()
            .await
            .map_err(|e| StorageError::glommio(&self.path, e))?;
        Ok(end)
    }

    /// Syncs, cuts the file to the bytes given and closes it.
    pub async fn close(mut self) -> Result<()> {
        let end = self.sync().await?;
        let path = self.path.clone();
        let glommio_err = |e| StorageError::glommio(&path, e);
        self.file.truncate(end).await.map_err(glommio_err)?;
        self.file.fdatasync().await.map_err(glommio_err)?;
        let file = self.file.clone();
        drop(self);
        file.close_rc().await.map_err(glommio_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store_tests::run;

    async fn writer_of(path: &Path, buffer_bytes: usize, counter: Rc<Cell<u64>>) -> SegmentWriter {
        let file = StoreFile::open_writable(path, crate::file_io::Writable::CREATE)
            .await
            .unwrap();
        SegmentWriter::new(file, path, buffer_bytes, 2, Rc::new(Event::new()), counter)
    }

    /// A deterministic byte stream, so a misplaced block shows as a content difference.
    fn bytes_at(start: usize, len: usize) -> Vec<u8> {
        (start..start + len)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    #[test]
    fn each_sync_writes_what_was_appended_since_the_last_plus_at_most_a_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let check = path.clone();
        run(move || async move {
            let counter = Rc::new(Cell::new(0));
            let mut writer = writer_of(&path, 64 * 1024, counter.clone()).await;
            let mut total = 0;
            // Batch-sized appends, each synced (what `--flush sync` does at low load).
            for (i, len) in [100, 5000, 1, 4096, 30_000, 777, 70_000, 12, 8192]
                .iter()
                .enumerate()
            {
                let before = counter.get();
                writer.write_all(&bytes_at(total, *len)).await.unwrap();
                total += len;
                assert_eq!(writer.sync().await.unwrap(), total as u64);
                assert_eq!(writer.written(), total as u64);
                let device = (counter.get() - before) as usize;
                assert!(
                    device <= len.next_multiple_of(BLOCK) + BLOCK,
                    "sync {i}: {device} bytes to the device for {len} appended"
                );
            }
            writer.close().await.unwrap();
        });
        assert_eq!(std::fs::read(&check).unwrap(), bytes_at(0, 118_178));
    }

    #[test]
    fn bytes_reach_the_file_in_place_whatever_mix_of_writes_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let check = path.clone();
        let total = run_mix(path);
        let file = std::fs::read(&check).unwrap();
        assert_eq!(file.len(), total, "close cuts the padding");
        let first_difference = file
            .iter()
            .zip(bytes_at(0, total))
            .position(|(a, b)| *a != b);
        assert_eq!(first_difference, None);
    }

    /// Seeded mix of append sizes (up to three buffers) and syncs; returns the bytes given.
    fn run_mix(path: PathBuf) -> usize {
        let given_out = std::sync::Arc::new(std::sync::Mutex::new(0));
        let given_in = given_out.clone();
        run(move || async move {
            let mut writer = writer_of(&path, 16 * 1024, Rc::new(Cell::new(0))).await;
            let mut seed = 0x9E37_79B9_u64;
            let mut given = 0;
            for _ in 0..400 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = (seed % 50_000) as usize + 1;
                writer.write_all(&bytes_at(given, len)).await.unwrap();
                given += len;
                assert!(writer.written() <= given as u64);
                if seed.is_multiple_of(3) {
                    assert_eq!(writer.sync().await.unwrap(), given as u64);
                }
            }
            writer.close().await.unwrap();
            *given_in.lock().unwrap() = given;
        });
        let given = *given_out.lock().unwrap();
        given
    }
}
