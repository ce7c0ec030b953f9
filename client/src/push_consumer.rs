//! [`PushConsumer`]: a consumer-group member that pulls its assigned queues and calls a handler
//! for every message, committing for the group the offset below which every message is done.
//!
//! Structure: a [`GroupMember`] keeps the assignment; a supervisor task starts a worker per
//! assigned queue and stops the workers of queues the member lost (at once, when the broker
//! announces the change). A worker long-polls its queue with the subscription's filter (the
//! broker sends only matching messages) and hands each message to the handler.
//!
//! Concurrent mode (the default): at most `max_in_flight` handler calls run at once over all
//! queues. Offsets: a worker tracks the messages in flight; what it commits (every
//! `commit_interval`, inside its next pull, and when it stops) is the lowest offset still in
//! flight, or the next one to pull — so after a crash or a rebalance, only messages inside that
//! window can be delivered again, and none is skipped. A handler that fails is called again
//! after `retry_delay` until it succeeds (retry topics come with the message kinds).
//!
//! Orderly mode: a worker first takes the broker's lock of its queue for the group, renews it
//! every `lock_interval`, and calls the handler for one message at a time, in offset order; a
//! failing message is retried after `retry_delay` and holds up only its own queue. A worker
//! that loses its lock stops; the member that takes the lock next starts from the committed
//! offset. Messages are committed as they succeed.
//!
//! Runs on the glommio executor of its [`Client`]; `!Send`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use event_listener::Event;
use shardmq_protocol::messages::{OffsetCommit, Pull, QueueRef, StartFrom};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::member::{GroupMember, MemberConfig};
use crate::message::{messages_of, Message};

/// What a handler answers: done, or failed (the message is handed to it again later).
pub type HandlerResult = std::result::Result<(), String>;

/// The message handler.
pub type Handler = Rc<dyn Fn(Message) -> Pin<Box<dyn Future<Output = HandlerResult>>>>;

/// Where a member with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFromWhere {
    First,
    /// RocketMQ's `CONSUME_FROM_LAST_OFFSET` (from 0 while the queue's start is still in
    /// memory).
    Last,
    /// The first message stored at or after this time (ms since the epoch).
    Timestamp(u64),
}

