//! The cross-shard channels (`DESIGN.md` §3): every shard can call every other shard.
//!
//! A call is a message of the broker core's own type, carried with a one-shot reply channel over
//! a bounded glommio shared channel from the calling shard to the target shard (one channel per
//! ordered pair of shards, `MESH_QUEUE_DEPTH` calls deep: a caller waits when the target is that
//! far behind, so a slow shard slows its callers instead of growing queues). The target's
//! server task takes calls in arrival order and runs each as its own task, so a call that waits
//! (a long poll) does not hold up the ones behind it; the reply travels back over the one-shot
//! channel, whose waker glommio delivers across cores.
//!
//! The mesh knows nothing of what it carries: the core defines the call and reply types and
//! the handler that serves them (`core::remote`). Built at boot with every end `Send`, then each
//! shard connects its ends on its own executor.

use std::future::Future;
use std::rc::Rc;

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use crate::limits::MESH_QUEUE_DEPTH;

/// A call on its way to another shard, with where its reply goes.
pub struct Envelope<C, R> {
    pub call: C,
    pub reply: flume::Sender<R>,
}

/// One shard's ends of the mesh before its executor connects them (`Send`).
pub struct MeshEnds<C: Send, R: Send> {
    shard_id: u32,
    /// Index = target shard; `None` for this shard itself.
    senders: Vec<Option<SharedSender<Envelope<C, R>>>>,
    receivers: Vec<SharedReceiver<Envelope<C, R>>>,
}

/// Builds the ends of every shard: `shards × (shards − 1)` channels.
pub fn build<C: Send + 'static, R: Send + 'static>(shards: u32) -> Vec<MeshEnds<C, R>> {
    let mut ends: Vec<MeshEnds<C, R>> = (0..shards)
        .map(|shard_id| MeshEnds {
            shard_id,
            senders: (0..shards).map(|_| None).collect(),
            receivers: Vec::new(),
        })
        .collect();
    for from in 0..shards as usize {
        for to in 0..shards as usize {
            if from != to {
                let (sender, receiver) = shared_channel::new_bounded(MESH_QUEUE_DEPTH);
                ends[from].senders[to] = Some(sender);
                ends[to].receivers.push(receiver);
            }
        }
    }
    ends
}

/// A shard's connected mesh: how it calls the others.
pub struct Mesh<C: Send, R: Send> {
    shard_id: u32,
    senders: Vec<Option<ConnectedSender<Envelope<C, R>>>>,
}

/// The calling side could not get an answer: the target shard is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable(pub u32);

impl<C: Send + 'static, R: Send + 'static> MeshEnds<C, R> {
    /// Connects this shard's ends on its executor; returns the mesh and the receivers of calls
    /// addressed to this shard, for [`serve`]. Each end's connect waits for its peer's, so all
    /// of them are started at once (one after another, two shards would wait on each other).
    pub async fn connect(self) -> (Mesh<C, R>, Vec<ConnectedReceiver<Envelope<C, R>>>) {
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|sender| glommio::spawn_local(async move { Some(sender?.connect().await) }))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|receiver| glommio::spawn_local(receiver.connect()))
            .collect();
        let mut connected_senders = Vec::with_capacity(senders.len());
        for sender in senders {
            connected_senders.push(sender.await);
        }
        let mut connected_receivers = Vec::with_capacity(receivers.len());
        for receiver in receivers {
            connected_receivers.push(receiver.await);
        }
        let (senders, receivers) = (connected_senders, connected_receivers);
        (
            Mesh {
                shard_id: self.shard_id,
                senders,
            },
            receivers,
        )
    }
}

impl<C: Send + 'static, R: Send + 'static> Mesh<C, R> {
    pub fn shard_id(&self) -> u32 {
        self.shard_id
    }

    /// Calls shard `to` and waits for its reply.
    pub async fn call(&self, to: u32, call: C) -> Result<R, Unavailable> {
        let sender = self
            .senders
            .get(to as usize)
            .and_then(Option::as_ref)
            .ok_or(Unavailable(to))?;
        let (reply, answer) = flume::bounded(1);
        sender
            .send(Envelope { call, reply })
            .await
            .map_err(|_| Unavailable(to))?;
        answer.recv_async().await.map_err(|_| Unavailable(to))
    }

    /// Shards other than this one.
    pub fn peers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.senders.len() as u32).filter(move |k| *k != self.shard_id)
    }
}

/// Serves the calls that arrive on `receivers` until every sender is gone or the returned
/// future is dropped: each call runs as its own task on this shard, and its reply is sent back.
pub async fn serve<C, R, F, Fut>(receivers: Vec<ConnectedReceiver<Envelope<C, R>>>, handle: F)
where
    C: Send + 'static,
    R: Send + 'static,
    F: Fn(C) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
{
    let handle = Rc::new(handle);
    let loops: Vec<_> = receivers
        .into_iter()
        .map(|receiver| {
            let handle = handle.clone();
            glommio::spawn_local(async move {
                while let Some(envelope) = receiver.recv().await {
                    let answer = handle(envelope.call);
                    glommio::spawn_local(async move {
                        // The caller may have given up; its reply is then dropped.
                        let _ = envelope.reply.send(answer.await);
                    })
                    .detach();
                }
            })
        })
        .collect();
    for task in loops {
        task.await;
    }
}
