//! POP consumption (RocketMQ 5.x's SimpleConsumer): a group's consumers receive messages from
//! any queue of a topic; each message received stays invisible to the group for a while and is
//! handed out again unless acknowledged in time. Served for the queues this shard owns; a
//! front end asks each owning shard (`fronts::grpc`).
//!
//! - Where a group starts: its committed offset, or the queue's earliest retained message for a
//!   new group (RocketMQ's proxy does the same on young queues).
//! - What is handed out: first the group's messages whose invisibility ran out (attempt + 1),
//!   then new ones from where the group stopped; records the subscription's filter does not
//!   match are skipped (done for that group).
//! - What survives a restart: the committed offset, which is the oldest message not yet
//!   acknowledged (`state`); it is committed like a pulled offset (written every
//!   `--offsets-flush-interval-ms`). Messages in flight at a restart are handed out again:
//!   delivery is at least once, and nothing acknowledged is handed out again before a restart.
//! - A receipt handle names the queue, the offset and an epoch, a number this shard made for
//!   that delivery (starting from its clock at start, so handles from before a restart do not
//!   match new deliveries); the group and topic come with every ack.
//! - Not yet: FIFO groups' one-at-a-time delivery per message group, and dead-letter queues
//!   after too many attempts (a message keeps coming back until acknowledged).

pub mod state;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use shardmq_protocol::record::ArchivedRecord;
use shardmq_protocol::{BatchView, Record};
use shardmq_shards::consumer_offsets::OffsetKey;

use super::error::{CoreError, CoreResult};
use super::groups::FilterSpec;
use super::pull::{PullCall, PullStatus, Pulled};
use super::Core;
use crate::core::filter::Filter;
use state::{deadline, PopQueue, Stale};

/// Records read from the log per step of a receive.
const READ_STEP: u32 = 64;
const READ_BYTES_MAX: u32 = 4 << 20;
/// (group, queue) pairs whose POP progress one shard keeps at most. Past it, idle ones (nothing
/// in flight, their offset committed) are dropped; if none is idle, a receive is refused.
pub const POP_STATES_MAX: usize = 65_536;

/// One receive from the queues of a topic this shard owns.
#[derive(Debug, Clone)]
pub struct PopCall {
    pub group: String,
    pub topic: String,
    pub queue_ids: Vec<u32>,
    pub filter: FilterSpec,
    pub max_messages: u32,
    pub invisible: Duration,
}

/// Names one delivery of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptHandle {
    pub queue_id: u32,
    pub offset: u64,
    pub epoch: u64,
}

impl ReceiptHandle {
    const PREFIX: &'static str = "s1";

    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{:x}",
            Self::PREFIX,
            self.queue_id,
            self.offset,
            self.epoch
        )
    }

    /// `None` for anything [`ReceiptHandle::encode`] did not make.
    pub fn decode(text: &str) -> Option<ReceiptHandle> {
        let mut parts = text.split('.');
        if parts.next()? != Self::PREFIX {
            return None;
        }
        let handle = ReceiptHandle {
            queue_id: parts.next()?.parse().ok()?,
            offset: parts.next()?.parse().ok()?,
            epoch: u64::from_str_radix(parts.next()?, 16).ok()?,
        };
        parts.next().is_none().then_some(handle)
    }
}

/// One message handed out.
#[derive(Debug, Clone)]
pub struct Popped {
    pub queue_id: u32,
    pub offset: u64,
    pub store_ms: u64,
    pub attempt: u32,
    pub handle: ReceiptHandle,
    pub record: Record,
}

type PopKey = (Rc<str>, u32, u32);

/// This shard's POP progress of every group over its queues.
pub struct PopStates {
    queues: RefCell<HashMap<PopKey, PopQueue>>,
    next_epoch: Cell<u64>,
}

impl Default for PopStates {
    fn default() -> Self {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        PopStates {
            queues: RefCell::new(HashMap::new()),
            next_epoch: Cell::new(clock),
        }
    }
}

impl PopStates {
    fn epoch(&self) -> u64 {
        let epoch = self.next_epoch.get();
        self.next_epoch.set(epoch.wrapping_add(1));
        epoch
    }
}

fn invalid(stale: Stale) -> CoreError {
    CoreError::InvalidReceiptHandle(stale.reason().to_string())
}

