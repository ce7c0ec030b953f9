//! Reading a queue: [`ShardStore::read`] returns whole stored batches, each with its log
//! position, starting with the one that holds the asked offset.
//!
//! A read is planned from the index first (`read_plan`: which batches, where), then fetched: from
//! the hot tail where a batch still is, else from disk, adjacent batches as one span of at most
//! `READ_SPAN_BYTES_MAX`, all spans concurrently. Where each batch comes from is decided without
//! awaiting in between, so the hot tail cannot drop one that was counted on. After a read that
//! touched the disk, the queue's next read is planned and started at once (`prefetch`).
//!
//! Limits: at most `max_messages` records, and batches only while they fit `max_bytes` (the
//! first batch is always returned whole, so a consumer always progresses).
//!
//! Storage invariants checked on every read, in release builds too: each fetched batch's header
//! names the planned queue, base offset and end offset.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use bytes::Bytes;
use shardmq_protocol::BatchHeader;

use crate::error::{Result, StorageError};
use crate::index::QueueIndex;
use crate::prefetch::{PulledBatches, PREFETCH_BYTES_MAX};
use crate::read_plan::{self, PlannedBatch, PullLimits};
use crate::segment::Segment;
use crate::store::ShardStore;

/// Adjacent batches read from disk are merged into spans of at most this size (a batch larger
/// than it gets a span of its own); the spans of one pull are read concurrently.
const READ_SPAN_BYTES_MAX: u64 = 1 << 20;

/// One stored batch as a read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// Log position of the batch's first byte (RocketMQ's physical offset of its first record).
    pub position: u64,
    pub bytes: Bytes,
    /// For a read filtered by tag codes: the records (by index in the batch) whose code
    /// matched; `None` when the read was not filtered.
    pub selected: Option<Vec<u32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub offset: u64,
    pub max_messages: u32,
    pub max_bytes: u32,
    /// Keep only records whose tag code is in the set (from the index, before any log read);
    /// `max_messages` then counts matching records.
    pub tag_codes: Option<Rc<HashSet<i64>>>,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    /// Whole stored batches, in offset order. The first may start before the asked offset.
    pub batches: Vec<StoredBatch>,
    pub next_offset: u64,
    /// The queue's first offset still stored, and one past its last record, when read.
    pub min_offset: u64,
    pub max_offset: u64,
}

impl ShardStore {
    /// Reads whole batches of `(topic_id, queue_id)` starting with the one that holds
    /// `request.offset`. An offset past the end is an error; at the end, the outcome is empty.
    pub async fn read(
        &self,
        topic_id: u32,
        queue_id: u32,
        request: ReadRequest,
    ) -> Result<ReadOutcome> {
        let index = self
            .inner
            .queues
            .borrow()
            .get(&(topic_id, queue_id))
            .cloned();
        let (min_offset, max_offset) = index.as_ref().map_or((0, 0), |i| {
            let i = i.borrow();
            (i.first(), self.visible_end(&i))
        });
        let out_of_range = || StorageError::OffsetOutOfRange {
            topic_id,
            queue_id,
            offset: request.offset,
            min: min_offset,
            max: max_offset,
        };
        if request.offset > max_offset || request.offset < min_offset {
            return Err(out_of_range());
        }
        let Some(index) = index else {
            return Ok(ReadOutcome::default());
        };
        if let Some(codes) = request.tag_codes.clone() {
            return self
                .read_filtered(&index, topic_id, queue_id, &request, &codes)
                .await;
        }
        let key = (
            (topic_id, queue_id),
            request.offset,
            request.max_messages,
            request.max_bytes,
        );
        let pulled = match self.inner.prefetch.take(key) {
            Some(pull) => pull.await,
            None => self.read_planned(&index, request.clone()).await,
        };
        let (planned, batches, from_disk) = match pulled {
            Err(StorageError::PositionDeleted(_)) => {
                return Err(self.deleted_meanwhile(&index, &request, topic_id, queue_id))
            }
            other => other?,
        };
        for (batch, plan) in batches.iter().zip(&planned) {
            check_matches_plan(&batch.bytes, plan, topic_id, queue_id)?;
        }
        let next_offset = planned.last().map_or(request.offset, |p| p.end_offset);
        if from_disk && next_offset < self.visible_end(&index.borrow()) {
            self.prefetch_next(
                topic_id,
                queue_id,
                &index,
                ReadRequest {
                    offset: next_offset,
                    ..request
                },
            );
        }
        let (min_offset, max_offset) = {
            let index = index.borrow();
            (index.first(), max_offset.max(self.visible_end(&index)))
        };
        Ok(ReadOutcome {
            batches,
            next_offset,
            min_offset,
            max_offset,
        })
    }

