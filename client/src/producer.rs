//! [`Producer`]: accumulates records into per-queue batches and sends them with a bounded number
//! of batches awaiting acknowledgement.
//!
//! Flow: [`Producer::send`] appends a record to the `BatchBuilder` of its `(topic, queue)` and
//! returns a [`SendHandle`] that resolves to the record's queue offset. A batch is sealed when it
//! reaches `batch_max_records` or `batch_max_bytes`, when `linger` has passed since its first
//! record, or on [`Producer::flush`]. Sealed batches enter one FIFO queue; a dispatcher task
//! takes them in order, waits for one of `max_in_flight_batches` permits, writes the produce
//! frame on the owning shard's connection, and leaves a small task to await the ack and resolve
//! every record's handle (`base_offset + index`).
//!
//! Invariants: batches reach the wire in seal order (one dispatcher, which finishes writing a
//! batch before it takes the next), so acked offsets follow `send` order within a queue, as long
//! as no batch fails (a batch that fails on a broken connection is not retried, and the next one
//! goes out on a new connection). At most `max_in_flight_batches` batches await acks; `send`
//! waits (backpressure) while that many sealed batches are queued behind them. Every handle is
//! resolved exactly once: with the offset, or with the error of its batch. Dropping the producer
//! seals what it holds; the dispatcher sends it and then exits, but only `flush` tells whether
//! it was stored.
//!
//! Runs on one glommio executor (it spawns the dispatcher, linger timers and ack waiters with
//! `spawn_local`); `!Send`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use event_listener::{Event, EventListener};
use rkyv::util::AlignedVec;
use shardmq_protocol::batch::{encode_batch, BATCH_HEADER_BYTES};
use shardmq_protocol::limits::{BATCH_BYTES_MAX, BATCH_RECORDS_MAX};
use shardmq_protocol::messages::ProduceReply;
use shardmq_protocol::{BatchBuilder, FrameKind, Record};

use crate::client::{check_topic, produce_prefix, Client};
use crate::error::{ClientError, Result};
use crate::signal::{with_timeout, Slot};

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Seal a batch when it holds this many records (1..=`BATCH_RECORDS_MAX`).
    pub batch_max_records: usize,
    /// Seal a batch when its estimated encoded size reaches this (bytes, <= `BATCH_BYTES_MAX`).
    /// A single larger record is sent alone.
    pub batch_max_bytes: usize,
    /// Seal a batch this long after its first record even if it is not full.
    pub linger: Duration,
    /// Batches sent and not yet acknowledged, across all queues (>= 1).
    pub max_in_flight_batches: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_max_records: 1000,
            batch_max_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            max_in_flight_batches: 8,
        }
    }
}

impl ProducerConfig {
    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(ClientError::InvalidArgument(what));
        if self.batch_max_records == 0 || self.batch_max_records > BATCH_RECORDS_MAX as usize {
            return bad(format!(
                "batch_max_records {} not in 1..={BATCH_RECORDS_MAX}",
                self.batch_max_records
            ));
        }
        if self.batch_max_bytes <= BATCH_HEADER_BYTES
            || self.batch_max_bytes > BATCH_BYTES_MAX as usize
        {
            return bad(format!(
                "batch_max_bytes {} not in {}..={BATCH_BYTES_MAX}",
                self.batch_max_bytes,
                BATCH_HEADER_BYTES + 1
            ));
        }
        if self.max_in_flight_batches == 0 {
            return bad("max_in_flight_batches must be at least 1".into());
        }
        Ok(())
    }
}

/// RocketMQ's `SelectMessageQueueByHash`: `hash(key) % queues`, negative values made positive.
pub fn queue_for_key(sharding_key: &str, queues: u32) -> u32 {
    let queues = queues.max(1) as i32;
    let hash = shardmq_protocol::record::java_string_hash(sharding_key);
    (hash % queues).unsigned_abs()
}

/// Resolved once per batch: the batch's base offset, or why it failed.
type BatchSlot = Slot<Result<u64>>;

/// Handed out by [`Producer::send`]; await it for the record's queue offset.
pub struct SendHandle {
    slot: Rc<BatchSlot>,
    index: u32,
    listener: Option<EventListener>,
}

impl SendHandle {
    /// True once the record's batch was acknowledged or failed.
    pub fn is_done(&self) -> bool {
        self.slot.is_set()
    }
}

