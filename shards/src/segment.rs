//! The shard log's segment files: `<shard dir>/log/<base position, 20 digits>.log`, where the base
//! position is the log position of the segment's first byte. Positions are contiguous across
//! segments: a segment ends exactly where the next begins, with no padding between.
//!
//! [`Segments`] is the in-memory list used to route reads to the right file; the writer task owns
//! writing (see `writer`). Read handles are opened lazily and shared. Runs on its shard's core.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::file_io::StoreFile;
use bytes::Bytes;

use crate::error::{Result, StorageError};

pub fn segment_path(log_dir: &Path, base: u64) -> PathBuf {
    log_dir.join(format!("{base:020}.log"))
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

pub struct Segment {
    pub base: u64,
    pub path: PathBuf,
    reader: RefCell<Option<Rc<StoreFile>>>,
    /// One open of the read handle at a time: whoever comes second waits for the first and
    /// shares its handle. So once `ensure_reader` returns, no open of this path is in flight,
    /// and retention may unlink it (glommio 0.9 panics when a path vanishes mid-open).
    opening: glommio::sync::Semaphore,
    /// Retention unlinked it and is freeing its blocks: a read planned before may come short.
    deleted: std::cell::Cell<bool>,
}

impl Segment {
    pub fn new(log_dir: &Path, base: u64) -> Self {
        Segment {
            base,
            path: segment_path(log_dir, base),
            reader: RefCell::new(None),
            opening: glommio::sync::Semaphore::new(1),
            deleted: std::cell::Cell::new(false),
        }
    }

    /// Opens the read handle now if it is not open yet. The store calls it from background
    /// work: a glommio open was seen to stall a pull for seconds when done on the request path.
    pub async fn ensure_reader(&self) -> Result<()> {
        self.reader().await.map(drop)
    }

    pub fn has_reader(&self) -> bool {
        self.reader.borrow().is_some()
    }

    async fn reader(&self) -> Result<Rc<StoreFile>> {
        if let Some(file) = self.reader.borrow().clone() {
            return Ok(file);
        }
        let _only_open =
            self.opening
                .acquire_permit(1)
                .await
                .map_err(|e| StorageError::Glommio {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
        if let Some(file) = self.reader.borrow().clone() {
            return Ok(file);
        }
        let file = Rc::new(
            StoreFile::open(&self.path)
                .await
                .map_err(|e| StorageError::glommio(&self.path, e))?,
        );
        let mut slot = self.reader.borrow_mut();
        Ok(slot.get_or_insert(file).clone())
    }

    /// Reads `len` bytes at log position `position` (which must lie in this segment and be
    /// written). One copy out of the DMA buffer.
    pub async fn read(&self, position: u64, len: usize) -> Result<Bytes> {
        assert!(position >= self.base, "read before the segment start");
        let file = self.reader().await?;
        let read = file
            .read_at(position - self.base, len)
            .await
            .map_err(|e| StorageError::glommio(&self.path, e))?;
        if read.len() < len && self.deleted.get() {
            return Err(StorageError::PositionDeleted(position));
        }
        if read.len() < len {
            return Err(StorageError::Glommio {
                path: self.path.clone(),
                message: format!("short read at {position}: {} of {len} bytes", read.len()),
            });
        }
        Ok(Bytes::copy_from_slice(&read))
    }

    /// Retention unlinked the file and frees its blocks: reads planned before may find them gone.
    pub fn mark_deleted(&self) {
        self.deleted.set(true);
    }

    pub async fn close_reader(&self) {
        let file = self.reader.borrow_mut().take();
        if let Some(file) = file {
            let _ = file.close_rc().await;
        }
    }
}

/// All segments of a shard log, oldest first.
#[derive(Default)]
pub struct Segments {
    list: Vec<Rc<Segment>>,
}

impl Segments {
    pub fn push(&mut self, segment: Segment) {
        if let Some(last) = self.list.last() {
            assert!(
                segment.base >= last.base,
                "segments must be added in position order"
            );
            if segment.base == last.base {
                self.list.pop();
            }
        }
        self.list.push(Rc::new(segment));
    }

    /// The segment holding `position`, and where that segment ends (the next one's base), if
    /// it is not the last.
    pub fn find(&self, position: u64) -> Option<(Rc<Segment>, Option<u64>)> {
        let at = self
            .list
            .partition_point(|s| s.base <= position)
            .checked_sub(1)?;
        let end = self.list.get(at + 1).map(|s| s.base);
        Some((self.list[at].clone(), end))
    }

    pub fn first_base(&self) -> Option<u64> {
        self.list.first().map(|s| s.base)
    }

    /// Drops the oldest segment (retention) and returns it.
    pub fn pop_first(&mut self) -> Option<Rc<Segment>> {
        (!self.list.is_empty()).then(|| self.list.remove(0))
    }

    /// Removes and returns every segment that starts after `position` (a log repair resumes
    /// at `position`; what the failed writer started past it holds nothing written).
    pub fn split_off_after(&mut self, position: u64) -> Vec<Rc<Segment>> {
        let at = self.list.partition_point(|s| s.base <= position);
        self.list.split_off(at)
    }

    /// The last segment that starts before `position`.
    pub fn last_before(&self, position: u64) -> Option<Rc<Segment>> {
        let at = self.list.partition_point(|s| s.base < position);
        at.checked_sub(1).map(|i| self.list[i].clone())
    }

    pub fn last_base(&self) -> Option<u64> {
        self.list.last().map(|s| s.base)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rc<Segment>> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = segment_path(Path::new("/x"), 1234);
        assert_eq!(p, PathBuf::from("/x/00000000000000001234.log"));
        assert_eq!(parse_segment_name("00000000000000001234.log"), Some(1234));
        assert_eq!(parse_segment_name("1234.log"), None);
        assert_eq!(parse_segment_name("0000000000000000123x.log"), None);
    }

    #[test]
    fn a_read_of_bytes_retention_freed_is_position_deleted_not_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().to_path_buf();
        std::fs::write(segment_path(&log_dir, 0), vec![7u8; 8192]).unwrap();
        crate::store_tests::run(move || async move {
            let segment = Segment::new(&log_dir, 0);
            assert_eq!(segment.read(4096, 16).await.unwrap()[..], [7u8; 16]);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&segment.path)
                .unwrap()
                .set_len(4096)
                .unwrap();
            let short = segment.read(4096, 16).await;
            assert!(
                matches!(short, Err(StorageError::Glommio { .. })),
                "{short:?}"
            );
            segment.mark_deleted();
            let freed = segment.read(4096, 16).await;
            assert!(
                matches!(freed, Err(StorageError::PositionDeleted(4096))),
                "{freed:?}"
            );
        });
    }

    #[test]
    fn find_routes_by_base() {
        let mut segments = Segments::default();
        for base in [0, 100, 250] {
            segments.push(Segment::new(Path::new("/x"), base));
        }
        assert_eq!(
            segments.find(0).map(|(s, e)| (s.base, e)),
            Some((0, Some(100)))
        );
        assert_eq!(
            segments.find(99).map(|(s, e)| (s.base, e)),
            Some((0, Some(100)))
        );
        assert_eq!(
            segments.find(100).map(|(s, e)| (s.base, e)),
            Some((100, Some(250)))
        );
        assert_eq!(
            segments.find(10_000).map(|(s, e)| (s.base, e)),
            Some((250, None))
        );
    }
}