    /// A read filtered by tag codes: planned from the index (batches without a matching entry
    /// are never read), not prefetched.
    async fn read_filtered(
        &self,
        index: &Rc<RefCell<QueueIndex>>,
        topic_id: u32,
        queue_id: u32,
        request: &ReadRequest,
        codes: &HashSet<i64>,
    ) -> Result<ReadOutcome> {
        let limits = PullLimits {
            max_offset: self.visible_end(&index.borrow()),
            max_messages: request.max_messages,
            max_bytes: request.max_bytes,
        };
        let read = async {
            let (planned, scanned_to) =
                read_plan::plan_filtered(index, request.offset, &limits, codes).await?;
            let (batches, _) = self.fetch(&planned).await?;
            Ok((planned, scanned_to, batches))
        };
        let (planned, scanned_to, batches) = match read.await {
            Err(StorageError::PositionDeleted(_)) => {
                return Err(self.deleted_meanwhile(index, request, topic_id, queue_id))
            }
            other => other?,
        };
        for (batch, plan) in batches.iter().zip(&planned) {
            check_matches_plan(&batch.bytes, plan, topic_id, queue_id)?;
        }
        let (min_offset, max_offset) = {
            let index = index.borrow();
            (
                index.first(),
                limits.max_offset.max(self.visible_end(&index)),
            )
        };
        Ok(ReadOutcome {
            batches,
            next_offset: scanned_to,
            min_offset,
            max_offset,
        })
    }

    /// Starts reading the queue's next pull now (if it is small enough to be worth holding).
    fn prefetch_next(
        &self,
        topic_id: u32,
        queue_id: u32,
        index: &Rc<RefCell<QueueIndex>>,
        next: ReadRequest,
    ) {
        if next.max_bytes > PREFETCH_BYTES_MAX {
            return;
        }
        let key = (
            (topic_id, queue_id),
            next.offset,
            next.max_messages,
            next.max_bytes,
        );
        let (store, index) = (self.clone(), index.clone());
        let pull = glommio::spawn_local(async move { store.read_planned(&index, next).await });
        self.inner.prefetch.insert(key, pull);
    }

    /// Plans a pull from the index and reads its batches.
    async fn read_planned(
        &self,
        index: &RefCell<QueueIndex>,
        request: ReadRequest,
    ) -> Result<PulledBatches> {
        let limits = PullLimits {
            max_offset: self.visible_end(&index.borrow()),
            max_messages: request.max_messages,
            max_bytes: request.max_bytes,
        };
        let planned = read_plan::plan(index, request.offset, &limits).await?;
        let (batches, from_disk) = self.fetch(&planned).await?;
        Ok((planned, batches, from_disk))
    }

    /// The planned batches' bytes, from the hot tail or from disk; true if any came from disk.
    async fn fetch(&self, planned: &[PlannedBatch]) -> Result<(Vec<StoredBatch>, bool)> {
        let (sources, spans) = self.sources(planned)?;
        let reads: Vec<_> = spans
            .into_iter()
            .map(|(segment, start, len)| {
                glommio::spawn_local(async move { segment.read(start, len as usize).await })
            })
            .collect();
        let mut data: Vec<Option<Bytes>> = vec![None; reads.len()];
        let mut batches = Vec::with_capacity(planned.len());
        let mut reads = reads.into_iter().enumerate();
        for (source, plan) in sources.into_iter().zip(planned) {
            let bytes = match source {
                Source::Memory(batch) => batch,
                Source::Disk(span, from) => {
                    while data[span].is_none() {
                        let (i, read) = reads.next().expect("every span has a read");
                        data[i] = Some(read.await?);
                    }
                    let span_data = data[span].as_ref().expect("awaited above");
                    span_data.slice(from..from + plan.len as usize)
                }
            };
            batches.push(StoredBatch {
                position: plan.position,
                bytes,
                selected: plan.selected.clone(),
            });
        }
        Ok((batches, !data.is_empty()))
    }

