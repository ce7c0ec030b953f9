//! [`PullConsumer`]: a consumer-group member that the application drives: it asks for messages
//! of its assigned queues ([`PullConsumer::poll`]) and commits offsets itself
//! ([`PullConsumer::commit`], [`PullConsumer::commit_polled`]) — RocketMQ's pull / lite-pull
//! consumer.
//!
//! Positions: each assigned queue starts at the group's committed offset (or the configured
//! start) and moves as polls return messages; nothing is committed unless the application says
//! so. A queue the member loses is forgotten at the next poll; one it gains starts from the
//! committed offset.
//!
//! A poll first asks every assigned queue without waiting; if none has anything, it asks them
//! all again with the long-poll wait and answers as soon as the first one has messages (the
//! others' pulls are abandoned). Runs on the glommio executor of its [`Client`]; `!Send`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use crate::client::Client;
use crate::error::Result;
use crate::member::{GroupMember, MemberConfig};
use crate::message::{messages_of, Message};
use crate::push_consumer::{pull_request, PushConfig, StartFromWhere};

pub struct PullConsumer {
    client: Client,
    config: PushConfig,
    member: Rc<GroupMember>,
    /// Next offset to pull, per assigned queue.
    positions: RefCell<HashMap<(String, u32), u64>>,
}

impl PullConsumer {
    /// Joins the group; `start_from` is where queues with no committed offset start.
    pub async fn start(
        client: &Client,
        member: MemberConfig,
        start_from: StartFromWhere,
    ) -> Result<PullConsumer> {
        let mut config = PushConfig::new(member.clone());
        config.start_from = start_from;
        let member = GroupMember::join(client, member).await?;
        Ok(PullConsumer {
            client: client.clone(),
            config,
            member,
            positions: RefCell::new(HashMap::new()),
        })
    }

    pub fn member(&self) -> &Rc<GroupMember> {
        &self.member
    }

    /// The assigned queues, each with its position (after syncing with the assignment).
    async fn positions(&self) -> Result<Vec<((String, u32), u64)>> {
        let assigned: Vec<(String, u32)> = self
            .member
            .assignment()
            .into_iter()
            .map(|q| (q.topic, q.queue_id))
            .collect();
        self.positions
            .borrow_mut()
            .retain(|k, _| assigned.contains(k));
        let mut out = Vec::with_capacity(assigned.len());
        for key in assigned {
            let known = self.positions.borrow().get(&key).copied();
            let offset = match known {
                Some(offset) => offset,
                None => {
                    let group = self.config.member.offsets_key();
                    let start = Some(self.config.start_from.wire());
                    let offset = self
                        .client
                        .query_offset(&group, &key.0, key.1, start)
                        .await?
                        .unwrap_or(0);
                    self.positions.borrow_mut().insert(key.clone(), offset);
                    offset
                }
            };
            out.push((key, offset));
        }
        Ok(out)
    }

    /// Messages of the assigned queues, up to `max_per_queue` from each; waits up to `wait`
    /// when none has any. Positions move past what is returned.
    pub async fn poll(&self, max_per_queue: u32, wait: Duration) -> Result<Vec<Message>> {
        let mut config = self.config.clone();
        config.pull_batch = max_per_queue.max(1);
        config.pull_wait = Duration::ZERO;
        let now = self.round(&config, false).await?;
        if !now.is_empty() || wait.is_zero() {
            return Ok(now);
        }
        config.pull_wait = wait;
        self.round(&config, true).await
    }

    /// One pull of every assigned queue; with `first_only`, answers with the first queue that
    /// returns messages.
    async fn round(&self, config: &PushConfig, first_only: bool) -> Result<Vec<Message>> {
        let (sender, receiver) = glommio::channels::local_channel::new_unbounded::<(
            String,
            u32,
            Result<crate::PullResult>,
        )>();
        let sender = Rc::new(sender);
        let mut pulls = Vec::new();
        for ((topic, queue_id), offset) in self.positions().await? {
            let request = pull_request(config, &topic, queue_id, offset, None);
            let (client, sender) = (self.client.clone(), sender.clone());
            pulls.push(glommio::spawn_local(async move {
                let result = match client.send_pull_request(request).await {
                    Ok(pending) => pending.wait().await,
                    Err(e) => Err(e),
                };
                let _ = sender.send((topic, queue_id, result)).await;
            }));
        }
        drop(sender);
        let mut messages = Vec::new();
        while let Some((topic, queue_id, result)) = receiver.recv().await {
            let Ok(pulled) = result else { continue };
            let found = messages_of(&topic, queue_id, &pulled)?;
            self.positions
                .borrow_mut()
                .insert((topic, queue_id), pulled.next_offset());
            let got = !found.is_empty();
            messages.extend(found);
            if got && first_only {
                break;
            }
        }
        drop(pulls);
        Ok(messages)
    }

    /// Commits `offset` (the next one to consume) of a queue for the group.
    pub async fn commit(&self, topic: &str, queue_id: u32, offset: u64) -> Result<bool> {
        self.client
            .commit_offset(&self.config.member.offsets_key(), topic, queue_id, offset)
            .await
    }

    /// Commits every assigned queue's position: everything polled so far is consumed.
    pub async fn commit_polled(&self) -> Result<()> {
        let positions: Vec<_> = self
            .positions
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for ((topic, queue_id), offset) in positions {
            self.commit(&topic, queue_id, offset).await?;
        }
        Ok(())
    }

    /// Leaves the group (nothing is committed).
    pub async fn close(self) -> Result<()> {
        self.member.leave().await
    }
}
