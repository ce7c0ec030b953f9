//! Finding offsets by store time, and whether an offset is still in memory: what consumer-offset
//! resets and RocketMQ's first-start rules need. Both are answered from the queue index (its
//! entries hold the store time) without reading the log.

use crate::error::Result;
use crate::recovery::{entry_at, first_offset_where};
use crate::store::ShardStore;

impl ShardStore {
    /// The first offset of `(topic_id, queue_id)` stored at or after `timestamp_ms`, or the
    /// queue's end when every record is older. A binary search over the index: O(log n) entry
    /// lookups (each a memory read, or one chunk load for an evicted chunk).
    pub async fn offset_by_time(
        &self,
        topic_id: u32,
        queue_id: u32,
        timestamp_ms: u64,
    ) -> Result<u64> {
        let Some(index) = self
            .inner
            .queues
            .borrow()
            .get(&(topic_id, queue_id))
            .cloned()
        else {
            return Ok(0);
        };
        let (first, end) = {
            let index = index.borrow();
            (index.first(), self.visible_end(&index))
        };
        let found = first_offset_where(&index, first, |e| e.store_ms >= timestamp_ms).await?;
        Ok(found.min(end))
    }

    /// When the queue's first record still stored was stored, or `None` for an empty queue.
    pub async fn earliest_store_time(&self, topic_id: u32, queue_id: u32) -> Result<Option<u64>> {
        let (first, _) = self.offsets(topic_id, queue_id);
        self.store_time_at(topic_id, queue_id, first).await
    }

    /// When the record at `offset` of the queue was stored, or `None` past its end or before
    /// its start.
    pub async fn store_time_at(
        &self,
        topic_id: u32,
        queue_id: u32,
        offset: u64,
    ) -> Result<Option<u64>> {
        let Some(index) = self
            .inner
            .queues
            .borrow()
            .get(&(topic_id, queue_id))
            .cloned()
        else {
            return Ok(None);
        };
        if offset >= self.visible_end(&index.borrow()) || offset < index.borrow().first() {
            return Ok(None);
        }
        Ok(Some(entry_at(&index, offset).await?.store_ms))
    }

    /// True when the batch holding `offset` is still in the hot tail (RocketMQ's "still in
    /// memory", which its first-start rule for `CONSUME_FROM_LAST_OFFSET` looks at).
    pub async fn offset_in_memory(
        &self,
        topic_id: u32,
        queue_id: u32,
        offset: u64,
    ) -> Result<bool> {
        let Some(index) = self
            .inner
            .queues
            .borrow()
            .get(&(topic_id, queue_id))
            .cloned()
        else {
            return Ok(false);
        };
        if offset >= self.visible_end(&index.borrow()) || offset < index.borrow().first() {
            return Ok(false);
        }
        let entry = entry_at(&index, offset).await?;
        Ok(self.inner.hot_tail.borrow().get(entry.position).is_some())
    }
}
