//! The store's one seam to the filesystem: every file the shard reads or writes (segments,
//! indexes, checkpoint, consumer offsets, the spare) and every name it creates, renames or
//! removes goes through here, so the same store code runs on glommio's O_DIRECT files or on the
//! deterministic simulated disk ([`crate::sim_disk`]) that storage tests crash at will.
//!
//! Dispatch is by path, like a mount table: a path under a root where a [`SimDisk`] is mounted
//! ([`crate::sim_disk::mount`]) is served by that disk; every other path by the OS. Nothing is
//! mounted outside tests, and then the dispatch costs one atomic load per open or name change
//! (never per read or write: an open [`StoreFile`] knows what it is).
//!
//! The operations keep glommio's names and error type ([`glommio::GlommioError`]) so the store
//! maps errors as before: a simulated failure is an `IoError` with an OS error number (EIO,
//! ENOSPC), exactly what the store would see from a device.
//!
//! Invariants: a [`StoreFile`] opened on one backend only ever touches that backend; buffers
//! come from the file they are written to ([`StoreFile::alloc_dma_buffer`]), so a DMA file is
//! only ever given DMA memory.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};

use crate::sim_disk::{self, SimDisk, SimFile};

pub type IoResult<T> = std::result::Result<T, glommio::GlommioError<()>>;

/// How a file is opened for writing.
///
/// `read` only where reads through the handle are needed: glommio 0.9 probes a device for
/// iopoll with a read through the first readable handle opened on it, and an empty file there
/// breaks every later read on the device (see `iopoll_probe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Writable {
    /// Readable through the same handle too.
    pub read: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Cut an existing file to 0 bytes.
    pub truncate: bool,
}

impl Writable {
    pub const EXISTING: Writable = Writable {
        read: false,
        create: false,
        truncate: false,
    };
    pub const CREATE: Writable = Writable {
        read: false,
        create: true,
        truncate: false,
    };
    pub const REPLACE: Writable = Writable {
        read: false,
        create: true,
        truncate: true,
    };
    pub const READ_CREATE: Writable = Writable {
        read: true,
        create: true,
        truncate: false,
    };
}

/// An open file of the store.
pub enum StoreFile {
    Dma(DmaFile),
    Sim(SimFile),
}

/// Memory a write is made from: DMA-aligned for an O_DIRECT file, plain for a simulated one.
pub enum IoBuffer {
    Dma(DmaBuffer),
    Heap(Vec<u8>),
}

/// The bytes a read returned (possibly fewer than asked, at the end of the file).
pub enum ReadBytes {
    Dma(ReadResult),
    Heap(Vec<u8>),
}

impl std::ops::Deref for ReadBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ReadBytes::Dma(read) => read,
            ReadBytes::Heap(bytes) => bytes,
        }
    }
}

impl IoBuffer {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            IoBuffer::Dma(buffer) => buffer.as_bytes(),
            IoBuffer::Heap(bytes) => bytes,
        }
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        match self {
            IoBuffer::Dma(buffer) => buffer.as_bytes_mut(),
            IoBuffer::Heap(bytes) => bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shortens the buffer to its first `size` bytes.
    pub fn trim_to_size(&mut self, size: usize) {
        match self {
            IoBuffer::Dma(buffer) => buffer.trim_to_size(size),
            IoBuffer::Heap(bytes) => bytes.truncate(size),
        }
    }
}

fn mounted(path: &Path) -> Option<Arc<SimDisk>> {
    sim_disk::disk_for(path)
}

impl StoreFile {
    /// Opens an existing file for reading.
    pub async fn open(path: &Path) -> IoResult<StoreFile> {
        match mounted(path) {
            Some(disk) => SimFile::open(disk, path, None).await.map(StoreFile::Sim),
            None => DmaFile::open(path).await.map(StoreFile::Dma),
        }
    }

    /// Opens a file for writing (and reading).
    pub async fn open_writable(path: &Path, how: Writable) -> IoResult<StoreFile> {
        match mounted(path) {
            Some(disk) => SimFile::open(disk, path, Some(how))
                .await
                .map(StoreFile::Sim),
            None => OpenOptions::new()
                .read(how.read)
                .write(true)
                .create(how.create)
                .truncate(how.truncate)
                .dma_open(path)
                .await
                .map(StoreFile::Dma),
        }
    }

    /// A zeroed-or-not buffer of `size` bytes to write to this file with.
    pub fn alloc_dma_buffer(&self, size: usize) -> IoBuffer {
        match self {
            StoreFile::Dma(file) => IoBuffer::Dma(file.alloc_dma_buffer(size)),
            StoreFile::Sim(_) => IoBuffer::Heap(vec![0; size]),
        }
    }