    /// Where each planned batch comes from, and the disk spans to read: `(segment, start,
    /// length)`. Decided without awaiting, so the hot tail keeps what it was counted on for.
    /// A batch whose segment retention deleted since the read was planned is
    /// [`StorageError::PositionDeleted`].
    fn sources(&self, planned: &[PlannedBatch]) -> Result<(Vec<Source>, Vec<Span>)> {
        let written = self.inner.log.durability.written().0;
        let mut sources = Vec::with_capacity(planned.len());
        let mut spans: Vec<Span> = Vec::new();
        for plan in planned {
            if let Some(batch) = self.inner.hot_tail.borrow().get(plan.position) {
                sources.push(Source::Memory(batch));
                crate::stats::add(&self.inner.log.stats.read_batches_memory, 1);
                continue;
            }
            let stats = &self.inner.log.stats;
            crate::stats::add(&stats.read_batches_disk, 1);
            crate::stats::add(&stats.read_bytes_disk, u64::from(plan.len));
            let len = u64::from(plan.len);
            let appended = self.inner.log.durability.appended().0;
            if plan.position.saturating_add(len) > appended {
                return Err(StorageError::CorruptIndexEntry {
                    position: plan.position,
                    reason: format!(
                        "a {len}-byte batch there would end past the log's end {appended}"
                    ),
                });
            }
            assert!(
                plan.position + len <= written,
                "batch at {} is neither in the hot tail nor written",
                plan.position
            );
            let (segment, segment_end) = self
                .inner
                .segments
                .borrow()
                .find(plan.position)
                .ok_or(StorageError::PositionDeleted(plan.position))?;
            let extends_last = spans.last().is_some_and(|(s, start, span_len)| {
                s.base == segment.base
                    && start + span_len == plan.position
                    && span_len + len <= READ_SPAN_BYTES_MAX
            });
            if !extends_last {
                if segment_end.is_some_and(|end| plan.position + len > end) {
                    return Err(StorageError::CorruptIndexEntry {
                        position: plan.position,
                        reason: format!("a {len}-byte batch there would cross its segment's end"),
                    });
                }
                spans.push((segment, plan.position, 0));
            }
            let span = spans.len() - 1;
            let (_, start, span_len) = &mut spans[span];
            sources.push(Source::Disk(span, (plan.position - *start) as usize));
            *span_len += len;
        }
        Ok((sources, spans))
    }
}

/// A disk read: `(segment, start position, length)`.
type Span = (Rc<Segment>, u64, u64);

enum Source {
    Memory(Bytes),
    /// Index of the span, and the batch's offset inside it.
    Disk(usize, usize),
}

impl ShardStore {
    /// The answer to a read whose batches retention deleted while it was planned: the offset is now
    /// below the queue's start.
    fn deleted_meanwhile(
        &self,
        index: &RefCell<QueueIndex>,
        request: &ReadRequest,
        topic_id: u32,
        queue_id: u32,
    ) -> StorageError {
        let index = index.borrow();
        StorageError::OffsetOutOfRange {
            topic_id,
            queue_id,
            offset: request.offset,
            min: index.first().max(request.offset + 1),
            max: self.visible_end(&index),
        }
    }
}

/// The storage invariant between the index and the log, checked on every batch read. Broken
/// only by a damaged file (index entries are not checksummed, and recovery trusts them below
/// the checkpoint; found by the recovery fuzz target), so it fails this read with
/// [`StorageError::CorruptIndex`] and logs it, rather than stopping every shard.
fn check_matches_plan(
    batch: &[u8],
    plan: &PlannedBatch,
    topic_id: u32,
    queue_id: u32,
) -> Result<(), StorageError> {
    let mismatch = match BatchHeader::parse(batch) {
        Err(e) => Some(format!("the batch it points at is unreadable: {e}")),
        Ok(h) if h.base_offset != plan.base_offset => Some(format!(
            "the batch there starts at offset {}, the index says {}",
            h.base_offset, plan.base_offset
        )),
        Ok(h) if h.end_offset() != plan.end_offset => Some(format!(
            "the batch there ends at offset {}, the index says {}",
            h.end_offset(),
            plan.end_offset
        )),
        Ok(h) if (h.topic_id, h.queue_id) != (topic_id, queue_id) => Some(format!(
            "the batch there belongs to topic {} queue {}",
            h.topic_id, h.queue_id
        )),
        Ok(_) => None,
    };
    match mismatch {
        None => Ok(()),
        Some(reason) => {
            tracing::error!(topic_id, queue_id, position = plan.position, %reason, "a queue index disagrees with the log: the index file is damaged; this read fails");
            Err(StorageError::CorruptIndex {
                topic_id,
                queue_id,
                offset: plan.base_offset,
                position: plan.position,
                reason,
            })
        }
    }
}