impl Future for SendHandle {
    type Output = Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        loop {
            if let Some(result) = self.slot.peek() {
                let index = u64::from(self.index);
                return Poll::Ready(result.map(|base| base + index));
            }
            match self.listener.as_mut() {
                None => self.listener = Some(self.slot.listen()),
                Some(listener) => {
                    futures_lite::ready!(Pin::new(listener).poll(cx));
                    self.listener = None;
                }
            }
        }
    }
}

/// A producer handle; clones share batches, the dispatcher and the in-flight limit.
#[derive(Clone)]
pub struct Producer {
    inner: Rc<Inner>,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    /// Queue counts of the topics `queue_for_key` was asked about.
    queue_counts: RefCell<HashMap<String, u32>>,
    /// topic -> queue id -> the batch being filled.
    open: RefCell<HashMap<String, Vec<Option<Open>>>>,
    next_generation: Cell<u64>,
    shared: Rc<Shared>,
}

/// A batch being filled.
struct Open {
    builder: BatchBuilder,
    slot: Rc<BatchSlot>,
    /// Tells the linger timer whether the batch it was started for is still this one.
    generation: u64,
}

/// A batch ready to go.
struct Sealed {
    topic: String,
    queue_id: u32,
    batch: AlignedVec<16>,
    record_count: usize,
    slot: Rc<BatchSlot>,
}

/// State shared with the dispatcher and ack tasks (which must not keep `Inner` alive).
struct Shared {
    queue: RefCell<VecDeque<Sealed>>,
    /// Notified when a batch is queued or the producer closes.
    work: Event,
    /// Notified when the dispatcher takes a batch off the queue.
    space: Event,
    /// Sealed batches not yet resolved.
    outstanding: Cell<usize>,
    /// Notified when `outstanding` drops to zero.
    idle: Event,
    first_error: RefCell<Option<ClientError>>,
    closed: Cell<bool>,
}

impl Shared {
    fn resolve(&self, slot: &BatchSlot, result: Result<u64>) {
        if let Err(e) = &result {
            tracing::debug!("batch failed: {e}");
            self.first_error
                .borrow_mut()
                .get_or_insert_with(|| e.clone());
        }
        slot.set(result);
        let left = self.outstanding.get() - 1;
        self.outstanding.set(left);
        if left == 0 {
            self.idle.notify(usize::MAX);
        }
    }
}

