//! Planning a pull before reading it: the index says which stored batches the pull returns and
//! where each lies in the log, so the store can read exactly those bytes, and read them all at
//! once, instead of discovering one batch at a time. Queues interleave in the shard log, so the
//! batches of one queue are often not adjacent; reading ahead blindly would read other queues'
//! data.
//!
//! A batch's extent in the queue is found from the index alone: its entries share one log
//! position, and positions grow with offsets, so the batch ends at the first offset whose entry
//! has another position (a galloping then binary search, a few lookups per batch).

use std::cell::RefCell;

use crate::error::{Result, StorageError};
use crate::index::QueueIndex;
use crate::index_format::IndexEntry;
use crate::recovery::entry_at;

/// One stored batch a pull returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    /// Queue offset of the batch's first record.
    pub base_offset: u64,
    /// One past its last record.
    pub end_offset: u64,
    pub position: u64,
    pub len: u32,
    /// For a pull filtered by tag codes: the records (by index in the batch) whose code
    /// matched; `None` for an unfiltered pull.
    pub selected: Option<Vec<u32>>,
}

pub struct PullLimits {
    pub max_offset: u64,
    pub max_messages: u32,
    pub max_bytes: u32,
}

/// The batches holding `offset..`, within the limits. The first batch is always included whole,
/// so a consumer always progresses; later ones only while they fit `max_bytes`.
pub async fn plan(
    index: &RefCell<QueueIndex>,
    offset: u64,
    limits: &PullLimits,
) -> Result<Vec<PlannedBatch>> {
    let mut planned = Vec::new();
    let (mut at, mut messages, mut bytes) = (offset, 0u64, 0u64);
    while at < limits.max_offset && messages < u64::from(limits.max_messages) {
        let entry = entry_at(index, at).await?;
        if bytes > 0 && bytes + u64::from(entry.batch_len) > u64::from(limits.max_bytes) {
            break;
        }
        let base_offset = base_offset_of(index, at, &entry)?;
        let end_offset = batch_end(index, at, entry.position, limits.max_offset).await?;
        planned.push(PlannedBatch {
            base_offset,
            end_offset,
            position: entry.position,
            len: entry.batch_len,
            selected: None,
        });
        messages += end_offset - at;
        bytes += u64::from(entry.batch_len);
        at = end_offset;
    }
    Ok(planned)
}

/// The first offset of the batch holding `at`, from its entry's delta; a delta past `at` is a
/// damaged index file ([`StorageError::CorruptIndex`]; found by the recovery fuzz target).
fn base_offset_of(index: &RefCell<QueueIndex>, at: u64, entry: &IndexEntry) -> Result<u64> {
    at.checked_sub(u64::from(entry.delta)).ok_or_else(|| {
        let index = index.borrow();
        let (topic_id, queue_id) = index
            .path()
            .file_name()
            .and_then(|n| crate::recovery::parse_index_name(&n.to_string_lossy()))
            .unwrap_or_default();
        StorageError::CorruptIndex {
            topic_id,
            queue_id,
            offset: at,
            position: entry.position,
            reason: format!(
                "the entry says its batch began {} records earlier",
                entry.delta
            ),
        }
    })
}

/// Entries a filtered pull looks at, at most, before it answers (with what matched, possibly
/// nothing, and where to go on): a filter that matches little must not make one pull scan a
/// whole backlog.
pub const FILTER_SCAN_ENTRIES_MAX: u64 = 64 * 1024;

/// A pull that keeps only records whose tag code is in `codes`, decided from the index alone:
/// batches with no matching entry are never read. Returns the batches that hold a match (each
/// with the matching records) and the offset the scan reached.
pub async fn plan_filtered(
    index: &RefCell<QueueIndex>,
    offset: u64,
    limits: &PullLimits,
    codes: &std::collections::HashSet<i64>,
) -> Result<(Vec<PlannedBatch>, u64)> {
    let mut planned: Vec<PlannedBatch> = Vec::new();
    let (mut at, mut matched, mut bytes) = (offset, 0u64, 0u64);
    let scan_end = limits
        .max_offset
        .min(offset.saturating_add(FILTER_SCAN_ENTRIES_MAX));
    while at < scan_end && matched < u64::from(limits.max_messages) {
        let entry = entry_at(index, at).await?;
        if !codes.contains(&entry.tag_code) {
            at += 1;
            continue;
        }
        let base_offset = base_offset_of(index, at, &entry)?;
        let same_batch = planned.last().is_some_and(|p| p.position == entry.position);
        if !same_batch {
            if bytes > 0 && bytes + u64::from(entry.batch_len) > u64::from(limits.max_bytes) {
                break;
            }
            bytes += u64::from(entry.batch_len);
            let end_offset = batch_end(index, at, entry.position, limits.max_offset).await?;
            planned.push(PlannedBatch {
                base_offset,
                end_offset,
                position: entry.position,
                len: entry.batch_len,
                selected: Some(Vec::new()),
            });
        }
        if let Some(selected) = planned.last_mut().and_then(|p| p.selected.as_mut()) {
            selected.push(entry.delta);
        }
        matched += 1;
        at += 1;
    }
    Ok((planned, at))
}

