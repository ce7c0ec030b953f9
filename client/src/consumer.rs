//! [`Consumer`]: reads one queue of one topic in offset order, by long-polling pulls.
//!
//! Owns its position (the next offset to pull). [`Consumer::poll`] pulls from it, validates the
//! reply's batches (CRCs, count, queue, contiguity), and only then advances the position to the
//! reply's `next_offset`, so a corrupted or failed reply leaves the position where it was and the
//! next poll asks again.
//!
//! Options: a filter ([`Consumer::with_filter`]: only matching records come back, the others
//! never leave the broker, and the reply's batches skip their offsets), and commits for a group
//! inside the pulls ([`Consumer::with_group_commits`], RocketMQ's commit-in-pull): each pull
//! commits the position at which the caller last called `poll` — everything returned before that
//! call is done, since the caller asks for more only once it is. A prefetched pull therefore
//! commits one poll behind, never ahead of what the caller finished.
//!
//! Prefetch: after a poll that returned records (the queue likely has a backlog), the next pull
//! is sent at once, so the broker reads and sends it while the caller processes this one. A
//! `seek`, or a poll with other arguments, drops the prefetched reply.
//!
//! Runs on the glommio executor of its [`Client`]; `!Send`.

use shardmq_protocol::messages::{OffsetCommit, Pull};

use crate::client::{Client, PendingPull};
use crate::error::{ClientError, Result};
use crate::member::Filter;
use crate::pull::PullResult;

/// Default bound on the bytes one pull may return.
pub const DEFAULT_PULL_MAX_BYTES: u32 = 4 << 20;

pub struct Consumer {
    client: Client,
    topic: String,
    queue_id: u32,
    offset: u64,
    max_bytes: u32,
    /// Only records that match (`None`: all).
    filter: Option<Filter>,
    /// Commit progress for this group (its offsets key) in every pull.
    commit_group: Option<String>,
    /// The position when the caller last called `poll`: everything before it is done.
    done: Option<u64>,
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
            filter: None,
            commit_group: None,
            done: None,
            prefetched: None,
        }
    }

    /// Pulls only records that `filter` lets through (`*` is the same as no filter).
    pub fn with_filter(mut self, filter: Filter) -> Consumer {
        self.filter = (filter != Filter::all()).then_some(filter);
        self.prefetched = None;
        self
    }

    /// Commits the consumer's progress for `group` (a broadcasting member: its offsets key,
    /// `MemberConfig::offsets_key`) inside its pulls; see the module doc for what is committed.
    pub fn with_group_commits(mut self, group: &str) -> Consumer {
        self.commit_group = Some(group.to_owned());
        self.prefetched = None;
        self
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
        self.done = None;
        self.prefetched = None;
    }

    /// Pulls up to `max_messages` records from the current position, waiting up to `wait_ms`
    /// when none are there yet. The result is validated; iterate it with
    /// [`PullResult::records`]. An empty result means nothing arrived within `wait_ms`.
    pub async fn poll(&mut self, max_messages: u32, wait_ms: u32) -> Result<PullResult> {
        // Everything returned before this call is done: the caller asks again only then.
        self.done = Some(self.offset);
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
        let commit = match (&self.commit_group, self.done) {
            (Some(group), Some(offset)) => Some(OffsetCommit {
                group: group.clone(),
                offset,
            }),
            _ => None,
        };
        let request = Pull {
            topic: self.topic.clone(),
            queue_id: self.queue_id,
            offset: self.offset,
            max_messages,
            max_bytes: self.max_bytes,
            wait_ms,
            filter: self.filter.as_ref().map(Filter::to_spec),
            commit,
        };
        self.client.send_pull_request(request).await
    }
}
