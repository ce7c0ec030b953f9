//! The calls one shard's core makes on another's, over the mesh, and the handler that serves
//! them. A remote call runs the same core code the owning shard runs for its own clients.

use std::rc::Rc;

use shardmq_protocol::ValidatedBatch;

use super::error::{CoreError, CoreResult};
use super::produce::{Ack, Produced};
use super::pull::{PullCall, Pulled};
use super::Core;
use crate::mesh::{Mesh, MeshEnds};

/// A call addressed to the shard that owns what it is about.
pub enum RemoteCall {
    Produce {
        topic: String,
        queue_id: u32,
        batch: ValidatedBatch,
    },
    Pull(PullCall),
    QueueOffsets {
        topic: String,
        queue_id: u32,
    },
    /// A topic was deleted: free the queues of it this shard holds.
    DropTopicData {
        topic_id: u32,
        queues: u32,
    },
}

/// The answer to a [`RemoteCall`], one variant per call.
pub enum RemoteReply {
    Produced(CoreResult<Produced>),
    Pulled(CoreResult<Pulled>),
    QueueOffsets(CoreResult<(u64, u64)>),
    Done,
}

impl RemoteReply {
    /// The error for a reply of the wrong kind (a broker bug, reported rather than panicking
    /// on a shard that is serving others).
    pub fn unexpected(&self, shard: u32) -> CoreError {
        tracing::error!(shard, "a remote call got a reply of another kind");
        CoreError::ShardUnavailable(shard)
    }
}

pub type CoreMesh = Mesh<RemoteCall, RemoteReply>;
pub type CoreMeshEnds = MeshEnds<RemoteCall, RemoteReply>;

impl Core {
    /// Calls shard `to`'s core.
    pub(crate) async fn call(&self, to: u32, call: RemoteCall) -> CoreResult<RemoteReply> {
        self.mesh
            .call(to, call)
            .await
            .map_err(|unavailable| CoreError::ShardUnavailable(unavailable.0))
    }

    /// Calls every other shard with the call `make` builds for it, one after another.
    pub(crate) async fn call_peers(&self, make: impl Fn() -> RemoteCall) -> CoreResult<()> {
        let peers: Vec<u32> = self.mesh.peers().collect();
        for peer in peers {
            self.call(peer, make()).await?;
        }
        Ok(())
    }

    /// The queue's `(min, max)` offsets, from the shard that owns it.
    pub async fn queue_offsets(&self, topic: &str, queue_id: u32) -> CoreResult<(u64, u64)> {
        let owner = self.owner(topic, queue_id);
        if owner == self.shard_id {
            let topic = self.topic_queue(topic, queue_id)?;
            return Ok(self.store.offsets(topic.topic_id, queue_id));
        }
        let call = RemoteCall::QueueOffsets {
            topic: topic.to_string(),
            queue_id,
        };
        match self.call(owner, call).await? {
            RemoteReply::QueueOffsets(result) => result,
            other => Err(other.unexpected(owner)),
        }
    }
}

/// Serves the calls other shards make on `core`.
pub async fn serve(
    core: Rc<Core>,
    ends: Vec<
        glommio::channels::shared_channel::ConnectedReceiver<
            crate::mesh::Envelope<RemoteCall, RemoteReply>,
        >,
    >,
) {
    crate::mesh::serve(ends, move |call| {
        let core = core.clone();
        async move { handle(&core, call).await }
    })
    .await;
}

async fn handle(core: &Core, call: RemoteCall) -> RemoteReply {
    match call {
        RemoteCall::Produce {
            topic,
            queue_id,
            batch,
        } => RemoteReply::Produced(produce_acknowledged(core, &topic, queue_id, batch).await),
        RemoteCall::Pull(call) => RemoteReply::Pulled(core.pull_to_end(call).await),
        RemoteCall::QueueOffsets { topic, queue_id } => {
            RemoteReply::QueueOffsets(core.queue_offsets(&topic, queue_id).await)
        }
        RemoteCall::DropTopicData { topic_id, queues } => {
            core.drop_topic_data(topic_id, queues).await;
            RemoteReply::Done
        }
    }
}

/// A forwarded produce is answered only once it may be acknowledged, so the caller's front end
/// never waits on another shard's store.
async fn produce_acknowledged(
    core: &Core,
    topic: &str,
    queue_id: u32,
    batch: ValidatedBatch,
) -> CoreResult<Produced> {
    let mut produced = core.produce_here(topic, queue_id, batch).await?;
    if let Ack::AfterSync(end) = produced.ack {
        core.store.acknowledgeable(end).await?;
        produced.ack = Ack::Now;
    }
    Ok(produced)
}