impl Producer {
    /// Creates a producer sending through `client` (its connections are shared).
    pub fn new(client: &Client, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let shared = Rc::new(Shared {
            queue: RefCell::new(VecDeque::new()),
            work: Event::new(),
            space: Event::new(),
            outstanding: Cell::new(0),
            idle: Event::new(),
            first_error: RefCell::new(None),
            closed: Cell::new(false),
        });
        glommio::spawn_local(dispatch_loop(
            client.clone(),
            shared.clone(),
            config.max_in_flight_batches,
        ))
        .detach();
        Ok(Producer {
            inner: Rc::new(Inner {
                queue_counts: RefCell::new(HashMap::new()),
                client: client.clone(),
                config,
                open: RefCell::new(HashMap::new()),
                next_generation: Cell::new(0),
                shared,
            }),
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Sealed batches not yet acknowledged (queued or in flight).
    pub fn outstanding_batches(&self) -> usize {
        self.inner.shared.outstanding.get()
    }

    /// Adds `record` to the batch of `(topic, queue_id)`. Waits only when
    /// `max_in_flight_batches` sealed batches are already queued behind those in flight. The
    /// returned handle resolves to the record's queue offset once its batch is acknowledged.
    pub async fn send(&self, topic: &str, queue_id: u32, mut record: Record) -> Result<SendHandle> {
        let inner = &*self.inner;
        if record.unique_id.is_empty() {
            record.unique_id = crate::message::unique_id();
        }
        let record_bytes = record.encoded_bytes_estimate();
        // Counted as BatchBuilder::estimated_bytes counts it.
        if record_bytes + BATCH_HEADER_BYTES > BATCH_BYTES_MAX as usize {
            return Err(ClientError::InvalidArgument(format!(
                "record of {record_bytes} bytes cannot fit in a batch"
            )));
        }
        // Fail this one call now rather than the whole batch later.
        check_topic(topic)?;
        let handle = self.inner.append(topic, queue_id, record);
        let max_queued = inner.config.max_in_flight_batches;
        let shared = &inner.shared;
        while shared.queue.borrow().len() >= max_queued {
            let listener = shared.space.listen();
            if shared.queue.borrow().len() < max_queued {
                break;
            }
            listener.await;
        }
        Ok(handle)
    }

    /// The queue a sharding key picks in `topic`: RocketMQ's `SelectMessageQueueByHash` (the
    /// Java hash of the key, modulo the queue count, made positive), so every record with one
    /// key goes to one queue and keeps its order. The topic's queue count is read once per
    /// producer.
    pub async fn queue_for_key(&self, topic: &str, sharding_key: &str) -> Result<u32> {
        let known = self.inner.queue_counts.borrow().get(topic).copied();
        let queues = match known {
            Some(queues) => queues,
            None => {
                let info = self.inner.client.topic(topic).await?.ok_or_else(|| {
                    ClientError::InvalidArgument(format!("topic {topic:?} does not exist"))
                })?;
                self.inner
                    .queue_counts
                    .borrow_mut()
                    .insert(topic.to_owned(), info.queues);
                info.queues
            }
        };
        Ok(queue_for_key(sharding_key, queues))
    }

    /// [`Producer::send`] to the queue `sharding_key` picks ([`Producer::queue_for_key`]).
    pub async fn send_by_key(
        &self,
        topic: &str,
        sharding_key: &str,
        record: Record,
    ) -> Result<SendHandle> {
        let queue_id = self.queue_for_key(topic, sharding_key).await?;
        self.send(topic, queue_id, record).await
    }

    /// Sends one record at once, without an acknowledgement (RocketMQ's oneway send): returns
    /// when it is written to the connection; nobody learns whether it was stored.
    pub async fn send_oneway(&self, topic: &str, queue_id: u32, mut record: Record) -> Result<()> {
        if record.unique_id.is_empty() {
            record.unique_id = crate::message::unique_id();
        }
        let batch = encode_batch(std::slice::from_ref(&record));
        self.inner
            .client
            .produce_oneway(topic, queue_id, &batch)
            .await
    }

    /// Seals every open batch and waits until all sealed batches are acknowledged or failed.
    /// Returns the first error since the previous `flush` (each failed record's handle has its
    /// own copy of its batch's error).
    pub async fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.seal_all();
        let shared = &inner.shared;
        while shared.outstanding.get() > 0 {
            let listener = shared.idle.listen();
            if shared.outstanding.get() == 0 {
                break;
            }
            listener.await;
        }
        match shared.first_error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Encodes `records` as one batch and sends it right away, bypassing the accumulators (no
    /// ordering with records given to [`Producer::send`]).
    pub async fn send_batch(
        &self,
        topic: &str,
        queue_id: u32,
        records: &[Record],
    ) -> Result<ProduceReply> {
        if records.is_empty() || records.len() > BATCH_RECORDS_MAX as usize {
            return Err(ClientError::InvalidArgument(format!(
                "{} records not in 1..={BATCH_RECORDS_MAX}",
                records.len()
            )));
        }
        let batch = encode_batch(records);
        let reply = self
            .inner
            .client
            .produce_batch(topic, queue_id, &batch)
            .await?;
        check_count(&reply, records.len())?;
        Ok(reply)
    }
}

impl Inner {
    /// Adds the record to its open batch (sealing first if it would overflow the byte budget,
    /// and after if the batch is full).
    fn append(self: &Rc<Self>, topic: &str, queue_id: u32, record: Record) -> SendHandle {
        let added_bytes = record.encoded_bytes_estimate();
        let mut open_map = self.open.borrow_mut();
        if !open_map.contains_key(topic) {
            open_map.insert(topic.to_owned(), Vec::new());
        }
        let queues = open_map.get_mut(topic).expect("inserted above");
        if queues.len() <= queue_id as usize {
            queues.resize_with(queue_id as usize + 1, || None);
        }
        let entry = &mut queues[queue_id as usize];
        if let Some(open) = entry {
            if !open.builder.is_empty()
                && open.builder.estimated_bytes() + added_bytes > self.config.batch_max_bytes
            {
                let full = entry.take().expect("checked above");
                self.seal(topic, queue_id, full);
            }
        }
        // The linger timer starts only after the map is released: glommio runs a spawned task
        // right away up to its first pending point, and a zero linger seals at once.
        let mut new_generation = None;
        let open = entry.get_or_insert_with(|| {
            let generation = self.next_generation.get();
            self.next_generation.set(generation + 1);
            new_generation = Some(generation);
            Open {
                builder: BatchBuilder::new(),
                slot: Rc::new(Slot::new()),
                generation,
            }
        });
        let index = open.builder.len() as u32;
        open.builder.push(record);
        let handle = SendHandle {
            slot: open.slot.clone(),
            index,
            listener: None,
        };
        if open.builder.len() >= self.config.batch_max_records
            || open.builder.estimated_bytes() >= self.config.batch_max_bytes
        {
            let full = entry.take().expect("just filled");
            self.seal(topic, queue_id, full);
        }
        drop(open_map);
        if let Some(generation) = new_generation {
            self.start_linger_timer(topic, queue_id, generation);
        }
        handle
    }

    fn start_linger_timer(self: &Rc<Self>, topic: &str, queue_id: u32, generation: u64) {
        let weak: Weak<Inner> = Rc::downgrade(self);
        let topic = topic.to_owned();
        let linger = self.config.linger;
        glommio::spawn_local(async move {
            glommio::timer::Timer::new(linger).await;
            if let Some(inner) = weak.upgrade() {
                inner.seal_if_generation(&topic, queue_id, generation);
            }
        })
        .detach();
    }

    fn seal_if_generation(&self, topic: &str, queue_id: u32, generation: u64) {
        let open = {
            let mut open_map = self.open.borrow_mut();
            let Some(entry) = open_map
                .get_mut(topic)
                .and_then(|queues| queues.get_mut(queue_id as usize))
            else {
                return;
            };
            match entry {
                Some(open) if open.generation == generation => entry.take(),
                _ => None,
            }
        };
        if let Some(open) = open {
            self.seal(topic, queue_id, open);
        }
    }

    fn seal_all(&self) {
        let mut all = Vec::new();
        for (topic, queues) in self.open.borrow_mut().iter_mut() {
            for (queue_id, entry) in queues.iter_mut().enumerate() {
                if let Some(open) = entry.take() {
                    all.push((topic.clone(), queue_id as u32, open));
                }
            }
        }
        for (topic, queue_id, open) in all {
            self.seal(&topic, queue_id, open);
        }
    }

    fn seal(&self, topic: &str, queue_id: u32, mut open: Open) {
        if open.builder.is_empty() {
            return;
        }
        let record_count = open.builder.len();
        let batch = open.builder.finish();
        let shared = &self.shared;
        shared.outstanding.set(shared.outstanding.get() + 1);
        shared.queue.borrow_mut().push_back(Sealed {
            topic: topic.to_owned(),
            queue_id,
            batch,
            record_count,
            slot: open.slot,
        });
        shared.work.notify(usize::MAX);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.seal_all();
        self.shared.closed.set(true);
        self.shared.work.notify(usize::MAX);
    }
}

fn check_count(reply: &ProduceReply, sent: usize) -> Result<()> {
    if reply.count as usize != sent {
        return Err(ClientError::UnexpectedReply(format!(
            "sent {sent} records, broker acknowledged {}",
            reply.count
        )));
    }
    Ok(())
}

/// Takes sealed batches in order, bounds those in flight, writes them, and spawns ack waiters.
async fn dispatch_loop(client: Client, shared: Rc<Shared>, max_in_flight: usize) {
    let permits = Rc::new(glommio::sync::Semaphore::new(max_in_flight as u64));
    loop {
        let next = loop {
            if let Some(sealed) = shared.queue.borrow_mut().pop_front() {
                break Some(sealed);
            }
            if shared.closed.get() {
                break None;
            }
            let listener = shared.work.listen();
            if !shared.queue.borrow().is_empty() || shared.closed.get() {
                continue;
            }
            listener.await;
        };
        let Some(sealed) = next else {
            return;
        };
        shared.space.notify(usize::MAX);
        let permit = match permits.acquire_static_permit(1).await {
            Ok(permit) => permit,
            Err(_) => {
                shared.resolve(&sealed.slot, Err(ClientError::Closed));
                continue;
            }
        };
        let timeout = client.config().request_timeout;
        let written = with_timeout(timeout, async {
            let prefix = produce_prefix(&sealed.topic, sealed.queue_id, &sealed.batch)?;
            let conn = client
                .connection_for_queue(&sealed.topic, sealed.queue_id)
                .await?;
            conn.send_request(FrameKind::Produce, &prefix, &sealed.batch)
                .await
        })
        .await;
        match written {
            Ok(pending) => {
                let shared = shared.clone();
                glommio::spawn_local(async move {
                    let result = with_timeout(timeout, async {
                        let reply: ProduceReply = pending.wait().await?.decode()?;
                        check_count(&reply, sealed.record_count)?;
                        Ok(reply.base_offset)
                    })
                    .await;
                    shared.resolve(&sealed.slot, result);
                    drop(permit);
                })
                .detach();
            }
            Err(e) => {
                shared.resolve(&sealed.slot, Err(e));
                drop(permit);
            }
        }
    }
}
