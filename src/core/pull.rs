//! Pulling: whole stored batches of a queue from an offset, with RocketMQ's long polling.
//!
//! [`Core::pull`] reads at once; when there is nothing at the offset and the call may wait, it
//! returns [`PullStart::Park`], and [`Core::finish_parked`] then waits for data (or the wait,
//! or shutdown) and reads again. A front end answers the ready case in line and runs a parked
//! one as a task of its own, so its connection loop never waits on a poll. A call for a queue
//! another shard owns is parked at once and forwarded: it waits there.
//!
//! Statuses follow RocketMQ's store (`GetMessageStatus`): an offset below the queue's minimum
//! answers nothing with `next_offset` = the minimum ([`PullStatus::OffsetTooSmall`], so a
//! consumer behind retention jumps forward instead of looping on errors); an offset past the
//! end answers nothing with `next_offset` = the end ([`PullStatus::OffsetOverflow`]).
//!
//! Filters: a pull may carry its subscription's filter. Tag codes are tested on the index, so
//! batches without a match are never read; the exact tag or the SQL92 expression is then tested
//! per record (`filter::apply`), and only matching records are sent. A pull that found records
//! but no match answers [`PullStatus::NoMatch`] with `next_offset` past them; a long poll that
//! such records woke goes back to waiting from there until its time is up.
//!
//! Commits: a pull may carry the group's offset to commit (RocketMQ's `commitOffset` in
//! `PULL_MESSAGE`), committed on the owning shard before the read.

use std::time::Duration;

use std::rc::Rc;
use std::time::Instant;

use shardmq_protocol::limits::PULL_WAIT_MS_MAX;
use shardmq_shards::consumer_offsets::OffsetKey;
use shardmq_shards::{ReadRequest, StorageError, StoredBatch};

use super::error::{CoreError, CoreResult};
use super::filter::{self, Filter};
use super::groups::FilterSpec;
use super::remote::{RemoteCall, RemoteReply};
use super::Core;
use crate::limits::PULL_BYTES_MAX;

/// A pull, as every front end asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullCall {
    pub topic: String,
    pub queue_id: u32,
    pub offset: u64,
    pub max_messages: u32,
    pub max_bytes: u32,
    /// Long poll: when nothing is at the offset, wait up to this long for it.
    pub wait: Duration,
    /// The subscription's filter (`None`: everything).
    pub filter: Option<FilterSpec>,
    /// An offset to commit for a group before reading.
    pub commit: Option<PullCommit>,
}

