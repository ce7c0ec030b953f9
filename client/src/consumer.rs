//! [`Consumer`]: reads one queue of one topic in offset order, by long-polling pulls.
//!
//! Owns its position (the next offset to pull). [`Consumer::poll`] pulls from it, validates the
//! reply's batches (CRCs, count, queue, contiguity), and only then advances the position to the
//! reply's `next_offset`, so a corrupted or failed reply leaves the position where it was and the
//! next poll asks again. No offsets are committed to the broker in this version.
//!
//! Prefetch: after a poll that returned records (the queue likely has a backlog), the next pull
//! is sent at once, so the broker reads and sends it while the caller processes this one. A
//! `seek`, or a poll with other arguments, drops the prefetched reply.
//!
//! Runs on the glommio executor of its [`Client`]; `!Send`.

use crate::client::{Client, PendingPull};
use crate::error::{ClientError, Result};
use crate::pull::PullResult;

/// Default bound on the bytes one pull may return.
pub const DEFAULT_PULL_MAX_BYTES: u32 = 4 << 20;

pub struct Consumer {
    client: Client,
    topic: String,
    queue_id: u32,
    offset: u64,
    max_bytes: u32,
    /// The next pull, sent ahead, with the `(max_messages, wait_ms)` it was sent with.
    prefetched: Option<(PendingPull, u32, u32)>,
}

impl Consumer {
    /// A consumer of `(topic, queue_id)` starting at `start_offset`.
    pub fn new(client: &Client, topic: &str, queue_id: u32, start_offset: u64) -> Consumer {
        Consumer {
            client: client.clone(),
            topic: topic.to_owned(),
            queue_id,
            offset: start_offset,
            max_bytes: DEFAULT_PULL_MAX_BYTES,
            prefetched: None,
        }
    }

    /// Sets the byte bound of each pull (the broker still returns at least one whole batch).
    pub fn with_max_bytes(mut self, max_bytes: u32) -> Consumer {
        self.max_bytes = max_bytes;
        self.prefetched = None;
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// The next offset [`Consumer::poll`] will ask for.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Moves the position, e.g. after `OffsetOutOfRange` to `queue_offsets().min_offset`.
    pub fn seek(&mut self, offset: u64) {
        self.offset = offset;
        self.prefetched = None;
    }

    /// Pulls up to `max_messages` records from the current position, waiting up to `wait_ms`
    /// when none are there yet. The result is validated; iterate it with
    /// [`PullResult::records`]. An empty result means nothing arrived within `wait_ms`.
    pub async fn poll(&mut self, max_messages: u32, wait_ms: u32) -> Result<PullResult> {
        let pending = match self.prefetched.take() {
            Some((pending, m, w))
                if pending.offset() == self.offset && (m, w) == (max_messages, wait_ms) =>
            {
                pending
            }
            _ => self.send(max_messages, wait_ms).await?,
        };
        let result = pending.wait().await?;
        result.batches()?;
        if result.next_offset() < self.offset {
            return Err(ClientError::UnexpectedReply(format!(
                "pull at {} returned next_offset {}",
                self.offset,
                result.next_offset()
            )));
        }
        self.offset = result.next_offset();
        if !result.is_empty() {
            // A failed prefetch is not this poll's error; the next poll simply asks again.
            if let Ok(next) = self.send(max_messages, wait_ms).await {
                self.prefetched = Some((next, max_messages, wait_ms));
            }
        }
        Ok(result)
    }

    async fn send(&self, max_messages: u32, wait_ms: u32) -> Result<PendingPull> {
        self.client
            .send_pull(
                &self.topic,
                self.queue_id,
                self.offset,
                max_messages,
                self.max_bytes,
                wait_ms,
            )
            .await
    }
}
