//! The calls one shard's core makes on another's, over the mesh, and the handler that serves
//! them. A remote call runs the same core code the owning shard runs for its own clients.

use std::rc::Rc;

use shardmq_protocol::ValidatedBatch;

use super::error::{CoreError, CoreResult};
use super::membership::{GroupAnswer, GroupOp};
use super::produce::Produced;
use super::pull::{PullCall, Pulled};
use super::queue_ops::{QueueAnswer, QueueOp};
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
    /// A call about one queue (offsets, consumer offsets, searches).
    Queue {
        topic: String,
        queue_id: u32,
        op: QueueOp,
    },
    /// A topic was deleted: free the queues of it this shard holds.
    DropTopicData {
        topic_id: u32,
        queues: u32,
    },
    /// A call about a group, for its coordinator.
    Group(GroupOp),
    /// A group was deleted: forget its offsets on this shard.
    DropGroupData {
        group: String,
    },
    /// Tell the member behind a connection of this shard that its group changed.
    Notify {
        connection: u64,
        group: String,
        generation: u64,
    },
}

/// The answer to a [`RemoteCall`], one variant per call.
pub enum RemoteReply {
    Produced(CoreResult<Produced>),
    Pulled(CoreResult<Pulled>),
    Queue(CoreResult<QueueAnswer>),
    Group(GroupAnswer),
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
        RemoteCall::Queue {
            topic,
            queue_id,
            op,
        } => RemoteReply::Queue(core.queue_op_here(&topic, queue_id, op).await),
        RemoteCall::DropTopicData { topic_id, queues } => {
            core.drop_topic_data(topic_id, queues).await;
            RemoteReply::Done
        }
        RemoteCall::Group(op) => RemoteReply::Group(core.group_op_here(op).await),
        RemoteCall::DropGroupData { group } => {
            core.drop_group_data(&group);
            RemoteReply::Done
        }
        RemoteCall::Notify {
            connection,
            group,
            generation,
        } => {
            core.deliver(connection, &group, generation);
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
    let produced = core.produce_here(topic, queue_id, batch).await?;
    core.acknowledged(produced).await
}