impl Core {
    /// Hands out up to `call.max_messages` messages of the group from the queues named.
    pub async fn pop(&self, call: PopCall) -> CoreResult<Vec<Popped>> {
        Self::check_group(&call.group)?;
        let topic = self.topic(&call.topic)?;
        if !topic.readable() {
            return Err(CoreError::NoPermission {
                topic: call.topic.clone(),
                what: "readable",
            });
        }
        let filter = self.filters.get(&call.filter)?;
        let group: Rc<str> = Rc::from(call.group.as_str());
        let mut out = Vec::new();
        for &queue_id in &call.queue_ids {
            let left = call.max_messages as usize - out.len();
            if left == 0 {
                break;
            }
            assert_eq!(
                self.owner(&topic.name, queue_id),
                self.shard_id,
                "a pop runs on the owner"
            );
            let key = (group.clone(), topic.topic_id, queue_id);
            self.ensure_pop_state(&key)?;
            self.pop_expired(&key, &call, left, &mut out).await?;
            let left = call.max_messages as usize - out.len();
            self.pop_new(&key, &call, &filter, left, &mut out).await?;
            self.commit_pop_base(&key);
        }
        Ok(out)
    }

    fn ensure_pop_state(&self, key: &PopKey) -> CoreResult<()> {
        let mut queues = self.pop.queues.borrow_mut();
        if queues.contains_key(key) {
            return Ok(());
        }
        if queues.len() >= POP_STATES_MAX {
            queues.retain(|_, q| !q.is_idle());
        }
        if queues.len() >= POP_STATES_MAX {
            return Err(CoreError::LimitReached(format!(
                "shard {} holds messages in flight for {POP_STATES_MAX} consumer queues; acknowledge some first",
                self.shard_id
            )));
        }
        queues.insert(key.clone(), self.resumed(key));
        Ok(())
    }

    /// Where a group resumes on a queue: its committed offset, or the earliest retained.
    fn resumed(&self, key: &PopKey) -> PopQueue {
        let committed = self.store.consumer_offsets().get(&offset_key(key));
        let (min, _) = self.store.offsets(key.1, key.2);
        PopQueue::starting_at(committed.unwrap_or(min).max(min))
    }

    /// Runs `f` on the key's state, made again from the committed offset if it was dropped
    /// while idle (by another receive, at an await of this one).
    fn with_state<T>(&self, key: &PopKey, f: impl FnOnce(&mut PopQueue) -> T) -> T {
        let mut queues = self.pop.queues.borrow_mut();
        let state = queues
            .entry(key.clone())
            .or_insert_with(|| self.resumed(key));
        f(state)
    }

    /// Messages whose invisibility ran out, handed out again.
    async fn pop_expired(
        &self,
        key: &PopKey,
        call: &PopCall,
        max: usize,
        out: &mut Vec<Popped>,
    ) -> CoreResult<()> {
        let expired = self.with_state(key, |q| q.expired(Instant::now(), max));
        for offset in expired {
            let pulled = self.read_for_pop(&call.topic, key.2, offset, 1).await?;
            let mut found = None;
            each_record(&pulled, offset, |o, store_ms, r| {
                if o == offset && found.is_none() {
                    found = Some((store_ms, owned(r)));
                }
            });
            let now = Instant::now();
            let Some((store_ms, Some(record))) = found else {
                self.with_state(key, |q| q.forget(offset));
                continue;
            };
            let epoch = self.pop.epoch();
            let until = deadline(now, call.invisible);
            if let Some(attempt) = self.with_state(key, |q| q.redeliver(offset, now, until, epoch))
            {
                out.push(popped(key.2, offset, store_ms, attempt, epoch, record));
            }
        }
        Ok(())
    }