/// The first offset after `at` whose entry is not in the batch at `position`.
async fn batch_end(
    index: &RefCell<QueueIndex>,
    at: u64,
    position: u64,
    max_offset: u64,
) -> Result<u64> {
    // Gallop: find a step past the batch's end.
    let (mut inside, mut step) = (at, 1u64);
    let outside = loop {
        let probe = inside.saturating_add(step);
        if probe >= max_offset {
            break max_offset;
        }
        if entry_at(index, probe).await?.position != position {
            break probe;
        }
        inside = probe;
        step *= 2;
    };
    // Binary search in (inside, outside]: `inside` is in the batch, `outside` is not (or the end).
    let (mut lo, mut hi) = (inside, outside);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if mid < max_offset && entry_at(index, mid).await?.position == position {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn index_of(batches: &[(u64, u32)]) -> RefCell<QueueIndex> {
        let mut index = QueueIndex::new(PathBuf::from("/nonexistent"), 64);
        let mut position = 0;
        for (count, len) in batches {
            index.push_batch(&crate::index::BatchEntries {
                position,
                batch_len: *len,
                tag_codes: &vec![0; *count as usize],
                store_ms: 0,
            });
            position += 1000;
        }
        RefCell::new(index)
    }

    fn run<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
        glommio::LocalExecutor::default().run(f)
    }

    #[test]
    fn batches_are_found_whole_and_within_limits() {
        let index = index_of(&[(1, 100), (1000, 900), (3, 100), (5000, 800)]);
        let limits = PullLimits {
            max_offset: 6004,
            max_messages: 100_000,
            max_bytes: 1000,
        };
        let planned = run(async move { plan(&index, 500, &limits).await.unwrap() });
        // Starts in the middle of the second batch, which comes whole; the third still fits
        // 1000 bytes (900 + 100), the fourth does not.
        assert_eq!(
            planned,
            vec![
                PlannedBatch {
                    base_offset: 1,
                    end_offset: 1001,
                    position: 1000,
                    len: 900,
                    selected: None,
                },
                PlannedBatch {
                    base_offset: 1001,
                    end_offset: 1004,
                    position: 2000,
                    len: 100,
                    selected: None,
                },
            ]
        );
    }

    #[test]
    fn every_batch_boundary_is_exact() {
        let sizes: Vec<(u64, u32)> = (1..60).map(|n| (n * 7 % 97 + 1, 10)).collect();
        let total: u64 = sizes.iter().map(|(c, _)| c).sum();
        let index = index_of(&sizes);
        let limits = PullLimits {
            max_offset: total,
            max_messages: u32::MAX,
            max_bytes: u32::MAX,
        };
        let planned = run(async move { plan(&index, 0, &limits).await.unwrap() });
        let mut expected_base = 0;
        for (batch, (count, _)) in planned.iter().zip(&sizes) {
            assert_eq!(
                (batch.base_offset, batch.end_offset),
                (expected_base, expected_base + count)
            );
            expected_base += count;
        }
        assert_eq!(planned.len(), sizes.len());
    }

    #[test]
    fn the_message_limit_stops_after_the_batch_that_reaches_it() {
        let index = index_of(&[(10, 10), (10, 10), (10, 10)]);
        let limits = PullLimits {
            max_offset: 30,
            max_messages: 12,
            max_bytes: u32::MAX,
        };
        let planned = run(async move { plan(&index, 0, &limits).await.unwrap() });
        assert_eq!(planned.len(), 2);
    }
}
