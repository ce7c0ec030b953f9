//! What the gRPC thread asks a shard to do, and the task on each shard that does it.
//!
//! The gRPC front end runs on a tokio thread of its own (`DESIGN.md` §3); the core runs on the
//! shards. Each shard has a bounded channel of [`ShardCall`]s, each carrying the sender its
//! answer goes back on. A produce is sent to the shard that owns its queue, so it appends there
//! with no mesh hop, and is answered only once it may be acknowledged (after the fdatasync that
//! covers it under `flush = sync`). A full channel makes the caller wait (backpressure on the
//! gRPC streams), a shard that is gone answers `ShardUnavailable`.

use std::rc::Rc;

use shardmq_protocol::ValidatedBatch;

use crate::core::pop::{PopCall, Popped, ReceiptHandle};
use crate::core::produce::Produced;
use crate::core::{CoreError, CoreResult};
use crate::server::context::ShardContext;

/// Calls waiting for one shard at most.
pub const CALL_QUEUE_DEPTH: usize = 256;

pub enum ShardCall {
    /// Appends `batch` to a queue this shard owns; answered once acknowledgeable.
    Produce {
        topic: String,
        queue_id: u32,
        batch: ValidatedBatch,
        reply: flume::Sender<CoreResult<Produced>>,
    },
    /// The topic's queue count, creating it first when auto-creation is on.
    EnsureTopic {
        topic: String,
        reply: flume::Sender<CoreResult<u32>>,
    },
    /// A POP receive from queues this shard owns.
    Pop {
        call: PopCall,
        reply: flume::Sender<CoreResult<Vec<Popped>>>,
    },
    /// Acknowledges a POP delivery (`invisible: None`) or moves its invisibility.
    Settle {
        group: String,
        topic: String,
        handle: ReceiptHandle,
        invisible: Option<std::time::Duration>,
        reply: flume::Sender<CoreResult<ReceiptHandle>>,
    },
}

/// One shard's call channel.
pub fn channel() -> (flume::Sender<ShardCall>, flume::Receiver<ShardCall>) {
    flume::bounded(CALL_QUEUE_DEPTH)
}

/// Serves calls until the gRPC thread goes away; each in a task of its own, so a produce
/// waiting for its fdatasync does not hold up the next.
pub async fn serve(ctx: Rc<ShardContext>, calls: flume::Receiver<ShardCall>) {
    while let Ok(call) = calls.recv_async().await {
        let ctx = ctx.clone();
        glommio::spawn_local(async move { answer(&ctx, call).await }).detach();
    }
}

async fn answer(ctx: &ShardContext, call: ShardCall) {
    match call {
        ShardCall::Produce {
            topic,
            queue_id,
            batch,
            reply,
        } => {
            let produced = match ctx.core.produce(&topic, queue_id, batch).await {
                Ok(produced) => ctx.core.acknowledged(produced).await,
                Err(err) => Err(err),
            };
            let _ = reply.send(produced);
        }
        ShardCall::EnsureTopic { topic, reply } => {
            let queues = ctx.core.topic_for_produce(&topic).await.map(|t| t.queues);
            let _ = reply.send(queues);
        }
        ShardCall::Pop { call, reply } => {
            let _ = reply.send(ctx.core.pop(call).await);
        }
        ShardCall::Settle {
            group,
            topic,
            handle,
            invisible,
            reply,
        } => {
            let settled = match invisible {
                None => ctx.core.ack_popped(&group, &topic, handle).map(|()| handle),
                Some(d) => ctx.core.change_invisibility(&group, &topic, handle, d),
            };
            let _ = reply.send(settled);
        }
    }
}

/// The gRPC thread's end: one sender per shard.
#[derive(Clone)]
pub struct Shards {
    senders: Vec<flume::Sender<ShardCall>>,
}

impl Shards {
    pub fn new(senders: Vec<flume::Sender<ShardCall>>) -> Shards {
        assert!(!senders.is_empty(), "a broker has at least one shard");
        Shards { senders }
    }

    pub fn count(&self) -> u32 {
        self.senders.len() as u32
    }

    /// Sends `call` to shard `k` and waits for its answer on `answer`.
    async fn ask<T>(
        &self,
        k: u32,
        call: ShardCall,
        answer: flume::Receiver<CoreResult<T>>,
    ) -> CoreResult<T> {
        let sender = &self.senders[k as usize];
        sender
            .send_async(call)
            .await
            .map_err(|_| CoreError::ShardUnavailable(k))?;
        answer
            .recv_async()
            .await
            .map_err(|_| CoreError::ShardUnavailable(k))?
    }

    pub async fn produce(
        &self,
        owner: u32,
        topic: &str,
        queue_id: u32,
        batch: ValidatedBatch,
    ) -> CoreResult<Produced> {
        let (reply, answer) = flume::bounded(1);
        let call = ShardCall::Produce {
            topic: topic.to_string(),
            queue_id,
            batch,
            reply,
        };
        self.ask(owner, call, answer).await
    }

    pub async fn pop(&self, owner: u32, call: PopCall) -> CoreResult<Vec<Popped>> {
        let (reply, answer) = flume::bounded(1);
        self.ask(owner, ShardCall::Pop { call, reply }, answer)
            .await
    }

    /// Acknowledges (`invisible: None`) or re-hides a delivery, on the queue's owner.
    pub async fn settle(
        &self,
        owner: u32,
        group: &str,
        topic: &str,
        handle: ReceiptHandle,
        invisible: Option<std::time::Duration>,
    ) -> CoreResult<ReceiptHandle> {
        let (reply, answer) = flume::bounded(1);
        let call = ShardCall::Settle {
            group: group.to_string(),
            topic: topic.to_string(),
            handle,
            invisible,
            reply,
        };
        self.ask(owner, call, answer).await
    }

    /// Shard 0 makes topics (any shard could; one keeps creation races in one place).
    pub async fn ensure_topic(&self, topic: &str) -> CoreResult<u32> {
        let (reply, answer) = flume::bounded(1);
        let call = ShardCall::EnsureTopic {
            topic: topic.to_string(),
            reply,
        };
        self.ask(0, call, answer).await
    }
}