    /// New messages from where the group stopped, the filter's misses skipped.
    async fn pop_new(
        &self,
        key: &PopKey,
        call: &PopCall,
        filter: &Filter,
        max: usize,
        out: &mut Vec<Popped>,
    ) -> CoreResult<()> {
        let mut wanted = max;
        while wanted > 0 && self.with_state(key, |q| q.has_room()) {
            let from = self.with_state(key, |q| q.next());
            let pulled = self
                .read_for_pop(&call.topic, key.2, from, READ_STEP)
                .await?;
            match pulled.status {
                PullStatus::OffsetTooSmall => {
                    self.with_state(key, |q| q.retained_from(pulled.next_offset));
                    continue;
                }
                PullStatus::Found | PullStatus::NoMatch => {}
                PullStatus::NoNewMessages | PullStatus::OffsetOverflow => return Ok(()),
            }
            // Every match of the step, in offset order: records past the last one handed out
            // must not be skipped, whether this receive stopped for its batch size or because
            // the group has too many in flight.
            let mut matched = Vec::new();
            each_record(&pulled, from, |offset, store_ms, r| {
                if filter.matches(r) {
                    matched.push((offset, store_ms, owned(r)));
                }
            });
            let now = Instant::now();
            let mut end = pulled.next_offset;
            for (offset, store_ms, record) in matched {
                if wanted == 0 || !self.with_state(key, |q| q.has_room()) {
                    end = offset;
                    break;
                }
                let Some(record) = record else {
                    tracing::error!(
                        offset,
                        queue = key.2,
                        "a stored record does not deserialize; skipped"
                    );
                    continue;
                };
                let epoch = self.pop.epoch();
                let until = deadline(now, call.invisible);
                // False when a concurrent receive of the group took it first: it is in flight.
                if self.with_state(key, |q| q.deliver_new(offset, until, epoch)) {
                    out.push(popped(key.2, offset, store_ms, 1, epoch, record));
                    wanted -= 1;
                }
            }
            let stopped_early = end < pulled.next_offset;
            self.with_state(key, |q| q.skip_to(end));
            if stopped_early || pulled.next_offset <= from {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn read_for_pop(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max: u32,
    ) -> CoreResult<Pulled> {
        self.pull_to_end(PullCall::at_once(
            topic,
            queue_id,
            offset,
            max,
            READ_BYTES_MAX,
        ))
        .await
    }

    fn commit_pop_base(&self, key: &PopKey) {
        let base = self.with_state(key, |q| q.base());
        self.store.consumer_offsets().commit(offset_key(key), base);
    }

    fn pop_key(&self, group: &str, topic: &str, queue_id: u32) -> CoreResult<PopKey> {
        Self::check_group(group)?;
        let topic = self.topic_queue(topic, queue_id)?;
        Ok((Rc::from(group), topic.topic_id, queue_id))
    }

    /// Acknowledges one delivery.
    pub fn ack_popped(&self, group: &str, topic: &str, handle: ReceiptHandle) -> CoreResult<()> {
        let key = self.pop_key(group, topic, handle.queue_id)?;
        let mut queues = self.pop.queues.borrow_mut();
        let queue = queues
            .get_mut(&key)
            .ok_or_else(|| invalid(Stale::NotInFlight))?;
        queue
            .ack(handle.offset, handle.epoch, Instant::now())
            .map_err(invalid)?;
        drop(queues);
        self.commit_pop_base(&key);
        Ok(())
    }

    /// Keeps a delivery invisible for `invisible` from now; its new handle (the old one stops
    /// working).
    pub fn change_invisibility(
        &self,
        group: &str,
        topic: &str,
        handle: ReceiptHandle,
        invisible: Duration,
    ) -> CoreResult<ReceiptHandle> {
        let key = self.pop_key(group, topic, handle.queue_id)?;
        let epoch = self.pop.epoch();
        let now = Instant::now();
        let mut queues = self.pop.queues.borrow_mut();
        let queue = queues
            .get_mut(&key)
            .ok_or_else(|| invalid(Stale::NotInFlight))?;
        queue
            .change_deadline(
                handle.offset,
                handle.epoch,
                now,
                deadline(now, invisible),
                epoch,
            )
            .map_err(invalid)?;
        Ok(ReceiptHandle { epoch, ..handle })
    }
}

fn offset_key(key: &PopKey) -> OffsetKey {
    OffsetKey {
        group: key.0.clone(),
        topic_id: key.1,
        queue_id: key.2,
    }
}

fn popped(
    queue_id: u32,
    offset: u64,
    store_ms: u64,
    attempt: u32,
    epoch: u64,
    record: Record,
) -> Popped {
    Popped {
        queue_id,
        offset,
        store_ms,
        attempt,
        handle: ReceiptHandle {
            queue_id,
            offset,
            epoch,
        },
        record,
    }
}

fn owned(record: &ArchivedRecord) -> Option<Record> {
    rkyv::deserialize::<Record, rkyv::rancor::Error>(record).ok()
}

/// Every stored record of `pulled` at or past `from`: its offset, store time and record.
fn each_record(pulled: &Pulled, from: u64, mut f: impl FnMut(u64, u64, &ArchivedRecord)) {
    for batch in &pulled.batches {
        let Ok(view) = BatchView::trusted(&batch.bytes) else {
            tracing::error!(position = batch.position, "a stored batch does not parse");
            continue;
        };
        let header = view.header;
        for (delta, record) in view.records_trusted().iter() {
            let offset = header.base_offset + delta;
            if offset >= from {
                f(offset, header.append_timestamp_ms, record);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_handle_reads_back_and_nothing_else_does() {
        let handle = ReceiptHandle {
            queue_id: 3,
            offset: 1 << 40,
            epoch: u64::MAX,
        };
        assert_eq!(ReceiptHandle::decode(&handle.encode()), Some(handle));
        for bad in [
            "",
            "s1",
            "s1.1.2",
            "s2.1.2.3",
            "s1.x.2.3",
            "s1.1.2.3.4",
            "s1.1.2.zz",
        ] {
            assert_eq!(ReceiptHandle::decode(bad), None, "{bad:?}");
        }
    }
}