impl StartFromWhere {
    pub(crate) fn wire(self) -> StartFrom {
        match self {
            StartFromWhere::First => StartFrom {
                kind: 0,
                timestamp_ms: 0,
            },
            StartFromWhere::Last => StartFrom {
                kind: 1,
                timestamp_ms: 0,
            },
            StartFromWhere::Timestamp(ms) => StartFrom {
                kind: 2,
                timestamp_ms: ms,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct PushConfig {
    pub member: MemberConfig,
    pub start_from: StartFromWhere,
    /// Handler calls running at once, over all queues (concurrent mode).
    pub max_in_flight: usize,
    /// Messages per pull.
    pub pull_batch: u32,
    pub pull_max_bytes: u32,
    /// How long a pull may wait on the broker for new messages.
    pub pull_wait: Duration,
    pub commit_interval: Duration,
    /// Lock each queue and consume it in order, one message at a time.
    pub orderly: bool,
    /// A failed message is handed to the handler again after this.
    pub retry_delay: Duration,
    /// Orderly mode: how often queue locks are renewed (the broker's expiry is longer).
    pub lock_interval: Duration,
}

impl PushConfig {
    pub fn new(member: MemberConfig) -> PushConfig {
        PushConfig {
            member,
            start_from: StartFromWhere::Last,
            max_in_flight: 64,
            pull_batch: 32,
            pull_max_bytes: 1 << 20,
            pull_wait: Duration::from_millis(500),
            commit_interval: Duration::from_millis(500),
            orderly: false,
            retry_delay: Duration::from_millis(200),
            lock_interval: Duration::from_secs(5),
        }
    }
}

/// The messages of one queue that were pulled and not yet done.
pub(crate) struct OffsetTracker {
    in_flight: BTreeSet<u64>,
    /// Every message below this was pulled.
    next: u64,
}

impl OffsetTracker {
    pub(crate) fn new(start: u64) -> Self {
        OffsetTracker {
            in_flight: BTreeSet::new(),
            next: start,
        }
    }

    fn begin(&mut self, offset: u64) {
        self.in_flight.insert(offset);
    }

    fn done(&mut self, offset: u64) {
        self.in_flight.remove(&offset);
    }

    fn pulled_to(&mut self, next: u64) {
        self.next = self.next.max(next);
    }

    /// The offset below which every message is done.
    pub(crate) fn committable(&self) -> u64 {
        self.in_flight.first().copied().unwrap_or(self.next)
    }

    fn idle(&self) -> bool {
        self.in_flight.is_empty()
    }
}

/// Asks a worker to stop, and lets it wait for that.
#[derive(Default)]
pub(crate) struct Stop {
    pub(crate) requested: Cell<bool>,
    pub(crate) event: Event,
}

impl Stop {
    fn request(&self) {
        self.requested.set(true);
        self.event.notify(usize::MAX);
    }

    pub(crate) async fn wait_requested(&self) {
        loop {
            let listener = self.event.listen();
            if self.requested.get() {
                return;
            }
            listener.await;
        }
    }
}

struct Worker {
    stop: Rc<Stop>,
    task: glommio::Task<()>,
}

struct Shared {
    client: Client,
    config: PushConfig,
    handler: Handler,
    permits: Rc<glommio::sync::Semaphore>,
    member: Rc<GroupMember>,
}

pub struct PushConsumer {
    shared: Rc<Shared>,
    workers: Rc<RefCell<HashMap<(String, u32), Worker>>>,
    supervisor: RefCell<Option<glommio::Task<()>>>,
}

impl PushConsumer {
    /// Joins the group and starts consuming.
    pub async fn start(
        client: &Client,
        config: PushConfig,
        handler: Handler,
    ) -> Result<PushConsumer> {
        if config.max_in_flight == 0 || config.pull_batch == 0 {
            return Err(ClientError::InvalidArgument(
                "max_in_flight and pull_batch must be at least 1".into(),
            ));
        }
        let member = GroupMember::join(client, config.member.clone()).await?;
        let shared = Rc::new(Shared {
            client: client.clone(),
            permits: Rc::new(glommio::sync::Semaphore::new(config.max_in_flight as u64)),
            config,
            handler,
            member,
        });
        let workers = Rc::new(RefCell::new(HashMap::new()));
        let supervisor = glommio::spawn_local(supervise(shared.clone(), workers.clone()));
        Ok(PushConsumer {
            shared,
            workers,
            supervisor: RefCell::new(Some(supervisor)),
        })
    }

    pub fn member(&self) -> &Rc<GroupMember> {
        &self.shared.member
    }

    /// The queues being consumed now.
    pub fn consuming(&self) -> Vec<(String, u32)> {
        let mut queues: Vec<_> = self.workers.borrow().keys().cloned().collect();
        queues.sort();
        queues
    }

    /// Stops every worker (each finishes its in-flight messages and commits), then leaves.
    pub async fn shutdown(self) -> Result<()> {
        self.supervisor.borrow_mut().take();
        let workers: Vec<Worker> = self.workers.borrow_mut().drain().map(|(_, w)| w).collect();
        for worker in &workers {
            worker.stop.request();
        }
        for worker in workers {
            worker.task.await;
        }
        self.shared.member.leave().await
    }
}

/// Keeps one worker per assigned queue.
async fn supervise(shared: Rc<Shared>, workers: Rc<RefCell<HashMap<(String, u32), Worker>>>) {
    loop {
        let generation = shared.member.generation();
        let assigned: BTreeSet<(String, u32)> = shared
            .member
            .assignment()
            .into_iter()
            .map(|q| (q.topic, q.queue_id))
            .collect();
        let lost: Vec<(String, u32)> = workers
            .borrow()
            .keys()
            .filter(|k| !assigned.contains(*k))
            .cloned()
            .collect();
        for key in lost {
            if let Some(worker) = workers.borrow_mut().remove(&key) {
                worker.stop.request();
                // Let it finish and commit on its own; the task is detached.
                worker.task.detach();
            }
        }
        for key in assigned {
            if workers.borrow().contains_key(&key) {
                continue;
            }
            let stop = Rc::new(Stop::default());
            let task = glommio::spawn_local(run_queue(shared.clone(), key.clone(), stop.clone()));
            workers.borrow_mut().insert(key, Worker { stop, task });
        }
        shared.member.changed_since(generation).await;
    }
}

async fn run_queue(shared: Rc<Shared>, (topic, queue_id): (String, u32), stop: Rc<Stop>) {
    if shared.config.orderly {
        crate::orderly::run(
            &shared.client,
            &shared.config,
            &shared.handler,
            shared.member.member_id(),
            &topic,
            queue_id,
            &stop,
        )
        .await;
    } else {
        run_concurrent(&shared, &topic, queue_id, &stop).await;
    }
}

/// Where this member starts on a queue: the committed offset, or the configured start.
pub(crate) async fn starting_offset(
    client: &Client,
    config: &PushConfig,
    topic: &str,
    queue_id: u32,
    stopped: &Cell<bool>,
) -> Option<u64> {
    let key = config.member.offsets_key();
    loop {
        if stopped.get() {
            return None;
        }
        let start = Some(config.start_from.wire());
        match client.query_offset(&key, topic, queue_id, start).await {
            Ok(Some(offset)) => return Some(offset),
            Ok(None) => return Some(0),
            Err(err) => {
                tracing::debug!(topic, queue_id, error = %err, "cannot read the start offset; retrying");
                glommio::timer::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A pull of the member's subscription on one queue.
pub(crate) fn pull_request(
    config: &PushConfig,
    topic: &str,
    queue_id: u32,
    offset: u64,
    commit: Option<u64>,
) -> Pull {
    Pull {
        topic: topic.to_owned(),
        queue_id,
        offset,
        max_messages: config.pull_batch,
        max_bytes: config.pull_max_bytes,
        wait_ms: config.pull_wait.as_millis().min(60_000) as u32,
        filter: config
            .member
            .filter_of(topic)
            .filter(|f| **f != crate::member::Filter::all())
            .map(|f| f.to_spec()),
        commit: commit.map(|offset| OffsetCommit {
            group: config.member.offsets_key(),
            offset,
        }),
    }
}

/// Pulls `pull`, unless the worker is asked to stop first (which abandons the long poll).
pub(crate) async fn pull_or_stop(
    client: &Client,
    pull: Pull,
    stopped: &Cell<bool>,
    stop_event: Option<&Event>,
) -> Option<Result<crate::PullResult>> {
    let fetch = async {
        match client.send_pull_request(pull).await {
            Ok(pending) => Some(pending.wait().await),
            Err(e) => Some(Err(e)),
        }
    };
    let stopping = async {
        loop {
            let Some(event) = stop_event else {
                return std::future::pending().await;
            };
            let listener = event.listen();
            if stopped.get() {
                return None;
            }
            listener.await;
        }
    };
    futures_lite::future::or(fetch, stopping).await
}

async fn run_concurrent(shared: &Rc<Shared>, topic: &str, queue_id: u32, stop: &Rc<Stop>) {
    let (client, config) = (&shared.client, &shared.config);
    let Some(start) = starting_offset(client, config, topic, queue_id, &stop.requested).await
    else {
        return;
    };
    let tracker = Rc::new(RefCell::new(OffsetTracker::new(start)));
    let (mut offset, mut committed, mut last_commit) = (start, start, Instant::now());
    while !stop.requested.get() {
        let due = tracker.borrow().committable();
        let commit = (due > committed).then_some(due);
        let pull = pull_request(config, topic, queue_id, offset, commit);
        let Some(result) = pull_or_stop(client, pull, &stop.requested, Some(&stop.event)).await
        else {
            break;
        };
        if let Some(due) = commit {
            committed = due;
        }
        let pulled = match result {
            Ok(pulled) => pulled,
            Err(err) => {
                tracing::debug!(topic, queue_id, error = %err, "pull failed; retrying");
                glommio::timer::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let messages = messages_of(topic, queue_id, &pulled).unwrap_or_default();
        for message in messages {
            let Ok(permit) = shared.permits.acquire_static_permit(1).await else {
                break;
            };
            tracker.borrow_mut().begin(message.offset);
            glommio::spawn_local(handle(shared.clone(), tracker.clone(), message, permit)).detach();
        }
        offset = pulled.next_offset();
        tracker.borrow_mut().pulled_to(offset);
        if last_commit.elapsed() >= config.commit_interval {
            committed = commit_now(client, config, topic, queue_id, &tracker, committed).await;
            last_commit = Instant::now();
        }
    }
    // Stopping: let the messages in flight finish, then commit what they reached.
    while !tracker.borrow().idle() {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    commit_now(client, config, topic, queue_id, &tracker, committed).await;
}

async fn commit_now(
    client: &Client,
    config: &PushConfig,
    topic: &str,
    queue_id: u32,
    tracker: &RefCell<OffsetTracker>,
    committed: u64,
) -> u64 {
    let due = tracker.borrow().committable();
    if due <= committed {
        return committed;
    }
    match client
        .commit_offset(&config.member.offsets_key(), topic, queue_id, due)
        .await
    {
        Ok(_) => due,
        Err(err) => {
            tracing::debug!(topic, queue_id, error = %err, "commit failed; the next one retries");
            committed
        }
    }
}

/// Calls the handler until it succeeds, then marks the message done.
async fn handle(
    shared: Rc<Shared>,
    tracker: Rc<RefCell<OffsetTracker>>,
    message: Message,
    _permit: glommio::sync::StaticPermit,
) {
    let offset = message.offset;
    while let Err(why) = (shared.handler)(message.clone()).await {
        tracing::debug!(offset, %why, "handler failed; the message is retried");
        glommio::timer::sleep(shared.config.retry_delay).await;
    }
    tracker.borrow_mut().done(offset);
}

/// The wire form of a queue.
pub(crate) fn queue_ref(topic: &str, queue_id: u32) -> QueueRef {
    QueueRef {
        topic: topic.to_owned(),
        queue_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committable_offset_is_below_every_message_in_flight() {
        let mut t = OffsetTracker::new(10);
        assert_eq!(t.committable(), 10);
        for o in 10..15 {
            t.begin(o);
        }
        t.pulled_to(15);
        t.done(10);
        t.done(12);
        assert_eq!(t.committable(), 11);
        t.done(11);
        assert_eq!(t.committable(), 13);
        t.done(13);
        t.done(14);
        assert_eq!(t.committable(), 15);
        assert!(t.idle());
    }
}