    /// Writes the whole buffer at `pos` (block-aligned, as O_DIRECT requires of both).
    pub async fn write_at(&self, buffer: IoBuffer, pos: u64) -> IoResult<usize> {
        match (self, buffer) {
            (StoreFile::Dma(file), IoBuffer::Dma(buffer)) => file.write_at(buffer, pos).await,
            (StoreFile::Sim(file), buffer) => file.write_at(buffer.as_bytes(), pos).await,
            (StoreFile::Dma(_), IoBuffer::Heap(_)) => {
                unreachable!("a DMA file is only given buffers it allocated")
            }
        }
    }

    pub async fn read_at(&self, pos: u64, len: usize) -> IoResult<ReadBytes> {
        match self {
            StoreFile::Dma(file) => file.read_at(pos, len).await.map(ReadBytes::Dma),
            StoreFile::Sim(file) => file.read_at(pos, len).await.map(ReadBytes::Heap),
        }
    }

    pub async fn file_size(&self) -> IoResult<u64> {
        match self {
            StoreFile::Dma(file) => file.file_size().await,
            StoreFile::Sim(file) => file.file_size().await,
        }
    }

    pub async fn fdatasync(&self) -> IoResult<()> {
        match self {
            StoreFile::Dma(file) => file.fdatasync().await,
            StoreFile::Sim(file) => file.fdatasync().await,
        }
    }

    pub async fn truncate(&self, size: u64) -> IoResult<()> {
        match self {
            StoreFile::Dma(file) => file.truncate(size).await,
            StoreFile::Sim(file) => file.truncate(size).await,
        }
    }

    /// Reserves blocks up to `size` (`keep_size`: the file's length does not change).
    pub async fn pre_allocate(&self, size: u64, keep_size: bool) -> IoResult<()> {
        match self {
            StoreFile::Dma(file) => file.pre_allocate(size, keep_size).await,
            StoreFile::Sim(file) => file.pre_allocate(size, keep_size).await,
        }
    }

    /// Frees the blocks of `[offset, offset + size)`; they read as zeros after.
    pub async fn deallocate(&self, offset: u64, size: u64) -> IoResult<()> {
        match self {
            StoreFile::Dma(file) => file.deallocate(offset, size).await,
            StoreFile::Sim(file) => file.deallocate(offset, size).await,
        }
    }

    pub async fn close(self) -> IoResult<()> {
        match self {
            StoreFile::Dma(file) => file.close().await,
            StoreFile::Sim(_) => Ok(()),
        }
    }

    /// Closes the file if this is its last handle.
    pub async fn close_rc(self: Rc<Self>) -> IoResult<()> {
        match Rc::try_unwrap(self) {
            Ok(file) => file.close().await,
            Err(_) => Ok(()),
        }
    }
}

/// Renames `from` to `to`, replacing `to`.
pub async fn rename(from: &Path, to: &Path) -> IoResult<()> {
    match mounted(from) {
        Some(disk) => disk.rename(from, to).await,
        None => glommio::io::rename(from, to).await,
    }
}

/// Removes a file's name (open handles keep working).
pub async fn remove(path: &Path) -> IoResult<()> {
    match mounted(path) {
        Some(disk) => disk.remove(path).await,
        None => glommio::io::remove(path).await,
    }
}

/// Makes the names created, renamed or removed in `dir` durable.
pub async fn sync_dir(dir: &Path) -> IoResult<()> {
    if let Some(disk) = mounted(dir) {
        return disk.sync_dir(dir).await;
    }
    let handle = glommio::io::Directory::open(dir).await?;
    let synced = handle.sync().await;
    let _ = handle.close().await;
    synced
}

/// Creates a directory and its parents. Blocking on the OS: call it off the executor.
pub fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    match mounted(dir) {
        Some(disk) => {
            disk.create_dir_all(dir);
            Ok(())
        }
        None => std::fs::create_dir_all(dir),
    }
}

/// The names of the files in `dir`. Blocking on the OS: call it off the executor.
pub fn list_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match mounted(dir) {
        Some(disk) => Ok(disk.list_dir(dir)),
        None => std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect(),
    }
}

/// Whether `path` is served by a simulated disk (what only a real device has, such as the
/// iopoll probe or free-space figures, is skipped there).
pub fn is_simulated(path: &Path) -> bool {
    mounted(path).is_some()
}