impl PullCall {
    /// A read of what is there now: no wait, no filter, no commit.
    pub fn at_once(
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_messages: u32,
        max_bytes: u32,
    ) -> PullCall {
        PullCall {
            topic: topic.to_string(),
            queue_id,
            offset,
            max_messages,
            max_bytes,
            wait: Duration::ZERO,
            filter: None,
            commit: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullCommit {
    /// The group, or `group@member` for a broadcasting member's own progress.
    pub group: String,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    /// The offset is the queue's end: nothing yet.
    NoNewMessages,
    /// Records were there, but none matched the filter; `next_offset` is past them.
    NoMatch,
    OffsetTooSmall,
    OffsetOverflow,
}

/// What a pull found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub status: PullStatus,
    /// Whole stored batches in offset order; the first may start before the asked offset.
    pub batches: Vec<StoredBatch>,
    pub next_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// The shard that owns the queue (its log positions are the batches' positions).
    pub shard_id: u32,
}

/// A pull that has to wait: for data on this shard, or for the shard that owns the queue.
#[derive(Debug)]
pub struct Parked {
    call: PullCall,
    /// The owner, when it is another shard.
    remote: Option<u32>,
}

pub enum PullStart {
    Ready(CoreResult<Pulled>),
    Park(Parked),
}

impl Core {
    /// Starts a pull: the answer now, or a parked long poll for [`Core::finish_parked`].
    pub async fn pull(&self, call: PullCall) -> PullStart {
        if let Err(err) = check(&call) {
            return PullStart::Ready(Err(err));
        }
        let owner = self.owner(&call.topic, call.queue_id);
        if owner != self.shard_id {
            return PullStart::Park(Parked {
                call,
                remote: Some(owner),
            });
        }
        if let Err(err) = self.commit_in_pull(&call).await {
            return PullStart::Ready(Err(err));
        }
        let pulled = self.read(&call).await;
        match pulled {
            Ok(p) if waits(p.status) && !call.wait.is_zero() => {
                let call = PullCall {
                    offset: p.next_offset,
                    commit: None,
                    ..call
                };
                PullStart::Park(Parked { call, remote: None })
            }
            other => PullStart::Ready(other),
        }
    }

    /// Commits the offset a pull carries, on the owning shard (durably before the read under
    /// `flush = sync`, like an explicit commit).
    async fn commit_in_pull(&self, call: &PullCall) -> CoreResult<()> {
        let Some(commit) = &call.commit else {
            return Ok(());
        };
        Self::check_group(super::queue_ops::offset_owner_group(&commit.group))?;
        let topic = self.topic_queue(&call.topic, call.queue_id)?;
        let (_, max) = self.store.offsets(topic.topic_id, call.queue_id);
        let key = OffsetKey {
            group: Rc::from(commit.group.as_str()),
            topic_id: topic.topic_id,
            queue_id: call.queue_id,
        };
        let offsets = self.store.consumer_offsets();
        offsets.commit(key, commit.offset.min(max));
        offsets.durable().await?;
        Ok(())
    }

    /// Waits out a parked pull and answers it.
    pub async fn finish_parked(&self, parked: Parked) -> CoreResult<Pulled> {
        match parked.remote {
            Some(owner) => self.pull_remote(owner, parked.call).await,
            None => self.wait_and_read(parked.call).await,
        }
    }

    /// A pull whose long poll, if any, runs to its end (what the mesh serves).
    pub(crate) async fn pull_to_end(&self, call: PullCall) -> CoreResult<Pulled> {
        match self.pull(call).await {
            PullStart::Ready(result) => result,
            PullStart::Park(parked) => self.finish_parked(parked).await,
        }
    }

    async fn pull_remote(&self, owner: u32, call: PullCall) -> CoreResult<Pulled> {
        match self.call(owner, RemoteCall::Pull(call)).await? {
            RemoteReply::Pulled(result) => result,
            other => Err(other.unexpected(owner)),
        }
    }

    /// The second half of a long poll: waits for data past the offset, reads, and while what
    /// came did not match the filter, goes on waiting from past it until the time is up.
    async fn wait_and_read(&self, mut call: PullCall) -> CoreResult<Pulled> {
        let deadline = Instant::now() + call.wait;
        loop {
            let topic = self.topic_queue(&call.topic, call.queue_id)?;
            let left = deadline.saturating_duration_since(Instant::now());
            let data = self
                .store
                .wait_for_data(topic.topic_id, call.queue_id, call.offset, left);
            futures_lite::future::or(
                async {
                    data.await;
                },
                self.until_shutdown(),
            )
            .await;
            let pulled = self.read(&call).await?;
            let time_is_up = Instant::now() >= deadline || self.is_shutting_down();
            if !waits(pulled.status) || time_is_up {
                return Ok(pulled);
            }
            call.offset = pulled.next_offset;
        }
    }

    /// Reads what is there now, on the owning shard.
    async fn read(&self, call: &PullCall) -> CoreResult<Pulled> {
        let topic = self.topic_queue(&call.topic, call.queue_id)?;
        if !topic.readable() {
            return Err(CoreError::NoPermission {
                topic: call.topic.clone(),
                what: "readable",
            });
        }
        let filter = match &call.filter {
            Some(spec) if !spec.is_all() => Some(self.filters.get(spec)?),
            _ => None,
        };
        let request = ReadRequest {
            offset: call.offset,
            max_messages: call.max_messages.max(1),
            max_bytes: call.max_bytes.clamp(1, PULL_BYTES_MAX),
            tag_codes: filter.as_deref().and_then(Filter::codes),
        };
        let read = match self
            .store
            .read(topic.topic_id, call.queue_id, request)
            .await
        {
            Ok(read) => read,
            Err(StorageError::OffsetOutOfRange { min, max, .. }) => {
                let (status, next_offset) = if call.offset < min {
                    (PullStatus::OffsetTooSmall, min)
                } else {
                    (PullStatus::OffsetOverflow, max)
                };
                return Ok(self.nothing(status, next_offset, min, max));
            }
            Err(err) => return Err(err.into()),
        };
        let batches = match &filter {
            Some(filter) => filter::apply(filter, read.batches, call.offset),
            None => read.batches,
        };
        self.count_consumed(
            topic.topic_id,
            call.offset,
            read.next_offset,
            &batches,
            filter.is_some(),
        );
        let status = if !batches.is_empty() {
            PullStatus::Found
        } else if read.next_offset > call.offset {
            PullStatus::NoMatch
        } else {
            PullStatus::NoNewMessages
        };
        Ok(Pulled {
            status,
            batches,
            next_offset: read.next_offset,
            min_offset: read.min_offset,
            max_offset: read.max_offset,
            shard_id: self.shard_id,
        })
    }

    /// Counts what a pull returns: for an unfiltered pull the records from the asked offset to
    /// the next one, for a filtered pull the records selected.
    fn count_consumed(
        &self,
        topic_id: u32,
        offset: u64,
        next_offset: u64,
        batches: &[shardmq_shards::StoredBatch],
        filtered: bool,
    ) {
        if batches.is_empty() {
            return;
        }
        let messages = if filtered {
            batches
                .iter()
                .map(|b| b.selected.as_ref().map_or(0, |s| s.len() as u64))
                .sum()
        } else {
            next_offset.saturating_sub(offset)
        };
        let bytes = batches.iter().map(|b| b.bytes.len() as u64).sum();
        self.metrics.consumed(topic_id, messages, bytes);
    }

    fn nothing(&self, status: PullStatus, next_offset: u64, min: u64, max: u64) -> Pulled {
        Pulled {
            status,
            batches: Vec::new(),
            next_offset,
            min_offset: min,
            max_offset: max,
            shard_id: self.shard_id,
        }
    }
}

/// Statuses a long poll waits on.
fn waits(status: PullStatus) -> bool {
    matches!(status, PullStatus::NoNewMessages | PullStatus::NoMatch)
}

fn check(call: &PullCall) -> CoreResult<()> {
    if call.wait > Duration::from_millis(PULL_WAIT_MS_MAX.into()) {
        return Err(CoreError::InvalidArgument(format!(
            "a long poll of {} ms exceeds {PULL_WAIT_MS_MAX} ms",
            call.wait.as_millis()
        )));
    }
    Ok(())
}
